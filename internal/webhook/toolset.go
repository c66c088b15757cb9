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
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/boundary"
	"github.com/custos-dev/custos/internal/toolschema"
)

// +kubebuilder:webhook:path=/validate-custos-dev-v1alpha1-toolset,mutating=false,failurePolicy=fail,sideEffects=None,groups=custos.dev,resources=toolsets,verbs=create;update,versions=v1alpha1,name=toolsets.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`

// ToolsetValidator refuses Toolsets whose schemas do not compile or whose
// endpoint or region lies outside their tenant's DataBoundary.
type ToolsetValidator struct {
	Client client.Reader
}

var _ admission.Validator[*custosv1alpha1.Toolset] = &ToolsetValidator{}

// ValidateCreate checks a new Toolset.
func (v *ToolsetValidator) ValidateCreate(ctx context.Context, ts *custosv1alpha1.Toolset) (admission.Warnings, error) {
	return nil, v.validate(ctx, nil, ts)
}

// ValidateUpdate checks a changed Toolset; metadata-only changes pass.
func (v *ToolsetValidator) ValidateUpdate(ctx context.Context, old, ts *custosv1alpha1.Toolset) (admission.Warnings, error) {
	if !ts.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	return nil, v.validate(ctx, old, ts)
}

// ValidateDelete allows every deletion.
func (v *ToolsetValidator) ValidateDelete(context.Context, *custosv1alpha1.Toolset) (admission.Warnings, error) {
	return nil, nil
}

func (v *ToolsetValidator) validate(ctx context.Context, old, ts *custosv1alpha1.Toolset) error {
	var errs field.ErrorList
	if _, err := toolschema.Compile(ts.Spec.Tools); err != nil {
		var se *toolschema.SchemaError
		if errors.As(err, &se) {
			errs = append(errs, field.Invalid(field.NewPath("spec", "tools").Index(se.Index).Child(se.Which), se.Pointer, se.Error()))
		} else {
			errs = append(errs, field.Invalid(field.NewPath("spec", "tools"), nil, err.Error()))
		}
	}
	var oldObj client.Object
	if old != nil {
		oldObj = old
	}
	ns, b, boundaryErrs, err := namespaceAndBoundary(ctx, v.Client, ts.Namespace)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	errs = append(errs, checkTenantLabel("Toolset", ts, oldObj, ns)...)
	errs = append(errs, boundaryErrs...)
	if b != nil {
		errs = append(errs, checkBoundaryTenant(ts, b)...)
		endpointNS, err := boundary.EndpointNamespace(ctx, v.Client, ts)
		if err != nil {
			return apierrors.NewInternalError(err)
		}
		for _, e := range boundary.CheckToolset(b, ts, endpointNS) {
			if e.Field != tenantPath.String() {
				errs = append(errs, e)
			}
		}
	}
	return invalid(toolsetKind, ts.Name, errs)
}
