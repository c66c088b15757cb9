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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
	"github.com/custos-dev/custos/internal/breaker"
)

// +kubebuilder:webhook:path=/mutate-custos-dev-v1alpha1-agentfreeze,mutating=true,failurePolicy=fail,sideEffects=None,groups=custos.dev,resources=agentfreezes,verbs=create,versions=v1alpha1,name=agentfreezes.mutate.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,reinvocationPolicy=IfNeeded,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`
// +kubebuilder:webhook:path=/validate-custos-dev-v1alpha1-agentfreeze,mutating=false,failurePolicy=fail,sideEffects=None,groups=custos.dev,resources=agentfreezes,verbs=create;delete,versions=v1alpha1,name=agentfreezes.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`
// +kubebuilder:webhook:path=/mutate-custos-dev-v1alpha1-agentunfreeze,mutating=true,failurePolicy=fail,sideEffects=None,groups=custos.dev,resources=agentunfreezes,verbs=create,versions=v1alpha1,name=agentunfreezes.mutate.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,reinvocationPolicy=IfNeeded,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`
// +kubebuilder:webhook:path=/validate-custos-dev-v1alpha1-agentunfreeze,mutating=false,failurePolicy=fail,sideEffects=None,groups=custos.dev,resources=agentunfreezes,verbs=create,versions=v1alpha1,name=agentunfreezes.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`

var (
	agentFreezeKind   = custosv1alpha1.GroupVersion.WithKind("AgentFreeze").GroupKind()
	agentUnfreezeKind = custosv1alpha1.GroupVersion.WithKind("AgentUnfreeze").GroupKind()
)

// AgentFreezeDefaulter stamps a new freeze with its author, as the API
// server authenticated the request, and its Agent's UID.
type AgentFreezeDefaulter struct {
	Client client.Reader
}

var _ admission.Defaulter[*custosv1alpha1.AgentFreeze] = &AgentFreezeDefaulter{}

// Default stamps f.
func (d *AgentFreezeDefaulter) Default(ctx context.Context, f *custosv1alpha1.AgentFreeze) error {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return err
	}
	f.Spec.FrozenBy = approverOf(req)
	f.Spec.AgentUID = ""
	agent := &custosv1alpha1.Agent{}
	if err := d.Client.Get(ctx, client.ObjectKey{Namespace: f.Namespace, Name: f.Spec.Agent}, agent); err != nil {
		return client.IgnoreNotFound(err)
	}
	f.Spec.AgentUID = string(agent.UID)
	// Labelled as what Custos makes for an agent is (its audit records
	// name the Agent), and gone with it.
	if f.Labels == nil {
		f.Labels = map[string]string{}
	}
	f.Labels[custosv1alpha1.AgentLabel] = agent.Name
	f.Labels[custosv1alpha1.AgentUIDLabel] = string(agent.UID)
	f.Labels[custosv1alpha1.TenantLabel] = agent.Labels[custosv1alpha1.TenantLabel]
	// Not owned by the Agent while it holds: the garbage collector would
	// lift it with the Agent's deletion, and the name, applied again,
	// would run unfrozen. The manager makes a lifted freeze the Agent's.
	f.OwnerReferences = slices.DeleteFunc(f.OwnerReferences, func(o metav1.OwnerReference) bool {
		return o.APIVersion == custosv1alpha1.GroupVersion.String() && o.Kind == "Agent"
	})
	return nil
}

// agentUIDOf is the UID of Agent namespace/name; "" when there is none.
func agentUIDOf(ctx context.Context, c client.Reader, namespace, name string) (string, error) {
	agent := &custosv1alpha1.Agent{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, agent); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	return string(agent.UID), nil
}

// AgentFreezeValidator refuses a freeze its author may not make
// (breaker.MayFreeze: a trip with evidence is Custos's components' alone),
// one naming another author or Agent UID than admission stamped, and the
// deletion of a freeze that still holds: only an AgentUnfreeze lifts it.
type AgentFreezeValidator struct {
	Client client.Reader
	Access approval.Access
}

var _ admission.Validator[*custosv1alpha1.AgentFreeze] = &AgentFreezeValidator{}

// ValidateCreate checks a new freeze.
func (v *AgentFreezeValidator) ValidateCreate(ctx context.Context, f *custosv1alpha1.AgentFreeze) (admission.Warnings, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	who := approverOf(req)
	if !sameApprover(who, f.Spec.FrozenBy) {
		return nil, invalid(agentFreezeKind, f.Name, field.ErrorList{field.Forbidden(field.NewPath("spec", "frozenBy"),
			fmt.Sprintf("the author is whoever the API server authenticated (%s), stamped by Custos's admission webhook: a freeze cannot name another", who.Username))})
	}
	uid, err := agentUIDOf(ctx, v.Client, f.Namespace, f.Spec.Agent)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if uid == "" {
		return nil, invalid(agentFreezeKind, f.Name, field.ErrorList{field.NotFound(field.NewPath("spec", "agent"), f.Spec.Agent)})
	}
	if f.Spec.AgentUID != uid {
		return nil, invalid(agentFreezeKind, f.Name, field.ErrorList{field.Forbidden(field.NewPath("spec", "agentUID"),
			"the Agent's UID is stamped by Custos's admission webhook: a freeze is of the Agent that exists now")})
	}
	no, err := breaker.MayFreeze(ctx, v.Access, who, f)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if no != nil {
		return nil, invalid(agentFreezeKind, f.Name, field.ErrorList{field.Forbidden(field.NewPath("spec", "trigger"), no.Rule+": "+no.Message)})
	}
	return nil, nil
}

