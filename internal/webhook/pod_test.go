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
	"time"

	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/identity"
	"github.com/custos-dev/custos/internal/workload"
	"github.com/custos-dev/custos/test/fixtures"
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
	return fixtures.DataBoundary(testTenant, fixtures.WithRegions("eu-west-1", "eu-central-1"))
}

// testLease is the lease Secret of the test agent's one credential.
const testLease = "agent-" + testAgent + ".ledger-api"

// testAgentObject is the test agent as the Agent reconciler sees it once
// its image is verified: one credential, a pull secret, an environment.
func testAgentObject() *custosv1alpha1.Agent {
	return fixtures.Agent(testNS, testAgent, testTenant,
		fixtures.WithImage(testImage),
		fixtures.WithKubernetesToken("ledger-api", "ledger-api"),
		func(a *custosv1alpha1.Agent) {
			a.UID = "4c1c1e4e-0000-4000-8000-000000000001"
			a.Spec.Runtime.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "acme-registry"}}
			a.Spec.Runtime.Env = []custosv1alpha1.AgentEnvVar{{Name: "LEDGER_URL", Value: "https://ledger.acme.example"}}
			a.Status.Image = &custosv1alpha1.ImageStatus{Reference: testImage, Digest: testDigest}
		})
}

// agentPod is the pod workload.Deployment renders for the test agent, as
// the ReplicaSet controller would create it: Custos's own pods are the
// first thing the guard must let through.
func agentPod(t testing.TB) *corev1.Pod {
	t.Helper()
	return renderAgentPod(t, testAgentObject(), testBoundary().Spec.Regions)
}

