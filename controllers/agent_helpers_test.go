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
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/test/fixtures"
)

const (
	eventually = 20 * time.Second
	poll       = 100 * time.Millisecond
)

// createBoundary creates, and deletes when the test ends, the suite's usual
// DataBoundary for tenant: the namespaces labelled with it, in regions,
// egress to 203.0.113.0/24, the tenant's AWS roles and GCP service
// accounts, and the suite's image signer.
func createBoundary(t *testing.T, tenant string, regions ...string) *custosv1alpha1.DataBoundary {
	t.Helper()
	return fixtures.Create(t, k8sClient, fixtures.DataBoundary(tenant,
		fixtures.WithRegions(regions...),
		fixtures.WithEgressCIDRs("203.0.113.0/24"),
		fixtures.WithAWSRoles(fixtures.AWSRoleARN(tenant+"-*")),
		fixtures.WithGCPServiceAccounts("*@"+tenant+".iam.gserviceaccount.com"),
		fixtures.WithImagePolicy(trustedImages())))
}

// newAgent is fixtures.Agent with what the suite's agents have unless a
// test says otherwise: the suite's signed image and one credential, a
// Kubernetes token for ledger-api.
func newAgent(ns, name, tenant string, opts ...fixtures.AgentOption) *custosv1alpha1.Agent {
	return fixtures.Agent(ns, name, tenant, append([]fixtures.AgentOption{
		fixtures.WithImage(testImage),
		fixtures.WithKubernetesToken("ledger-api", "ledger-api"),
	}, opts...)...)
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
