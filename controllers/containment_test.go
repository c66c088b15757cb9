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
	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
)

// containmentWorld is an Active agent in its tenant's namespace, and a
// tenant user bound there to the built-in edit ClusterRole (what most
// platforms give a namespace team), plus pods/status.
type containmentWorld struct {
	ns         string
	agent      *custosv1alpha1.Agent
	deployment *appsv1.Deployment
	tenant     client.Client
}

func newContainmentWorld(t *testing.T) containmentWorld {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("cont")
	createBoundary(t, tenant, "eu-west-1")
	w := containmentWorld{ns: fixtures.CreateTenantNamespace(t, k8sClient, tenant)}
	w.agent = newAgent(w.ns, "held", tenant)
	g.Expect(k8sClient.Create(ctx, w.agent)).To(Succeed())
	w.deployment = &appsv1.Deployment{}
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: "agent-held"}, w.deployment)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(k8sClient.Get(ctx, keyOf(w.agent), w.agent)).To(Succeed())

	user := "tina@" + tenant + ".example"
	cfg, err := cp.AddUser(user, "tenants")
	g.Expect(err).NotTo(HaveOccurred())
	statusRole := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-status", Namespace: w.ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods/status"}, Verbs: []string{"get", "update", "patch"}}},
	}
	g.Expect(k8sClient.Create(ctx, statusRole)).To(Succeed())
	for _, ref := range []rbacv1.RoleRef{
		// What the built-in edit ClusterRole aggregates (envtest runs no
		// controller manager to aggregate them into edit itself).
		{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:aggregate-to-edit"},
		{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:aggregate-to-view"},
		{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-status"},
	} {
		g.Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "tenant-", Namespace: w.ns},
			RoleRef:    ref,
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
		})).To(Succeed())
	}
	w.tenant, err = client.New(cfg, client.Options{Scheme: testScheme})
	g.Expect(err).NotTo(HaveOccurred())
	// RBAC caches catch up with the bindings.
	g.Eventually(func() error {
		return w.tenant.List(ctx, &corev1.PodList{}, client.InNamespace(w.ns))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	t.Cleanup(func() {
		_ = k8sClient.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(w.ns), client.GracePeriodSeconds(0))
	})
	return w
}

// agentPod is a pod exactly as the agent's ReplicaSet would create it.
func (w containmentWorld) agentPod() *corev1.Pod {
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

// plainPod is a pod of the tenant's own, nothing to do with any agent.
func (w containmentWorld) plainPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "plain-", Namespace: w.ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.example.com/app:1"}}},
	}
}

// expectPolicyRefused: the API server's admission policy refused the
// request, saying which policy and why.
func expectPolicyRefused(g Gomega, err error, policy, msg string) {
	g.Expect(err).To(HaveOccurred(), "admitted; want a refusal by %s", policy)
	g.Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "want 403 or 422, got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("ValidatingAdmissionPolicy '" + policy + "'"))
	g.Expect(err.Error()).To(ContainSubstring(msg))
	g.Expect(err.Error()).NotTo(ContainSubstring("resulted in error"), "the policy failed to evaluate instead of deciding")
}

