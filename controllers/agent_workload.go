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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/identity"
	"github.com/custos-dev/custos/internal/workload"
)

// reconcileWorkload runs the agent's Deployment while it is active and
// stops it otherwise (WorkloadAvailable). A suspended agent is reported
// Suspended only once no pod runs as its ServiceAccount.
func (r *AgentReconciler) reconcileWorkload(ctx context.Context, s *agentScope) stepResult {
	res := r.reconcileDeployment(ctx, s)
	if res.err != nil || s.active() {
		return res
	}
	return res.merge(r.stopPodsAsAgent(ctx, s))
}

// stopPodsAsAgent deletes every pod that runs as the ServiceAccount of an
// agent that may not run, labelled or not (the Deployment's own, scaled to
// zero, go too), and says so while any is left: pods are not watched, so it
// looks again soon.
func (r *AgentReconciler) stopPodsAsAgent(ctx context.Context, s *agentScope) stepResult {
	agent := s.agent
	sa := identity.ServiceAccountName(agent.Name)
	var pods metav1.PartialObjectMetadataList
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := r.APIReader.List(ctx, &pods, client.InNamespace(agent.Namespace), client.MatchingFields{"spec.serviceAccountName": sa}); err != nil {
		return failed(err)
	}
	if len(pods.Items) == 0 {
		return stepResult{}
	}
	names := make([]string, 0, len(pods.Items))
	for i := range pods.Items {
		p := &pods.Items[i]
		names = append(names, p.Name)
		if !p.DeletionTimestamp.IsZero() {
			continue
		}
		uid := p.UID
		obj := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
		if err := r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
			return failed(err)
		}
		if p.Labels[custosv1alpha1.AgentUIDLabel] != string(agent.UID) {
			// Not the Deployment's: somebody else ran it as the agent.
			r.event(ctx, agent, corev1.EventTypeWarning, custosv1alpha1.StoppingReason,
				"Deleted pod %s: it ran as ServiceAccount %s while the agent may not run", p.Name, sa)
			auditByController(ctx, r.Audit, audit.Event{
				Subject:  subjectOf(agent, "Agent"),
				Action:   removedAction("Pod"),
				Decision: audit.DecisionDeny,
				Reason:   fmt.Sprintf("Deleted pod %s/%s: it ran as the agent's ServiceAccount %s while the agent may not run", p.Namespace, p.Name, sa),
				Policy:   "spec.lifecycle",
				Details:  map[string]string{"kind": "Pod", "name": p.Name},
			})
		}
	}
	slices.Sort(names)
	s.observe(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.StoppingReason,
		"Stopping: %d pod(s) still run as ServiceAccount %s (%s); the agent is reported suspended once none does",
		len(names), sa, clipMessage(strings.Join(names, ", "), 512))
	return stepResult{requeueAt: s.now.Add(teardownRequeue)}
}

// reconcileDeployment applies the agent's Deployment once its identity is
// bound and its boundary known (WorkloadAvailable), and mirrors its
// availability.
func (r *AgentReconciler) reconcileDeployment(ctx context.Context, s *agentScope) stepResult {
	agent := s.agent
	name := childName(agent)
	if !s.identityBound {
		s.observe(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.IdentityNotBoundReason,
			"Waiting for the agent's ServiceAccount; no pod runs without its own identity")
		return stepResult{}
	}
	if s.boundary() == nil {
		// Without a boundary there are no regions to pin the pods to. An
		// existing Deployment is scaled to zero; none is created.
		if err := r.scaleToZero(ctx, agent, name); err != nil {
			return failed(err)
		}
		s.observe(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.BoundaryNotFoundReason,
			"Not running: no single DataBoundary places the agent")
		return stepResult{}
	}
	if conflict, err := r.nameTaken(ctx, &appsv1.Deployment{}, agent, name); err != nil {
		return failed(err)
	} else if conflict {
		s.observe(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason,
			"Deployment %s/%s exists and was not made by Custos for this agent; rename or remove it", agent.Namespace, name)
		return stepResult{}
	}
	image := workload.VerifiedImage(agent)
	if image == "" {
		// Nothing runs that was not verified. A Deployment of a digest that
		// stopped verifying is left as it is unless the agent is suspended:
		// its pods run on, and the pod guard admits no new one. One that
		// runs a tag (made before images were verified) is stopped: a
		// restarting container would pull whatever the tag is now.
		if !s.active() || !r.runsPinnedImage(ctx, agent, name) {
			if err := r.scaleToZero(ctx, agent, name); err != nil {
				return failed(err)
			}
		}
		s.observe(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.ImageNotVerifiedReason,
			"No pod runs until spec.image verifies (%s)", s.conditionMessage(custosv1alpha1.ImageVerifiedCondition))
		return stepResult{}
	}

	replicas := ptr.Deref(agent.Spec.Runtime.Replicas, 1)
	if !s.active() {
		replicas = 0
	}
	podLabels := childLabels(agent)
	for k, v := range identity.PodLabels(agent.GrantedIdentity()) {
		podLabels[k] = v
	}
	deploy := workload.Deployment(workload.Params{
		Name:           name,
		Namespace:      agent.Namespace,
		ServiceAccount: identity.ServiceAccountName(agent.Name),
		Selector:       selectorLabels(agent),
		PodLabels:      podLabels,
		Image:          image,
		Runtime:        agent.Spec.Runtime,
		Replicas:       replicas,
		Regions:        s.boundary().Spec.Regions,
		ConfigHash:     workload.ConfigHash(agent.GrantedIdentity(), agent.Spec.Credentials),
		Leases:         leaseMounts(agent),
	}).WithLabels(childLabels(agent)).WithOwnerReferences(ownerReference(agent))
	desired, err := json.Marshal(deploy)
	if err != nil {
		return failed(err)
	}
	d := &appsv1.Deployment{}
	if err := applyChild(ctx, r.Client, d, agent.Namespace, name, deploy); errors.Is(err, errNameTaken) {
		s.observe(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason,
			"Deployment %s/%s exists and was not made by Custos for this agent; rename or remove it", agent.Namespace, name)
		return stepResult{}
	} else if err != nil {
		s.observe(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason,
			"Applying Deployment %s: %v", name, err)
		return failed(err)
	}
	if err := r.removeForeignSpec(ctx, agent, d, desired); err != nil {
		s.observe(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason,
			"Removing what others added to Deployment %s: %v", name, err)
		return failed(err)
	}
	s.observeRollout(d, replicas)
	return stepResult{}
}

