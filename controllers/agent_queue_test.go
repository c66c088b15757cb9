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

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// TestRolloutQueuesItsAgentFirst: an Agent whose Deployment's rollout moved
// on is reconciled before Agents queued earlier, so that under a burst each
// agent's Ready follows its rollout; a Deployment update that leaves the
// status alone, or a Deployment no Agent controls, queues nothing ahead.
func TestRolloutQueuesItsAgentFirst(t *testing.T) {
	deployment := func(owner *metav1.OwnerReference, available int32) *appsv1.Deployment {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "agent-x"}}
		if owner != nil {
			d.OwnerReferences = []metav1.OwnerReference{*owner}
		}
		d.Status.AvailableReplicas = available
		return d
	}
	agentOwner := &metav1.OwnerReference{APIVersion: custosv1alpha1.GroupVersion.String(), Kind: "Agent", Name: "x", UID: "u", Controller: ptr.To(true)}
	otherOwner := &metav1.OwnerReference{APIVersion: "example.com/v1", Kind: "Agent", Name: "x", UID: "u", Controller: ptr.To(true)}
	otherVersion := &metav1.OwnerReference{APIVersion: custosv1alpha1.GroupVersion.Group + "/v1", Kind: "Agent", Name: "x", UID: "u", Controller: ptr.To(true)}
	notController := &metav1.OwnerReference{APIVersion: custosv1alpha1.GroupVersion.String(), Kind: "Agent", Name: "x", UID: "u"}

	for _, tc := range []struct {
		name     string
		old, new *appsv1.Deployment
		ahead    bool
	}{
		{"rollout moved on", deployment(agentOwner, 0), deployment(agentOwner, 1), true},
		{"status unchanged", deployment(agentOwner, 1), deployment(agentOwner, 1), false},
		{"another group's Agent", deployment(otherOwner, 0), deployment(otherOwner, 1), false},
		{"owner written with another version", deployment(otherVersion, 0), deployment(otherVersion, 1), true},
		{"owner that is not the controller", deployment(notController, 0), deployment(notController, 1), false},
		{"no owner", deployment(nil, 0), deployment(nil, 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			q := priorityqueue.New[reconcile.Request]("test")
			defer q.ShutDown()
			earlier := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "team-a", Name: "queued-earlier"}}
			q.Add(earlier)
			r := &AgentReconciler{}
			r.rolloutMovedOn(context.Background(), event.TypedUpdateEvent[client.Object]{ObjectOld: tc.old, ObjectNew: tc.new}, q)
			_, remembered := r.prioritized.Load(types.NamespacedName{Namespace: "team-a", Name: "x"})
			g.Expect(remembered).To(Equal(tc.ahead), "the pass is remembered as queued ahead, to put its requeues back at 0")
			if !tc.ahead {
				g.Expect(q.Len()).To(Equal(1), "nothing queued")
				return
			}
			g.Eventually(q.Len).Should(Equal(2))
			first, priority, _ := q.GetWithPriority()
			g.Expect(first.NamespacedName).To(Equal(types.NamespacedName{Namespace: "team-a", Name: "x"}))
			g.Expect(priority).To(Equal(rolloutPriority))
			second, priority, _ := q.GetWithPriority()
			g.Expect(second).To(Equal(earlier))
			g.Expect(priority).To(BeZero())
		})
	}
}

// TestBoundaryStatusCountsQueueNoAgents: a DataBoundary's spec, deletion or
// image policy hash changing re-queues its Agents; its count of namespaces
// and Agents changing, which every Agent created does, does not.
func TestBoundaryStatusCountsQueueNoAgents(t *testing.T) {
	base := &custosv1alpha1.DataBoundary{ObjectMeta: metav1.ObjectMeta{Name: "acme", Generation: 1}}
	base.Status.ImagePolicyHash = "sha256:one"
	base.Status.Agents = 10
	change := func(f func(b *custosv1alpha1.DataBoundary)) *custosv1alpha1.DataBoundary {
		b := base.DeepCopy()
		f(b)
		return b
	}
	for _, tc := range []struct {
		name  string
		new   *custosv1alpha1.DataBoundary
		queue bool
	}{
		{"agents counted again", change(func(b *custosv1alpha1.DataBoundary) { b.Status.Agents = 11 }), false},
		{"namespaces counted again", change(func(b *custosv1alpha1.DataBoundary) { b.Status.Namespaces = []string{"team-a"} }), false},
		{"spec changed", change(func(b *custosv1alpha1.DataBoundary) { b.Generation = 2 }), true},
		{"key material changed", change(func(b *custosv1alpha1.DataBoundary) { b.Status.ImagePolicyHash = "sha256:two" }), true},
		{"policy became unreadable", change(func(b *custosv1alpha1.DataBoundary) { b.Status.ImagePolicyHash = "" }), true},
		{"being deleted", change(func(b *custosv1alpha1.DataBoundary) { b.DeletionTimestamp = ptr.To(metav1.Now()) }), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := boundaryChangedForAgents.Update(event.UpdateEvent{ObjectOld: base, ObjectNew: tc.new})
			NewWithT(t).Expect(got).To(Equal(tc.queue))
		})
	}
}
