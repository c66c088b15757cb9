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
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/identity"
)

// teardownStep is one step of the decommission path: it deletes the
// agent's objects of the agentKinds whose removing is its reason, and waits
// for them to be gone.
type teardownStep struct {
	reason string
	// asAgent: the step also deletes and waits on every pod that runs as
	// the agent's ServiceAccount, labelled or not. Nothing of the agent is
	// gone while a pod still wears its identity.
	asAgent bool
}

// teardownOrder is the decommission path, in order: credentials first, so
// that nothing the agent still runs can use them, then the workload, its
// network and last its identity.
var teardownOrder = []teardownStep{
	{custosv1alpha1.RevokingLeasesReason, false},
	{custosv1alpha1.RemovingWorkloadReason, true},
	{custosv1alpha1.RemovingNetworkPolicyReason, false},
	{custosv1alpha1.RemovingIdentityReason, false},
}

// runTeardown advances the decommission path by at most one step. It
// returns the reason of the step still under way and what it waits for, or
// "" when everything the agent had is observed gone. Each call starts from
// the first step and reads the API server directly, so it resumes correctly
// after a crash at any point and never trusts a stale cache to say "gone".
func (r *AgentReconciler) runTeardown(ctx context.Context, agent *custosv1alpha1.Agent) (string, string, error) {
	selector := childrenOf(agent)
	for _, step := range teardownOrder {
		var left []string
		seen := map[types.UID]bool{}
		type listing struct {
			kind string
			list client.ObjectList
			opts []client.ListOption
		}
		var listings []listing
		for _, k := range kindsWhere(func(k agentKind) bool { return k.removing == step.reason }) {
			listings = append(listings, listing{k.kind, k.newList(), []client.ListOption{client.InNamespace(agent.Namespace), selector}})
		}
		if step.reason == custosv1alpha1.RevokingLeasesReason && r.Leases.GatewayNamespace != "" && r.Leases.GatewayNamespace != agent.Namespace {
			// Gateway-only leases, kept outside the agent's namespace.
			gw := childrenOf(agent)
			gw[custosv1alpha1.AgentNamespaceLabel] = agent.Namespace
			listings = append(listings, listing{"Secret", &corev1.SecretList{}, []client.ListOption{client.InNamespace(r.Leases.GatewayNamespace), gw}})
		}
		if step.asAgent {
			listings = append(listings, listing{"Pod", &corev1.PodList{}, []client.ListOption{client.InNamespace(agent.Namespace),
				client.MatchingFields{"spec.serviceAccountName": identity.ServiceAccountName(agent.Name)}}})
		}
		for _, l := range listings {
			list := l.list
			if err := r.APIReader.List(ctx, list, l.opts...); err != nil {
				return "", "", err
			}
			items, err := meta.ExtractList(list)
			if err != nil {
				return "", "", err
			}
			for _, item := range items {
				obj := item.(client.Object)
				if seen[obj.GetUID()] {
					continue
				}
				seen[obj.GetUID()] = true
				kind := l.kind
				left = append(left, kind+" "+obj.GetName())
				// Every earlier step is done: no pod of the agent is left,
				// so its network policy may go.
				if err := releaseFinalizer(ctx, r.Client, obj, custosv1alpha1.NetworkPolicyFinalizer); err != nil {
					return "", "", err
				}
				if !obj.GetDeletionTimestamp().IsZero() {
					continue
				}
				uid := obj.GetUID()
				err := r.Client.Delete(ctx, obj,
					client.Preconditions{UID: &uid},
					client.PropagationPolicy(metav1.DeletePropagationBackground))
				if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
					continue
				}
				if err != nil {
					return "", "", err
				}
				auditByController(ctx, r.Audit, audit.Event{
					Subject:  subjectOf(agent, "Agent"),
					Action:   removedAction(kind),
					Decision: audit.DecisionInfo,
					Reason:   fmt.Sprintf("Decommissioning: deleted %s %s/%s", kind, obj.GetNamespace(), obj.GetName()),
					Details:  map[string]string{"kind": kind, "name": obj.GetName(), "step": step.reason},
				})
			}
		}
		if len(left) > 0 {
			return step.reason, "Decommissioning: waiting for " + strings.Join(left, ", ") + " to be gone", nil
		}
	}
	return "", "", nil
}

// reconcileTeardown runs the decommission path, for a deleted Agent and for
// one whose owner set state Decommissioned alike, and, once everything the
// agent had is observed gone, removes its finalizer: a deleted Agent goes
// (its phase's Event tells the decommission; the status patch that follows
// finds it gone), a decommissioned one stays as a tombstone record with
// nothing left to clean when it is deleted.
func (r *AgentReconciler) reconcileTeardown(ctx context.Context, agent *custosv1alpha1.Agent) (ctrl.Result, error) {
	reason, msg, err := r.runTeardown(ctx, agent)
	if err != nil {
		return ctrl.Result{}, err
	}
	if reason != "" {
		setDecommissioning(agent, reason, msg)
		return ctrl.Result{RequeueAfter: teardownRequeue}, nil
	}
	setDecommissioned(agent, r.Clock.Now())
	return ctrl.Result{}, r.removeFinalizer(ctx, agent)
}

func (r *AgentReconciler) removeFinalizer(ctx context.Context, agent *custosv1alpha1.Agent) error {
	if !controllerutil.ContainsFinalizer(agent, custosv1alpha1.DecommissionFinalizer) {
		return nil
	}
	// Patched on a copy: the answer carries the status as stored, which
	// would overwrite the one this reconcile is about to write.
	obj := agent.DeepCopy()
	patch := client.MergeFrom(agent.DeepCopy())
	controllerutil.RemoveFinalizer(obj, custosv1alpha1.DecommissionFinalizer)
	if err := r.Client.Patch(ctx, obj, patch); err != nil {
		return client.IgnoreNotFound(err)
	}
	agent.Finalizers = obj.Finalizers
	return nil
}

// releaseFinalizer removes finalizer from obj, if it has it, with an
// optimistic lock: a concurrent change makes it fail and the caller retry.
func releaseFinalizer(ctx context.Context, c client.Client, obj client.Object, finalizer string) error {
	if !controllerutil.ContainsFinalizer(obj, finalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(obj.DeepCopyObject().(client.Object), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(obj, finalizer)
	return client.IgnoreNotFound(c.Patch(ctx, obj, patch))
}
