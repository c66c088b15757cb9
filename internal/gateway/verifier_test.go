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

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/custos-dev/custos/internal/sts"
)

// stsKeys serves the JWKS of tenants acme and globex as custos-sts does,
// counting the fetches; down makes it answer 503.
type stsKeys struct {
	*httptest.Server
	issuers map[string]*sts.Issuer
	fetches atomic.Int32
	down    atomic.Bool
}

func newSTSKeys(t *testing.T, now time.Time) *stsKeys {
	t.Helper()
	s := &stsKeys{issuers: map[string]*sts.Issuer{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /tenants/{tenant}/jwks", func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		is, ok := s.issuers[r.PathValue("tenant")]
		if !ok || s.down.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(is.Keys.JWKS())
	})
	s.Server = httptest.NewTLSServer(mux)
	t.Cleanup(s.Close)
	for _, tenant := range []string{"acme", "globex"} {
		keys, err := sts.NewKeySet(now)
		if err != nil {
			t.Fatal(err)
		}
		s.issuers[tenant] = &sts.Issuer{URL: s.URL + "/tenants/" + tenant, Tenant: tenant, Keys: keys}
	}
	return s
}

// token is a token of tenant's issuer: alice's, agent invoice acting, for
// aud (the tenant's gateway unless given), valid for exp.
func (s *stsKeys) token(t *testing.T, tenant string, now time.Time, change ...func(*sts.Claims)) string {
	t.Helper()
	c := sts.Claims{Subject: "alice", Audience: sts.GatewayAudience(tenant), Expiry: now.Add(5 * time.Minute).Unix(), IssuedAt: now.Unix(),
		NotBefore: now.Unix(), Scope: "ledger.read", Act: &sts.Actor{Subject: "spiffe://cluster.local/ns/finance/sa/agent-invoice"}}
	for _, f := range change {
		f(&c)
	}
	tok, err := s.issuers[tenant].Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestVerifier: the gateway takes the token an agent was given for it by
// its tenant's custos-sts, verified with the keys the issuer serves, and
// nothing else; a rotated key is fetched once; keys already known outlive
// a custos-sts that is down, and a token of a key it cannot fetch is
// refused with the reason.
func TestVerifier(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clk := clocktesting.NewFakeClock(now)
	s := newSTSKeys(t, now)
	v := &Verifier{IssuerBase: s.URL, Client: s.Client(), Clock: clk}
	ctx := context.Background()

	c, err := v.Verify(ctx, "acme", s.token(t, "acme", now))
	if err != nil || c.Subject != "alice" || c.ClientID != "spiffe://cluster.local/ns/finance/sa/agent-invoice" {
		t.Fatalf("alice's token through invoice: %+v, %v", c, err)
	}
	if _, err := v.Verify(ctx, "acme", s.token(t, "acme", now)); err != nil || s.fetches.Load() != 1 {
		t.Errorf("a second token: %v after %d fetches, want 1 fetch", err, s.fetches.Load())
	}
	for _, tc := range []struct {
		name, tenant, token, says string
	}{
		{"a token for a tool server", "acme", s.token(t, "acme", now, func(c *sts.Claims) { c.Audience = "urn:custos:toolset:finance:ledger" }), sts.ReasonWrongAud},
		{"another tenant's token for its gateway", "acme", s.token(t, "globex", now), sts.ReasonUnknownKey},
		{"a token with no agent acting", "acme", s.token(t, "acme", now, func(c *sts.Claims) { c.Act = nil }), "no agent acts in the token"},
		{"an expired token", "acme", s.token(t, "acme", now, func(c *sts.Claims) { c.Expiry = now.Add(-time.Second).Unix() }), sts.ReasonExpired},
		{"not a token", "acme", "Bearer x", sts.ReasonMalformed},
		{"a tenant custos-sts does not serve", "initech", s.token(t, "acme", now), "503"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := v.Verify(ctx, tc.tenant, tc.token); err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("verified %+v, %v; want refused saying %q", c, err, tc.says)
			}
		})
	}

	// custos-sts rotates (a day on): the new key is fetched once, when a
	// token names it.
	clk.Step(DefaultRefetchAfter)
	if err := s.issuers["acme"].Keys.Rotate(now); err != nil {
		t.Fatal(err)
	}
	before := s.fetches.Load()
	if _, err := v.Verify(ctx, "acme", s.token(t, "acme", now)); err != nil {
		t.Errorf("a token of the new key: %v", err)
	}
	if got := s.fetches.Load() - before; got != 1 {
		t.Errorf("%d fetches for the rotated key, want 1", got)
	}
	// A token naming a key nobody has fetches at most once per RefetchAfter.
	forged := s.token(t, "globex", now, func(c *sts.Claims) { c.Audience = sts.GatewayAudience("acme") })
	before = s.fetches.Load()
	for range 5 {
		if _, err := v.Verify(ctx, "acme", strings.Replace(forged, "globex", "acme", 1)); err == nil {
			t.Fatal("a token of another tenant's key verified")
		}
	}
	if got := s.fetches.Load() - before; got > 1 {
		t.Errorf("%d fetches for 5 tokens of an unknown key, want at most 1", got)
	}

	// custos-sts down: the keys known go on verifying; an unknown one is
	// refused, saying why.
	s.down.Store(true)
	clk.Step(time.Minute)
	if _, err := v.Verify(ctx, "acme", s.token(t, "acme", clk.Now())); err != nil {
		t.Errorf("a token of a known key while custos-sts is down: %v", err)
	}
	if err := s.issuers["acme"].Keys.Rotate(clk.Now()); err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(ctx, "acme", s.token(t, "acme", clk.Now()))
	var ve *sts.VerifyError
	if !errors.As(err, &ve) || ve.Reason != sts.ReasonUnknownKey || !strings.Contains(err.Error(), "503") {
		t.Errorf("a token of a key it cannot fetch: %v, want UnknownKey saying the fetch failed", err)
	}
}

