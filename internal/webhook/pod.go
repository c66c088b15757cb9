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
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/identity"
	"github.com/custos-dev/custos/internal/workload"
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
	requiredPath   = podSpecPath.Child("affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution")
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

// injectRegionAffinity makes every required node-selector term of pod
// carry `topology.kubernetes.io/region In regions`. Terms are ORed, so
// each one must be confined. Within a term expressions are ANDed, so a
// region expression the author wrote is replaced rather than kept beside
// the boundary's: the boundary decides where the agent runs, and a region
// of the author's outside it would leave the pod silently unschedulable.
// An empty term matches no node and is left as it is: giving it a region
// would make it match. A pod without required terms gets one.
func injectRegionAffinity(pod *corev1.Pod, regions []string) {
	regions = slices.Clone(regions)
	// Sorted as workload.Deployment renders them, so that Custos's own
	// pods come through unchanged and cost no patch.
	slices.Sort(regions)
	want := corev1.NodeSelectorRequirement{Key: workload.RegionLabel, Operator: corev1.NodeSelectorOpIn, Values: regions}

	spec := &pod.Spec
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	na := spec.Affinity.NodeAffinity
	if na.RequiredDuringSchedulingIgnoredDuringExecution == nil || len(na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms) == 0 {
		na.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{want}}},
		}
		return
	}
	terms := na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	for i := range terms {
		term := &terms[i]
		if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
			continue
		}
		placed := false
		exprs := make([]corev1.NodeSelectorRequirement, 0, len(term.MatchExpressions)+1)
		for _, e := range term.MatchExpressions {
			if e.Key != workload.RegionLabel {
				exprs = append(exprs, e)
				continue
			}
			if !placed {
				exprs = append(exprs, *want.DeepCopy())
				placed = true
			}
		}
		if !placed {
			exprs = append(exprs, *want.DeepCopy())
		}
		term.MatchExpressions = exprs
	}
}

