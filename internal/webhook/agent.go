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

package webhook

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
	"github.com/custos-dev/custos/internal/boundary"
	"github.com/custos-dev/custos/internal/breaker"
	"github.com/custos-dev/custos/internal/evaluate"
	"github.com/custos-dev/custos/internal/policy"
)

// +kubebuilder:webhook:path=/validate-custos-dev-v1alpha1-agent,mutating=false,failurePolicy=fail,sideEffects=None,groups=custos.dev,resources=agents,verbs=create;update,versions=v1alpha1,name=agents.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`

// AgentValidator refuses Agents that cross their tenant's DataBoundary.
type AgentValidator struct {
	Client client.Reader
	Clock  clock.PassiveClock
	// Access asks the API server whether the requester may change the
	// ApprovalPolicies a label change takes the agent out of.
	Access approval.Access

	policies compiledPolicies
}

var _ admission.Validator[*custosv1alpha1.Agent] = &AgentValidator{}

// ValidateCreate checks a new Agent against its namespace and boundary.
func (v *AgentValidator) ValidateCreate(ctx context.Context, agent *custosv1alpha1.Agent) (admission.Warnings, error) {
	return v.validate(ctx, nil, agent)
}

// ValidateUpdate checks a changed Agent. Changes that only take access
// away (suspend, decommission) or touch only metadata Custos manages
// (finalizers, annotations) are always allowed: a boundary that changed
// since must never trap an agent in a running state.
func (v *AgentValidator) ValidateUpdate(ctx context.Context, old, agent *custosv1alpha1.Agent) (admission.Warnings, error) {
	if errs := checkLifecycleTransition(old, agent); len(errs) > 0 {
		return nil, invalid(agentKind, agent.Name, errs)
	}
	if !agent.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	if errs, err := v.checkPolicySelectors(ctx, old, agent); err != nil || len(errs) > 0 {
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		return nil, invalid(agentKind, agent.Name, errs)
	}
	if onlyWithdraws(old, agent) {
		return nil, nil
	}
	return v.validate(ctx, old, agent)
}

// checkPolicySelectors: a label change that takes the agent out of an
// ApprovalPolicy's agentSelector lifts the approvals that policy asks of
// its calls and changes, so it needs what changing the policy needs
// (update on that ApprovalPolicy, a risk owner's); whoever may only edit
// the Agent (its owner, the namespace's edit role) may not.
func (v *AgentValidator) checkPolicySelectors(ctx context.Context, old, agent *custosv1alpha1.Agent) (field.ErrorList, error) {
	if maps.Equal(old.Labels, agent.Labels) {
		return nil, nil
	}
	var policies custosv1alpha1.ApprovalPolicyList
	if err := v.Client.List(ctx, &policies, client.InNamespace(agent.Namespace)); err != nil {
		return nil, fmt.Errorf("listing the ApprovalPolicies of namespace %s: %w", agent.Namespace, err)
	}
	var errs field.ErrorList
	for i := range policies.Items {
		p := &policies.Items[i]
		if !approval.Selects(p, old) || approval.Selects(p, agent) {
			continue
		}
		may := false
		if v.Access != nil {
			req, err := admission.RequestFromContext(ctx)
			if err != nil {
				return nil, err
			}
			may, err = v.Access.Allowed(ctx, approverOf(req), authorizationv1.ResourceAttributes{
				Namespace: p.Namespace, Verb: "update", Group: custosv1alpha1.GroupVersion.Group, Resource: "approvalpolicies", Name: p.Name,
			})
			if err != nil {
				return nil, err
			}
		}
		if !may {
			errs = append(errs, field.Forbidden(field.NewPath("metadata", "labels"), fmt.Sprintf(
				"this change takes the Agent out of ApprovalPolicy %s's agentSelector, lifting the approvals it asks for; "+
					"only someone who may update that ApprovalPolicy may do that (ask its risk owner to change the policy instead)", p.Name)))
		}
	}
	return errs, nil
}

