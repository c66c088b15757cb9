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
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

func newIssuer(t *testing.T, tenant string, now time.Time) *Issuer {
	t.Helper()
	ks, err := NewKeySet(now)
	if err != nil {
		t.Fatal(err)
	}
	return &Issuer{URL: "https://custos-sts.custos-system.svc/tenants/" + tenant, Tenant: tenant, Keys: ks}
}

// personClaims are the claims of a token exchanged once: alice, through
// the invoice agent, for the ledger.
func personClaims(now time.Time) Claims {
	c := Claims{Subject: "alice", Audience: "https://ledger.acme.example", Scope: "ledger.read",
		Expiry: now.Add(5 * time.Minute).Unix(), IssuedAt: now.Unix(), NotBefore: now.Unix(), Session: "s-1",
		OriginalIssuer: "https://idp.acme.example", OriginalSubject: "alice@acme.example", Parent: "parent-jti"}
	c.Act = c.Delegate(Actor{Subject: "spiffe://cluster.local/ns/finance/sa/agent-invoice"})
	return c
}

func TestMintAndVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	is := newIssuer(t, "acme", now)
	token, err := is.Mint(personClaims(now))
	if err != nil {
		t.Fatal(err)
	}
	got, err := is.Verify(token, "https://ledger.acme.example", now.Add(time.Minute))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.Issuer != is.URL || got.Tenant != "acme" || got.ID == "" || got.ClientID != "spiffe://cluster.local/ns/finance/sa/agent-invoice" {
		t.Errorf("minted claims: %+v; want iss, tenant, a jti and client_id set by Mint", got)
	}
	if got.Act == nil || got.Act.Subject != got.ClientID || got.Parent != "parent-jti" || got.OriginalSubject != "alice@acme.example" {
		t.Errorf("claims lost on the way: %+v", got)
	}
}

