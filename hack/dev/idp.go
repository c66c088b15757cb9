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

package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// make dev's identity provider: mockoidc on 127.0.0.1 over TLS, with the
// sample tenant's people. Nobody types a password: the login_hint of the
// authorization request says who logs in, and the provider lets them in
// with authorization code + PKCE (S256) only, redirecting only to a
// loopback callback (RFC 8252). Its ID token carries the person's email,
// groups and the API scopes they were granted; mockoidc's access token
// carries none of them, so the ID token is what custos-sts exchanges.

// idpClientID is the client at the provider and so the audience of its
// tokens: the one the sample DataBoundary trusts the provider for.
const idpClientID = "custos-sts"

// idpFileName holds what the login command needs: the issuer, the client
// and the CA.
const idpFileName = "idp.json"

// person is one of the provider's people.
type person struct {
	Subject string
	Email   string
	Groups  []string
	// Scopes are the API scopes the provider grants them when they ask.
	Scopes []string
}

// people are make dev's sample people: alice is a finance clerk, whom the
// sample agent may act for (its spec.delegation names the group); bob is
// in sales, whom it may not.
var people = map[string]*person{
	"alice": {Subject: "alice", Email: "alice@acme.example", Groups: []string{"finance-clerks"}, Scopes: []string{"ledger-readonly.read", "ledger-payments.write"}},
	"bob":   {Subject: "bob", Email: "bob@acme.example", Groups: []string{"sales"}, Scopes: []string{"ledger-readonly.read"}},
}

// peopleNames lists the people, in order.
func peopleNames() []string {
	names := make([]string, 0, len(people))
	for n := range people {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

var _ mockoidc.User = (*person)(nil)

// ID is the person's sub.
func (p *person) ID() string { return p.Subject }

// granted are the scopes of requested the person has, OpenID's and the
// API's.
func (p *person) granted(requested []string) (email, groups bool, api []string) {
	for _, s := range requested {
		switch {
		case s == "email":
			email = true
		case s == "groups":
			groups = true
		case slices.Contains(p.Scopes, s) && !slices.Contains(api, s):
			api = append(api, s)
		}
	}
	return email, groups, api
}

type personClaims struct {
	*mockoidc.IDTokenClaims
	Email             string   `json:"email,omitempty"`
	EmailVerified     bool     `json:"email_verified,omitempty"`
	PreferredUsername string   `json:"preferred_username"`
	Groups            []string `json:"groups,omitempty"`
	Scope             string   `json:"scope,omitempty"`
}

// Claims are the person's ID token: what the scopes asked for.
func (p *person) Claims(scopes []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	c := &personClaims{IDTokenClaims: base, PreferredUsername: p.Subject}
	email, groups, api := p.granted(scopes)
	if email {
		c.Email, c.EmailVerified = p.Email, true
	}
	if groups {
		c.Groups = p.Groups
	}
	c.Scope = strings.Join(api, " ")
	return c, nil
}

// Userinfo is the person as the userinfo endpoint tells them.
func (p *person) Userinfo(scopes []string) ([]byte, error) {
	info := map[string]any{"sub": p.Subject, "preferred_username": p.Subject}
	email, groups, _ := p.granted(scopes)
	if email {
		info["email"] = p.Email
	}
	if groups {
		info["groups"] = p.Groups
	}
	return json.Marshal(info)
}

// idpClient is the provider as a client sees it (idp.json).
type idpClient struct {
	Issuer       string `json:"issuer"`
	ClientID     string `json:"clientID"`
	ClientSecret string `json:"clientSecret"`
	CAFile       string `json:"caFile"`
}

// devIdP is the running provider.
type devIdP struct {
	m *mockoidc.MockOIDC
	// Issuer is its iss, https://127.0.0.1:<port>/oidc.
	Issuer string
	// File is idp.json.
	File string
}

// Stop stops the provider and removes idp.json (its client secret dies
// with it).
func (p *devIdP) Stop() {
	_ = p.m.Shutdown()
	_ = os.Remove(p.File)
}

// startIdP starts the identity provider on 127.0.0.1 with certs' serving
// certificate and writes devDir/idp.json for the login command.
func startIdP(devDir string, certs *loopbackTLS) (*devIdP, error) {
	// A key made for the run: mockoidc's default key is public.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	m, err := mockoidc.NewServer(key)
	if err != nil {
		return nil, err
	}
	m.ClientID = idpClientID
	m.AccessTTL = time.Hour
	m.CodeChallengeMethodsSupported = []string{mockoidc.CodeChallengeMethodS256}
	// The API scopes the people may be granted are scopes the provider
	// supports (and advertises).
	for _, p := range people {
		for _, s := range p.Scopes {
			if !slices.Contains(mockoidc.ScopesSupported, s) {
				mockoidc.ScopesSupported = append(mockoidc.ScopesSupported, s)
			}
		}
	}
	// mockoidc's session store is a plain map, and the person logging in
	// is handed over through a queue: one request at a time.
	var mu sync.Mutex
	if err := m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			next.ServeHTTP(w, r)
		})
	}); err != nil {
		return nil, err
	}
	if err := m.AddMiddleware(authorizePolicy(m)); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{certs.Cert}}
	// mockoidc serves the listener it is given as it is: a TLS listener
	// makes it https (and the config makes it say so in its URLs).
	if err := m.Start(tls.NewListener(ln, cfg), cfg); err != nil {
		ln.Close()
		return nil, err
	}
	p := &devIdP{m: m, Issuer: m.Issuer(), File: filepath.Join(devDir, idpFileName)}
	caFile, err := filepath.Abs(certs.CAFile)
	if err == nil {
		var data []byte
		data, err = json.MarshalIndent(idpClient{Issuer: p.Issuer, ClientID: m.ClientID, ClientSecret: m.ClientSecret, CAFile: caFile}, "", "  ")
		if err == nil {
			err = os.WriteFile(p.File, append(data, '\n'), 0o600)
		}
	}
	if err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// authorizePolicy is what the provider asks of an authorization request
// beyond mockoidc: PKCE with S256, a loopback redirect, and a login_hint
// naming one of the people, who is then the one logged in.
func authorizePolicy(m *mockoidc.MockOIDC) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != mockoidc.AuthorizationEndpoint {
				next.ServeHTTP(w, r)
				return
			}
			if err := r.ParseForm(); err != nil {
				oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
				return
			}
			if r.Form.Get("code_challenge") == "" || r.Form.Get("code_challenge_method") != mockoidc.CodeChallengeMethodS256 {
				oauthError(w, http.StatusBadRequest, "invalid_request", "PKCE is required: code_challenge with code_challenge_method S256")
				return
			}
			if u, err := url.Parse(r.Form.Get("redirect_uri")); err != nil || u.Hostname() != "127.0.0.1" || (u.Scheme != "http" && u.Scheme != "https") {
				oauthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri must be a loopback callback, http://127.0.0.1:<port>/...")
				return
			}
			who, ok := people[r.Form.Get("login_hint")]
			if !ok {
				oauthError(w, http.StatusBadRequest, "invalid_request",
					fmt.Sprintf("login_hint %q: who logs in, one of %s", r.Form.Get("login_hint"), strings.Join(peopleNames(), ", ")))
				return
			}
			m.QueueUser(who)
			next.ServeHTTP(w, r)
			// A request mockoidc refused left who queued: never hand them
			// to the next one.
			m.UserQueue.Lock()
			m.UserQueue.Queue = nil
			m.UserQueue.Unlock()
		})
	}
}

func oauthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}
