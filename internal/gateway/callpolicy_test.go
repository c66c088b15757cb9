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
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/test/fixtures"
)

// Call checks acme's platform team writes for its tool calls.
var (
	amountCap = callCheck("amount-cap", "payments above 1000 need a person at the ledger",
		"{\"arguments\": {\"((amount || `0`) > `1000`)\": false}}")
	treasuryPays = callCheck("treasury-pays", "only the treasury's people may have agents write to the ledger",
		`{"(tool.access != 'Write' || contains(person.groups, 'treasury'))": true}`)
	irreversibleInHours = callCheck("irreversible-in-hours", "irreversible tools are called on weekdays, 08:00-18:00 UTC",
		"{\"(!tool.irreversible || (time.hour >= `8` && time.hour < `18` && !contains(['Saturday', 'Sunday'], time.weekday)))\": true}")
	shortChains = callCheck("short-chains", "no more than two agents between a person and a tool",
		"{\"(length(chain) <= `2`)\": true}")
	calm = callCheck("calm", "an agent refused twice within the hour calls nothing more",
		"{\"recent\": {\"(refused < `2`)\": true}}")
)

func callCheck(name, message, assert string) custosv1alpha1.PolicyCheck {
	return custosv1alpha1.PolicyCheck{Name: name, Message: message, Assert: runtime.RawExtension{Raw: []byte(assert)}}
}

// saturdayNight is Saturday 7 March 2026, 23:00 UTC.
var saturdayNight = time.Date(2026, time.March, 7, 23, 0, 0, 0, time.UTC)

// clusterBoundaries is the cluster as CallPolicy reads it: DataBoundaries,
// and the ledger Toolset, Restricted, in eu-west-1.
type clusterBoundaries struct {
	mu         sync.Mutex
	boundaries []custosv1alpha1.DataBoundary
	err        error
}

func (c *clusterBoundaries) Boundaries(_ context.Context, tenant string) ([]custosv1alpha1.DataBoundary, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	var out []custosv1alpha1.DataBoundary
	for _, b := range c.boundaries {
		if b.Spec.Tenant == tenant {
			out = append(out, b)
		}
	}
	return out, nil
}

func (c *clusterBoundaries) Toolset(_ context.Context, tenant string, key types.NamespacedName) (*custosv1alpha1.Toolset, error) {
	ts := pinnedLedger()
	if key != (types.NamespacedName{Namespace: ts.Namespace, Name: ts.Name}) || ts.Labels[custosv1alpha1.TenantLabel] != tenant {
		return nil, fmt.Errorf("no Toolset %s of tenant %s", key, tenant)
	}
	ts.Spec.DataClassification, ts.Spec.Region = custosv1alpha1.ClassificationRestricted, "eu-west-1"
	return ts, nil
}

// acmeBoundary is acme's DataBoundary with callChecks.
func acmeBoundary(checks ...custosv1alpha1.PolicyCheck) custosv1alpha1.DataBoundary {
	b := fixtures.DataBoundary("acme", fixtures.WithBoundaryName("acme-finance"))
	b.UID, b.Generation, b.Spec.CallChecks = "uid-acme-finance", 1, checks
	return *b
}

// withCallChecks gives the world's gateway a CallPolicy over acme's
// boundary with checks, and the Recent it counts, from its records.
func withCallChecks(checks ...custosv1alpha1.PolicyCheck) func(*testing.T, *world) {
	return func(_ *testing.T, w *world) {
		recent := &Recent{}
		w.server.Policy = &CallPolicy{Boundaries: &clusterBoundaries{boundaries: []custosv1alpha1.DataBoundary{acmeBoundary(checks...)}}, Recent: recent}
		w.server.Audit = recent.Observe(w)
	}
}

