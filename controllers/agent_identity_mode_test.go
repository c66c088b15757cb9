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
	"encoding/json"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/identity"
	"github.com/custos-dev/custos/internal/lease"
	"github.com/custos-dev/custos/test/fixtures"
	"github.com/custos-dev/custos/test/leasedoubles"
)

const (
	modeTestAzureClient = "0b9e4f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
	modeTestAzureTenant = "11111111-2222-3333-4444-555555555555"
)

// createIdentityBoundary creates a DataBoundary for tenant that allows its
// AWS roles and one Azure application, and says ambient of them (or
// nothing, when ambient is empty: the API server's default applies).
func createIdentityBoundary(t *testing.T, tenant string, ambient custosv1alpha1.AmbientIdentityPolicy) {
	t.Helper()
	fixtures.Create(t, k8sClient, fixtures.DataBoundary(tenant,
		fixtures.WithAWSRoles(fixtures.AWSRoleARN(tenant+"-*")),
		fixtures.WithAzureClientIDs(modeTestAzureClient),
		fixtures.WithAmbientIdentity(ambient),
		fixtures.WithImagePolicy(trustedImages())))
}

// withAzureClient binds the Azure application the identity boundaries
// allow.
func withAzureClient() fixtures.AgentOption {
	return fixtures.WithAzureClient(modeTestAzureClient, modeTestAzureTenant)
}

// withAWSSession replaces the agent's credentials with one awsSTS session.
func withAWSSession() fixtures.AgentOption {
	return func(a *custosv1alpha1.Agent) {
		a.Spec.Credentials = []custosv1alpha1.CredentialSpec{{
			Name: "aws", AWSSTS: &custosv1alpha1.AWSSTSCredential{}, TTL: metav1.Duration{Duration: 15 * time.Minute},
		}}
	}
}

// TestAgentIdentityLeasedByDefault: an Agent that binds an AWS role and an
// Azure application without saying a mode is Leased: its ServiceAccount
// carries no cloud annotation and its pods no Azure label, so no platform
// webhook would hand them a cloud token; status and IdentityBound say so;
// the role is still reached, through an awsSTS lease.
func TestAgentIdentityLeasedByDefault(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("leased")
	createIdentityBoundary(t, tenant, "")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	role := "arn:aws:iam::111122223333:role/" + tenant + "-reader"
	testSTS.TrustRole(role, leasedoubles.Subject(ns, "agent-reader"))
	agent := newAgent(ns, "reader", tenant, fixtures.WithAWSRole(role), withAzureClient(), withAWSSession())
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	g.Expect(getAgent(g, agent).Spec.Identity.Mode).To(Equal(custosv1alpha1.IdentityModeLeased), "the API server defaults the mode")

	secret := &corev1.Secret{}
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.IdentityBoundCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(conditionMessage(a, custosv1alpha1.IdentityBoundCondition)).To(Equal("ServiceAccount agent-reader bound to aws, azure (leased)"))
		g.Expect(a.Status.Identity).NotTo(BeNil())
		g.Expect(a.Status.Identity.Mode).To(Equal(custosv1alpha1.IdentityModeLeased))
		expectCondition(g, a, custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: leaseSecretName("reader", "aws")}, secret)).To(Succeed())
		g.Expect(secret.Data).To(HaveKey(lease.AWSCredentialsKey))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	session, ok := testSTS.Session(string(secret.Data[lease.AWSAccessKeyIDKey]))
	g.Expect(ok).To(BeTrue(), "the Secret holds the session STS issued")
	g.Expect(session.RoleARN).To(Equal(role), "the lease reaches the bound role")

	sa := &corev1.ServiceAccount{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-reader"}, sa)).To(Succeed())
	g.Expect(sa.Annotations).NotTo(HaveKey(identity.AWSRoleARNAnnotation))
	g.Expect(sa.Annotations).NotTo(HaveKey(identity.AzureClientIDAnnotation))
	g.Expect(sa.Annotations).NotTo(HaveKey(identity.AzureTenantIDAnnotation))
	d := &appsv1.Deployment{}
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-reader"}, d)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(d.Spec.Template.Labels).NotTo(HaveKey(identity.AzureUseLabel))
}

