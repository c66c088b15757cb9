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
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
)

// agentKind is a kind of object an agent has: made by Custos for it, or
// made from what Custos made (a Deployment's ReplicaSets and pods).
type agentKind struct {
	kind    string
	newObj  func() client.Object
	newList func() client.ObjectList
	// removing is the decommission step that deletes the agent's objects
	// of the kind and waits for them to be gone (teardownOrder).
	removing string
	// removed is the audit action of deleting one, in the decommission
	// path or by the sweeper.
	removed string
	// made: Custos makes objects of the kind for an agent, labelled with
	// it; the sweeper reaps those whose Agent is gone. The others belong
	// to a Deployment, and the garbage collector removes them with it.
	made bool
	// named: the agent's object of the kind is named after the agent, and
	// the name may be held by someone else's object (NameConflict). The
	// name cache keeps the metadata of every object of the kind, and their
	// deletion wakes the agent whose name they held.
	named bool
	// cachedWhole: the manager caches every object of the kind, not only
	// Custos's (CacheOptions).
	cachedWhole bool
}

// agentKinds are every kind of object an agent has; the decommission
// path, the sweeper, the manager's cache and the name cache all read this
// one table.
var agentKinds = []agentKind{{
	kind:     "Secret",
	newObj:   func() client.Object { return &corev1.Secret{} },
	newList:  func() client.ObjectList { return &corev1.SecretList{} },
	removing: custosv1alpha1.RevokingLeasesReason, removed: audit.ActionLeaseRevoked,
	made: true,
}, {
	kind:     "Deployment",
	newObj:   func() client.Object { return &appsv1.Deployment{} },
	newList:  func() client.ObjectList { return &appsv1.DeploymentList{} },
	removing: custosv1alpha1.RemovingWorkloadReason, removed: audit.ActionWorkloadRemoved,
	made: true, named: true,
}, {
	kind:     "ReplicaSet",
	newObj:   func() client.Object { return &appsv1.ReplicaSet{} },
	newList:  func() client.ObjectList { return &appsv1.ReplicaSetList{} },
	removing: custosv1alpha1.RemovingWorkloadReason, removed: audit.ActionWorkloadRemoved,
}, {
	kind:     "Pod",
	newObj:   func() client.Object { return &corev1.Pod{} },
	newList:  func() client.ObjectList { return &corev1.PodList{} },
	removing: custosv1alpha1.RemovingWorkloadReason, removed: audit.ActionWorkloadRemoved,
}, {
	kind:     "NetworkPolicy",
	newObj:   func() client.Object { return &networkingv1.NetworkPolicy{} },
	newList:  func() client.ObjectList { return &networkingv1.NetworkPolicyList{} },
	removing: custosv1alpha1.RemovingNetworkPolicyReason, removed: audit.ActionNetworkRemoved,
	made: true, named: true,
	// Any NetworkPolicy may select an agent's pods and widen its network
	// (NetworkIsolated).
	cachedWhole: true,
}, {
	kind:     "ServiceAccount",
	newObj:   func() client.Object { return &corev1.ServiceAccount{} },
	newList:  func() client.ObjectList { return &corev1.ServiceAccountList{} },
	removing: custosv1alpha1.RemovingIdentityReason, removed: audit.ActionIdentityRemoved,
	made: true, named: true,
}}

// kindsWhere lists the agentKinds for which keep is true, in table order.
func kindsWhere(keep func(agentKind) bool) []agentKind {
	var out []agentKind
	for _, k := range agentKinds {
		if keep(k) {
			out = append(out, k)
		}
	}
	return out
}

// removedAction is the audit action of deleting an agent's object of kind.
func removedAction(kind string) string {
	for _, k := range agentKinds {
		if k.kind == kind {
			return k.removed
		}
	}
	return audit.ActionWorkloadRemoved
}

// childSelector selects what Custos made for the Agent named name with
// uid: its labels, Custos's managed-by among them. An earlier Agent of the
// same name had another UID; its leftovers are not selected.
func childSelector(name string, uid types.UID) client.MatchingLabels {
	return client.MatchingLabels{
		custosv1alpha1.AgentLabel:     name,
		custosv1alpha1.AgentUIDLabel:  string(uid),
		custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue,
	}
}

// childrenOf selects what Custos made for agent.
func childrenOf(agent *custosv1alpha1.Agent) client.MatchingLabels {
	return childSelector(agent.Name, agent.UID)
}
