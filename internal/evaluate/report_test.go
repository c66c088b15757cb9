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
	"encoding/json"
	"strconv"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/evaluate"
)

func agentRecord(action string, d map[string]string) audit.Record {
	return audit.Record{Action: action, Subject: &audit.Subject{Kind: "Agent", Namespace: "finance", Name: "reconciler"}, Details: d}
}

// month is a scripted month of agent finance/reconciler: 20 calls of
// ledger.get_invoice (one answered with a tool error), 5 of
// crm.find_contact, 3 refused, approvals, a freeze lifted as a false
// positive, Findings opened and reviewed, and records that count for
// nothing in a report.
func month() []audit.Record {
	var rs []audit.Record
	for i := range 20 {
		d := map[string]string{}
		if i == 0 {
			d["outcome"] = "toolError"
		}
		rs = append(rs, called("get_invoice", "Read", d))
	}
	// As custos-gateway records them: the name the agent called,
	// <toolset>.<tool>.
	for range 5 {
		rs = append(rs, called("crm.find_contact", "Read", map[string]string{"toolset": "finance/crm"}))
	}
	rs = append(rs, refused("reconciler", "UnknownTool", 0), refused("reconciler", "UnknownTool", 0), refused("reconciler", "OutOfScope", 0),
		// custos-gateway's records of a call held: of the request, naming
		// the agent.
		requested("reconciler"), requested("reconciler"), requested("payer"),
		agentRecord(audit.ActionApprovalDecided, map[string]string{"tool": "pay_invoice", "phase": "Approved"}),
		// A person's decision counted is not the request's tally.
		agentRecord(audit.ActionApprovalDecided, map[string]string{"tool": "pay_invoice", "phase": "Pending", "approvalDecision": "d-1"}),
		agentRecord(audit.ActionApprovalDecided, map[string]string{"tool": "pay_invoice", "phase": "Denied"}),
		// The approval of a change of the Agent is its owners', not its.
		agentRecord(audit.ActionApprovalRequested, map[string]string{"generation": "3"}),
		agentRecord(audit.ActionApprovalDecided, map[string]string{"phase": "Denied", "generation": "3"}),
		agentRecord(audit.ActionAgentFrozen, nil),
		agentRecord(audit.ActionAgentUnfrozen, map[string]string{"verdict": "FalsePositive"}),
		agentRecord(audit.ActionFindingOpened, nil),
		// Opened again: the same Finding.
		agentRecord(audit.ActionFindingOpened, map[string]string{"reopened": "true"}),
		agentRecord(audit.ActionFindingReviewed, map[string]string{"verdict": "Confirmed"}),
		agentRecord(audit.ActionTokenExchanged, nil), agentRecord(audit.ActionLeaseIssued, nil))
	// Another agent's call.
	other := called("pay_invoice", "Write", nil)
	other.Subject.Name = "payer"
	rs = append(rs, other)
	return trail(rs...)
}

func requested(agent string) audit.Record {
	return audit.Record{Action: audit.ActionApprovalRequested, Subject: &audit.Subject{Kind: "ApprovalRequest", Namespace: "finance", Name: agent + "-pay-1"},
		Details: map[string]string{"agent": agent, "agentUID": "uid-" + agent, "tool": "pay_invoice", "toolset": "finance/ledger"}}
}

func countMonth(t *testing.T) custosv1alpha1.AgentReportStatus {
	t.Helper()
	var st custosv1alpha1.AgentReportStatus
	for _, r := range month() {
		if evaluate.Counts(&r) && (r.Subject.Name == "reconciler" || r.Details["agent"] == "reconciler") {
			evaluate.Count(&st, &r)
		}
	}
	return st
}

// TestReportRefusalKinds: 31 kinds of refusal, then Other: a report never
// holds more than its status allows.
func TestReportRefusalKinds(t *testing.T) {
	g := NewWithT(t)
	var st custosv1alpha1.AgentReportStatus
	for i := range 40 {
		r := refused("reconciler", "Reason"+strconv.Itoa(i), 0)
		evaluate.Count(&st, &r)
	}
	g.Expect(st.Refusals).To(HaveLen(32))
	g.Expect(st.Refusals[31]).To(Equal(custosv1alpha1.ReportCount{Kind: "Other", Count: 9}))
	g.Expect(st.Calls).To(BeEquivalentTo(40))
}

