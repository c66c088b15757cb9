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
	"slices"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/test/fixtures"
	"github.com/custos-dev/custos/test/idptest"
)

func TestVerifySubject(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	provider := idptest.New(t)
	stranger := idptest.New(t)
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

	got, err := subjects.VerifySubject(ctx, tenant, provider.Token(t, "alice", "custos-sts", now.Add(time.Hour), nil), []string{agentID})
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
	if got, err := subjects.VerifySubject(ctx, tenant, provider.Token(t, "alice", "custos", now.Add(time.Hour), nil), []string{agentID}); err != nil ||
		!slices.Equal(got.Groups, []string{"approver"}) {
		t.Errorf("groups through claims.groups=roles: %+v, %v", got, err)
	}

	// An identity provider shared by tenants: claims.tenant names the
	// claim that says whose person it is.
	b = &custosv1alpha1.DataBoundary{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Name: boundary.Name}, b); err != nil {
		t.Fatal(err)
	}
	b.Spec.TrustedIssuers[0].Claims.Tenant = "org"
	if err := k8sClient.Update(ctx, b); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		org  any
		want bool
	}{
		"this tenant":              {tenant, true},
		"this tenant among others": {[]string{"globex", tenant}, true},
		"another tenant":           {"globex", false},
		"no tenant claim":          {nil, false},
	} {
		tok := provider.Token(t, "alice", "custos-sts", now.Add(time.Hour), map[string]any{"org": tc.org})
		_, err := subjects.VerifySubject(ctx, tenant, tok, []string{agentID})
		if (err == nil) != tc.want {
			t.Errorf("%s: %v, want accepted %v", name, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), "another tenant") {
			t.Errorf("%s: refused for another reason: %v", name, err)
		}
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
		"an issuer the tenant does not trust": {tenant, stranger.Token(t, "alice", "custos-sts", now.Add(time.Hour), nil), "none of those DataBoundary"},
		"a person's token for another client": {tenant, provider.Token(t, "alice", "grafana", now.Add(time.Hour), nil), "none of the audiences"},
		"an expired person's token":           {tenant, provider.Token(t, "alice", "custos-sts", now.Add(-time.Minute), nil), "expired"},
		"the tenant's own token for another agent": {tenant, func() string {
			tok, _ := own.Mint(sts.Claims{Subject: "alice", Audience: "spiffe://cluster.local/ns/finance/sa/agent-other", Expiry: now.Add(time.Minute).Unix()})
			return tok
		}(), "WrongAudience"},
		"a tenant with no DataBoundary": {"nobody-" + tenant, provider.Token(t, "alice", "custos-sts", now.Add(time.Hour), nil), "no DataBoundary"},
		"not a JWT":                     {tenant, "opaque-token", "not a JWT"},
	} {
		t.Run(name, func(t *testing.T) {
			if got, err := subjects.VerifySubject(ctx, tc.tenant, tc.token, []string{agentID}); err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("verified %+v, %v; want a refusal saying %q", got, err, tc.says)
			}
		})
	}
}