// ValidateUpdate: the spec cannot change (the CRD says so), and the status
// is the manager's (RBAC).
func (v *AgentFreezeValidator) ValidateUpdate(context.Context, *custosv1alpha1.AgentFreeze, *custosv1alpha1.AgentFreeze) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDelete refuses to delete a freeze that is not lifted, whether
// its Agent exists now or not (a freeze holds the name: an Agent deleted
// and applied again is frozen still); a lifted one may go, and so does
// every freeze of a namespace being deleted.
func (v *AgentFreezeValidator) ValidateDelete(ctx context.Context, f *custosv1alpha1.AgentFreeze) (admission.Warnings, error) {
	if f.Status.Phase == custosv1alpha1.FreezeLifted {
		return nil, nil
	}
	going, err := namespaceGoing(ctx, v.Client, f.Namespace)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if going {
		return nil, nil
	}
	return nil, apierrors.NewForbidden(custosv1alpha1.GroupVersion.WithResource("agentfreezes").GroupResource(), f.Name, fmt.Errorf(
		"AgentFreeze %s holds Agent %s/%s Frozen: deleting it would not lift it; a person who may unfreeze the agent lifts it with an AgentUnfreeze (kubectl custos unfreeze %s -n %s)",
		f.Name, f.Namespace, f.Spec.Agent, f.Spec.Agent, f.Namespace))
}

// AgentUnfreezeDefaulter stamps a new unfreeze with its author.
type AgentUnfreezeDefaulter struct{}

var _ admission.Defaulter[*custosv1alpha1.AgentUnfreeze] = AgentUnfreezeDefaulter{}

// Default stamps u.
func (AgentUnfreezeDefaulter) Default(ctx context.Context, u *custosv1alpha1.AgentUnfreeze) error {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return err
	}
	u.Spec.UnfrozenBy = approverOf(req)
	return nil
}

// AgentUnfreezeValidator refuses an unfreeze its author may not make
// (breaker.MayLift: a person who may unfreeze the agent and does not own
// it), one naming another author than admission stamped, and one of a
// freeze that does not exist or was lifted already.
type AgentUnfreezeValidator struct {
	Client client.Reader
	Access approval.Access
}

var _ admission.Validator[*custosv1alpha1.AgentUnfreeze] = &AgentUnfreezeValidator{}

// ValidateCreate checks a new unfreeze.
func (v *AgentUnfreezeValidator) ValidateCreate(ctx context.Context, u *custosv1alpha1.AgentUnfreeze) (admission.Warnings, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	byPath := field.NewPath("spec", "unfrozenBy")
	who := approverOf(req)
	if !sameApprover(who, u.Spec.UnfrozenBy) {
		return nil, invalid(agentUnfreezeKind, u.Name, field.ErrorList{field.Forbidden(byPath,
			fmt.Sprintf("the author is whoever the API server authenticated (%s), stamped by Custos's admission webhook: an unfreeze cannot name another", who.Username))})
	}
	freezePath := field.NewPath("spec", "freeze")
	f := &custosv1alpha1.AgentFreeze{}
	if err := liveOf(v.Client).Get(ctx, client.ObjectKey{Namespace: u.Namespace, Name: u.Spec.Freeze}, f); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, invalid(agentUnfreezeKind, u.Name, field.ErrorList{field.NotFound(freezePath, u.Spec.Freeze)})
		}
		return nil, apierrors.NewInternalError(err)
	}
	if f.Status.Phase == custosv1alpha1.FreezeLifted {
		return nil, invalid(agentUnfreezeKind, u.Name, field.ErrorList{field.Forbidden(freezePath,
			fmt.Sprintf("AgentFreeze %s was lifted by %s (%s): there is nothing to lift", f.Name, f.Status.Unfreeze, f.Status.Verdict))})
	}
	no, err := breaker.MayLift(ctx, v.Access, who, f.Namespace, f.Spec.Agent)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if no != nil {
		return nil, invalid(agentUnfreezeKind, u.Name, field.ErrorList{field.Forbidden(byPath, no.Rule+": "+no.Message)})
	}
	return nil, nil
}

// ValidateUpdate: the spec cannot change (the CRD says so).
func (v *AgentUnfreezeValidator) ValidateUpdate(context.Context, *custosv1alpha1.AgentUnfreeze, *custosv1alpha1.AgentUnfreeze) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDelete allows deletion: the lift stays on the AgentFreeze's
// status and the audit trail.
func (v *AgentUnfreezeValidator) ValidateDelete(context.Context, *custosv1alpha1.AgentUnfreeze) (admission.Warnings, error) {
	return nil, nil
}

// namespaceGoing says, as the API server says it now, whether namespace is
// gone or being deleted: what must not be deleted while it holds (a freeze
// not lifted, a Finding still open) goes with its namespace.
func namespaceGoing(ctx context.Context, c client.Reader, namespace string) (bool, error) {
	ns := &corev1.Namespace{}
	if err := liveOf(c).Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	return ns.Name == "" || !ns.DeletionTimestamp.IsZero() || ns.Status.Phase == corev1.NamespaceTerminating, nil
}
