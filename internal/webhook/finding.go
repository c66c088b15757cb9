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

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
	"github.com/custos-dev/custos/internal/evaluate"
)

// +kubebuilder:webhook:path=/validate-custos-dev-v1alpha1-finding,mutating=false,failurePolicy=fail,sideEffects=None,groups=custos.dev,resources=findings,verbs=delete,versions=v1alpha1,name=findings.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`
// +kubebuilder:webhook:path=/mutate-custos-dev-v1alpha1-findingreview,mutating=true,failurePolicy=fail,sideEffects=None,groups=custos.dev,resources=findingreviews,verbs=create,versions=v1alpha1,name=findingreviews.mutate.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,reinvocationPolicy=IfNeeded,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`
// +kubebuilder:webhook:path=/validate-custos-dev-v1alpha1-findingreview,mutating=false,failurePolicy=fail,sideEffects=None,groups=custos.dev,resources=findingreviews,verbs=create,versions=v1alpha1,name=findingreviews.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`

var (
	findingKind       = custosv1alpha1.GroupVersion.WithKind("Finding").GroupKind()
	findingReviewKind = custosv1alpha1.GroupVersion.WithKind("FindingReview").GroupKind()
)

// FindingValidator refuses the deletion of a Finding that is still open:
// whoever may delete it (a namespace admin, the agent's owners if a role
// grants it) would erase what a person has to decide. A closed one may go
// (the manager deletes it after its retention), and so does every Finding
// of a namespace being deleted. Only the manager writes Findings (RBAC).
type FindingValidator struct {
	Client client.Reader
}

var _ admission.Validator[*custosv1alpha1.Finding] = &FindingValidator{}

// ValidateCreate: RBAC keeps creation to the manager.
func (v *FindingValidator) ValidateCreate(context.Context, *custosv1alpha1.Finding) (admission.Warnings, error) {
	return nil, nil
}

// ValidateUpdate: the spec cannot change (the CRD says so).
func (v *FindingValidator) ValidateUpdate(context.Context, *custosv1alpha1.Finding, *custosv1alpha1.Finding) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDelete refuses to delete an open Finding outside a namespace's
// deletion.
func (v *FindingValidator) ValidateDelete(ctx context.Context, f *custosv1alpha1.Finding) (admission.Warnings, error) {
	if f.Status.Phase.Closed() {
		return nil, nil
	}
	going, err := namespaceGoing(ctx, v.Client, f.Namespace)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if going {
		return nil, nil
	}
	phase := f.Status.Phase
	if phase == "" {
		phase = custosv1alpha1.FindingOpen
	}
	return nil, apierrors.NewForbidden(custosv1alpha1.GroupVersion.WithResource("findings").GroupResource(), f.Name, fmt.Errorf(
		"Finding %s on Agent %s/%s is %s: a person who may review it closes it with a FindingReview (kubectl custos review %s -n %s --verdict confirmed|dismissed --reason ...); Custos deletes it after its retention",
		f.Name, f.Namespace, f.Spec.Agent, phase, f.Name, f.Namespace))
}

// FindingReviewDefaulter stamps a new review with its author.
type FindingReviewDefaulter struct{}

var _ admission.Defaulter[*custosv1alpha1.FindingReview] = FindingReviewDefaulter{}

// Default stamps r.
func (FindingReviewDefaulter) Default(ctx context.Context, r *custosv1alpha1.FindingReview) error {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return err
	}
	r.Spec.Reviewer = approverOf(req)
	return nil
}

// FindingReviewValidator refuses a review its author may not make
// (evaluate.MayReview), one naming another author than admission stamped,
// and one of a Finding that does not exist or is closed.
type FindingReviewValidator struct {
	Client client.Reader
	Access approval.Access
}

var _ admission.Validator[*custosv1alpha1.FindingReview] = &FindingReviewValidator{}

// ValidateCreate checks a new review.
func (v *FindingReviewValidator) ValidateCreate(ctx context.Context, r *custosv1alpha1.FindingReview) (admission.Warnings, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	byPath := field.NewPath("spec", "reviewer")
	who := approverOf(req)
	if !sameApprover(who, r.Spec.Reviewer) {
		return nil, invalid(findingReviewKind, r.Name, field.ErrorList{field.Forbidden(byPath,
			fmt.Sprintf("the reviewer is whoever the API server authenticated (%s), stamped by Custos's admission webhook: a review cannot name another", who.Username))})
	}
	findingPath := field.NewPath("spec", "finding")
	f := &custosv1alpha1.Finding{}
	if err := liveOf(v.Client).Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.Spec.Finding}, f); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, invalid(findingReviewKind, r.Name, field.ErrorList{field.NotFound(findingPath, r.Spec.Finding)})
		}
		return nil, apierrors.NewInternalError(err)
	}
	if no := evaluate.MayFollow(f.Status.Phase, r.Spec.Verdict); no != nil {
		return nil, invalid(findingReviewKind, r.Name, field.ErrorList{field.Forbidden(field.NewPath("spec", "verdict"), no.Rule+": "+no.Message)})
	}
	no, err := evaluate.MayReview(ctx, v.Access, who, f.Namespace, f.Spec.Agent, r.Spec.Verdict)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if no != nil {
		return nil, invalid(findingReviewKind, r.Name, field.ErrorList{field.Forbidden(byPath, no.Rule+": "+no.Message)})
	}
	return nil, nil
}

// ValidateUpdate: the spec cannot change (the CRD says so).
func (v *FindingReviewValidator) ValidateUpdate(context.Context, *custosv1alpha1.FindingReview, *custosv1alpha1.FindingReview) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDelete allows deletion: the review stays on the Finding's status
// and the audit trail.
func (v *FindingReviewValidator) ValidateDelete(context.Context, *custosv1alpha1.FindingReview) (admission.Warnings, error) {
	return nil, nil
}