// TestVerifierKeepsVerifiedTokens: a token verified once is taken again
// without its signature checked, for VerifiedFor at most and never past
// its expiry; a token that differs by a byte is verified afresh.
func TestVerifierKeepsVerifiedTokens(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clk := clocktesting.NewFakeClock(now)
	s := newSTSKeys(t, now)
	v := &Verifier{IssuerBase: s.URL, Client: s.Client(), Clock: clk, VerifiedFor: 30 * time.Second}
	ctx := context.Background()
	short := s.token(t, "acme", now, func(c *sts.Claims) { c.Expiry = now.Add(10 * time.Second).Unix() })
	long := s.token(t, "acme", now)
	for _, tok := range []string{short, long} {
		if _, err := v.Verify(ctx, "acme", tok); err != nil {
			t.Fatal(err)
		}
	}
	// Another tenant's path is another key: never a hit.
	if _, err := v.Verify(ctx, "globex", long); err == nil {
		t.Error("acme's token verified at globex's gateway from what was kept")
	}
	tampered := long[:len(long)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(long, "AA")]
	if _, err := v.Verify(ctx, "acme", tampered); err == nil {
		t.Error("a token with another signature verified")
	}
	clk.Step(15 * time.Second)
	if _, err := v.Verify(ctx, "acme", short); err == nil {
		t.Error("an expired token was taken from what was kept")
	}
	if _, err := v.Verify(ctx, "acme", long); err != nil {
		t.Errorf("a token verified 15 s ago: %v", err)
	}
	// Past VerifiedFor the signature is checked again: with the issuer's
	// keys withdrawn, the token no longer verifies.
	s.down.Store(true)
	if err := s.issuers["acme"].Keys.Rotate(now); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	v.tenants = nil
	v.mu.Unlock()
	if _, err := v.Verify(ctx, "acme", long); err != nil {
		t.Errorf("within VerifiedFor: %v", err)
	}
	clk.Step(20 * time.Second)
	if _, err := v.Verify(ctx, "acme", long); err == nil {
		t.Error("past VerifiedFor, a token whose key cannot be fetched still verified")
	}
}
