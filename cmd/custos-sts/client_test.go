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
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"
	zclient "github.com/zitadel/oidc/v3/pkg/client"
	"github.com/zitadel/oidc/v3/pkg/client/tokenexchange"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/sts/cluster"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestIndependentClientAndVerifiers: what custos-sts speaks is RFC 8693,
// RFC 8414 and RFC 7517 as others read them. zitadel/oidc's token-exchange
// client reads the metadata and exchanges alice's token for agent invoice,
// sending no client authentication; the token verifies against the served
// JWKS with golang-jwt (keys parsed by hand) and with go-oidc, neither of
// which custos-sts signs with, each checking the signature, iss, aud and
// exp, and each refusing a token with one byte changed, another audience,
// another issuer or a clock past exp. A second hop, invoice passing alice
// to agent reports, nests act as RFC 8693 §4.1's example does, the newest
// actor outermost. A refusal reaches the client as RFC 6749 §5.2's error.
func TestIndependentClientAndVerifiers(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	// reports reads the ledger for alice when invoice passes her on.
	reports := fixtures.Agent(w.ns, "reports", w.tenant, fixtures.WithToolsets("ledger"))
	reports.Spec.Delegation = &custosv1alpha1.AgentDelegation{People: []string{"alice"},
		Agents: []custosv1alpha1.AgentReference{{Name: "invoice"}}}
	_, reportsPod := fixtures.ActiveAgentPod(t, env.c, reports)
	reportsToken := fixtures.PodToken(t, env.c, reportsPod, "custos-sts")
	r := w.start("")

	issuer := "https://custos-sts.test/tenants/" + w.tenant
	ledger := cluster.ToolsetResource(w.ns, "ledger")
	invoiceID := "spiffe://cluster.local/ns/" + w.ns + "/sa/agent-invoice"
	reportsID := "spiffe://cluster.local/ns/" + w.ns + "/sa/agent-reports"

	// The metadata, as zitadel's client reads it at both places custos-sts
	// serves it (<issuer>/.well-known/..., and RFC 8414 §3.1's): the issuer
	// must be the one asked for. Its endpoints name the in-cluster host, so
	// the client is pointed at this replica's token endpoint.
	var md *zoidc.DiscoveryConfiguration
	for _, at := range []string{r.base + "/.well-known/oauth-authorization-server",
		strings.Replace(r.base, "/tenants/", "/.well-known/oauth-authorization-server/tenants/", 1)} {
		var err error
		if md, err = zclient.Discover(ctx, issuer, w.https, at); err != nil {
			t.Fatalf("zitadel reading the RFC 8414 metadata at %s: %v", at, err)
		}
	}
	if md.TokenEndpoint != issuer+"/token" || md.JwksURI != issuer+"/jwks" ||
		!reflect.DeepEqual(md.GrantTypesSupported, []zoidc.GrantType{zoidc.GrantTypeTokenExchange}) ||
		!reflect.DeepEqual(md.TokenEndpointAuthMethodsSupported, []zoidc.AuthMethod{zoidc.AuthMethodNone}) {
		t.Errorf("the metadata: token %q, jwks %q, grants %v, auth %v", md.TokenEndpoint, md.JwksURI,
			md.GrantTypesSupported, md.TokenEndpointAuthMethodsSupported)
	}
	if _, err := zclient.Discover(ctx, "https://custos-sts.test/tenants/other", w.https,
		r.base+"/.well-known/oauth-authorization-server"); !errors.Is(err, zoidc.ErrIssuerInvalid) {
		t.Errorf("zitadel took the metadata as another issuer's: %v", err)
	}
	// token_endpoint_auth_methods_supported is none: the client
	// authenticates with no secret (the actor token says who acts).
	sent := &recorder{next: w.https.Transport}
	te, err := tokenexchange.NewTokenExchanger(ctx, issuer,
		tokenexchange.WithStaticTokenEndpoint(issuer, strings.Replace(md.TokenEndpoint, issuer, r.base, 1)),
		tokenexchange.WithHTTPClient(&http.Client{Timeout: w.https.Timeout, Transport: sent}))
	if err != nil {
		t.Fatal(err)
	}
	person := func(sub string) string {
		return w.idp.Token(t, sub, "custos-sts", time.Now().Add(time.Hour), map[string]any{"scp": nil, "scope": "ledger.read"})
	}
	exchange := func(subject, actor string, resource, audience []string) (*zoidc.TokenExchangeResponse, error) {
		return tokenexchange.ExchangeToken(ctx, te, subject, zoidc.AccessTokenType, actor, zoidc.JWTTokenType,
			resource, audience, nil, "")
	}

	// alice → invoice → the ledger.
	resp, err := exchange(person("alice"), w.actorToken, []string{ledger}, nil)
	if err != nil {
		t.Fatalf("zitadel's exchange: %v", err)
	}
	// What zitadel sent: no client authentication, and the optional
	// parameters it was not given as empty values (scope=,
	// requested_token_type=), which custos-sts takes as omitted (RFC 6749
	// §3.2).
	t.Logf("zitadel sent %s", describeForm(sent.form))
	for _, p := range []string{"client_id", "client_secret", "client_assertion", "client_assertion_type"} {
		if sent.form.Has(p) {
			t.Errorf("zitadel sent %s", p)
		}
	}
	if sent.header.Get("Authorization") != "" || sent.form.Get("grant_type") != string(zoidc.GrantTypeTokenExchange) ||
		sent.form.Get("subject_token_type") != string(zoidc.AccessTokenType) || sent.form.Get("actor_token_type") != string(zoidc.JWTTokenType) ||
		!reflect.DeepEqual(sent.form["resource"], []string{ledger}) || sent.form.Get("audience") != "" {
		t.Errorf("zitadel's request: %v, %s", sent.header, describeForm(sent.form))
	}
	if resp.IssuedTokenType != zoidc.AccessTokenType || !strings.EqualFold(resp.TokenType, "Bearer") ||
		resp.ExpiresIn == 0 || resp.ExpiresIn > 300 || resp.Scopes.String() != "ledger.read" || resp.RefreshToken != "" {
		t.Errorf("the token response: issued %q, type %q, expires in %d, scope %q, refresh token %t",
			resp.IssuedTokenType, resp.TokenType, resp.ExpiresIn, resp.Scopes, resp.RefreshToken != "")
	}

	v := newVerifiers(ctx, t, w, r.base+"/jwks")
	claims := v.verify(t, resp.AccessToken, ledger)
	if claims["sub"] != "alice" || claims["aud"] != ledger || claims["client_id"] != invoiceID ||
		claims["custos_tenant"] != w.tenant || claims["scope"] != "ledger.read" || claims["sid"] != "s-alice" {
		t.Errorf("the claims: %v", claims)
	}
	if jti, _ := claims["jti"].(string); len(jti) < 22 {
		t.Errorf("jti %q: want 128 random bits", jti)
	}
	wantAct := map[string]any{"sub": invoiceID}
	if !reflect.DeepEqual(claims["act"], wantAct) {
		t.Errorf("act: %v, want %v", claims["act"], wantAct)
	}

	// Each verifier refuses what it must.
	exp := time.Unix(int64(claims["exp"].(float64)), 0)
	for _, c := range []struct {
		what, token, aud, iss string
		now                   time.Time
	}{
		{"one byte of the signature changed", tamper(resp.AccessToken, 2), ledger, issuer, time.Now()},
		{"one byte of the claims changed", tamper(resp.AccessToken, 1), ledger, issuer, time.Now()},
		{"another audience", resp.AccessToken, cluster.ToolsetResource(w.ns, "payroll"), issuer, time.Now()},
		{"another issuer", resp.AccessToken, ledger, r.base, time.Now()},
		{"a clock past exp", resp.AccessToken, ledger, issuer, exp.Add(time.Second)},
	} {
		errJWT, errOIDC := v.check(c.token, c.aud, c.iss, c.now)
		if errJWT == nil {
			t.Errorf("golang-jwt took a token with %s", c.what)
		}
		if errOIDC == nil {
			t.Errorf("go-oidc took a token with %s", c.what)
		}
		t.Logf("%s: golang-jwt: %v; go-oidc: %v", c.what, errJWT, errOIDC)
	}

	// alice → invoice → reports → the ledger: reports takes calls from
	// invoice, named by its SPIFFE ID (here as the RFC 8693 audience).
	hop1, err := exchange(person("alice"), w.actorToken, nil, []string{reportsID})
	if err != nil {
		t.Fatalf("invoice passing alice to reports: %v", err)
	}
	c1 := v.verify(t, hop1.AccessToken, reportsID)
	hop2, err := exchange(hop1.AccessToken, reportsToken, []string{ledger}, nil)
	if err != nil {
		t.Fatalf("reports exchanging alice's token from invoice: %v", err)
	}
	c2 := v.verify(t, hop2.AccessToken, ledger)
	// RFC 8693 §4.1: {"act": {"sub": <newest>, "act": {"sub": <older>}}}.
	wantAct = map[string]any{"sub": reportsID, "act": map[string]any{"sub": invoiceID}}
	if !reflect.DeepEqual(c2["act"], wantAct) {
		t.Errorf("the second hop's act: %v, want %v", c2["act"], wantAct)
	}
	if c2["sub"] != "alice" || c2["aud"] != ledger || c2["client_id"] != reportsID || c2["sid"] != "s-alice" ||
		c2["custos_parent_jti"] != c1["jti"] || c2["jti"] == c1["jti"] {
		t.Errorf("the second hop's claims: %v, after %v", c2, c1)
	}

	// carol is not someone invoice acts for: RFC 6749 §5.2's error, which
	// the client surfaces as such.
	_, err = exchange(person("carol"), w.actorToken, []string{ledger}, nil)
	var oerr *zoidc.Error
	if !errors.As(err, &oerr) || oerr.ErrorType != zoidc.InvalidRequest || !strings.Contains(err.Error(), "invalid_request") ||
		!strings.Contains(oerr.Description, "may not act for carol") {
		t.Errorf("carol's exchange: %v, want invalid_request saying invoice may not act for her", err)
	}
	t.Logf("carol's exchange, as zitadel reports it: %v", err)
	// And a resource the agent has no Toolset for: invalid_target.
	_, err = exchange(person("alice"), w.actorToken, []string{cluster.ToolsetResource(w.ns, "payroll")}, nil)
	if !errors.As(err, &oerr) || oerr.ErrorType != "invalid_target" {
		t.Errorf("an exchange for a Toolset invoice has not: %v, want invalid_target", err)
	}
}

