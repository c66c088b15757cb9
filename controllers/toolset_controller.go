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

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/netpol"
	"github.com/custos-dev/custos/internal/toolschema"
)

// ToolsetReconciler compiles the JSON Schemas of a Toolset's tools and
// reports them in its status: how many tools, whether any writes, the digest
// of the schemas, and whether they are valid. In gateway mode it also keeps
// the NetworkPolicy that lets only custos-gateway in to the tool server of
// an in-cluster endpoint (toolset_network.go). It owns the conditions Ready,
// Reconciling, Stalled, SchemasValid and NetworkIsolated of Toolsets.
type ToolsetReconciler struct {
	Client client.Client
	// APIReader reads around the cache where a stale read would be unsafe:
	// deciding that a name is taken, and the tool server's pods, which the
	// manager does not cache.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	// Gateway locates custos-gateway's pods. Set (gateway mode), the pods
	// of every Toolset's in-cluster endpoint admit them alone; nil, Custos
	// keeps no NetworkPolicy for tool servers and removes those it kept.
	Gateway *netpol.InClusterPeer
}

// +kubebuilder:rbac:groups=custos.dev,resources=toolsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=custos.dev,resources=toolsets/status,verbs=patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=list

// toolsetEndpointNamespaceIndex indexes Toolsets by the namespace of their
// in-cluster endpoint, so that a change to a NetworkPolicy or a namespace
// there re-queues exactly the Toolsets served from it.
const toolsetEndpointNamespaceIndex = "custos.dev/endpoint-namespace"

// toolServerRecheck is how often, in gateway mode, a Toolset's tool server
// is looked at again: a pod relabelled into another NetworkPolicy's reach
// raises no event Custos watches.
const toolServerRecheck = 10 * time.Minute

// SetupWithManager registers the reconciler, its index and, in gateway
// mode, its watches of NetworkPolicies and namespaces.
func (r *ToolsetReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &custosv1alpha1.Toolset{}, toolsetEndpointNamespaceIndex, func(o client.Object) []string {
		if ep := o.(*custosv1alpha1.Toolset).Spec.Endpoint.InCluster; ep != nil {
			return []string{ep.Namespace}
		}
		return nil
	}); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("toolset").
		// The status depends on the spec alone: a status patch, or a label
		// change, has nothing new to compile.
		For(&custosv1alpha1.Toolset{}, builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	if r.Gateway != nil {
		// Custos's NetworkPolicy of a tool server edited or deleted by
		// someone else is put back; any other one there may widen it.
		b = b.Watches(&networkingv1.NetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(r.toolsetsServedFrom)).
			// A namespace created, or its tenant label changed, lets
			// Custos isolate its tool servers, or stop.
			Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.toolsetsServedFrom),
				builder.WithPredicates(predicate.LabelChangedPredicate{}))
	}
	return b.Complete(r)
}

// toolsetsServedFrom maps a NetworkPolicy, or a namespace, to the Toolsets
// whose in-cluster endpoint is in its namespace.
func (r *ToolsetReconciler) toolsetsServedFrom(ctx context.Context, o client.Object) []reconcile.Request {
	ns := o.GetNamespace()
	if _, isNamespace := o.(*corev1.Namespace); isNamespace {
		ns = o.GetName()
	}
	var toolsets custosv1alpha1.ToolsetList
	// Only the keys are read: the cached objects are not copied.
	if err := r.Client.List(ctx, &toolsets, client.MatchingFields{toolsetEndpointNamespaceIndex: ns}, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the Toolsets served from a namespace", "namespace", ns)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(toolsets.Items))
	for i := range toolsets.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&toolsets.Items[i])})
	}
	return reqs
}