// policyRefusals are TestRefusals' cases of the policy over the call.
func policyRefusals() []refusal {
	then := func(setups ...func(*testing.T, *world)) func(*testing.T, *world) {
		return func(t *testing.T, w *world) {
			for _, s := range setups {
				s(t, w)
			}
		}
	}
	const denied = `DataBoundary "acme-finance" check `
	return []refusal{
		{name: "a call check on an argument: paying more than 1000", setup: withCallChecks(amountCap, shortChains),
			tool: "ledger.pay", args: payArgs("amount", 1500), meta: decision(0.9),
			says:   denied + `"amount-cap" failed: payments above 1000 need a person at the ledger: arguments.((amount || ` + "`0`" + `) > ` + "`1000`" + `): Invalid value: true`,
			reason: ReasonPolicyDenied, check: "policy"},
		{name: "a call check on the person's groups: writing without treasury", setup: withCallChecks(treasuryPays),
			tool: "ledger.pay", args: payArgs(), meta: decision(0.9),
			says: denied + `"treasury-pays" failed: only the treasury's people may have agents write to the ledger`, reason: ReasonPolicyDenied, check: "policy"},
		{name: "a call check on the tool and the time: an irreversible call on a Saturday night",
			setup: then(withCallChecks(irreversibleInHours), func(_ *testing.T, w *world) { w.server.Clock = clocktesting.NewFakePassiveClock(saturdayNight) }),
			tool:  "ledger.pay", args: payArgs(), meta: decision(0.9),
			says: denied + `"irreversible-in-hours" failed: irreversible tools are called on weekdays, 08:00-18:00 UTC`, reason: ReasonPolicyDenied, check: "policy"},
		{name: "a call check on the actor chain: three agents between alice and the ledger", setup: withCallChecks(shortChains),
			token: func(t *testing.T, w *world) string {
				return w.token(t, func(c *sts.Claims) {
					c.Act = &sts.Actor{Subject: invoiceAgent, Act: &sts.Actor{Subject: "spiffe://cluster.local/ns/finance/sa/agent-helper",
						Act: &sts.Actor{Subject: "spiffe://cluster.local/ns/finance/sa/agent-planner"}}}
				})
			},
			tool: "ledger.get_invoice", args: okInvoice,
			says: denied + `"short-chains" failed: no more than two agents between a person and a tool`, reason: ReasonPolicyDenied, check: "policy"},
		{name: "a call check on recent behaviour: refused twice within the hour",
			setup: then(withCallChecks(calm), func(t *testing.T, w *world) {
				for range 2 {
					w.call(t, "acme", w.token(t), "ledger.delete_everything", nil, nil)
				}
			}),
			tool: "ledger.get_invoice", args: okInvoice,
			says:   denied + `"calm" failed: an agent refused twice within the hour calls nothing more: recent.(refused < ` + "`2`" + `): Invalid value: false`,
			reason: ReasonPolicyDenied, check: "policy"},
		{name: "call checks stored before they were validated: every call refused",
			setup: withCallChecks(callCheck("clock", "", `{"(time_now())": "x"}`)),
			tool:  "ledger.get_invoice", args: okInvoice,
			says:   `DataBoundary "acme-finance" has callChecks that do not compile, so no call of its tenant passes: spec.callChecks[0].assert`,
			reason: ReasonPolicyDenied, check: "policy"},
		{name: "the tenant's DataBoundaries cannot be read",
			setup: then(withCallChecks(shortChains), func(_ *testing.T, w *world) {
				w.server.Policy.Boundaries.(*clusterBoundaries).err = errors.New("the cache is not synced")
			}),
			tool: "ledger.get_invoice", args: okInvoice,
			says: "cannot be checked against the tenant's DataBoundaries: the cache is not synced", reason: ReasonPolicyDenied, check: "policy"},
	}
}

