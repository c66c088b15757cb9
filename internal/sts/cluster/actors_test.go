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

package cluster

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/fixtures"
)

// The package's control plane: kube-apiserver and etcd with Custos's CRDs
// and admission policies, no manager: the tests write the Agents' status
// as the manager would.
var k8sClient client.Client

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(scheme))
	cp, err := controlplane.Start(context.Background(), controlplane.Options{RepoRoot: "../../..", Scheme: scheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "sts/cluster: cannot start the control plane: %v\n", err)
		return 1
	}
	defer func() { _ = cp.Stop() }()
	if k8sClient, err = client.New(cp.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintf(os.Stderr, "sts/cluster: %v\n", err)
		return 1
	}
	return m.Run()
}

const audience = "custos-sts"

// agentWithPod creates an Agent of tenant in ns, Active with its image
// verified, its ServiceAccount and a pod running as it, and returns a token
// bound to that pod for the STS.
func agentWithPod(t *testing.T, ns, tenant, name string, delegation *custosv1alpha1.AgentDelegation,
	opts ...fixtures.AgentOption) (*custosv1alpha1.Agent, *corev1.Pod, string) {
	t.Helper()
	agent := fixtures.Agent(ns, name, tenant, opts...)
	agent.Spec.Delegation = delegation
	agent, pod := fixtures.ActiveAgentPod(t, k8sClient, agent)
	return agent, pod, podToken(t, pod, audience)
}

func podToken(t *testing.T, pod *corev1.Pod, aud string) string {
	t.Helper()
	return fixtures.PodToken(t, k8sClient, pod, aud)
}

func newActors(clk *clocktesting.FakePassiveClock) *Actors {
	return &Actors{Client: k8sClient, Reader: k8sClient, TrustDomain: "cluster.local", Audience: audience, Clock: clk}
}

func TestResolveActor(t *testing.T) {
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("sts")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	agent, _, token := agentWithPod(t, ns, tenant, "invoice", &custosv1alpha1.AgentDelegation{
		Groups: []string{"finance-clerks"}, Agents: []custosv1alpha1.AgentReference{{Name: "intake"}, {Name: "crm", Namespace: "sales"}}})
	actors := newActors(clocktesting.NewFakePassiveClock(time.Now()))

	got, err := actors.ResolveActor(ctx, tenant, token)
	if err != nil {
		t.Fatal(err)
	}
	want := "spiffe://cluster.local/ns/" + ns + "/sa/agent-invoice"
	if got.ID != want || got.Tenant != tenant || got.UID != string(agent.UID) || !got.Runnable || got.Audiences[0] != want {
		t.Errorf("resolved %+v", got)
	}
	if d := got.Delegation; d.MaxDepth != 2 || d.Groups[0] != "finance-clerks" ||
		d.Agents[0] != "spiffe://cluster.local/ns/"+ns+"/sa/agent-intake" || d.Agents[1] != "spiffe://cluster.local/ns/sales/sa/agent-crm" {
		t.Errorf("delegation %+v: want maxDepth defaulted to 2 and the agents as SPIFFE IDs", d)
	}

	// Suspended: the Agent is read every time, so at once, whatever the
	// review cache holds.
	agent.Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended
	if err := k8sClient.Update(ctx, agent); err != nil {
		t.Fatal(err)
	}
	if got, err := actors.ResolveActor(ctx, tenant, token); err != nil || got.Runnable || !strings.Contains(got.NotRunnable, "Suspended") {
		t.Errorf("a suspended agent: %+v, %v", got, err)
	}
	agent.Spec.Lifecycle.State = custosv1alpha1.LifecycleActive
	if err := k8sClient.Update(ctx, agent); err != nil {
		t.Fatal(err)
	}
	for phase, why := range map[custosv1alpha1.AgentPhase]string{
		custosv1alpha1.AgentPhaseFrozen:  "Frozen",
		custosv1alpha1.AgentPhasePending: "Pending",
	} {
		agent.Status.Lifecycle.Phase = phase
		if err := k8sClient.Status().Update(ctx, agent); err != nil {
			t.Fatal(err)
		}
		if got, err := actors.ResolveActor(ctx, tenant, token); err != nil || got.Runnable || !strings.Contains(got.NotRunnable, why) {
			t.Errorf("phase %s: %+v, %v", phase, got, err)
		}
	}
	agent.Status.Lifecycle.Phase = custosv1alpha1.AgentPhaseActive
	meta.SetStatusCondition(&agent.Status.Conditions, metav1.Condition{Type: custosv1alpha1.ImageVerifiedCondition,
		Status: metav1.ConditionFalse, Reason: custosv1alpha1.SignatureMissingReason, Message: "no signature"})
	if err := k8sClient.Status().Update(ctx, agent); err != nil {
		t.Fatal(err)
	}
	if got, err := actors.ResolveActor(ctx, tenant, token); err != nil || got.Runnable || !strings.Contains(got.NotRunnable, "image") {
		t.Errorf("an unverified image: %+v, %v", got, err)
	}
}