// ValidateDelete allows every deletion: the decommission path runs on it.
func (v *AgentValidator) ValidateDelete(context.Context, *custosv1alpha1.Agent) (admission.Warnings, error) {
	return nil, nil
}

// onlyWithdraws: the update leaves the spec as it was, or only moves the
// lifecycle to Suspended or Decommissioned, and keeps the tenant.
func onlyWithdraws(old, agent *custosv1alpha1.Agent) bool {
	if old.Labels[custosv1alpha1.TenantLabel] != agent.Labels[custosv1alpha1.TenantLabel] {
		return false
	}
	oldSpec, newSpec := old.Spec.DeepCopy(), agent.Spec.DeepCopy()
	switch newSpec.Lifecycle.State {
	case custosv1alpha1.LifecycleSuspended, custosv1alpha1.LifecycleDecommissioned:
		oldSpec.Lifecycle.State = newSpec.Lifecycle.State
	}
	return equality.Semantic.DeepEqual(oldSpec, newSpec)
}

// checkLifecycleTransition: Decommissioned is final. The CRD says so too;
// saying it here keeps the rule in one error list with the others.
func checkLifecycleTransition(old, agent *custosv1alpha1.Agent) field.ErrorList {
	if old.Spec.Lifecycle.State == custosv1alpha1.LifecycleDecommissioned &&
		agent.Spec.Lifecycle.State != custosv1alpha1.LifecycleDecommissioned {
		return field.ErrorList{field.Forbidden(field.NewPath("spec", "lifecycle", "state"),
			"Decommissioned is final: a decommissioned agent cannot be brought back; create a new Agent")}
	}
	return nil
}

func (v *AgentValidator) validate(ctx context.Context, old, agent *custosv1alpha1.Agent) (admission.Warnings, error) {
	var errs field.ErrorList
	if agent.Spec.Owner.Team == "" || agent.Spec.Owner.Contact == "" {
		errs = append(errs, field.Required(field.NewPath("spec", "owner"), "every agent has an accountable owner: team and contact"))
	}
	if agent.Spec.Purpose == "" {
		errs = append(errs, field.Required(field.NewPath("spec", "purpose"), "say what the agent does and why it needs its access"))
	}
	var oldObj client.Object
	if old != nil {
		oldObj = old
	}
	in, err := boundary.GatherAgent(ctx, v.Client, liveOf(v.Client), agent)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	ns, b := in.Namespace, in.Boundary
	errs = append(errs, checkTenantLabel("Agent", agent, oldObj, ns)...)
	errs = append(errs, unplaced(in.Placement)...)
	if b != nil {
		errs = append(errs, checkBoundaryTenant(agent, b)...)
	}
	if b == nil || len(errs) > 0 {
		return nil, invalid(agentKind, agent.Name, errs)
	}
	// The reconciler's verdict (boundary.AgentInputs.Check), less the
	// tenant rules, checked above.
	for _, e := range in.Check(agent) {
		if e.Field != tenantPath.String() {
			errs = append(errs, e)
		}
	}
	errs = append(errs, breaker.CheckAgentCaps(agent, b)...)
	errs = append(errs, breaker.CheckAgentBreaker(agent, b)...)
	errs = append(errs, evaluate.CheckAgentEvaluation(agent, b)...)
	errs = append(errs, evaluate.CheckSchedule(agent.Spec.Schedule, field.NewPath("spec", "schedule"))...)
	loosenErrs, err := v.checkLoosens(ctx, old, agent)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	errs = append(errs, loosenErrs...)
	// A Toolset that does not exist yet is allowed with a warning: GitOps
	// applies in any order, and the agent's egress to it stays closed until
	// it exists.
	var warnings admission.Warnings
	for _, g := range in.MissingToolsets {
		warnings = append(warnings, fmt.Sprintf("%s: Toolset %s does not exist yet; the agent cannot reach it until it does",
			field.NewPath("spec", "toolsetRefs").Index(g.Index), g.Key))
	}
	for _, g := range in.Toolsets {
		ref := agent.Spec.ToolsetRefs[g.Index]
		for i, t := range ref.Tools {
			if !slices.ContainsFunc(g.Toolset.Spec.Tools, func(o custosv1alpha1.Tool) bool { return o.Name == t }) {
				warnings = append(warnings, fmt.Sprintf("%s: Toolset %s offers no tool %q; it grants nothing until it does",
					field.NewPath("spec", "toolsetRefs").Index(g.Index).Child("tools").Index(i), g.Key, t))
			}
		}
	}
	policyErrs, err := v.checkPolicies(ctx, b, ns, agent)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	errs = append(errs, policyErrs...)
	return warnings, invalid(agentKind, agent.Name, errs)
}

