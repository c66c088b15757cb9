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
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestGatewayExchangeOnTheCluster: docs/sts.md's "Who calls whom" against
// a real API server: the agent exchanges alice's token for the tenant's
// gateway; the gateway's pod (its ServiceAccount the one custos-sts is
// told) exchanges that for the agent's Toolset, without becoming an actor;
// a pod of another ServiceAccount of the gateway's namespace cannot, nor
// can the gateway once its pod is gone.
func TestGatewayExchangeOnTheCluster(t *testing.T) {
	w := newOnCluster(t, "gw")
	ctx, now, tenant, ns, system, issuer := context.Background(), w.clk.Now(), w.tenant, w.ns, w.system, w.issuer
	read := custosv1alpha1.Tool{Name: "get_invoice", Access: custosv1alpha1.ToolAccessRead}
	write := custosv1alpha1.Tool{Name: "post_entry", Access: custosv1alpha1.ToolAccessWrite}
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "ledger", tenant, fixtures.WithTools(read, write)))
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "crm", tenant))
	_, _, invoiceToken := agentWithPod(t, ns, tenant, "invoice",
		&custosv1alpha1.AgentDelegation{People: []string{"alice"}}, fixtures.WithToolsets("ledger"))

	// The gateway's pod, and a pod of another ServiceAccount beside it.
	podOf := func(sa string) *corev1.Pod {
		fixtures.Create(t, k8sClient, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: system}})
		return fixtures.Create(t, k8sClient, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: sa + "-0", Namespace: system},
			Spec: corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "c", Image: fixtures.Image}}}})
	}
	gatewayPod, otherPod := podOf("custos-gateway"), podOf("custos-sts")
	gatewayToken, otherToken := podToken(t, gatewayPod, audience), podToken(t, otherPod, audience)
	// What a namespace edit user of the tenant can make: a ServiceAccount
	// named as the gateway's, in the tenant's namespace, and a pod of it.
	fixtures.Create(t, k8sClient, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "custos-gateway", Namespace: ns}})
	lookalikePod := fixtures.Create(t, k8sClient, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "custos-gateway-0", Namespace: ns},
		Spec: corev1.PodSpec{ServiceAccountName: "custos-gateway", Containers: []corev1.Container{{Name: "c", Image: fixtures.Image}}}})
	lookalikeToken := podToken(t, lookalikePod, audience)

	w.actors.Gateway = types.NamespacedName{Namespace: system, Name: "custos-gateway"}
	exchange := func(subject, actor, target string) (*sts.TokenResponse, *sts.Error) {
		return w.exchange(subject, actor, target, "")
	}
	person := w.provider.Token(t, "alice", "custos-sts", now.Add(time.Hour), nil) // scp ledger.read ledger.write
	ledger := ToolsetResource(ns, "ledger")

	// 1. The agent, for the gateway.
	t1, serr := exchange(person, invoiceToken, sts.GatewayAudience(tenant))
	if serr != nil {
		t.Fatal(serr)
	}
	c1, err := issuer.Verify(t1.AccessToken, sts.GatewayAudience(tenant), now)
	if err != nil || c1.Scope != "ledger.read ledger.write" {
		t.Fatalf("T1: %+v, %v", c1, err)
	}
	// 3. The gateway, for the ledger.
	t2, serr := exchange(t1.AccessToken, gatewayToken, ledger)
	if serr != nil {
		t.Fatal(serr)
	}
	c2, err := issuer.Verify(t2.AccessToken, ledger, now)
	if err != nil || c2.Subject != "alice" || c2.Depth() != 1 || !strings.HasSuffix(c2.ClientID, "/ns/"+ns+"/sa/agent-invoice") ||
		c2.Parent != c1.ID || c2.Scope != "ledger.read ledger.write" {
		t.Errorf("T2: %+v, %v; want alice's, invoice acting alone, child of T1", c2, err)
	}
	if ev := w.last(); ev.Details["gateway"] != "spiffe://cluster.local/ns/"+system+"/sa/custos-gateway" || ev.Subject.Name != "invoice" {
		t.Errorf("the record of the gateway's exchange: %+v", ev)
	}

	for name, tc := range map[string]struct {
		subject, actor, target, says string
	}{
		"another ServiceAccount of the gateway's namespace":               {t1.AccessToken, otherToken, ledger, "is no agent's"},
		"a ServiceAccount named custos-gateway in the tenant's namespace": {t1.AccessToken, lookalikeToken, ledger, "is no agent's"},
		"a Toolset that is not the agent's":                               {t1.AccessToken, gatewayToken, ToolsetResource(ns, "crm"), "none of agent " + ns + "/invoice's Toolsets"},
		"the agent with its token for the gateway":                        {t1.AccessToken, invoiceToken, ledger, "WrongAudience"},
		"the gateway with the person's own token":                         {person, gatewayToken, ledger, "with no agent acting"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, serr := exchange(tc.subject, tc.actor, tc.target); serr == nil || !strings.Contains(serr.Description, tc.says) {
				t.Errorf("%v, want refused saying %q", serr, tc.says)
			}
			if ev := w.last(); ev.Action != audit.ActionTokenRefused {
				t.Errorf("the record: %+v", ev)
			}
		})
	}
	// Once the gateway's pod is gone, its token no longer exchanges.
	if err := k8sClient.Delete(ctx, gatewayPod); err != nil {
		t.Fatal(err)
	}
	if _, serr := exchange(t1.AccessToken, gatewayToken, ledger); serr == nil || !strings.Contains(serr.Description, "is gone") {
		t.Errorf("the deleted gateway pod's token: %v, want refused", serr)
	}
}