func TestContainmentOnlyTheAgentWearsItsIdentity(t *testing.T) {
	ctx := context.Background()
	w := newContainmentWorld(t)
	sa := "agent-" + w.agent.Name
	lease := "agent-" + w.agent.Name + ".ledger-api"

	cases := []struct {
		name   string
		do     func() error
		policy string
		msg    string
	}{
		{"a bare pod with the agent's labels, ServiceAccount and digest", func() error {
			return w.tenant.Create(ctx, w.agentPod())
		}, "custos-agent-identity", "metadata.ownerReferences: Forbidden: a pod of Custos agent held is created only by the ReplicaSet controller"},
		{"a bare pod claiming to be owned by the agent's ReplicaSet", func() error {
			p := w.agentPod()
			p.Labels["pod-template-hash"] = "abc12"
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "agent-held-abc12", UID: "0bd7c4a4-0000-4000-8000-000000000000", Controller: ptr.To(true)}}
			return w.tenant.Create(ctx, p)
		}, "custos-agent-identity", "created only by the ReplicaSet controller"},
		{"a pod running as the agent without its labels", func() error {
			p := w.plainPod()
			p.Spec.ServiceAccountName = sa
			return w.tenant.Create(ctx, p)
		}, "custos-agent-identity", "spec.serviceAccountName: Forbidden: agent-held is the identity of Custos agent held"},
		{"a plain pod mounting the agent's lease", func() error {
			p := w.plainPod()
			p.Spec.Volumes = []corev1.Volume{{Name: "l", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: lease}}}}
			return w.tenant.Create(ctx, p)
		}, "custos-agent-identity", "spec: Forbidden: Secret agent-held.ledger-api is a credential lease of Custos agent held"},
		{"a plain pod reading the agent's lease through a projected volume", func() error {
			p := w.plainPod()
			p.Spec.Volumes = []corev1.Volume{{Name: "l", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: lease}}}}}}}}
			return w.tenant.Create(ctx, p)
		}, "custos-agent-identity", "Secret agent-held.ledger-api is a credential lease"},
		{"a plain pod with the agent's lease in an env var", func() error {
			p := w.plainPod()
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "T", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: lease}, Key: "token"}}}}
			return w.tenant.Create(ctx, p)
		}, "custos-agent-identity", "Secret agent-held.ledger-api is a credential lease"},
		{"a plain pod with the agent's lease in an init container's envFrom", func() error {
			p := w.plainPod()
			p.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "registry.example.com/app:1", EnvFrom: []corev1.EnvFromSource{{
				SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: lease}}}}}}
			return w.tenant.Create(ctx, p)
		}, "custos-agent-identity", "Secret agent-held.ledger-api is a credential lease"},
		{"a plain pod handing the agent's lease to a CSI driver", func() error {
			p := w.plainPod()
			p.Spec.Volumes = []corev1.Volume{{Name: "l", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver: "secrets-store.csi.k8s.io", NodePublishSecretRef: &corev1.LocalObjectReference{Name: lease}}}}}
			return w.tenant.Create(ctx, p)
		}, "custos-agent-identity", "Secret agent-held.ledger-api is a credential lease"},
		{"a Job built from the agent's template", func() error {
			tmpl := w.deployment.Spec.Template.DeepCopy()
			tmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
			return w.tenant.Create(ctx, &batchv1.Job{
				ObjectMeta: metav1.ObjectMeta{Name: "copy", Namespace: w.ns},
				Spec:       batchv1.JobSpec{Template: *tmpl},
			})
		}, "custos-agent-workload", "spec.template.spec.serviceAccountName: Forbidden: a Job cannot run pods as agent-held"},
		{"a ReplicaSet built from the agent's template", func() error {
			return w.tenant.Create(ctx, &appsv1.ReplicaSet{
				ObjectMeta: metav1.ObjectMeta{Name: "copy", Namespace: w.ns},
				Spec: appsv1.ReplicaSetSpec{Selector: w.deployment.Spec.Selector.DeepCopy(),
					Template: *w.deployment.Spec.Template.DeepCopy()},
			})
		}, "custos-agent-workload", "ReplicaSet copy would run a Custos agent"},
		{"a second Deployment built from the agent's template", func() error {
			return w.tenant.Create(ctx, &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: "copy", Namespace: w.ns},
				Spec: appsv1.DeploymentSpec{Selector: w.deployment.Spec.Selector.DeepCopy(),
					Template: *w.deployment.Spec.Template.DeepCopy()},
			})
		}, "custos-agent-workload", "spec: Forbidden: Deployment copy runs a Custos agent"},
		{"a command added to Custos's Deployment", func() error {
			d := &appsv1.Deployment{}
			if err := w.tenant.Get(ctx, keyOf(w.deployment), d); err != nil {
				return err
			}
			d.Spec.Template.Spec.Containers[0].Command = []string{"/bin/sh", "-c", "curl evil"}
			return w.tenant.Update(ctx, d)
		}, "custos-agent-workload", "spec: Forbidden: Deployment agent-held runs a Custos agent; only Custos writes its spec"},
		{"Custos's Deployment scaled", func() error {
			d := &appsv1.Deployment{}
			if err := w.tenant.Get(ctx, keyOf(w.deployment), d); err != nil {
				return err
			}
			return w.tenant.SubResource("scale").Update(ctx, d, client.WithSubResourceBody(&autoscalingv1.Scale{
				TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
				ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: d.Namespace, ResourceVersion: d.ResourceVersion},
				Spec:       autoscalingv1.ScaleSpec{Replicas: 5},
			}))
		}, "custos-agent-workload", "spec.replicas: Forbidden: Deployment agent-held runs a Custos agent"},
		{"a ServiceAccount named like an agent's, pre-created", func() error {
			return w.tenant.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "agent-next", Namespace: w.ns,
				Labels: map[string]string{custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue, custosv1alpha1.AgentLabel: "next"}}})
		}, "custos-agent-serviceaccounts", "metadata.name: Forbidden: ServiceAccount names starting with agent- are reserved"},
		{"a cloud annotation added to the agent's ServiceAccount", func() error {
			s := &corev1.ServiceAccount{}
			if err := w.tenant.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: sa}, s); err != nil {
				return err
			}
			s.Annotations = map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::999999999999:role/other"}
			return w.tenant.Update(ctx, s)
		}, "custos-agent-serviceaccounts", "only Custos creates or changes them"},
		{"a token minted for the agent's ServiceAccount (kubectl create token)", func() error {
			s := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: w.ns}}
			return w.tenant.SubResource("token").Create(ctx, s, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
				Audiences: []string{"sts.amazonaws.com"}, ExpirationSeconds: ptr.To[int64](48 * 3600)}})
		}, "custos-agent-serviceaccounts", "serviceaccounts/token: Forbidden: agent-held is the identity of Custos agent held; only Custos mints its tokens"},
		{"a legacy token Secret for the agent's ServiceAccount", func() error {
			return w.tenant.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "forever", Namespace: w.ns, Annotations: map[string]string{corev1.ServiceAccountNameKey: sa}},
				Type:       corev1.SecretTypeServiceAccountToken,
			})
		}, "custos-agent-secrets", "metadata.annotations[kubernetes.io/service-account.name]: Forbidden: agent-held is the identity of Custos agent held"},
		{"a Secret named like a lease, pre-created", func() error {
			return w.tenant.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "agent-held.next-api", Namespace: w.ns},
				StringData: map[string]string{"token": "mine"}})
		}, "custos-agent-secrets", "metadata.name: Forbidden: Secret agent-held.next-api would be a credential lease"},
		{"a Secret of the lease type", func() error {
			return w.tenant.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "mine", Namespace: w.ns},
				Type: custosv1alpha1.LeaseSecretType, StringData: map[string]string{"token": "mine"}})
		}, "custos-agent-secrets", "type: Forbidden: Secret mine would be a credential lease"},
		{"a NetworkPolicy named like an agent's, pre-created", func() error {
			return w.tenant.Create(ctx, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "agent-next", Namespace: w.ns},
				Spec: networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{}}, PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}}})
		}, "custos-agent-networkpolicies", "metadata.name: Forbidden: NetworkPolicy agent-next isolates the pods of Custos agent next"},
		{"the agent's NetworkPolicy opened", func() error {
			np := &networkingv1.NetworkPolicy{}
			if err := w.tenant.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: "agent-held"}, np); err != nil {
				return err
			}
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{})
			return w.tenant.Update(ctx, np)
		}, "custos-agent-networkpolicies", "only Custos creates, changes or deletes it"},
		{"the agent's NetworkPolicy deleted", func() error {
			return w.tenant.Delete(ctx, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "agent-held", Namespace: w.ns}})
		}, "custos-agent-networkpolicies", "only Custos creates, changes or deletes it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectPolicyRefused(NewWithT(t), tc.do(), tc.policy, tc.msg)
		})
	}

	g := NewWithT(t)
	var pods corev1.PodList
	g.Expect(k8sClient.List(ctx, &pods, client.InNamespace(w.ns))).To(Succeed())
	g.Expect(pods.Items).To(BeEmpty(), "nothing may be stored")
	for _, obj := range []client.Object{&batchv1.Job{}, &appsv1.ReplicaSet{}, &appsv1.Deployment{}} {
		err := k8sClient.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: "copy"}, obj)
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T copy stored: %v", obj, err)
	}
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, keyOf(w.deployment), d)).To(Succeed())
	g.Expect(d.Spec.Template.Spec.Containers[0].Command).To(BeEmpty(), "nothing may be stored")
	g.Expect(d.Spec.Replicas).To(Equal(w.deployment.Spec.Replicas), "nothing may be stored")
	s := &corev1.ServiceAccount{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: sa}, s)).To(Succeed())
	g.Expect(s.Annotations).NotTo(HaveKey("eks.amazonaws.com/role-arn"), "nothing may be stored")
	var secrets corev1.SecretList
	g.Expect(k8sClient.List(ctx, &secrets, client.InNamespace(w.ns))).To(Succeed())
	for _, sec := range secrets.Items {
		g.Expect(sec.Name).NotTo(BeElementOf("forever", "agent-held.next-api", "mine"), "nothing may be stored")
	}
	np := &networkingv1.NetworkPolicy{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: "agent-held"}, np)).To(Succeed())
	g.Expect(np.DeletionTimestamp.IsZero()).To(BeTrue(), "the agent's NetworkPolicy stays")
	g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: "agent-next"}, &networkingv1.NetworkPolicy{}))).To(BeTrue())

	// The tenant's own pods and policies are none of Custos's business.
	g.Expect(w.tenant.Create(ctx, w.plainPod())).To(Succeed())
}