// checkLoosens: Observe or an allowance set on the Agent loosens the
// breaker's watch of it, so it needs what lifting a freeze needs (a
// person allowed the verb unfreeze, breaker.MayLoosen), which the agent's
// owners, the namespace's edit role and the agent itself do not hold.
func (v *AgentValidator) checkLoosens(ctx context.Context, old, agent *custosv1alpha1.Agent) (field.ErrorList, error) {
	paths := breaker.Loosens(old, agent)
	if len(paths) == 0 {
		return nil, nil
	}
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, err
	}
	who := approverOf(req)
	no := &approval.Ineligible{Rule: approval.RuleNotAuthorized, Message: "no authorizer to ask"}
	if v.Access != nil {
		if no, err = breaker.MayLoosen(ctx, v.Access, who, agent.Namespace, agent.Name); err != nil {
			return nil, err
		}
	}
	if no == nil {
		return nil, nil
	}
	var errs field.ErrorList
	for _, p := range paths {
		errs = append(errs, field.Forbidden(p, fmt.Sprintf("%s: %s; Observe and allowances loosen the breaker's watch of the agent, "+
			"so they take what lifting its freeze takes (a person allowed the verb unfreeze on the Agent): its owners cannot switch their own watch off", no.Rule, no.Message)))
	}
	return errs, nil
}

// checkPolicies evaluates the boundary's policy-as-code checks against the
// agent, its namespace, the boundary, the requesting user and the time.
func (v *AgentValidator) checkPolicies(ctx context.Context, b *custosv1alpha1.DataBoundary, ns *corev1.Namespace, agent *custosv1alpha1.Agent) (field.ErrorList, error) {
	if len(b.Spec.Checks) == 0 {
		return nil, nil
	}
	set, errs := v.policies.get(b)
	if len(errs) > 0 {
		// A boundary stored before its checks were validated: fail closed.
		return field.ErrorList{field.Forbidden(field.NewPath("spec"), fmt.Sprintf(
			"DataBoundary %q has checks that do not compile, so no agent can be admitted: %s", b.Name, errs.ToAggregate()))}, nil
	}
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, err
	}
	payload, err := policy.NewPayload(agent, ns, b, req.UserInfo.Username, req.UserInfo.Groups, string(req.Operation), v.Clock.Now())
	if err != nil {
		return nil, err
	}
	return set.Evaluate(ctx, payload, b.Name, field.NewPath("spec")), nil
}

// compiledPolicies keeps each boundary's compiled checks for as long as its
// generation stands: compiling on every admission would cost more than
// evaluating.
type compiledPolicies struct {
	mu      sync.Mutex
	entries map[types.UID]compiledEntry
}

type compiledEntry struct {
	generation int64
	set        *policy.Set
	errs       field.ErrorList
}

func (c *compiledPolicies) get(b *custosv1alpha1.DataBoundary) (*policy.Set, field.ErrorList) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[b.UID]; ok && e.generation == b.Generation {
		return e.set, e.errs
	}
	set, errs := policy.Compile(b.Spec.Checks)
	if c.entries == nil {
		c.entries = map[types.UID]compiledEntry{}
	}
	c.entries[b.UID] = compiledEntry{generation: b.Generation, set: set, errs: errs}
	return set, errs
}
