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
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/boundary"
)

// waitRequeue is how soon a step waiting on another object looks again, in
// case no watch event tells it first.
const waitRequeue = 30 * time.Second

// teardownRequeue is how soon a decommission step checks that what it
// deleted is gone.
const teardownRequeue = 2 * time.Second

// AgentReconciler turns an Agent into its identity, network policy and
// workload, runs its lifecycle, and decommissions it completely.
type AgentReconciler struct {
	Client client.Client
	// APIReader reads around the cache where a stale read would be unsafe:
	// deciding that an object is gone.
	APIReader client.Reader
	// ChildNames holds the metadata of every ServiceAccount, NetworkPolicy and
	// Deployment, Custos's or not, to tell whether a child's name is free
	// without asking the API server (see nameTaken).
	ChildNames cache.Cache
	Recorder   recorder.EventRecorder
	Options

	// lastWritten holds, by Agent UID, the status this reconciler last
	// wrote.
	lastWritten sync.Map

	// imagePolicies reads the DataBoundaries' image policies.
	imagePolicies *imagePolicies
	// imageChecks holds, by Agent UID, the last imageCheck that ended in a
	// decision (verified or refused).
	imageChecks sync.Map
	// prioritized holds the Agents (NamespacedName) queued ahead by
	// rolloutMovedOn and not reconciled since.
	prioritized sync.Map
}

// +kubebuilder:rbac:groups=custos.dev,resources=agents,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=custos.dev,resources=agents/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=custos.dev,resources=agents/finalizers,verbs=update
// +kubebuilder:rbac:groups=custos.dev,resources=agents/image,verbs=verify
// +kubebuilder:rbac:groups=custos.dev,resources=agents/identity,verbs=use
// +kubebuilder:rbac:groups=custos.dev,resources=toolsets;databoundaries,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=serviceaccounts/token,verbs=create
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;delete
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=list;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile follows the house shape: get, defer the status patch, deletion,
// finalizer, then the ordered steps.
func (r *AgentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	agent := &custosv1alpha1.Agent{}
	if err := r.Client.Get(ctx, req.NamespacedName, agent); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// The status this reconciler last wrote is newer than a cache that
	// has not caught up with it yet: starting from it, an Agent's
	// transitions are told (Events, audit) once, nothing is written twice,
	// and the lease ledger is not read stale (which would issue a lease
	// again).
	if written, ok := r.lastWritten.Load(agent.UID); ok {
		agent.Status = *written.(*custosv1alpha1.AgentStatus).DeepCopy()
	}
	before := agent.DeepCopy()
	defer r.finishReconcile(ctx, req, before, agent, &result, &retErr)

	deleting := !agent.DeletionTimestamp.IsZero()
	if deleting && !controllerutil.ContainsFinalizer(agent, custosv1alpha1.DecommissionFinalizer) {
		return ctrl.Result{}, nil
	}
	if deleting || agent.Spec.Lifecycle.State == custosv1alpha1.LifecycleDecommissioned {
		// The decision goes on the record before the first deletion.
		if p := phaseOf(before); p != custosv1alpha1.AgentPhaseDecommissioning && p != custosv1alpha1.AgentPhaseDecommissioned {
			r.auditDecommissioning(ctx, agent)
		}
		return r.reconcileTeardown(ctx, agent)
	}
	if !controllerutil.ContainsFinalizer(agent, custosv1alpha1.DecommissionFinalizer) {
		patch := client.MergeFrom(agent.DeepCopy())
		controllerutil.AddFinalizer(agent, custosv1alpha1.DecommissionFinalizer)
		if err := r.Client.Patch(ctx, agent, patch); err != nil {
			return ctrl.Result{}, err
		}
	}
	return r.reconcileSteps(ctx, agent)
}

