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

package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/util/validation/field"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// Call checks a platform team would write for the finance tenant's tool
// calls.
var (
	// A tool without an amount passes: (amount || `0`).
	amountCap = check("amount-cap", "payments above 1000 need a person at the ledger",
		"{\"arguments\": {\"((amount || `0`) > `1000`)\": false}}")
	treasuryOnly = check("treasury-pays", "only the treasury's people may have agents pay",
		`{"(tool.access != 'Write' || contains(person.groups, 'treasury'))": true}`)
	irreversibleInHours = check("irreversible-in-hours", "irreversible tools are called on weekdays, 08:00-18:00 UTC",
		"{\"(!tool.irreversible || (time.hour >= `8` && time.hour < `18` && !contains(['Saturday', 'Sunday'], time.weekday)))\": true}")
	shortChains = check("short-chains", "no more than two agents between a person and a tool",
		"{\"(length(chain) <= `2`)\": true}")
	calm = check("calm", "an agent refused 5 times within the hour calls nothing more",
		"{\"recent\": {\"(refused < `5`)\": true}}")
	euOnly = check("eu-restricted", "restricted data stays in eu-west-1",
		`{"tool": {"(classification != 'Restricted' || region == 'eu-west-1')": true}}`)
)

// payCall is the call every check above lets through: alice of treasury
// has invoice-reconciler pay 120.50, straight, on a Monday morning.
type payCall struct {
	person PersonInfo
	chain  []ActorInfo
	tool   ToolInfo
	args   map[string]any
	recent RecentInfo
	now    time.Time
}

func newPayCall(change ...func(*payCall)) payCall {
	c := payCall{
		person: PersonInfo{Sub: "alice", Issuer: "https://idp.acme.example", Groups: []string{"finance", "treasury"}},
		chain:  []ActorInfo{{Sub: "spiffe://cluster.local/ns/acme-finance/sa/agent-invoice-reconciler"}},
		tool: ToolInfo{Name: "ledger.pay", Toolset: "ledger", Namespace: "acme-finance", Access: "Write", Irreversible: true,
			Classification: "Restricted", Region: "eu-west-1"},
		args:   map[string]any{"invoice": "INV-000001", "amount": json.Number("120.50"), "requestedBy": "alice"},
		recent: RecentInfo{Calls: 3, Refused: 1},
		now:    monday10,
	}
	for _, ch := range change {
		ch(&c)
	}
	return c
}

