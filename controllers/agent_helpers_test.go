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
	"math/rand/v2"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
)

const (
	eventually = 20 * time.Second
	poll       = 100 * time.Millisecond
)

// newTenant returns a tenant name of the calling test's own: DataBoundaries
// are cluster-scoped, so tests must not share tenants.
func newTenant(prefix string) string {
	return fmt.Sprintf("%s-%06d", prefix, rand.IntN(1_000_000))
}

// createBoundary creates a DataBoundary for tenant covering the namespaces
// labelled with it, allowing the usual test roles and egress.
func createBoundary(t *testing.T, tenant string, regions ...string) *custosv1alpha1.DataBoundary {
	t.Helper()
	b := &custosv1alpha1.DataBoundary{
		ObjectMeta: metav1.ObjectMeta{Name: tenant},
		Spec: custosv1alpha1.DataBoundarySpec{
			Tenant:            tenant,
			NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{custosv1alpha1.TenantLabel: tenant}},
			Regions:           regions,
			Egress:            &custosv1alpha1.EgressPolicy{CIDRs: []string{"203.0.113.0/24"}},
			CloudRoles: &custosv1alpha1.CloudRolePolicy{
				AWSRoleARNs:        []string{"arn:aws:iam::111122223333:role/" + tenant + "-*"},
				GCPServiceAccounts: []string{"*@" + tenant + ".iam.gserviceaccount.com"},
			},
			Images: trustedImages(),
		},
	}
	if err := k8sClient.Create(context.Background(), b); err != nil {
		t.Fatalf("creating DataBoundary: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), b) })
	return b
}

// createToolset creates an in-cluster read-only Toolset in ns.
func createToolset(t *testing.T, ns, name, tenant string) *custosv1alpha1.Toolset {
	t.Helper()
	ts := &custosv1alpha1.Toolset{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{custosv1alpha1.TenantLabel: tenant}},
		Spec: custosv1alpha1.ToolsetSpec{
			Endpoint: custosv1alpha1.ToolEndpoint{InCluster: &custosv1alpha1.InClusterEndpoint{
				Namespace: ns, PodSelector: map[string]string{"app": "ledger-api"}, Port: 8080,
			}},
			Tools: []custosv1alpha1.Tool{{Name: "get_invoice", Access: custosv1alpha1.ToolAccessRead}},
		},
	}
	if err := k8sClient.Create(context.Background(), ts); err != nil {
		t.Fatalf("creating Toolset: %v", err)
	}
	return ts
}

type agentOption func(*custosv1alpha1.Agent)

func withToolsets(names ...string) agentOption {
	return func(a *custosv1alpha1.Agent) {
		for _, n := range names {
			a.Spec.ToolsetRefs = append(a.Spec.ToolsetRefs, custosv1alpha1.ToolsetReference{Name: n})
		}
	}
}

func withAWSRole(arn string) agentOption {
	return func(a *custosv1alpha1.Agent) {
		if a.Spec.Identity == nil {
			a.Spec.Identity = &custosv1alpha1.IdentityBindings{}
		}
		a.Spec.Identity.AWS = &custosv1alpha1.AWSIdentity{RoleARN: arn}
	}
}

func withReplicas(n int32) agentOption {
	return func(a *custosv1alpha1.Agent) { a.Spec.Runtime.Replicas = ptr.To(n) }
}

// newAgent builds a valid Agent of tenant in ns.
func newAgent(ns, name, tenant string, opts ...agentOption) *custosv1alpha1.Agent {
	a := &custosv1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{custosv1alpha1.TenantLabel: tenant}},
		Spec: custosv1alpha1.AgentSpec{
			Owner:   custosv1alpha1.AgentOwner{Team: "finance-platform", Contact: "fp@acme.example"},
			Purpose: "Reconcile supplier invoices against the ledger.",
			Image:   testImage,
			Credentials: []custosv1alpha1.CredentialSpec{{
				Name:            "ledger-api",
				KubernetesToken: &custosv1alpha1.KubernetesTokenCredential{Audience: "ledger-api"},
				TTL:             metav1.Duration{Duration: 10 * time.Minute},
			}},
		},
	}
	for _, o := range opts {
		o(a)
	}
	return a
}

