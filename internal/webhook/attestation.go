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

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
)

// +kubebuilder:webhook:path=/mutate-custos-dev-v1alpha1-agentattestation,mutating=true,failurePolicy=fail,sideEffects=None,groups=custos.dev,resources=agentattestations,verbs=create,versions=v1alpha1,name=agentattestations.mutate.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,reinvocationPolicy=IfNeeded,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`
// +kubebuilder:webhook:path=/validate-custos-dev-v1alpha1-agentattestation,mutating=false,failurePolicy=fail,sideEffects=None,groups=custos.dev,resources=agentattestations,verbs=create,versions=v1alpha1,name=agentattestations.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`

var agentAttestationKind = custosv1alpha1.GroupVersion.WithKind("AgentAttestation").GroupKind()

// AgentAttestationDefaulter stamps a new attestation with its attester, as
// the API server authenticated the request, its Agent's UID, and the
// report it signs off as it stands (spec.reportSeen).
type AgentAttestationDefaulter struct {
	Client client.Reader
}

var _ admission.Defaulter[*custosv1alpha1.AgentAttestation] = &AgentAttestationDefaulter{}

// Default stamps a.
func (d *AgentAttestationDefaulter) Default(ctx context.Context, a *custosv1alpha1.AgentAttestation) error {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return err
	}
	a.Spec.Attester = approverOf(req)
	a.Spec.AgentUID = ""
	agent := &custosv1alpha1.Agent{}
	if err := d.Client.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: a.Spec.Agent}, agent); err == nil {
		a.Spec.AgentUID = string(agent.UID)
	} else if !apierrors.IsNotFound(err) {
		return err
	}
	// What is signed off is the report as it stands now.
	a.Spec.ReportSeen = nil
	if a.Spec.Report == "" {
		return nil
	}
	rep := &custosv1alpha1.AgentReport{}
	if err := d.Client.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: a.Spec.Report}, rep); err != nil {
		// The validator names a report that is not there.
		return client.IgnoreNotFound(err)
	}
	st := rep.Status
	a.Spec.ReportSeen = &custosv1alpha1.ReportSnapshot{AsOf: st.AsOf.DeepCopy(), Calls: st.Calls, Score: st.Score,
		Recommendation: st.Recommendation, Reason: st.Reason}
	return nil
}

// AgentAttestationValidator refuses an attestation not made by one of the
// agent's owners (whoever may update the Agent, as separation of duties
// counts owners), by a ServiceAccount, or naming another attester or
// another Agent's UID than admission stamped; one that signs off a report
// (spec.report) also needs the report to be the Agent's and the verb
// review on the Agent.
type AgentAttestationValidator struct {
	Client client.Reader
	Access approval.Access
}

var _ admission.Validator[*custosv1alpha1.AgentAttestation] = &AgentAttestationValidator{}

// ValidateCreate checks a new attestation.
func (v *AgentAttestationValidator) ValidateCreate(ctx context.Context, a *custosv1alpha1.AgentAttestation) (admission.Warnings, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	attesterPath := field.NewPath("spec", "attester")
	who := approverOf(req)
	if !sameApprover(who, a.Spec.Attester) {
		return nil, invalid(agentAttestationKind, a.Name, field.ErrorList{field.Forbidden(attesterPath,
			fmt.Sprintf("the attester is whoever the API server authenticated (%s), stamped by Custos's admission webhook: an attestation cannot name another", who.Username))})
	}
	agentPath := field.NewPath("spec", "agent")
	agent := &custosv1alpha1.Agent{}
	if err := v.Client.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: a.Spec.Agent}, agent); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, invalid(agentAttestationKind, a.Name, field.ErrorList{field.NotFound(agentPath, a.Spec.Agent)})
		}
		return nil, apierrors.NewInternalError(err)
	}
	if a.Spec.AgentUID != string(agent.UID) {
		return nil, invalid(agentAttestationKind, a.Name, field.ErrorList{field.Forbidden(field.NewPath("spec", "agentUID"),
			"the Agent's UID is stamped by Custos's admission webhook: an attestation is of the Agent that exists now")})
	}
	if approval.IsServiceAccount(who) {
		return nil, invalid(agentAttestationKind, a.Name, field.ErrorList{field.Forbidden(attesterPath,
			fmt.Sprintf("%s is a ServiceAccount: an agent's review is its owners', people's", who.Username))})
	}
	owner, err := v.Access.Allowed(ctx, who, authorizationv1.ResourceAttributes{
		Group: custosv1alpha1.GroupVersion.Group, Resource: "agents", Verb: "update", Namespace: a.Namespace, Name: a.Spec.Agent,
	})
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if !owner {
		return nil, invalid(agentAttestationKind, a.Name, field.ErrorList{field.Forbidden(attesterPath,
			fmt.Sprintf("%s may not change Agent %s/%s, so is not one of its owners: only they attest it", who.Username, a.Namespace, a.Spec.Agent))})
	}
	if a.Spec.Report == "" {
		return nil, nil
	}
	reportPath := field.NewPath("spec", "report")
	rep := &custosv1alpha1.AgentReport{}
	if err := v.Client.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: a.Spec.Report}, rep); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, invalid(agentAttestationKind, a.Name, field.ErrorList{field.NotFound(reportPath, a.Spec.Report)})
		}
		return nil, apierrors.NewInternalError(err)
	}
	if rep.Spec.Agent != a.Spec.Agent || rep.Spec.AgentUID != string(agent.UID) {
		return nil, invalid(agentAttestationKind, a.Name, field.ErrorList{field.Invalid(reportPath, a.Spec.Report,
			fmt.Sprintf("AgentReport %s is of Agent %s (UID %s), not of %s (UID %s)", rep.Name, rep.Spec.Agent, rep.Spec.AgentUID, a.Spec.Agent, agent.UID))})
	}
	reviewer, err := v.Access.Allowed(ctx, who, authorizationv1.ResourceAttributes{
		Group: custosv1alpha1.GroupVersion.Group, Resource: "agents", Verb: custosv1alpha1.VerbReview, Namespace: a.Namespace, Name: a.Spec.Agent,
	})
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if !reviewer {
		return nil, invalid(agentAttestationKind, a.Name, field.ErrorList{field.Forbidden(attesterPath,
			fmt.Sprintf("%s may not review Agent %s/%s (verb %s on agents): signing off its report (spec.report) needs it", who.Username, a.Namespace, a.Spec.Agent, custosv1alpha1.VerbReview))})
	}
	return nil, nil
}

// ValidateUpdate: the spec cannot change (the CRD says so).
func (v *AgentAttestationValidator) ValidateUpdate(context.Context, *custosv1alpha1.AgentAttestation, *custosv1alpha1.AgentAttestation) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDelete allows deletion: the attestation stays on the Agent's
// status and the audit trail.
func (v *AgentAttestationValidator) ValidateDelete(context.Context, *custosv1alpha1.AgentAttestation) (admission.Warnings, error) {
	return nil, nil
}