// foreignSpecWriters names the field managers other than Custos (and the
// controller manager, which writes only status and annotations) that own
// fields of obj's spec.
func foreignSpecWriters(obj client.Object) []string {
	var names []string
	for _, f := range obj.GetManagedFields() {
		if f.Manager == FieldOwner || f.Manager == "kube-controller-manager" || f.Subresource != "" || f.FieldsV1 == nil {
			continue
		}
		if bytes.Contains(f.FieldsV1.Raw, []byte(`"f:spec"`)) && !slices.Contains(names, f.Manager) {
			names = append(names, f.Manager)
		}
	}
	return names
}

// removeForeignSpec makes d's spec exactly what Custos renders (desired, an
// apply configuration as JSON). Server-side apply puts back the fields Custos
// sets but keeps what others added beside them (a command, an env var
// reading another Secret, a projected token): Custos owns the whole pod
// template of an agent. The API server refuses such changes from tenants
// (custos-agent-workload); this removes those made with more rights (a
// cluster admin), and records it. The foreign managers' entries go with
// their fields, so that Custos alone owns the spec afterwards.
func (r *AgentReconciler) removeForeignSpec(ctx context.Context, agent *custosv1alpha1.Agent, d *appsv1.Deployment, desired []byte) error {
	writers := foreignSpecWriters(d)
	if len(writers) == 0 {
		return nil
	}
	want := &appsv1.Deployment{}
	if err := json.Unmarshal(desired, want); err != nil {
		return err
	}
	d.Spec = want.Spec
	kept := d.ManagedFields[:0]
	for _, f := range d.ManagedFields {
		if !slices.Contains(writers, f.Manager) || f.Subresource != "" {
			kept = append(kept, f)
		}
	}
	d.ManagedFields = kept
	if err := r.Client.Update(ctx, d, client.FieldOwner(FieldOwner)); err != nil {
		return err
	}
	r.event(ctx, agent, corev1.EventTypeWarning, "ForeignChangeRemoved",
		"Deployment %s: removed what %s wrote into its spec; Custos owns the agent's whole pod template", d.Name, strings.Join(writers, ", "))
	auditByController(ctx, r.Audit, audit.Event{
		Subject:  subjectOf(agent, "Agent"),
		Action:   audit.ActionWorkloadForeignRemoved,
		Decision: audit.DecisionDeny,
		Reason:   fmt.Sprintf("Deployment %s/%s: removed the spec fields written by %s", d.Namespace, d.Name, strings.Join(writers, ", ")),
		Policy:   "spec.runtime",
		Details:  map[string]string{"kind": "Deployment", "name": d.Name, "managers": strings.Join(writers, ",")},
	})
	return nil
}

// runsPinnedImage: the agent's Deployment, if any, runs its images by
// digest only.
func (r *AgentReconciler) runsPinnedImage(ctx context.Context, agent *custosv1alpha1.Agent, name string) bool {
	d := &appsv1.Deployment{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: agent.Namespace, Name: name}, d); err != nil {
		return true // none (or unreadable: scaleToZero would fail alike)
	}
	for _, c := range append(d.Spec.Template.Spec.InitContainers, d.Spec.Template.Spec.Containers...) {
		if !strings.Contains(c.Image, "@sha256:") {
			return false
		}
	}
	return true
}

// scaleToZero stops an existing Deployment of the agent without deleting it.
func (r *AgentReconciler) scaleToZero(ctx context.Context, agent *custosv1alpha1.Agent, name string) error {
	d := &appsv1.Deployment{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: agent.Namespace, Name: name}, d); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !ownedBy(d, agent) || ptr.Deref(d.Spec.Replicas, 1) == 0 {
		return nil
	}
	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.Replicas = ptr.To[int32](0)
	return r.Client.Patch(ctx, d, patch)
}

// observeRollout mirrors the Deployment's rollout into
// WorkloadAvailable: True only when every desired replica runs the current
// template and is available, or, when the desired count is zero, when no
// pod is left.
func (s *agentScope) observeRollout(d *appsv1.Deployment, replicas int32) {
	st := d.Status
	switch {
	case st.ObservedGeneration < d.Generation:
		s.observe(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason,
			"Deployment %s: waiting for the deployment controller to roll out generation %d", d.Name, d.Generation)
	case replicas == 0 && st.Replicas == 0:
		s.observe(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
			"Deployment %s is scaled to zero", d.Name)
	case replicas == 0:
		s.observe(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason,
			"Deployment %s is scaling to zero: %d pod(s) left", d.Name, st.Replicas)
	case st.UpdatedReplicas >= replicas && st.AvailableReplicas >= replicas && st.Replicas == st.UpdatedReplicas:
		s.observe(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
			"Deployment %s has %d/%d replicas available", d.Name, st.AvailableReplicas, replicas)
	default:
		s.observe(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason,
			"Deployment %s has %d/%d replicas available, %d up to date", d.Name, st.AvailableReplicas, replicas, st.UpdatedReplicas)
	}
}
