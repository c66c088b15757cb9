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
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/test/fixtures"
	"github.com/custos-dev/custos/test/idptest"
)

type events struct{ got []audit.Event }

func (e *events) Record(_ context.Context, ev audit.Event) { e.got = append(e.got, ev) }

// onCluster is custos-sts's exchange against the test API server, for a
// tenant whose DataBoundary trusts a person's identity provider on
// loopback (its groups claim "groups"): the tenant's namespace ns, the
// STS's namespace system (its revocation lists), the tenant's issuer, a
// fake clock and the audit records.
type onCluster struct {
	provider   *idptest.IdP
	tenant     string
	ns, system string
	issuer     *sts.Issuer
	clk        *clocktesting.FakePassiveClock
	trail      *events
	actors     *Actors
	svc        *sts.Service
}

func newOnCluster(t *testing.T, prefix string) *onCluster {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	w := &onCluster{provider: idptest.New(t), tenant: fixtures.UniqueTenant(prefix), clk: clocktesting.NewFakePassiveClock(now), trail: &events{}}
	w.ns = fixtures.CreateTenantNamespace(t, k8sClient, w.tenant)
	w.system = fixtures.CreateTenantNamespace(t, k8sClient, fixtures.UniqueTenant("custos-system"))
	fixtures.Create(t, k8sClient, fixtures.DataBoundary(w.tenant, func(b *custosv1alpha1.DataBoundary) {
		b.Spec.TrustedIssuers = []custosv1alpha1.TrustedIssuer{{Issuer: w.provider.URL, Audiences: []string{"custos-sts"},
			Claims: custosv1alpha1.IssuerClaims{Groups: "groups"}}}
	}))
	own, err := sts.NewKeySet(now)
	if err != nil {
		t.Fatal(err)
	}
	w.issuer = &sts.Issuer{URL: "https://custos-sts.custos-system.svc/tenants/" + w.tenant, Tenant: w.tenant, Keys: own}
	w.actors = newActors(w.clk)
	issuers := sts.StaticIssuers{w.tenant: w.issuer}
	w.svc = &sts.Service{
		Issuers:     issuers,
		Actors:      w.actors,
		Subjects:    &Subjects{Reader: k8sClient, Issuers: issuers, HTTPClient: w.provider.Client(), Clock: w.clk, Context: ctx},
		Targets:     &Targets{Reader: k8sClient, TrustDomain: "cluster.local"},
		Revocations: &Revocations{Reader: k8sClient, TrustDomain: "cluster.local", Namespace: w.system, Clock: w.clk},
		Audit:       w.trail, Clock: w.clk,
	}
	return w
}

// exchange is one exchange at the tenant's endpoint.
func (w *onCluster) exchange(subject, actor, target, scope string) (*sts.TokenResponse, *sts.Error) {
	return w.svc.Exchange(context.Background(), w.tenant, &sts.ExchangeRequest{SubjectToken: subject, SubjectTokenType: sts.TokenTypeAccessToken,
		ActorToken: actor, ActorTokenType: sts.TokenTypeJWT, Resources: []string{target}, Scope: scope,
		RequestedTokenType: sts.TokenTypeAccessToken})
}

// last is the last audit record.
func (w *onCluster) last() audit.Event { return w.trail.got[len(w.trail.got)-1] }

// TestExchangeOnTheCluster: the whole exchange against a real API server:
// a person's token from a trusted identity provider, agents' pod tokens
// reviewed live, Toolsets and delegations read from their objects, and
// suspending an agent in the middle of a chain stopping the chain.
func TestExchangeOnTheCluster(t *testing.T) {
	w := newOnCluster(t, "sts")
	ctx, now, provider, tenant, ns, issuer, trail, exchange := context.Background(), w.clk.Now(), w.provider, w.tenant, w.ns, w.issuer, w.trail, w.exchange
	read := custosv1alpha1.Tool{Name: "get_invoice", Access: custosv1alpha1.ToolAccessRead}
	write := custosv1alpha1.Tool{Name: "post_entry", Access: custosv1alpha1.ToolAccessWrite}
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "ledger", tenant, fixtures.WithTools(read, write)))
	invoice, _, invoiceToken := agentWithPod(t, ns, tenant, "invoice",
		&custosv1alpha1.AgentDelegation{Groups: []string{"finance-clerks"}}, fixtures.WithToolsets("ledger"))
	_, _, reportsToken := agentWithPod(t, ns, tenant, "reports",
		&custosv1alpha1.AgentDelegation{Groups: []string{"finance-clerks"}, Agents: []custosv1alpha1.AgentReference{{Name: "invoice"}}},
		fixtures.WithToolsets("ledger"))

	person := provider.Token(t, "alice", "custos-sts", now.Add(time.Hour), nil) // scp ledger.read ledger.write, groups finance-clerks

	// alice → invoice → the ledger, read only.
	resp, serr := exchange(person, invoiceToken, ToolsetResource(ns, "ledger"), "ledger.read")
	if serr != nil {
		t.Fatal(serr)
	}
	if c, err := issuer.Verify(resp.AccessToken, ToolsetResource(ns, "ledger"), now); err != nil || c.Scope != "ledger.read" || c.OriginalIssuer != provider.URL {
		t.Errorf("the ledger token: %+v, %v", c, err)
	}
	// alice → invoice → reports, which takes calls from invoice; reports
	// then reads the ledger for alice.
	hop, serr := exchange(person, invoiceToken, "spiffe://cluster.local/ns/"+ns+"/sa/agent-reports", "")
	if serr != nil {
		t.Fatal(serr)
	}
	resp, serr = exchange(hop.AccessToken, reportsToken, ToolsetResource(ns, "ledger"), "ledger.read")
	if serr != nil {
		t.Fatal(serr)
	}
	c, err := issuer.Verify(resp.AccessToken, ToolsetResource(ns, "ledger"), now)
	if err != nil || len(c.Chain()) != 2 || !strings.HasSuffix(c.ClientID, "/sa/agent-reports") {
		t.Errorf("the second hop's token: %+v, %v", c, err)
	}
	// reports cannot hand alice's token back to invoice: invoice takes no
	// calls, and the chain would loop.
	if _, serr := exchange(hop.AccessToken, reportsToken, "spiffe://cluster.local/ns/"+ns+"/sa/agent-invoice", ""); serr == nil {
		t.Error("reports passed alice's token back to invoice")
	}

	// Suspending invoice stops every token that went through it.
	invoice.Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended
	if err := k8sClient.Update(ctx, invoice); err != nil {
		t.Fatal(err)
	}
	if _, serr := exchange(hop.AccessToken, reportsToken, ToolsetResource(ns, "ledger"), "ledger.read"); serr == nil ||
		!strings.Contains(serr.Description, "its chain holds") {
		t.Errorf("a token through a suspended agent: %v, want refused", serr)
	}
	if _, serr := exchange(person, invoiceToken, ToolsetResource(ns, "ledger"), ""); serr == nil || !strings.Contains(serr.Description, "Suspended") {
		t.Errorf("the suspended agent itself: %v, want refused", serr)
	}
	var exchanged, refused int
	for _, e := range trail.got {
		switch e.Action {
		case audit.ActionTokenExchanged:
			exchanged++
		case audit.ActionTokenRefused:
			refused++
		}
	}
	if exchanged != 3 || refused != 3 {
		t.Errorf("%d token.exchanged and %d token.refused records, want 3 and 3", exchanged, refused)
	}
}
