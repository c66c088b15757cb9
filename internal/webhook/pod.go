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
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// The pod guard sees only pods labelled custos.dev/agent, which Custos puts
// on the pods of every agent it runs: failing closed for every pod of the
// cluster would make Custos's availability everyone's.
//
// The mutating webhook is reinvoked when a later one changes the pod, so
// that no other mutation can take the region affinity off again. The
// validating one also sees pods/ephemeralcontainers: `kubectl debug` adds a
// container to a running pod through that subresource only.
//
// +kubebuilder:webhook:path=/mutate-v1-pod,mutating=true,failurePolicy=fail,sideEffects=None,groups="",resources=pods,verbs=create;update,versions=v1,name=pods.mutate.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,reinvocationPolicy=IfNeeded,patch=`{"objectSelector":{"matchExpressions":[{"key":"custos.dev/agent","operator":"Exists"}]},"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`
// +kubebuilder:webhook:path=/validate-v1-pod,mutating=false,failurePolicy=fail,sideEffects=None,groups="",resources=pods;pods/ephemeralcontainers,verbs=create;update,versions=v1,name=pods.validate.custos.dev,serviceName=webhook,serviceNamespace=custos-system,admissionReviewVersions=v1,matchPolicy=Equivalent,timeoutSeconds=5,patch=`{"objectSelector":{"matchExpressions":[{"key":"custos.dev/agent","operator":"Exists"}]},"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","custos-system"]}]}}`

var podKind = schema.GroupKind{Kind: "Pod"}

// Paths of the pod guard's errors.
var (
	agentLabelPath = field.NewPath("metadata", "labels").Key(custosv1alpha1.AgentLabel)
	podSpecPath    = field.NewPath("spec")
)

// PodDefaulter labels an agent's pods with their tenant and pins them to
// the regions of their DataBoundary. A pod whose Agent or boundary cannot
// be found is left as it is: PodValidator refuses it, with the reason.
type PodDefaulter struct {
	Client client.Reader
}

var _ admission.Defaulter[*corev1.Pod] = &PodDefaulter{}

// Default mutates an agent pod on create and update.
func (d *PodDefaulter) Default(ctx context.Context, pod *corev1.Pod) error {
	name, ok := pod.Labels[custosv1alpha1.AgentLabel]
	if !ok {
		return nil
	}
	namespace, op := requestOf(ctx, pod)
	agent, err := getAgent(ctx, d.Client, namespace, name)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if agent == nil {
		return nil
	}
	// Node affinity is immutable once a pod exists (the API server refuses
	// a change), so it is placed on create only; the tenant label can be
	// removed later and is put back.
	if op == admissionv1.Create {
		_, b, boundaryErrs, err := namespaceAndBoundary(ctx, d.Client, namespace)
		if err != nil {
			return apierrors.NewInternalError(err)
		}
		if len(boundaryErrs) > 0 {
			return nil
		}
		injectRegionAffinity(pod, b.Spec.Regions)
	}
	setTenantLabel(pod, agent)
	return nil
}

// setTenantLabel labels pod with its agent's tenant when it carries no
// tenant. A pod that claims another tenant keeps its claim, and so is
// refused: relabelling it silently would hide a mistake, or an attempt.
func setTenantLabel(pod *corev1.Pod, agent *custosv1alpha1.Agent) {
	tenant := agent.Labels[custosv1alpha1.TenantLabel]
	if tenant == "" || pod.Labels[custosv1alpha1.TenantLabel] != "" {
		return
	}
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[custosv1alpha1.TenantLabel] = tenant
}

// PodValidator refuses agent pods that could act beyond their Agent: run
// while the agent is not Active, as another identity or image, without the
// labels that tie them to the agent, with a credential Custos did not issue
// them, reach the node, gain privileges, claim another tenant, or run
// outside the boundary's regions.
type PodValidator struct {
	Client client.Reader
	// Clock tells whether an agent's spec.lifecycle.expiresAt has passed;
	// the real clock when nil.
	Clock clock.PassiveClock
}

func (v *PodValidator) now() time.Time {
	if v.Clock == nil {
		return time.Now()
	}
	return v.Clock.Now()
}

var _ admission.Validator[*corev1.Pod] = &PodValidator{}

// ValidateCreate checks a new agent pod.
func (v *PodValidator) ValidateCreate(ctx context.Context, pod *corev1.Pod) (admission.Warnings, error) {
	return nil, v.validate(ctx, nil, pod)
}

// ValidateUpdate checks the pod as it would be after the update: labels,
// images and ephemeral containers can change on a running pod. A
// terminating pod whose spec stays as it was passes, so that finalizers
// can be removed and a pod of a decommissioned agent can go.
func (v *PodValidator) ValidateUpdate(ctx context.Context, old, pod *corev1.Pod) (admission.Warnings, error) {
	if !pod.DeletionTimestamp.IsZero() && equality.Semantic.DeepEqual(old.Spec, pod.Spec) {
		return nil, nil
	}
	return nil, v.validate(ctx, old, pod)
}

// ValidateDelete allows every deletion: taking a pod away never widens
// what an agent can do, and the decommission path deletes pods.
func (v *PodValidator) ValidateDelete(context.Context, *corev1.Pod) (admission.Warnings, error) {
	return nil, nil
}