// TestContainmentRunningAgentPods: what a tenant could do to a pod that
// already runs as the agent (created here as Custos's ReplicaSet would).
func TestContainmentRunningAgentPods(t *testing.T) {
	ctx := context.Background()
	w := newContainmentWorld(t)
	g := NewWithT(t)
	pod := w.agentPod()
	g.Eventually(func() error {
		pod = w.agentPod()
		return k8sClient.Create(ctx, pod)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	for _, label := range []string{custosv1alpha1.AgentLabel, custosv1alpha1.ManagedByLabel, custosv1alpha1.AgentUIDLabel} {
		t.Run("label "+label+" removed through pods/status", func(t *testing.T) {
			g := NewWithT(t)
			p := &corev1.Pod{}
			g.Expect(w.tenant.Get(ctx, keyOf(pod), p)).To(Succeed())
			delete(p.Labels, label)
			expectPolicyRefused(g, w.tenant.Status().Update(ctx, p), "custos-agent-identity",
				"not even through pods/status")
		})
	}
	t.Run("owner references changed", func(t *testing.T) {
		g := NewWithT(t)
		p := &corev1.Pod{}
		g.Expect(w.tenant.Get(ctx, keyOf(pod), p)).To(Succeed())
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "mine", UID: types.UID("0bd7c4a4-0000-4000-8000-000000000001")}}
		expectPolicyRefused(g, w.tenant.Update(ctx, p), "custos-agent-identity", "stays under its ReplicaSet")
	})
	t.Run("an ephemeral debug container", func(t *testing.T) {
		g := NewWithT(t)
		p := &corev1.Pod{}
		g.Expect(w.tenant.Get(ctx, keyOf(pod), p)).To(Succeed())
		p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: "debug", Image: p.Spec.Containers[0].Image, TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			ImagePullPolicy: corev1.PullIfNotPresent, SecurityContext: p.Spec.Containers[0].SecurityContext.DeepCopy(),
		}}}
		err := w.tenant.SubResource("ephemeralcontainers").Update(ctx, p)
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "cannot update resource") {
			t.Skip("edit does not grant pods/ephemeralcontainers here; RBAC refused it")
		}
		expectPolicyRefused(g, err, "custos-agent-identity", "spec.ephemeralContainers: Forbidden: no container joins a pod of Custos agent held")
	})

	stored := &corev1.Pod{}
	g.Expect(k8sClient.Get(ctx, keyOf(pod), stored)).To(Succeed())
	g.Expect(stored.Labels).To(Equal(pod.Labels), "nothing may be stored")
	g.Expect(stored.OwnerReferences).To(Equal(pod.OwnerReferences), "nothing may be stored")
	g.Expect(stored.Spec.EphemeralContainers).To(BeEmpty(), "nothing may be stored")
}