// TestActorTokensRefused: only a live agent pod's own token, for the STS,
// is an actor token.
func TestActorTokensRefused(t *testing.T) {
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("sts")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	_, pod, _ := agentWithPod(t, ns, tenant, "invoice", nil)
	actors := newActors(clocktesting.NewFakePassiveClock(time.Now()))

	other := fixtures.Create(t, k8sClient, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder", Namespace: ns}})
	otherPod := fixtures.Create(t, k8sClient, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "builder", Namespace: ns},
		Spec:       corev1.PodSpec{ServiceAccountName: other.Name, Containers: []corev1.Container{{Name: "b", Image: fixtures.Image}}},
	})
	unbound := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr.To[int64](600)}}
	if err := k8sClient.SubResource("token").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "agent-invoice", Namespace: ns}}, unbound); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ token, says string }{
		"not a token":                       {"not-a-token", "does not authenticate"},
		"the agent's token for another use": {podToken(t, pod, "ledger-api"), "does not authenticate"},
		"a token bound to no pod":           {unbound.Status.Token, "not bound to a pod"},
		"another ServiceAccount's pod":      {podToken(t, otherPod, audience), "is no agent's"},
	} {
		t.Run(name, func(t *testing.T) {
			if got, err := actors.ResolveActor(ctx, tenant, tc.token); err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("resolved %+v, %v; want a refusal saying %q", got, err, tc.says)
			}
		})
	}
}

// TestDeletedPodStopsActing: once the pod is deleted, its token stops
// resolving at once, although the review's answer is kept (DefaultReviewTTL)
// and the API server goes on authenticating the token for a while (its
// cache of authenticated tokens): the pod is read every time. A pod of the
// same name made again does not bring the token back.
func TestDeletedPodStopsActing(t *testing.T) {
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("sts")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	_, pod, token := agentWithPod(t, ns, tenant, "invoice", nil)
	actors := newActors(clocktesting.NewFakePassiveClock(time.Now()))
	if _, err := actors.ResolveActor(ctx, tenant, token); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := actors.ResolveActor(ctx, tenant, token); err == nil || !strings.Contains(err.Error(), "is gone") {
		t.Errorf("a deleted pod's token, within the review TTL: %v, want refused", err)
	}
	again := pod.DeepCopy()
	again.ResourceVersion, again.UID = "", ""
	fixtures.Create(t, k8sClient, again)
	if _, err := actors.ResolveActor(ctx, tenant, token); err == nil || !strings.Contains(err.Error(), "is gone") {
		t.Errorf("the token of a pod deleted and made again under its name: %v, want refused", err)
	}
}

// TestAPIServerAuthenticatesADeletedPodsTokenForAWhile measures what the
// pod read above protects against: how long kube-apiserver goes on
// authenticating a deleted pod's token (TokenReview), which the issue asked
// to know.
func TestAPIServerAuthenticatesADeletedPodsTokenForAWhile(t *testing.T) {
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("sts")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	_, pod, token := agentWithPod(t, ns, tenant, "invoice", nil)
	review := func() bool {
		tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{audience}}}
		if err := k8sClient.Create(ctx, tr); err != nil {
			t.Fatal(err)
		}
		return tr.Status.Authenticated
	}
	if !review() {
		t.Fatal("a live pod's token is not authenticated")
	}
	deleted := time.Now()
	if err := k8sClient.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	for review() {
		if time.Since(deleted) > 30*time.Second {
			t.Fatalf("kube-apiserver still authenticates a deleted pod's token %s after the delete", time.Since(deleted).Round(time.Second))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("kube-apiserver authenticated a deleted pod's token for %s after the delete", time.Since(deleted).Round(10*time.Millisecond))
}
