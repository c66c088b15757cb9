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

package boundary

import (
	"errors"
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
)

func TestCovers(t *testing.T) {
	tests := []struct {
		name    string
		sel     metav1.LabelSelector
		ns      *corev1.Namespace
		want    bool
		wantErr string
	}{
		{
			name: "matchLabels selects the namespace",
			sel:  metav1.LabelSelector{MatchLabels: map[string]string{"team": "finance"}},
			ns:   fixtures.Namespace("a", map[string]string{"team": "finance", "other": "x"}),
			want: true,
		},
		{
			name: "matchLabels does not select a namespace with another value",
			sel:  metav1.LabelSelector{MatchLabels: map[string]string{"team": "finance"}},
			ns:   fixtures.Namespace("a", map[string]string{"team": "sales"}),
		},
		{
			name: "matchLabels does not select a namespace without labels",
			sel:  metav1.LabelSelector{MatchLabels: map[string]string{"team": "finance"}},
			ns:   fixtures.Namespace("a", nil),
		},
		{
			name: "matchExpressions In selects",
			sel: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"finance", "audit"},
			}}},
			ns:   fixtures.Namespace("a", map[string]string{"team": "audit"}),
			want: true,
		},
		{
			name: "matchExpressions NotIn refuses",
			sel: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: "team", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"finance"},
			}}},
			ns: fixtures.Namespace("a", map[string]string{"team": "finance"}),
		},
		{
			name: "a nil namespace is covered by nothing",
			sel:  metav1.LabelSelector{MatchLabels: map[string]string{"team": "finance"}},
			ns:   nil,
		},
		{
			name:    "an invalid operator is an error",
			sel:     metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Like", Values: []string{"x"}}}},
			ns:      fixtures.Namespace("a", map[string]string{"team": "finance"}),
			wantErr: `DataBoundary "acme-finance" has an invalid namespaceSelector`,
		},
		{
			name:    "an invalid label value is an error",
			sel:     metav1.LabelSelector{MatchLabels: map[string]string{"team": "not a value!"}},
			ns:      fixtures.Namespace("a", nil),
			wantErr: `DataBoundary "acme-finance" has an invalid namespaceSelector`,
		},
		{
			name:    "an empty selector is an error, not a match for every namespace",
			sel:     metav1.LabelSelector{},
			ns:      fixtures.Namespace("a", map[string]string{"team": "finance"}),
			wantErr: "empty namespaceSelector",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := Covers(newBoundary(fixtures.WithSelector(tt.sel)), tt.ns)
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				g.Expect(got).To(BeFalse())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tt.want))
		})
	}
}

