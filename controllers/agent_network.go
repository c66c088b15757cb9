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
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/boundary"
	"github.com/custos-dev/custos/internal/identity"
	"github.com/custos-dev/custos/internal/netpol"
)

// reconcileNetwork applies the agent's NetworkPolicy (NetworkIsolated):
// deny-all unless the agent is active, then DNS and its Toolsets only, or,
// in gateway mode, DNS, custos-gateway and custos-sts only. custos-sts is
// reachable whenever it is configured: agents get their tokens there.
func (r *AgentReconciler) reconcileNetwork(ctx context.Context, s *agentScope) stepResult {
	agent := s.agent
	name := childName(agent)
	if conflict, err := r.nameTaken(ctx, &networkingv1.NetworkPolicy{}, agent, name); err != nil {
		return failed(err)
	} else if conflict {
		s.observe(custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason,
			"NetworkPolicy %s/%s exists and was not made by Custos for this agent; rename or remove it", agent.Namespace, name)
		return stepResult{}
	}
	var egress *netpol.Egress
	switch {
	case !s.active():
	case r.Gateway != nil:
		// Every tool call goes through the gateway: no Toolset's endpoint
		// is reachable from the agent itself.
		egress = &netpol.Egress{InCluster: []netpol.InClusterPeer{*r.Gateway, *r.STS}}
	default:
		egress = &netpol.Egress{}
		if r.STS != nil {
			egress.InCluster = append(egress.InCluster, *r.STS)
		}
		for _, g := range s.inputs.Toolsets {
			if !granted(agent, g.Key) {
				// Not in force: a change that adds it waits for approval.
				continue
			}
			switch ep := g.Toolset.Spec.Endpoint; {
			case ep.InCluster != nil:
				egress.InCluster = append(egress.InCluster, netpol.InClusterPeer{
					Namespace: ep.InCluster.Namespace, PodSelector: ep.InCluster.PodSelector, Port: ep.InCluster.Port,
				})
			case ep.External != nil:
				egress.External = append(egress.External, netpol.ExternalPeer{CIDRs: ep.External.CIDRs, Port: ep.External.Port})
			}
		}
	}
	// The policy selects every pod labelled as the agent's, whatever else
	// it carries: a pod that could wear the agent's label without the rest
	// must not escape it.
	np := netpol.Render(name, agent.Namespace, map[string]string{custosv1alpha1.AgentLabel: agent.Name}, r.DNS, egress).
		WithLabels(childLabels(agent)).
		WithOwnerReferences(ownerReference(agent)).
		WithFinalizers(custosv1alpha1.NetworkPolicyFinalizer)
	if err := applyChild(ctx, r.Client, &networkingv1.NetworkPolicy{}, agent.Namespace, name, np); errors.Is(err, errNameTaken) {
		s.observe(custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason,
			"NetworkPolicy %s/%s exists and was not made by Custos for this agent; rename or remove it", agent.Namespace, name)
		return stepResult{}
	} else if err != nil {
		s.observe(custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason,
			"Applying NetworkPolicy %s: %v", name, err)
		return failed(err)
	}
	widened, err := r.widenedBy(ctx, agent)
	if err != nil {
		return failed(err)
	}
	switch {
	case len(widened) > 0:
		s.observe(custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.NetworkPolicyWidenedReason,
			"NetworkPolicy %s also select(s) the agent's pods and allow(s) traffic; NetworkPolicies add up, so its network is wider than %s: narrow or remove them",
			strings.Join(widened, ", "), name)
	case len(s.inputs.MissingToolsets) > 0 && r.Gateway != nil:
		s.observe(custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.DependencyNotFoundReason,
			"Toolset %s not found; custos-gateway serves none of its tools until it exists", strings.Join(missingToolsets(s.inputs), ", "))
	case len(s.inputs.MissingToolsets) > 0:
		s.observe(custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.DependencyNotFoundReason,
			"Toolset %s not found; its endpoint stays closed until it exists", strings.Join(missingToolsets(s.inputs), ", "))
	case egress == nil:
		s.observe(custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
			"NetworkPolicy %s denies all traffic while the agent is not active", name)
	case r.Gateway != nil:
		s.observe(custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
			"NetworkPolicy %s denies all traffic except DNS, custos-gateway and custos-sts: every tool call goes through the gateway", name)
	case r.STS != nil:
		s.observe(custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
			"NetworkPolicy %s denies all traffic except DNS, custos-sts and %d Toolset endpoint(s)", name, len(egress.InCluster)-1+len(egress.External))
	default:
		s.observe(custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
			"NetworkPolicy %s denies all traffic except DNS and %d Toolset endpoint(s)", name, len(egress.InCluster)+len(egress.External))
	}
	return stepResult{}
}

// widenedBy names the NetworkPolicies other than the agent's own that
// select its pods (as the Deployment labels them) and allow some traffic:
// NetworkPolicies add up, so each widens what the agent's own allows. The
// API server narrows tenants' policies at admission so that none selects an
// agent (config/crd/policies/agent-networkpolicies.yaml); this finds those
// stored before, or written by a cluster admin.
func (r *AgentReconciler) widenedBy(ctx context.Context, agent *custosv1alpha1.Agent) ([]string, error) {
	var policies networkingv1.NetworkPolicyList
	if err := r.Client.List(ctx, &policies, client.InNamespace(agent.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	pod := labels.Set(childLabels(agent))
	for k, v := range identity.PodLabels(agent.GrantedIdentity()) {
		pod[k] = v
	}
	var widened []string
	for i := range policies.Items {
		np := &policies.Items[i]
		if np.Name == childName(agent) || (len(np.Spec.Ingress) == 0 && len(np.Spec.Egress) == 0) {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			continue // the API server refuses such a selector; it selects nothing
		}
		if sel.Matches(pod) {
			widened = append(widened, np.Name)
		}
	}
	slices.Sort(widened)
	return widened, nil
}

// missingToolsets names the Toolsets the agent references that do not exist.
func missingToolsets(in *boundary.AgentInputs) []string {
	names := make([]string, 0, len(in.MissingToolsets))
	for _, g := range in.MissingToolsets {
		names = append(names, g.Key.String())
	}
	return names
}
