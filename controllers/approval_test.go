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
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/test/fixtures"
)

// asUser is a client that acts as user (with groups) through the API
// server's impersonation: what the API server authenticates, admission
// sees.
func asUser(t *testing.T, user string, groups ...string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(cp.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	c, err := client.New(cfg, client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// approvalFixture is a tenant namespace with a Toolset's approvers bound
// by the chart's approver role, an agent owner, and requests made as
// custos-gateway makes them.
type approvalFixture struct {
	t        *testing.T
	ns       string
	agentUID types.UID
	n        int
}

func newApprovalFixture(t *testing.T) *approvalFixture {
	tenant := fixtures.UniqueTenant("appr")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	approver := fixtures.Create(t, k8sClient, chartTenantRole(t, "approver", ns+"-approver"))
	owner := fixtures.Create(t, k8sClient, chartTenantRole(t, "agent-owner", ns+"-agent-owner"))
	// Someone who may create decisions but holds no approve verb.
	noApprove := fixtures.Create(t, k8sClient, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: ns + "-decider"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{custosv1alpha1.GroupVersion.Group}, Resources: []string{"approvaldecisions"}, Verbs: []string{"create"}},
		{APIGroups: []string{custosv1alpha1.GroupVersion.Group}, Resources: []string{"approvalrequests"}, Verbs: []string{"get", "list"}},
	}})
	for _, u := range []string{"carol", "dave", "erin", "oidc:paul", "olga", "system:serviceaccount:" + ns + ":bot"} {
		bindInNamespace(t, ns, "approver-"+strings.NewReplacer(":", "-").Replace(u), approver.Name, u)
	}
	bindInNamespace(t, ns, "owner-olga", owner.Name, "olga")
	bindInNamespace(t, ns, "decider-mallory", noApprove.Name, "mallory")
	bindInNamespace(t, ns, "edit-eve", "edit", "eve")
	return &approvalFixture{t: t, ns: ns, agentUID: types.UID(fmt.Sprintf("agent-uid-%s", ns))}
}

// request creates an ApprovalRequest of agent "payer" for person "paul",
// as custos-gateway would.
func (f *approvalFixture) request(quorum int32) *custosv1alpha1.ApprovalRequest {
	f.t.Helper()
	f.n++
	now := testClock.Now()
	if real := time.Now(); real.After(now) {
		now = real
	}
	ar := &custosv1alpha1.ApprovalRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: fmt.Sprintf("payer-0123456789abcdef-%d", f.n), Labels: map[string]string{
			custosv1alpha1.AgentLabel: "payer", custosv1alpha1.AgentUIDLabel: string(f.agentUID),
		}},
		Spec: custosv1alpha1.ApprovalRequestSpec{
			Agent:   custosv1alpha1.ApprovalAgent{Name: "payer", UID: string(f.agentUID)},
			Toolset: custosv1alpha1.ToolsetReference{Name: "payments"},
			Tool:    "pay",
			Access:  custosv1alpha1.ToolAccessWrite, Irreversible: true,
			CallDigest: "sha256:" + strings.Repeat(fmt.Sprintf("%x", f.n%16), 64),
			Arguments:  `{"amount":1200,"to":"ACME"}`,
			Person:     "paul", Session: "s-1", Chain: "paul → payer",
			Policies: []string{"payments"}, Quorum: quorum,
			ExpiresAt: metav1.NewTime(now.Add(time.Hour).Truncate(time.Second)),
		},
	}
	return fixtures.Create(f.t, k8sClient, ar)
}

// decide makes user's decision on ar, writing the approver field as
// claimed (whatever the client says, admission replaces it).
func (f *approvalFixture) decide(ar *custosv1alpha1.ApprovalRequest, user string, verdict custosv1alpha1.ApprovalVerdict, groups ...string) (*custosv1alpha1.ApprovalDecision, error) {
	d := &custosv1alpha1.ApprovalDecision{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, GenerateName: ar.Name + "-"},
		Spec:       custosv1alpha1.ApprovalDecisionSpec{Request: ar.Name, Decision: verdict, Comment: "checked the invoice"},
	}
	err := asUser(f.t, user, groups...).Create(context.Background(), d)
	return d, err
}

