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
	"encoding/json"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/identity"
	"github.com/custos-dev/custos/internal/workload"
)

const (
	testNS     = "finance-agents"
	testTenant = "acme-finance"
	testAgent  = "reconciler"
	testImage  = "registry.acme.example/agents/invoice-reconciler:1.4.2"
	testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	// testPinned is testImage's verified digest, as the agent's pods run it.
	testPinned = "registry.acme.example/agents/invoice-reconciler@" + testDigest
)

var testScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(custosv1alpha1.AddToScheme(s))
	return s
}()

func testBoundary() *custosv1alpha1.DataBoundary {
	return &custosv1alpha1.DataBoundary{
		ObjectMeta: metav1.ObjectMeta{Name: testTenant},
		Spec: custosv1alpha1.DataBoundarySpec{
			Tenant:            testTenant,
			NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{custosv1alpha1.TenantLabel: testTenant}},
			Regions:           []string{"eu-west-1", "eu-central-1"},
		},
	}
}

func testAgentObject() *custosv1alpha1.Agent {
	return &custosv1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Name: testAgent, Namespace: testNS, UID: "4c1c1e4e-0000-4000-8000-000000000001",
			Labels: map[string]string{custosv1alpha1.TenantLabel: testTenant}},
		Spec:   custosv1alpha1.AgentSpec{Image: testImage},
		Status: custosv1alpha1.AgentStatus{Image: &custosv1alpha1.ImageStatus{Reference: testImage, Digest: testDigest}},
	}
}

// agentPod is the pod workload.Deployment renders for the test agent, as
// the ReplicaSet controller would create it: Custos's own pods are the
// first thing the guard must let through.
func agentPod(t testing.TB) *corev1.Pod {
	t.Helper()
	agent := testAgentObject()
	labels := map[string]string{
		custosv1alpha1.AgentLabel:     agent.Name,
		custosv1alpha1.AgentUIDLabel:  string(agent.UID),
		custosv1alpha1.TenantLabel:    testTenant,
		custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue,
	}
	ac := workload.Deployment(workload.Params{
		Name: "agent-" + agent.Name, Namespace: testNS,
		ServiceAccount: identity.ServiceAccountName(agent.Name),
		Selector:       labels, PodLabels: labels,
		Image: workload.VerifiedImage(agent), Replicas: 1,
		Regions:    testBoundary().Spec.Regions,
		ConfigHash: "0123456789abcdef",
	})
	data, err := json.Marshal(ac)
	if err != nil {
		t.Fatal(err)
	}
	d := &appsv1.Deployment{}
	if err := json.Unmarshal(data, d); err != nil {
		t.Fatal(err)
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-reconciler-abc12", Namespace: testNS,
			Labels: d.Spec.Template.Labels, Annotations: d.Spec.Template.Annotations},
		Spec: d.Spec.Template.Spec,
	}
}

// fields lists errs as "field: type: detail" lines.
func fields(errs field.ErrorList) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Field+": "+e.ErrorBody())
	}
	return out
}

func regionTerm(values ...string) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
		{Key: workload.RegionLabel, Operator: corev1.NodeSelectorOpIn, Values: values},
	}}
}

func TestInjectRegionAffinity(t *testing.T) {
	region := corev1.NodeSelectorRequirement{Key: workload.RegionLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{"eu-central-1", "eu-west-1"}}
	gpu := corev1.NodeSelectorRequirement{Key: "acme.example/gpu", Operator: corev1.NodeSelectorOpExists}
	zone := corev1.NodeSelectorRequirement{Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"eu-west-1a"}}
	hostname := corev1.NodeSelectorRequirement{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"node-1"}}
	required := func(terms ...corev1.NodeSelectorTerm) *corev1.Affinity {
		return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
	}
	preferred := []corev1.PreferredSchedulingTerm{{Weight: 1, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{gpu}}}}
	tests := []struct {
		name string
		in   *corev1.Affinity
		want *corev1.Affinity
	}{
		{"no affinity", nil, required(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{region}})},
		{"only pod affinity and preferences are kept",
			&corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{}, NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: preferred}},
			&corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{}, NodeAffinity: &corev1.NodeAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: preferred,
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
					{MatchExpressions: []corev1.NodeSelectorRequirement{region}}}}}}},
		{"required selector without terms", required(), required(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{region}})},
		{"a term without region gets one, after its own expressions",
			required(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{gpu}}),
			required(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{gpu, region}})},
		{"a term of fields only gets one",
			required(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{hostname}}),
			required(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{hostname}, MatchExpressions: []corev1.NodeSelectorRequirement{region}})},
		{"a region outside the boundary is replaced in place",
			required(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: workload.RegionLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{"us-east-1"}}, zone}}),
			required(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{region, zone}})},
		{"every region expression of a term is replaced by one",
			required(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: workload.RegionLabel, Operator: corev1.NodeSelectorOpNotIn, Values: []string{"us-east-1"}}, gpu,
				{Key: workload.RegionLabel, Operator: corev1.NodeSelectorOpExists}}}),
			required(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{region, gpu}})},
		{"every term is confined, and an empty one left matching nothing",
			required(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{gpu}}, corev1.NodeSelectorTerm{}, regionTerm("us-east-1")),
			required(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{gpu, region}}, corev1.NodeSelectorTerm{},
				corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{region}})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			pod := &corev1.Pod{Spec: corev1.PodSpec{Affinity: tc.in}}
			// Unsorted, as a boundary may list them.
			injectRegionAffinity(pod, []string{"eu-west-1", "eu-central-1"})
			g.Expect(pod.Spec.Affinity).To(Equal(tc.want))
			g.Expect(checkRegionAffinity(&pod.Spec, testBoundary())).To(BeEmpty())
		})
	}
}

