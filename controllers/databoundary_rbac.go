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
	"strconv"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/boundary"
)

// The DataBoundary's RBAC report (condition TenantRBACContained): which
// subjects RBAC allows, in the namespaces the boundary covers, what
// Custos's admission controls cannot see or stop. The rules are
// boundary.UnsafeRBAC; this file gathers their input from the manager's
// cache and reports the verdict.

// ActionRBACReported is the audit action of a change in a DataBoundary's
// RBAC report: decision deny when RBAC now grants something unsafe (the
// reason names who), info when it no longer does.
const ActionRBACReported = "rbac.reported"

// maxRBACSubjects is how many subjects the condition names in full; the
// rest are counted.
const maxRBACSubjects = 5

// rbacContainedMessage is TenantRBACContained's message while True. It is
// the same whatever the boundary covers, so that a new namespace changes
// nothing in the report and records nothing.
const rbacContainedMessage = "No RBAC in the namespaces this boundary covers grants what admission cannot see or stop " +
	"(impersonation, reading Secrets, agents/identity, escalate or bind, pods/binding, nodes/proxy, admission configuration)"

// gatherRBAC reads, from the manager's cache, the RBAC that applies in
// namespaces: their Roles and RoleBindings, and every ClusterRole and
// ClusterRoleBinding. Nothing read is kept or changed, so nothing is
// copied.
func (r *DataBoundaryReconciler) gatherRBAC(ctx context.Context, namespaces []string) (boundary.RBACInput, error) {
	in := boundary.RBACInput{Namespaces: namespaces, Manager: r.ManagerServiceAccount}
	if len(namespaces) == 0 {
		return in, nil
	}
	var crs rbacv1.ClusterRoleList
	if err := r.Client.List(ctx, &crs, client.UnsafeDisableDeepCopy); err != nil {
		return in, fmt.Errorf("listing ClusterRoles: %w", err)
	}
	var crbs rbacv1.ClusterRoleBindingList
	if err := r.Client.List(ctx, &crbs, client.UnsafeDisableDeepCopy); err != nil {
		return in, fmt.Errorf("listing ClusterRoleBindings: %w", err)
	}
	in.ClusterRoles, in.ClusterRoleBindings = crs.Items, crbs.Items
	for _, ns := range namespaces {
		var roles rbacv1.RoleList
		if err := r.Client.List(ctx, &roles, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
			return in, fmt.Errorf("listing the Roles of namespace %s: %w", ns, err)
		}
		var bindings rbacv1.RoleBindingList
		if err := r.Client.List(ctx, &bindings, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
			return in, fmt.Errorf("listing the RoleBindings of namespace %s: %w", ns, err)
		}
		in.Roles = append(in.Roles, roles.Items...)
		in.RoleBindings = append(in.RoleBindings, bindings.Items...)
	}
	return in, nil
}

// setRBACCondition sets TenantRBACContained from the report's findings.
//
// Ready does not summarize it. Ready (and Stalled) say whether the
// boundary is in force: its selector, its coverage and its image policy,
// which its spec decides and its author can fix. RBAC is granted outside
// the boundary, by whoever writes RoleBindings, and a boundary with
// unsafe RBAC in its namespaces still enforces everything it enforced:
// a False Ready would read to kstatus, Flux and Argo CD as a boundary
// still progressing, which no edit of the DataBoundary could end.
func setRBACCondition(db *custosv1alpha1.DataBoundary, findings []boundary.RBACFinding) {
	if len(findings) == 0 {
		setBoundaryCondition(db, custosv1alpha1.TenantRBACContainedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason, rbacContainedMessage)
		return
	}
	msg := fmt.Sprintf("RBAC grants %s what admission cannot see or stop in the namespaces this boundary covers: %s. "+
		"Bind tenants to the chart's agent-owner or agent-viewer ClusterRoles instead (docs/tenancy.md)",
		countOf(len(findings), "subject"), boundary.FormatRBACFindings(findings, maxRBACSubjects))
	setBoundaryCondition(db, custosv1alpha1.TenantRBACContainedCondition, metav1.ConditionFalse, custosv1alpha1.UnsafeRBACReason, msg)
}

// reportRBAC records, once the status is written, a change of the RBAC
// report: an Event on the boundary (a Warning when RBAC became unsafe or
// the subjects changed, Normal when it is safe again) and an audit
// record. A boundary first seen safe records nothing. subjects is how many
// subjects the report found.
func (r *DataBoundaryReconciler) reportRBAC(ctx context.Context, before []metav1.Condition, db *custosv1alpha1.DataBoundary, subjects int) {
	c := meta.FindStatusCondition(db.Status.Conditions, custosv1alpha1.TenantRBACContainedCondition)
	if c == nil {
		return
	}
	old := meta.FindStatusCondition(before, custosv1alpha1.TenantRBACContainedCondition)
	switch {
	case old == nil && c.Status == metav1.ConditionTrue:
		return
	case old != nil && old.Status == c.Status && old.Message == c.Message:
		return
	}
	eventType, decision := corev1.EventTypeWarning, audit.DecisionDeny
	if c.Status == metav1.ConditionTrue {
		eventType, decision = corev1.EventTypeNormal, audit.DecisionInfo
	}
	recordEvent(ctx, r.Recorder, db, eventType, c.Reason, c.Message)
	subject := audit.Subject{Kind: "DataBoundary", Name: db.Name, UID: string(db.UID), Tenant: db.Spec.Tenant}
	auditByController(ctx, r.Audit, audit.Event{
		Subject:  subject,
		Action:   ActionRBACReported,
		Decision: decision,
		Reason:   c.Message,
		Policy:   "DataBoundary",
		Details:  map[string]string{"condition": c.Type, "status": string(c.Status), "reason": c.Reason, "subjects": strconv.Itoa(subjects)},
	})
}

// boundariesCovering maps a namespaced object (a Role or RoleBinding) to
// the boundaries covering its namespace, as for an Agent.
func (r *DataBoundaryReconciler) boundariesCovering(ctx context.Context, o client.Object) []reconcile.Request {
	return r.boundariesOfAgent(ctx, o)
}
