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

package controllers

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/evaluate"
	stscluster "github.com/custos-dev/custos/internal/sts/cluster"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestAgentReports: an agent's month, scripted on a custos-gateway trail,
// is counted into its AgentReport once (read twice, counted once), scored
// by its formula and found to hold tools it did not call: the report
// proposes a patch that narrows it. Only an owner who holds the verb
// review signs the report off (as the API server authenticated them; on
// the report and the trail), and the patch, applied, narrows what
// custos-gateway serves to what the agent called, which it still may.
func TestAgentReports(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	reportClock := clocktesting.NewFakeClock(time.Now())
	stopManager()
	g.Expect(startManager(func(o *Options) { o.Clock = reportClock })).To(Succeed())
	t.Cleanup(func() {
		stopManager()
		if err := startManager(); err != nil {
			t.Errorf("restarting the suite's manager: %v", err)
		}
	})

	tenant := fixtures.UniqueTenant("rpt")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	owner := fixtures.Create(t, k8sClient, chartTenantRole(t, "agent-owner", ns+"-agent-owner"))
	approver := fixtures.Create(t, k8sClient, chartTenantRole(t, "approver", ns+"-approver"))
	// Ulrich may change the Agent and attest it, but holds no verb review.
	updater := fixtures.Create(t, k8sClient, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: ns + "-updater"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{custosv1alpha1.GroupVersion.Group}, Resources: []string{"agents"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{custosv1alpha1.GroupVersion.Group}, Resources: []string{"agentattestations"}, Verbs: []string{"create"}},
	}})
	bindInNamespace(t, ns, "owner-olga", owner.Name, "olga")
	bindInNamespace(t, ns, "owner-bot", owner.Name, "system:serviceaccount:"+ns+":ci")
	bindInNamespace(t, ns, "approver-anna", approver.Name, "anna")
	bindInNamespace(t, ns, "updater-ulrich", updater.Name, "ulrich")
	bindInNamespace(t, ns, "edit-eve", "edit", "eve")

	read := custosv1alpha1.ToolAccessRead
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "ledger", tenant, fixtures.WithTools(
		custosv1alpha1.Tool{Name: "get_invoice", Access: read}, custosv1alpha1.Tool{Name: "list_invoices", Access: read},
		custosv1alpha1.Tool{Name: "pay_invoice", Access: custosv1alpha1.ToolAccessWrite, Irreversible: true})))
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "crm", tenant, fixtures.WithTools(
		custosv1alpha1.Tool{Name: "find_contact", Access: read}, custosv1alpha1.Tool{Name: "update_contact", Access: custosv1alpha1.ToolAccessWrite})))
	agent := newAgent(ns, "reconciler", tenant, fixtures.WithToolsets("ledger", "crm"))
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, ns, "agent-reconciler") }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(a.GrantedToolsetRefs()).To(HaveLen(2))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	agent = getAgent(g, agent)
	report := func(g Gomega, name string) *custosv1alpha1.AgentReport {
		rep := &custosv1alpha1.AgentReport{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rep)).To(Succeed())
		return rep
	}

	// The running month's report is there from the start, the agent's:
	// nothing called so far.
	now := reportClock.Now().UTC()
	current := evaluate.ReportName("reconciler", string(agent.UID), evaluate.Period(now))
	g.Eventually(func(g Gomega) {
		rep := report(g, current)
		g.Expect(rep.Spec.AgentUID).To(Equal(string(agent.UID)))
		g.Expect(rep.OwnerReferences).To(BeEmpty(), "a record: it outlives its Agent")
		g.Expect(rep.Labels).To(HaveKeyWithValue(custosv1alpha1.TenantLabel, tenant))
		g.Expect(rep.Status.Recommendation).To(BeEmpty(), "no Decommission on the 1st of the month")
		g.Expect(rep.Status.Reason).To(Equal("no recommendation before " + evaluate.Period(now) + " is over: it called no tool in it so far"))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Last month, as custos-gateway recorded it: get_invoice three times
	// a day, one of them answered with a tool error on the 12th;
	// find_contact each Monday; a tool it was not given, twice.
	from := time.Date(now.Year(), now.Month()-1, 1, 9, 0, 0, 0, time.UTC)
	period := evaluate.Period(from)
	subject := audit.Subject{Kind: "Agent", Namespace: ns, Name: "reconciler", UID: string(agent.UID), Tenant: tenant}
	gw := newGatewayTrail(t, from)
	call := func(toolset, tool, outcome string) {
		gw.record(audit.Event{Action: audit.ActionToolCalled, Decision: audit.DecisionAllow, Policy: "gateway", Subject: subject,
			Details: map[string]string{"toolset": ns + "/" + toolset, "tool": toolset + "." + tool, "access": "Read", "outcome": outcome}})
	}
	calls, errs, contacts := 0, 0, 0
	for day := from; day.Month() == from.Month(); day = day.Add(24 * time.Hour) {
		gw.clock.SetTime(day)
		for n := range 3 {
			outcome := "ok"
			if day.Day() == 12 && n == 0 {
				outcome, errs = "toolError", errs+1
			}
			call("ledger", "get_invoice", outcome)
			calls++
		}
		if day.Weekday() == time.Monday {
			call("crm", "find_contact", "ok")
			contacts++
		}
		if day.Day() == 20 {
			for range 2 {
				gw.record(audit.Event{Action: audit.ActionToolRefused, Decision: audit.DecisionDeny, Policy: "UnknownTool", Subject: subject,
					Details: map[string]string{"tool": "ledger.export_all", "outcome": "refused"}})
			}
		}
	}
	stateNS := fixtures.CreateTenantNamespace(t, k8sClient, fixtures.UniqueTenant("rpts"))
	runner := func() *evaluate.Runner {
		return &evaluate.Runner{Reader: k8sClient, Client: k8sClient, Namespace: stateNS, Audit: auditLog, Actor: ControllerActor,
			Trails: []evaluate.Trail{evaluate.DirTrail("custos-gateway/gw-0", gw.dir)}}
	}
	g.Expect(runner().Pass(ctx)).To(Succeed())
	total := int64(calls + contacts + 2)
	narrowed := `{"spec":{"toolsetRefs":[{"name":"ledger","tools":["get_invoice"]},{"name":"crm","tools":["find_contact"]}]}}`
	lastName := evaluate.ReportName("reconciler", string(agent.UID), period)
	check := func(g Gomega) *custosv1alpha1.AgentReport {
		rep := report(g, lastName)
		st := rep.Status
		g.Expect(rep.Spec.Period).To(Equal(period))
		g.Expect(st.Calls).To(Equal(total))
		g.Expect(st.Succeeded).To(BeEquivalentTo(calls + contacts - errs))
		g.Expect(st.Tools).To(ConsistOf(
			custosv1alpha1.ToolUse{Toolset: ns + "/ledger", Tool: "get_invoice", Calls: int64(calls), Errors: int64(errs)},
			custosv1alpha1.ToolUse{Toolset: ns + "/crm", Tool: "find_contact", Calls: int64(contacts)}))
		g.Expect(st.Refusals).To(ConsistOf(custosv1alpha1.ReportCount{Kind: "UnknownTool", Count: 2}))
		g.Expect(st.NotCounted).To(ContainSubstring("the manager's decisions (freezes, approvals decided, Findings opened and reviewed) are not counted"))
		g.Expect(st.Score).NotTo(BeNil())
		succeeded := calls + contacts - errs
		g.Expect(*st.Score).To(BeEquivalentTo(succeeded * 100 / int(total)))
		g.Expect(st.Formula).To(HavePrefix("100 × " + itoa(succeeded) + "/" + itoa(int(total)) + " calls succeeded − 10 × 0 Findings confirmed"))
		g.Expect(st.Recommendation).To(Equal(custosv1alpha1.RecommendNarrow))
		g.Expect(st.Reason).To(Equal("it called 2 of the 5 tools it holds in " + period + "; not ledger.list_invoices, ledger.pay_invoice, crm.update_contact"))
		g.Expect(st.Patch).To(Equal(narrowed))
		g.Expect(st.To.Time).To(BeTemporally("==", time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)))
		return rep
	}
	g.Eventually(check).WithTimeout(eventually).WithPolling(poll).Should(Not(BeNil()))

	// Its state lost, the evaluator reads the trail from the start again:
	// nothing is counted twice.
	g.Expect(k8sClient.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: stateNS, Name: evaluate.StateName}})).To(Succeed())
	g.Expect(runner().Pass(ctx)).To(Succeed())
	rep := check(g)
	g.Expect(rep.Status.Patch).To(Equal(narrowed))

	// Signing it off takes an owner, a person, who holds the verb review.
	attest := func(user, reportName string) (*custosv1alpha1.AgentAttestation, error) {
		a := &custosv1alpha1.AgentAttestation{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "reconciler-"},
			Spec: custosv1alpha1.AgentAttestationSpec{Agent: "reconciler", Report: reportName, Comment: "usage reviewed: narrow it"}}
		return a, asUser(t, user).Create(ctx, a)
	}
	// A namespace edit user, and an approver (who reviews Findings, but
	// owns nothing), may not attest at all.
	for _, user := range []string{"eve", "anna"} {
		_, err := attest(user, lastName)
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s: %v", user, err)
	}
	for _, tc := range []struct{ user, report, want string }{
		{"ulrich", lastName, "spec.attester: Forbidden: ulrich may not review Agent " + ns + "/reconciler (verb review on agents): signing off its report (spec.report) needs it"},
		{"system:serviceaccount:" + ns + ":ci", lastName, "is a ServiceAccount"},
		{"olga", "reconciler-190001-00000000", `spec.report: Not found: "reconciler-190001-00000000"`},
	} {
		_, err := attest(tc.user, tc.report)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: %v", tc.user, err)
		g.Expect(err.Error()).To(ContainSubstring(tc.want), tc.user)
	}
	// Another agent's report is not this one's to sign.
	other := fixtures.Create(t, k8sClient, &custosv1alpha1.AgentReport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payer-" + strings.ReplaceAll(period, "-", "")},
		Spec: custosv1alpha1.AgentReportSpec{Agent: "payer", AgentUID: "uid-payer", Period: period}})
	_, err := attest("olga", other.Name)
	g.Expect(err).To(MatchError(ContainSubstring("spec.report: Invalid value: \"" + other.Name + "\": AgentReport " + other.Name + " is of Agent payer")))

	seen := check(g).Status
	signed, err := attest("olga", lastName)
	g.Expect(err).NotTo(HaveOccurred())
	// Admission stamped what was signed: the report as it stood.
	g.Expect(signed.Spec.ReportSeen).NotTo(BeNil())
	g.Expect(*signed.Spec.ReportSeen).To(And(HaveField("Calls", total), HaveField("Recommendation", custosv1alpha1.RecommendNarrow),
		HaveField("Score", Equal(seen.Score)), HaveField("Reason", seen.Reason)))
	reviewed := func(g Gomega) []audit.Record {
		var out []audit.Record
		for _, r := range auditTrail(agent.UID) {
			if r.Action == audit.ActionAgentReviewed {
				out = append(out, r)
			}
		}
		return out
	}
	g.Eventually(func(g Gomega) {
		st := report(g, lastName).Status
		g.Expect(st.SignOffs).To(HaveLen(1))
		so := st.SignOffs[0]
		g.Expect(so.Attestation).To(Equal(signed.Name))
		g.Expect(so.AttestationUID).To(Equal(string(signed.UID)))
		g.Expect(so.By.Username).To(Equal("olga"))
		g.Expect(so.Signed).To(Equal(*signed.Spec.ReportSeen))
		g.Expect(so.Comment).To(Equal("usage reviewed: narrow it"))
		g.Expect(st.SigningOff).To(BeEmpty())
		recs := reviewed(g)
		g.Expect(recs).To(HaveLen(1))
		g.Expect(recs[0].Details).To(And(HaveKeyWithValue("report", lastName), HaveKeyWithValue("attester", "olga"),
			HaveKeyWithValue("recommendation", "Narrow"), HaveKeyWithValue("patch", narrowed), HaveKeyWithValue("period", period),
			HaveKeyWithValue("calls", itoa(int(total)))))
		g.Expect(eventReasons(g, agent)).To(ContainElement("ReportSignedOff"))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	// Recorded once, however often the report is written and read since.
	g.Expect(runner().Pass(ctx)).To(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(reviewed(g)).To(HaveLen(1))
		g.Expect(report(g, lastName).Status.SignOffs).To(HaveLen(1))
	}).WithTimeout(2 * time.Second).WithPolling(poll).Should(Succeed())
	// Nobody but Custos writes a report: not its owner.
	changed := rep.DeepCopy()
	changed.Status.Recommendation = custosv1alpha1.RecommendKeep
	g.Expect(apierrors.IsForbidden(asUser(t, "olga").Status().Update(ctx, changed))).To(BeTrue())
	g.Expect(apierrors.IsForbidden(asUser(t, "olga").Delete(ctx, changed))).To(BeTrue())

	// The owner applies the patch: narrowed at once, and still working:
	// custos-gateway serves it the tools it called, and no other.
	g.Expect(asUser(t, "olga").Patch(ctx, &custosv1alpha1.Agent{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reconciler"}},
		client.RawPatch(types.MergePatchType, []byte(rep.Status.Patch)))).To(Succeed())
	source := &stscluster.AgentToolsets{Reader: k8sClient, TrustDomain: testTrustDomain}
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		expectCondition(g, a, custosv1alpha1.ChangesApprovedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(a.Status.Granted.Generation).To(Equal(a.Generation))
		_, sets, err := source.Caller(ctx, tenant, "spiffe://"+testTrustDomain+"/ns/"+ns+"/sa/agent-reconciler")
		g.Expect(err).NotTo(HaveOccurred())
		var served []string
		for _, ts := range sets {
			for _, tool := range ts.Spec.Tools {
				served = append(served, ts.Name+"."+tool.Name)
			}
		}
		g.Expect(served).To(Equal([]string{"ledger.get_invoice", "crm.find_contact"}))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// This month it calls both: the report says keep it.
	gw.clock.SetTime(now)
	call("ledger", "get_invoice", "ok")
	call("crm", "find_contact", "ok")
	g.Expect(runner().Pass(ctx)).To(Succeed())
	g.Eventually(func(g Gomega) {
		st := report(g, current).Status
		g.Expect(st.Calls).To(BeEquivalentTo(2))
		g.Expect(st.Recommendation).To(Equal(custosv1alpha1.RecommendKeep))
		g.Expect(st.Reason).To(Equal("it called every tool it holds in " + evaluate.Period(now) + " so far (ledger.get_invoice, crm.find_contact)"))
		g.Expect(st.Patch).To(BeEmpty())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

func itoa(n int) string { return strconv.Itoa(n) }
