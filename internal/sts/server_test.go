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
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestHandler drives the STS over HTTP on loopback as the gateway would:
// discovery, keys, an exchange, and refusals as OAuth errors.
func TestHandler(t *testing.T) {
	w := newWorld(t)
	srv := httptest.NewServer(Handler(w.svc))
	defer srv.Close()
	issuer := w.issuers["acme"].URL

	get := func(path string, into any) *http.Response {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if into != nil && resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
				t.Fatal(err)
			}
		}
		return resp
	}
	for _, path := range []string{"/tenants/acme/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server/tenants/acme"} {
		var md Metadata
		if resp := get(path, &md); resp.StatusCode != http.StatusOK || md.Issuer != issuer || md.TokenEndpoint != issuer+"/token" ||
			md.GrantTypesSupported[0] != GrantTypeTokenExchange {
			t.Errorf("GET %s: %d %+v", path, resp.StatusCode, md)
		}
	}
	var jwks struct{ Keys []map[string]any }
	if resp := get("/tenants/acme/jwks", &jwks); resp.StatusCode != http.StatusOK || len(jwks.Keys) != 1 || jwks.Keys[0]["d"] != nil {
		t.Errorf("GET jwks: %d %v (one public key, no private part)", resp.StatusCode, jwks)
	}
	if resp := get("/tenants/initech/jwks", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("jwks of a tenant with no issuer: %d, want 404", resp.StatusCode)
	}

	post := func(form url.Values) (int, map[string]any, http.Header) {
		t.Helper()
		resp, err := http.PostForm(srv.URL+"/tenants/acme/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("%d %s: not JSON: %v", resp.StatusCode, body, err)
		}
		return resp.StatusCode, out, resp.Header
	}
	form := url.Values{
		"grant_type": {GrantTypeTokenExchange}, "subject_token": {w.person(t, "alice", "ledger.read")},
		"subject_token_type": {TokenTypeAccessToken}, "actor_token": {"pod-invoice"}, "actor_token_type": {TokenTypeJWT},
		"resource": {ledger},
	}
	status, out, h := post(form)
	if status != http.StatusOK || out["issued_token_type"] != TokenTypeAccessToken || out["token_type"] != "Bearer" ||
		out["scope"] != "ledger.read" || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("exchange: %d %v %v", status, out, h)
	}
	if _, err := w.issuers["acme"].Verify(out["access_token"].(string), ledger, w.now); err != nil {
		t.Errorf("the issued token: %v", err)
	}

	form.Set("actor_token", "pod-crm")
	if status, out, _ := post(form); status != http.StatusBadRequest || out["error"] != CodeInvalidTarget {
		t.Errorf("a target outside the actor's Toolsets: %d %v", status, out)
	}
	form.Set("grant_type", "password")
	if status, out, _ := post(form); status != http.StatusBadRequest || out["error"] != CodeUnsupportedGrantType {
		t.Errorf("another grant type: %d %v", status, out)
	}
	big := url.Values{"grant_type": {GrantTypeTokenExchange}, "subject_token": {strings.Repeat("x", MaxRequestBytes+1)}}
	if status, out, _ := post(big); status != http.StatusRequestEntityTooLarge || out["error"] != CodeInvalidRequest {
		t.Errorf("a body over 1 MiB: %d %v, want 413", status, out)
	}
	resp := get("/tenants/acme/token", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
		t.Errorf("GET /token: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}