// recorder keeps the last form POSTed through it and its headers.
type recorder struct {
	next   http.RoundTripper
	header http.Header
	form   url.Values
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		r.header = req.Header.Clone()
		if r.form, err = url.ParseQuery(string(body)); err != nil {
			return nil, err
		}
	}
	return r.next.RoundTrip(req)
}

// describeForm lists a form's parameters, the tokens left out.
func describeForm(f url.Values) string {
	var out []string
	for k, vs := range f {
		for _, v := range vs {
			if strings.HasSuffix(k, "_token") && v != "" {
				v = "<" + strconv.Itoa(len(v)) + " bytes>"
			}
			out = append(out, k+"="+strconv.Quote(v))
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// verifiers are two JWT libraries that custos-sts does not sign with,
// reading the keys from the served JWKS.
type verifiers struct {
	ctx    context.Context
	keys   map[string]*ecdsa.PublicKey // by kid, parsed by hand for golang-jwt
	remote *oidc.RemoteKeySet          // go-oidc's own fetch and parse
}

func newVerifiers(ctx context.Context, t *testing.T, w *world, jwksURL string) *verifiers {
	t.Helper()
	var set struct {
		Keys []struct {
			Kty, Crv, Kid, Alg, Use, X, Y, D string
		} `json:"keys"`
	}
	getJSON(t, w.https, jwksURL, &set)
	v := &verifiers{keys: map[string]*ecdsa.PublicKey{}}
	for _, k := range set.Keys {
		if k.Kty != "EC" || k.Crv != "P-256" || k.Kid == "" || k.D != "" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "ES256") {
			t.Fatalf("a JWKS key that is not a public P-256 signing key: %+v", k)
		}
		x, errX := base64.RawURLEncoding.DecodeString(k.X)
		y, errY := base64.RawURLEncoding.DecodeString(k.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			t.Fatalf("key %s: coordinates %q, %q", k.Kid, k.X, k.Y)
		}
		if _, err := ecdh.P256().NewPublicKey(append(append([]byte{4}, x...), y...)); err != nil {
			t.Fatalf("key %s is not a point of P-256: %v", k.Kid, err)
		}
		v.keys[k.Kid] = &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
	}
	if len(v.keys) == 0 {
		t.Fatal("the JWKS holds no key")
	}
	v.ctx = oidc.ClientContext(ctx, w.https)
	v.remote = oidc.NewRemoteKeySet(v.ctx, jwksURL)
	return v
}

// check verifies token with both libraries for aud and iss at now.
func (v *verifiers) check(token, aud, iss string, now time.Time) (errJWT, errOIDC error) {
	_, errJWT = jwt.Parse(token, func(tok *jwt.Token) (any, error) {
		if typ, _ := tok.Header["typ"].(string); !strings.EqualFold(typ, "at+jwt") {
			return nil, fmt.Errorf("typ %q, want at+jwt (RFC 9068)", typ)
		}
		kid, _ := tok.Header["kid"].(string)
		if k, ok := v.keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("kid %q is not in the JWKS", kid)
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(iss), jwt.WithAudience(aud),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithTimeFunc(func() time.Time { return now }))
	verifier := oidc.NewVerifier(iss, v.remote, &oidc.Config{ClientID: aud, SupportedSigningAlgs: []string{oidc.ES256},
		Now: func() time.Time { return now }})
	_, errOIDC = verifier.Verify(v.ctx, token)
	return errJWT, errOIDC
}

// verify checks token with both libraries and returns its claims, which
// both must read alike.
func (v *verifiers) verify(t *testing.T, token, aud string) map[string]any {
	t.Helper()
	parsed, err := jwt.Parse(token, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		if k, ok := v.keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("kid %q is not in the JWKS", kid)
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(aud), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("golang-jwt: %v", err)
	}
	iss, _ := parsed.Claims.(jwt.MapClaims)["iss"].(string)
	if errJWT, errOIDC := v.check(token, aud, iss, time.Now()); errJWT != nil || errOIDC != nil {
		t.Fatalf("the token does not verify: golang-jwt: %v; go-oidc: %v", errJWT, errOIDC)
	}
	verifier := oidc.NewVerifier(iss, v.remote, &oidc.Config{ClientID: aud, SupportedSigningAlgs: []string{oidc.ES256}})
	idt, err := verifier.Verify(v.ctx, token)
	if err != nil {
		t.Fatalf("go-oidc: %v", err)
	}
	var fromOIDC map[string]any
	if err := idt.Claims(&fromOIDC); err != nil {
		t.Fatal(err)
	}
	fromJWT := map[string]any(parsed.Claims.(jwt.MapClaims))
	if !reflect.DeepEqual(fromJWT, fromOIDC) {
		t.Fatalf("the libraries read different claims: %v and %v", fromJWT, fromOIDC)
	}
	return fromJWT
}

// tamper changes one byte of part (0 header, 1 claims, 2 signature) of a
// compact JWS, in the middle, so that no base64 padding bit hides it.
func tamper(token string, part int) string {
	parts := strings.Split(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[part])
	if err != nil {
		panic(err)
	}
	b[len(b)/2] ^= 0x01
	parts[part] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}