// TestCallPolicyAllows: a call every callCheck passes reaches the tool
// server, its record naming the policy check passed, and the checks saw
// the call as it goes upstream: the agent, the person, the chain, the
// tool as its Toolset pins it, the arguments with the bound ones filled,
// and the time.
func TestCallPolicyAllows(t *testing.T) {
	w := newWorld(t)
	sees := callCheck("sees-the-call", "", `{
		"agent": {"metadata": {"name": "invoice", "namespace": "finance"}},
		"person": {"sub": "alice"},
		"chain": [{"sub": "`+invoiceAgent+`"}],
		"tool": {"name": "ledger.pay", "toolset": "ledger", "namespace": "finance", "access": "Write", "irreversible": true,
			"classification": "Restricted", "region": "eu-west-1"},
		"arguments": {"invoice": "INV-000001", "amount": 120.5, "requestedBy": "($payload.person.sub)"},
		"recent": {"calls": 1, "refused": 0},
		"time": {"weekday": "Monday", "hour": 10, "now": "2026-03-02T10:00:00Z"}
	}`)
	withCallChecks(amountCap, shortChains, irreversibleInHours)(t, w)
	w.server.Clock = clocktesting.NewFakePassiveClock(time.Date(2026, time.March, 2, 10, 0, 0, 0, time.UTC))

	// One call before: recent counts it.
	if got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil); got.result == nil || got.result.IsError {
		t.Fatalf("get_invoice: %s", got.body)
	}
	// The boundary's next generation adds the check of what is seen.
	next := acmeBoundary(amountCap, shortChains, irreversibleInHours, sees)
	next.Generation++
	w.server.Policy.Boundaries.(*clusterBoundaries).boundaries = []custosv1alpha1.DataBoundary{next}
	calls := w.ledger.Calls()
	got := w.call(t, "acme", w.token(t), "ledger.pay", payArgs(), decision(0.8))
	if got.result == nil || got.result.IsError || w.ledger.Calls() != calls+1 {
		t.Fatalf("pay: %s; %d calls reached the tool server, want 1", got.body, w.ledger.Calls()-calls)
	}
	e, _ := w.lastEvent()
	if e.Action != audit.ActionToolCalled || e.Details["checks"] != "caller=pass agent=pass tool=pass rate=pass decision=pass bind=pass input=pass policy=pass drift=pass upstream=pass output=pass" {
		t.Errorf("the record: %s %q", e.Action, e.Details["checks"])
	}

	// A tenant whose boundaries have no callChecks: no policy check.
	withCallChecks()(t, w)
	if got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil); got.result == nil || got.result.IsError {
		t.Fatalf("get_invoice without callChecks: %s", got.body)
	}
	if e, _ := w.lastEvent(); strings.Contains(e.Details["checks"], "policy") {
		t.Errorf("checks %q: no callChecks, no policy check", e.Details["checks"])
	}
}

// TestCallPolicyDeniesWithEveryFailedCheck: every failed check of every
// boundary of the tenant is named, to the caller and on the record.
func TestCallPolicyDeniesWithEveryFailedCheck(t *testing.T) {
	w := newWorld(t)
	withCallChecks(amountCap)(t, w)
	other := acmeBoundary(treasuryPays)
	other.Name, other.UID = "acme-treasury", "uid-acme-treasury"
	globex := acmeBoundary(shortChains)
	globex.Name, globex.UID, globex.Spec.Tenant = "globex", "uid-globex", "globex"
	b := w.server.Policy.Boundaries.(*clusterBoundaries)
	b.boundaries = append(b.boundaries, other, globex)

	got := w.call(t, "acme", w.token(t), "ledger.pay", payArgs("amount", 5000), decision(0.8))
	if !strings.Contains(got.text(), `DataBoundary "acme-finance" check "amount-cap" failed`) ||
		!strings.Contains(got.text(), `; DataBoundary "acme-treasury" check "treasury-pays" failed`) {
		t.Errorf("the caller was told %q, want both failed checks", got.text())
	}
	e, _ := w.lastEvent()
	if e.Policy != ReasonPolicyDenied || e.Details["detail"] != "failed callChecks: acme-finance/amount-cap, acme-treasury/treasury-pays" {
		t.Errorf("the record: %s %+v", e.Policy, e.Details)
	}
}

