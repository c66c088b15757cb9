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

package evaluate_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/evaluate"
)

var t0 = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

// trail numbers records as a trail does, a second apart.
func trail(events ...audit.Record) []audit.Record {
	for i := range events {
		events[i].Seq, events[i].Type, events[i].Schema = uint64(i), audit.TypeEvent, "custos.dev/audit/v1"
		if events[i].Time.IsZero() {
			events[i].Time = t0.Add(time.Duration(i) * time.Second)
		}
		if events[i].TraceID == "" {
			events[i].TraceID = "trace-" + string(rune('a'+i))
		}
	}
	return events
}

// called is a tool.called record of agent finance/reconciler, with the
// details custos-gateway writes: the tool, its access, and d.
func called(tool, access string, d map[string]string) audit.Record {
	details := map[string]string{"tool": tool, "toolset": "finance/ledger", "access": access, "outcome": "ok",
		"argumentsDigest": "sha256:args", "checks": "caller=pass agent=pass tool=pass"}
	for k, v := range d {
		details[k] = v
	}
	return audit.Record{Action: audit.ActionToolCalled, Decision: audit.DecisionAllow, Policy: "gateway",
		Subject: &audit.Subject{Kind: "Agent", Namespace: "finance", Name: "reconciler"}, Details: details}
}

func refused(agent, reason string, at time.Duration) audit.Record {
	return audit.Record{Action: audit.ActionToolRefused, Decision: audit.DecisionDeny, Policy: reason, Time: t0.Add(at),
		Subject: &audit.Subject{Kind: "Agent", Namespace: "finance", Name: agent},
		Details: map[string]string{"tool": "ledger.export_all", "outcome": "refused"}}
}

// tallied is the manager's final approval.decided record of request ar
// of agent finance/reconciler, in phase, at.
func tallied(ar, phase string, at time.Duration) audit.Record {
	decision := audit.DecisionDeny
	if phase == "Approved" {
		decision = audit.DecisionAllow
	}
	return audit.Record{Action: audit.ActionApprovalDecided, Decision: decision, Policy: "approval", Time: t0.Add(at),
		Subject: &audit.Subject{Kind: "Agent", Namespace: "finance", Name: "reconciler"},
		Details: map[string]string{"approvalRequest": ar, "tool": "ledger.pay", "phase": phase, "quorum": "2"}}
}

// vote is a person's decision on request ar, as the manager records it
// (denied, but not the request's end).
func vote(ar string, at time.Duration) audit.Record {
	r := tallied(ar, "Denied", at)
	r.Details["approvalDecision"], r.Details["decision"], r.Details["approver"] = ar+"-carol", "Deny", "carol"
	return r
}

// exchanged is custos-sts's token.exchanged record of agent
// finance/reconciler, with the chain's depth and its delegation's maximum.
func exchanged(depth, maxDepth string) audit.Record {
	return audit.Record{Action: audit.ActionTokenExchanged, Decision: audit.DecisionAllow, Policy: "delegation",
		Subject: &audit.Subject{Kind: "Agent", Namespace: "finance", Name: "reconciler"},
		Details: map[string]string{"target": "urn:custos:toolset:finance:ledger", "depth": depth, "maxDepth": maxDepth,
			"chain": "newest first: spiffe://cluster.local/ns/finance/sa/agent-reconciler, spiffe://cluster.local/ns/finance/sa/agent-invoice"}}
}

const decided = "sha256:decision"

func rubrics(hits []evaluate.Hit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, h.Rubric)
	}
	return out
}

