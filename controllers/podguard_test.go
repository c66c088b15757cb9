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

package controllers

import (
	"context"
	"maps"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/test/fixtures"
)

// podGuardWorld is an agent running in its tenant's namespace, and the
// Deployment Custos rendered for it: the pods the guard must let through
// are the ones that Deployment's ReplicaSet would create.
type podGuardWorld struct {
	tenant, other string
	ns            string
	agent         *custosv1alpha1.Agent
	deployment    *appsv1.Deployment
}

func newPodGuardWorld(t *testing.T) podGuardWorld {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	w := podGuardWorld{tenant: fixtures.UniqueTenant("pod"), other: fixtures.UniqueTenant("pox")}
	createBoundary(t, w.tenant, "eu-west-1", "eu-central-1")
	w.ns = fixtures.CreateTenantNamespace(t, k8sClient, w.tenant)
	w.agent = newAgent(w.ns, "guarded", w.tenant)
	g.Expect(k8sClient.Create(ctx, w.agent)).To(Succeed())
	w.deployment = &appsv1.Deployment{}
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: "agent-" + w.agent.Name}, w.deployment)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	t.Cleanup(func() {
		_ = k8sClient.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(w.ns), client.GracePeriodSeconds(0))
	})
	return w
}

// pod is a pod exactly as the agent's ReplicaSet would create it from the
// Deployment's template.
func (w podGuardWorld) pod() *corev1.Pod {
	tmpl := w.deployment.Spec.Template
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: w.deployment.Name + "-",
			Namespace:    w.ns,
			Labels:       maps.Clone(tmpl.Labels),
			Annotations:  maps.Clone(tmpl.Annotations),
		},
		Spec: *tmpl.Spec.DeepCopy(),
	}
}

// asPodOf makes p a pod of agent in every way Custos would: label, UID,
// ServiceAccount and the names of the lease Secrets it mounts. Only the
// lifecycle of agent can then refuse it.
func (w podGuardWorld) asPodOf(p *corev1.Pod, agent *custosv1alpha1.Agent) {
	p.Labels[custosv1alpha1.AgentLabel] = agent.Name
	p.Labels[custosv1alpha1.AgentUIDLabel] = string(agent.UID)
	p.Spec.ServiceAccountName = "agent-" + agent.Name
	for i := range p.Spec.Volumes {
		if sec := p.Spec.Volumes[i].Secret; sec != nil {
			if rest, ok := strings.CutPrefix(sec.SecretName, "agent-"+w.agent.Name+"."); ok {
				sec.SecretName = "agent-" + agent.Name + "." + rest
			}
		}
	}
}

// storedPods lists the pods the API server holds in the world's namespace.
func (w podGuardWorld) storedPods(g Gomega) []corev1.Pod {
	var pods corev1.PodList
	g.Expect(k8sClient.List(context.Background(), &pods, client.InNamespace(w.ns))).To(Succeed())
	return pods.Items
}