// TestReportCounts: a month of records, counted by kind.
func TestReportCounts(t *testing.T) {
	g := NewWithT(t)
	st := countMonth(t)
	g.Expect(st.Calls).To(BeEquivalentTo(28), "25 passed and 3 refused")
	g.Expect(st.Succeeded).To(BeEquivalentTo(24))
	g.Expect(st.Tools).To(Equal([]custosv1alpha1.ToolUse{
		{Toolset: "finance/ledger", Tool: "get_invoice", Calls: 20, Errors: 1}, {Toolset: "finance/crm", Tool: "find_contact", Calls: 5}}))
	g.Expect(st.Refusals).To(ConsistOf(custosv1alpha1.ReportCount{Kind: "UnknownTool", Count: 2}, custosv1alpha1.ReportCount{Kind: "OutOfScope", Count: 1}))
	g.Expect(st.Approvals).To(ConsistOf(custosv1alpha1.ReportCount{Kind: "Requested", Count: 2}, custosv1alpha1.ReportCount{Kind: "Approved", Count: 1},
		custosv1alpha1.ReportCount{Kind: "Denied", Count: 1}))
	g.Expect(st.Freezes).To(ConsistOf(custosv1alpha1.ReportCount{Kind: "Frozen", Count: 1}, custosv1alpha1.ReportCount{Kind: "FalsePositive", Count: 1}))
	g.Expect(st.Findings).To(ConsistOf(custosv1alpha1.ReportCount{Kind: "Opened", Count: 1}, custosv1alpha1.ReportCount{Kind: "Confirmed", Count: 1}))
	g.Expect(st.AsOf).NotTo(BeNil())
}

func reconciler(refs ...custosv1alpha1.ToolsetReference) *custosv1alpha1.Agent {
	return &custosv1alpha1.Agent{ObjectMeta: metav1.ObjectMeta{Namespace: "finance", Name: "reconciler"},
		Spec: custosv1alpha1.AgentSpec{ToolsetRefs: refs}}
}

func grantedToolset(name string, tools ...string) evaluate.GrantedToolset {
	return evaluate.GrantedToolset{Ref: custosv1alpha1.ToolsetReference{Name: name}, Key: types.NamespacedName{Namespace: "finance", Name: name}, Tools: tools}
}