func TestInjectRegionAffinityLeavesCustosPodsAlone(t *testing.T) {
	g := NewWithT(t)
	pod := agentPod(t)
	before := pod.DeepCopy()
	injectRegionAffinity(pod, testBoundary().Spec.Regions)
	g.Expect(pod).To(Equal(before), "a pod that already carries the regions costs no patch")
}

func TestCheckRegionAffinity(t *testing.T) {
	g := NewWithT(t)
	b := testBoundary()
	check := func(a *corev1.Affinity) []string { return fields(checkRegionAffinity(&corev1.PodSpec{Affinity: a}, b)) }
	required := func(terms ...corev1.NodeSelectorTerm) *corev1.Affinity {
		return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
	}
	path := "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
	g.Expect(check(nil)).To(ConsistOf(HavePrefix(path + ": Required value: agent pods are placed only in the regions of DataBoundary \"acme-finance\"")))
	g.Expect(check(required(regionTerm("eu-west-1")))).To(BeEmpty(), "a subset of the regions is fine")
	g.Expect(check(required(regionTerm("eu-west-1"), regionTerm("us-east-1")))).To(ConsistOf(HavePrefix(path + ".nodeSelectorTerms[1]: Forbidden")))
	g.Expect(check(required(regionTerm()))).To(ConsistOf(HavePrefix(path + ".nodeSelectorTerms[0]: Forbidden")))
	g.Expect(check(required(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
		{Key: workload.RegionLabel, Operator: corev1.NodeSelectorOpNotIn, Values: []string{"us-east-1"}}}}))).To(HaveLen(1), "NotIn confines nothing")
	g.Expect(check(required(corev1.NodeSelectorTerm{}, regionTerm("eu-central-1")))).To(BeEmpty(), "an empty term matches no node")
}

