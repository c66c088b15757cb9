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
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// exchangeForm is a valid request: alice's token, the invoice agent's pod
// token, for the ledger.
func exchangeForm() url.Values {
	return url.Values{
		"grant_type":         {GrantTypeTokenExchange},
		"subject_token":      {"alice-token"},
		"subject_token_type": {TokenTypeAccessToken},
		"actor_token":        {"pod-token"},
		"actor_token_type":   {TokenTypeJWT},
		"resource":           {"https://ledger.acme.example/mcp"},
		"scope":              {"ledger.read"},
	}
}

func TestParseExchangeForm(t *testing.T) {
	cases := []struct {
		name   string
		change func(url.Values)
		code   string // "" when admitted
		says   string
	}{
		{"a valid request", func(url.Values) {}, "", ""},
		{"an audience instead of a resource", func(f url.Values) { f.Del("resource"); f.Set("audience", "ledger") }, "", ""},
		{"no actor: the person's own exchange", func(f url.Values) { f.Del("actor_token"); f.Del("actor_token_type") }, "", ""},
		{"no grant_type", func(f url.Values) { f.Del("grant_type") }, CodeInvalidRequest, "grant_type is missing"},
		{"another grant type", func(f url.Values) { f.Set("grant_type", "client_credentials") }, CodeUnsupportedGrantType, "client_credentials"},
		{"no subject token", func(f url.Values) { f.Del("subject_token") }, CodeInvalidRequest, "subject_token is missing"},
		{"no subject token type", func(f url.Values) { f.Del("subject_token_type") }, CodeInvalidRequest, "subject_token_type is missing"},
		{"a SAML subject token", func(f url.Values) { f.Set("subject_token_type", "urn:ietf:params:oauth:token-type:saml2") }, CodeInvalidRequest, "saml2"},
		{"an actor token without its type", func(f url.Values) { f.Del("actor_token_type") }, CodeInvalidRequest, "without actor_token_type"},
		{"an actor token type without the token", func(f url.Values) { f.Del("actor_token") }, CodeInvalidRequest, "without actor_token"},
		{"an actor token that is not a JWT", func(f url.Values) { f.Set("actor_token_type", TokenTypeAccessToken) }, CodeInvalidRequest, "ServiceAccount token"},
		{"a refresh token asked for", func(f url.Values) { f.Set("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token") }, CodeInvalidRequest, "access tokens"},
		{"a parameter twice", func(f url.Values) { f.Add("scope", "ledger.write") }, CodeInvalidRequest, "scope is given 2 times"},
		{"no target", func(f url.Values) { f.Del("resource") }, CodeInvalidTarget, "no resource or audience"},
		{"two targets", func(f url.Values) { f.Add("audience", "crm") }, CodeInvalidTarget, "exactly one audience"},
		{"a relative resource", func(f url.Values) { f.Set("resource", "/mcp") }, CodeInvalidTarget, "absolute URI"},
		{"a resource with a fragment", func(f url.Values) { f.Set("resource", "https://ledger.acme.example/mcp#x") }, CodeInvalidTarget, "fragment"},
		// RFC 6749 §3.2: a parameter without a value is as if omitted, as
		// clients that send every field (zitadel's) do.
		{"empty optional parameters", func(f url.Values) {
			f.Set("audience", "")
			f.Set("scope", "")
			f.Set("requested_token_type", "")
		}, "", ""},
		{"an empty resource beside an audience", func(f url.Values) { f.Set("resource", ""); f.Set("audience", "ledger") }, "", ""},
		{"an empty subject token", func(f url.Values) { f.Set("subject_token", "") }, CodeInvalidRequest, "subject_token is missing"},
		{"a parameter twice, once empty", func(f url.Values) { f.Add("scope", "") }, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := exchangeForm()
			tc.change(f)
			req, err := ParseExchangeForm(f)
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.code == "":
				if req.RequestedTokenType != TokenTypeAccessToken || req.Target() == "" {
					t.Errorf("request %+v: want an access token for one target", req)
				}
			case err == nil:
				t.Fatalf("admitted %+v, want %s", req, tc.code)
			case err.Code != tc.code || !strings.Contains(err.Description, tc.says) || err.Status != http.StatusBadRequest:
				t.Errorf("refused with %d %s %q, want 400 %s saying %q", err.Status, err.Code, err.Description, tc.code, tc.says)
			}
		})
	}
}