// renderAgentPod is the pod of agent's Deployment as the Agent reconciler
// renders it (labels, leases, runtime) for a boundary of regions.
func renderAgentPod(t testing.TB, agent *custosv1alpha1.Agent, regions []string) *corev1.Pod {
	t.Helper()
	labels := map[string]string{
		custosv1alpha1.AgentLabel:     agent.Name,
		custosv1alpha1.AgentUIDLabel:  string(agent.UID),
		custosv1alpha1.TenantLabel:    agent.Labels[custosv1alpha1.TenantLabel],
		custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue,
	}
	var leases []workload.MountedLease
	for _, c := range agent.Spec.Credentials {
		leases = append(leases, workload.MountedLease{Name: c.Name, Secret: identity.LeaseSecretName(agent.Name, c.Name)})
	}
	ac := workload.Deployment(workload.Params{
		Name: "agent-" + agent.Name, Namespace: agent.Namespace,
		ServiceAccount: identity.ServiceAccountName(agent.Name),
		Selector: map[string]string{
			custosv1alpha1.AgentLabel:     agent.Name,
			custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue,
		},
		PodLabels: labels,
		Image:     workload.VerifiedImage(agent), Replicas: 1,
		Runtime:    agent.Spec.Runtime,
		Regions:    regions,
		ConfigHash: "0123456789abcdef",
		Leases:     leases,
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
		ObjectMeta: metav1.ObjectMeta{Name: "agent-" + agent.Name + "-abc12", Namespace: agent.Namespace,
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
			"spec.volumes[2].hostPath: Forbidden", c0 + ".ports[0].hostPort: Forbidden",
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
		{"placed on a node by name", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			p.Spec.NodeName = "node-us-east-1a"
		}, []string{"spec.nodeName: Forbidden: agent pods are placed by the scheduler, inside the DataBoundary's regions; spec.nodeName bypasses it"}},
		{"volume types outside the restricted standard", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			p.Spec.Volumes = append(p.Spec.Volumes,
				corev1.Volume{Name: "nfs", VolumeSource: corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{Server: "nfs.acme.example", Path: "/"}}},
				corev1.Volume{Name: "git", VolumeSource: corev1.VolumeSource{GitRepo: &corev1.GitRepoVolumeSource{Repository: "https://git.acme.example/x"}}},
				corev1.Volume{Name: "tools", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "docker.io/library/busybox:1.37"}}},
				corev1.Volume{Name: "future"},
				// Allowed ones.
				corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
				corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}},
				corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}},
				corev1.Volume{Name: "csi", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "ebs.csi.aws.com"}}},
				corev1.Volume{Name: "meta", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{}}},
			)
		}, []string{
			"spec.volumes[2].nfs: Forbidden: agent pods mount only configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected and secret volumes (the restricted Pod Security Standard)",
			"spec.volumes[3].gitRepo: Forbidden: agent pods mount only configMap",
			"spec.volumes[4].image: Forbidden: an image volume mounts content Custos did not verify",
			"spec.volumes[5]: Forbidden: no volume source the pod guard knows",
		}},
		{"SELinux options of an unconfined or custom context", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			p.Spec.SecurityContext.SELinuxOptions = &corev1.SELinuxOptions{Type: "spc_t", User: "system_u", Role: "system_r"}
			// A confined type with a level of its own is fine.
			p.Spec.Containers[0].SecurityContext.SELinuxOptions = &corev1.SELinuxOptions{Type: "container_t", Level: "s0:c123,c456"}
			init := p.Spec.Containers[0].DeepCopy()
			init.Name = "init"
			init.SecurityContext.SELinuxOptions = &corev1.SELinuxOptions{Type: "unconfined_t"}
			p.Spec.InitContainers = []corev1.Container{*init}
		}, []string{
			`spec.securityContext.seLinuxOptions.type: Forbidden: "spc_t" is not a confined container type: agent containers run as container_t, container_init_t, container_kvm_t, container_engine_t, or leave it empty`,
			"spec.securityContext.seLinuxOptions.user: Forbidden: agent containers set no SELinux user",
			"spec.securityContext.seLinuxOptions.role: Forbidden: agent containers set no SELinux role",
			`spec.initContainers[0].securityContext.seLinuxOptions.type: Forbidden: "unconfined_t" is not a confined container type`,
		}},
		{"AppArmor unconfined, by field or annotation", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			p.Spec.SecurityContext.AppArmorProfile = &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}
			p.Spec.Containers[0].SecurityContext.AppArmorProfile = &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeLocalhost, LocalhostProfile: ptr.To("agent")}
			p.Annotations["container.apparmor.security.beta.kubernetes.io/agent"] = "unconfined"
			p.Annotations["container.apparmor.security.beta.kubernetes.io/init"] = "runtime/default"
			p.Annotations["container.apparmor.security.beta.kubernetes.io/sidecar"] = "localhost/agent"
		}, []string{
			`spec.securityContext.appArmorProfile.type: Forbidden: "Unconfined" is not allowed: must be RuntimeDefault or Localhost; agent containers are never unconfined`,
			`metadata.annotations[container.apparmor.security.beta.kubernetes.io/agent]: Forbidden: "unconfined" is not allowed: must be runtime/default or localhost/<profile>`,
		}},
		{"AppArmor of a container", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			p.Spec.Containers[0].SecurityContext.AppArmorProfile = &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}
		}, []string{c0 + `.securityContext.appArmorProfile.type: Forbidden: "Unconfined" is not allowed`}},
		{"unsafe sysctls", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			p.Spec.SecurityContext.Sysctls = []corev1.Sysctl{
				{Name: "net.ipv4.ip_local_port_range", Value: "1024 65535"},
				{Name: "kernel.msgmax", Value: "65536"},
				{Name: "net.core.somaxconn", Value: "1024"},
				{Name: "net.ipv4.tcp_keepalive_time", Value: "60"},
			}
		}, []string{
			`spec.securityContext.sysctls[1].name: Forbidden: "kernel.msgmax" is not a safe sysctl: agent pods set only those of the baseline Pod Security Standard (kernel.shm_rmid_forced, `,
			`spec.securityContext.sysctls[2].name: Forbidden: "net.core.somaxconn" is not a safe sysctl`,
		}},
		{"probes and hooks aimed at another host", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			c := &p.Spec.Containers[0]
			c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Host: "169.254.169.254", Path: "/"}}}
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready"}}}
			c.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Host: "10.0.0.1"}}}
			c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Host: "kubernetes.default"}}}
		}, []string{
			c0 + ".livenessProbe.httpGet.host: Forbidden: agent probes and lifecycle hooks reach only the pod itself",
			c0 + ".startupProbe.tcpSocket.host: Forbidden",
			c0 + ".lifecycle.preStop.httpGet.host: Forbidden",
		}},
		{"credentials the kubelet mints", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "aws", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{
					{DownwardAPI: &corev1.DownwardAPIProjection{}},
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "sts.amazonaws.com", ExpirationSeconds: ptr.To[int64](86400), Path: "token"}},
					{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{Name: ptr.To("acme-roots"), Path: "roots.pem"}},
					{PodCertificate: &corev1.PodCertificateProjection{SignerName: "acme.example/agents", KeyType: "ED25519", CredentialBundlePath: "bundle.pem"}},
				},
			}}})
		}, []string{
			"spec.volumes[2].projected.sources[1].serviceAccountToken: Forbidden: agent pods carry no ServiceAccount token; their credentials are leases Custos issues (spec.credentials)",
			"spec.volumes[2].projected.sources[3].podCertificate: Forbidden: agent pods carry no pod certificate",
		}},
		{"Secrets that are not its leases", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			c := &p.Spec.Containers[0]
			c.Env = append(c.Env,
				corev1.EnvVar{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: testLease}, Key: "token"}}},
				corev1.EnvVar{Name: "OLD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "agent-reconciler.retired-api"}, Key: "token"}}})
			c.EnvFrom = []corev1.EnvFromSource{
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}},
				{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "ledger-db"}}},
			}
			p.Spec.Volumes = append(p.Spec.Volumes,
				corev1.Volume{Name: "other", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "agent-payments.bank-api"}}},
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: testLease}}},
				}}}},
				corev1.Volume{Name: "csi", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "secrets-store.csi.k8s.io",
					NodePublishSecretRef: &corev1.LocalObjectReference{Name: "vault-creds"}}}},
				corev1.Volume{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "ingress-tls"}}},
			)
			init := p.Spec.Containers[0].DeepCopy()
			init.Name, init.Env, init.EnvFrom = "init", nil, []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "agent-invoice.reconciler-ledger-api"}}}}
			p.Spec.InitContainers = []corev1.Container{*init}
			// The registry credentials are the kubelet's, never the agent's.
			p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: "other-registry"})
		}, []string{
			c0 + `.env[2].valueFrom.secretKeyRef.name: Forbidden: Secret "agent-reconciler.retired-api" is not a lease of agent reconciler: it has no credential "retired-api" in spec.credentials`,
			c0 + `.envFrom[1].secretRef.name: Forbidden: Secret "ledger-db" is not one of agent reconciler's lease Secrets (agent-reconciler.ledger-api): agent pods hold only credentials Custos issues, renews and revokes (spec.credentials)`,
			`spec.volumes[2].projected.sources[0].secret.name: Forbidden: Secret "agent-payments.bank-api" is the lease of agent payments's credential bank-api: agent pods hold only their own agent's leases`,
			`spec.volumes[3].csi.nodePublishSecretRef.name: Forbidden: Secret "vault-creds" is not one of agent reconciler's lease Secrets`,
			`spec.volumes[4].secret.secretName: Forbidden: Secret "ingress-tls" is not one of agent reconciler's lease Secrets`,
			`spec.initContainers[0].envFrom[0].secretRef.name: Forbidden: Secret "agent-invoice.reconciler-ledger-api" is the lease of agent invoice's credential reconciler-ledger-api`,
		}},
		{"an agent without credentials reads no Secret", func(p *corev1.Pod, a *custosv1alpha1.Agent) {
			a.Spec.Credentials = nil
		}, []string{`spec.volumes[1].secret.secretName: Forbidden: Secret "agent-reconciler.ledger-api" is not a lease of agent reconciler: it has no credential "ledger-api" in spec.credentials`}},
		{"a debug container's Secret", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debug", Image: testPinned, SecurityContext: p.Spec.Containers[0].SecurityContext.DeepCopy(),
				EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "ledger-db"}}}},
			}}}
		}, []string{`spec.ephemeralContainers[0].envFrom[0].secretRef.name: Forbidden: Secret "ledger-db"`}},
		{"without Custos's labels", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			delete(p.Labels, custosv1alpha1.ManagedByLabel)
			delete(p.Labels, custosv1alpha1.AgentUIDLabel)
		}, []string{
			"metadata.labels[app.kubernetes.io/managed-by]: Required value: pods of agent reconciler carry app.kubernetes.io/managed-by=custos: the agent's NetworkPolicy selects its pods by it",
			"metadata.labels[custos.dev/agent-uid]: Required value: pods of agent reconciler carry its UID (4c1c1e4e-0000-4000-8000-000000000001)",
		}},
		{"labels of another agent of the same name, or a look-alike", func(p *corev1.Pod, _ *custosv1alpha1.Agent) {
			p.Labels[custosv1alpha1.ManagedByLabel] = "helm"
			p.Labels[custosv1alpha1.AgentUIDLabel] = "0d1d0000-0000-4000-8000-000000000000"
		}, []string{
			`metadata.labels[app.kubernetes.io/managed-by]: Forbidden: "helm" is not custos: pods of agent reconciler carry app.kubernetes.io/managed-by=custos: the agent's NetworkPolicy selects its pods by it`,
			`metadata.labels[custos.dev/agent-uid]: Forbidden: "0d1d0000-0000-4000-8000-000000000000" is not the UID of agent reconciler (4c1c1e4e-0000-4000-8000-000000000001): a pod of an earlier agent of the same name, or a look-alike, is not this agent's`,
		}},
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

