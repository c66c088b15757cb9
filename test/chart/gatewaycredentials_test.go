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
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/custos-dev/custos/internal/breaker"
)

// TestGatewayCredentialsNamespace: with custos-gateway, the leases of
// gateway-only credentials are kept in a namespace of their own, which
// the manager is told of and writes (its ClusterRole), and custos-gateway
// alone reads, with a Role there and nowhere else; without it, the
// manager keeps none.
func TestGatewayCredentialsNamespace(t *testing.T) {
	g := NewWithT(t)
	const credentials = namespace + "-gateway-credentials"
	m := render(t, namespace, gatewayOn...)

	// Never the release namespace: the gateway writes ConfigMaps in its
	// own, and custos-sts's revocation lists are ConfigMaps of the release's.
	g.Expect(renderError(t, append(gatewayOn, "gateway.credentials.namespace="+namespace, "gateway.credentials.create=false")...)).
		To(ContainSubstring("gateway.credentials.namespace must not be the release namespace"))

	ns := into[corev1.Namespace](t, m.find(t, "Namespace", credentials))
	g.Expect(ns.Labels).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "restricted"))
	g.Expect(m.deployment(t).Spec.Template.Spec.Containers[0].Args).
		To(ContainElement("--gateway-credentials-namespace=" + credentials))
	g.Expect(m.deploymentNamed(t, "custos-gateway").Spec.Template.Spec.Containers[0].Args).
		To(ContainElement("--credentials-namespace=" + credentials))

	role := into[rbacv1.Role](t, m.find(t, "Role", "custos-gateway-credentials"))
	g.Expect(role.Namespace).To(Equal(credentials))
	g.Expect(role.Rules).To(ConsistOf(
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "create", "update"}},
	), "the leases, read only; the caps the replicas hand out (custos-caps-* ConfigMaps), kept there")
	// The manager's breaker lists the replicas' usage reports there (and
	// deletes those of replicas long gone), nothing else of ConfigMaps.
	breakerRole := into[rbacv1.Role](t, m.find(t, "Role", "custos-manager-breaker"))
	g.Expect(breakerRole.Namespace).To(Equal(credentials))
	g.Expect(breakerRole.Rules).To(ConsistOf(rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"list", "delete"}}))
	breakerBinding := into[rbacv1.RoleBinding](t, m.find(t, "RoleBinding", "custos-manager-breaker"))
	g.Expect(breakerBinding.Subjects).To(Equal([]rbacv1.Subject{{Kind: "ServiceAccount", Name: "custos-manager", Namespace: namespace}}))
	// It keeps its baselines for the next leader in the release's
	// namespace: the ConfigMaps internal/breaker names, and no other.
	var kept, ticks []string
	for i := range breaker.StateShards {
		kept, ticks = append(kept, breaker.ShardName(i)), append(ticks, breaker.TickShardName(i))
	}
	kept = append(append(kept, ticks...), breaker.PendingName)
	own := into[rbacv1.Role](t, m.find(t, "Role", "custos-manager"))
	g.Expect(own.Rules).To(ContainElements(
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: kept, Verbs: []string{"get", "update", "delete"}},
	))
	// Each replica's usage report is named by its Pod.
	var env []string
	for _, e := range m.deploymentNamed(t, "custos-gateway").Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env = append(env, e.Name+"="+e.ValueFrom.FieldRef.FieldPath)
		}
	}
	g.Expect(env).To(ContainElement("POD_NAME=metadata.name"))

	b := into[rbacv1.RoleBinding](t, m.find(t, "RoleBinding", "custos-gateway-credentials"))
	g.Expect(b.Namespace).To(Equal(credentials))
	g.Expect(b.RoleRef).To(Equal(rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "custos-gateway-credentials"}))
	g.Expect(b.Subjects).To(Equal([]rbacv1.Subject{{Kind: "ServiceAccount", Name: "custos-gateway", Namespace: namespace}}))
	for _, rule := range into[rbacv1.Role](t, m.find(t, "Role", "custos-gateway")).Rules {
		g.Expect(rule.Resources).NotTo(ContainElement("secrets"), "custos-gateway reads no other Secret")
	}

	// The manager writes Secrets cluster-wide (leases in agents'
	// namespaces): that namespace's too.
	cr := into[rbacv1.ClusterRole](t, m.find(t, "ClusterRole", "custos-manager"))
	writes := false
	for _, rule := range cr.Rules {
		for _, res := range rule.Resources {
			if res == "secrets" && len(rule.APIGroups) == 1 && rule.APIGroups[0] == "" {
				g.Expect(rule.Verbs).To(ContainElements("create", "update", "patch", "delete", "get", "list", "watch"))
				writes = true
			}
		}
	}
	g.Expect(writes).To(BeTrue(), "the manager's ClusterRole writes Secrets")

	// A namespace given, and made by someone else.
	m = render(t, namespace, append(gatewayOn, "gateway.credentials.namespace=agent-leases", "gateway.credentials.create=false")...)
	g.Expect(names(m.ofKind("Namespace"))).NotTo(ContainElement("agent-leases"))
	g.Expect(m.find(t, "Role", "custos-gateway-credentials").GetNamespace()).To(Equal("agent-leases"))
	g.Expect(m.deployment(t).Spec.Template.Spec.Containers[0].Args).To(ContainElement("--gateway-credentials-namespace=agent-leases"))
	g.Expect(m.deploymentNamed(t, "custos-gateway").Spec.Template.Spec.Containers[0].Args).To(ContainElement("--credentials-namespace=agent-leases"))

	// Without custos-gateway there is none, and the manager keeps no
	// gateway-only credential.
	m = render(t, namespace, "sts.enabled=true", "sts.tls.secretName=sts-tls")
	g.Expect(m.ofKind("Namespace")).To(BeEmpty())
	g.Expect(m.deployment(t).Spec.Template.Spec.Containers[0].Args).NotTo(ContainElement(HavePrefix("--gateway-credentials-namespace")))
}
