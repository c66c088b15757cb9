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

// Package webhook holds Custos's admission handlers: typed validators that
// collect a field.ErrorList and refuse with apierrors.NewInvalid, so that
// kubectl prints "spec.identity.aws.roleARN: Forbidden: …" for what crosses
// a tenant's DataBoundary. Handlers read only the manager's cache: no
// network call is made on the admission path.
package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/boundary"
)

// Paths the handlers are served at; the webhook configurations in
// config/webhook point at them.
const (
	AgentPath     = "/validate-custos-dev-v1alpha1-agent"
	ToolsetPath   = "/validate-custos-dev-v1alpha1-toolset"
	NamespacePath = "/validate-v1-namespace"
	BoundaryPath  = "/validate-custos-dev-v1alpha1-databoundary"

	ApprovalPolicyPath         = "/validate-custos-dev-v1alpha1-approvalpolicy"
	ApprovalDecisionMutatePath = "/mutate-custos-dev-v1alpha1-approvaldecision"
	ApprovalDecisionPath       = "/validate-custos-dev-v1alpha1-approvaldecision"
	AttestationMutatePath      = "/mutate-custos-dev-v1alpha1-agentattestation"
	AttestationPath            = "/validate-custos-dev-v1alpha1-agentattestation"
	AgentFreezeMutatePath      = "/mutate-custos-dev-v1alpha1-agentfreeze"
	AgentFreezePath            = "/validate-custos-dev-v1alpha1-agentfreeze"
	AgentUnfreezeMutatePath    = "/mutate-custos-dev-v1alpha1-agentunfreeze"
	AgentUnfreezePath          = "/validate-custos-dev-v1alpha1-agentunfreeze"
	FindingPath                = "/validate-custos-dev-v1alpha1-finding"
	FindingReviewMutatePath    = "/mutate-custos-dev-v1alpha1-findingreview"
	FindingReviewPath          = "/validate-custos-dev-v1alpha1-findingreview"

	PodMutatePath   = "/mutate-v1-pod"
	PodValidatePath = "/validate-v1-pod"
)

// Options configure the handlers.
type Options struct {
	// Clock tells the time for policy checks; tests replace it.
	Clock clock.PassiveClock

	// Audit receives an admission.denied record for every request refused;
	// none are kept when nil.
	Audit audit.Recorder
}

// SetupWithManager registers every admission handler with mgr's webhook
// server.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Audit == nil {
		opts.Audit = audit.Discard()
	}
	c := &reader{cache: mgr.GetClient(), live: mgr.GetAPIReader()}
	srv := mgr.GetWebhookServer()
	register := func(path string, w *admission.Webhook) {
		w.Handler = audited(w.Handler, opts.Audit)
		srv.Register(path, w)
	}
	register(AgentPath, admission.WithValidator[*custosv1alpha1.Agent](mgr.GetScheme(), &AgentValidator{Client: c, Clock: opts.Clock,
		Access: approval.SubjectAccessReviews{Client: mgr.GetClient()}}))
	register(ToolsetPath, admission.WithValidator[*custosv1alpha1.Toolset](mgr.GetScheme(), &ToolsetValidator{Client: c}))
	register(BoundaryPath, admission.WithValidator[*custosv1alpha1.DataBoundary](mgr.GetScheme(), &DataBoundaryValidator{}))
	register(NamespacePath, admission.WithValidator[*corev1.Namespace](mgr.GetScheme(), &NamespaceValidator{Client: c}))
	// Approvals: a decision's approver is who the API server
	// authenticated, and only someone allowed to decide may.
	register(ApprovalPolicyPath, admission.WithValidator[*custosv1alpha1.ApprovalPolicy](mgr.GetScheme(), &ApprovalPolicyValidator{}))
	register(ApprovalDecisionMutatePath, admission.WithDefaulter[*custosv1alpha1.ApprovalDecision](mgr.GetScheme(), ApprovalDecisionDefaulter{}))
	register(ApprovalDecisionPath, admission.WithValidator[*custosv1alpha1.ApprovalDecision](mgr.GetScheme(),
		&ApprovalDecisionValidator{Client: c, Access: approval.SubjectAccessReviews{Client: mgr.GetClient()}}))
	// Owner reviews: only an owner of the agent attests it, as themselves.
	register(AttestationMutatePath, admission.WithDefaulter[*custosv1alpha1.AgentAttestation](mgr.GetScheme(), &AgentAttestationDefaulter{Client: c}))
	register(AttestationPath, admission.WithValidator[*custosv1alpha1.AgentAttestation](mgr.GetScheme(),
		&AgentAttestationValidator{Client: c, Access: approval.SubjectAccessReviews{Client: mgr.GetClient()}}))
	// Freezes: a trip with evidence is Custos's components' alone; a
	// person who may unfreeze the agent, and does not own it, lifts one.
	register(AgentFreezeMutatePath, admission.WithDefaulter[*custosv1alpha1.AgentFreeze](mgr.GetScheme(), &AgentFreezeDefaulter{Client: c}))
	register(AgentFreezePath, admission.WithValidator[*custosv1alpha1.AgentFreeze](mgr.GetScheme(),
		&AgentFreezeValidator{Client: c, Access: approval.SubjectAccessReviews{Client: mgr.GetClient()}}))
	register(AgentUnfreezeMutatePath, admission.WithDefaulter[*custosv1alpha1.AgentUnfreeze](mgr.GetScheme(), AgentUnfreezeDefaulter{}))
	register(AgentUnfreezePath, admission.WithValidator[*custosv1alpha1.AgentUnfreeze](mgr.GetScheme(),
		&AgentUnfreezeValidator{Client: c, Access: approval.SubjectAccessReviews{Client: mgr.GetClient()}}))
	// Findings: an open one stays until a person who may review it closes
	// it, as themselves.
	register(FindingPath, admission.WithValidator[*custosv1alpha1.Finding](mgr.GetScheme(), &FindingValidator{Client: c}))
	register(FindingReviewMutatePath, admission.WithDefaulter[*custosv1alpha1.FindingReview](mgr.GetScheme(), FindingReviewDefaulter{}))
	register(FindingReviewPath, admission.WithValidator[*custosv1alpha1.FindingReview](mgr.GetScheme(),
		&FindingReviewValidator{Client: c, Access: approval.SubjectAccessReviews{Client: mgr.GetClient()}}))
	// The pod guard: agent pods are labelled with their tenant and pinned to
	// their boundary's regions, then checked.
	register(PodMutatePath, admission.WithDefaulter[*corev1.Pod](mgr.GetScheme(), &PodDefaulter{Client: c}))
	register(PodValidatePath, admission.WithValidator[*corev1.Pod](mgr.GetScheme(), &PodValidator{Client: c, Clock: opts.Clock}))
	return nil
}

