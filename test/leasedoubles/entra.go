/*
Copyright 2026 The Custos Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package leasedoubles

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

const (
	// entraAudience is the audience Entra ID accepts in a federated client
	// assertion.
	entraAudience       = "api://AzureADTokenExchange"
	clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// Entra is a test double of Entra ID's token service on 127.0.0.1, over TLS
// with a certificate of its own (trust it through Client or CertPool): what
// azidentity's ClientAssertionCredential needs, a tenant's OpenID
// configuration and its token endpoint serving the client-credentials grant
// with a client assertion. Give URL to the credential as its authority host,
// with instance discovery disabled. Calls counts token requests, and
// FailNext fails them; the OpenID configuration is always served.
//
// It verifies the assertion as Entra ID verifies one against a federated
// identity credential: signed by the cluster's keys, issued by its issuer,
// for the audience api://AzureADTokenExchange and not expired, and its
// subject one that Register federated with the client ID.
type Entra struct {
	faults

	// URL is the double's authority host, https://127.0.0.1:<port>.
	URL string

	srv    *httptest.Server
	issuer *issuer

	mu       sync.Mutex
	apps     map[string]map[string][]string // tenant → client ID → subjects
	lifetime time.Duration
	grants   []Grant
}

// Grant is an access token the double issued.
type Grant struct {
	TenantID string
	ClientID string
	Scope    string
	// Subject is the client assertion's subject.
	Subject     string
	AccessToken string
	ExpiresAt   time.Time
}

// NewEntra starts an Entra ID double that trusts the tokens of the cluster
// cfg connects to. Close it when done.
func NewEntra(ctx context.Context, cfg *rest.Config) (*Entra, error) {
	iss, err := newIssuer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster's token issuer: %w", err)
	}
	l, err := listenLoopback()
	if err != nil {
		return nil, err
	}
	e := &Entra{issuer: iss, apps: map[string]map[string][]string{}, lifetime: time.Hour}
	e.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}}
	e.srv.StartTLS()
	e.URL = e.srv.URL
	return e, nil
}

// Close stops the double.
func (e *Entra) Close() { e.srv.Close() }

// Client is an HTTP client that trusts the double's certificate.
func (e *Entra) Client() *http.Client { return e.srv.Client() }

// CertPool holds the double's certificate.
func (e *Entra) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(e.srv.Certificate())
	return pool
}

// Register registers the application clientID in tenantID (making the
// tenant known) and federates it with the given subjects (see Subject). It
// adds to the subjects registered before.
func (e *Entra) Register(tenantID, clientID string, subjects ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	tenantID, clientID = strings.ToLower(tenantID), strings.ToLower(clientID)
	if e.apps[tenantID] == nil {
		e.apps[tenantID] = map[string][]string{}
	}
	e.apps[tenantID][clientID] = append(e.apps[tenantID][clientID], subjects...)
}

// SetTokenLifetime is the life of the access tokens issued (an hour unless
// set).
func (e *Entra) SetTokenLifetime(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lifetime = d
}

// Grants are the access tokens issued so far, oldest first.
func (e *Entra) Grants() []Grant {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.grants)
}

// Grant is the grant of accessToken.
func (e *Entra) Grant(accessToken string) (Grant, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, g := range e.grants {
		if g.AccessToken == accessToken {
			return g, true
		}
	}
	return Grant{}, false
}

// aadError is an OAuth error answer, with an AADSTS code.
type aadError struct {
	status int
	error  string
	code   int
	desc   string
}

func (e *Entra) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tenant, route, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case ok && route == "v2.0/.well-known/openid-configuration" && r.Method == http.MethodGet:
		e.discovery(w, strings.ToLower(tenant))
	case ok && route == "oauth2/v2.0/token" && r.Method == http.MethodPost:
		if f, fail := e.next(); fail {
			if f.Code == "" {
				w.WriteHeader(f.Status)
				return
			}
			writeAADError(w, &aadError{status: f.Status, error: f.Code, desc: f.Message})
			return
		}
		res, aerr := e.token(r.Context(), r, strings.ToLower(tenant))
		if aerr != nil {
			writeAADError(w, aerr)
			return
		}
		writeJSON(w, http.StatusOK, res)
	default:
		http.NotFound(w, r)
	}
}

func (e *Entra) knownTenant(tenant string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.apps[tenant] != nil
}

// discovery serves a tenant's OpenID configuration, with the endpoints on
// the double.
func (e *Entra) discovery(w http.ResponseWriter, tenant string) {
	if !e.knownTenant(tenant) {
		writeAADError(w, &aadError{http.StatusBadRequest, "invalid_tenant", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant)})
		return
	}
	base := e.URL + "/" + tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                base + "/v2.0",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"tenant_region_scope":                   "WW",
		"cloud_instance_name":                   "127.0.0.1",
	})
}

func (e *Entra) token(ctx context.Context, r *http.Request, tenant string) (map[string]any, *aadError) {
	if err := r.ParseForm(); err != nil {
		return nil, &aadError{http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'."}
	}
	form := r.PostForm
	if !e.knownTenant(tenant) {
		return nil, &aadError{http.StatusBadRequest, "invalid_tenant", 90002, fmt.Sprintf("Tenant '%s' not found.", tenant)}
	}
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		return nil, &aadError{http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", gt)}
	}
	clientID := strings.ToLower(form.Get("client_id"))
	if form.Get("client_assertion_type") != clientAssertionType || form.Get("client_assertion") == "" {
		return nil, &aadError{http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}
	}
	scope, aerr := resourceScope(form.Get("scope"))
	if aerr != nil {
		return nil, aerr
	}

	e.mu.Lock()
	subjects, registered := e.apps[tenant][clientID]
	lifetime := e.lifetime
	e.mu.Unlock()
	if !registered {
		return nil, &aadError{http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", clientID, tenant)}
	}

	now := time.Now()
	c, err := e.issuer.verify(ctx, form.Get("client_assertion"), entraAudience, now)
	var terr *tokenError
	switch {
	case errors.As(err, &terr) && terr.kind == tokenExpired:
		return nil, &aadError{http.StatusUnauthorized, "invalid_client", 700024, "Client assertion is not within its valid time range. " + terr.msg}
	case errors.As(err, &terr) && terr.kind == tokenIssuer:
		return nil, &aadError{http.StatusBadRequest, "invalid_request", 700211, "No matching federated identity record found for presented assertion issuer."}
	case errors.As(err, &terr) && terr.kind == tokenAudience:
		return nil, &aadError{http.StatusBadRequest, "invalid_request", 700212, "No matching federated identity record found for presented assertion audience."}
	case errors.As(err, &terr):
		return nil, &aadError{http.StatusUnauthorized, "invalid_client", 700027, "Client assertion failed signature validation: " + terr.msg}
	case err != nil:
		return nil, &aadError{http.StatusServiceUnavailable, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again."}
	}
	if !slices.Contains(subjects, c.Subject) {
		return nil, &aadError{http.StatusBadRequest, "invalid_request", 70021,
			fmt.Sprintf("No matching federated identity record found for presented assertion. Assertion Subject: '%s'. Assertion Audience: '%s'.", c.Subject, entraAudience)}
	}

	g := Grant{
		TenantID:    tenant,
		ClientID:    clientID,
		Scope:       scope,
		Subject:     c.Subject,
		AccessToken: "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + randomString(480, base64Chars),
		ExpiresAt:   now.Add(lifetime).Truncate(time.Second),
	}
	e.mu.Lock()
	e.grants = append(e.grants, g)
	e.mu.Unlock()
	seconds := int(lifetime / time.Second)
	return map[string]any{
		"token_type":     "Bearer",
		"expires_in":     seconds,
		"ext_expires_in": seconds,
		"access_token":   g.AccessToken,
	}, nil
}

// resourceScope is the one resource scope of a client-credentials grant,
// which must be <resource>/.default; the OpenID scopes a client may add
// are ignored.
func resourceScope(raw string) (string, *aadError) {
	var resources []string
	for s := range strings.FieldsSeq(raw) {
		switch s {
		case "openid", "profile", "offline_access", "email":
			continue
		}
		resources = append(resources, s)
	}
	if len(resources) != 1 || !strings.HasSuffix(resources[0], "/.default") {
		return "", &aadError{http.StatusBadRequest, "invalid_scope", 1002012,
			fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", raw)}
	}
	return resources[0], nil
}

func writeAADError(w http.ResponseWriter, e *aadError) {
	trace, correlation := requestID(), requestID()
	now := time.Now().UTC()
	desc := e.desc
	if e.code != 0 {
		desc = "AADSTS" + strconv.Itoa(e.code) + ": " + desc
	}
	// Entra ID follows the description with trace and correlation IDs and a
	// timestamp, each on a line of its own.
	stamp := now.Format("2006-01-02 15:04:05Z")
	body := map[string]any{
		"error":             e.error,
		"error_description": fmt.Sprintf("%s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", desc, trace, correlation, stamp),
		"timestamp":         stamp,
		"trace_id":          trace,
		"correlation_id":    correlation,
	}
	if e.code != 0 {
		body["error_codes"] = []int{e.code}
	}
	writeJSON(w, e.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
