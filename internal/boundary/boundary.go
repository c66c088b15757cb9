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

// Package boundary owns the rules of a DataBoundary: which boundary covers a
// namespace, and whether an Agent or a Toolset stays within that boundary's
// tenant, residency, egress, cloud-role and registry rules. The functions are
// pure so that the Agent reconciler and the admission webhooks reach the same
// verdict on the same objects, and so that each rule is tested on its own.
package boundary

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// NotFoundError says that no DataBoundary covers a namespace. Agents there
// cannot run: a namespace outside every boundary has no tenant to answer for
// it.
type NotFoundError struct {
	Namespace string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("no DataBoundary covers namespace %q; a platform team must create one whose namespaceSelector selects it", e.Namespace)
}

// ConflictError says that several DataBoundaries cover a namespace. Custos
// refuses to pick one: whichever it picked, the other tenant's platform team
// would be overruled without knowing it.
type ConflictError struct {
	Namespace string
	// Boundaries are the names of the covering DataBoundaries, sorted.
	Boundaries []string
}

func (e *ConflictError) Error() string {
	quoted := make([]string, len(e.Boundaries))
	for i, name := range e.Boundaries {
		quoted[i] = fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("namespace %q is covered by %d DataBoundaries (%s); a namespace must be covered by exactly one, so their namespaceSelectors must not overlap",
		e.Namespace, len(e.Boundaries), strings.Join(quoted, ", "))
}

// Covers reports whether b's namespaceSelector selects ns. A nil ns, a
// namespace that does not exist, is covered by no boundary.
func Covers(b *custosv1alpha1.DataBoundary, ns *corev1.Namespace) (bool, error) {
	sel := b.Spec.NamespaceSelector
	// The API refuses an empty selector because it would select every
	// namespace. One that got past validation anyway (an older CRD) is
	// reported rather than honoured.
	if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		return false, fmt.Errorf("DataBoundary %q has an empty namespaceSelector, which would cover every namespace", b.Name)
	}
	selector, err := metav1.LabelSelectorAsSelector(&sel)
	if err != nil {
		return false, fmt.Errorf("DataBoundary %q has an invalid namespaceSelector: %w", b.Name, err)
	}
	if ns == nil {
		return false, nil
	}
	return selector.Matches(labels.Set(ns.Labels)), nil
}

// Select returns the one DataBoundary among boundaries that covers ns, as a
// pointer into boundaries. It returns a *NotFoundError when none does and a
// *ConflictError when several do. Boundaries being deleted are ignored: they
// are on their way out and must not hold a namespace in conflict.
//
// A boundary with an invalid selector is an error even if it might not have
// selected ns: Custos cannot tell whether it was meant to, and guessing would
// either hide a conflict or drop a tenant's rules.
func Select(boundaries []custosv1alpha1.DataBoundary, ns *corev1.Namespace) (*custosv1alpha1.DataBoundary, error) {
	var covering []int
	for i := range boundaries {
		b := &boundaries[i]
		if !b.DeletionTimestamp.IsZero() {
			continue
		}
		covers, err := Covers(b, ns)
		if err != nil {
			return nil, err
		}
		if covers {
			covering = append(covering, i)
		}
	}

	var name string
	if ns != nil {
		name = ns.Name
	}
	switch len(covering) {
	case 0:
		return nil, &NotFoundError{Namespace: name}
	case 1:
		return &boundaries[covering[0]], nil
	}
	names := make([]string, len(covering))
	for i, j := range covering {
		names[i] = boundaries[j].Name
	}
	slices.Sort(names)
	return nil, &ConflictError{Namespace: name, Boundaries: names}
}