func TestParseExchangeRequestHTTP(t *testing.T) {
	post := func(body, contentType string) (*ExchangeRequest, *Error) {
		r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		return ParseExchangeRequest(httptest.NewRecorder(), r)
	}
	if _, err := post(exchangeForm().Encode(), "application/x-www-form-urlencoded; charset=utf-8"); err != nil {
		t.Errorf("a valid form: %v", err)
	}
	if _, err := post(`{"grant_type":"x"}`, "application/json"); err == nil || err.Code != CodeInvalidRequest {
		t.Errorf("a JSON body: %v, want invalid_request", err)
	}
	big := exchangeForm()
	big.Set("subject_token", strings.Repeat("a", MaxRequestBytes))
	if _, err := post(big.Encode(), "application/x-www-form-urlencoded"); err == nil || err.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over 1 MiB: %v, want 413", err)
	}
	// The STS has no clients: credentials are refused, not ignored (RFC
	// 6749 §5.2, invalid_client, 401 with the scheme the client used).
	r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(exchangeForm().Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth("gateway", "s3cret")
	w := httptest.NewRecorder()
	if _, err := ParseExchangeRequest(w, r); err == nil || err.Status != http.StatusUnauthorized || err.Code != CodeInvalidClient ||
		!strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("Basic client credentials: %v %v, want 401 invalid_client", err, w.Header())
	}
	withSecret := exchangeForm()
	withSecret.Set("client_id", "gateway")
	withSecret.Set("client_secret", "s3cret")
	if _, err := post(withSecret.Encode(), "application/x-www-form-urlencoded"); err == nil || err.Code != CodeInvalidClient ||
		!strings.Contains(err.Description, "client_secret given") {
		t.Errorf("a client_secret: %v, want invalid_client", err)
	}
	withID := exchangeForm()
	withID.Set("client_id", "gateway")
	if _, err := post(withID.Encode(), "application/x-www-form-urlencoded"); err != nil {
		t.Errorf("a public client's client_id alone: %v, want admitted", err)
	}
	r = httptest.NewRequest(http.MethodGet, "/token?"+exchangeForm().Encode(), nil)
	if _, err := ParseExchangeRequest(httptest.NewRecorder(), r); err == nil || err.Status != http.StatusMethodNotAllowed {
		t.Errorf("a GET: %v, want 405", err)
	}
}

func TestWriteError(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, &Error{Status: http.StatusBadRequest, Code: CodeInvalidScope, Description: "ledger.write is not the person's"})
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if w.Code != 400 || body["error"] != "invalid_scope" || body["error_description"] == "" ||
		w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("error response %d %v %v", w.Code, w.Header(), body)
	}
}

// FuzzParseExchangeForm: any body is admitted or refused with an OAuth
// error, never a panic, and what is admitted has one target.
func FuzzParseExchangeForm(f *testing.F) {
	f.Add(exchangeForm().Encode())
	f.Add("grant_type=" + url.QueryEscape(GrantTypeTokenExchange) + "&subject_token=a&subject_token_type=x&resource=%zz")
	f.Add("resource=a&resource=b&audience=c")
	f.Fuzz(func(t *testing.T, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		req, oerr := ParseExchangeForm(form)
		if oerr != nil {
			if oerr.Code == "" || oerr.Status < 400 {
				t.Fatalf("refusal without a code or status: %+v", oerr)
			}
			return
		}
		if len(req.Resources)+len(req.Audiences) != 1 || req.SubjectToken == "" {
			t.Fatalf("admitted %+v", req)
		}
	})
}

// FuzzVerify: any string given as a token is refused with a reason, never
// a panic.
var timeZero = time.Unix(1_800_000_000, 0)

func FuzzVerify(f *testing.F) {
	is := &Issuer{URL: "https://sts/tenants/acme", Tenant: "acme"}
	ks, err := NewKeySet(timeZero)
	if err != nil {
		f.Fatal(err)
	}
	is.Keys = ks
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJFUzI1NiJ9.e30.AAAA")
	f.Fuzz(func(t *testing.T, token string) {
		if _, err := is.Verify(token, "aud", timeZero); err == nil {
			t.Fatalf("a fuzzed token verified: %q", token)
		}
	})
}
