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
	"reflect"
	"slices"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"
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

// checkAgentActive: the agent may start containers now. Suspended (by its
// owner or its expiry) and Frozen agents run nothing until they are Active
// again; an expiry is judged at now, as the Agent reconciler judges it.
// Decommissioned and deleted agents are checkAgentOf's.
func checkAgentActive(agent *custosv1alpha1.Agent, now time.Time) field.ErrorList {
	lc := agent.Spec.Lifecycle
	switch {
	case lc.State == custosv1alpha1.LifecycleDecommissioned || !agent.DeletionTimestamp.IsZero():
		return nil
	case lc.State == custosv1alpha1.LifecycleSuspended:
		return field.ErrorList{field.Forbidden(agentLabelPath, fmt.Sprintf(
			"agent %s is Suspended: it runs no pods until it is Active again", agent.Name))}
	case agent.Status.Lifecycle != nil && agent.Status.Lifecycle.Phase == custosv1alpha1.AgentPhaseFrozen:
		return field.ErrorList{field.Forbidden(agentLabelPath, fmt.Sprintf(
			"agent %s is Frozen by its circuit breaker: it runs no pods until it is Active again", agent.Name))}
	case lc.ExpiresAt != nil && !now.Before(lc.ExpiresAt.Time):
		return field.ErrorList{field.Forbidden(agentLabelPath, fmt.Sprintf(
			"agent %s expired at %s (spec.lifecycle.expiresAt) and is Suspended: it runs no pods until its expiry is moved",
			agent.Name, lc.ExpiresAt.UTC().Format(time.RFC3339)))}
	}
	return nil
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
			admitted[c.path.String()] = c.Image
		}
	}
	for _, c := range containersOf(&pod.Spec) {
		if was, ok := admitted[c.path.String()]; ok && was == c.Image {
			continue
		}
		switch {
		case want == "":
			errs = append(errs, field.Forbidden(c.path.Child("image"), fmt.Sprintf(
				"agent %s has no verified image (%s): its pods run only an image digest Custos verified", agent.Name, imageState(agent))))
		case c.Image != want:
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
// privileges, and the ServiceAccount token only as a lease Custos issues:
// the restricted Pod Security Standard in full (volume types, SELinux,
// AppArmor, seccomp, sysctls, capabilities, ...), stricter where an agent
// needs no exception.
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
	errs = append(errs, checkVolumeTypes(spec)...)
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
	errs = append(errs, checkSELinux(podSC.Child("seLinuxOptions"), pod.SELinuxOptions)...)
	errs = append(errs, checkAppArmorProfile(podSC.Child("appArmorProfile"), pod.AppArmorProfile)...)
	errs = append(errs, checkSysctls(podSC.Child("sysctls"), pod.Sysctls)...)
	for _, c := range containersOf(spec) {
		errs = append(errs, checkContainerSecurity(c, pod)...)
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

// checkContainerSecurity holds a container to the restricted Pod Security
// Standard, without its exception for NET_BIND_SERVICE: an agent binds no
// privileged port. Settings that may come from the pod are taken from it
// when the container leaves them unset.
func checkContainerSecurity(c container, pod *corev1.PodSecurityContext) field.ErrorList {
	var errs field.ErrorList
	sc := c.SecurityContext
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
	for j, p := range c.Ports {
		if p.HostPort != 0 {
			errs = append(errs, field.Forbidden(c.path.Child("ports").Index(j).Child("hostPort"), "agent containers listen on no port of the node"))
		}
	}
	errs = append(errs, checkSELinux(path.Child("seLinuxOptions"), sc.SELinuxOptions)...)
	errs = append(errs, checkAppArmorProfile(path.Child("appArmorProfile"), sc.AppArmorProfile)...)
	errs = append(errs, checkProbeHosts(c)...)
	return errs
}

func seccompConfined(p *corev1.SeccompProfile) bool {
	return p.Type == corev1.SeccompProfileTypeRuntimeDefault || p.Type == corev1.SeccompProfileTypeLocalhost
}

// Volume sources the restricted Pod Security Standard allows, less image:
// an image volume mounts content Custos did not verify.
const allowedVolumeTypes = "configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected and secret"

// checkVolumeTypes: agent pods mount only the volume types of the
// restricted Pod Security Standard, not an image's content Custos did not
// verify. A hostPath is checkPodSecurity's; a volume of a type this guard
// does not know (newer than its API) is refused too.
func checkVolumeTypes(spec *corev1.PodSpec) field.ErrorList {
	var errs field.ErrorList
	for i := range spec.Volumes {
		v := &spec.Volumes[i].VolumeSource
		if v.ConfigMap != nil || v.CSI != nil || v.DownwardAPI != nil || v.EmptyDir != nil || v.Ephemeral != nil ||
			v.PersistentVolumeClaim != nil || v.Projected != nil || v.Secret != nil {
			continue
		}
		path := podSpecPath.Child("volumes").Index(i)
		switch name := volumeSourceName(v); name {
		case "hostPath":
			// Refused as the node's filesystem.
		case "image":
			errs = append(errs, field.Forbidden(path.Child(name),
				"an image volume mounts content Custos did not verify: agent pods run only their verified image and mount only "+allowedVolumeTypes+" volumes"))
		case "":
			errs = append(errs, field.Forbidden(path,
				"no volume source the pod guard knows: agent pods mount only "+allowedVolumeTypes+" volumes"))
		default:
			errs = append(errs, field.Forbidden(path.Child(name),
				"agent pods mount only "+allowedVolumeTypes+" volumes (the restricted Pod Security Standard)"))
		}
	}
	return errs
}

// volumeSourceName is the JSON name of the source v sets, or "".
func volumeSourceName(v *corev1.VolumeSource) string {
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		if f := rv.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			name, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("json"), ",")
			return name
		}
	}
	return ""
}