// Each rubric with the calls it must raise and those it must not.
func TestRubrics(t *testing.T) {
	th := evaluate.DefaultThresholds
	for _, c := range []struct {
		name    string
		records []audit.Record
		want    []string
	}{
		// Irreversible calls and their stated confidence.
		{"an irreversible call with a confidence of 0.3", trail(called("ledger.pay", "Write",
			map[string]string{"irreversible": "true", "decisionDigest": decided, "decision.confidence": "0.3"})), []string{evaluate.RubricLowConfidence}},
		{"an irreversible call with no stated confidence", trail(called("ledger.pay", "Write",
			map[string]string{"irreversible": "true", "decisionDigest": decided})), []string{evaluate.RubricLowConfidence}},
		{"an irreversible call with a confidence of 0.7", trail(called("ledger.pay", "Write",
			map[string]string{"irreversible": "true", "decisionDigest": decided, "decision.confidence": "0.7"})), nil},
		{"a reversible Write with a confidence of 0.3", trail(called("ledger.note", "Write",
			map[string]string{"decisionDigest": decided, "decision.confidence": "0.3"})), nil},

		// Writes without a decision record.
		{"a Write without a decision record", trail(called("ledger.note", "Write", nil)), []string{evaluate.RubricNoDecisionRecord}},
		{"an irreversible call without one", trail(called("ledger.pay", "Write", map[string]string{"irreversible": "true"})),
			[]string{evaluate.RubricLowConfidence, evaluate.RubricNoDecisionRecord}},
		{"a read without one", trail(called("ledger.get_invoice", "Read", nil)), nil},

		// The call against what the decision record stated.
		{"another tool than the stated intent", trail(called("ledger.pay", "Write", map[string]string{"decisionDigest": decided,
			"decision.confidence": "0.9", "irreversible": "true", "decision.intentTool": "ledger.get_invoice"})), []string{evaluate.RubricIntentMismatch}},
		{"other arguments than the stated intent", trail(called("ledger.pay", "Write", map[string]string{"decisionDigest": decided,
			"decision.confidence": "0.9", "irreversible": "true", "decision.intentTool": "ledger.pay", "decision.intentArgumentsDigest": "sha256:other"})),
			[]string{evaluate.RubricIntentMismatch}},
		{"the call the intent stated", trail(called("ledger.pay", "Write", map[string]string{"decisionDigest": decided,
			"decision.confidence": "0.9", "irreversible": "true", "decision.intentTool": "ledger.pay", "decision.intentArgumentsDigest": "sha256:args"})), nil},

		// Probing: five refusals of what it was not given in ten minutes.
		{"five refusals in four minutes", trail(refused("reconciler", "UnknownTool", 0), refused("reconciler", "OutOfScope", time.Minute),
			refused("reconciler", "UnknownTool", 2*time.Minute), refused("reconciler", "InvalidInput", 3*time.Minute),
			refused("reconciler", "PolicyDenied", 4*time.Minute)), []string{evaluate.RubricProbing}},
		{"five refusals over an hour", trail(refused("reconciler", "UnknownTool", 0), refused("reconciler", "UnknownTool", 15*time.Minute),
			refused("reconciler", "UnknownTool", 30*time.Minute), refused("reconciler", "UnknownTool", 45*time.Minute),
			refused("reconciler", "UnknownTool", 60*time.Minute)), nil},
		{"five refusals of two agents", trail(refused("reconciler", "UnknownTool", 0), refused("other", "UnknownTool", time.Minute),
			refused("reconciler", "UnknownTool", 2*time.Minute), refused("other", "UnknownTool", 3*time.Minute),
			refused("reconciler", "UnknownTool", 4*time.Minute)), nil},
		{"five refusals that are not probing (rate limits, caps)", trail(refused("reconciler", "RateLimited", 0), refused("reconciler", "RateLimited", time.Second),
			refused("reconciler", "CapExceeded", 2*time.Second), refused("reconciler", "RateLimited", 3*time.Second),
			refused("reconciler", "UpstreamTimeout", 4*time.Second)), nil},

		// Delegation chains at their delegation's maximum depth.
		{"a chain of 2 where 2 is the most", trail(exchanged("2", "2")), []string{evaluate.RubricMaxDepth}},
		{"a chain of 2 where 4 is the most", trail(exchanged("2", "4")), nil},
		{"a chain of 1 where 1 is the most (an agent acting for a person)", trail(exchanged("1", "1")), nil},
		{"a gateway's exchange (no maximum of its own)", trail(exchanged("2", "")), nil},

		// Approval requests people denied, again and again.
		{"three requests denied in a day", trail(tallied("pay-1", "Denied", 0), tallied("pay-2", "Denied", 5*time.Hour),
			tallied("pay-3", "Denied", 20*time.Hour)), []string{evaluate.RubricDeniedApprovals}},
		{"three requests denied over three days", trail(tallied("pay-1", "Denied", 0), tallied("pay-2", "Denied", 30*time.Hour),
			tallied("pay-3", "Denied", 60*time.Hour)), nil},
		{"two denied, one expired, one approved", trail(tallied("pay-1", "Denied", 0), tallied("pay-2", "Expired", time.Hour),
			tallied("pay-3", "Approved", 2*time.Hour), tallied("pay-4", "Denied", 3*time.Hour)), nil},
		{"three denying votes on one request", trail(vote("pay-1", 0), vote("pay-1", time.Minute), vote("pay-1", 2*time.Minute),
			tallied("pay-1", "Denied", 3*time.Minute)), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			hits := evaluate.Evaluate(c.records, evaluate.Fixed(th))
			g.Expect(rubrics(hits)).To(Equal(c.want))
			for _, h := range hits {
				g.Expect(h.Namespace).To(Equal("finance"))
				g.Expect(h.Agent).To(Equal("reconciler"))
				g.Expect(h.Seqs).NotTo(BeEmpty(), "a hit cites its records")
				g.Expect(h.TraceIDs).To(HaveLen(len(h.Seqs)))
				g.Expect(h.Score).To(And(BeNumerically(">", 0), BeNumerically("<=", 1)))
				g.Expect(h.Why).NotTo(BeEmpty())
			}
		})
	}
}

