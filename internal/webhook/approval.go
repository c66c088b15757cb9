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
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
)

// +kubebuilder:webhook:path=/validate-custos-dev-v1alpha1-approvalpolicy,mutating=false,failurePolicy=fail,sideEffects=None,groups=custos.dev,resources=approvalpolicies,verbs=create;update,versions=v1alpha1,name=approvalpolicies.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`
// +kubebuilder:webhook:path=/mutate-custos-dev-v1alpha1-approvaldecision,mutating=true,failurePolicy=fail,sideEffects=None,groups=custos.dev,resources=approvaldecisions,verbs=create,versions=v1alpha1,name=approvaldecisions.mutate.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,reinvocationPolicy=IfNeeded,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`
// +kubebuilder:webhook:path=/validate-custos-dev-v1alpha1-approvaldecision,mutating=false,failurePolicy=fail,sideEffects=None,groups=custos.dev,resources=approvaldecisions,verbs=create,versions=v1alpha1,name=approvaldecisions.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`

var (
	approvalPolicyKind   = custosv1alpha1.GroupVersion.WithKind("ApprovalPolicy").GroupKind()
	approvalDecisionKind = custosv1alpha1.GroupVersion.WithKind("ApprovalDecision").GroupKind()
)

// ApprovalPolicyValidator refuses a policy whose match expression does
// not compile or whose agentSelector cannot be read: one that would fail
// on every call.
type ApprovalPolicyValidator struct{}

var _ admission.Validator[*custosv1alpha1.ApprovalPolicy] = &ApprovalPolicyValidator{}

// ValidateCreate checks a new policy.
func (v *ApprovalPolicyValidator) ValidateCreate(_ context.Context, p *custosv1alpha1.ApprovalPolicy) (admission.Warnings, error) {
	return nil, validateApprovalPolicy(p)
}

// ValidateUpdate checks a changed policy.
func (v *ApprovalPolicyValidator) ValidateUpdate(_ context.Context, _, p *custosv1alpha1.ApprovalPolicy) (admission.Warnings, error) {
	if !p.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	return nil, validateApprovalPolicy(p)
}

// ValidateDelete allows every deletion.
func (v *ApprovalPolicyValidator) ValidateDelete(context.Context, *custosv1alpha1.ApprovalPolicy) (admission.Warnings, error) {
	return nil, nil
}

func validateApprovalPolicy(p *custosv1alpha1.ApprovalPolicy) error {
	var errs field.ErrorList
	if e := p.Spec.Match.Expression; e != "" {
		if _, err := approval.Compile(e); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("spec", "match", "expression"), e, err.Error()))
		}
	}
	if s := p.Spec.AgentSelector; s != nil {
		if _, err := metav1.LabelSelectorAsSelector(s); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("spec", "agentSelector"), s, err.Error()))
		}
	}
	return invalid(approvalPolicyKind, p.Name, errs)
}

// ApprovalDecisionDefaulter stamps a new decision with its approver as
// the API server authenticated the request, replacing whatever the
// client wrote, and labels it with its request.
type ApprovalDecisionDefaulter struct{}

var _ admission.Defaulter[*custosv1alpha1.ApprovalDecision] = &ApprovalDecisionDefaulter{}

// Default stamps d.
func (ApprovalDecisionDefaulter) Default(ctx context.Context, d *custosv1alpha1.ApprovalDecision) error {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return err
	}
	d.Spec.Approver = approverOf(req)
	if d.Labels == nil {
		d.Labels = map[string]string{}
	}
	if len(d.Spec.Request) <= 63 {
		d.Labels[custosv1alpha1.ApprovalRequestLabel] = d.Spec.Request
	}
	return nil
}

func approverOf(req admission.Request) custosv1alpha1.Approver {
	u := req.UserInfo
	a := custosv1alpha1.Approver{Username: u.Username, UID: u.UID}
	if len(u.Groups) > 0 {
		a.Groups = slices.Clone(u.Groups)
	}
	return a
}