// seLinuxTypes are the SELinux types the baseline Pod Security Standard
// allows besides none: those of confined containers.
var seLinuxTypes = []string{"container_t", "container_init_t", "container_kvm_t", "container_engine_t"}

// checkSELinux: no SELinux user or role, and only a confined container
// type (spc_t, say, is unconfined).
func checkSELinux(path *field.Path, opts *corev1.SELinuxOptions) field.ErrorList {
	if opts == nil {
		return nil
	}
	var errs field.ErrorList
	if opts.Type != "" && !slices.Contains(seLinuxTypes, opts.Type) {
		errs = append(errs, field.Forbidden(path.Child("type"), fmt.Sprintf(
			"%q is not a confined container type: agent containers run as %s, or leave it empty (the baseline Pod Security Standard)",
			opts.Type, strings.Join(seLinuxTypes, ", "))))
	}
	if opts.User != "" {
		errs = append(errs, field.Forbidden(path.Child("user"), "agent containers set no SELinux user (the baseline Pod Security Standard)"))
	}
	if opts.Role != "" {
		errs = append(errs, field.Forbidden(path.Child("role"), "agent containers set no SELinux role (the baseline Pod Security Standard)"))
	}
	return errs
}

// checkAppArmorProfile: a pod's or container's AppArmor profile, when set,
// confines it.
func checkAppArmorProfile(path *field.Path, p *corev1.AppArmorProfile) field.ErrorList {
	if p == nil || p.Type == corev1.AppArmorProfileTypeRuntimeDefault || p.Type == corev1.AppArmorProfileTypeLocalhost {
		return nil
	}
	return field.ErrorList{field.Forbidden(path.Child("type"), fmt.Sprintf(
		"%q is not allowed: must be RuntimeDefault or Localhost; agent containers are never unconfined", p.Type))}
}

