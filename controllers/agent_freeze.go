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

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// +kubebuilder:rbac:groups=custos.dev,resources=agentfreezes,verbs=get;list;watch

// agentOfFreeze maps a freeze to its Agent.
func agentOfFreeze(_ context.Context, o client.Object) []reconcile.Request {
	f := o.(*custosv1alpha1.AgentFreeze)
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: f.Namespace, Name: f.Spec.Agent}}}
}

// freezeOf is the oldest AgentFreeze that holds agent (naming it, and not
// lifted, whichever Agent of that name it was made for); nil when none does. A namespace holds few freezes:
// they are read whole, as custos-gateway and custos-sts read them.
func (r *AgentReconciler) freezeOf(ctx context.Context, agent *custosv1alpha1.Agent) (*custosv1alpha1.AgentFreeze, error) {
	var list custosv1alpha1.AgentFreezeList
	if err := r.Client.List(ctx, &list, client.InNamespace(agent.Namespace)); err != nil {
		return nil, fmt.Errorf("reading the AgentFreezes of %s: %w", agent.Name, err)
	}
	var oldest *custosv1alpha1.AgentFreeze
	for i := range list.Items {
		f := &list.Items[i]
		if f.Holds(agent) && (oldest == nil || f.CreationTimestamp.Before(&oldest.CreationTimestamp)) {
			oldest = f
		}
	}
	return oldest, nil
}