func TestCheckAgentActive(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { return ptr.To(metav1.NewTime(now.Add(d))) }
	tests := []struct {
		name   string
		mutate func(a *custosv1alpha1.Agent)
		want   string // the whole "field: type: detail", or "" for none
	}{
		{"Active", func(*custosv1alpha1.Agent) {}, ""},
		{"Active, expiring later", func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.ExpiresAt = at(time.Second) }, ""},
		{"Suspended by its owner", func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended },
			"metadata.labels[custos.dev/agent]: Forbidden: agent reconciler is Suspended: it runs no pods until it is Active again"},
		{"expired this instant", func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.ExpiresAt = at(0) },
			"metadata.labels[custos.dev/agent]: Forbidden: agent reconciler expired at 2026-03-01T12:00:00Z (spec.lifecycle.expiresAt) and is Suspended: it runs no pods until its expiry is moved"},
		{"expired before the reconciler saw it", func(a *custosv1alpha1.Agent) {
			a.Spec.Lifecycle.ExpiresAt = at(-time.Hour)
			a.Status.Lifecycle = &custosv1alpha1.LifecycleStatus{Phase: custosv1alpha1.AgentPhaseActive}
		}, "metadata.labels[custos.dev/agent]: Forbidden: agent reconciler expired at 2026-03-01T11:00:00Z"},
		{"Frozen by its circuit breaker", func(a *custosv1alpha1.Agent) {
			a.Status.Lifecycle = &custosv1alpha1.LifecycleStatus{Phase: custosv1alpha1.AgentPhaseFrozen}
		}, "metadata.labels[custos.dev/agent]: Forbidden: agent reconciler is Frozen by its circuit breaker: it runs no pods until it is Active again"},
		{"resumed, its phase not caught up yet", func(a *custosv1alpha1.Agent) {
			a.Status.Lifecycle = &custosv1alpha1.LifecycleStatus{Phase: custosv1alpha1.AgentPhaseSuspended}
		}, ""},
		// Refused by checkAgentOf, with its own message.
		{"Decommissioned after it expired", func(a *custosv1alpha1.Agent) {
			a.Spec.Lifecycle = custosv1alpha1.AgentLifecycle{State: custosv1alpha1.LifecycleDecommissioned, ExpiresAt: at(-time.Hour)}
		}, ""},
		{"being deleted while Suspended", func(a *custosv1alpha1.Agent) {
			a.Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended
			a.DeletionTimestamp = at(-time.Minute)
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			a := testAgentObject()
			tc.mutate(a)
			got := fields(checkAgentActive(a, now))
			if tc.want == "" {
				g.Expect(got).To(BeEmpty())
				return
			}
			g.Expect(got).To(ConsistOf(HavePrefix(tc.want)))
		})
	}
}