// checkAppArmorAnnotations: the AppArmor annotations the API server still
// honours (it copies them into the fields) confine the container too.
func checkAppArmorAnnotations(annotations map[string]string) field.ErrorList {
	var keys []string
	for k := range annotations {
		if strings.HasPrefix(k, corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var errs field.ErrorList
	for _, k := range keys {
		v := annotations[k]
		if v == "" || v == corev1.DeprecatedAppArmorBetaProfileRuntimeDefault || strings.HasPrefix(v, corev1.DeprecatedAppArmorBetaProfileNamePrefix) {
			continue
		}
		errs = append(errs, field.Forbidden(field.NewPath("metadata", "annotations").Key(k), fmt.Sprintf(
			"%q is not allowed: must be %s or %s<profile>; agent containers are never unconfined",
			v, corev1.DeprecatedAppArmorBetaProfileRuntimeDefault, corev1.DeprecatedAppArmorBetaProfileNamePrefix)))
	}
	return errs
}

// safeSysctls are the sysctls the baseline Pod Security Standard allows
// (as of Kubernetes 1.37): namespaced, and isolated from other pods.
var safeSysctls = []string{
	"kernel.shm_rmid_forced",
	"net.ipv4.ip_local_port_range",
	"net.ipv4.ip_local_reserved_ports",
	"net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.ping_group_range",
	"net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
	"net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_notsent_lowat",
	"net.ipv4.tcp_rmem",
	"net.ipv4.tcp_slow_start_after_idle",
	"net.ipv4.tcp_syncookies",
	"net.ipv4.tcp_wmem",
}

// checkSysctls: only safe sysctls.
func checkSysctls(path *field.Path, sysctls []corev1.Sysctl) field.ErrorList {
	var errs field.ErrorList
	for i, s := range sysctls {
		if !slices.Contains(safeSysctls, s.Name) {
			errs = append(errs, field.Forbidden(path.Index(i).Child("name"), fmt.Sprintf(
				"%q is not a safe sysctl: agent pods set only those of the baseline Pod Security Standard (%s)",
				s.Name, strings.Join(safeSysctls, ", "))))
		}
	}
	return errs
}

// checkProbeHosts: a container's probes and lifecycle hooks reach the pod
// itself, not another host in the kubelet's name (baseline Pod Security
// Standard).
func checkProbeHosts(c container) field.ErrorList {
	var errs field.ErrorList
	const msg = "agent probes and lifecycle hooks reach only the pod itself: leave host empty"
	check := func(path *field.Path, http *corev1.HTTPGetAction, tcp *corev1.TCPSocketAction) {
		if http != nil && http.Host != "" {
			errs = append(errs, field.Forbidden(path.Child("httpGet", "host"), msg))
		}
		if tcp != nil && tcp.Host != "" {
			errs = append(errs, field.Forbidden(path.Child("tcpSocket", "host"), msg))
		}
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
	}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}} {
		if p.probe != nil {
			check(c.path.Child(p.name), p.probe.HTTPGet, p.probe.TCPSocket)
		}
	}
	if l := c.Lifecycle; l != nil {
		for _, h := range []struct {
			name    string
			handler *corev1.LifecycleHandler
		}{{"postStart", l.PostStart}, {"preStop", l.PreStop}} {
			if h.handler != nil {
				check(c.path.Child("lifecycle", h.name), h.handler.HTTPGet, h.handler.TCPSocket)
			}
		}
	}
	return errs
}

// checkPodCredentials: no credential the kubelet mints for the pod: a
// projected ServiceAccount token (of any audience: a cloud's token exchange
// accepts one) or a pod certificate would live outside the lease ledger,
// uncapped, unaudited and unrevoked.
func checkPodCredentials(spec *corev1.PodSpec) field.ErrorList {
	var errs field.ErrorList
	for i, v := range spec.Volumes {
		if v.Projected == nil {
			continue
		}
		sources := podSpecPath.Child("volumes").Index(i).Child("projected", "sources")
		for j, src := range v.Projected.Sources {
			if src.ServiceAccountToken != nil {
				errs = append(errs, field.Forbidden(sources.Index(j).Child("serviceAccountToken"),
					"agent pods carry no ServiceAccount token; their credentials are leases Custos issues (spec.credentials)"))
			}
			if src.PodCertificate != nil {
				errs = append(errs, field.Forbidden(sources.Index(j).Child("podCertificate"),
					"agent pods carry no pod certificate: credentials are leases Custos issues (spec.credentials)"))
			}
		}
	}
	return errs
}

// checkNodeName: a new agent pod is placed by the scheduler, which holds it
// to the boundary's regions (checkRegionAffinity). Checked on create only:
// a running pod has the node the scheduler bound it to.
func checkNodeName(spec *corev1.PodSpec) field.ErrorList {
	if spec.NodeName == "" {
		return nil
	}
	return field.ErrorList{field.Forbidden(podSpecPath.Child("nodeName"),
		"agent pods are placed by the scheduler, inside the DataBoundary's regions; spec.nodeName bypasses it")}
}

// checkCustosLabels: an agent pod carries every label Custos puts on its
// agent's pods, with the agent's values: its NetworkPolicy selects pods by
// managed-by, and the UID tells them from the pods of an earlier agent of
// the same name. On an update (old set) only labels that change are
// checked.
func checkCustosLabels(old, pod *corev1.Pod, agent *custosv1alpha1.Agent) field.ErrorList {
	var errs field.ErrorList
	labels := field.NewPath("metadata", "labels")
	for _, l := range []struct {
		key, want, missing, wrong string
	}{{
		custosv1alpha1.ManagedByLabel, custosv1alpha1.ManagedByValue,
		fmt.Sprintf("pods of agent %s carry %s=%s: the agent's NetworkPolicy selects its pods by it",
			agent.Name, custosv1alpha1.ManagedByLabel, custosv1alpha1.ManagedByValue),
		fmt.Sprintf("is not %s: pods of agent %s carry %s=%s: the agent's NetworkPolicy selects its pods by it",
			custosv1alpha1.ManagedByValue, agent.Name, custosv1alpha1.ManagedByLabel, custosv1alpha1.ManagedByValue),
	}, {
		custosv1alpha1.AgentUIDLabel, string(agent.UID),
		fmt.Sprintf("pods of agent %s carry its UID (%s): it tells them from the pods of an earlier agent of the same name", agent.Name, agent.UID),
		fmt.Sprintf("is not the UID of agent %s (%s): a pod of an earlier agent of the same name, or a look-alike, is not this agent's", agent.Name, agent.UID),
	}} {
		got, ok := pod.Labels[l.key]
		if old != nil {
			if was, had := old.Labels[l.key]; had == ok && was == got {
				continue
			}
		}
		switch {
		case !ok:
			errs = append(errs, field.Required(labels.Key(l.key), l.missing))
		case got != l.want:
			errs = append(errs, field.Forbidden(labels.Key(l.key), fmt.Sprintf("%q %s", got, l.wrong)))
		}
	}
	return errs
}

