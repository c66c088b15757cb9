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

package sts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The URNs of RFC 8693.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken       = "urn:ietf:params:oauth:token-type:id_token"
)

// MaxRequestBytes is the largest exchange request body; a larger one is
// refused with 413 before it is parsed.
const MaxRequestBytes = 1 << 20

// ExchangeRequest is an RFC 8693 §2.1 token exchange request.
type ExchangeRequest struct {
	SubjectToken     string
	SubjectTokenType string
	ActorToken       string
	ActorTokenType   string
	// Resources (RFC 8707) and Audiences name where the token will be
	// used; a Custos token has exactly one audience, so one of them in all.
	Resources []string
	Audiences []string
	Scope     string
	// RequestedTokenType is TokenTypeAccessToken unless asked otherwise.
	RequestedTokenType string
}

// Target is the one place the token is for: the resource or the audience.
func (r *ExchangeRequest) Target() string {
	if len(r.Resources) == 1 {
		return r.Resources[0]
	}
	return r.Audiences[0]
}

// Error is an OAuth error response (RFC 6749 §5.2, RFC 8693 §2.2.2).
type Error struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

// The error codes the STS answers with.
const (
	CodeInvalidRequest       = "invalid_request"
	CodeInvalidClient        = "invalid_client"
	CodeInvalidGrant         = "invalid_grant"
	CodeUnauthorizedClient   = "unauthorized_client"
	CodeUnsupportedGrantType = "unsupported_grant_type"
	CodeInvalidScope         = "invalid_scope"
	CodeInvalidTarget        = "invalid_target"
)

func oauthErr(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Description: fmt.Sprintf(format, args...)}
}

// InvalidRequest and the others are the errors of the exchange, each with
// its HTTP status.
func InvalidRequest(format string, args ...any) *Error {
	return oauthErr(http.StatusBadRequest, CodeInvalidRequest, format, args...)
}

// WriteError writes e as the JSON body RFC 6749 §5.2 describes, never
// cached.
func WriteError(w http.ResponseWriter, e *Error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(e)
}

// ParseExchangeRequest reads an RFC 8693 request from r: a POST of
// application/x-www-form-urlencoded, at most MaxRequestBytes, with the
// token-exchange grant type. Every parameter but resource and audience may
// appear once. It refuses what the STS does not do: an actor token type
// without an actor token or the other way round, token types other than
// JWTs and access tokens, and no target or more than one.
func ParseExchangeRequest(w http.ResponseWriter, r *http.Request) (*ExchangeRequest, *Error) {
	if r.Method != http.MethodPost {
		return nil, oauthErr(http.StatusMethodNotAllowed, CodeInvalidRequest, "the token endpoint takes POST, not %s", r.Method)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, InvalidRequest("the body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, oauthErr(http.StatusRequestEntityTooLarge, CodeInvalidRequest, "the body is over %d bytes", MaxRequestBytes)
		}
		return nil, InvalidRequest("the body is not a form: %v", err)
	}
	// The actor token authenticates the agent: the STS has no clients and
	// no secrets (token_endpoint_auth_methods_supported: none), and a
	// client that authenticates anyway is told so, not silently ignored.
	if scheme, _, found := strings.Cut(r.Header.Get("Authorization"), " "); found || scheme != "" {
		w.Header().Set("WWW-Authenticate", scheme+` realm="custos-sts"`)
		return nil, oauthErr(http.StatusUnauthorized, CodeInvalidClient, "the token endpoint takes no client authentication (%s given): the actor token says which agent asks", scheme)
	}
	for _, p := range []string{"client_secret", "client_assertion", "client_assertion_type"} {
		if r.PostForm.Get(p) != "" {
			return nil, oauthErr(http.StatusUnauthorized, CodeInvalidClient, "the token endpoint takes no client authentication (%s given): the actor token says which agent asks", p)
		}
	}
	return ParseExchangeForm(r.PostForm)
}