func (v *PodValidator) validate(ctx context.Context, old, pod *corev1.Pod) error {
	name, ok := pod.Labels[custosv1alpha1.AgentLabel]
	if old != nil {
		// The label is what brings a pod here: a pod that could drop it
		// could change its image afterwards unseen, still running as the
		// agent's ServiceAccount.
		was, had := old.Labels[custosv1alpha1.AgentLabel]
		if had && (!ok || was != name) {
			return invalid(podKind, podName(pod), field.ErrorList{field.Forbidden(agentLabelPath, fmt.Sprintf(
				"the agent label is immutable (was %q): a pod cannot leave its agent or move to another; delete it instead", was))})
		}
		if !had {
			// A pod that joins an agent now was never checked as one:
			// it is checked as a new agent pod, not against what it was.
			old = nil
		}
	}
	if !ok {
		return nil
	}
	namespace, _ := requestOf(ctx, pod)
	agent, err := getAgent(ctx, v.Client, namespace, name)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	var b *custosv1alpha1.DataBoundary
	var errs field.ErrorList
	// Placement is checked on create only: node affinity cannot change
	// afterwards, and a boundary narrowed since must not make every update
	// of a running pod fail (the agent reconciler rolls it instead).
	if old == nil {
		var boundaryErrs field.ErrorList
		_, b, boundaryErrs, err = namespaceAndBoundary(ctx, v.Client, namespace)
		if err != nil {
			return apierrors.NewInternalError(err)
		}
		errs = append(errs, boundaryErrs...)
	}
	errs = append(errs, checkAgentOf(name, namespace, agent)...)
	if agent != nil && startsContainers(old, pod) {
		errs = append(errs, checkAgentActive(agent, v.now())...)
	}
	errs = append(errs, checkPod(old, pod, agent, b)...)
	return invalid(podKind, podName(pod), errs)
}

// startsContainers: the request would start containers: a new pod, or
// ephemeral containers added to a running one (pods/ephemeralcontainers).
// An agent that is not Active starts nothing, but the pods it still has
// can be relabelled and lose their finalizers while they go.
func startsContainers(old, pod *corev1.Pod) bool {
	return old == nil || !equality.Semantic.DeepEqual(old.Spec.EphemeralContainers, pod.Spec.EphemeralContainers)
}

// requestOf returns the namespace and operation of the admission request
// in ctx. A pod created through a Deployment reaches the webhooks before
// the API server fills in its namespace, so the request's is preferred.
// Outside a request (unit tests) the pod's namespace and CREATE are used.
func requestOf(ctx context.Context, pod *corev1.Pod) (string, admissionv1.Operation) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return pod.Namespace, admissionv1.Create
	}
	namespace := req.Namespace
	if namespace == "" {
		namespace = pod.Namespace
	}
	return namespace, req.Operation
}

// podName names pod in errors; on create through a Deployment only the
// generated prefix may be known.
func podName(pod *corev1.Pod) string {
	if pod.Name != "" {
		return pod.Name
	}
	return pod.GenerateName
}

// getAgent reads the Agent name in namespace, or nil when there is none.
func getAgent(ctx context.Context, c client.Reader, namespace, name string) (*custosv1alpha1.Agent, error) {
	if name == "" || namespace == "" {
		// Not a name an Agent can have; the API would refuse the read.
		return nil, nil
	}
	agent := &custosv1alpha1.Agent{}
	err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, agent)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Agent %s/%s: %w", namespace, name, err)
	}
	return agent, nil
}

// checkPod is the pod guard's verdict on pod as a pod of agent, with
// placement checked against b. What needs the agent is skipped when it is
// nil, placement when b is nil. On an update (old set) the node is not
// checked, nor labels, images and Secrets that stay as they were. It reads
// nothing.
func checkPod(old, pod *corev1.Pod, agent *custosv1alpha1.Agent, b *custosv1alpha1.DataBoundary) field.ErrorList {
	errs := checkPodSecurity(&pod.Spec)
	errs = append(errs, checkAppArmorAnnotations(pod.Annotations)...)
	errs = append(errs, checkPodCredentials(&pod.Spec)...)
	if old == nil {
		errs = append(errs, checkNodeName(&pod.Spec)...)
	}
	if agent != nil {
		errs = append(errs, checkPodIdentity(old, pod, agent)...)
		errs = append(errs, checkCustosLabels(old, pod, agent)...)
		errs = append(errs, checkSecrets(old, pod, agent)...)
	}
	if b != nil {
		errs = append(errs, checkRegionAffinity(&pod.Spec, b)...)
	}
	return errs
}

// container is a container, an init container or an ephemeral container
// alike, with the path the guard's errors point at.
type container struct {
	path *field.Path
	*corev1.Container
}

func containersOf(spec *corev1.PodSpec) []container {
	var cs []container
	for i := range spec.InitContainers {
		cs = append(cs, container{podSpecPath.Child("initContainers").Index(i), &spec.InitContainers[i]})
	}
	for i := range spec.Containers {
		cs = append(cs, container{podSpecPath.Child("containers").Index(i), &spec.Containers[i]})
	}
	for i := range spec.EphemeralContainers {
		// The same fields, of which the API server refuses some (ports,
		// probes) in an ephemeral container.
		cs = append(cs, container{podSpecPath.Child("ephemeralContainers").Index(i),
			(*corev1.Container)(&spec.EphemeralContainers[i].EphemeralContainerCommon)})
	}
	return cs
}