// TestCheckPodOnUpdate: an update is held to what it changes. Labels and
// Secrets a running pod already had were judged when it was created; the
// node it was bound to is the scheduler's choice.
func TestCheckPodOnUpdate(t *testing.T) {
	g := NewWithT(t)
	agent, b := testAgentObject(), testBoundary()

	// A pod admitted before the guard knew these rules (or by a break-glass
	// admin): unchanged, it can still be relabelled and lose finalizers.
	old := agentPod(t)
	delete(old.Labels, custosv1alpha1.ManagedByLabel)
	old.Spec.NodeName = "node-1"
	old.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "ledger-db"}}}}
	pod := old.DeepCopy()
	pod.Labels["acme.example/team"] = "finance"
	g.Expect(fields(checkPod(old, pod, agent, b))).To(BeEmpty())
	g.Expect(fields(checkPod(nil, pod, agent, b))).To(ConsistOf(
		HavePrefix("metadata.labels[app.kubernetes.io/managed-by]: Required value"),
		HavePrefix("spec.nodeName: Forbidden"),
		HavePrefix(`spec.containers[0].envFrom[0].secretRef.name: Forbidden: Secret "ledger-db"`),
	), "the same pod, created")

	// What changes is checked.
	pod = old.DeepCopy()
	pod.Labels[custosv1alpha1.AgentUIDLabel] = "0d1d0000-0000-4000-8000-000000000000"
	pod.Labels[custosv1alpha1.ManagedByLabel] = "custos"
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debug", Image: testPinned, SecurityContext: old.Spec.Containers[0].SecurityContext.DeepCopy(),
		Env: []corev1.EnvVar{{Name: "DB", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "ledger-db"}, Key: "password"}}}},
	}}}
	g.Expect(fields(checkPod(old, pod, agent, b))).To(ConsistOf(
		HavePrefix(`metadata.labels[custos.dev/agent-uid]: Forbidden: "0d1d0000-0000-4000-8000-000000000000" is not the UID of agent reconciler`),
		HavePrefix(`spec.ephemeralContainers[0].env[0].valueFrom.secretKeyRef.name: Forbidden: Secret "ledger-db"`),
	))
	pod = old.DeepCopy()
	delete(pod.Labels, custosv1alpha1.AgentUIDLabel)
	g.Expect(fields(checkPod(old, pod, agent, b))).To(ConsistOf(HavePrefix("metadata.labels[custos.dev/agent-uid]: Required value")))
}