// PodValidator refuses agent pods that could act beyond their Agent: run
// as another identity or image, reach the node, gain privileges, claim
// another tenant, or run outside the boundary's regions.
type PodValidator struct {
	Client client.Reader
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
		if was, had := old.Labels[custosv1alpha1.AgentLabel]; had && (!ok || was != name) {
			return invalid(podKind, podName(pod), field.ErrorList{field.Forbidden(agentLabelPath, fmt.Sprintf(
				"the agent label is immutable (was %q): a pod cannot leave its agent or move to another; delete it instead", was))})
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
	errs = append(errs, checkPod(old, pod, agent, b)...)
	return invalid(podKind, podName(pod), errs)
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

// checkAgentOf: the pod's agent exists and may run.
func checkAgentOf(name, namespace string, agent *custosv1alpha1.Agent) field.ErrorList {
	switch {
	case agent == nil:
		return field.ErrorList{field.Forbidden(agentLabelPath, fmt.Sprintf(
			"no Agent %q exists in namespace %s; the label is reserved for the pods of Custos agents", name, namespace))}
	case agent.Spec.Lifecycle.State == custosv1alpha1.LifecycleDecommissioned:
		return field.ErrorList{field.Forbidden(agentLabelPath, fmt.Sprintf(
			"agent %s is Decommissioned: it runs no pods any more", name))}
	case !agent.DeletionTimestamp.IsZero():
		return field.ErrorList{field.Forbidden(agentLabelPath, fmt.Sprintf(
			"agent %s is being deleted and decommissioned: it runs no new pods", name))}
	}
	return nil
}

// checkPod is the pod guard's verdict on pod as a pod of agent, with
// placement checked against b. What needs the agent is skipped when it is
// nil, placement when b is nil. It reads nothing.
func checkPod(old, pod *corev1.Pod, agent *custosv1alpha1.Agent, b *custosv1alpha1.DataBoundary) field.ErrorList {
	errs := checkPodSecurity(&pod.Spec)
	if agent != nil {
		errs = append(errs, checkPodIdentity(old, pod, agent)...)
	}
	if b != nil {
		errs = append(errs, checkRegionAffinity(&pod.Spec, b)...)
	}
	return errs
}

// checkPodIdentity: the pod runs as its agent, with its agent's verified
// image, in its agent's tenant. On an update (old set) only the images that
// change are checked: a pod admitted with the digest verified then may be
// relabelled or lose a finalizer after the agent moved on to another.
func checkPodIdentity(old, pod *corev1.Pod, agent *custosv1alpha1.Agent) field.ErrorList {
	var errs field.ErrorList
	sa := identity.ServiceAccountName(agent.Name)
	if pod.Spec.ServiceAccountName != sa {
		errs = append(errs, field.Forbidden(podSpecPath.Child("serviceAccountName"), fmt.Sprintf(
			"pods of agent %s run only as ServiceAccount %s", agent.Name, sa)))
	}
	want := workload.VerifiedImage(agent)
	admitted := map[string]string{}
	if old != nil {
		for _, c := range containersOf(&old.Spec) {
			admitted[c.path.String()] = c.image
		}
	}
	for _, c := range containersOf(&pod.Spec) {
		if was, ok := admitted[c.path.String()]; ok && was == c.image {
			continue
		}
		switch {
		case want == "":
			errs = append(errs, field.Forbidden(c.path.Child("image"), fmt.Sprintf(
				"agent %s has no verified image (%s): its pods run only an image digest Custos verified", agent.Name, imageState(agent))))
		case c.image != want:
			errs = append(errs, field.Forbidden(c.path.Child("image"), fmt.Sprintf(
				"pods of agent %s run only its verified image, pinned by digest: %s", agent.Name, want)))
		}
	}
	tenant := agent.Labels[custosv1alpha1.TenantLabel]
	switch got := pod.Labels[custosv1alpha1.TenantLabel]; {
	case got == "":
		errs = append(errs, field.Required(tenantPath, fmt.Sprintf("pods of agent %s carry its tenant %q", agent.Name, tenant)))
	case got != tenant:
		errs = append(errs, field.Forbidden(tenantPath, fmt.Sprintf("%q is not the tenant of agent %s (%q)", got, agent.Name, tenant)))
	}
	return errs
}

// imageState says why an agent has no verified image, from its
// ImageVerified condition.
func imageState(agent *custosv1alpha1.Agent) string {
	c := apimeta.FindStatusCondition(agent.Status.Conditions, custosv1alpha1.ImageVerifiedCondition)
	if c == nil {
		return "not verified yet"
	}
	return "ImageVerified " + string(c.Status) + ", " + c.Reason + ": " + c.Message
}

// checkPodSecurity: no way to the node's namespaces or filesystem, no
// privileges, and the ServiceAccount token only as a lease Custos issues.
func checkPodSecurity(spec *corev1.PodSpec) field.ErrorList {
	var errs field.ErrorList
	const noToken = "agent pods get credentials as leases Custos issues, never the ServiceAccount's token"
	switch t := spec.AutomountServiceAccountToken; {
	case t == nil:
		// Unset defers to the ServiceAccount's own setting, which the guard
		// would have to read; an explicit false holds whatever it says.
		errs = append(errs, field.Required(podSpecPath.Child("automountServiceAccountToken"), "must be set to false: "+noToken))
	case *t:
		errs = append(errs, field.Forbidden(podSpecPath.Child("automountServiceAccountToken"), "must be false: "+noToken))
	}
	for _, host := range []struct {
		name string
		on   bool
	}{{"hostNetwork", spec.HostNetwork}, {"hostPID", spec.HostPID}, {"hostIPC", spec.HostIPC}} {
		if host.on {
			errs = append(errs, field.Forbidden(podSpecPath.Child(host.name), "agent pods do not share the node's namespaces"))
		}
	}
	for i, vol := range spec.Volumes {
		if vol.HostPath != nil {
			errs = append(errs, field.Forbidden(podSpecPath.Child("volumes").Index(i).Child("hostPath"),
				"agent pods do not mount the node's filesystem"))
		}
	}
	pod := spec.SecurityContext
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	podSC := podSpecPath.Child("securityContext")
	if pod.RunAsNonRoot != nil && !*pod.RunAsNonRoot {
		errs = append(errs, field.Forbidden(podSC.Child("runAsNonRoot"), "agent pods run as a non-root user"))
	}
	if pod.RunAsUser != nil && *pod.RunAsUser == 0 {
		errs = append(errs, field.Forbidden(podSC.Child("runAsUser"), "agent pods do not run as root (UID 0)"))
	}
	if p := pod.SeccompProfile; p != nil && !seccompConfined(p) {
		errs = append(errs, field.Forbidden(podSC.Child("seccompProfile", "type"), "must be RuntimeDefault or Localhost"))
	}
	if w := pod.WindowsOptions; w != nil && w.HostProcess != nil && *w.HostProcess {
		errs = append(errs, field.Forbidden(podSC.Child("windowsOptions", "hostProcess"), "agent pods do not run as host processes"))
	}
	for _, c := range containersOf(spec) {
		errs = append(errs, checkContainerSecurity(c, pod)...)
	}
	return errs
}

// container is what the guard reads of a container, an init container or
// an ephemeral container alike.
type container struct {
	path  *field.Path
	image string
	sc    *corev1.SecurityContext
	ports []corev1.ContainerPort
}

func containersOf(spec *corev1.PodSpec) []container {
	var cs []container
	for i, c := range spec.InitContainers {
		cs = append(cs, container{podSpecPath.Child("initContainers").Index(i), c.Image, c.SecurityContext, c.Ports})
	}
	for i, c := range spec.Containers {
		cs = append(cs, container{podSpecPath.Child("containers").Index(i), c.Image, c.SecurityContext, c.Ports})
	}
	for i, c := range spec.EphemeralContainers {
		cs = append(cs, container{podSpecPath.Child("ephemeralContainers").Index(i), c.Image, c.SecurityContext, c.Ports})
	}
	return cs
}

// checkContainerSecurity holds a container to the restricted Pod Security
// Standard, without its exception for NET_BIND_SERVICE: an agent binds no
// privileged port. Settings that may come from the pod are taken from it
// when the container leaves them unset.
func checkContainerSecurity(c container, pod *corev1.PodSecurityContext) field.ErrorList {
	var errs field.ErrorList
	sc := c.sc
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	path := c.path.Child("securityContext")
	if sc.Privileged != nil && *sc.Privileged {
		errs = append(errs, field.Forbidden(path.Child("privileged"), "agent containers are never privileged"))
	}
	switch e := sc.AllowPrivilegeEscalation; {
	case e == nil:
		// Unset means allowed, for a process that gains privileges by
		// executing a setuid binary.
		errs = append(errs, field.Required(path.Child("allowPrivilegeEscalation"), "must be set to false"))
	case *e:
		errs = append(errs, field.Forbidden(path.Child("allowPrivilegeEscalation"), "must be false: agent containers never gain privileges"))
	}
	switch {
	case sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot:
		errs = append(errs, field.Forbidden(path.Child("runAsNonRoot"), "agent containers run as a non-root user"))
	case sc.RunAsNonRoot == nil && pod.RunAsNonRoot == nil:
		errs = append(errs, field.Required(path.Child("runAsNonRoot"), "set runAsNonRoot: true on the container or the pod"))
	}
	if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		errs = append(errs, field.Forbidden(path.Child("runAsUser"), "agent containers do not run as root (UID 0)"))
	}
	switch {
	case sc.SeccompProfile != nil && !seccompConfined(sc.SeccompProfile):
		errs = append(errs, field.Forbidden(path.Child("seccompProfile", "type"), "must be RuntimeDefault or Localhost"))
	case sc.SeccompProfile == nil && pod.SeccompProfile == nil:
		errs = append(errs, field.Required(path.Child("seccompProfile"), "set seccompProfile type RuntimeDefault or Localhost on the container or the pod"))
	}
	caps := sc.Capabilities
	if caps == nil || !slices.Contains(caps.Drop, "ALL") {
		errs = append(errs, field.Required(path.Child("capabilities", "drop"), "must drop ALL capabilities"))
	}
	if caps != nil {
		for j, add := range caps.Add {
			errs = append(errs, field.Forbidden(path.Child("capabilities", "add").Index(j),
				fmt.Sprintf("agent containers add no capabilities (%s)", add)))
		}
	}
	if sc.ProcMount != nil && *sc.ProcMount == corev1.UnmaskedProcMount {
		errs = append(errs, field.Forbidden(path.Child("procMount"), "agent containers see the default, masked /proc"))
	}
	if w := sc.WindowsOptions; w != nil && w.HostProcess != nil && *w.HostProcess {
		errs = append(errs, field.Forbidden(path.Child("windowsOptions", "hostProcess"), "agent containers do not run as host processes"))
	}
	for j, p := range c.ports {
		if p.HostPort != 0 {
			errs = append(errs, field.Forbidden(c.path.Child("ports").Index(j).Child("hostPort"), "agent containers listen on no port of the node"))
		}
	}
	return errs
}

func seccompConfined(p *corev1.SeccompProfile) bool {
	return p.Type == corev1.SeccompProfileTypeRuntimeDefault || p.Type == corev1.SeccompProfileTypeLocalhost
}

// checkRegionAffinity: every required node-selector term that can match a
// node confines it to b's regions, and there is at least one term. It is
// what injectRegionAffinity guarantees, checked again because a mutating
// webhook that runs after Custos's, or a request that bypassed it, could
// have left the pod unconfined.
func checkRegionAffinity(spec *corev1.PodSpec, b *custosv1alpha1.DataBoundary) field.ErrorList {
	msg := fmt.Sprintf("agent pods are placed only in the regions of DataBoundary %q: require %s In [%s]",
		b.Name, workload.RegionLabel, strings.Join(b.Spec.Regions, ", "))
	var required *corev1.NodeSelector
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil {
		required = a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	}
	if required == nil || len(required.NodeSelectorTerms) == 0 {
		return field.ErrorList{field.Required(requiredPath, msg)}
	}
	var errs field.ErrorList
	for i, term := range required.NodeSelectorTerms {
		if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
			continue // matches no node
		}
		if !slices.ContainsFunc(term.MatchExpressions, func(e corev1.NodeSelectorRequirement) bool {
			return e.Key == workload.RegionLabel && e.Operator == corev1.NodeSelectorOpIn && len(e.Values) > 0 &&
				!slices.ContainsFunc(e.Values, func(r string) bool { return !slices.Contains(b.Spec.Regions, r) })
		}) {
			errs = append(errs, field.Forbidden(requiredPath.Child("nodeSelectorTerms").Index(i), msg))
		}
	}
	return errs
}
