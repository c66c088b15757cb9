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

package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	azruntime "github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"k8s.io/utils/clock"
)

// EntraAudience is the audience of the ServiceAccount tokens presented to
// Entra ID as client assertions, as Azure Workload Identity federates them.
const EntraAudience = "api://AzureADTokenExchange"

// AzureToken issues Entra ID access tokens of the agent's bound application
// (Azure Workload Identity): a fresh ServiceAccount token of the agent, for
// the audience api://AzureADTokenExchange, is the client assertion of a
// client-credentials grant for the credential's scope.
//
// azidentity keeps the tokens a credential acquired and hands them out again
// until they near expiry, so Issue makes a credential for each lease: a
// renewal always gets a new token, from a new assertion.
type AzureToken struct {
	Tokens TokenSource
	// AuthorityHost is Entra ID's authority host, such as
	// https://login.microsoftonline.com/; empty means Azure's public cloud.
	AuthorityHost string
	// HTTPClient carries the calls (and trusts the authority's certificate);
	// nil means azcore's default.
	HTTPClient *http.Client
	Clock      clock.PassiveClock
}

// Name implements Backend.
func (a *AzureToken) Name() string { return BackendAzureToken }

// Issue implements Backend.
func (a *AzureToken) Issue(ctx context.Context, req Request) (*Lease, error) {
	spec := req.Credential.AzureToken
	if spec == nil {
		return nil, fmt.Errorf("credential %s is not an azureToken credential", req.Credential.Name)
	}
	id := req.Identity.Azure
	if id == nil || id.ClientID == "" || id.TenantID == "" {
		return nil, &RefusedError{Backend: BackendAzureToken, Reason: "NoAzureIdentity",
			Message: fmt.Sprintf("agent %s/%s has no Entra ID application bound in spec.identity.azure", req.Namespace, req.Agent)}
	}

	// The assertion's failure is kept apart: azidentity wraps it in its own
	// words, and a refused TokenRequest is a refusal of this lease.
	var assertionErr error
	assertion := func(ctx context.Context) (string, error) {
		token, _, err := a.Tokens.ServiceAccountToken(ctx, req.Namespace, req.ServiceAccount, []string{EntraAudience}, webIdentityTokenTTL, nil)
		if err != nil {
			assertionErr = tokenRequestError(BackendAzureToken, req, err)
			return "", assertionErr
		}
		return token, nil
	}
	cred, err := azidentity.NewClientAssertionCredential(id.TenantID, id.ClientID, assertion, a.options())
	if err != nil {
		return nil, &RefusedError{Backend: BackendAzureToken, Reason: "InvalidAzureIdentity", Message: err.Error()}
	}

	now := nowFrom(a.Clock)
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{spec.Scope}})
	switch {
	case assertionErr != nil:
		return nil, assertionErr
	case err != nil:
		return nil, entraError(id.ClientID, spec.Scope, err)
	}
	return &Lease{
		Data:       map[string][]byte{TokenKey: []byte(tok.Token)},
		IssuedAt:   now,
		ExpiresAt:  tok.ExpiresOn,
		Attributes: map[string]string{"scope": spec.Scope, "clientID": id.ClientID, "tenantID": id.TenantID},
	}, nil
}

// options configures the credential. It does not retry, for the reason
// AWSSTS does not: the reconciler does, and records why.
func (a *AzureToken) options() *azidentity.ClientAssertionCredentialOptions {
	opts := &azidentity.ClientAssertionCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud: cloud.AzurePublic,
			Retry: policy.RetryOptions{MaxRetries: -1},
		},
		DisableInstanceDiscovery: true,
	}
	if a.AuthorityHost != "" {
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: a.AuthorityHost}
	}
	if a.HTTPClient != nil {
		opts.Transport = a.HTTPClient
	}
	return opts
}

// oauthError is the body of an OAuth 2.0 error response, as Entra ID sends
// it.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Codes       []int  `json:"error_codes"`
}

// entraRetryable are the OAuth errors that asking again may cure.
var entraRetryable = map[string]bool{"temporarily_unavailable": true, "server_error": true, "slow_down": true}

// entraError sorts a failed token request into a refusal or a transient
// error, in a few words: azidentity's own message spans the whole response.
// Entra ID's error bodies carry neither the assertion nor a token.
func entraError(clientID, scope string, err error) error {
	var authErr *azidentity.AuthenticationFailedError
	if !errors.As(err, &authErr) || authErr.RawResponse == nil {
		return &flatError{msg: fmt.Sprintf("requesting a token of application %s for %s: %s", clientID, scope, strings.Join(strings.Fields(err.Error()), " ")), err: err}
	}
	res := authErr.RawResponse
	var body oauthError
	if payload, perr := azruntime.Payload(res); perr == nil {
		_ = json.Unmarshal(payload, &body)
	}
	// Entra ID follows the description's first line with trace and
	// correlation IDs and a timestamp.
	desc, _, _ := strings.Cut(body.Description, "\n")
	desc = strings.TrimSpace(desc)
	msg := fmt.Sprintf("requesting a token of application %s for %s: HTTP %d", clientID, scope, res.StatusCode)
	if body.Error != "" {
		msg += ": " + body.Error
	}
	if desc != "" {
		msg += ": " + desc
	}
	refused := body.Error != "" && !entraRetryable[body.Error] &&
		(res.StatusCode == http.StatusBadRequest || res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden)
	if refused {
		return &RefusedError{Backend: BackendAzureToken, Reason: camelCase(body.Error), Message: msg}
	}
	return &flatError{msg: msg, err: err}
}

// flatError is an error told in one line, as a condition or an event tells
// it, that still wraps the error it tells.
type flatError struct {
	msg string
	err error
}

func (e *flatError) Error() string { return e.msg }
func (e *flatError) Unwrap() error { return e.err }

// camelCase turns an OAuth error code (invalid_client) into a reason
// (InvalidClient).
func camelCase(code string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(code, "_") {
		if part == "" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}