func TestCheckPod(t *testing.T) {
	c0 := "spec.containers[0]"
	tests := []struct {
		name   string
		mutate func(p *corev1.Pod, a *custosv1alpha1.Agent)
		want   []string // prefixes of "field: type: detail", all of them
	}{
		{"Custos's own pod", func(*corev1.Pod, *custosv1alpha1.Agent) {}, nil},
		{"security settings from the pod level", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			p.Spec.Containers[0].SecurityContext.RunAsNonRoot = nil
			p.Spec.Containers[0].SecurityContext.SeccompProfile = nil
			p.Spec.SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("agent.json")}
		}, nil},
		{"no security context at all", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			p.Spec.SecurityContext = nil
			p.Spec.Containers[0].SecurityContext = nil
		}, []string{
			c0 + ".securityContext.allowPrivilegeEscalation: Required value",
			c0 + ".securityContext.runAsNonRoot: Required value",
			c0 + ".securityContext.seccompProfile: Required value",
			c0 + ".securityContext.capabilities.drop: Required value: must drop ALL",
		}},
		{"host access", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			p.Spec.HostNetwork, p.Spec.HostPID, p.Spec.HostIPC = true, true, true
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 80}}
			p.Spec.SecurityContext.WindowsOptions = &corev1.WindowsSecurityContextOptions{HostProcess: ptr.To(true)}
		}, []string{
			"spec.hostNetwork: Forbidden", "spec.hostPID: Forbidden", "spec.hostIPC: Forbidden",
			"spec.volumes[1].hostPath: Forbidden", c0 + ".ports[0].hostPort: Forbidden",
			"spec.securityContext.windowsOptions.hostProcess: Forbidden",
		}},
		{"privileges", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			sc := p.Spec.Containers[0].SecurityContext
			sc.Privileged, sc.AllowPrivilegeEscalation = ptr.To(true), ptr.To(true)
			sc.RunAsNonRoot, sc.RunAsUser = ptr.To(false), ptr.To[int64](0)
			sc.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"NET_RAW"}, Add: []corev1.Capability{"NET_BIND_SERVICE", "SYS_ADMIN"}}
			sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
			sc.ProcMount = ptr.To(corev1.UnmaskedProcMount)
			p.Spec.SecurityContext.RunAsUser = ptr.To[int64](0)
		}, []string{
			c0 + ".securityContext.privileged: Forbidden",
			c0 + ".securityContext.allowPrivilegeEscalation: Forbidden",
			c0 + ".securityContext.runAsNonRoot: Forbidden",
			c0 + ".securityContext.runAsUser: Forbidden",
			"spec.securityContext.runAsUser: Forbidden",
			c0 + ".securityContext.seccompProfile.type: Forbidden",
			c0 + ".securityContext.capabilities.drop: Required value",
			c0 + ".securityContext.capabilities.add[0]: Forbidden: agent containers add no capabilities (NET_BIND_SERVICE)",
			c0 + ".securityContext.capabilities.add[1]: Forbidden",
			c0 + ".securityContext.procMount: Forbidden",
		}},
		{"identity, image and tenant of another", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			p.Spec.ServiceAccountName = "default"
			p.Spec.AutomountServiceAccountToken = nil
			p.Spec.Containers[0].Image = "registry.acme.example/agents/invoice-reconciler:1.4.3"
			p.Labels[custosv1alpha1.TenantLabel] = "acme-payments"
		}, []string{
			"spec.serviceAccountName: Forbidden: pods of agent reconciler run only as ServiceAccount agent-reconciler",
			"spec.automountServiceAccountToken: Required value: must be set to false",
			c0 + ".image: Forbidden: pods of agent reconciler run only its verified image, pinned by digest: " + testPinned,
			`metadata.labels[custos.dev/tenant]: Forbidden: "acme-payments" is not the tenant of agent reconciler ("acme-finance")`,
		}},
		{"every kind of container", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			init := p.Spec.Containers[0].DeepCopy()
			init.Name, init.Image = "init", "docker.io/library/busybox"
			p.Spec.InitContainers = []corev1.Container{*init}
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debug", Image: testPinned, SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}}
		}, []string{
			"spec.initContainers[0].image: Forbidden",
			"spec.ephemeralContainers[0].securityContext.privileged: Forbidden",
			"spec.ephemeralContainers[0].securityContext.allowPrivilegeEscalation: Required value",
			"spec.ephemeralContainers[0].securityContext.capabilities.drop: Required value",
		}},
		{"a verified agent runs only its digest, never the tag", func(p *corev1.Pod, a *custosv1alpha1.Agent) {
			p.Spec.Containers[0].Image = testImage
		}, []string{c0 + ".image: Forbidden: pods of agent reconciler run only its verified image, pinned by digest: " + testPinned}},
		{"nor another digest", func(p *corev1.Pod, a *custosv1alpha1.Agent) {
			p.Spec.Containers[0].Image = "registry.acme.example/agents/invoice-reconciler@sha256:" + strings.Repeat("f", 64)
		}, []string{c0 + ".image: Forbidden: pods of agent reconciler run only its verified image, pinned by digest: " + testPinned}},
		{"an agent without a verified image runs nothing", func(p *corev1.Pod, a *custosv1alpha1.Agent) {
			a.Status.Image = nil
			a.Status.Conditions = []metav1.Condition{{Type: custosv1alpha1.ImageVerifiedCondition, Status: metav1.ConditionFalse,
				Reason: custosv1alpha1.UntrustedSignerReason, Message: "spec.image is not signed by a signer the DataBoundary trusts"}}
		}, []string{c0 + ".image: Forbidden: agent reconciler has no verified image (ImageVerified False, UntrustedSigner: spec.image is not signed by a signer the DataBoundary trusts): its pods run only an image digest Custos verified"}},
		{"outside the regions", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			p.Spec.Affinity = nil
		}, []string{"spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution: Required value"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			pod, agent := agentPod(t), testAgentObject()
			tc.mutate(pod, agent)
			got := fields(checkPod(nil, pod, agent, testBoundary()))
			matchers := make([]any, len(tc.want))
			for i, w := range tc.want {
				matchers[i] = HavePrefix(w)
			}
			g.Expect(got).To(ConsistOf(matchers...))
		})
	}
}

