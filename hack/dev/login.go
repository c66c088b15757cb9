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
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The login command: `custos-dev login alice` logs a person in at make
// dev's identity provider as a command-line OAuth client does, without a
// browser (it plays the browser's part): authorization code with PKCE
// (S256) and a callback on loopback, then the code and the verifier at the
// token endpoint. It prints the ID token, the one custos-sts exchanges.

const defaultLoginScope = "openid email groups ledger-readonly.read ledger-payments.write"

func loginMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", ".dev", "make dev's state directory, which holds "+idpFileName+".")
	scope := fs.String("scope", defaultLoginScope, "The scopes to ask for.")
	which := fs.String("token", "id", "The token to print: id (the ID token: the person's groups and granted scopes, what custos-sts exchanges) or access.")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s login [flags] PERSON\n\nLogs PERSON (%s) in at make dev's identity provider with authorization code + PKCE and prints their token.\n\n",
			filepath.Base(os.Args[0]), strings.Join(peopleNames(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || (*which != "id" && *which != "access") {
		fs.Usage()
		return 2
	}
	c, err := readIdPClient(*stateDir)
	if err != nil {
		fmt.Fprintf(stderr, "custos-dev login: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := pkceLogin(ctx, c, loginRequest{Person: fs.Arg(0), Scope: *scope})
	if err != nil {
		fmt.Fprintf(stderr, "custos-dev login: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "custos-dev login: %s logged in at %s (authorization code + PKCE S256); their %s token:\n",
		fs.Arg(0), c.Issuer, *which)
	if *which == "access" {
		fmt.Fprintln(stdout, tok.AccessToken)
	} else {
		fmt.Fprintln(stdout, tok.IDToken)
	}
	return 0
}

// decodeMain is `custos-dev decode`: it prints the claims of the JWT on
// standard input, or of the access_token of the token response there, as
// indented JSON. It verifies nothing.
func decodeMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) != 0 {
		fmt.Fprintf(stderr, "Usage: %s decode < TOKEN (a JWT, or a token response holding access_token)\n", filepath.Base(os.Args[0]))
		return 2
	}
	in, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
	if err != nil {
		fmt.Fprintf(stderr, "custos-dev decode: %v\n", err)
		return 1
	}
	token := strings.TrimSpace(string(in))
	var resp struct {
		AccessToken string `json:"access_token"`
	}
	if strings.HasPrefix(token, "{") {
		if err := json.Unmarshal([]byte(token), &resp); err != nil || resp.AccessToken == "" {
			fmt.Fprintf(stderr, "custos-dev decode: a JSON object without access_token: %s\n", token)
			return 1
		}
		token = resp.AccessToken
	}
	var claims json.RawMessage
	if err := decodeJWT(token, &claims); err != nil {
		fmt.Fprintf(stderr, "custos-dev decode: %v\n", err)
		return 1
	}
	out, err := json.MarshalIndent(claims, "", "  ")
	if err != nil {
		fmt.Fprintf(stderr, "custos-dev decode: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, string(out))
	return 0
}

// readIdPClient reads the identity provider's idp.json in stateDir.
func readIdPClient(stateDir string) (idpClient, error) {
	var c idpClient
	data, err := os.ReadFile(filepath.Join(stateDir, idpFileName))
	if errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("%s is not there: is make dev running (and is this the repository's root)?", filepath.Join(stateDir, idpFileName))
	}
	if err == nil {
		err = json.Unmarshal(data, &c)
	}
	return c, err
}

// loginRequest is one login.
type loginRequest struct {
	// Person logs in (the login_hint).
	Person string
	Scope  string
	// Verifier, when not empty, is sent to the token endpoint instead of
	// the code verifier whose challenge went with the authorization
	// request: a code stolen in the redirect, redeemed without it.
	Verifier string
}

// loginTokens are the token endpoint's answer.
type loginTokens struct {
	AccessToken string `json:"access_token"`
	IDToken     string `json:"id_token"`
	TokenType   string `json:"token_type"`
}

// pkceLogin logs req.Person in at c's provider with authorization code and
// PKCE: a code verifier and its S256 challenge, the authorization request
// followed to a callback on loopback, the code redeemed with the verifier.
func pkceLogin(ctx context.Context, c idpClient, req loginRequest) (*loginTokens, error) {
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no certificate", c.CAFile)
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}, Proxy: nil}
	defer transport.CloseIdleConnections()

	var disc struct {
		Authorization string   `json:"authorization_endpoint"`
		Token         string   `json:"token_endpoint"`
		Methods       []string `json:"code_challenge_methods_supported"`
	}
	if err := getJSON(ctx, &http.Client{Transport: transport}, c.Issuer+"/.well-known/openid-configuration", &disc); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if !slices.Contains(disc.Methods, "S256") {
		return nil, fmt.Errorf("the provider does not take PKCE with S256 (it takes %v)", disc.Methods)
	}

	// The callback, on loopback: the provider redirects the "browser"
	// (this client) there with the code.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	redirect := "http://" + ln.Addr().String() + "/callback"
	got := make(chan url.Values, 1)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		select {
		case got <- r.URL.Query():
		default:
		}
		fmt.Fprintln(w, "Logged in; back to the terminal.")
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	verifier, state, nonce := randomString(32), randomString(16), randomString(16)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {c.ClientID}, "redirect_uri": {redirect}, "scope": {req.Scope},
		"state": {state}, "nonce": {nonce}, "login_hint": {req.Person},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	browser := &http.Client{Transport: transport, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if r.URL.String() != redirect && !strings.HasPrefix(r.URL.String(), redirect+"?") {
			return fmt.Errorf("the provider redirected to %s, not to the callback", r.URL.Redacted())
		}
		return nil
	}}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, disc.Authorization+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := browser.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("authorization request: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.Request.URL.Host != ln.Addr().String() {
		return nil, fmt.Errorf("authorization request: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var cb url.Values
	select {
	case cb = <-got:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if e := cb.Get("error"); e != "" {
		return nil, fmt.Errorf("authorization refused: %s: %s", e, cb.Get("error_description"))
	}
	if cb.Get("state") != state {
		return nil, errors.New("the callback's state is not the one sent")
	}
	code := cb.Get("code")
	if code == "" {
		return nil, errors.New("the callback carries no code")
	}

	sent := verifier
	if req.Verifier != "" {
		sent = req.Verifier
	}
	form := url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect},
		"client_id": {c.ClientID}, "client_secret": {c.ClientSecret}, "code_verifier": {sent},
	}
	treq, err := http.NewRequestWithContext(ctx, http.MethodPost, disc.Token, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	treq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = (&http.Client{Transport: transport}).Do(treq)
	if err != nil {
		return nil, fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("token request: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var tok loginTokens
	if err := json.Unmarshal(body, &tok); err != nil {
		return nil, fmt.Errorf("token response: %w", err)
	}
	// The ID token came straight from the token endpoint over TLS (OpenID
	// Connect Core 3.1.3.7): its issuer, audience and nonce are checked,
	// its signature is custos-sts's to check.
	var claims struct {
		Iss   string `json:"iss"`
		Aud   any    `json:"aud"`
		Nonce string `json:"nonce"`
	}
	if err := decodeJWT(tok.IDToken, &claims); err != nil {
		return nil, fmt.Errorf("the ID token: %w", err)
	}
	if claims.Iss != c.Issuer || claims.Nonce != nonce || !audienceHas(claims.Aud, c.ClientID) {
		return nil, fmt.Errorf("the ID token is not this login's: iss %q, aud %v, nonce %q", claims.Iss, claims.Aud, claims.Nonce)
	}
	return &tok, nil
}

func getJSON(ctx context.Context, c *http.Client, u string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(into)
}

// decodeJWT decodes a JWT's payload into v, without verifying it.
func decodeJWT(token string, v any) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	return json.Unmarshal(payload, v)
}

// audienceHas reports whether aud (a string or a list) holds want.
func audienceHas(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		return slices.Contains(a, any(want))
	}
	return false
}

// randomString is n random bytes, base64url: 32 make a 43-character code
// verifier (RFC 7636 §4.1).
func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