// TestContainmentNarrowsTenantNetworkPolicies: NetworkPolicies add up, so a
// tenant's policy that allows traffic is narrowed at admission to select no
// agent pod; the agent's own policy alone decides its network.
func TestContainmentNarrowsTenantNetworkPolicies(t *testing.T) {
	ctx := context.Background()
	w := newContainmentWorld(t)
	g := NewWithT(t)
	open := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "allow-all-egress", Namespace: w.ns},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		},
	}
	g.Expect(w.tenant.Create(ctx, open)).To(Succeed())
	notAgent := metav1.LabelSelectorRequirement{Key: custosv1alpha1.AgentLabel, Operator: metav1.LabelSelectorOpDoesNotExist}
	g.Expect(open.Spec.PodSelector.MatchExpressions).To(ConsistOf(notAgent))
	g.Expect(open.Annotations).To(HaveKeyWithValue("custos.dev/narrowed", ContainSubstring("only an agent's own NetworkPolicy selects its pods")))

	// Selecting the agent by its labels is narrowed too: it selects nothing.
	aimed := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "to-the-agent", Namespace: w.ns, Annotations: map[string]string{"team": "a"}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{
				MatchLabels:      map[string]string{custosv1alpha1.AgentLabel: w.agent.Name},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpExists}},
			},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{}},
		},
	}
	g.Expect(w.tenant.Create(ctx, aimed)).To(Succeed())
	g.Expect(aimed.Spec.PodSelector.MatchExpressions).To(ContainElements(notAgent, HaveField("Key", "tier")))
	g.Expect(aimed.Annotations).To(HaveKeyWithValue("team", "a"))
	g.Expect(aimed.Annotations).To(HaveKey("custos.dev/narrowed"))

	// A deny-only policy widens nothing and is left as written.
	deny := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "default-deny", Namespace: w.ns},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}},
	}
	g.Expect(w.tenant.Create(ctx, deny)).To(Succeed())
	g.Expect(deny.Spec.PodSelector.MatchExpressions).To(BeEmpty())
	g.Expect(deny.Annotations).NotTo(HaveKey("custos.dev/narrowed"))

	// Taking the narrowing out again is narrowed again.
	g.Expect(w.tenant.Get(ctx, keyOf(open), open)).To(Succeed())
	open.Spec.PodSelector.MatchExpressions = nil
	g.Expect(w.tenant.Update(ctx, open)).To(Succeed())
	g.Expect(open.Spec.PodSelector.MatchExpressions).To(ConsistOf(notAgent))
}