func TestPodGuardAdmitsCustosOwnPods(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	w := newPodGuardWorld(t)
	regions := []string{"eu-central-1", "eu-west-1"}

	// Custos's own pod passes as it is, and is left as it is.
	pod := w.pod()
	g.Eventually(func() error {
		pod = w.pod()
		return k8sClient.Create(ctx, pod)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(pod.Labels).To(Equal(w.deployment.Spec.Template.Labels))
	g.Expect(pod.Spec.Affinity).To(Equal(w.deployment.Spec.Template.Spec.Affinity))

	// Without its tenant label and region affinity, it gets them.
	stripped := w.pod()
	delete(stripped.Labels, custosv1alpha1.TenantLabel)
	stripped.Spec.Affinity = nil
	g.Expect(k8sClient.Create(ctx, stripped)).To(Succeed())
	g.Expect(stripped.Labels).To(HaveKeyWithValue(custosv1alpha1.TenantLabel, w.tenant))
	g.Expect(stripped.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms).To(Equal([]corev1.NodeSelectorTerm{{
		MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "topology.kubernetes.io/region", Operator: corev1.NodeSelectorOpIn, Values: regions}},
	}}))

	// Its own placement is kept, confined to the boundary's regions.
	placed := w.pod()
	placed.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms = []corev1.NodeSelectorTerm{
		{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "topology.kubernetes.io/region", Operator: corev1.NodeSelectorOpIn, Values: []string{"us-east-1"}},
			{Key: "acme.example/gpu", Operator: corev1.NodeSelectorOpExists},
		}},
		{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "acme.example/pool", Operator: corev1.NodeSelectorOpIn, Values: []string{"agents"}}}},
	}
	g.Expect(k8sClient.Create(ctx, placed)).To(Succeed())
	region := corev1.NodeSelectorRequirement{Key: "topology.kubernetes.io/region", Operator: corev1.NodeSelectorOpIn, Values: regions}
	g.Expect(placed.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms).To(Equal([]corev1.NodeSelectorTerm{
		{MatchExpressions: []corev1.NodeSelectorRequirement{region, {Key: "acme.example/gpu", Operator: corev1.NodeSelectorOpExists}}},
		{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "acme.example/pool", Operator: corev1.NodeSelectorOpIn, Values: []string{"agents"}}, region}},
	}))
	g.Expect(w.storedPods(g)).To(HaveLen(3))
}

// podGuardCase is an agent pod the guard must refuse, with the field and
// message the client must see.
type podGuardCase struct {
	name      string
	mutate    func(w podGuardWorld, p *corev1.Pod)
	wantField string
	wantMsg   string
}

