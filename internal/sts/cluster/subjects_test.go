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

package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/test/fixtures"
)

// idp is an identity provider on loopback over TLS: OpenID discovery and
// its keys, its tokens signed with a key of its own by go-jose directly,
// as another product would, with a groups claim and a roles claim.
type idp struct {
	*httptest.Server
	key *ecdsa.PrivateKey
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &idp{key: key}
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

// token is a person's access token from p.
func (p *idp) token(t *testing.T, sub, aud string, exp time.Time) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: p.key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{"iss": p.URL, "sub": sub, "aud": aud, "exp": exp.Unix(), "iat": exp.Add(-time.Hour).Unix(),
		"scp": []string{"ledger.read", "ledger.write"}, "sid": "s-" + sub, "jti": "jti-" + sub,
		"groups": []string{"finance-clerks", "staff"}, "roles": "approver"})
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

func TestVerifySubject(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	provider := newIDP(t)
	stranger := newIDP(t)
	tenant := fixtures.UniqueTenant("sts")
	boundary := fixtures.Create(t, k8sClient, fixtures.DataBoundary(tenant, func(b *custosv1alpha1.DataBoundary) {
		b.Spec.TrustedIssuers = []custosv1alpha1.TrustedIssuer{{Issuer: provider.URL, Audiences: []string{"custos-sts", "custos"}}}
	}))
	own := &sts.Issuer{URL: "https://custos-sts.custos-system.svc/tenants/" + tenant, Tenant: tenant}
	if own.Keys, _ = sts.NewKeySet(now); own.Keys == nil {
		t.Fatal("no key set")
	}
	subjects := &Subjects{Reader: k8sClient, Issuers: sts.StaticIssuers{tenant: own}, HTTPClient: provider.Client(),
		Clock: clocktesting.NewFakePassiveClock(now), Context: ctx}
	agentID := "spiffe://cluster.local/ns/finance/sa/agent-invoice"

	got, err := subjects.VerifySubject(ctx, tenant, provider.token(t, "alice", "custos-sts", now.Add(time.Hour)), []string{agentID})
	if err != nil {
		t.Fatal(err)
	}
	c := got.Claims
	if c.Subject != "alice" || c.Issuer != provider.URL || c.OriginalIssuer != provider.URL || c.Scope != "ledger.read ledger.write" ||
		c.Session != "s-alice" || c.ID != "jti-alice" || c.Act != nil {
		t.Errorf("a person's token: %+v", c)
	}
	if !slices.Equal(got.Groups, []string{"finance-clerks", "staff"}) {
		t.Errorf("groups %v: want the groups claim, read by default", got.Groups)
	}
	// The mapping says which claim holds the groups; it is read afresh.
	b := &custosv1alpha1.DataBoundary{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Name: boundary.Name}, b); err != nil {
		t.Fatal(err)
	}
	b.Spec.TrustedIssuers[0].Claims.Groups = "roles"
	if err := k8sClient.Update(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got, err := subjects.VerifySubject(ctx, tenant, provider.token(t, "alice", "custos", now.Add(time.Hour)), []string{agentID}); err != nil ||
		!slices.Equal(got.Groups, []string{"approver"}) {
		t.Errorf("groups through claims.groups=roles: %+v, %v", got, err)
	}

	hop, err := own.Mint(sts.Claims{Subject: "alice", Audience: agentID, Expiry: now.Add(time.Minute).Unix(),
		Act: &sts.Actor{Subject: "spiffe://cluster.local/ns/finance/sa/agent-intake"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := subjects.VerifySubject(ctx, tenant, hop, []string{agentID}); err != nil || got.Claims.Act == nil {
		t.Errorf("a token of the tenant's own issuer for this agent: %+v, %v", got, err)
	}

	for name, tc := range map[string]struct {
		tenant, token, says string
	}{
		"an issuer the tenant does not trust": {tenant, stranger.token(t, "alice", "custos-sts", now.Add(time.Hour)), "none of those DataBoundary"},
		"a person's token for another client": {tenant, provider.token(t, "alice", "grafana", now.Add(time.Hour)), "none of the audiences"},
		"an expired person's token":           {tenant, provider.token(t, "alice", "custos-sts", now.Add(-time.Minute)), "expired"},
		"the tenant's own token for another agent": {tenant, func() string {
			tok, _ := own.Mint(sts.Claims{Subject: "alice", Audience: "spiffe://cluster.local/ns/finance/sa/agent-other", Expiry: now.Add(time.Minute).Unix()})
			return tok
		}(), "WrongAudience"},
		"a tenant with no DataBoundary": {"nobody-" + tenant, provider.token(t, "alice", "custos-sts", now.Add(time.Hour)), "no DataBoundary"},
		"not a JWT":                     {tenant, "opaque-token", "not a JWT"},
	} {
		t.Run(name, func(t *testing.T) {
			if got, err := subjects.VerifySubject(ctx, tc.tenant, tc.token, []string{agentID}); err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("verified %+v, %v; want a refusal saying %q", got, err, tc.says)
			}
		})
	}
}