func expectPhase(g Gomega, ar *custosv1alpha1.ApprovalRequest, phase custosv1alpha1.ApprovalPhase, approvals int32) *custosv1alpha1.ApprovalRequest {
	got := &custosv1alpha1.ApprovalRequest{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(context.Background(), keyOf(ar), got)).To(Succeed())
		g.Expect(got.Status.Phase).To(Equal(phase))
		g.Expect(got.Status.Approvals).To(Equal(approvals))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	return got
}

func TestApprovalDecisionsAreMadeByWhomTheAPIServerAuthenticated(t *testing.T) {
	g := NewWithT(t)
	f := newApprovalFixture(t)
	ar := f.request(2)
	expectPhase(g, ar, custosv1alpha1.ApprovalPending, 0)

	// A forged approver field is replaced by who the API server
	// authenticated.
	d := &custosv1alpha1.ApprovalDecision{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "forged"},
		Spec: custosv1alpha1.ApprovalDecisionSpec{Request: ar.Name, Decision: custosv1alpha1.Approve,
			Approver: custosv1alpha1.Approver{Username: "the-ceo", UID: "ceo-uid", Groups: []string{"board"}}},
	}
	g.Expect(asUser(t, "carol", "finance").Create(context.Background(), d)).To(Succeed())
	g.Expect(d.Spec.Approver.Username).To(Equal("carol"))
	g.Expect(d.Spec.Approver.Groups).To(ContainElements("finance", "system:authenticated"))
	g.Expect(d.Spec.Approver.Groups).NotTo(ContainElement("board"))
	g.Expect(d.Labels).To(HaveKeyWithValue(custosv1alpha1.ApprovalRequestLabel, ar.Name))
	got := expectPhase(g, ar, custosv1alpha1.ApprovalPending, 1)
	g.Expect(got.Status.Decisions).To(HaveLen(1))
	g.Expect(got.Status.Decisions[0].Approver.Username).To(Equal("carol"))
	g.Expect(got.Status.Decisions[0].Counted).To(BeTrue())

	// Decisions cannot change once made.
	changed := d.DeepCopy()
	changed.Spec.Decision = custosv1alpha1.Deny
	g.Expect(asUser(t, "carol").Update(context.Background(), changed)).NotTo(Succeed())
	changed = d.DeepCopy()
	changed.Spec.Approver.Username = "dave"
	err := k8sClient.Update(context.Background(), changed)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("an ApprovalDecision is immutable"))

	refusals := []struct {
		name, user string
		groups     []string
		want       []string
	}{
		{"the same approver twice", "carol", nil, []string{"spec.approver.username: Duplicate", "one decision per person"}},
		{"the person the agent acts for", "oidc:paul", nil, []string{"spec.approver: Forbidden", "SeparationOfDuties.Person"}},
		{"an owner of the agent", "olga", nil, []string{"spec.approver: Forbidden", "SeparationOfDuties.Owner", "may change Agent"}},
		{"a ServiceAccount", "system:serviceaccount:" + f.ns + ":bot", []string{"system:serviceaccounts", "system:serviceaccounts:" + f.ns}, []string{"spec.approver: Forbidden", "SeparationOfDuties.ServiceAccount"}},
		{"someone without the approve verb", "mallory", nil, []string{"spec.approver: Forbidden", "NotAuthorized", "verb approve on toolsets"}},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := f.decide(ar, tc.user, custosv1alpha1.Approve, tc.groups...)
			g.Expect(err).To(HaveOccurred())
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
		})
	}
	// RBAC itself keeps out who has no grant: a namespace edit user
	// (edit does not cover custos.dev) can neither decide nor write a
	// request's status, and an approver cannot write the status either.
	for _, user := range []string{"eve", "nobody"} {
		_, err := f.decide(ar, user, custosv1alpha1.Approve)
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s: %v", user, err)
	}
	for _, user := range []string{"eve", "carol"} {
		forged := expectPhase(g, ar, custosv1alpha1.ApprovalPending, 1).DeepCopy()
		forged.Status.Phase = custosv1alpha1.ApprovalApproved
		err := asUser(t, user).Status().Update(context.Background(), forged)
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s: %v", user, err)
		err = asUser(t, user).Create(context.Background(), &custosv1alpha1.ApprovalRequest{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "self-made-" + user}, Spec: ar.Spec})
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s: %v", user, err)
	}
	// A request that does not exist cannot be decided.
	_, err = f.decide(&custosv1alpha1.ApprovalRequest{ObjectMeta: metav1.ObjectMeta{Name: "no-such-request"}}, "dave", custosv1alpha1.Approve)
	g.Expect(err).To(MatchError(ContainSubstring(`spec.request: Not found: "no-such-request"`)))

	// Quorum 2 of 3: the second eligible approval approves; the third
	// has nothing left to approve.
	_, err = f.decide(ar, "dave", custosv1alpha1.Approve)
	g.Expect(err).NotTo(HaveOccurred())
	got = expectPhase(g, ar, custosv1alpha1.ApprovalApproved, 2)
	g.Expect(got.Status.DecidedAt).NotTo(BeNil())
	g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionTrue, "Approved"))
	_, err = f.decide(ar, "erin", custosv1alpha1.Approve)
	g.Expect(err).To(MatchError(ContainSubstring("already Approved")))
	// A decision's object deleted leaves its vote on the request.
	g.Expect(k8sClient.Delete(context.Background(), d)).To(Succeed())
	g.Consistently(func(g Gomega) {
		got := &custosv1alpha1.ApprovalRequest{}
		g.Expect(k8sClient.Get(context.Background(), keyOf(ar), got)).To(Succeed())
		g.Expect(got.Status.Phase).To(Equal(custosv1alpha1.ApprovalApproved))
		g.Expect(got.Status.Decisions).To(HaveLen(2))
	}).WithTimeout(time.Second).WithPolling(poll).Should(Succeed())

	g.Eventually(func(g Gomega) []string { return eventReasons(g, ar) }).WithTimeout(eventually).Should(ContainElements("Decided", "Approved"))
	g.Eventually(func(g Gomega) {
		var decided []string
		for _, r := range auditTrail(f.agentUID) {
			if r.Action == audit.ActionApprovalDecided {
				decided = append(decided, r.Reason)
			}
		}
		g.Expect(decided).To(ContainElements(
			ContainSubstring("carol's Approve on "+ar.Name+" counted"),
			ContainSubstring("dave's Approve on "+ar.Name+" counted"),
			ContainSubstring("Approved with 2 of 2 approval(s)")))
	}).WithTimeout(eventually).Should(Succeed())
}