func TestPodGuardRefusesPodsThatEscapeTheirAgent(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	w := newPodGuardWorld(t)

	// A decommissioned agent of the same tenant, whose pods would
	// otherwise pass.
	retired := newAgent(w.ns, "retired", w.tenant)
	g.Expect(k8sClient.Create(ctx, retired)).To(Succeed())
	updateAgent(g, retired, func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleDecommissioned })
	ofRetired := func(w podGuardWorld, p *corev1.Pod) { w.asPodOf(p, retired) }
	// And a suspended one.
	dormant := newAgent(w.ns, "dormant", w.tenant)
	g.Expect(k8sClient.Create(ctx, dormant)).To(Succeed())
	updateAgent(g, dormant, func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended })
	ofDormant := func(w podGuardWorld, p *corev1.Pod) { w.asPodOf(p, dormant) }
	// The webhook reads Agents from the manager's cache.
	for _, seen := range []struct {
		of   func(podGuardWorld, *corev1.Pod)
		want string
	}{{ofRetired, "is Decommissioned"}, {ofDormant, "is Suspended"}} {
		g.Eventually(func() error {
			p := w.pod()
			seen.of(w, p)
			return k8sClient.Create(ctx, p, client.DryRunAll)
		}).WithTimeout(eventually).WithPolling(poll).Should(MatchError(ContainSubstring(seen.want)))
	}

	c0 := "spec.containers[0].securityContext"
	cases := []podGuardCase{
		{"privileged container", func(_ podGuardWorld, p *corev1.Pod) {
			// The API server itself refuses privileged with escalation off.
			p.Spec.Containers[0].SecurityContext.Privileged = ptr.To(true)
			p.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
		}, c0 + ".privileged", "Forbidden: agent containers are never privileged"},
		{"privilege escalation allowed", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
		}, c0 + ".allowPrivilegeEscalation", "Forbidden: must be false: agent containers never gain privileges"},
		{"privilege escalation left unset", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
		}, c0 + ".allowPrivilegeEscalation", "Required value: must be set to false"},
		{"added capability", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"NET_RAW"}
		}, c0 + ".capabilities.add[0]", "Forbidden: agent containers add no capabilities (NET_RAW)"},
		{"capabilities kept", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext.Capabilities.Drop = []corev1.Capability{"NET_RAW"}
		}, c0 + ".capabilities.drop", "Required value: must drop ALL capabilities"},
		{"missing runAsNonRoot", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext.RunAsNonRoot = nil
			p.Spec.SecurityContext.RunAsNonRoot = nil
		}, c0 + ".runAsNonRoot", "Required value: set runAsNonRoot: true on the container or the pod"},
		{"unconfined seccomp", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
		}, c0 + ".seccompProfile.type", "Forbidden: must be RuntimeDefault or Localhost"},
		{"host network", func(_ podGuardWorld, p *corev1.Pod) { p.Spec.HostNetwork = true },
			"spec.hostNetwork", "Forbidden: agent pods do not share the node's namespaces"},
		{"host PID", func(_ podGuardWorld, p *corev1.Pod) { p.Spec.HostPID = true },
			"spec.hostPID", "Forbidden: agent pods do not share the node's namespaces"},
		{"hostPath volume", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.Volumes = append([]corev1.Volume{{Name: "node", VolumeSource: corev1.VolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/var/run/secrets"}}}}, p.Spec.Volumes...)
		}, "spec.volumes[0].hostPath", "Forbidden: agent pods do not mount the node's filesystem"},
		{"ServiceAccount token mounted", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.AutomountServiceAccountToken = ptr.To(true)
		}, "spec.automountServiceAccountToken", "Forbidden: must be false"},
		{"foreign ServiceAccount", func(_ podGuardWorld, p *corev1.Pod) { p.Spec.ServiceAccountName = "default" },
			"spec.serviceAccountName", "Forbidden: pods of agent guarded run only as ServiceAccount agent-guarded"},
		{"another image", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.Containers[0].Image = "registry.acme.example/agents/invoice-reconciler:1.4.3"
		}, "spec.containers[0].image", "Forbidden: pods of agent guarded run only its verified image, pinned by digest: " + testPinned()},
		{"its own image by tag: a tag can be moved after verification", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.Containers[0].Image = testImage
		}, "spec.containers[0].image", "Forbidden: pods of agent guarded run only its verified image, pinned by digest: " + testPinned()},
		{"another image in an init container", func(_ podGuardWorld, p *corev1.Pod) {
			init := p.Spec.Containers[0].DeepCopy()
			init.Name, init.Image = "fetch", "docker.io/library/busybox:1.37"
			p.Spec.InitContainers = []corev1.Container{*init}
		}, "spec.initContainers[0].image", "Forbidden: pods of agent guarded run only its verified image"},
		{"pod of an unknown agent", func(w podGuardWorld, p *corev1.Pod) {
			w.asPodOf(p, &custosv1alpha1.Agent{ObjectMeta: metav1.ObjectMeta{Name: "ghost", UID: "0d1d0000-0000-4000-8000-00000000dead"}})
		},
			"metadata.labels[custos.dev/agent]", `Forbidden: no Agent "ghost" exists in namespace`},
		{"pod of a decommissioned agent", ofRetired,
			"metadata.labels[custos.dev/agent]", "Forbidden: agent retired is Decommissioned: it runs no pods any more"},
		{"tenant label of another tenant", func(w podGuardWorld, p *corev1.Pod) { p.Labels[custosv1alpha1.TenantLabel] = w.other },
			"metadata.labels[custos.dev/tenant]", "is not the tenant of agent guarded"},
		{"pod of a suspended agent", ofDormant,
			"metadata.labels[custos.dev/agent]", "Forbidden: agent dormant is Suspended: it runs no pods until it is Active again"},
		{"without managed-by: no NetworkPolicy would select it", func(_ podGuardWorld, p *corev1.Pod) {
			delete(p.Labels, custosv1alpha1.ManagedByLabel)
		}, "metadata.labels[app.kubernetes.io/managed-by]", "Required value: pods of agent guarded carry app.kubernetes.io/managed-by=custos"},
		{"the UID of an earlier agent of the same name", func(_ podGuardWorld, p *corev1.Pod) {
			p.Labels[custosv1alpha1.AgentUIDLabel] = "0d1d0000-0000-4000-8000-000000000000"
		}, "metadata.labels[custos.dev/agent-uid]", `Forbidden: "0d1d0000-0000-4000-8000-000000000000" is not the UID of agent guarded`},
		{"nfs volume", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.Volumes = append([]corev1.Volume{{Name: "share", VolumeSource: corev1.VolumeSource{
				NFS: &corev1.NFSVolumeSource{Server: "nfs.acme.example", Path: "/exports/ledger"}}}}, p.Spec.Volumes...)
		}, "spec.volumes[0].nfs", "Forbidden: agent pods mount only configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected and secret volumes"},
		{"SELinux spc_t", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext.SELinuxOptions = &corev1.SELinuxOptions{Type: "spc_t"}
		}, c0 + ".seLinuxOptions.type", `Forbidden: "spc_t" is not a confined container type`},
		{"AppArmor Unconfined", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext.AppArmorProfile = &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}
		}, c0 + ".appArmorProfile.type", `Forbidden: "Unconfined" is not allowed: must be RuntimeDefault or Localhost`},
		{"AppArmor unconfined by annotation", func(_ podGuardWorld, p *corev1.Pod) {
			p.Annotations["container.apparmor.security.beta.kubernetes.io/agent"] = "unconfined"
		}, "metadata.annotations[container.apparmor.security.beta.kubernetes.io/agent]", `Forbidden: "unconfined" is not allowed: must be runtime/default or localhost/<profile>`},
		{"unsafe sysctl", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.SecurityContext.Sysctls = []corev1.Sysctl{{Name: "kernel.msgmax", Value: "65536"}}
		}, "spec.securityContext.sysctls[0].name", `Forbidden: "kernel.msgmax" is not a safe sysctl`},
		{"projected ServiceAccount token for AWS STS", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.Volumes = append([]corev1.Volume{{Name: "aws-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
					Audience: "sts.amazonaws.com", ExpirationSeconds: ptr.To[int64](86400), Path: "token"}}},
			}}}}, p.Spec.Volumes...)
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts,
				corev1.VolumeMount{Name: "aws-token", MountPath: "/var/run/secrets/eks.amazonaws.com/serviceaccount", ReadOnly: true})
		}, "spec.volumes[0].projected.sources[0].serviceAccountToken",
			"Forbidden: agent pods carry no ServiceAccount token; their credentials are leases Custos issues (spec.credentials)"},
		{"its own lease name for a credential it does not have", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.Volumes = append([]corev1.Volume{{Name: "old", VolumeSource: corev1.VolumeSource{
				Secret: &corev1.SecretVolumeSource{SecretName: "agent-guarded.retired-api"}}}}, p.Spec.Volumes...)
		}, "spec.volumes[0].secret.secretName", `Forbidden: Secret "agent-guarded.retired-api" is not a lease of agent guarded: it has no credential "retired-api" in spec.credentials`},
		{"a tenant Secret in envFrom", func(_ podGuardWorld, p *corev1.Pod) {
			p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "ledger-db"}}}}
		}, "spec.containers[0].envFrom[0].secretRef.name", `Forbidden: Secret "ledger-db" is not one of agent guarded's lease Secrets (agent-guarded.ledger-api)`},
		{"placed on a node by name", func(_ podGuardWorld, p *corev1.Pod) { p.Spec.NodeName = "node-us-east-1a" },
			"spec.nodeName", "Forbidden: agent pods are placed by the scheduler, inside the DataBoundary's regions; spec.nodeName bypasses it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			pod := w.pod()
			tc.mutate(w, pod)
			err := k8sClient.Create(ctx, pod)
			if err == nil {
				_ = k8sClient.Delete(ctx, pod)
			}
			g.Expect(pod.GetName()).To(BeEmpty(), "nothing may be stored")
			assertRefused(g, err, tc.wantField, tc.wantMsg)
			g.Expect(err.Error()).To(ContainSubstring(`admission webhook "pods.validate.custos.dev" denied the request`))
		})
	}
	// Another agent's lease, as a Secret volume or a CSI driver's node
	// publish secret, is refused before the guard sees it, by the API
	// server's own policy (config/crd/policies/agent-identity.yaml); the
	// guard refuses both too (internal/webhook's tests), for when the
	// policy is not installed.
	for name, stolen := range map[string]corev1.VolumeSource{
		"another agent's lease Secret mounted": {Secret: &corev1.SecretVolumeSource{SecretName: "agent-payments.bank-api"}},
		"another agent's lease as a CSI driver's secret": {CSI: &corev1.CSIVolumeSource{
			Driver: "secrets-store.csi.k8s.io", NodePublishSecretRef: &corev1.LocalObjectReference{Name: "agent-payments.bank-api"}}},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			pod := w.pod()
			pod.Spec.Volumes = append([]corev1.Volume{{Name: "stolen", VolumeSource: stolen}}, pod.Spec.Volumes...)
			err := k8sClient.Create(ctx, pod)
			if err == nil {
				_ = k8sClient.Delete(ctx, pod)
			}
			g.Expect(pod.GetName()).To(BeEmpty(), "nothing may be stored")
			expectPolicyRefused(g, err, "custos-agent-identity",
				"Secret agent-payments.bank-api is a credential lease of Custos agent payments; only that agent's own pods reference it")
		})
	}
	g.Expect(w.storedPods(g)).To(BeEmpty(), "nothing may be stored")

	// Each refusal is audited, as the request's user and with the rule that
	// refused it.
	g.Eventually(func(g Gomega) {
		var found []audit.Record
		for _, r := range auditRecords.Events() {
			if r.Action == audit.ActionAdmissionDenied && r.Subject != nil && r.Subject.Kind == "Pod" && r.Subject.Namespace == w.ns &&
				r.Policy == "spec.nodeName: FieldValueForbidden" {
				found = append(found, r)
			}
		}
		g.Expect(found).To(HaveLen(1))
		denial := found[0]
		g.Expect(denial.Decision).To(Equal(audit.DecisionDeny))
		g.Expect(denial.Actor).To(HaveValue(HaveField("Kind", audit.ActorUser)))
		g.Expect(denial.Subject.Tenant).To(Equal(w.tenant))
		g.Expect(denial.Details).To(And(HaveKeyWithValue("operation", "CREATE"), HaveKeyWithValue("resource", "pods")))
		g.Expect(denial.TraceID).NotTo(BeEmpty())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestPodGuardChecksChangesToRunningPods: labels, images and ephemeral
// containers can change on a running pod; the guard sees those too.
func TestPodGuardChecksChangesToRunningPods(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	w := newPodGuardWorld(t)
	pod := w.pod()
	g.Eventually(func() error {
		pod = w.pod()
		return k8sClient.Create(ctx, pod)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	change := func(mut func(p *corev1.Pod)) error {
		p := &corev1.Pod{}
		g.Expect(k8sClient.Get(ctx, keyOf(pod), p)).To(Succeed())
		mut(p)
		return k8sClient.Update(ctx, p)
	}
	assertRefused(g, change(func(p *corev1.Pod) { p.Spec.Containers[0].Image = "docker.io/evil/agent:1" }),
		"spec.containers[0].image", "run only its verified image")
	// Shedding the agent label would take the pod out of the guard's
	// sight: the API server's own policy refuses it before the guard does.
	err := change(func(p *corev1.Pod) { delete(p.Labels, custosv1alpha1.AgentLabel) })
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("custos-agent-identity"))
	// Nor can it move to another tenant: the API server's policy refuses
	// any change of its Custos labels.
	expectPolicyRefused(g, change(func(p *corev1.Pod) { p.Labels[custosv1alpha1.TenantLabel] = w.other }),
		"custos-agent-identity", "metadata.labels: Forbidden: the Custos labels of a pod of agent guarded")

	// A debug container joins through the ephemeralcontainers subresource.
	debug := &corev1.Pod{}
	g.Expect(k8sClient.Get(ctx, keyOf(pod), debug)).To(Succeed())
	debug.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debug", Image: "docker.io/library/busybox:1.37", Stdin: true, TTY: true,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent,
	}}}
	assertRefused(g, k8sClient.SubResource("ephemeralcontainers").Update(ctx, debug),
		"spec.ephemeralContainers[0].image", "run only its verified image")

	stored := &corev1.Pod{}
	g.Expect(k8sClient.Get(ctx, keyOf(pod), stored)).To(Succeed())
	g.Expect(stored.Labels).To(Equal(pod.Labels), "nothing may be stored")
	g.Expect(stored.Spec.Containers[0].Image).To(Equal(testPinned()), "nothing may be stored")
	g.Expect(stored.Spec.EphemeralContainers).To(BeEmpty(), "nothing may be stored")

	// A removed tenant label is put back.
	g.Expect(change(func(p *corev1.Pod) { delete(p.Labels, custosv1alpha1.TenantLabel) })).To(Succeed())
	g.Expect(k8sClient.Get(ctx, keyOf(pod), stored)).To(Succeed())
	g.Expect(stored.Labels).To(HaveKeyWithValue(custosv1alpha1.TenantLabel, w.tenant))
}

