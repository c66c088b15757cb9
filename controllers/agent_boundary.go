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
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/boundary"
)

// reconcileBoundary gathers the agent's placement and Toolsets
// (internal/boundary, as the Agent webhook does) and checks the agent and its
// Toolsets against the DataBoundary that places it (BoundaryCompliant). A
// failure to read observes nothing; no boundary, or several, is a verdict.
func (r *AgentReconciler) reconcileBoundary(ctx context.Context, s *agentScope) stepResult {
	agent := s.agent
	in, err := boundary.GatherAgent(ctx, r.Client, nil, agent)
	if err != nil {
		return failed(err)
	}
	s.inputs = in
	var notFound *boundary.NotFoundError
	switch {
	case errors.As(in.Unplaced, &notFound):
		s.observe(custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionFalse, custosv1alpha1.BoundaryNotFoundReason,
			"%s; the agent stays deny-all and does not run until one does", in.Unplaced)
		return stepResult{}
	case in.Unplaced != nil:
		s.observe(custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionFalse, custosv1alpha1.BoundaryConflictReason, "%s", in.Unplaced)
		return stepResult{}
	}
	b := in.Boundary
	if violations := in.Check(agent); len(violations) > 0 {
		s.observe(custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionFalse, custosv1alpha1.BoundaryViolationReason,
			"Outside DataBoundary %q: %s", b.Name, violations.ToAggregate().Error())
		return stepResult{}
	}
	s.compliant = true
	s.observe(custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
		"Within DataBoundary %q (regions %s)", b.Name, strings.Join(b.Spec.Regions, ", "))
	return stepResult{}
}