// getAgent reads an Agent fresh from the API server.
func getAgent(g Gomega, a *custosv1alpha1.Agent) *custosv1alpha1.Agent {
	got := &custosv1alpha1.Agent{}
	g.Expect(k8sClient.Get(context.Background(), keyOf(a), got)).To(Succeed())
	return got
}

// expectCondition asserts a condition's status and reason.
func expectCondition(g Gomega, a *custosv1alpha1.Agent, conditionType string, st metav1.ConditionStatus, reason string) {
	c := meta.FindStatusCondition(a.Status.Conditions, conditionType)
	g.Expect(c).NotTo(BeNil(), "no %s condition in %+v", conditionType, a.Status.Conditions)
	g.Expect(c.Status).To(Equal(st), "%s: %s", conditionType, c.Message)
	g.Expect(c.Reason).To(Equal(reason), "%s: %s", conditionType, c.Message)
}

// kstatusOf computes what kstatus (and so Flux, Argo CD and kubectl wait
// tooling) makes of obj.
func kstatusOf(g Gomega, obj runtime.Object) status.Status {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := status.Compute(&unstructured.Unstructured{Object: u})
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

// markDeploymentRolledOut stands in for the deployment controller, absent
// from the test control plane: it reports the Deployment's current template
// as fully rolled out and available.
func markDeploymentRolledOut(g Gomega, ns, name string) {
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
	n := ptr.Deref(d.Spec.Replicas, 1)
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		Replicas:           n,
		UpdatedReplicas:    n,
		ReadyReplicas:      n,
		AvailableReplicas:  n,
	}
	g.Expect(k8sClient.Status().Update(context.Background(), d)).To(Succeed())
}

// eventReasons lists the reasons of the Events recorded about obj.
func eventReasons(g Gomega, obj client.Object) []string {
	var events eventsv1.EventList
	g.Expect(k8sClient.List(context.Background(), &events, client.InNamespace(obj.GetNamespace()))).To(Succeed())
	var reasons []string
	for _, e := range events.Items {
		if e.Regarding.UID == obj.GetUID() {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}

// poke changes an annotation so the Agent is reconciled now, as any edit
// by its owner would.
func poke(g Gomega, a *custosv1alpha1.Agent) {
	got := getAgent(g, a)
	patch := client.MergeFrom(got.DeepCopy())
	if got.Annotations == nil {
		got.Annotations = map[string]string{}
	}
	got.Annotations["test.custos.dev/poke"] = time.Now().String()
	g.Expect(k8sClient.Patch(context.Background(), got, patch)).To(Succeed())
}

// updateBoundary applies change to the current DataBoundary name, retrying
// on conflicts with the reconciler's status writes.
func updateBoundary(g Gomega, name string, change func(*custosv1alpha1.DataBoundary)) {
	g.Eventually(func() error {
		b := &custosv1alpha1.DataBoundary{}
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Name: name}, b); err != nil {
			return err
		}
		change(b)
		return k8sClient.Update(context.Background(), b)
	}).WithTimeout(eventually).Should(Succeed())
}

// auditTrail returns the audit records about the object with uid (for an
// agent's children, about their agent), in the order they were recorded.
func auditTrail(uid types.UID) []audit.Record {
	var out []audit.Record
	for _, r := range auditRecords.Events() {
		if r.Subject != nil && r.Subject.UID == string(uid) {
			out = append(out, r)
		}
	}
	return out
}

// auditActions lists the actions of records.
func auditActions(records []audit.Record) []string {
	out := make([]string, 0, len(records))
	for _, r := range records {
		out = append(out, r.Action)
	}
	return out
}