// TestContainmentOneOwnerPerName: names cannot collide across agents, and
// Custos adopts nothing it did not make for this very Agent, even an object
// carrying its labels.
func TestContainmentOneOwnerPerName(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("name")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)

	// Agent invoice with credential reconciler-ledger-api beside agent
	// invoice-reconciler with credential ledger-api: one Secret each.
	short := newAgent(ns, "invoice", tenant)
	short.Spec.Credentials[0].Name = "reconciler-ledger-api"
	long := newAgent(ns, "invoice-reconciler", tenant)
	g.Expect(k8sClient.Create(ctx, short)).To(Succeed())
	g.Expect(k8sClient.Create(ctx, long)).To(Succeed())
	for _, a := range []*custosv1alpha1.Agent{short, long} {
		g.Eventually(func(g Gomega) {
			expectCondition(g, getAgent(g, a), custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	}
	for name, a := range map[string]*custosv1alpha1.Agent{"agent-invoice.reconciler-ledger-api": short, "agent-invoice-reconciler.ledger-api": long} {
		sec := &corev1.Secret{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sec)).To(Succeed())
		g.Expect(sec.Labels).To(HaveKeyWithValue(custosv1alpha1.AgentUIDLabel, string(getAgent(g, a).UID)))
	}

	// Look-alikes carrying Custos's labels, made before the agent (here by
	// a cluster admin: the API server refuses them to tenants).
	lookalike := map[string]string{
		custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue,
		custosv1alpha1.AgentLabel:     "squatted",
		custosv1alpha1.TenantLabel:    tenant,
	}
	g.Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "agent-squatted", Namespace: ns, Labels: lookalike,
		Annotations: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::999999999999:role/other-tenant"}}})).To(Succeed())
	g.Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "agent-squatted.ledger-api", Namespace: ns, Labels: lookalike},
		Type: custosv1alpha1.LeaseSecretType, StringData: map[string]string{"token": "planted"}})).To(Succeed())
	squatted := newAgent(ns, "squatted", tenant)
	g.Expect(k8sClient.Create(ctx, squatted)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, squatted)
		expectCondition(g, a, custosv1alpha1.IdentityBoundCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason)
		g.Expect(conditionMessage(a, custosv1alpha1.IdentityBoundCondition)).To(ContainSubstring("ServiceAccount " + ns + "/agent-squatted exists and was not made by Custos for this agent"))
		expectCondition(g, a, custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.NameConflictReason)
		g.Expect(eventReasons(g, a)).To(ContainElement(custosv1alpha1.NameConflictReason))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	sa := &corev1.ServiceAccount{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-squatted"}, sa)).To(Succeed())
	g.Expect(sa.OwnerReferences).To(BeEmpty(), "not adopted")
	g.Expect(sa.Annotations).To(HaveKeyWithValue("eks.amazonaws.com/role-arn", "arn:aws:iam::999999999999:role/other-tenant"), "left as it is")
	g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-squatted"}, &appsv1.Deployment{}))).To(BeTrue(),
		"no pod runs without its own identity")

	// With the identity free, the planted lease is still not the agent's.
	g.Expect(k8sClient.Delete(ctx, sa)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, squatted)
		expectCondition(g, a, custosv1alpha1.IdentityBoundCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		expectCondition(g, a, custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason)
		g.Expect(conditionMessage(a, custosv1alpha1.CredentialsIssuedCondition)).To(ContainSubstring("Secret agent-squatted.ledger-api exists and was not made by Custos for this agent"))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	planted := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-squatted.ledger-api"}, planted)).To(Succeed())
	g.Expect(planted.Data).To(HaveKeyWithValue("token", []byte("planted")), "no lease was written into it")
	g.Expect(planted.OwnerReferences).To(BeEmpty(), "not adopted")
}