// Reconcile compiles the Toolset's schemas, keeps its tool server's
// NetworkPolicy in gateway mode, and patches its status. An invalid schema
// is a terminal error: nothing but an edit of the Toolset can fix it, and
// the edit re-queues it.
func (r *ToolsetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	ts := &custosv1alpha1.Toolset{}
	if err := r.Client.Get(ctx, req.NamespacedName, ts); apierrors.IsNotFound(err) {
		// Gone: so is the NetworkPolicy of its tool server. (Deleted while
		// the manager was down, the sweeper reaps it.)
		return ctrl.Result{}, r.removeToolServerPolicies(ctx, req.NamespacedName, nil)
	} else if err != nil {
		return ctrl.Result{}, err
	}
	if !ts.DeletionTimestamp.IsZero() {
		// Custos holds no finalizer on Toolsets; what it keeps for one goes
		// with it.
		return ctrl.Result{}, r.removeToolServerPolicies(ctx, req.NamespacedName, nil)
	}

	before := ts.DeepCopy()
	defer func() {
		if err := finishStatus(ctx, r.Client, r.Recorder, "Toolset", before, ts, before.Status.Conditions, ts.Status.Conditions); err != nil {
			retErr = err
		}
	}()

	isolated, netErr := r.reconcileToolServerNetwork(ctx, ts)
	// Compile fails only on the schemas themselves (a *toolschema.SchemaError):
	// retrying the same spec would fail the same way.
	res, err := toolschema.Compile(ts.Spec.Tools)
	setToolsetStatus(ts, res, err)
	switch {
	case netErr != nil:
		// The pass did not get to the end of its work.
		ts.Status.ObservedGeneration = before.Status.ObservedGeneration
		return ctrl.Result{}, netErr
	case err != nil:
		return ctrl.Result{}, reconcile.TerminalError(err)
	case isolated:
		return ctrl.Result{RequeueAfter: toolServerRecheck}, nil
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
	// NetworkIsolated, set by the network step, counts unless it is a
	// report (EndpointOutsideTenant) or True.
	var network *metav1.Condition
	if c := meta.FindStatusCondition(ts.Status.Conditions, custosv1alpha1.NetworkIsolatedCondition); c != nil &&
		c.Status != metav1.ConditionTrue && c.Reason != custosv1alpha1.EndpointOutsideTenantReason {
		network = c
	}
	setToolsetStalledCondition(ts, compileErr, network)
	setToolsetReconcilingCondition(ts, compileErr, network)
	setToolsetReadyCondition(ts, compileErr, network)

	// Every outcome is final for this generation: Ready, Stalled until the
	// spec (or, for the network, what a person fixes) changes, or waiting on
	// a namespace to exist. observedGeneration says so, which is also what
	// lets kstatus tell Failed from InProgress.
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
// is edited, and a NetworkIsolated a person must fix (NameConflict,
// NetworkPolicyWidened) until they do. Stalled is present only while True.
func setToolsetStalledCondition(ts *custosv1alpha1.Toolset, compileErr error, network *metav1.Condition) {
	switch {
	case compileErr != nil:
		setToolsetCondition(ts, custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.SchemaInvalidReason, compileErr.Error())
	case network != nil && isStalledReason(network.Reason):
		setToolsetCondition(ts, custosv1alpha1.StalledCondition, metav1.ConditionTrue, network.Reason, network.Message)
	default:
		meta.RemoveStatusCondition(&ts.Status.Conditions, custosv1alpha1.StalledCondition)
	}
}

// setToolsetReconcilingCondition: the tool server's NetworkPolicy waits on
// something time may bring (its namespace, an API server that answers).
// Compiling is done within one reconcile: it never leaves work in progress.
// Reconciling is present only while True.
func setToolsetReconcilingCondition(ts *custosv1alpha1.Toolset, compileErr error, network *metav1.Condition) {
	if compileErr == nil && network != nil && !isStalledReason(network.Reason) {
		setToolsetCondition(ts, custosv1alpha1.ReconcilingCondition, metav1.ConditionTrue, network.Reason, network.Message)
		return
	}
	meta.RemoveStatusCondition(&ts.Status.Conditions, custosv1alpha1.ReconcilingCondition)
}

func setToolsetReadyCondition(ts *custosv1alpha1.Toolset, compileErr error, network *metav1.Condition) {
	switch {
	case compileErr != nil:
		setToolsetCondition(ts, custosv1alpha1.ReadyCondition, metav1.ConditionFalse, custosv1alpha1.SchemaInvalidReason, compileErr.Error())
	case network != nil:
		setToolsetCondition(ts, custosv1alpha1.ReadyCondition, metav1.ConditionFalse, network.Reason, network.Message)
	default:
		setToolsetCondition(ts, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
			fmt.Sprintf("%s, %s", countOf(len(ts.Spec.Tools), "tool"), ts.Status.Access))
	}
}

func setToolsetCondition(ts *custosv1alpha1.Toolset, conditionType string, status metav1.ConditionStatus, reason, msg string) {
	setStatusCondition(&ts.Status.Conditions, ts.Generation, conditionType, status, reason, msg)
}