// finishReconcile is the end of every Reconcile: it writes the status the
// pass computed (with observedGeneration when the pass got to the end of
// its work), remembers it, and tells the transitions (Events, audit) once
// written.
func (r *AgentReconciler) finishReconcile(ctx context.Context, req ctrl.Request, before, agent *custosv1alpha1.Agent,
	result *ctrl.Result, retErr *error) {
	// A pass queued ahead of others (rolloutMovedOn) does not put its
	// requeues ahead too.
	if _, ok := r.prioritized.LoadAndDelete(req.NamespacedName); ok {
		result.Priority = ptr.To(0)
	}
	if *retErr == nil || errors.Is(*retErr, reconcile.TerminalError(nil)) {
		// observedGeneration says the controller acted on this
		// generation: set only when the run got to the end of its work.
		agent.Status.ObservedGeneration = agent.Generation
	}
	err := patchStatus(ctx, r.Client, before, agent)
	switch {
	case apierrors.IsNotFound(err):
		// Released by this very run: its last transitions are told
		// although its status is gone with it.
		r.lastWritten.Delete(agent.UID)
		r.imageChecks.Delete(agent.UID)
	case err != nil:
		// Unwritten, the transitions are seen again on the retry.
		r.lastWritten.Delete(agent.UID)
		*retErr = errors.Join(*retErr, err)
		return
	default:
		r.lastWritten.Store(agent.UID, agent.Status.DeepCopy())
	}
	r.recordTransitions(ctx, before, agent)
	r.auditTransitions(ctx, before, agent)
}

// agentScope is what the steps of one reconciliation learn and share. The
// steps write the agent's status conditions only through observe; the
// status is computed from the observations in one place (agentStatus).
type agentScope struct {
	agent *custosv1alpha1.Agent
	now   time.Time
	// inputs are what the boundary step gathered (internal/boundary): the
	// namespace, the DataBoundary that places the agent (nil when none
	// does), its Toolsets, and those that do not exist.
	inputs *boundary.AgentInputs
	// compliant: a boundary places the agent and the agent and its
	// Toolsets lie inside it.
	compliant bool
	// suspendReason is why the agent must not run although compliant:
	// Frozen, SuspendedBySpec, Expired, ReviewOverdue or ImageNotVerified;
	// empty when it may run.
	suspendReason string
	identityBound bool
	// observed are the conditions the steps observed in this pass.
	observed []metav1.Condition
}

// boundary is the DataBoundary that places the agent; nil when none does.
func (s *agentScope) boundary() *custosv1alpha1.DataBoundary {
	if s.inputs == nil {
		return nil
	}
	return s.inputs.Boundary
}

// active reports whether the agent may run and reach its tools.
func (s *agentScope) active() bool {
	return s.compliant && s.suspendReason == ""
}

// observe records what a step observed, as the condition it reports.
func (s *agentScope) observe(conditionType string, status metav1.ConditionStatus, reason, format string, args ...any) {
	s.observed = append(s.observed, metav1.Condition{
		Type: conditionType, Status: status, Reason: reason, Message: fmt.Sprintf(format, args...),
	})
}

// condition is a step's condition as this pass observed it, or as it stood
// before when the step observed nothing new (an image not yet due for its
// next check, say).
func (s *agentScope) condition(conditionType string) *metav1.Condition {
	for i := len(s.observed) - 1; i >= 0; i-- {
		if s.observed[i].Type == conditionType {
			return &s.observed[i]
		}
	}
	return findCondition(s.agent, conditionType)
}

// conditionMessage is the message of s.condition(conditionType).
func (s *agentScope) conditionMessage(conditionType string) string {
	if c := s.condition(conditionType); c != nil {
		return c.Message
	}
	return ""
}

// stepResult is what a step asks of the pass.
type stepResult struct {
	// requeueAt is when the step wants to look again; zero for no wish.
	requeueAt time.Time
	// err is a failure to read or write: the pass is retried with backoff,
	// and the steps that need this one are not run (agentStep.needs).
	err error
}

// failed is a step's result when it could not finish.
func failed(err error) stepResult { return stepResult{err: err} }

