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
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/workload"
)

// Placement of agent pods in the regions of their DataBoundary: the node
// affinity PodDefaulter gives them, and PodValidator's checks of it and of
// spec.nodeName.

// requiredPath is where a region affinity error points.
var requiredPath = podSpecPath.Child("affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution")

// injectRegionAffinity makes every required node-selector term of pod
// carry `topology.kubernetes.io/region In regions`. Terms are ORed, so
// each one must be confined. Within a term expressions are ANDed, so a
// region expression the author wrote is replaced rather than kept beside
// the boundary's: the boundary decides where the agent runs, and a region
// of the author's outside it would leave the pod silently unschedulable.
// An empty term matches no node and is left as it is: giving it a region
// would make it match. A pod without required terms gets one.
func injectRegionAffinity(pod *corev1.Pod, regions []string) {
	regions = slices.Clone(regions)
	// Sorted as workload.Deployment renders them, so that Custos's own
	// pods come through unchanged and cost no patch.
	slices.Sort(regions)
	want := corev1.NodeSelectorRequirement{Key: workload.RegionLabel, Operator: corev1.NodeSelectorOpIn, Values: regions}

	spec := &pod.Spec
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	na := spec.Affinity.NodeAffinity
	if na.RequiredDuringSchedulingIgnoredDuringExecution == nil || len(na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms) == 0 {
		na.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{want}}},
		}
		return
	}
	terms := na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	for i := range terms {
		term := &terms[i]
		if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
			continue
		}
		placed := false
		exprs := make([]corev1.NodeSelectorRequirement, 0, len(term.MatchExpressions)+1)
		for _, e := range term.MatchExpressions {
			if e.Key != workload.RegionLabel {
				exprs = append(exprs, e)
				continue
			}
			if !placed {
				exprs = append(exprs, *want.DeepCopy())
				placed = true
			}
		}
		if !placed {
			exprs = append(exprs, *want.DeepCopy())
		}
		term.MatchExpressions = exprs
	}
}

// checkNodeName: a new agent pod is placed by the scheduler, which holds it
// to the boundary's regions (checkRegionAffinity). Checked on create only:
// a running pod has the node the scheduler bound it to.
func checkNodeName(spec *corev1.PodSpec) field.ErrorList {
	if spec.NodeName == "" {
		return nil
	}
	return field.ErrorList{field.Forbidden(podSpecPath.Child("nodeName"),
		"agent pods are placed by the scheduler, inside the DataBoundary's regions; spec.nodeName bypasses it")}
}

// checkRegionAffinity: every required node-selector term that can match a
// node confines it to b's regions, and there is at least one term. It is
// what injectRegionAffinity guarantees, checked again because a mutating
// webhook that runs after Custos's, or a request that bypassed it, could
// have left the pod unconfined.
func checkRegionAffinity(spec *corev1.PodSpec, b *custosv1alpha1.DataBoundary) field.ErrorList {
	msg := fmt.Sprintf("agent pods are placed only in the regions of DataBoundary %q: require %s In [%s]",
		b.Name, workload.RegionLabel, strings.Join(b.Spec.Regions, ", "))
	var required *corev1.NodeSelector
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil {
		required = a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	}
	if required == nil || len(required.NodeSelectorTerms) == 0 {
		return field.ErrorList{field.Required(requiredPath, msg)}
	}
	var errs field.ErrorList
	for i, term := range required.NodeSelectorTerms {
		if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
			continue // matches no node
		}
		if !slices.ContainsFunc(term.MatchExpressions, func(e corev1.NodeSelectorRequirement) bool {
			return e.Key == workload.RegionLabel && e.Operator == corev1.NodeSelectorOpIn && len(e.Values) > 0 &&
				!slices.ContainsFunc(e.Values, func(r string) bool { return !slices.Contains(b.Spec.Regions, r) })
		}) {
			errs = append(errs, field.Forbidden(requiredPath.Child("nodeSelectorTerms").Index(i), msg))
		}
	}
	return errs
}