// TestAgentIdentityAmbient: Ambient is refused at admission where the
// boundary does not allow it, with the rule's message; where it does, the
// ServiceAccount and pods carry the clouds' annotations and label, and a
// cloud annotation Custos did not set is still removed. A boundary that
// stops allowing it takes ambient identity away from a running agent.
func TestAgentIdentityAmbient(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("ambient")
	createIdentityBoundary(t, tenant, custosv1alpha1.AmbientIdentityForbidden)
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	role := "arn:aws:iam::111122223333:role/" + tenant + "-sdk"
	agent := newAgent(ns, "sdk", tenant, fixtures.WithAWSRole(role), withAzureClient(), fixtures.WithIdentityMode(custosv1alpha1.IdentityModeAmbient))

	err := k8sClient.Create(ctx, agent.DeepCopy())
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
	g.Expect(err.Error()).To(ContainSubstring(`spec.identity.mode: Forbidden: DataBoundary "` + tenant +
		`" does not allow ambient cloud identity (spec.cloudRoles.ambientIdentity); leased credentials (spec.credentials awsSTS, azureToken) reach the same roles`))
	g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, keyOf(agent), &custosv1alpha1.Agent{}))).To(BeTrue(), "nothing may be stored")

	updateBoundary(g, tenant, func(b *custosv1alpha1.DataBoundary) {
		b.Spec.CloudRoles.AmbientIdentity = custosv1alpha1.AmbientIdentityAllowed
	})
	// The webhook reads boundaries from the manager's cache.
	g.Eventually(func() error { return k8sClient.Create(ctx, agent.DeepCopy()) }).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	saKey := client.ObjectKey{Namespace: ns, Name: "agent-sdk"}
	sa := &corev1.ServiceAccount{}
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.IdentityBoundCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(conditionMessage(a, custosv1alpha1.IdentityBoundCondition)).To(Equal("ServiceAccount agent-sdk bound to aws, azure (ambient)"))
		g.Expect(a.Status.Identity.Mode).To(Equal(custosv1alpha1.IdentityModeAmbient))
		g.Expect(k8sClient.Get(ctx, saKey, sa)).To(Succeed())
		g.Expect(sa.Annotations).To(HaveKeyWithValue(identity.AWSRoleARNAnnotation, role))
		g.Expect(sa.Annotations).To(HaveKeyWithValue(identity.AzureClientIDAnnotation, modeTestAzureClient))
		g.Expect(sa.Annotations).To(HaveKeyWithValue(identity.AzureTenantIDAnnotation, modeTestAzureTenant))
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, saKey, d)).To(Succeed())
		g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue(identity.AzureUseLabel, "true"))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Ambient or not, what Custos did not set goes; its own stays.
	addAnnotations(g, saKey, map[string]string{"eks.amazonaws.com/token-expiration": "172800"})
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, saKey, sa)).To(Succeed())
		g.Expect(sa.Annotations).NotTo(HaveKey("eks.amazonaws.com/token-expiration"))
		g.Expect(sa.Annotations).To(HaveKeyWithValue(identity.AWSRoleARNAnnotation, role))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// The boundary stops allowing it: the agent is outside it, and holds
	// no ambient identity any more.
	updateBoundary(g, tenant, func(b *custosv1alpha1.DataBoundary) {
		b.Spec.CloudRoles.AmbientIdentity = custosv1alpha1.AmbientIdentityForbidden
	})
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionFalse, custosv1alpha1.BoundaryViolationReason)
		g.Expect(conditionMessage(a, custosv1alpha1.BoundaryCompliantCondition)).To(ContainSubstring("spec.identity.mode: Forbidden"))
		g.Expect(a.Status.Identity.Mode).To(Equal(custosv1alpha1.IdentityModeLeased))
		g.Expect(conditionMessage(a, custosv1alpha1.IdentityBoundCondition)).To(Equal(
			`ServiceAccount agent-sdk bound to aws, azure (leased); spec.identity.mode Ambient is not in force: DataBoundary "` + tenant +
				`" does not allow ambient cloud identity (spec.cloudRoles.ambientIdentity)`))
		g.Expect(k8sClient.Get(ctx, saKey, sa)).To(Succeed())
		g.Expect(sa.Annotations).NotTo(HaveKey(identity.AWSRoleARNAnnotation))
		g.Expect(sa.Annotations).NotTo(HaveKey(identity.AzureClientIDAnnotation))
		g.Expect(sa.Annotations).NotTo(HaveKey(identity.AzureTenantIDAnnotation))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestAgentForeignCloudAnnotationsRemoved: cloud workload-identity