// TestPodGuardNeverSeesOtherPods: a pod without the custos.dev/agent label
// is not an agent pod; the webhooks are not even called for it.
func TestPodGuardNeverSeesOtherPods(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	w := newPodGuardWorld(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "anything-", Namespace: w.ns,
			Labels: map[string]string{custosv1alpha1.TenantLabel: w.other}},
		Spec: corev1.PodSpec{
			ServiceAccountName:           "default",
			AutomountServiceAccountToken: ptr.To(true),
			HostNetwork:                  true,
			HostPID:                      true,
			HostIPC:                      true,
			Containers: []corev1.Container{{
				Name: "root", Image: "docker.io/library/busybox:1.37",
				SecurityContext: &corev1.SecurityContext{
					Privileged: ptr.To(true), RunAsUser: ptr.To[int64](0),
					Capabilities:   &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}},
					SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined},
				},
			}},
			Volumes: []corev1.Volume{{Name: "node", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}},
		},
	}
	g.Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	g.Expect(pod.Labels).To(Equal(map[string]string{custosv1alpha1.TenantLabel: w.other}), "not mutated")
	g.Expect(pod.Spec.Affinity).To(BeNil(), "not mutated")
}

// TestAgentIdentityIsOnlyForItsPods: a pod that names an agent's
// ServiceAccount without being that agent's pod is refused by the API
// server itself (config/crd/policies/agent-identity.yaml), so it cannot
// slip past the pod guard, which sees labelled pods only, and wear the
// agent's cloud identity.
func TestAgentIdentityIsOnlyForItsPods(t *testing.T) {
	ctx := context.Background()
	w := newPodGuardWorld(t)
	for name, mutate := range map[string]func(*corev1.Pod){
		"unlabelled": func(p *corev1.Pod) { delete(p.Labels, custosv1alpha1.AgentLabel) },
		"labelled as another agent": func(p *corev1.Pod) {
			p.Labels[custosv1alpha1.AgentLabel] = "someone-else"
		},
		"the deprecated serviceAccount field": func(p *corev1.Pod) {
			delete(p.Labels, custosv1alpha1.AgentLabel)
			p.Spec.ServiceAccountName, p.Spec.DeprecatedServiceAccount = "", "agent-"+w.agent.Name
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			pod := w.pod()
			mutate(pod)
			err := k8sClient.Create(ctx, pod)
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring("custos-agent-identity"))
			g.Expect(err.Error()).To(ContainSubstring("spec.serviceAccountName: Forbidden: agent-guarded is the identity of Custos agent guarded"))
		})
	}
	g := NewWithT(t)
	g.Expect(w.storedPods(g)).To(BeEmpty(), "nothing was stored")

	// The agent's own pod is admitted, and cannot shed its label later.
	pod := w.pod()
	g.Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	patch := client.MergeFrom(pod.DeepCopy())
	delete(pod.Labels, custosv1alpha1.AgentLabel)
	err := k8sClient.Patch(ctx, pod, patch)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("custos-agent-identity"))

	// A name like an agent's outside a tenant namespace is none of
	// Custos's business.
	free := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "free-"}}
	g.Expect(k8sClient.Create(ctx, free)).To(Succeed())
	g.Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "agent-smith", Namespace: free.Name}})).To(Succeed())
	g.Expect(k8sClient.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "smith", Namespace: free.Name},
		Spec:       corev1.PodSpec{ServiceAccountName: "agent-smith", Containers: []corev1.Container{{Name: "c", Image: "registry.example.com/x:1"}}},
	})).To(Succeed())
}