// secretRef is a Secret a pod references, and where.
type secretRef struct {
	path *field.Path
	name string
}

// secretRefsOf lists the Secrets spec references to read: as a volume, a
// projected source, a CSI driver's secret, an environment variable or
// everything in one as environment. Image pull secrets are the kubelet's,
// never the containers'.
func secretRefsOf(spec *corev1.PodSpec) []secretRef {
	var refs []secretRef
	for i, v := range spec.Volumes {
		path := podSpecPath.Child("volumes").Index(i)
		if v.Secret != nil {
			refs = append(refs, secretRef{path.Child("secret", "secretName"), v.Secret.SecretName})
		}
		if v.Projected != nil {
			for j, src := range v.Projected.Sources {
				if src.Secret != nil {
					refs = append(refs, secretRef{path.Child("projected", "sources").Index(j).Child("secret", "name"), src.Secret.Name})
				}
			}
		}
		if v.CSI != nil && v.CSI.NodePublishSecretRef != nil {
			refs = append(refs, secretRef{path.Child("csi", "nodePublishSecretRef", "name"), v.CSI.NodePublishSecretRef.Name})
		}
	}
	for _, c := range containersOf(spec) {
		for k, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				refs = append(refs, secretRef{c.path.Child("env").Index(k).Child("valueFrom", "secretKeyRef", "name"), e.ValueFrom.SecretKeyRef.Name})
			}
		}
		for k, e := range c.EnvFrom {
			if e.SecretRef != nil {
				refs = append(refs, secretRef{c.path.Child("envFrom").Index(k).Child("secretRef", "name"), e.SecretRef.Name})
			}
		}
	}
	return refs
}

// checkSecrets: the only Secrets an agent pod reads are its agent's
// leases, one per credential of spec.credentials, which Custos issues,
// renews and revokes. On an update (old set) only references that change
// are checked: a running pod's volumes and environment cannot, but an
// ephemeral container can be added.
func checkSecrets(old, pod *corev1.Pod, agent *custosv1alpha1.Agent) field.ErrorList {
	leases := make([]string, 0, len(agent.Spec.Credentials))
	for _, c := range agent.Spec.Credentials {
		leases = append(leases, identity.LeaseSecretName(agent.Name, c.Name))
	}
	had := map[string]bool{}
	if old != nil {
		for _, r := range secretRefsOf(&old.Spec) {
			had[r.path.String()+"="+r.name] = true
		}
	}
	var errs field.ErrorList
	for _, r := range secretRefsOf(&pod.Spec) {
		if slices.Contains(leases, r.name) || had[r.path.String()+"="+r.name] {
			continue
		}
		errs = append(errs, field.Forbidden(r.path, notALease(agent, r.name, leases)))
	}
	return errs
}

// notALease says why Secret name is not one of agent's leases.
func notALease(agent *custosv1alpha1.Agent, name string, leases []string) string {
	if of, credential, ok := identity.LeaseOf(name); ok {
		if of != agent.Name {
			return fmt.Sprintf("Secret %q is the lease of agent %s's credential %s: agent pods hold only their own agent's leases", name, of, credential)
		}
		return fmt.Sprintf("Secret %q is not a lease of agent %s: it has no credential %q in spec.credentials", name, agent.Name, credential)
	}
	own := "it has none: no spec.credentials"
	if len(leases) > 0 {
		own = strings.Join(leases, ", ")
	}
	return fmt.Sprintf("Secret %q is not one of agent %s's lease Secrets (%s): agent pods hold only credentials Custos issues, renews and revokes (spec.credentials)",
		name, agent.Name, own)
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