func TestApprovalDenyIsAVetoAndSilenceExpires(t *testing.T) {
	g := NewWithT(t)
	f := newApprovalFixture(t)

	vetoed := f.request(2)
	_, err := f.decide(vetoed, "carol", custosv1alpha1.Approve)
	g.Expect(err).NotTo(HaveOccurred())
	expectPhase(g, vetoed, custosv1alpha1.ApprovalPending, 1)
	_, err = f.decide(vetoed, "dave", custosv1alpha1.Deny)
	g.Expect(err).NotTo(HaveOccurred())
	got := expectPhase(g, vetoed, custosv1alpha1.ApprovalDenied, 1)
	g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionTrue, "Denied"))
	_, err = f.decide(vetoed, "erin", custosv1alpha1.Approve)
	g.Expect(err).To(MatchError(ContainSubstring("is Denied: nothing is left to decide")))

	// A deny after the quorum approved, before the call ran, still vetoes.
	late := f.request(1)
	_, err = f.decide(late, "carol", custosv1alpha1.Approve)
	g.Expect(err).NotTo(HaveOccurred())
	expectPhase(g, late, custosv1alpha1.ApprovalApproved, 1)
	_, err = f.decide(late, "dave", custosv1alpha1.Deny)
	g.Expect(err).NotTo(HaveOccurred())
	expectPhase(g, late, custosv1alpha1.ApprovalDenied, 1)

	// Nobody decides: at expiresAt the request expires, which means deny.
	silent := f.request(1)
	expectPhase(g, silent, custosv1alpha1.ApprovalPending, 0)
	if testClock.Now().Before(silent.Spec.ExpiresAt.Time) {
		testClock.SetTime(silent.Spec.ExpiresAt.Add(time.Second))
	}
	g.Eventually(func(g Gomega) {
		// The clock moved without an event: poke the request.
		cur := &custosv1alpha1.ApprovalRequest{}
		g.Expect(k8sClient.Get(context.Background(), keyOf(silent), cur)).To(Succeed())
		if cur.Status.Phase != custosv1alpha1.ApprovalExpired {
			cur.Annotations = map[string]string{"test/poke": time.Now().String()}
			_ = k8sClient.Update(context.Background(), cur)
		}
		g.Expect(cur.Status.Phase).To(Equal(custosv1alpha1.ApprovalExpired))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	_, err = f.decide(silent, "carol", custosv1alpha1.Approve)
	g.Expect(err).To(MatchError(ContainSubstring("is Expired")))
	g.Eventually(func(g Gomega) []string { return eventReasons(g, silent) }).WithTimeout(eventually).Should(ContainElement("Expired"))
}

func TestApprovalPolicyAdmission(t *testing.T) {
	tenant := fixtures.UniqueTenant("apol")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	policy := func(change func(*custosv1alpha1.ApprovalPolicy)) *custosv1alpha1.ApprovalPolicy {
		p := &custosv1alpha1.ApprovalPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "p-"}}
		change(p)
		return p
	}
	for _, tc := range []struct {
		name   string
		change func(*custosv1alpha1.ApprovalPolicy)
		want   string
	}{
		{"an expression that does not compile", func(p *custosv1alpha1.ApprovalPolicy) { p.Spec.Match.Expression = "tool.name ==" }, "spec.match.expression: Invalid value"},
		{"an expression that is not a bool", func(p *custosv1alpha1.ApprovalPolicy) { p.Spec.Match.Expression = "size(arguments)" }, "spec.match.expression: Invalid value"},
		{"a timeout over 24h", func(p *custosv1alpha1.ApprovalPolicy) { p.Spec.Timeout = &metav1.Duration{Duration: 25 * time.Hour} }, "timeout must be between 10s and 24h"},
		{"a quorum of 11", func(p *custosv1alpha1.ApprovalPolicy) { p.Spec.Quorum = 11 }, "spec.quorum"},
		{"a timeout that allows", func(p *custosv1alpha1.ApprovalPolicy) { p.Spec.OnTimeout = "Allow" }, `spec.onTimeout: Unsupported value: "Allow"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := k8sClient.Create(context.Background(), policy(tc.change))
			NewWithT(t).Expect(err).To(MatchError(ContainSubstring(tc.want)))
		})
	}
	// The defaults: irreversible tools, quorum 1, 15 minutes, deny on
	// timeout, every separation of duties.
	g := NewWithT(t)
	p := policy(func(*custosv1alpha1.ApprovalPolicy) {})
	g.Expect(k8sClient.Create(context.Background(), p)).To(Succeed())
	g.Expect(p.Spec.Quorum).To(Equal(int32(1)))
	g.Expect(p.Spec.Timeout.Duration).To(Equal(15 * time.Minute))
	g.Expect(p.Spec.OnTimeout).To(Equal("Deny"))
	g.Expect(p.Spec.Match.MatchesIrreversible()).To(BeTrue())
	g.Expect(*p.Spec.Match.Irreversible).To(BeTrue())
	g.Expect(*p.Spec.SeparationOfDuties.ExcludePerson && *p.Spec.SeparationOfDuties.ExcludeOwners && *p.Spec.SeparationOfDuties.ExcludeServiceAccounts).To(BeTrue())
}
