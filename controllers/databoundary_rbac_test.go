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
	"os"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/test/fixtures"
)

// chartTenantRole is a ClusterRole with the rules the chart's tenant role
// of that name ships (charts/custos/files/tenantroles), named for the test.
func chartTenantRole(t *testing.T, role, name string) *rbacv1.ClusterRole {
	t.Helper()
	raw, err := os.ReadFile("../charts/custos/files/tenantroles/" + role + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := yaml.UnmarshalStrict(raw, cr); err != nil {
		t.Fatalf("charts/custos/files/tenantroles/%s.yaml: %v", role, err)
	}
	return cr
}

// bindInNamespace binds the ClusterRole to user in ns, and returns the
// binding.
func bindInNamespace(t *testing.T, ns, name, clusterRole, user string) *rbacv1.RoleBinding {
	t.Helper()
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if err := k8sClient.Create(context.Background(), rb); err != nil {
		t.Fatalf("creating RoleBinding %s/%s: %v", ns, name, err)
	}
	return rb
}

// expectRBACReport waits until b's TenantRBACContained condition has the
// status and reason, and a message with every substring and none of the
// unwanted ones; Ready stays as it was, True, and kstatus Current: the
// report is not the boundary's state.
func expectRBACReport(g Gomega, b *custosv1alpha1.DataBoundary, st metav1.ConditionStatus, reason string, msg []string, notInMsg ...string) {
	g.Eventually(func(g Gomega) {
		got := getBoundary(g, b)
		g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.TenantRBACContainedCondition, st, reason, msg...))
		for _, s := range notInMsg {
			g.Expect(got.Status.Conditions).NotTo(haveCondition(custosv1alpha1.TenantRBACContainedCondition, st, reason, s))
		}
		g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason))
		g.Expect(got.Status.Conditions).To(HaveEach(HaveField("ObservedGeneration", got.Generation)))
		g.Expect(kstatusOf(g, got)).To(Equal(status.CurrentStatus))
	}).WithTimeout(statusTimeout).WithPolling(statusPoll).Should(Succeed())
}

// rbacAuditTrail lists the RBAC report's audit records about b.
func rbacAuditTrail(b *custosv1alpha1.DataBoundary) []audit.Record {
	return slices.DeleteFunc(auditTrail(b.UID), func(r audit.Record) bool { return r.Action != ActionRBACReported })
}

func TestDataBoundaryReportsUnsafeTenantRBAC(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("t")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	b := createTestBoundary(t, tenant)
	expectBoundaryReady(g, b, []string{ns}, 0)
	b = getBoundary(g, b)

	// Nothing bound in the namespace: the report is clean, and a clean
	// first report records nothing.
	expectRBACReport(g, b, metav1.ConditionTrue, custosv1alpha1.SucceededReason, []string{rbacContainedMessage})
	g.Expect(rbacAuditTrail(b)).To(BeEmpty())

	// What most platforms give a namespace team: the built-in edit role.
	// It reads Secrets (so every agent's lease) and impersonates
	// ServiceAccounts, neither of which admission sees. (envtest runs no
	// kube-controller-manager: the report resolves edit's aggregation
	// itself.)
	tina := "tina@" + tenant + ".example"
	edit := bindInNamespace(t, ns, "tina-edit", "edit", tina)
	wantFinding := "User " + tina + ": impersonate serviceaccounts, get/list/watch secrets (RoleBinding " + ns + "/tina-edit)"
	expectRBACReport(g, b, metav1.ConditionFalse, custosv1alpha1.UnsafeRBACReason,
		[]string{"RBAC grants 1 subject what admission cannot see or stop", wantFinding, "agent-owner or agent-viewer"})
	g.Eventually(func(g Gomega) {
		g.Expect(eventsRegarding(g, b)).To(haveEvent(corev1.EventTypeWarning, custosv1alpha1.UnsafeRBACReason, wantFinding))
		records := rbacAuditTrail(b)
		g.Expect(records).To(ContainElement(And(
			HaveField("Decision", audit.DecisionDeny),
			HaveField("Reason", ContainSubstring(wantFinding)),
			HaveField("Details", HaveKeyWithValue("subjects", "1")),
			HaveField("Subject.Kind", "DataBoundary"),
			HaveField("Subject.Tenant", tenant),
		)))
	}).WithTimeout(statusTimeout).WithPolling(statusPoll).Should(Succeed())

	// Taking the binding away makes the report clean again, and says so.
	g.Expect(k8sClient.Delete(ctx, edit)).To(Succeed())
	expectRBACReport(g, b, metav1.ConditionTrue, custosv1alpha1.SucceededReason, []string{rbacContainedMessage})
	g.Eventually(func(g Gomega) {
		g.Expect(eventsRegarding(g, b)).To(haveEvent(corev1.EventTypeNormal, custosv1alpha1.SucceededReason, rbacContainedMessage))
		g.Expect(rbacAuditTrail(b)).To(ContainElement(And(
			HaveField("Decision", audit.DecisionInfo),
			HaveField("Details", HaveKeyWithValue("status", "True")),
		)))
	}).WithTimeout(statusTimeout).WithPolling(statusPoll).Should(Succeed())

	// The chart's tenant roles, bound instead, keep it clean.
	for _, role := range []string{"agent-owner", "agent-viewer"} {
		cr := chartTenantRole(t, role, tenant+"-"+role)
		g.Expect(k8sClient.Create(ctx, cr)).To(Succeed())
		t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), cr) })
		bindInNamespace(t, ns, "tina-"+role, cr.Name, tina)
	}
	g.Consistently(func(g Gomega) {
		g.Expect(getBoundary(g, b).Status.Conditions).To(haveCondition(custosv1alpha1.TenantRBACContainedCondition,
			metav1.ConditionTrue, custosv1alpha1.SucceededReason))
	}).WithTimeout(3 * time.Second).WithPolling(statusPoll).Should(Succeed())

	// And the report has seen them: with edit bound to someone else, it
	// names that one alone.
	bob := "bob@" + tenant + ".example"
	bindInNamespace(t, ns, "bob-edit", "edit", bob)
	expectRBACReport(g, b, metav1.ConditionFalse, custosv1alpha1.UnsafeRBACReason,
		[]string{"RBAC grants 1 subject", "User " + bob + ": impersonate serviceaccounts, get/list/watch secrets (RoleBinding " + ns + "/bob-edit)"},
		tina)
}

