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
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// +kubebuilder:rbac:groups=custos.dev,resources=agentattestations,verbs=get;list;watch

// attestationAgentIndex indexes AgentAttestations by the Agent they
// attest.
const attestationAgentIndex = "custos.dev/attested-agent"

func indexAttestations(o client.Object) []string {
	return []string{o.(*custosv1alpha1.AgentAttestation).Spec.Agent}
}

// agentOfAttestation maps an attestation to its Agent.
func agentOfAttestation(_ context.Context, o client.Object) []reconcile.Request {
	a := o.(*custosv1alpha1.AgentAttestation)
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: a.Namespace, Name: a.Spec.Agent}}}
}

// observeReview writes status.review from the agent's latest attestation
// (of this Agent, by UID: a new Agent of the same name starts afresh) and
// says when the next is due; overdue once now reaches it. Without
// spec.review there is none.
func (r *AgentReconciler) observeReview(ctx context.Context, agent *custosv1alpha1.Agent, now time.Time) (due time.Time, overdue bool, err error) {
	if agent.Spec.Review == nil {
		agent.Status.Review = nil
		return time.Time{}, false, nil
	}
	var list custosv1alpha1.AgentAttestationList
	if err := r.Client.List(ctx, &list, client.InNamespace(agent.Namespace), client.MatchingFields{attestationAgentIndex: agent.Name}); err != nil {
		return time.Time{}, false, fmt.Errorf("reading the AgentAttestations of %s: %w", agent.Name, err)
	}
	var latest *custosv1alpha1.AgentAttestation
	for i := range list.Items {
		a := &list.Items[i]
		if a.Spec.AgentUID != string(agent.UID) {
			continue
		}
		if latest == nil || a.CreationTimestamp.After(latest.CreationTimestamp.Time) {
			latest = a
		}
	}
	st := &custosv1alpha1.ReviewStatus{}
	since := agent.CreationTimestamp.Time
	if latest != nil {
		since = latest.CreationTimestamp.Time
		st.LastAttestedAt = latest.CreationTimestamp.DeepCopy()
		st.AttestedBy, st.Attestation = latest.Spec.Attester.Username, latest.Name
	}
	due = since.Add(time.Duration(agent.Spec.Review.EveryDays) * 24 * time.Hour)
	st.DueAt = &metav1.Time{Time: due}
	agent.Status.Review = st
	return due, !now.Before(due), nil
}