// merge combines two results: the earliest wish to look again, every error.
func (r stepResult) merge(o stepResult) stepResult {
	return stepResult{requeueAt: earliest(r.requeueAt, o.requeueAt), err: errors.Join(r.err, o.err)}
}

// agentStep is one step of an Agent's reconciliation; it reports condition.
type agentStep struct {
	condition string
	run       func(*AgentReconciler, context.Context, *agentScope) stepResult
	// needs are the steps whose failure switches this one off.
	needs []string
}

// agentSteps run in this order, each in its own file:
//
//	step         file                   needs
//	boundary     agent_boundary.go      -
//	changes      agent_changes.go       boundary (the Toolsets it gathered)
//	identity     agent_identity.go      boundary (the identity mode in force depends on it), changes (the roles in force)
//	image        agent_image.go         boundary (its trusted signers)
//	network      agent_network.go       boundary (active or not; the Toolsets' endpoints), changes (the Toolsets in force)
//	credentials  agent_credentials.go   boundary, identity, changes
//	workload     agent_workload.go      boundary, identity, changes
//
// A step that fails (a read or a write that did not go through: an error,
// not an observation) switches off the later steps that need it, and those
// that need them: they do not run in this pass, so their conditions, and
// what they run (leases, NetworkPolicy, Deployment), stay as they were, and
// the pass is retried with backoff. Only what a step observed, an object
// found or found absent, changes what runs: no DataBoundary places the agent
// (deny-all, no leases, scaled to zero), a name taken (that child is not
// written), the agent not active (deny-all, leases revoked, scaled to zero
// and every pod running as it stopped).
var agentSteps = []agentStep{
	{custosv1alpha1.BoundaryCompliantCondition, (*AgentReconciler).reconcileBoundary, nil},
	{custosv1alpha1.ChangesApprovedCondition, (*AgentReconciler).reconcileChanges,
		[]string{custosv1alpha1.BoundaryCompliantCondition}},
	{custosv1alpha1.IdentityBoundCondition, (*AgentReconciler).reconcileIdentity,
		[]string{custosv1alpha1.BoundaryCompliantCondition, custosv1alpha1.ChangesApprovedCondition}},
	{custosv1alpha1.ImageVerifiedCondition, (*AgentReconciler).reconcileImage,
		[]string{custosv1alpha1.BoundaryCompliantCondition}},
	{custosv1alpha1.NetworkIsolatedCondition, (*AgentReconciler).reconcileNetwork,
		[]string{custosv1alpha1.BoundaryCompliantCondition, custosv1alpha1.ChangesApprovedCondition}},
	{custosv1alpha1.CredentialsIssuedCondition, (*AgentReconciler).reconcileCredentials,
		[]string{custosv1alpha1.BoundaryCompliantCondition, custosv1alpha1.IdentityBoundCondition, custosv1alpha1.ChangesApprovedCondition}},
	{custosv1alpha1.WorkloadAvailableCondition, (*AgentReconciler).reconcileWorkload,
		[]string{custosv1alpha1.BoundaryCompliantCondition, custosv1alpha1.IdentityBoundCondition, custosv1alpha1.ChangesApprovedCondition}},
}