// ApprovalDecisionValidator refuses a decision its maker may not make:
// an approver not the one the API server authenticated, a request that
// does not exist or is already decided, a second decision by the same
// person, and anyone an ApprovalRequest's rules exclude
// (approval.Eligible: RBAC verb approve on the Toolset, separation of
// duties). The manager counts only what would pass here, again, when it
// tallies.
type ApprovalDecisionValidator struct {
	Client client.Reader
	Access approval.Access
}

var _ admission.Validator[*custosv1alpha1.ApprovalDecision] = &ApprovalDecisionValidator{}

// ValidateCreate checks a new decision.
func (v *ApprovalDecisionValidator) ValidateCreate(ctx context.Context, d *custosv1alpha1.ApprovalDecision) (admission.Warnings, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	approverPath := field.NewPath("spec", "approver")
	if who := approverOf(req); !sameApprover(who, d.Spec.Approver) {
		return nil, invalid(approvalDecisionKind, d.Name, field.ErrorList{field.Forbidden(approverPath,
			fmt.Sprintf("the approver is whoever the API server authenticated (%s), stamped by Custos's admission webhook: a decision cannot name another", who.Username))})
	}
	requestPath := field.NewPath("spec", "request")
	ar := &custosv1alpha1.ApprovalRequest{}
	if err := v.Client.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: d.Spec.Request}, ar); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, invalid(approvalDecisionKind, d.Name, field.ErrorList{field.NotFound(requestPath, d.Spec.Request)})
		}
		return nil, apierrors.NewInternalError(err)
	}
	if p := ar.Status.Phase; p.Terminal() {
		return nil, invalid(approvalDecisionKind, d.Name, field.ErrorList{field.Forbidden(requestPath,
			fmt.Sprintf("approval request %s is %s: nothing is left to decide", ar.Name, p))})
	}
	if p := ar.Status.Phase; p == custosv1alpha1.ApprovalApproved && d.Spec.Decision == custosv1alpha1.Approve {
		return nil, invalid(approvalDecisionKind, d.Name, field.ErrorList{field.Forbidden(requestPath,
			fmt.Sprintf("approval request %s is already Approved (it may still be denied until it runs)", ar.Name))})
	}
	if decided, err := v.decided(ctx, ar, d.Spec.Approver); err != nil {
		return nil, apierrors.NewInternalError(err)
	} else if decided != "" {
		return nil, invalid(approvalDecisionKind, d.Name, field.ErrorList{field.Duplicate(approverPath.Child("username"),
			fmt.Sprintf("%s already decided approval request %s (ApprovalDecision %s): one decision per person", d.Spec.Approver.Username, ar.Name, decided))})
	}
	why, err := approval.Eligible(ctx, v.Access, d.Spec.Approver, ar)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if why != nil {
		return nil, invalid(approvalDecisionKind, d.Name, field.ErrorList{field.Forbidden(approverPath, why.Message+" ["+why.Rule+"]")})
	}
	return nil, nil
}

// decided names a decision who already made on ar, or "".
func (v *ApprovalDecisionValidator) decided(ctx context.Context, ar *custosv1alpha1.ApprovalRequest, who custosv1alpha1.Approver) (string, error) {
	for _, vote := range ar.Status.Decisions {
		if approval.SamePerson(vote.Approver, who) {
			return vote.Name, nil
		}
	}
	var list custosv1alpha1.ApprovalDecisionList
	if err := v.Client.List(ctx, &list, client.InNamespace(ar.Namespace)); err != nil {
		return "", err
	}
	for _, d := range list.Items {
		if d.Spec.Request == ar.Name && approval.SamePerson(d.Spec.Approver, who) {
			return d.Name, nil
		}
	}
	return "", nil
}

func sameApprover(a, b custosv1alpha1.Approver) bool {
	return a.Username == b.Username && a.UID == b.UID && slices.Equal(a.Groups, b.Groups)
}

// ValidateUpdate: the spec cannot change (the CRD says so); the rest may.
func (v *ApprovalDecisionValidator) ValidateUpdate(context.Context, *custosv1alpha1.ApprovalDecision, *custosv1alpha1.ApprovalDecision) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDelete allows deletion: a decision counted stays on its
// request's status and on the audit trail.
func (v *ApprovalDecisionValidator) ValidateDelete(context.Context, *custosv1alpha1.ApprovalDecision) (admission.Warnings, error) {
	return nil, nil
}
