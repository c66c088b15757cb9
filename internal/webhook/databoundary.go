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

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/evaluate"
	"github.com/custos-dev/custos/internal/pii"
	"github.com/custos-dev/custos/internal/policy"
)

// +kubebuilder:webhook:path=/validate-custos-dev-v1alpha1-databoundary,mutating=false,failurePolicy=fail,sideEffects=None,groups=custos.dev,resources=databoundaries,verbs=create;update,versions=v1alpha1,name=databoundaries.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5

// DataBoundaryValidator refuses a DataBoundary whose policy-as-code checks
// (spec.checks, spec.callChecks) do not compile, so that a typo fails when
// the platform team applies it, not on every agent or tool call of the
// tenant afterwards.
type DataBoundaryValidator struct{}

var _ admission.Validator[*custosv1alpha1.DataBoundary] = &DataBoundaryValidator{}

// ValidateCreate compiles the checks of a new boundary.
func (v *DataBoundaryValidator) ValidateCreate(_ context.Context, b *custosv1alpha1.DataBoundary) (admission.Warnings, error) {
	return nil, v.validate(b)
}

// ValidateUpdate compiles the checks of a changed boundary.
func (v *DataBoundaryValidator) ValidateUpdate(_ context.Context, _, b *custosv1alpha1.DataBoundary) (admission.Warnings, error) {
	if !b.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	return nil, v.validate(b)
}

// ValidateDelete allows every deletion.
func (v *DataBoundaryValidator) ValidateDelete(context.Context, *custosv1alpha1.DataBoundary) (admission.Warnings, error) {
	return nil, nil
}

func (v *DataBoundaryValidator) validate(b *custosv1alpha1.DataBoundary) error {
	_, errs := policy.Compile(b.Spec.Checks)
	_, callErrs := policy.CompileAt(field.NewPath("spec", "callChecks"), b.Spec.CallChecks)
	errs = append(errs, callErrs...)
	errs = append(errs, evaluate.CheckThresholds(b.Spec.Evaluation, field.NewPath("spec", "evaluation"))...)
	if b.Spec.PII != nil {
		_, patternErrs := pii.CompilePatterns(b.Spec.PII.Patterns, field.NewPath("spec", "pii", "patterns"))
		errs = append(errs, patternErrs...)
	}
	return invalid(dataBoundaryKind, b.Name, errs)
}
