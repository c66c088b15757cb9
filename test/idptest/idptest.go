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

// Package idptest is a person's identity provider on loopback for tests:
// OpenID discovery and its keys over TLS, and tokens signed with its own
// key by go-jose, as another product would issue them.
package idptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// IdP is an identity provider on 127.0.0.1 over TLS; URL is its issuer.
type IdP struct {
	*httptest.Server
	key *ecdsa.PrivateKey
}

// New starts an identity provider, stopped when the test ends.
func New(t testing.TB) *IdP {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &IdP{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": p.URL, "jwks_uri": p.URL + "/keys",
			"authorization_endpoint": p.URL + "/authorize", "id_token_signing_alg_values_supported": []string{"ES256"}})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	p.Server = httptest.NewTLSServer(mux)
	t.Cleanup(p.Close)
	return p
}

// Token is an access token of p for sub and aud until exp, with
// ledger.read and ledger.write in scp, a session and a jti named after
// sub, groups finance-clerks and staff, and roles approver; extra adds or
// replaces claims.
func (p *IdP) Token(t testing.TB, sub, aud string, exp time.Time, extra map[string]any) string {
	t.Helper()
	claims := map[string]any{"iss": p.URL, "sub": sub, "aud": aud, "exp": exp.Unix(), "iat": exp.Add(-time.Hour).Unix(),
		"scp": []string{"ledger.read", "ledger.write"}, "sid": "s-" + sub, "jti": "jti-" + sub,
		"groups": []string{"finance-clerks", "staff"}, "roles": "approver"}
	for k, v := range extra {
		claims[k] = v
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: p.key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// CAFile writes p's certificate as a PEM file in dir and returns its path,
// for a client that must trust p.
func (p *IdP) CAFile(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "idp-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
