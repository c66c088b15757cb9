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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/boundary"
)

// Only namespaces that carry (or carried) a tenant label reach this
// webhook: failing closed for every namespace of the cluster would make
// Custos's availability everyone's. Boundaries should therefore select
// namespaces by the tenant label, as the samples do.
// +kubebuilder:webhook:path=/validate-v1-namespace,mutating=false,failurePolicy=fail,sideEffects=None,groups="",resources=namespaces,verbs=create;update,versions=v1,name=namespaces.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,patch=`{"objectSelector":{"matchExpressions":[{"key":"custos.dev/tenant","operator":"Exists"}]},"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`

// NamespaceValidator keeps namespaces and their DataBoundaries consistent: a
// covered namespace carries its boundary's tenant label, and the label does
// not change while Agents live there.
type NamespaceValidator struct {
	Client client.Reader
}

var _ admission.Validator[*corev1.Namespace] = &NamespaceValidator{}

var namespaceKind = schema.GroupKind{Kind: "Namespace"}

// ValidateCreate checks a new namespace's tenant label.
func (v *NamespaceValidator) ValidateCreate(ctx context.Context, ns *corev1.Namespace) (admission.Warnings, error) {
	return nil, v.validate(ctx, nil, ns)
}

// ValidateUpdate checks a relabelled namespace.
func (v *NamespaceValidator) ValidateUpdate(ctx context.Context, old, ns *corev1.Namespace) (admission.Warnings, error) {
	if !ns.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	return nil, v.validate(ctx, old, ns)
}

// ValidateDelete allows every deletion.
func (v *NamespaceValidator) ValidateDelete(context.Context, *corev1.Namespace) (admission.Warnings, error) {
	return nil, nil
}

func (v *NamespaceValidator) validate(ctx context.Context, old, ns *corev1.Namespace) error {
	var errs field.ErrorList
	tenant := ns.Labels[custosv1alpha1.TenantLabel]
	if old != nil {
		if was := old.Labels[custosv1alpha1.TenantLabel]; was != tenant {
			var agents custosv1alpha1.AgentList
			if err := v.Client.List(ctx, &agents, client.InNamespace(ns.Name)); err != nil {
				return apierrors.NewInternalError(err)
			}
			if n := len(agents.Items); n > 0 {
				errs = append(errs, field.Forbidden(tenantPath, fmt.Sprintf(
					"the tenant label cannot change while Agents live in the namespace (%d, such as %s); decommission them first", n, agents.Items[0].Name)))
			}
		}
	}
	var boundaries custosv1alpha1.DataBoundaryList
	if err := v.Client.List(ctx, &boundaries); err != nil {
		return apierrors.NewInternalError(err)
	}
	for i := range boundaries.Items {
		b := &boundaries.Items[i]
		if !b.DeletionTimestamp.IsZero() {
			continue
		}
		covered, err := boundary.Covers(b, ns)
		if err != nil || !covered || b.Spec.Tenant == tenant {
			continue
		}
		errs = append(errs, field.Forbidden(tenantPath, fmt.Sprintf(
			"the namespace is covered by DataBoundary %q, so it must carry %s=%s", b.Name, custosv1alpha1.TenantLabel, b.Spec.Tenant)))
	}
	return invalid(namespaceKind, ns.Name, errs)
}