// TestCallPolicyCompilesPerGeneration: a boundary's callChecks are
// compiled once per generation; a new generation is compiled again.
func TestCallPolicyCompilesPerGeneration(t *testing.T) {
	p := &CallPolicy{}
	b := acmeBoundary(amountCap)
	first, errs := p.compiled(&b)
	if len(errs) > 0 || first.Len() != 1 {
		t.Fatalf("%v, %v", first, errs)
	}
	b.Spec.CallChecks = append(b.Spec.CallChecks, shortChains)
	if again, _ := p.compiled(&b); again != first {
		t.Errorf("compiled again within a generation")
	}
	b.Generation++
	if next, _ := p.compiled(&b); next == first || next.Len() != 2 {
		t.Errorf("generation %d: %d checks, want the new two", b.Generation, next.Len())
	}
}

// TestRecent: calls count for a minute, refusals for an hour, each agent
// of each tenant apart; records of anything but a call do not count, and
// every record is passed on.
func TestRecent(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, time.March, 2, 10, 0, 0, 0, time.UTC))
	r := &Recent{Clock: clk}
	var passed []audit.Event
	rec := r.Observe(recorderFunc(func(e audit.Event) { passed = append(passed, e) }))
	event := func(action, tenant, agent string) audit.Event {
		return audit.Event{Action: action, Actor: audit.Actor{Kind: audit.ActorAgent, Name: agent}, Subject: audit.Subject{Kind: "Agent", Tenant: tenant}}
	}
	for _, e := range []audit.Event{
		event(audit.ActionToolCalled, "acme", invoiceAgent),
		event(audit.ActionToolRefused, "acme", invoiceAgent),
		event(audit.ActionToolRefused, "acme", invoiceAgent),
		event(audit.ActionToolCalled, "acme", idleAgent),
		event(audit.ActionToolCalled, "globex", invoiceAgent),
		event(audit.ActionGatewayRefused, "acme", invoiceAgent),
		{Action: audit.ActionToolRefused, Subject: audit.Subject{Tenant: "acme"}},
	} {
		rec.Record(context.Background(), e)
	}
	if len(passed) != 7 {
		t.Errorf("%d records passed on, want 7", len(passed))
	}
	for _, tc := range []struct {
		after                  time.Duration
		tenant, agent          string
		wantCalls, wantRefused int
	}{
		{0, "acme", invoiceAgent, 3, 2},
		{0, "acme", idleAgent, 1, 0},
		{0, "globex", invoiceAgent, 1, 0},
		{0, "acme", "nobody", 0, 0},
		{61 * time.Second, "acme", invoiceAgent, 0, 2},
		{61 * time.Minute, "acme", invoiceAgent, 0, 0},
	} {
		clk.SetTime(time.Date(2026, time.March, 2, 10, 0, 0, 0, time.UTC).Add(tc.after))
		if got := r.Counts(tc.tenant, tc.agent); got.Calls != tc.wantCalls || got.Refused != tc.wantRefused {
			t.Errorf("after %s, %s of %s: %+v, want %d calls and %d refused", tc.after, tc.agent, tc.tenant, got, tc.wantCalls, tc.wantRefused)
		}
	}
	// An agent quiet for an hour is forgotten at the next sweep.
	rec.Record(context.Background(), event(audit.ActionToolCalled, "acme", idleAgent))
	r.mu.Lock()
	n := len(r.agents)
	r.mu.Unlock()
	if n != 1 {
		t.Errorf("%d agents kept, want the one that called within the hour", n)
	}
	if got := (*Recent)(nil).Counts("acme", invoiceAgent); got.Calls != 0 || got.Refused != 0 {
		t.Errorf("a nil Recent counts %+v", got)
	}
}

type recorderFunc func(audit.Event)

func (f recorderFunc) Record(_ context.Context, e audit.Event) { f(e) }