// guard is the pod guard served from a fake client holding the test
// agent, its namespace and boundary, and objs.
func guard(objs ...client.Object) (*PodDefaulter, *PodValidator) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNS, Labels: map[string]string{custosv1alpha1.TenantLabel: testTenant}}}
	c := fake.NewClientBuilder().WithScheme(testScheme).
		WithObjects(append([]client.Object{ns, testBoundary(), testAgentObject()}, objs...)...).Build()
	return &PodDefaulter{Client: c}, &PodValidator{Client: c}
}

// inRequest is ctx as the handlers pass it: with the admission request.
func inRequest(op admissionv1.Operation, namespace string) context.Context {
	return admission.NewContextWithRequest(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: op, Namespace: namespace,
	}})
}

func TestPodGuardMutatesThenAdmits(t *testing.T) {
	g := NewWithT(t)
	d, v := guard()
	pod := agentPod(t)
	// As the ReplicaSet controller sends it: no namespace, no name yet.
	pod.Namespace, pod.Name, pod.GenerateName = "", "", "agent-reconciler-"
	delete(pod.Labels, custosv1alpha1.TenantLabel)
	pod.Spec.Affinity = nil
	ctx := inRequest(admissionv1.Create, testNS)
	g.Expect(d.Default(ctx, pod)).To(Succeed())
	g.Expect(pod.Labels).To(HaveKeyWithValue(custosv1alpha1.TenantLabel, testTenant))
	g.Expect(pod.Spec.Affinity).To(Equal(agentPod(t).Spec.Affinity))
	_, err := v.ValidateCreate(ctx, pod)
	g.Expect(err).NotTo(HaveOccurred())
}

func TestPodGuardLeavesWhatItCannotPlace(t *testing.T) {
	g := NewWithT(t)
	d, v := guard()
	pod := agentPod(t)
	pod.Labels[custosv1alpha1.AgentLabel] = "ghost"
	delete(pod.Labels, custosv1alpha1.TenantLabel)
	pod.Spec.Affinity = nil
	before := pod.DeepCopy()
	ctx := inRequest(admissionv1.Create, testNS)
	g.Expect(d.Default(ctx, pod)).To(Succeed())
	g.Expect(pod).To(Equal(before), "a pod of no agent is not mutated")
	_, err := v.ValidateCreate(ctx, pod)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring(`metadata.labels[custos.dev/agent]: Forbidden: no Agent "ghost" exists in namespace finance-agents`))
}

func TestPodGuardOnUpdate(t *testing.T) {
	g := NewWithT(t)
	d, v := guard()
	old := agentPod(t)
	ctx := inRequest(admissionv1.Update, testNS)

	// Affinity is immutable: an update never touches it, the label is put back.
	pod := old.DeepCopy()
	delete(pod.Labels, custosv1alpha1.TenantLabel)
	pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0] = regionTerm("us-east-1")
	g.Expect(d.Default(ctx, pod)).To(Succeed())
	g.Expect(pod.Labels).To(HaveKeyWithValue(custosv1alpha1.TenantLabel, testTenant))
	g.Expect(pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0]).To(Equal(regionTerm("us-east-1")))

	// The agent label is what brings the pod here: it stays.
	pod = old.DeepCopy()
	delete(pod.Labels, custosv1alpha1.AgentLabel)
	_, err := v.ValidateUpdate(ctx, old, pod)
	g.Expect(err).To(MatchError(ContainSubstring("metadata.labels[custos.dev/agent]: Forbidden: the agent label is immutable")))

	pod = old.DeepCopy()
	pod.Spec.Containers[0].Image = "docker.io/evil/agent:1"
	_, err = v.ValidateUpdate(ctx, old, pod)
	g.Expect(err).To(MatchError(ContainSubstring("spec.containers[0].image: Forbidden")))

	// A pod admitted with the digest verified then can still be relabelled
	// after its agent verified another (the rollout replaces it anyway);
	// changing its image to the old digest again is refused.
	previous := "registry.acme.example/agents/invoice-reconciler@sha256:" + strings.Repeat("e", 64)
	running := old.DeepCopy()
	running.Spec.Containers[0].Image = previous
	pod = running.DeepCopy()
	pod.Labels["acme.example/team"] = "finance"
	_, err = v.ValidateUpdate(ctx, running, pod)
	g.Expect(err).NotTo(HaveOccurred())
	pod = old.DeepCopy()
	pod.Spec.Containers[0].Image = previous
	_, err = v.ValidateUpdate(ctx, old, pod)
	g.Expect(err).To(MatchError(ContainSubstring("spec.containers[0].image: Forbidden: pods of agent reconciler run only its verified image")))

	// A terminating pod can lose its finalizers whatever became of its agent.
	gone := old.DeepCopy()
	gone.Labels[custosv1alpha1.AgentLabel] = "ghost"
	gone.DeletionTimestamp, gone.Finalizers = ptr.To(metav1.Now()), []string{"acme.example/keep"}
	pod = gone.DeepCopy()
	pod.Finalizers = nil
	_, err = v.ValidateUpdate(ctx, gone, pod)
	g.Expect(err).NotTo(HaveOccurred())

	// Pods without the label are not agent pods.
	plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: testNS}, Spec: corev1.PodSpec{HostNetwork: true}}
	_, err = v.ValidateUpdate(ctx, plain, plain.DeepCopy())
	g.Expect(err).NotTo(HaveOccurred())
}

