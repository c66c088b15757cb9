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
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestOwnerReviews: an agent with spec.review is suspended (ReviewOverdue)
// once its owners have not attested it for everyDays, and runs again once
// one of them does; only an owner, a person, attests, as the API server
// authenticated them; the attestation and who made it are on the status
// and the audit trail.
func TestOwnerReviews(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	// A clock of this test's own: the suite's moves forward by hours as
	// other tests expire agents, and reviews are counted in days from
	// real creation times.
	reviewClock := clocktesting.NewFakeClock(time.Now())
	stopManager()
	g.Expect(startManager(func(o *Options) { o.Clock = reviewClock })).To(Succeed())
	t.Cleanup(func() {
		stopManager()
		if err := startManager(); err != nil {
			t.Errorf("restarting the suite's manager: %v", err)
		}
	})

	tenant := fixtures.UniqueTenant("review")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	owner := fixtures.Create(t, k8sClient, chartTenantRole(t, "agent-owner", ns+"-agent-owner"))
	// Someone who may create attestations but not change the Agent.
	attester := fixtures.Create(t, k8sClient, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: ns + "-attester"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{custosv1alpha1.GroupVersion.Group}, Resources: []string{"agentattestations"}, Verbs: []string{"create"}},
	}})
	bindInNamespace(t, ns, "owner-olga", owner.Name, "olga")
	bindInNamespace(t, ns, "owner-bot", owner.Name, "system:serviceaccount:"+ns+":ci")
	bindInNamespace(t, ns, "attester-carol", attester.Name, "carol")

	agent := newAgent(ns, "reviewed", tenant)
	agent.Spec.Review = &custosv1alpha1.AgentReview{EveryDays: 7}
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, ns, "agent-reviewed") }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(a.Status.Review).NotTo(BeNil())
		g.Expect(a.Status.Review.LastAttestedAt).To(BeNil())
		g.Expect(a.Status.Review.DueAt.Time).To(BeTemporally("==", a.CreationTimestamp.Add(7*24*time.Hour)))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Eight days on, nobody attested: suspended until an owner does.
	reviewClock.Step(8 * 24 * time.Hour)
	poke(g, agent)
	expectSuspended(t, g, agent, custosv1alpha1.ReviewOverdueReason)
	g.Expect(conditionMessage(getAgent(g, agent), custosv1alpha1.ReadyCondition)).To(ContainSubstring("kubectl custos attest reviewed -n " + ns))

	attest := func(user string, groups ...string) (*custosv1alpha1.AgentAttestation, error) {
		a := &custosv1alpha1.AgentAttestation{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "reviewed-"},
			Spec: custosv1alpha1.AgentAttestationSpec{Agent: "reviewed", Comment: "purpose, tools and leases reviewed",
				Attester: custosv1alpha1.Approver{Username: "the-ceo"}, AgentUID: "forged"},
		}
		return a, asUser(t, user, groups...).Create(ctx, a)
	}
	for _, tc := range []struct{ user, want string }{
		{"carol", "carol may not change Agent " + ns + "/reviewed, so is not one of its owners"},
		{"system:serviceaccount:" + ns + ":ci", "is a ServiceAccount"},
	} {
		_, err := attest(tc.user)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: %v", tc.user, err)
		g.Expect(err.Error()).To(ContainSubstring("spec.attester: Forbidden"))
		g.Expect(err.Error()).To(ContainSubstring(tc.want))
	}
	// A namespace edit user has no rights on custos.dev at all.
	bindInNamespace(t, ns, "edit-eve", "edit", "eve")
	_, err := attest("eve")
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
	// An Agent that does not exist cannot be attested.
	err = asUser(t, "olga").Create(ctx, &custosv1alpha1.AgentAttestation{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ghost"},
		Spec: custosv1alpha1.AgentAttestationSpec{Agent: "ghost"}})
	g.Expect(err).To(MatchError(ContainSubstring(`spec.agent: Not found: "ghost"`)))

	// The owner attests: who and which Agent are stamped, whatever the
	// client wrote.
	made, err := attest("olga")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(made.Spec.Attester.Username).To(Equal("olga"))
	g.Expect(made.Spec.AgentUID).To(Equal(string(getAgent(g, agent).UID)))
	// Attestations cannot be changed.
	changed := made.DeepCopy()
	changed.Spec.Comment = "nothing reviewed"
	g.Expect(k8sClient.Update(ctx, changed)).To(MatchError(ContainSubstring("an AgentAttestation is immutable")))

	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		g.Expect(a.Status.Review.AttestedBy).To(Equal("olga"))
		g.Expect(a.Status.Review.Attestation).To(Equal(made.Name))
		g.Expect(a.Status.Review.DueAt.Time).To(BeTemporally("==", made.CreationTimestamp.Add(7*24*time.Hour)))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	// Back to the day of the attestation: the agent runs again.
	reviewClock.SetTime(time.Now())
	poke(g, agent)
	g.Eventually(func(g Gomega) {
		// Scaled up again: stand in for the deployment controller.
		g.Expect(fixtures.MarkRolledOut(k8sClient, ns, "agent-reviewed")).To(Succeed())
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(a.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseActive))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	g.Eventually(func(g Gomega) {
		var attested, suspended []audit.Record
		for _, r := range auditTrail(getAgent(g, agent).UID) {
			switch r.Action {
			case audit.ActionAgentAttested:
				attested = append(attested, r)
			case audit.ActionAgentSuspended:
				suspended = append(suspended, r)
			}
		}
		g.Expect(attested).To(HaveLen(1))
		g.Expect(attested[0].Details).To(HaveKeyWithValue("attester", "olga"))
		g.Expect(suspended).NotTo(BeEmpty())
		g.Expect(suspended[0].Policy).To(Equal("spec.review"))
		g.Expect(suspended[0].Reason).To(ContainSubstring("Owner review overdue"))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}
