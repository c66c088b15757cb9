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

package chart

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// TestSTS: custos-sts is off by default; on, it runs as two restricted
// replicas behind a PDB, with a role of its own that holds only what the
// exchange reads and its keys' Secrets, and never without TLS.
func TestSTS(t *testing.T) {
	g := NewWithT(t)
	g.Expect(render(t, namespace).ofKind("Deployment")).To(HaveLen(1), "only the manager by default")

	g.Expect(renderError(t, "sts.enabled=true")).To(ContainSubstring("sts.enabled needs a serving certificate"))

	m := render(t, namespace, "sts.enabled=true", "sts.tls.secretName=sts-tls")
	d := into[appsv1.Deployment](t, m.find(t, "Deployment", "custos-sts"))
	g.Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(2))))
	pod := d.Spec.Template.Spec
	g.Expect(pod.ServiceAccountName).To(Equal("custos-sts"))
	g.Expect(pod.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
	g.Expect(pod.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
	c := pod.Containers[0]
	g.Expect(c.Command).To(Equal([]string{"/custos-sts"}))
	g.Expect(c.Args).To(ContainElements("--tls-cert-dir=/var/run/custos/sts-tls", "--namespace=$(POD_NAMESPACE)",
		"--issuer-base=https://custos-sts."+namespace+".svc", "--audience=custos-sts", "--audit-sink=both"))
	g.Expect(c.SecurityContext.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
	g.Expect(c.SecurityContext.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
	g.Expect(c.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
	g.Expect(pod.Volumes).To(ContainElement(HaveField("Secret.SecretName", "sts-tls")))
	g.Expect(d.Spec.Selector.MatchLabels).To(HaveKeyWithValue("app.kubernetes.io/component", "sts"),
		"apart from the manager's pods")

	pdb := into[policyv1.PodDisruptionBudget](t, m.find(t, "PodDisruptionBudget", "custos-sts"))
	g.Expect(pdb.Spec.Selector.MatchLabels).To(Equal(d.Spec.Selector.MatchLabels))
	svc := into[corev1.Service](t, m.find(t, "Service", "custos-sts"))
	g.Expect(svc.Spec.Selector).To(Equal(d.Spec.Selector.MatchLabels))

	cr := into[rbacv1.ClusterRole](t, m.find(t, "ClusterRole", "custos-sts"))
	g.Expect(cr.Rules).To(ConsistOf(
		rbacv1.PolicyRule{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"custos.dev"}, Resources: []string{"agents", "toolsets", "databoundaries"}, Verbs: []string{"get", "list", "watch"}},
		rbacv1.PolicyRule{APIGroups: []string{"custos.dev"}, Resources: []string{"agentfreezes"}, Verbs: []string{"get", "list", "watch"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
	), "no Secrets cluster-wide, nothing it does not read")
	role := into[rbacv1.Role](t, m.find(t, "Role", "custos-sts"))
	g.Expect(role.Namespace).To(Equal(namespace))
	g.Expect(role.Rules).To(ConsistOf(
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "create", "update"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}},
	), "its keys, and the revocation lists it only reads")
	// Revoking is for people the platform binds to the revoker Role: the
	// STS itself never writes a revocation list.
	revoker := into[rbacv1.Role](t, m.find(t, "Role", "custos-sts-revoker"))
	g.Expect(revoker.Rules).To(ConsistOf(
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "create", "update"}},
	))

	// cert-manager issues the certificate when none is given.
	m = render(t, namespace, "sts.enabled=true", "certManager.enabled=true")
	cert := m.find(t, "Certificate", "custos-sts")
	g.Expect(cert.Object["spec"]).To(HaveKeyWithValue("dnsNames", ConsistOf("custos-sts."+namespace+".svc", "custos-sts."+namespace+".svc.cluster.local")))
	g.Expect(into[appsv1.Deployment](t, m.find(t, "Deployment", "custos-sts")).Spec.Template.Spec.Volumes).
		To(ContainElement(HaveField("Secret.SecretName", "custos-sts-tls")))
}