// annotations someone else adds to a leased agent's ServiceAccount are
// removed, with a Warning Event and an audit record that name the keys and
// who set them, never the values; other annotations are let be.
func TestAgentForeignCloudAnnotationsRemoved(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("foreign")
	createIdentityBoundary(t, tenant, "")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	agent := newAgent(ns, "worn", tenant, fixtures.WithAWSRole("arn:aws:iam::111122223333:role/"+tenant+"-worn"))
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	saKey := client.ObjectKey{Namespace: ns, Name: "agent-worn"}
	g.Eventually(func(g Gomega) {
		expectCondition(g, getAgent(g, agent), custosv1alpha1.IdentityBoundCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(k8sClient.Get(ctx, saKey, &corev1.ServiceAccount{})).To(Succeed())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	const (
		expiration = "eks.amazonaws.com/token-expiration"
		gcpSA      = "iam.gke.io/gcp-service-account"
		secretish  = "someone-elses-value-7f3a"
	)
	addAnnotations(g, saKey, map[string]string{
		expiration:         "172800",
		gcpSA:              secretish + "@other.iam.gserviceaccount.com",
		"example.com/note": "kept",
	})
	sa := &corev1.ServiceAccount{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, saKey, sa)).To(Succeed())
		g.Expect(sa.Annotations).NotTo(HaveKey(expiration))
		g.Expect(sa.Annotations).NotTo(HaveKey(gcpSA))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(sa.Annotations).To(HaveKeyWithValue("example.com/note", "kept"), "only cloud identity annotations are Custos's")

	uid := getAgent(g, agent).UID
	g.Eventually(func(g Gomega) {
		var events eventsv1.EventList
		g.Expect(k8sClient.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
		var notes []string
		for _, e := range events.Items {
			if e.Regarding.UID == uid && e.Reason == foreignAnnotationsRemovedReason {
				g.Expect(e.Type).To(Equal(corev1.EventTypeWarning))
				notes = append(notes, e.Note)
			}
		}
		g.Expect(notes).To(ConsistOf(And(
			ContainSubstring("Removed cloud annotation(s) "+expiration+", "+gcpSA+" from ServiceAccount agent-worn"),
			ContainSubstring("identity mode Leased"),
			Not(ContainSubstring(secretish)), Not(ContainSubstring("172800")),
		)))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	var removed []audit.Record
	g.Eventually(func(g Gomega) {
		removed = nil
		for _, r := range auditTrail(uid) {
			if r.Action == audit.ActionIdentityForeignRemoved {
				removed = append(removed, r)
			}
		}
		g.Expect(removed).To(HaveLen(1))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	r := removed[0]
	g.Expect(r.Actor).To(HaveValue(Equal(ControllerActor)))
	g.Expect(r.Decision).To(Equal(audit.DecisionDeny))
	g.Expect(r.Details).To(HaveKeyWithValue("annotationKeys", expiration+", "+gcpSA))
	g.Expect(r.Details).To(HaveKeyWithValue("serviceAccount", "agent-worn"))
	g.Expect(r.Details).To(HaveKeyWithValue("fieldManagers", "someone-else"))
	data, err := json.Marshal(r)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data)).NotTo(ContainSubstring(secretish))
	g.Expect(string(data)).NotTo(ContainSubstring("172800"))
	g.Expect(strings.Count(string(data), expiration)).To(BeNumerically(">=", 1))
}

// addAnnotations adds annotations to the ServiceAccount at key as field
// manager "someone-else", with the cluster-admin powers of the suite's
// client (the in-process admission policies refuse anyone less).
func addAnnotations(g Gomega, key client.ObjectKey, annotations map[string]string) {
	data, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	g.Expect(err).NotTo(HaveOccurred())
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	g.Expect(k8sClient.Patch(context.Background(), sa, client.RawPatch(types.MergePatchType, data), client.FieldOwner("someone-else"))).To(Succeed())
}