// TestContainmentCustosOwnsThePodTemplate: what anyone with the rights to
// write the agent's Deployment anyway (a cluster admin) adds to its spec is
// removed, and recorded.
func TestContainmentCustosOwnsThePodTemplate(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	w := newContainmentWorld(t)
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, keyOf(w.deployment), d)).To(Succeed())
	c := &d.Spec.Template.Spec.Containers[0]
	c.Command = []string{"/bin/sh", "-c", "exfiltrate"}
	c.Env = append(c.Env, corev1.EnvVar{Name: "OTHER", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "agent-other.ledger-api"}, Key: "token"}}})
	d.Spec.Template.Spec.Volumes = append(d.Spec.Template.Spec.Volumes, corev1.Volume{Name: "sts", VolumeSource: corev1.VolumeSource{
		Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
			Audience: "sts.amazonaws.com", Path: "token"}}}}}})
	g.Expect(k8sClient.Update(ctx, d, client.FieldOwner("kubectl-edit"))).To(Succeed())

	g.Eventually(func(g Gomega) {
		got := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, keyOf(w.deployment), got)).To(Succeed())
		g.Expect(got.Spec.Template.Spec.Containers[0].Command).To(BeEmpty())
		g.Expect(got.Spec.Template.Spec.Containers[0].Env).NotTo(ContainElement(HaveField("Name", "OTHER")))
		g.Expect(got.Spec.Template.Spec.Volumes).NotTo(ContainElement(HaveField("Name", "sts")))
		g.Expect(got.Spec.Template.Spec).To(Equal(w.deployment.Spec.Template.Spec), "exactly what Custos renders")
		for _, f := range got.ManagedFields {
			g.Expect(f.Manager).NotTo(Equal("kubectl-edit"))
		}
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(eventReasons(g, w.agent)).To(ContainElement("ForeignChangeRemoved"))
	g.Expect(auditActions(auditTrail(w.agent.UID))).To(ContainElement("workload.foreignRemoved"))
}