// TestDataBoundaryRBACReportFollowsClusterRoles: a ClusterRole that starts
// to grant what admission cannot stop is reported in every namespace it is
// bound in, and a ClusterRoleBinding in every boundary.
func TestDataBoundaryRBACReportFollowsClusterRoles(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("t")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	b := createTestBoundary(t, tenant)
	expectBoundaryReady(g, b, []string{ns}, 0)
	b = getBoundary(g, b)

	// A harmless ClusterRole bound in the namespace...
	cr := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: tenant + "-helper"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}}},
	}
	g.Expect(k8sClient.Create(ctx, cr)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), cr) })
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci-helper"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "ci"}},
	}
	g.Expect(k8sClient.Create(ctx, rb)).To(Succeed())
	expectRBACReport(g, b, metav1.ConditionTrue, custosv1alpha1.SucceededReason, nil)

	// ...that is changed to let its holders pass the containment policies.
	g.Eventually(func() error {
		if err := k8sClient.Get(ctx, keyOf(cr), cr); err != nil {
			return err
		}
		cr.Rules = append(cr.Rules, rbacv1.PolicyRule{APIGroups: []string{"custos.dev"}, Resources: []string{"agents/identity"}, Verbs: []string{"use"}})
		return k8sClient.Update(ctx, cr)
	}).WithTimeout(statusTimeout).Should(Succeed())
	expectRBACReport(g, b, metav1.ConditionFalse, custosv1alpha1.UnsafeRBACReason,
		[]string{"ServiceAccount " + ns + "/ci: use agents.custos.dev/identity (RoleBinding " + ns + "/ci-helper)"})
}

// TestDataBoundaryRBACReportCountsClusterRoleBindings: a ClusterRoleBinding
// applies in every namespace, so it is in every boundary's report. Not
// parallel: it changes the report of every boundary of the suite while it
// runs.
func TestDataBoundaryRBACReportCountsClusterRoleBindings(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("t")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	b := createTestBoundary(t, tenant)
	expectBoundaryReady(g, b, []string{ns}, 0)
	expectRBACReport(g, b, metav1.ConditionTrue, custosv1alpha1.SucceededReason, nil)

	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: tenant + "-nodes"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: tenant + "-node-proxy"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: tenant + "-ops"}},
	}
	g.Expect(k8sClient.Create(ctx, crb)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), crb) })
	// The role it names does not exist yet, and grants nothing; the report
	// sees it when it appears.
	nodeProxy := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: tenant + "-node-proxy"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get"}}},
	}
	g.Expect(k8sClient.Create(ctx, nodeProxy)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), nodeProxy) })
	expectRBACReport(g, b, metav1.ConditionFalse, custosv1alpha1.UnsafeRBACReason,
		[]string{"RBAC grants 1 subject", "Group " + tenant + "-ops: get nodes/proxy (ClusterRoleBinding " + tenant + "-nodes)"})

	// Gone, it is out of the report.
	g.Expect(k8sClient.Delete(ctx, crb)).To(Succeed())
	expectRBACReport(g, b, metav1.ConditionTrue, custosv1alpha1.SucceededReason, nil)
}