// A probing hit cites the refusals that made it, says what they were, and
// the next starts after it: twelve refusals in six minutes are two hits of
// five, the last two wait for more; and which refusals make a hit does not
// depend on what comes after them (the evaluator reads a trail in pieces),
// while a refusal too old for the window of a later one is passed over.
func TestProbingCitesItsWindow(t *testing.T) {
	g := NewWithT(t)
	var records []audit.Record
	for i := range 12 {
		records = append(records, refused("reconciler", []string{"UnknownTool", "SpoofedArgument"}[i%2], time.Duration(i)*30*time.Second))
	}
	hits := evaluate.Evaluate(trail(records...), evaluate.Fixed(evaluate.DefaultThresholds))
	g.Expect(hits).To(HaveLen(2))
	g.Expect(hits[0].Seqs).To(Equal([]uint64{0, 1, 2, 3, 4}))
	g.Expect(hits[0].Why).To(Equal("5 calls refused within 2m0s (SpoofedArgument 2, UnknownTool 3)"))
	g.Expect(hits[0].From).To(Equal(t0))
	g.Expect(hits[0].To).To(Equal(t0.Add(2 * time.Minute)))
	g.Expect(hits[1].Seqs).To(Equal([]uint64{5, 6, 7, 8, 9}))
	for n := 5; n <= 12; n++ {
		prefix := evaluate.Evaluate(trail(records[:n]...), evaluate.Fixed(evaluate.DefaultThresholds))
		g.Expect(hits[:len(prefix)]).To(Equal(prefix), "the first %d refusals", n)
	}

	// One refusal, then four more twenty minutes on: the first is too old
	// for their window; a fifth makes the hit.
	late := []audit.Record{refused("reconciler", "UnknownTool", 0)}
	for i := range 5 {
		late = append(late, refused("reconciler", "UnknownTool", 20*time.Minute+time.Duration(i)*time.Second))
	}
	hits = evaluate.Evaluate(trail(late...), evaluate.Fixed(evaluate.DefaultThresholds))
	g.Expect(hits).To(HaveLen(1))
	g.Expect(hits[0].Seqs).To(Equal([]uint64{1, 2, 3, 4, 5}))
}
