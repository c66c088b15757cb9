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

package gitops

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
)

// kubectlManager is the field manager kubectl applies server-side with.
const kubectlManager = "kubectl"

// samples renders config/samples (with the sample image served on
// loopback: samplesOverlay) as kubectl applies them.
func samples(t *testing.T, g Gomega) []*unstructured.Unstructured {
	out, errOut, code := runKubectl(t, "kustomize", samplesOverlay)
	g.Expect(code).To(BeZero(), errOut)
	var objs []*unstructured.Unstructured
	docs := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		g.Expect(err).NotTo(HaveOccurred())
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		u := &unstructured.Unstructured{}
		g.Expect(yaml.Unmarshal(doc, &u.Object)).To(Succeed())
		objs = append(objs, u)
	}
	g.Expect(objs).NotTo(BeEmpty())
	return objs
}

// liveState is what a second apply must leave as it was.
type liveState struct {
	resourceVersion string
	generation      int64
	applied         *metav1.ManagedFieldsEntry
}

func stateOf(g Gomega, obj *unstructured.Unstructured) liveState {
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(obj.GroupVersionKind())
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(obj), live)).To(Succeed())
	st := liveState{resourceVersion: live.GetResourceVersion(), generation: live.GetGeneration()}
	for _, f := range live.GetManagedFields() {
		if f.Manager == kubectlManager && f.Operation == metav1.ManagedFieldsOperationApply {
			st.applied = f.DeepCopy()
		}
	}
	return st
}

func describe(obj *unstructured.Unstructured) string {
	return obj.GetKind() + " " + nameOf(obj.Object)
}

// TestApplySamplesTwiceIsANoOp: what a GitOps tool does on every sync.
// Once the first server-side apply of config/samples is reconciled, a
// second one changes nothing (no defaulting, admission policy or webhook
// makes the live objects drift from the manifests), and a server-side diff
// finds nothing to do.
func TestApplySamplesTwiceIsANoOp(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	objs := samples(t, g)

	out, errOut, code := runKubectl(t, "apply", "--server-side", "-k", samplesOverlay)
	g.Expect(code).To(BeZero(), "%s%s", out, errOut)

	// Reconciled: every Custos object current (the Agent once its
	// Deployment rolled out), and the boundary counts the agent.
	g.Eventually(func(g Gomega) {
		g.Expect(fixtures.MarkRolledOut(k8sClient, "finance-agents", "agent-invoice-reconciler")).To(Succeed())
	}).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		for _, obj := range objs {
			if obj.GroupVersionKind().Group != custosv1alpha1.GroupVersion.Group {
				continue
			}
			live := &unstructured.Unstructured{}
			live.SetGroupVersionKind(obj.GroupVersionKind())
			g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(obj), live)).To(Succeed())
			expectStatus(g, live.Object, status.CurrentStatus, healthy)
			if obj.GetKind() == "DataBoundary" {
				agents, _, _ := unstructured.NestedInt64(live.Object, "status", "agents")
				g.Expect(agents).To(Equal(int64(1)))
			}
		}
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Custos is done writing: nothing changes while no one applies.
	before := map[string]liveState{}
	for _, obj := range objs {
		before[describe(obj)] = stateOf(g, obj)
	}
	g.Consistently(func(g Gomega) {
		for _, obj := range objs {
			g.Expect(stateOf(g, obj).resourceVersion).To(Equal(before[describe(obj)].resourceVersion),
				"Custos keeps writing %s although nothing changed", describe(obj))
		}
	}).WithTimeout(2 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	out, errOut, code = runKubectl(t, "apply", "--server-side", "-k", samplesOverlay)
	g.Expect(code).To(BeZero(), "%s%s", out, errOut)
	for _, obj := range objs {
		name := describe(obj)
		after := stateOf(g, obj)
		g.Expect(after.applied).NotTo(BeNil(), "%s has no fields applied by %s", name, kubectlManager)
		g.Expect(after.resourceVersion).To(Equal(before[name].resourceVersion), "the second apply wrote %s", name)
		g.Expect(after.generation).To(Equal(before[name].generation), "the second apply changed the spec of %s", name)
		g.Expect(after.applied).To(Equal(before[name].applied), "the second apply changed what %s owns of %s", kubectlManager, name)
	}

	// The apply left Custos's own bookkeeping alone: the Agent keeps the
	// decommission finalizer the API server added on creation, which no
	// manifest lists.
	agent := &custosv1alpha1.Agent{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: "finance-agents", Name: "invoice-reconciler"}, agent)).To(Succeed())
	g.Expect(agent.Finalizers).To(ContainElement(custosv1alpha1.DecommissionFinalizer))
	// It runs the sample image from the loopback registry, verified against
	// the sample boundary's signer and pinned by digest.
	expectPinned(g, agent)

	// kubectl diff exits 1 when it finds a difference, more on an error.
	out, errOut, code = runKubectl(t, "diff", "--server-side", "-k", samplesOverlay)
	g.Expect(code).To(BeZero(), "kubectl diff --server-side found a difference:\n%s%s", out, errOut)
	g.Expect(strings.TrimSpace(out)).To(BeEmpty())
}