// TestPodGuardRefusesPodsOfInactiveAgents: an agent that is not Active
// starts nothing, judged by the validator's clock; the pods it still has
// can change as they go, but take no debug container.
func TestPodGuardRefusesPodsOfInactiveAgents(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	suspended := testAgentObject()
	suspended.Name, suspended.UID = "dormant", "4c1c1e4e-0000-4000-8000-000000000002"
	suspended.Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended
	expiring := testAgentObject()
	expiring.Name, expiring.UID = "expiring", "4c1c1e4e-0000-4000-8000-000000000003"
	expiring.Spec.Lifecycle.ExpiresAt = ptr.To(metav1.NewTime(now.Add(time.Hour)))
	lasting := testAgentObject()
	lasting.Name, lasting.UID = "lasting", "4c1c1e4e-0000-4000-8000-000000000004"
	lasting.Spec.Lifecycle.ExpiresAt = ptr.To(metav1.NewTime(time.Now().Add(time.Hour)))
	_, v := guard(suspended, expiring, lasting)
	clk := clocktesting.NewFakePassiveClock(now)
	v.Clock = clk
	create := inRequest(admissionv1.Create, testNS)

	podOf := func(a *custosv1alpha1.Agent) *corev1.Pod {
		return renderAgentPod(t, a, testBoundary().Spec.Regions)
	}
	_, err := v.ValidateCreate(create, podOf(suspended))
	g.Expect(err).To(MatchError(ContainSubstring("metadata.labels[custos.dev/agent]: Forbidden: agent dormant is Suspended: it runs no pods until it is Active again")))

	_, err = v.ValidateCreate(create, podOf(expiring))
	g.Expect(err).NotTo(HaveOccurred(), "an hour before its expiry")
	clk.SetTime(now.Add(time.Hour))
	_, err = v.ValidateCreate(create, podOf(expiring))
	g.Expect(err).To(MatchError(ContainSubstring("metadata.labels[custos.dev/agent]: Forbidden: agent expiring expired at 2026-03-01T13:00:00Z")))

	// A pod it ran before it was suspended is relabelled while it goes; a
	// debug container does not join it.
	update := inRequest(admissionv1.Update, testNS)
	running := podOf(suspended)
	pod := running.DeepCopy()
	pod.Labels["acme.example/team"] = "finance"
	_, err = v.ValidateUpdate(update, running, pod)
	g.Expect(err).NotTo(HaveOccurred())
	pod = running.DeepCopy()
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debug", Image: testPinned, SecurityContext: running.Spec.Containers[0].SecurityContext.DeepCopy(),
	}}}
	_, err = v.ValidateUpdate(update, running, pod)
	g.Expect(err).To(MatchError(ContainSubstring("agent dormant is Suspended")))

	// Without a clock the guard tells the real time.
	v.Clock = nil
	_, err = v.ValidateCreate(create, podOf(lasting))
	g.Expect(err).NotTo(HaveOccurred(), "it expires in an hour")
	clk.SetTime(time.Now().Add(2 * time.Hour))
	v.Clock = clk
	_, err = v.ValidateCreate(create, podOf(lasting))
	g.Expect(err).To(MatchError(ContainSubstring("agent lasting expired at")))
}