func TestPodGuardRefusesPodsOfDecommissionedAgents(t *testing.T) {
	g := NewWithT(t)
	gone := testAgentObject()
	gone.Name = "retired"
	gone.Spec.Lifecycle.State = custosv1alpha1.LifecycleDecommissioned
	_, v := guard(gone)
	pod := agentPod(t)
	pod.Labels[custosv1alpha1.AgentLabel] = gone.Name
	pod.Spec.ServiceAccountName = identity.ServiceAccountName(gone.Name)
	_, err := v.ValidateCreate(inRequest(admissionv1.Create, testNS), pod)
	g.Expect(err).To(MatchError(ContainSubstring("metadata.labels[custos.dev/agent]: Forbidden: agent retired is Decommissioned")))
}

// FuzzValidatePod: whatever JSON a pod is made of, decoding, mutating and
// validating it against a fixed agent never panics; a pod the mutation
// placed always passes the placement check; and the webhooks' own decode
// path survives it too.
func FuzzValidatePod(f *testing.F) {
	seed, err := json.Marshal(agentPod(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"labels":{"custos.dev/agent":"reconciler"}},"spec":{"containers":[{"name":"a","image":"x","securityContext":{"capabilities":null}}],"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{},{"matchFields":[{"key":"metadata.name","operator":"In"}]}]}}}}}`))
	f.Add([]byte(`{"spec":{"ephemeralContainers":[{"securityContext":{"seccompProfile":{}}}],"initContainers":[{}],"volumes":[{"hostPath":{}}],"securityContext":{"windowsOptions":{}}}}`))
	f.Add([]byte(`{"metadata":{"labels":{"custos.dev/agent":""}},"spec":{"affinity":{"nodeAffinity":{}}}}`))
	f.Add([]byte(`null`))

	agent, b := testAgentObject(), testBoundary()
	d, v := guard()
	mutate := admission.WithDefaulter[*corev1.Pod](testScheme, d)
	validate := admission.WithValidator[*corev1.Pod](testScheme, v)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, op := range []admissionv1.Operation{admissionv1.Create, admissionv1.Update} {
			req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				Operation: op, Namespace: testNS, Object: runtime.RawExtension{Raw: data},
			}}
			if op == admissionv1.Update {
				req.OldObject = runtime.RawExtension{Raw: data}
			}
			mutate.Handle(context.Background(), req)
			validate.Handle(context.Background(), req)
		}

		pod := &corev1.Pod{}
		if err := json.Unmarshal(data, pod); err != nil {
			return
		}
		_ = checkPod(nil, pod, agent, b)
		setTenantLabel(pod, agent)
		injectRegionAffinity(pod, b.Spec.Regions)
		if errs := checkRegionAffinity(&pod.Spec, b); len(errs) > 0 {
			t.Fatalf("placed by injectRegionAffinity, refused by checkRegionAffinity: %v", errs)
		}
		for _, e := range checkPod(nil, pod, agent, b) {
			if strings.HasPrefix(e.Field, "spec.affinity") || (e.Field == tenantPath.String() && e.Type == field.ErrorTypeRequired) {
				t.Fatalf("the mutation left %s: %s", e.Field, e.ErrorBody())
			}
		}
	})
}