// reconcileSteps runs the agent's steps, merges their results and computes
// its status from what they observed.
func (r *AgentReconciler) reconcileSteps(ctx context.Context, agent *custosv1alpha1.Agent) (ctrl.Result, error) {
	now := r.Clock.Now()
	s := &agentScope{agent: agent, now: now}
	var res stepResult
	switch lc := agent.Spec.Lifecycle; {
	case lc.State == custosv1alpha1.LifecycleSuspended:
		s.suspendReason = custosv1alpha1.SuspendedBySpecReason
	case lc.ExpiresAt != nil && !now.Before(lc.ExpiresAt.Time):
		s.suspendReason = custosv1alpha1.ExpiredReason
	case lc.ExpiresAt != nil:
		// Suspend at the moment of expiry, not at the next resync.
		res.requeueAt = lc.ExpiresAt.Time
	}
	// A freeze holds the agent whatever else it asks for, until a person
	// lifts it.
	freeze, err := r.freezeOf(ctx, agent)
	if err != nil {
		return ctrl.Result{}, err
	}
	ensureLifecycle(agent).Freeze = ""
	if freeze != nil {
		s.suspendReason = custosv1alpha1.FrozenReason
		agent.Status.Lifecycle.Freeze = freeze.Name
	}
	// An owner review overdue suspends the agent until an owner attests
	// it; due, it is looked at again then.
	due, overdue, err := r.observeReview(ctx, agent, now)
	switch {
	case err != nil:
		return ctrl.Result{}, err
	case overdue && s.suspendReason == "":
		s.suspendReason = custosv1alpha1.ReviewOverdueReason
	case !due.IsZero() && !overdue:
		res = res.merge(stepResult{requeueAt: due})
	}

	off := map[string]bool{}
	for _, step := range agentSteps {
		if slices.ContainsFunc(step.needs, func(n string) bool { return off[n] }) {
			off[step.condition] = true
			continue
		}
		stepRes := step.run(r, ctx, s)
		if stepRes.err != nil {
			off[step.condition] = true
		}
		res = res.merge(stepRes)
	}
	agentStatus(agent, s.observed, s.suspendReason, now)
	if res.err != nil {
		return ctrl.Result{}, res.err
	}
	after := func(t time.Time) time.Duration { return max(t.Sub(now), time.Second) }
	if isTrue(agent, custosv1alpha1.StalledCondition) {
		// Stalled waits for a person, but what runs meanwhile is still
		// looked after: its image is checked again on schedule (a signature
		// can be added, or a key rotated out, without a change Custos sees),
		// its leases are renewed, pods running as it while it may not run
		// are stopped, and it expires on time.
		if !res.requeueAt.IsZero() {
			return ctrl.Result{RequeueAfter: after(res.requeueAt)}, nil
		}
		return ctrl.Result{}, reconcile.TerminalError(errors.New(conditionMessage(agent, custosv1alpha1.ReadyCondition)))
	}
	if isTrue(agent, custosv1alpha1.ReconcilingCondition) {
		// Waiting on another object: look again in case no watch event
		// tells first.
		res.requeueAt = earliest(res.requeueAt, now.Add(waitRequeue))
	}
	if res.requeueAt.IsZero() {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: after(res.requeueAt)}, nil
}

// earliest is the earliest of times that are set; zero when none is.
func earliest(times ...time.Time) time.Time {
	var first time.Time
	for _, t := range times {
		if !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

// event logs and records an Event on the agent.
func (r *AgentReconciler) event(ctx context.Context, agent *custosv1alpha1.Agent, eventType, reason, format string, args ...any) {
	recordEvent(ctx, r.Recorder, agent, eventType, reason, fmt.Sprintf(format, args...))
}

// recordTransitions records the Events a person watching the agent wants,
// and no more: a Warning when it stalls (or stalls for a new reason), a
// Normal event when it becomes Ready, and one for each change of lifecycle
// phase except the first (Pending) and one the Ready event already tells
// (onboarding, say, or the end of a decommission). Every step's condition is in the status;
// an Event per step would only multiply the API server's work by the
// number of agents.
func (r *AgentReconciler) recordTransitions(ctx context.Context, before, agent *custosv1alpha1.Agent) {
	readyRecorded := recordReadyAndStalled(ctx, r.Recorder, agent, before.Status.Conditions, agent.Status.Conditions)
	beforePhase, phase := phaseOf(before), phaseOf(agent)
	if beforePhase == phase || beforePhase == "" || readyRecorded {
		return
	}
	r.event(ctx, agent, corev1.EventTypeNormal, "Phase"+string(phase), "Agent is %s: %s", phase, conditionMessage(agent, custosv1alpha1.ReadyCondition))
}

func phaseOf(a *custosv1alpha1.Agent) custosv1alpha1.AgentPhase {
	if a.Status.Lifecycle == nil {
		return ""
	}
	return a.Status.Lifecycle.Phase
}