// TestAssess: the score by its formula, and each recommendation with what
// makes it.
func TestAssess(t *testing.T) {
	g := NewWithT(t)
	st := countMonth(t)
	agent := reconciler(custosv1alpha1.ToolsetReference{Name: "ledger"}, custosv1alpha1.ToolsetReference{Name: "crm"},
		custosv1alpha1.ToolsetReference{Name: "waiting"})
	granted := []evaluate.GrantedToolset{grantedToolset("ledger", "get_invoice", "list_invoices", "pay_invoice"), grantedToolset("crm", "find_contact"),
		grantedToolset("docs", "search")}

	// 24 of 28 succeeded (85.7), one Finding confirmed (-10), one approval
	// denied (-5): 70.
	a := evaluate.Assess(&st, agent, granted, "2026-11", true)
	g.Expect(*a.SuccessPercent).To(BeEquivalentTo(85))
	g.Expect(*a.Score).To(BeEquivalentTo(70))
	g.Expect(a.Formula).To(Equal("100 × 24/28 calls succeeded − 10 × 1 Findings confirmed − 25 × 0 freezes confirmed as misuse − 5 × 1 approvals denied = 70 (0 to 100)"))

	// Narrow: ledger to the tool it called; crm, all of it called, as it
	// was; waiting (not in force) as it was; docs is not in the spec.
	g.Expect(a.Recommendation).To(Equal(custosv1alpha1.RecommendNarrow))
	g.Expect(a.Reason).To(Equal("it called 2 of the 4 tools it holds in 2026-11; not ledger.list_invoices, ledger.pay_invoice"))
	var patch struct {
		Spec struct {
			ToolsetRefs []custosv1alpha1.ToolsetReference `json:"toolsetRefs"`
		} `json:"spec"`
	}
	g.Expect(json.Unmarshal([]byte(a.Patch), &patch)).To(Succeed())
	g.Expect(patch.Spec.ToolsetRefs).To(Equal([]custosv1alpha1.ToolsetReference{
		{Name: "ledger", Tools: []string{"get_invoice"}}, {Name: "crm"}, {Name: "waiting"}}))

	// A Toolset in force it never called goes from the patch.
	notCalled := append(granted, grantedToolset("waiting", "anything"))
	a = evaluate.Assess(&st, agent, notCalled, "2026-11", true)
	g.Expect(a.Patch).To(Equal(`{"spec":{"toolsetRefs":[{"name":"ledger","tools":["get_invoice"]},{"name":"crm"}]}}`))

	// Keep: every tool in force called.
	keep := reconciler(custosv1alpha1.ToolsetReference{Name: "ledger", Tools: []string{"get_invoice"}}, custosv1alpha1.ToolsetReference{Name: "crm"})
	a = evaluate.Assess(&st, keep, []evaluate.GrantedToolset{grantedToolset("ledger", "get_invoice"), grantedToolset("crm", "find_contact")}, "2026-11", false)
	g.Expect(a.Recommendation).To(Equal(custosv1alpha1.RecommendKeep))
	g.Expect(a.Patch).To(BeEmpty())
	g.Expect(a.Reason).To(Equal("it called every tool it holds in 2026-11 so far (ledger.get_invoice, crm.find_contact)"))

	// Decommission: a freeze confirmed as misuse, whatever it called.
	misuse := st.DeepCopy()
	misuse.Freezes = append(misuse.Freezes, custosv1alpha1.ReportCount{Kind: "ConfirmedMisuse", Count: 1})
	a = evaluate.Assess(misuse, keep, nil, "2026-11", true)
	g.Expect(a.Recommendation).To(Equal(custosv1alpha1.RecommendDecommission))
	g.Expect(a.Reason).To(Equal("1 freeze(s) of it confirmed as misuse in 2026-11"))
	g.Expect(*a.Score).To(BeEquivalentTo(45))
	g.Expect(a.Patch).To(Equal(`{"spec":{"lifecycle":{"state":"Decommissioned"}}}`))

	// Nothing called in a running month: no recommendation yet (not
	// Decommission on the 1st of each month); no score without calls.
	idle := custosv1alpha1.AgentReportStatus{}
	a = evaluate.Assess(&idle, keep, nil, "2026-12", false)
	g.Expect(a.Recommendation).To(BeEmpty())
	g.Expect(a.Patch).To(BeEmpty())
	g.Expect(a.Reason).To(Equal("no recommendation before 2026-12 is over: it called no tool in it so far"))
	g.Expect(a.Score).To(BeNil())
	g.Expect(a.Formula).To(Equal("no score: no call in 2026-12 so far"))
	// Decommission: a month over with no tool called (refusals are not
	// calls of a tool).
	a = evaluate.Assess(&idle, keep, nil, "2026-11", true)
	g.Expect(a.Recommendation).To(Equal(custosv1alpha1.RecommendDecommission))
	g.Expect(a.Reason).To(Equal("it called no tool in 2026-11"))
	refusedOnly := custosv1alpha1.AgentReportStatus{Calls: 4, Refusals: []custosv1alpha1.ReportCount{{Kind: "UnknownTool", Count: 4}}}
	a = evaluate.Assess(&refusedOnly, keep, nil, "2026-12", true)
	g.Expect(a.Recommendation).To(Equal(custosv1alpha1.RecommendDecommission))
	g.Expect(*a.Score).To(BeEquivalentTo(0))
}

// TestReportNames: <agent>-<yyyymm>-<UID digest>, within a name's 253
// bytes; a new Agent of the same name has another.
func TestReportNames(t *testing.T) {
	g := NewWithT(t)
	name := evaluate.ReportName("reconciler", "uid-1", "2026-12")
	g.Expect(name).To(MatchRegexp(`^reconciler-202612-[0-9a-f]{8}$`))
	g.Expect(evaluate.ReportName("reconciler", "uid-2", "2026-12")).NotTo(Equal(name))
	long := ""
	for range 50 {
		long += "agent"
	}
	name = evaluate.ReportName(long, "uid-1", "2026-12")
	g.Expect(len(name)).To(BeNumerically("<=", 253))
	g.Expect(name).To(MatchRegexp(`-202612-[0-9a-f]{8}$`))
	g.Expect(evaluate.ReportName(long+"x", "uid-1", "2026-12")).NotTo(Equal(name))
	from, to, err := evaluate.PeriodBounds("2026-12")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(from.String()).To(Equal("2026-12-01 00:00:00 +0000 UTC"))
	g.Expect(to.String()).To(Equal("2027-01-01 00:00:00 +0000 UTC"))
	_, _, err = evaluate.PeriodBounds("2026-13")
	g.Expect(err).To(MatchError(ContainSubstring(`period "2026-13" is not a month`)))
}