// ParseExchangeForm checks the parameters of an exchange request.
func ParseExchangeForm(given url.Values) (*ExchangeRequest, *Error) {
	// A parameter without a value is as if omitted (RFC 6749 §3.2).
	form := url.Values{}
	for name, values := range given {
		for _, v := range values {
			if v != "" {
				form[name] = append(form[name], v)
			}
		}
	}
	for name, values := range form {
		if len(values) > 1 && name != "resource" && name != "audience" {
			return nil, InvalidRequest("parameter %s is given %d times; it may be given once", name, len(values))
		}
	}
	if gt := form.Get("grant_type"); gt != GrantTypeTokenExchange {
		if gt == "" {
			return nil, InvalidRequest("grant_type is missing; it must be %s", GrantTypeTokenExchange)
		}
		return nil, oauthErr(http.StatusBadRequest, CodeUnsupportedGrantType, "grant_type %q: this endpoint only exchanges tokens (%s)", gt, GrantTypeTokenExchange)
	}
	req := &ExchangeRequest{
		SubjectToken:       form.Get("subject_token"),
		SubjectTokenType:   form.Get("subject_token_type"),
		ActorToken:         form.Get("actor_token"),
		ActorTokenType:     form.Get("actor_token_type"),
		Resources:          form["resource"],
		Audiences:          form["audience"],
		Scope:              form.Get("scope"),
		RequestedTokenType: form.Get("requested_token_type"),
	}
	jwtTypes := []string{TokenTypeAccessToken, TokenTypeJWT, TokenTypeIDToken}
	switch {
	case req.SubjectToken == "":
		return nil, InvalidRequest("subject_token is missing")
	case req.SubjectTokenType == "":
		return nil, InvalidRequest("subject_token_type is missing")
	case !slices.Contains(jwtTypes, req.SubjectTokenType):
		return nil, InvalidRequest("subject_token_type %q is not one the STS takes (%s, %s or %s)", req.SubjectTokenType, TokenTypeAccessToken, TokenTypeJWT, TokenTypeIDToken)
	case req.ActorToken == "" && req.ActorTokenType != "":
		return nil, InvalidRequest("actor_token_type is given without actor_token")
	case req.ActorToken != "" && req.ActorTokenType == "":
		return nil, InvalidRequest("actor_token is given without actor_token_type (RFC 8693 §2.1)")
	case req.ActorToken != "" && req.ActorTokenType != TokenTypeJWT:
		return nil, InvalidRequest("actor_token_type %q: the actor token is the agent pod's ServiceAccount token (%s)", req.ActorTokenType, TokenTypeJWT)
	}
	if req.RequestedTokenType == "" {
		req.RequestedTokenType = TokenTypeAccessToken
	}
	if req.RequestedTokenType != TokenTypeAccessToken && req.RequestedTokenType != TokenTypeJWT {
		return nil, InvalidRequest("requested_token_type %q: the STS issues access tokens (%s) only", req.RequestedTokenType, TokenTypeAccessToken)
	}
	for _, res := range req.Resources {
		if u, err := url.Parse(res); err != nil || !u.IsAbs() || u.Fragment != "" {
			return nil, oauthErr(http.StatusBadRequest, CodeInvalidTarget, "resource %q is not an absolute URI without a fragment (RFC 8707 §2)", res)
		}
	}
	if n := len(req.Resources) + len(req.Audiences); n != 1 {
		if n == 0 {
			return nil, oauthErr(http.StatusBadRequest, CodeInvalidTarget, "no resource or audience: a Custos token is for one target")
		}
		return nil, oauthErr(http.StatusBadRequest, CodeInvalidTarget, "%d resources and audiences: a Custos token has exactly one audience; exchange once per target", n)
	}
	return req, nil
}

// Metadata is the STS's RFC 8414 authorization server metadata, per
// tenant issuer.
type Metadata struct {
	Issuer        string `json:"issuer"`
	TokenEndpoint string `json:"token_endpoint"`
	JWKSURI       string `json:"jwks_uri"`
	// ResponseTypesSupported is empty: there is no authorization
	// endpoint, but RFC 8414 §2 requires the member.
	ResponseTypesSupported            []string `json:"response_types_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	// The actor token authenticates the agent; the STS has no client
	// secrets.
}

// MetadataFor is the metadata of issuer, whose endpoints are below it.
func MetadataFor(issuer string) Metadata {
	return Metadata{
		Issuer:                            issuer,
		TokenEndpoint:                     issuer + "/token",
		JWKSURI:                           issuer + "/jwks",
		ResponseTypesSupported:            []string{},
		GrantTypesSupported:               []string{GrantTypeTokenExchange},
		TokenEndpointAuthMethodsSupported: []string{"none"},
	}
}

// TokenResponse is the answer to a successful exchange (RFC 8693 §2.2.1).
type TokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	// TokenType is "Bearer": the gateway presents the token as one.
	TokenType string `json:"token_type"`
	// ExpiresIn is in seconds.
	ExpiresIn int64  `json:"expires_in"`
	Scope     string `json:"scope,omitempty"`
}

// Exchanger is the interface custos-gateway calls, in process in tests and
// over HTTP (POST <issuer>/token) in a cluster: exchange a person's token,
// with the agent's pod token as the actor, for one upstream.
type Exchanger interface {
	Exchange(ctx context.Context, tenant string, req *ExchangeRequest) (*TokenResponse, *Error)
}
