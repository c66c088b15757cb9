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

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/toolschema"
)

// ToolsetReconciler compiles the JSON Schemas of a Toolset's tools and
// reports them in its status: how many tools, whether any writes, the digest
// of the schemas, and whether they are valid. It owns the conditions Ready,
// Reconciling, Stalled and SchemasValid of Toolsets.
type ToolsetReconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder
}

// +kubebuilder:rbac:groups=custos.dev,resources=toolsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=custos.dev,resources=toolsets/status,verbs=patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler with mgr.
func (r *ToolsetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("toolset").
		// The status depends on the spec alone: a status patch, or a label
		// change, has nothing new to compile.
		For(&custosv1alpha1.Toolset{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}

// Reconcile compiles the Toolset's schemas and patches its status. An
// invalid schema is a terminal error: nothing but an edit of the Toolset can
// fix it, and the edit re-queues it.
func (r *ToolsetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	ts := &custosv1alpha1.Toolset{}
	if err := r.Client.Get(ctx, req.NamespacedName, ts); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ts.DeletionTimestamp.IsZero() {
		// Custos holds no finalizer on Toolsets and owns nothing for them.
		return ctrl.Result{}, nil
	}

	before := ts.DeepCopy()
	defer func() {
		if err := finishStatus(ctx, r.Client, r.Recorder, "Toolset", before, ts, before.Status.Conditions, ts.Status.Conditions); err != nil {
			retErr = err
		}
	}()

	// Compile fails only on the schemas themselves (a *toolschema.SchemaError):
	// retrying the same spec would fail the same way.
	res, err := toolschema.Compile(ts.Spec.Tools)
	setToolsetStatus(ts, res, err)
	if err != nil {
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	return ctrl.Result{}, nil
}

// setToolsetStatus computes the status of ts from the result of compiling
// its schemas. It is a pure function of the Toolset and the result, so every
// reconcile of the same spec writes the same status.
func setToolsetStatus(ts *custosv1alpha1.Toolset, res toolschema.Result, compileErr error) {
	ts.Status.Tools = int32(res.Tools)
	ts.Status.Access = res.Access
	// A digest is reported only for schemas that compile: it names the
	// schemas in force, and there are none while one is invalid.
	ts.Status.SchemaDigest = res.SchemaDigest

	setToolsetSchemasValidCondition(ts, compileErr)
	setToolsetStalledCondition(ts, compileErr)
	setToolsetReadyCondition(ts, compileErr)
	// Compiling is done within one reconcile: there is never work left in
	// progress to report.
	meta.RemoveStatusCondition(&ts.Status.Conditions, custosv1alpha1.ReconcilingCondition)

	// Both outcomes are final for this generation: Ready, or Stalled until
	// the spec changes. observedGeneration says so, which is also what lets
	// kstatus tell Failed from InProgress.
	ts.Status.ObservedGeneration = ts.Generation
}

func setToolsetSchemasValidCondition(ts *custosv1alpha1.Toolset, compileErr error) {
	if compileErr != nil {
		setToolsetCondition(ts, custosv1alpha1.SchemasValidCondition, metav1.ConditionFalse, custosv1alpha1.SchemaInvalidReason, compileErr.Error())
		return
	}
	setToolsetCondition(ts, custosv1alpha1.SchemasValidCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
		fmt.Sprintf("The input and output schemas of %s compile", countOf(len(ts.Spec.Tools), "tool")))
}

// setToolsetStalledCondition: an invalid schema stalls the Toolset until it
// is edited. Stalled is present only while True.
func setToolsetStalledCondition(ts *custosv1alpha1.Toolset, compileErr error) {
	if compileErr == nil {
		meta.RemoveStatusCondition(&ts.Status.Conditions, custosv1alpha1.StalledCondition)
		return
	}
	setToolsetCondition(ts, custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.SchemaInvalidReason, compileErr.Error())
}

func setToolsetReadyCondition(ts *custosv1alpha1.Toolset, compileErr error) {
	if compileErr != nil {
		setToolsetCondition(ts, custosv1alpha1.ReadyCondition, metav1.ConditionFalse, custosv1alpha1.SchemaInvalidReason, compileErr.Error())
		return
	}
	setToolsetCondition(ts, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
		fmt.Sprintf("%s, %s", countOf(len(ts.Spec.Tools), "tool"), ts.Status.Access))
}

func setToolsetCondition(ts *custosv1alpha1.Toolset, conditionType string, status metav1.ConditionStatus, reason, msg string) {
	setStatusCondition(&ts.Status.Conditions, ts.Generation, conditionType, status, reason, msg)
}