var (
	agentKind        = schema.GroupKind{Group: custosv1alpha1.GroupVersion.Group, Kind: "Agent"}
	toolsetKind      = schema.GroupKind{Group: custosv1alpha1.GroupVersion.Group, Kind: "Toolset"}
	dataBoundaryKind = schema.GroupKind{Group: custosv1alpha1.GroupVersion.Group, Kind: "DataBoundary"}
)

// tenantPath is where a tenant label error points.
var tenantPath = field.NewPath("metadata", "labels").Key(custosv1alpha1.TenantLabel)

// invalid turns errs into the API's Invalid error, or nil.
func invalid(gk schema.GroupKind, name string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(gk, name, errs)
}

// reader reads from the manager's cache, and from the API server only when
// the cache says an object is missing: a namespace, DataBoundary and Agent
// applied together (kubectl apply -k, a GitOps sync) reach the webhook
// faster than the cache learns of the first ones. Only requests the cache
// would refuse pay for the extra read.
type reader struct {
	cache client.Reader
	live  client.Reader
}

func (r *reader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := r.cache.Get(ctx, key, obj, opts...)
	if apierrors.IsNotFound(err) {
		return r.live.Get(ctx, key, obj, opts...)
	}
	return err
}

func (r *reader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.cache.List(ctx, list, opts...)
}

// liveOf is the reader around the cache behind c, or nil.
func liveOf(c client.Reader) client.Reader {
	if r, ok := c.(*reader); ok {
		return r.live
	}
	return nil
}

// namespaceAndBoundary reads the namespace of a namespaced object and the
// one DataBoundary that covers it (boundary.GatherPlacement). Missing or
// ambiguous boundaries are returned as field errors on metadata.namespace.
func namespaceAndBoundary(ctx context.Context, c client.Reader, namespace string) (*corev1.Namespace, *custosv1alpha1.DataBoundary, field.ErrorList, error) {
	p, err := boundary.GatherPlacement(ctx, c, liveOf(c), namespace)
	if err != nil {
		return nil, nil, nil, err
	}
	return p.Namespace, p.Boundary, unplaced(p), nil
}

// unplaced is p's verdict that no single boundary covers the namespace, as
// a field error on metadata.namespace.
func unplaced(p boundary.Placement) field.ErrorList {
	if p.Unplaced == nil {
		return nil
	}
	return field.ErrorList{field.Forbidden(field.NewPath("metadata", "namespace"), p.Unplaced.Error())}
}

// checkBoundaryTenant: the boundary that covers the object's namespace is
// the object's tenant's. A namespace can carry one tenant's label and be
// selected by another tenant's boundary (by another label); then neither
// tenant may place objects there.
func checkBoundaryTenant(obj client.Object, b *custosv1alpha1.DataBoundary) field.ErrorList {
	if tenant := obj.GetLabels()[custosv1alpha1.TenantLabel]; tenant != "" && tenant != b.Spec.Tenant {
		return field.ErrorList{field.Forbidden(tenantPath, fmt.Sprintf(
			"%q is not the tenant of DataBoundary %q (%q), which covers namespace %s", tenant, b.Name, b.Spec.Tenant, obj.GetNamespace()))}
	}
	return nil
}

// checkTenantLabel: the object carries a tenant label equal to its
// namespace's, and (on update) the one it had.
func checkTenantLabel(kind string, obj, old client.Object, ns *corev1.Namespace) field.ErrorList {
	tenant := obj.GetLabels()[custosv1alpha1.TenantLabel]
	var errs field.ErrorList
	if old != nil {
		if was := old.GetLabels()[custosv1alpha1.TenantLabel]; was != "" && was != tenant {
			errs = append(errs, field.Forbidden(tenantPath, fmt.Sprintf("the tenant label is immutable (was %q); a %s cannot move to another tenant", was, kind)))
		}
	}
	nsTenant := ns.Labels[custosv1alpha1.TenantLabel]
	switch {
	case tenant == "":
		errs = append(errs, field.Required(tenantPath, fmt.Sprintf("every %s belongs to a tenant; set it to the tenant of namespace %s", kind, ns.Name)))
	case nsTenant == "":
		errs = append(errs, field.Forbidden(tenantPath, fmt.Sprintf("namespace %s carries no %s label, so no %s can live there; a platform team must label it", ns.Name, custosv1alpha1.TenantLabel, kind)))
	case tenant != nsTenant:
		errs = append(errs, field.Forbidden(tenantPath, fmt.Sprintf("%q is not the tenant of namespace %s (%q)", tenant, ns.Name, nsTenant)))
	}
	return errs
}
