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

// Package leasedoubles holds test doubles of the clouds Custos leases
// credentials from: STS (AssumeRoleWithWebIdentity) and Entra ID (the
// client-credentials grant with a client assertion). Each listens on
// 127.0.0.1, verifies the ServiceAccount tokens presented to it against the
// keys of the cluster under test, as a cloud federated with that cluster
// would, and lets a test say who is trusted, inject failures and count
// calls. The real SDK clients talk to them.
package leasedoubles

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"k8s.io/client-go/rest"
)

// Subject is the token subject of a ServiceAccount, as a trust policy or a
// federated credential names it.
func Subject(namespace, serviceAccount string) string {
	return "system:serviceaccount:" + namespace + ":" + serviceAccount
}

// issuer verifies ServiceAccount tokens against the API server's published
// keys. It reads the issuer and the keys from the API server's own loopback
// address, never from the addresses the discovery document names (a test
// API server names one that is not on this machine).
type issuer struct {
	client *http.Client
	base   string

	mu   sync.Mutex
	iss  string
	keys jose.JSONWebKeySet
}

// tokenError is why a token does not verify.
type tokenError struct {
	kind tokenErrorKind
	msg  string
}

type tokenErrorKind int

const (
	tokenInvalid tokenErrorKind = iota
	tokenExpired
	tokenAudience
	tokenIssuer
)

func (e *tokenError) Error() string { return e.msg }

// claims are what the doubles read from a verified token.
type claims struct {
	Issuer  string
	Subject string
	Expiry  time.Time
}

func newIssuer(ctx context.Context, cfg *rest.Config) (*issuer, error) {
	u, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("the API server %s is not on loopback: the doubles only talk to this machine", u.Host)
	}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	i := &issuer{client: client, base: strings.TrimSuffix(u.String(), "/")}
	if err := i.refresh(ctx); err != nil {
		return nil, err
	}
	return i, nil
}

// refresh reads the issuer and the keys again.
func (i *issuer) refresh(ctx context.Context) error {
	var disco struct {
		Issuer string `json:"issuer"`
	}
	if err := i.get(ctx, "/.well-known/openid-configuration", &disco); err != nil {
		return err
	}
	var keys jose.JSONWebKeySet
	if err := i.get(ctx, "/openid/v1/jwks", &keys); err != nil {
		return err
	}
	if disco.Issuer == "" || len(keys.Keys) == 0 {
		return fmt.Errorf("the API server %s publishes no issuer or no keys", i.base)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.iss, i.keys = disco.Issuer, keys
	return nil
}

func (i *issuer) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, i.base+path, nil)
	if err != nil {
		return err
	}
	res, err := i.client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, res.Status)
	}
	return json.Unmarshal(body, into)
}

// verify checks token's signature, issuer, expiry and audience.
func (i *issuer) verify(ctx context.Context, token, audience string, now time.Time) (*claims, error) {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512})
	if err != nil {
		return nil, &tokenError{kind: tokenInvalid, msg: "the token is not a signed JWT"}
	}
	if len(tok.Headers) != 1 {
		return nil, &tokenError{kind: tokenInvalid, msg: "the token has more than one signature"}
	}
	kid := tok.Headers[0].KeyID
	key, iss := i.key(kid)
	if key == nil {
		// The API server may have rotated its keys.
		if err := i.refresh(ctx); err != nil {
			return nil, err
		}
		key, iss = i.key(kid)
	}
	if key == nil {
		return nil, &tokenError{kind: tokenInvalid, msg: "the token is signed by a key the issuer does not publish"}
	}
	var c jwt.Claims
	if err := tok.Claims(key.Public(), &c); err != nil {
		return nil, &tokenError{kind: tokenInvalid, msg: "the token's signature does not verify"}
	}
	switch err := c.ValidateWithLeeway(jwt.Expected{Issuer: iss, Time: now}, 0); {
	case errors.Is(err, jwt.ErrExpired):
		return nil, &tokenError{kind: tokenExpired, msg: fmt.Sprintf("the token expired at %s", c.Expiry.Time().UTC().Format(time.RFC3339))}
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return nil, &tokenError{kind: tokenIssuer, msg: fmt.Sprintf("no identity provider is registered for issuer %q", c.Issuer)}
	case err != nil:
		return nil, &tokenError{kind: tokenInvalid, msg: "the token is not valid: " + err.Error()}
	}
	if c.Expiry == nil {
		return nil, &tokenError{kind: tokenInvalid, msg: "the token has no expiry"}
	}
	if !slices.Contains(c.Audience, audience) {
		return nil, &tokenError{kind: tokenAudience, msg: fmt.Sprintf("incorrect token audience %q: want %q", strings.Join(c.Audience, ","), audience)}
	}
	return &claims{Issuer: c.Issuer, Subject: c.Subject, Expiry: c.Expiry.Time()}, nil
}

func (i *issuer) key(kid string) (*jose.JSONWebKey, string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	keys := i.keys.Keys
	if kid != "" {
		keys = i.keys.Key(kid)
	}
	if len(keys) != 1 {
		return nil, i.iss
	}
	return &keys[0], i.iss
}

// Fault is a failure a double answers with instead of serving a request.
// Code and Message are the error's, in the double's own format (an STS
// error code, an OAuth error); an empty Code sends the status alone.
type Fault struct {
	Status  int
	Code    string
	Message string
}

// Faults a backoff test injects.
var (
	// STSUnavailable is STS's answer when it is overloaded or down.
	STSUnavailable = Fault{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: "Service Unavailable"}
	// STSThrottling is STS's answer to too many requests.
	STSThrottling = Fault{Status: http.StatusBadRequest, Code: "Throttling", Message: "Rate exceeded"}
	// EntraUnavailable is Entra ID's answer when it cannot serve a request.
	EntraUnavailable = Fault{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Message: "AADSTS90033: A transient error has occurred. Please try again."}
)

// faults is a queue of injected failures and a call counter.
type faults struct {
	mu    sync.Mutex
	queue []Fault
	calls int
}

// FailNext makes the next n calls fail with f.
func (q *faults) FailNext(n int, f Fault) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for range n {
		q.queue = append(q.queue, f)
	}
}

// Calls is how many calls the double has answered, failed or not.
func (q *faults) Calls() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.calls
}

// next counts a call and says whether it is to fail.
func (q *faults) next() (Fault, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls++
	if len(q.queue) == 0 {
		return Fault{}, false
	}
	f := q.queue[0]
	q.queue = q.queue[1:]
	return f, true
}

// randomString is n characters of alphabet, from crypto/rand.
func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

const (
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	base64Chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	hexChars    = "0123456789abcdef"
)

// requestID is an ID in the form AWS and Entra ID give their requests.
func requestID() string {
	s := randomString(32, hexChars)
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// listenLoopback is a listener on 127.0.0.1, on a port of the system's
// choosing.
func listenLoopback() (net.Listener, error) {
	return net.Listen("tcp", "127.0.0.1:0")
}