// TestPodGuardChecksPodsThatJoinAnAgent: a pod that takes the agent label
// on an update was never checked as an agent pod, so it is checked as a
// new one, node included.
func TestPodGuardChecksPodsThatJoinAnAgent(t *testing.T) {
	g := NewWithT(t)
	_, v := guard()
	pod := agentPod(t)
	pod.Spec.NodeName = "node-1"
	plain := pod.DeepCopy()
	delete(plain.Labels, custosv1alpha1.AgentLabel)
	_, err := v.ValidateUpdate(inRequest(admissionv1.Update, testNS), plain, pod)
	g.Expect(err).To(MatchError(ContainSubstring("spec.nodeName: Forbidden")))
}

// guard is the pod guard served from a fake client holding the test
// agent, its namespace and boundary, and objs.
func guard(objs ...client.Object) (*PodDefaulter, *PodValidator) {
	ns := fixtures.TenantNamespace(testNS, testTenant)
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
// path survives it too, for an Active agent and for one that is not. Every
// refusal names a field and is Forbidden or Required, and a pod compared
// with itself (an update that changes nothing) is never refused for its
// node, Custos's labels or Secrets.
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
	// The content checks: volume types, kubelet-minted credentials,
	// Secrets, SELinux, AppArmor, sysctls, probes, node, labels, lifecycle.
	f.Add([]byte(`{"metadata":{"labels":{"custos.dev/agent":"reconciler","custos.dev/agent-uid":"x"},"annotations":{"container.apparmor.security.beta.kubernetes.io/agent":"unconfined","container.apparmor.security.beta.kubernetes.io/":"localhost/"}},` +
		`"spec":{"nodeName":"n","volumes":[{"nfs":{}},{"image":{}},{},{"projected":{"sources":[{"serviceAccountToken":{"audience":"sts.amazonaws.com"}},{"secret":{"name":"agent-x.y"}},{"podCertificate":{}},{}]}},{"csi":{"nodePublishSecretRef":{}}},{"secret":{}}],` +
		`"securityContext":{"seLinuxOptions":{"type":"spc_t","user":"u","role":"r"},"appArmorProfile":{"type":"Unconfined"},"sysctls":[{"name":"kernel.msgmax"},{}]},` +
		`"containers":[{"env":[{"valueFrom":{"secretKeyRef":{"name":"agent-reconciler."}}},{"valueFrom":{}}],"envFrom":[{"secretRef":{}},{}],"livenessProbe":{"httpGet":{"host":"h"},"tcpSocket":{"host":"h"}},"lifecycle":{"preStop":{"tcpSocket":{"host":"h"}},"postStart":{}},` +
		`"securityContext":{"seLinuxOptions":{},"appArmorProfile":{}}}],"ephemeralContainers":[{"envFrom":[{"secretRef":{"name":"agent-"}}],"securityContext":{"appArmorProfile":{"type":"Localhost"}}}]}}`))
	f.Add([]byte(`{"metadata":{"labels":{"custos.dev/agent":"dormant"}},"spec":{"ephemeralContainers":[{}]}}`))
	f.Add([]byte(`{"metadata":{"labels":{"custos.dev/agent":"lapsed","app.kubernetes.io/managed-by":"custos"}}}`))

	agent, b := testAgentObject(), testBoundary()
	dormant := testAgentObject()
	dormant.Name, dormant.UID = "dormant", "4c1c1e4e-0000-4000-8000-000000000002"
	dormant.Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended
	lapsed := testAgentObject()
	lapsed.Name, lapsed.UID = "lapsed", "4c1c1e4e-0000-4000-8000-000000000003"
	lapsed.Spec.Lifecycle.ExpiresAt = ptr.To(metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	d, v := guard(dormant, lapsed)
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
		for _, e := range checkPod(nil, pod, agent, b) {
			if e.Field == "" || (e.Type != field.ErrorTypeForbidden && e.Type != field.ErrorTypeRequired) {
				t.Fatalf("not a kubectl-style refusal: %v", e)
			}
		}
		unchanged := map[string]bool{
			"spec.nodeName": true,
			field.NewPath("metadata", "labels").Key(custosv1alpha1.ManagedByLabel).String(): true,
			field.NewPath("metadata", "labels").Key(custosv1alpha1.AgentUIDLabel).String():  true,
		}
		for _, e := range checkPod(pod, pod, agent, b) {
			if unchanged[e.Field] || strings.Contains(e.Detail, "Secret ") {
				t.Fatalf("an update that changes nothing refused for %s: %s", e.Field, e.ErrorBody())
			}
		}
		for _, a := range []*custosv1alpha1.Agent{agent, dormant, lapsed} {
			_ = checkAgentActive(a, time.Now())
		}
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

// FuzzCustosPodPasses: whatever an Active agent is called and whatever its
// credentials, runtime and boundary's regions, the pod Custos renders for it
// passes the guard, through the webhooks as the ReplicaSet controller sends
// it, and unchanged by the mutation. What the API server would refuse in
// an Agent (a name or credential that is no DNS label) or a DataBoundary
// (a region that is no label value), or could not give an Agent (a UID
// that is no label value), is skipped.
func FuzzCustosPodPasses(f *testing.F) {
	f.Add("reconciler", "4c1c1e4e-0000-4000-8000-000000000001", "ledger-api", "eu-west-1,eu-central-1", "acme-registry", "LEDGER_URL=https://ledger.acme.example")
	f.Add("a", "", "", "r", "", "")
	f.Add("invoice", "u", "reconciler-ledger-api,aws,azure", "us-east-1", "a,b", "A=,B=b")
	f.Add("invoice-reconciler", "0", "ledger-api", "eu-west-1,eu-west-1", "agent-invoice.x", "X=agent-invoice.x")
	f.Fuzz(func(t *testing.T, name, uid, credentials, regions, pullSecrets, env string) {
		if validation.IsDNS1123Label(name) != nil {
			t.Skip("the API server refuses the Agent")
		}
		if validation.IsValidLabelValue(uid) != nil {
			t.Skip("the API server gives UUIDs, and refuses a pod labelled otherwise")
		}
		agent := testAgentObject()
		agent.Name, agent.UID = name, types.UID(uid)
		agent.Spec.Credentials = nil
		agent.Spec.Runtime = custosv1alpha1.AgentRuntime{}
		seen := map[string]bool{}
		for _, c := range strings.Split(credentials, ",") {
			if c == "" {
				continue
			}
			if len(c) > 40 || validation.IsDNS1123Label(c) != nil || seen[c] {
				t.Skip("the API server refuses the credential")
			}
			seen[c] = true
			agent.Spec.Credentials = append(agent.Spec.Credentials, custosv1alpha1.CredentialSpec{Name: c})
		}
		for _, s := range strings.Split(pullSecrets, ",") {
			if s != "" {
				agent.Spec.Runtime.ImagePullSecrets = append(agent.Spec.Runtime.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
			}
		}
		for _, e := range strings.Split(env, ",") {
			if k, val, ok := strings.Cut(e, "="); ok && k != "" {
				agent.Spec.Runtime.Env = append(agent.Spec.Runtime.Env, custosv1alpha1.AgentEnvVar{Name: k, Value: val})
			}
		}
		b := testBoundary()
		b.Spec.Regions = nil
		for _, r := range strings.Split(regions, ",") {
			if validation.IsValidLabelValue(r) != nil {
				t.Skip("a region is a node label's value")
			}
			if r != "" {
				b.Spec.Regions = append(b.Spec.Regions, r)
			}
		}
		if len(b.Spec.Regions) == 0 {
			t.Skip("a DataBoundary has a region")
		}

		pod := renderAgentPod(t, agent, b.Spec.Regions)
		if errs := checkPod(nil, pod, agent, b); len(errs) > 0 {
			t.Fatalf("Custos's own pod refused: %v", errs)
		}
		if errs := checkAgentActive(agent, time.Now()); len(errs) > 0 {
			t.Fatalf("an Active agent refused: %v", errs)
		}

		ns := fixtures.TenantNamespace(testNS, testTenant)
		c := fake.NewClientBuilder().WithScheme(testScheme).WithObjects(ns, b, agent).Build()
		d, v := &PodDefaulter{Client: c}, &PodValidator{Client: c}
		sent := pod.DeepCopy()
		sent.Name, sent.Namespace, sent.GenerateName = "", "", "agent-"+name+"-"
		ctx := inRequest(admissionv1.Create, testNS)
		if err := d.Default(ctx, sent); err != nil {
			t.Fatal(err)
		}
		if !equality.Semantic.DeepEqual(sent.Spec, pod.Spec) || !equality.Semantic.DeepEqual(sent.Labels, pod.Labels) {
			t.Fatalf("the mutation changed Custos's own pod")
		}
		if _, err := v.ValidateCreate(ctx, sent); err != nil {
			t.Fatalf("Custos's own pod refused: %v", err)
		}
	})
}