func (c payCall) payload(t *testing.T) CallPayload {
	t.Helper()
	p, err := NewCallPayload(newAgent(), c.person, c.chain, c.tool, c.args, c.recent, c.now)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckCall(t *testing.T) {
	checks := []custosv1alpha1.PolicyCheck{amountCap, treasuryOnly, irreversibleInHours, shortChains, calm, euOnly}
	set, errs := CompileAt(field.NewPath("spec", "callChecks"), checks)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	const deny = `DataBoundary "acme-finance" check `
	for _, tc := range []struct {
		name string
		call payCall
		want []Failure
	}{{
		name: "a payment every check allows",
		call: newPayCall(),
	}, {
		name: "an amount above 1000",
		call: newPayCall(func(c *payCall) { c.args["amount"] = json.Number("1500") }),
		want: []Failure{{Check: "amount-cap", Message: deny + `"amount-cap" failed: payments above 1000 need a person at the ledger: ` +
			"arguments.((amount || `0`) > `1000`): Invalid value: true: Expected value: false"}},
	}, {
		name: "a person outside treasury",
		call: newPayCall(func(c *payCall) { c.person.Groups = []string{"finance"} }),
		want: []Failure{{Check: "treasury-pays", Message: deny + `"treasury-pays" failed: only the treasury's people may have agents pay: ` +
			"(tool.access != 'Write' || contains(person.groups, 'treasury')): Invalid value: false: Expected value: true"}},
	}, {
		name: "a person without groups reads, which anyone may",
		call: newPayCall(func(c *payCall) {
			c.person.Groups = nil
			c.tool = ToolInfo{Name: "ledger.get_invoice", Toolset: "ledger", Access: "Read", Classification: "Internal"}
			c.args = map[string]any{"invoiceNumber": "INV-000001"}
		}),
	}, {
		name: "an irreversible call on a Saturday night",
		call: newPayCall(func(c *payCall) { c.now = time.Date(2026, time.March, 7, 23, 0, 0, 0, time.UTC) }),
		want: []Failure{{Check: "irreversible-in-hours", Message: deny + `"irreversible-in-hours" failed: irreversible tools are called on weekdays, 08:00-18:00 UTC: ` +
			"(!tool.irreversible || (time.hour >= `8` && time.hour < `18` && !contains(['Saturday', 'Sunday'], time.weekday))): Invalid value: false: Expected value: true"}},
	}, {
		name: "three agents between alice and the ledger",
		call: newPayCall(func(c *payCall) { c.chain = append(c.chain, ActorInfo{Sub: "b"}, ActorInfo{Sub: "c"}) }),
		want: []Failure{{Check: "short-chains", Message: deny + `"short-chains" failed: no more than two agents between a person and a tool: ` +
			"(length(chain) <= `2`): Invalid value: false: Expected value: true"}},
	}, {
		name: "an agent refused five times within the hour",
		call: newPayCall(func(c *payCall) { c.recent.Refused = 5 }),
		want: []Failure{{Check: "calm", Message: deny + `"calm" failed: an agent refused 5 times within the hour calls nothing more: ` +
			"recent.(refused < `5`): Invalid value: false: Expected value: true"}},
	}, {
		name: "restricted data outside its region, and a large amount: both named, in order",
		call: newPayCall(func(c *payCall) { c.tool.Region = "us-east-1"; c.args["amount"] = float64(5000) }),
		want: []Failure{
			{Check: "amount-cap", Message: deny + `"amount-cap" failed: payments above 1000 need a person at the ledger: ` +
				"arguments.((amount || `0`) > `1000`): Invalid value: true: Expected value: false"},
			{Check: "eu-restricted", Message: deny + `"eu-restricted" failed: restricted data stays in eu-west-1: ` +
				"tool.(classification != 'Restricted' || region == 'eu-west-1'): Invalid value: false: Expected value: true"},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(set.Check(context.Background(), tc.call.payload(t), "acme-finance")).To(Equal(tc.want))
		})
	}
}

// TestCheckCallFailsClosed: an argument the check cannot compare is a
// failure, not a pass.
func TestCheckCallFailsClosed(t *testing.T) {
	g := NewWithT(t)
	set, errs := CompileAt(field.NewPath("spec", "callChecks"), []custosv1alpha1.PolicyCheck{amountCap})
	g.Expect(errs).To(BeEmpty())
	p := newPayCall(func(c *payCall) { c.args["amount"] = "lots" }).payload(t)
	got := set.Check(context.Background(), p, "acme-finance")
	g.Expect(got).To(HaveLen(1))
	g.Expect(got[0].Message).To(ContainSubstring(`check "amount-cap" failed`))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got = set.Check(ctx, newPayCall().payload(t), "acme-finance")
	g.Expect(got).To(HaveLen(1))
	g.Expect(got[0].Message).To(ContainSubstring("cannot be evaluated: context canceled"))
}

func TestNewCallPayload(t *testing.T) {
	g := NewWithT(t)
	args := map[string]any{
		"invoice": "INV-000001",
		"amount":  json.Number("120.50"),
		"lines":   []any{map[string]any{"qty": json.Number("2")}, json.Number("-1e3")},
		"count":   7,
		"note":    nil,
	}
	p, err := NewCallPayload(newAgent(), PersonInfo{Sub: "alice", Groups: []string{"treasury"}},
		[]ActorInfo{{Sub: "agent-a"}, {Sub: "agent-b"}}, newPayCall().tool, args, RecentInfo{Calls: 2, Refused: 1},
		time.Date(2026, time.March, 2, 23, 30, 0, 0, time.FixedZone("AEDT", 11*3600)))
	g.Expect(err).NotTo(HaveOccurred())

	// The Agent as in the admission payload.
	g.Expect(p.Agent).To(HaveKeyWithValue("kind", "Agent"))
	g.Expect(p.Agent).NotTo(HaveKey("status"))
	g.Expect(p.Agent["metadata"]).NotTo(HaveKey("managedFields"))
	// Numbers are float64, as the JMESPath functions require, however
	// they came.
	g.Expect(p.Arguments).To(Equal(map[string]any{
		"invoice": "INV-000001",
		"amount":  120.5,
		"lines":   []any{map[string]any{"qty": float64(2)}, float64(-1000)},
		"count":   float64(7),
		"note":    nil,
	}))
	g.Expect(p.Time).To(Equal(TimeInfo{Now: "2026-03-02T12:30:00Z", Hour: 12, Weekday: "Monday"}))

	v := p.value()
	g.Expect(v).To(HaveKeyWithValue("person", map[string]any{"sub": "alice", "issuer": "", "groups": []any{"treasury"}}))
	g.Expect(v).To(HaveKeyWithValue("chain", []any{map[string]any{"sub": "agent-a"}, map[string]any{"sub": "agent-b"}}))
	g.Expect(v).To(HaveKeyWithValue("tool", map[string]any{"name": "ledger.pay", "toolset": "ledger", "namespace": "acme-finance",
		"access": "Write", "irreversible": true, "classification": "Restricted", "region": "eu-west-1"}))
	g.Expect(v).To(HaveKeyWithValue("recent", map[string]any{"calls": float64(2), "refused": float64(1)}))
	g.Expect(v).To(HaveKeyWithValue("time", map[string]any{"now": "2026-03-02T12:30:00Z", "hour": float64(12), "weekday": "Monday"}))

	// The arguments are copied: what a check sees never reaches what goes
	// upstream.
	p.Arguments["lines"].([]any)[0].(map[string]any)["qty"] = float64(99)
	g.Expect(args["lines"].([]any)[0]).To(Equal(map[string]any{"qty": json.Number("2")}))

	// Without an Agent, groups, chain or arguments, nothing is null but the
	// Agent.
	p, err = NewCallPayload(nil, PersonInfo{Sub: "alice"}, nil, ToolInfo{Name: "ledger.get_invoice"}, nil, RecentInfo{}, monday10)
	g.Expect(err).NotTo(HaveOccurred())
	v = p.value()
	g.Expect(v).To(HaveKeyWithValue("agent", BeNil()))
	g.Expect(v).To(HaveKeyWithValue("chain", []any{}))
	g.Expect(v).To(HaveKeyWithValue("arguments", map[string]any{}))
	g.Expect(v["person"]).To(HaveKeyWithValue("groups", []any{}))

	// A number no float64 holds is refused, not rounded to infinity.
	_, err = NewCallPayload(nil, PersonInfo{}, nil, ToolInfo{}, map[string]any{"amount": json.Number("1e400")}, RecentInfo{}, monday10)
	g.Expect(err).To(MatchError(ContainSubstring("argument amount: the number 1e400 cannot be compared by checks")))
}

// FuzzCheckCall feeds arbitrary JSON as a call's arguments, decoded as
// custos-gateway decodes them (numbers kept as written). Whatever they are,
// NewCallPayload either refuses them or builds a payload the checks run
// over without panicking, each failing at most once and naming itself.
func FuzzCheckCall(f *testing.F) {
	set, errs := CompileAt(field.NewPath("spec", "callChecks"),
		[]custosv1alpha1.PolicyCheck{amountCap, treasuryOnly, irreversibleInHours, shortChains, calm, euOnly,
			check("sorted", "", "{\"(sort_by(arguments.lines || `[]`, &qty)[0].qty || `0`)\": 2}")})
	if len(errs) > 0 {
		f.Fatal(errs)
	}
	for _, seed := range []string{`{"invoice": "INV-000001", "amount": 120.50}`, `{"amount": 1e400}`, `{"amount": "lots"}`,
		`{"lines": [{"qty": 3}, {"qty": 2}, {"qty": "x"}]}`, `{"amount": [1, {"a": null}], "": true}`, `{}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var args map[string]any
		if dec.Decode(&args) != nil {
			return
		}
		c := newPayCall(func(c *payCall) { c.args = args })
		p, err := NewCallPayload(newAgent(), c.person, c.chain, c.tool, c.args, c.recent, c.now)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, f := range set.Check(context.Background(), p, "acme-finance") {
			if seen[f.Check] || !strings.HasPrefix(f.Message, `DataBoundary "acme-finance" check "`+f.Check+`" failed`) {
				t.Fatalf("failure %+v: named twice, or not naming its check", f)
			}
			if strings.Contains(f.Message, "evaluation panicked") {
				t.Fatalf("the engine panicked on %s: %s", raw, f.Message)
			}
			seen[f.Check] = true
		}
	})
}

// BenchmarkCheckCall is what one tool call pays for a boundary with six
// call checks: building the payload and checking it.
func BenchmarkCheckCall(b *testing.B) {
	set, errs := CompileAt(field.NewPath("spec", "callChecks"),
		[]custosv1alpha1.PolicyCheck{amountCap, treasuryOnly, irreversibleInHours, shortChains, calm, euOnly})
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	c, agent := newPayCall(), newAgent()
	b.ReportAllocs()
	for b.Loop() {
		p, err := NewCallPayload(agent, c.person, c.chain, c.tool, c.args, c.recent, c.now)
		if err != nil {
			b.Fatal(err)
		}
		if got := set.Check(context.Background(), p, "acme-finance"); len(got) != 0 {
			b.Fatal(got)
		}
	}
}