// TestContainmentNetworkIsolatedTellsTheEffectivePolicy: NetworkIsolated
// says what is in force, the union of every policy that selects the
// agent's pods, not just Custos's own.
func TestContainmentNetworkIsolatedTellsTheEffectivePolicy(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	w := newContainmentWorld(t)
	// A cluster admin may write a policy named like an agent's, which the
	// API server does not narrow; a tenant cannot.
	wide := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-everything", Namespace: w.ns},
		Spec: networkingv1.NetworkPolicySpec{
			Egress:      []networkingv1.NetworkPolicyEgressRule{{}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		},
	}
	g.Expect(k8sClient.Create(ctx, wide)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, w.agent)
		expectCondition(g, a, custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.NetworkPolicyWidenedReason)
		g.Expect(conditionMessage(a, custosv1alpha1.NetworkIsolatedCondition)).To(ContainSubstring("NetworkPolicy agent-everything also select(s) the agent's pods"))
		expectCondition(g, a, custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.NetworkPolicyWidenedReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(k8sClient.Delete(ctx, wide)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, w.agent)
		expectCondition(g, a, custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Custos's own policy selects every pod labelled as the agent's.
	own := &networkingv1.NetworkPolicy{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: "agent-held"}, own)).To(Succeed())
	g.Expect(own.Spec.PodSelector).To(Equal(metav1.LabelSelector{MatchLabels: map[string]string{custosv1alpha1.AgentLabel: "held"}}))
}

// TestContainmentSuspendedMeansNoPodRunsAsTheAgent: Suspended and
// Decommissioned are reported only once no pod runs as the agent's
// ServiceAccount, labelled or not.
func TestContainmentSuspendedMeansNoPodRunsAsTheAgent(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	w := newContainmentWorld(t)
	// A pod running as the agent outside its Deployment (here a bare one,
	// made by a cluster admin), with a finalizer that holds it until the
	// test lets it go, as a kubelet would while the pod stops.
	stray := w.agentPod()
	stray.Finalizers = []string{"test.custos.dev/hold"}
	g.Eventually(func() error { return k8sClient.Create(ctx, stray.DeepCopy()) }).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	var pods corev1.PodList
	g.Expect(k8sClient.List(ctx, &pods, client.InNamespace(w.ns))).To(Succeed())
	g.Expect(pods.Items).To(HaveLen(1))
	stray = &pods.Items[0]

	updateAgent(g, w.agent, func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended })
	g.Eventually(func(g Gomega) {
		a := getAgent(g, w.agent)
		expectCondition(g, a, custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.StoppingReason)
		g.Expect(conditionMessage(a, custosv1alpha1.ReadyCondition)).To(ContainSubstring("Stopping: 1 pod(s) still run as ServiceAccount agent-held (" + stray.Name + ")"))
		g.Expect(a.Status.Lifecycle.Phase).NotTo(Equal(custosv1alpha1.AgentPhaseSuspended))
		p := &corev1.Pod{}
		g.Expect(k8sClient.Get(ctx, keyOf(stray), p)).To(Succeed())
		g.Expect(p.DeletionTimestamp.IsZero()).To(BeFalse(), "Custos deleted it")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Once it is gone, the agent is Suspended.
	p := &corev1.Pod{}
	g.Expect(k8sClient.Get(ctx, keyOf(stray), p)).To(Succeed())
	p.Finalizers = nil
	g.Expect(k8sClient.Update(ctx, p)).To(Succeed())
	g.Eventually(func(g Gomega) {
		// Scaled to zero: envtest runs no deployment controller to say so.
		g.Expect(fixtures.MarkRolledOut(k8sClient, w.ns, "agent-held")).To(Succeed())
		a := getAgent(g, w.agent)
		g.Expect(a.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseSuspended))
		expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SuspendedBySpecReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// The same holds for decommission: the NetworkPolicy stays until no
	// pod runs as the agent.
	updateAgent(g, w.agent, func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleActive })
	late := w.agentPod()
	late.Finalizers = []string{"test.custos.dev/hold"}
	g.Eventually(func() error {
		late = w.agentPod()
		late.Finalizers = []string{"test.custos.dev/hold"}
		return k8sClient.Create(ctx, late)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	updateAgent(g, w.agent, func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleDecommissioned })
	g.Eventually(func(g Gomega) {
		a := getAgent(g, w.agent)
		g.Expect(a.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseDecommissioning))
		g.Expect(conditionMessage(a, custosv1alpha1.ReadyCondition)).To(ContainSubstring("Pod " + late.Name))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	np := &networkingv1.NetworkPolicy{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: "agent-held"}, np)).To(Succeed(), "its NetworkPolicy stays while a pod runs as the agent")
	g.Expect(k8sClient.Get(ctx, keyOf(late), p)).To(Succeed())
	p.Finalizers = nil
	g.Expect(k8sClient.Update(ctx, p)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, w.agent)
		g.Expect(a.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseDecommissioned))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}
