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
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/lease"
	"github.com/custos-dev/custos/test/fixtures"
)

// withGatewayCredential makes the agent's credential name gateway-only,
// set by custos-gateway as X-Ledger-Key on the calls to its Toolset ledger.
func withGatewayCredential(name string) fixtures.AgentOption {
	return func(a *custosv1alpha1.Agent) {
		a.Spec.ToolsetRefs = []custosv1alpha1.ToolsetReference{{Name: "ledger"}}
		a.Spec.Credentials = append(a.Spec.Credentials, custosv1alpha1.CredentialSpec{
			Name:            name,
			KubernetesToken: &custosv1alpha1.KubernetesTokenCredential{Audience: "ledger"},
			TTL:             metav1.Duration{Duration: fixtures.CredentialTTL},
			Gateway:         &custosv1alpha1.GatewayCredential{Toolset: "ledger", Header: "X-Ledger-Key"},
		})
	}
}

// TestGatewayCredentialCustody: with --gateway-credentials-namespace, an
// agent's gateway-only credential is issued into that namespace, never
// the agent's, and its pods neither mount nor see it; it goes when the
// credential is removed, when the Agent is deleted, and (the sweeper)
// when its Agent is gone. A user with the edit role in the agent's
// namespace cannot read it.
func TestGatewayCredentialCustody(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	credsNS := "custos-credentials"
	if err := k8sClient.Create(ctx, fixtures.Namespace(credsNS, nil)); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	stopManager()
	g.Expect(startManager(func(o *Options) { o.Leases.GatewayNamespace = credsNS })).To(Succeed())
	t.Cleanup(func() {
		stopManager()
		if err := startManager(); err != nil {
			t.Errorf("restarting the suite's manager: %v", err)
		}
	})

	tenant := fixtures.UniqueTenant("gwcred")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "ledger", tenant))
	agent := newAgent(ns, "keeper", tenant, withGatewayCredential("ledger-key"))
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	kept := client.ObjectKey{Namespace: credsNS, Name: "agent-" + ns + ".keeper.ledger-key"}

	secret := &corev1.Secret{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, kept, secret)).To(Succeed())
		g.Expect(secret.Data).To(HaveKey(lease.TokenKey))
		expectCondition(g, getAgent(g, agent), custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	a := getAgent(g, agent)
	g.Expect(secret.Labels).To(And(
		HaveKeyWithValue(custosv1alpha1.AgentUIDLabel, string(a.UID)),
		HaveKeyWithValue(custosv1alpha1.AgentNamespaceLabel, ns),
		HaveKeyWithValue(custosv1alpha1.CredentialLabel, "ledger-key")))
	g.Expect(secret.OwnerReferences).To(BeEmpty())
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-keeper.ledger-key"}, &corev1.Secret{})).
		To(Satisfy(apierrors.IsNotFound), "nothing of it in the agent's namespace")
	// The other credential is where it always was.
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-keeper.ledger-api"}, &corev1.Secret{})).To(Succeed())
	// On the record, with where it is kept; its material nowhere.
	g.Eventually(func(g Gomega) {
		var where []string
		for _, r := range auditTrail(a.UID) {
			if r.Action == audit.ActionLeaseIssued && r.Details["credentialName"] == "ledger-key" {
				where = append(where, r.Details["secretNamespace"]+"/"+r.Details["secretName"])
			}
		}
		g.Expect(where).To(Equal([]string{kept.String()}))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	tok := string(secret.Data[lease.TokenKey])
	status, err := json.Marshal(a.Status)
	g.Expect(err).NotTo(HaveOccurred())
	records, err := json.Marshal(auditTrail(a.UID))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(status)).NotTo(ContainSubstring(tok[len(tok)-40:]))
	g.Expect(string(records)).NotTo(ContainSubstring(tok[len(tok)-40:]))

	t.Run("the agent's pods never hold it", func(t *testing.T) {
		g := NewWithT(t)
		g.Eventually(func(g Gomega) {
			d := &appsv1.Deployment{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-keeper"}, d)).To(Succeed())
			raw, err := json.Marshal(d.Spec.Template)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(raw)).To(ContainSubstring("agent-keeper.ledger-api"))
			g.Expect(string(raw)).NotTo(ContainSubstring("ledger-key"))
		}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	})

	t.Run("the edit role in the agent's namespace cannot read it", func(t *testing.T) {
		g := NewWithT(t)
		user := "erin@" + tenant + ".example"
		// What the built-in edit ClusterRole aggregates (envtest runs no
		// controller manager to aggregate them into edit itself).
		bindInNamespace(t, ns, "erin-edit", "system:aggregate-to-edit", user)
		bindInNamespace(t, ns, "erin-view", "system:aggregate-to-view", user)
		allowed := func(g Gomega, namespace string) bool {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user,
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: namespace, Verb: "get", Resource: "secrets", Name: kept.Name}}}
			g.Expect(k8sClient.Create(ctx, sar)).To(Succeed())
			return sar.Status.Allowed
		}
		// RoleBindings reach the authorizer's cache a moment after they exist.
		g.Eventually(func(g Gomega) { g.Expect(allowed(g, ns)).To(BeTrue()) }).WithTimeout(statusTimeout).Should(Succeed())
		for _, verb := range []string{"get", "list", "watch"} {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user,
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: credsNS, Verb: verb, Resource: "secrets"}}}
			g.Expect(k8sClient.Create(ctx, sar)).To(Succeed())
			g.Expect(sar.Status.Allowed).To(BeFalse(), "%s secrets in %s", verb, credsNS)
		}
	})

	t.Run("it goes with the credential", func(t *testing.T) {
		g := NewWithT(t)
		updateAgent(g, agent, func(a *custosv1alpha1.Agent) { a.Spec.Credentials = a.Spec.Credentials[:1] })
		g.Eventually(func() error { return k8sClient.Get(ctx, kept, &corev1.Secret{}) }).
			WithTimeout(eventually).WithPolling(poll).Should(Satisfy(apierrors.IsNotFound))
	})

	t.Run("it goes with the Agent", func(t *testing.T) {
		g := NewWithT(t)
		updateAgent(g, agent, func(a *custosv1alpha1.Agent) {
			a.Spec.Credentials = append(a.Spec.Credentials, withGatewayCredentialSpec("ledger-key"))
		})
		g.Eventually(func() error { return k8sClient.Get(ctx, kept, &corev1.Secret{}) }).
			WithTimeout(eventually).WithPolling(poll).Should(Succeed())
		g.Expect(k8sClient.Delete(ctx, agent)).To(Succeed())
		g.Eventually(func() error { return k8sClient.Get(ctx, kept, &corev1.Secret{}) }).
			WithTimeout(eventually).WithPolling(poll).Should(Satisfy(apierrors.IsNotFound))
	})

	t.Run("the sweeper reaps one whose Agent is gone", func(t *testing.T) {
		g := NewWithT(t)
		zombie := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: credsNS, Name: "agent-" + ns + ".ghost.ledger-key", Labels: map[string]string{
				custosv1alpha1.ManagedByLabel:      custosv1alpha1.ManagedByValue,
				custosv1alpha1.AgentLabel:          "ghost",
				custosv1alpha1.AgentUIDLabel:       "00000000-0000-0000-0000-000000000000",
				custosv1alpha1.AgentNamespaceLabel: ns,
				custosv1alpha1.CredentialLabel:     "ledger-key",
			}},
			Type: custosv1alpha1.LeaseSecretType,
		}
		g.Expect(k8sClient.Create(ctx, zombie)).To(Succeed())
		g.Eventually(func() error { return k8sClient.Get(ctx, client.ObjectKeyFromObject(zombie), &corev1.Secret{}) }).
			WithTimeout(eventually).WithPolling(poll).Should(Satisfy(apierrors.IsNotFound))
	})
}

// withGatewayCredentialSpec is withGatewayCredential's credential alone.
func withGatewayCredentialSpec(name string) custosv1alpha1.CredentialSpec {
	a := &custosv1alpha1.Agent{}
	withGatewayCredential(name)(a)
	return a.Spec.Credentials[0]
}

// TestGatewayCredentialNotConfigured: without a namespace to keep it in,
// a gateway-only credential is not issued at all (GatewayNotConfigured),
// least of all into the agent's namespace.
func TestGatewayCredentialNotConfigured(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("gwnocred")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "ledger", tenant))
	agent := newAgent(ns, "nokeeper", tenant, withGatewayCredential("ledger-key"))
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionFalse, custosv1alpha1.GatewayNotConfiguredReason)
		expectCondition(g, a, custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.GatewayNotConfiguredReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-nokeeper.ledger-key"}, &corev1.Secret{})).
		To(Satisfy(apierrors.IsNotFound))
}