// TestPruneDecommissionsAgent: a GitOps tool prunes an Agent removed from
// Git by deleting it, as kubectl apply --prune and kubectl delete do. The
// decommission path runs: its ServiceAccount, NetworkPolicy and Deployment
// go (there is no garbage collector in the test control plane, so Custos
// itself deleted them), then the finalizer is released and the Agent goes.
func TestPruneDecommissionsAgent(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tenant := fixtures.UniqueTenant("prune")
	createBoundary(t, tenant)
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	label := "gitops.custos.dev/test=" + tenant

	manifest := func(objs ...any) string {
		var docs []string
		for _, o := range objs {
			data, err := yaml.Marshal(o)
			g.Expect(err).NotTo(HaveOccurred())
			docs = append(docs, string(data))
		}
		path := filepath.Join(t.TempDir(), "manifest.yaml")
		g.Expect(os.WriteFile(path, []byte(strings.Join(docs, "---\n")), 0o600)).To(Succeed())
		return path
	}
	labelled := func(obj client.Object) map[string]any {
		u := unstructuredOf(g, obj)
		labels := u.GetLabels()
		labels["gitops.custos.dev/test"] = tenant
		u.SetLabels(labels)
		unstructured.RemoveNestedField(u.Object, "status")
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		return u.Object
	}
	toolset := labelled(fixtures.Toolset(ns, "ledger", tenant))
	pruned := newAgent(ns, "pruned", tenant, fixtures.WithToolsets("ledger"))
	deleted := newAgent(ns, "deleted", tenant, fixtures.WithToolsets("ledger"))

	// kubectl's --prune works only with client-side apply ("doesn't
	// currently work on objects created by server-side apply").
	out, errOut, code := runKubectl(t, "apply", "-f", manifest(toolset, labelled(pruned), labelled(deleted)))
	g.Expect(code).To(BeZero(), "%s%s", out, errOut)
	for _, a := range []*custosv1alpha1.Agent{pruned, deleted} {
		expectChildren(g, a, true)
	}

	// Removed from Git: apply --prune deletes what carries the label and
	// is no longer in the manifests.
	out, errOut, code = runKubectl(t, "apply", "--prune", "-l", label,
		"--prune-allowlist=custos.dev/v1alpha1/Agent", "--prune-allowlist=custos.dev/v1alpha1/Toolset",
		"-f", manifest(toolset, labelled(deleted)))
	g.Expect(code).To(BeZero(), "%s%s", out, errOut)
	g.Expect(out).To(ContainSubstring("agent.custos.dev/pruned pruned"))
	expectDecommissioned(g, pruned)
	expectChildren(g, deleted, true)

	// Argo CD prunes with a DELETE call. kubectl delete waits until the
	// Agent is gone, which only the finalizer's release allows.
	out, errOut, code = runKubectl(t, "delete", "agent", "-n", ns, "deleted", "--timeout=30s")
	g.Expect(code).To(BeZero(), "%s%s", out, errOut)
	expectDecommissioned(g, deleted)
}

// children are the objects Custos makes for an Agent.
func children(a *custosv1alpha1.Agent) []client.Object {
	key := metav1.ObjectMeta{Namespace: a.Namespace, Name: "agent-" + a.Name}
	return []client.Object{
		&corev1.ServiceAccount{ObjectMeta: key},
		&networkingv1.NetworkPolicy{ObjectMeta: key},
		&appsv1.Deployment{ObjectMeta: key},
	}
}

// expectChildren waits until the Agent's ServiceAccount, NetworkPolicy and
// Deployment exist.
func expectChildren(g Gomega, a *custosv1alpha1.Agent, exist bool) {
	g.Eventually(func(g Gomega) {
		for _, c := range children(a) {
			err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(c), c)
			if exist {
				g.Expect(err).NotTo(HaveOccurred(), "%T %s", c, c.GetName())
			} else {
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T %s is still there: %v", c, c.GetName(), err)
			}
		}
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// expectDecommissioned waits until the Agent and everything it had are gone.
func expectDecommissioned(g Gomega, a *custosv1alpha1.Agent) {
	expectChildren(g, a, false)
	g.Eventually(func(g Gomega) {
		err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(a), &custosv1alpha1.Agent{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Agent %s/%s is still there: %v", a.Namespace, a.Name, err)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}