func TestSelect(t *testing.T) {
	finance := metav1.LabelSelector{MatchLabels: map[string]string{"team": "finance"}}
	sales := metav1.LabelSelector{MatchLabels: map[string]string{"team": "sales"}}
	anyTeam := metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpExists}}}
	ns := fixtures.Namespace("payments", map[string]string{"team": "finance"})

	tests := []struct {
		name         string
		boundaries   []custosv1alpha1.DataBoundary
		ns           *corev1.Namespace
		want         string
		wantNotFound bool
		wantConflict []string
		wantErr      string
	}{
		{
			name: "the one covering boundary is selected",
			boundaries: []custosv1alpha1.DataBoundary{
				*newBoundary(fixtures.WithBoundaryName("sales"), fixtures.WithSelector(sales)),
				*newBoundary(fixtures.WithBoundaryName("finance"), fixtures.WithSelector(finance)),
			},
			ns:   ns,
			want: "finance",
		},
		{
			name:         "no boundary at all",
			ns:           ns,
			wantNotFound: true,
		},
		{
			name:         "no boundary covers the namespace",
			boundaries:   []custosv1alpha1.DataBoundary{*newBoundary(fixtures.WithBoundaryName("sales"), fixtures.WithSelector(sales))},
			ns:           ns,
			wantNotFound: true,
		},
		{
			name: "several boundaries cover the namespace",
			boundaries: []custosv1alpha1.DataBoundary{
				*newBoundary(fixtures.WithBoundaryName("zeta"), fixtures.WithSelector(anyTeam)),
				*newBoundary(fixtures.WithBoundaryName("sales"), fixtures.WithSelector(sales)),
				*newBoundary(fixtures.WithBoundaryName("finance"), fixtures.WithSelector(finance)),
				*newBoundary(fixtures.WithBoundaryName("alpha"), fixtures.WithSelector(finance)),
			},
			ns:           ns,
			wantConflict: []string{"alpha", "finance", "zeta"},
		},
		{
			name: "a boundary being deleted does not conflict",
			boundaries: []custosv1alpha1.DataBoundary{
				*newBoundary(fixtures.WithBoundaryName("old"), fixtures.WithSelector(finance), fixtures.WithDeletion()),
				*newBoundary(fixtures.WithBoundaryName("new"), fixtures.WithSelector(anyTeam)),
			},
			ns:   ns,
			want: "new",
		},
		{
			name:         "a boundary being deleted covers nothing",
			boundaries:   []custosv1alpha1.DataBoundary{*newBoundary(fixtures.WithBoundaryName("old"), fixtures.WithSelector(finance), fixtures.WithDeletion())},
			ns:           ns,
			wantNotFound: true,
		},
		{
			name: "an invalid selector is an error even next to a match",
			boundaries: []custosv1alpha1.DataBoundary{
				*newBoundary(fixtures.WithBoundaryName("finance"), fixtures.WithSelector(finance)),
				*newBoundary(fixtures.WithBoundaryName("broken"), fixtures.WithSelector(metav1.LabelSelector{})),
			},
			ns:      ns,
			wantErr: `DataBoundary "broken"`,
		},
		{
			name: "an invalid selector of a boundary being deleted is ignored",
			boundaries: []custosv1alpha1.DataBoundary{
				*newBoundary(fixtures.WithBoundaryName("finance"), fixtures.WithSelector(finance)),
				*newBoundary(fixtures.WithBoundaryName("broken"), fixtures.WithSelector(metav1.LabelSelector{}), fixtures.WithDeletion()),
			},
			ns:   ns,
			want: "finance",
		},
		{
			name:         "a nil namespace is covered by nothing",
			boundaries:   []custosv1alpha1.DataBoundary{*newBoundary(fixtures.WithSelector(anyTeam))},
			ns:           nil,
			wantNotFound: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := Select(tt.boundaries, tt.ns)
			switch {
			case tt.wantNotFound:
				var notFound *NotFoundError
				g.Expect(errors.As(err, &notFound)).To(BeTrue(), "error: %v", err)
				if tt.ns != nil {
					g.Expect(notFound.Namespace).To(Equal(tt.ns.Name))
				}
				g.Expect(got).To(BeNil())
			case tt.wantConflict != nil:
				var conflict *ConflictError
				g.Expect(errors.As(err, &conflict)).To(BeTrue(), "error: %v", err)
				g.Expect(conflict.Namespace).To(Equal(tt.ns.Name))
				g.Expect(conflict.Boundaries).To(Equal(tt.wantConflict))
				g.Expect(got).To(BeNil())
			case tt.wantErr != "":
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				g.Expect(got).To(BeNil())
			default:
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got).NotTo(BeNil())
				g.Expect(got.Name).To(Equal(tt.want))
				i := slices.IndexFunc(tt.boundaries, func(b custosv1alpha1.DataBoundary) bool { return b.Name == tt.want })
				g.Expect(got).To(BeIdenticalTo(&tt.boundaries[i]), "Select must point into its argument, not copy")
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	g := NewWithT(t)
	g.Expect((&NotFoundError{Namespace: "x"}).Error()).To(Equal(
		`no DataBoundary covers namespace "x"; a platform team must create one whose namespaceSelector selects it`))
	g.Expect((&ConflictError{Namespace: "x", Boundaries: []string{"a", "b", "c"}}).Error()).To(Equal(
		`namespace "x" is covered by 3 DataBoundaries ("a", "b", "c"); a namespace must be covered by exactly one, so their namespaceSelectors must not overlap`))
}