// TestVerifyRefusals: each way a token can be wrong has its own reason.
func TestVerifyRefusals(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	is := newIssuer(t, "acme", now)
	other := newIssuer(t, "globex", now)
	good := func(change func(*Claims)) string {
		c := personClaims(now)
		if change != nil {
			change(&c)
		}
		tok, err := is.Mint(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	otherTenant, err := other.Mint(personClaims(now))
	if err != nil {
		t.Fatal(err)
	}
	// Signed by acme's key but claiming globex's issuer: Mint sets iss, so
	// build it by hand.
	wrongIss := signRaw(t, is, map[string]any{"iss": other.URL, "sub": "alice", "aud": "https://ledger.acme.example",
		"exp": now.Add(time.Minute).Unix()}, TokenType)
	noTyp := signRaw(t, is, map[string]any{"iss": is.URL, "sub": "alice", "aud": "https://ledger.acme.example",
		"exp": now.Add(time.Minute).Unix()}, "JWT")
	tampered := func() string {
		parts := strings.Split(good(nil), ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		payload = []byte(strings.Replace(string(payload), `"sub":"alice"`, `"sub":"mallory"`, 1))
		parts[1] = base64.RawURLEncoding.EncodeToString(payload)
		return strings.Join(parts, ".")
	}()
	cases := []struct {
		name, token, audience string
		at                    time.Time
		reason                string
	}{
		{"not a JWT", "not-a-token", "https://ledger.acme.example", now, ReasonMalformed},
		{"another tenant's token", otherTenant, "https://ledger.acme.example", now, ReasonUnknownKey},
		{"another tenant's issuer", wrongIss, "https://ledger.acme.example", now, ReasonWrongIssuer},
		{"an ID token or plain JWT, not an access token", noTyp, "https://ledger.acme.example", now, ReasonWrongType},
		{"a changed claim", tampered, "https://ledger.acme.example", now, ReasonBadSig},
		{"replayed at another upstream", good(nil), "https://crm.acme.example", now, ReasonWrongAud},
		{"expired", good(nil), "https://ledger.acme.example", now.Add(5 * time.Minute), ReasonExpired},
		{"not valid yet", good(func(c *Claims) { c.NotBefore = now.Add(time.Minute).Unix() }), "https://ledger.acme.example", now, ReasonNotYetValid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := is.Verify(tc.token, tc.audience, tc.at)
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Reason != tc.reason {
				t.Errorf("Verify = %v, want reason %s", err, tc.reason)
			}
		})
	}
}

// signRaw signs arbitrary claims with is's current key and typ.
func signRaw(t *testing.T, is *Issuer, claims map[string]any, typ string) string {
	t.Helper()
	k := is.Keys.current()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: Algorithm, Key: jose.JSONWebKey{Key: k.signer, KeyID: k.id}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRotationKeepsTwoKeysLive: after one rotation, tokens of the key
// before still verify and new tokens use the new key; after two, the
// oldest key's tokens no longer verify.
func TestRotationKeepsTwoKeysLive(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	is := newIssuer(t, "acme", now)
	first, err := is.Mint(personClaims(now))
	if err != nil {
		t.Fatal(err)
	}
	if err := is.Keys.Rotate(now); err != nil {
		t.Fatal(err)
	}
	second, _ := is.Mint(personClaims(now))
	if len(is.Keys.JWKS().Keys) != 2 {
		t.Fatalf("JWKS after one rotation has %d keys, want 2", len(is.Keys.JWKS().Keys))
	}
	for _, tok := range []string{first, second} {
		if _, err := is.Verify(tok, "https://ledger.acme.example", now); err != nil {
			t.Errorf("after one rotation: %v", err)
		}
	}
	if err := is.Keys.Rotate(now); err != nil {
		t.Fatal(err)
	}
	if _, err := is.Verify(first, "https://ledger.acme.example", now); err == nil {
		t.Error("a token of a retired key still verifies after two rotations")
	}
	if _, err := is.Verify(second, "https://ledger.acme.example", now); err != nil {
		t.Errorf("the previous key's token after the second rotation: %v", err)
	}
}

// TestAnIndependentLibraryVerifies: golang-jwt, with the keys read from the
// JWKS JSON by hand (not by go-jose), verifies a minted token and sees the
// nested act claim.
func TestAnIndependentLibraryVerifies(t *testing.T) {
	now := time.Now()
	is := newIssuer(t, "acme", now.Add(-time.Hour))
	if err := is.Keys.Rotate(now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	token, err := is.Mint(personClaims(now))
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(is.Keys.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct{ Kty, Crv, Kid, Alg, Use, X, Y string }
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatal(err)
	}
	keys := map[string]*ecdsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "EC" || k.Crv != "P-256" || k.Alg != "ES256" || k.Use != "sig" {
			t.Fatalf("JWKS key %+v: want an EC P-256 signing key for ES256", k)
		}
		x, _ := base64.RawURLEncoding.DecodeString(k.X)
		y, _ := base64.RawURLEncoding.DecodeString(k.Y)
		keys[k.Kid] = &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
	}
	parsed, err := jwt.Parse(token, func(tok *jwt.Token) (any, error) {
		if tok.Header["typ"] != TokenType {
			return nil, errors.New("typ is not at+jwt")
		}
		k, ok := keys[tok.Header["kid"].(string)]
		if !ok {
			return nil, errors.New("unknown kid")
		}
		return k, nil
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(is.URL), jwt.WithAudience("https://ledger.acme.example"),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		t.Fatalf("golang-jwt: %v", err)
	}
	claims := parsed.Claims.(jwt.MapClaims)
	act, _ := claims["act"].(map[string]any)
	if claims["sub"] != "alice" || act["sub"] != "spiffe://cluster.local/ns/finance/sa/agent-invoice" || claims["client_id"] != act["sub"] {
		t.Errorf("golang-jwt read sub %v, act %v, client_id %v", claims["sub"], claims["act"], claims["client_id"])
	}
}

// TestKeysExportAndLoad: what one replica exports another loads, and
// verifies the first one's tokens; what is not a P-256 PKCS #8 key is
// refused.
func TestKeysExportAndLoad(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := newIssuer(t, "acme", now)
	if err := a.Keys.Rotate(now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	stored, err := a.Keys.Export()
	if err != nil || len(stored) != 2 {
		t.Fatalf("Export: %d keys, %v", len(stored), err)
	}
	b := newIssuer(t, "acme", now)
	if err := b.Keys.Load(stored); err != nil {
		t.Fatal(err)
	}
	tok, _ := a.Mint(personClaims(now))
	if _, err := b.Verify(tok, "https://ledger.acme.example", now); err != nil {
		t.Errorf("a token of A at B after Load: %v", err)
	}
	if !b.Keys.CurrentSince().Equal(now.Add(time.Hour)) {
		t.Errorf("CurrentSince = %s, want the newest key's creation", b.Keys.CurrentSince())
	}
	rsaPEM := []byte("-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\n-----END PRIVATE KEY-----\n")
	for name, bad := range map[string][]StoredKey{
		"nothing":       nil,
		"not PEM":       {{PEM: []byte("key")}},
		"not PKCS #8":   {{PEM: rsaPEM}},
		"a certificate": {{PEM: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}},
	} {
		if err := b.Keys.Load(bad); err == nil {
			t.Errorf("Load of %s succeeded", name)
		}
	}
	if _, err := b.Verify(tok, "https://ledger.acme.example", now); err != nil {
		t.Errorf("a refused Load changed the keys: %v", err)
	}
}
