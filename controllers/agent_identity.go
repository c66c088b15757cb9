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
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/boundary"
	"github.com/custos-dev/custos/internal/identity"
)

// reconcileIdentity applies the agent's own ServiceAccount with its cloud
// bindings (IdentityBound) and records its SPIFFE ID.
func (r *AgentReconciler) reconcileIdentity(ctx context.Context, s *agentScope) stepResult {
	agent := s.agent
	name := identity.ServiceAccountName(agent.Name)
	if conflict, err := r.nameTaken(ctx, &corev1.ServiceAccount{}, agent, name); err != nil {
		return failed(err)
	} else if conflict {
		s.observe(custosv1alpha1.IdentityBoundCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason,
			"ServiceAccount %s/%s exists and was not made by Custos for this agent; rename or remove it", agent.Namespace, name)
		return stepResult{}
	}
	bindings, notAmbient := identityInForce(s)
	sa := identity.ServiceAccount(name, agent.Namespace, bindings).
		WithLabels(childLabels(agent)).
		WithOwnerReferences(ownerReference(agent))
	current := &corev1.ServiceAccount{}
	if err := applyChild(ctx, r.Client, current, agent.Namespace, name, sa); errors.Is(err, errNameTaken) {
		s.observe(custosv1alpha1.IdentityBoundCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason,
			"ServiceAccount %s/%s exists and was not made by Custos for this agent; rename or remove it", agent.Namespace, name)
		return stepResult{}
	} else if err != nil {
		s.observe(custosv1alpha1.IdentityBoundCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason,
			"Applying ServiceAccount %s: %v", name, err)
		return failed(err)
	}
	if err := r.removeForeignCloudAnnotations(ctx, agent, current, bindings); err != nil {
		s.observe(custosv1alpha1.IdentityBoundCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason,
			"Removing cloud annotations Custos did not set from ServiceAccount %s: %v", name, err)
		return failed(err)
	}
	s.identityBound = true
	agent.Status.Identity = &custosv1alpha1.IdentityStatus{
		ServiceAccount: name,
		SPIFFEID:       identity.SPIFFEID(r.TrustDomain, agent.Namespace, name),
		Mode:           identity.Mode(bindings),
	}
	msg := fmt.Sprintf("ServiceAccount %s bound to %s", name, identity.Describe(bindings))
	if notAmbient != "" {
		msg += "; spec.identity.mode Ambient is not in force: " + notAmbient
	}
	s.observe(custosv1alpha1.IdentityBoundCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason, "%s", msg)
	return stepResult{}
}

// identityInForce is the agent's identity bindings in the mode in force:
// Ambient only when the spec asks for it and the agent lies within a
// DataBoundary that allows it (the rule admission applies, through
// boundary.CheckAgent, so a boundary narrowed since takes ambient identity
// away); Leased otherwise. notAmbient says why an Ambient spec is not in
// force; empty when it is, or was not asked for.
func identityInForce(s *agentScope) (bindings *custosv1alpha1.IdentityBindings, notAmbient string) {
	// The roles in force: a role a change adds waits for approval.
	spec := s.agent.GrantedIdentity()
	if identity.Mode(spec) != custosv1alpha1.IdentityModeAmbient {
		return spec, ""
	}
	switch {
	case s.boundary() == nil:
		notAmbient = "no single DataBoundary places the agent"
	case !boundary.AmbientIdentityAllowed(s.boundary()):
		notAmbient = fmt.Sprintf("DataBoundary %q does not allow ambient cloud identity (spec.cloudRoles.ambientIdentity)", s.boundary().Name)
	case !s.compliant:
		notAmbient = fmt.Sprintf("the agent is outside DataBoundary %q", s.boundary().Name)
	default:
		return spec, ""
	}
	leased := spec.DeepCopy()
	leased.Mode = custosv1alpha1.IdentityModeLeased
	return leased, notAmbient
}

// foreignAnnotationsRemovedReason is the reason of the Warning Event that
// tells of cloud annotations removed from an agent's ServiceAccount.
const foreignAnnotationsRemovedReason = "ForeignAnnotationsRemoved"

// removeForeignCloudAnnotations removes from the agent's ServiceAccount sa
// every cloud workload-identity annotation Custos did not set for bindings
// (the agent's, in the mode in force): each would have a platform webhook
// or metadata server hand the agent's pods a cloud token Custos did not
// bind. Server-side apply re-asserts only Custos's own fields, so they are
// patched away, and the removal is told in a Warning Event and an audit
// record naming the keys and who set them, never the values.
func (r *AgentReconciler) removeForeignCloudAnnotations(ctx context.Context, agent *custosv1alpha1.Agent, sa *corev1.ServiceAccount,
	bindings *custosv1alpha1.IdentityBindings) error {
	keys := identity.ForeignCloudAnnotations(sa.Annotations, identity.Annotations(bindings))
	if len(keys) == 0 {
		return nil
	}
	removals := make(map[string]any, len(keys))
	for _, k := range keys {
		removals[k] = nil
	}
	data, err := json.Marshal(map[string]any{"metadata": map[string]any{
		// Only from what was read: the Event and the record tell what was
		// removed, not what a stale read still showed.
		"resourceVersion": sa.ResourceVersion,
		"annotations":     removals,
	}})
	if err != nil {
		return err
	}
	managers := annotationManagers(sa, keys)
	err = r.Client.Patch(ctx, sa, client.RawPatch(types.MergePatchType, data), client.FieldOwner(FieldOwner))
	if apierrors.IsConflict(err) {
		// Read from a cache behind the ServiceAccount: the change it has
		// not seen yet queues the agent again (Owns), and the removal is
		// decided, and recorded, on what is there then.
		return nil
	}
	if err != nil {
		return err
	}
	listed := strings.Join(keys, ", ")
	r.event(ctx, agent, corev1.EventTypeWarning, foreignAnnotationsRemovedReason,
		"Removed cloud annotation(s) %s from ServiceAccount %s: only Custos sets the cloud identity of an agent (identity mode %s)",
		listed, sa.Name, identity.Mode(bindings))
	details := map[string]string{"serviceAccount": sa.Name, "annotationKeys": listed}
	if len(managers) > 0 {
		details["fieldManagers"] = strings.Join(managers, ", ")
	}
	auditByController(ctx, r.Audit, audit.Event{
		Subject:  subjectOf(agent, "Agent"),
		Action:   audit.ActionIdentityForeignRemoved,
		Decision: audit.DecisionDeny,
		Reason:   fmt.Sprintf("Removed cloud annotation(s) %s that Custos did not set from ServiceAccount %s", listed, sa.Name),
		Policy:   "spec.identity",
		Details:  details,
	})
	return nil
}

// annotationManagers lists, sorted, the field managers of obj that set any
// of the annotations keys: who made the change, for the record.
func annotationManagers(obj client.Object, keys []string) []string {
	var managers []string
	for _, f := range obj.GetManagedFields() {
		if f.FieldsV1 == nil || f.Manager == FieldOwner {
			continue
		}
		var fields struct {
			Metadata struct {
				Annotations map[string]json.RawMessage `json:"f:annotations"`
			} `json:"f:metadata"`
		}
		if json.Unmarshal(f.FieldsV1.Raw, &fields) != nil {
			continue
		}
		for _, k := range keys {
			if _, ok := fields.Metadata.Annotations["f:"+k]; ok {
				managers = append(managers, f.Manager)
				break
			}
		}
	}
	slices.Sort(managers)
	return slices.Compact(managers)
}
