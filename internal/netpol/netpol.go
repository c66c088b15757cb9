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

// Package netpol renders an agent's NetworkPolicy: default deny in both
// directions, DNS to the cluster's DNS, and egress only to the endpoints of
// the agent's Toolsets that its DataBoundary allows, or, with custos-gateway,
// to the gateway and custos-sts alone. It also renders the NetworkPolicy that
// lets only custos-gateway in to a tool server.
package netpol

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// namespaceNameLabel is set by the API server on every namespace; selecting
// on it cannot be forged by whoever edits a namespace's other labels.
const namespaceNameLabel = "kubernetes.io/metadata.name"

// DNS locates the cluster's DNS servers.
type DNS struct {
	// Namespace the DNS pods run in.
	Namespace string
	// PodSelector selects the DNS pods.
	PodSelector map[string]string
}

// DefaultDNS is the DNS of most clusters: CoreDNS or kube-dns in kube-system.
var DefaultDNS = DNS{Namespace: "kube-system", PodSelector: map[string]string{"k8s-app": "kube-dns"}}

// InClusterPeer is pods of a namespace listening on a port: a tool
// server's, custos-gateway's or custos-sts's. Port is the pods' own (the
// container port): NetworkPolicies see traffic after a Service has sent it
// on to a pod.
type InClusterPeer struct {
	Namespace   string
	PodSelector map[string]string
	Port        int32
}

// ExternalPeer is a tool server outside the cluster.
type ExternalPeer struct {
	CIDRs []string
	Port  int32
}

// Egress is where an agent may connect besides DNS.
type Egress struct {
	InCluster []InClusterPeer
	External  []ExternalPeer
}

// Render renders the NetworkPolicy named name in namespace for the pods
// selected by podSelector. A nil egress denies everything, DNS included:
// that is the policy of an agent that is not Active.
func Render(name, namespace string, podSelector map[string]string, dns DNS, egress *Egress) *networkingv1ac.NetworkPolicyApplyConfiguration {
	spec := networkingv1ac.NetworkPolicySpec().
		WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(podSelector)).
		// Listing both types with no ingress rule denies all ingress, and
		// with no egress rule (below, when not Active) all egress.
		WithPolicyTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress)
	if egress != nil {
		spec.WithEgress(dnsRule(dns))
		for _, p := range egress.InCluster {
			spec.WithEgress(networkingv1ac.NetworkPolicyEgressRule().
				WithTo(podsOf(p.Namespace, p.PodSelector)).
				WithPorts(port(corev1.ProtocolTCP, p.Port)))
		}
		for _, p := range egress.External {
			rule := networkingv1ac.NetworkPolicyEgressRule().WithPorts(port(corev1.ProtocolTCP, p.Port))
			cidrs := slices.Clone(p.CIDRs)
			slices.Sort(cidrs)
			for _, c := range cidrs {
				rule.WithTo(networkingv1ac.NetworkPolicyPeer().WithIPBlock(networkingv1ac.IPBlock().WithCIDR(c)))
			}
			spec.WithEgress(rule)
		}
	}
	return networkingv1ac.NetworkPolicy(name, namespace).WithSpec(spec)
}

// ToolServer renders the NetworkPolicy named name in namespace that lets
// only the pods of gateway in to a tool server's pods, those podSelector
// selects, on toolPort. It governs ingress alone: what the tool server itself
// connects to is its owner's business. It never selects an agent's pods
// (whose only policy is their agent's own), which also keeps the API
// server's narrowing of tenants' policies (config/crd/policies/
// agent-networkpolicies.yaml) from changing it.
func ToolServer(name, namespace string, podSelector map[string]string, toolPort int32, gateway InClusterPeer) *networkingv1ac.NetworkPolicyApplyConfiguration {
	spec := networkingv1ac.NetworkPolicySpec().
		WithPodSelector(metav1ac.LabelSelector().
			WithMatchLabels(podSelector).
			WithMatchExpressions(metav1ac.LabelSelectorRequirement().
				WithKey(custosv1alpha1.AgentLabel).
				WithOperator(metav1.LabelSelectorOpDoesNotExist))).
		WithPolicyTypes(networkingv1.PolicyTypeIngress).
		WithIngress(networkingv1ac.NetworkPolicyIngressRule().
			WithFrom(podsOf(gateway.Namespace, gateway.PodSelector)).
			WithPorts(port(corev1.ProtocolTCP, toolPort)))
	return networkingv1ac.NetworkPolicy(name, namespace).WithSpec(spec)
}

// GovernsIngress reports whether spec's ingress rules are in force: its
// policy types name Ingress, or name nothing (the API server's default,
// which always includes Ingress).
func GovernsIngress(spec *networkingv1.NetworkPolicySpec) bool {
	return len(spec.PolicyTypes) == 0 || slices.Contains(spec.PolicyTypes, networkingv1.PolicyTypeIngress)
}

// AdmitsOnly reports whether every ingress rule of spec that reaches TCP
// port toolPort admits the pods of from, selected exactly as ToolServer
// selects them, and nothing else. A rule without ports reaches every port,
// and one with a named port is taken to reach toolPort (its number is the
// pods' business); a rule without peers admits everyone; a peer that
// selects otherwise (other labels, an expression, an IP block) is taken to
// admit more, even where it happens not to.
func AdmitsOnly(spec *networkingv1.NetworkPolicySpec, from InClusterPeer, toolPort int32) bool {
	for _, rule := range spec.Ingress {
		if !reaches(rule.Ports, toolPort) {
			continue
		}
		if len(rule.From) == 0 {
			return false
		}
		for _, p := range rule.From {
			if p.IPBlock != nil || !selectsExactly(p.NamespaceSelector, map[string]string{namespaceNameLabel: from.Namespace}) ||
				!selectsExactly(p.PodSelector, from.PodSelector) {
				return false
			}
		}
	}
	return true
}

// reaches: a rule with ports reaches TCP port n.
func reaches(ports []networkingv1.NetworkPolicyPort, n int32) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		switch {
		case p.Port == nil, p.Port.Type == intstr.String:
			return true
		case p.EndPort != nil:
			if p.Port.IntVal <= n && n <= *p.EndPort {
				return true
			}
		case p.Port.IntVal == n:
			return true
		}
	}
	return false
}

// selectsExactly: sel is matchLabels alone, and those are want.
func selectsExactly(sel *metav1.LabelSelector, want map[string]string) bool {
	if sel == nil || len(sel.MatchExpressions) > 0 || len(sel.MatchLabels) != len(want) {
		return false
	}
	for k, v := range want {
		if got, ok := sel.MatchLabels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// podsOf is the peer of the pods podSelector selects in namespace. The
// namespace is selected by the name label the API server sets, which no
// tenant can forge.
func podsOf(namespace string, podSelector map[string]string) *networkingv1ac.NetworkPolicyPeerApplyConfiguration {
	return networkingv1ac.NetworkPolicyPeer().
		WithNamespaceSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{namespaceNameLabel: namespace})).
		WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(podSelector))
}

func dnsRule(dns DNS) *networkingv1ac.NetworkPolicyEgressRuleApplyConfiguration {
	return networkingv1ac.NetworkPolicyEgressRule().
		WithTo(podsOf(dns.Namespace, dns.PodSelector)).
		WithPorts(port(corev1.ProtocolUDP, 53), port(corev1.ProtocolTCP, 53))
}

func port(protocol corev1.Protocol, n int32) *networkingv1ac.NetworkPolicyPortApplyConfiguration {
	return networkingv1ac.NetworkPolicyPort().WithProtocol(protocol).WithPort(intstr.FromInt32(n))
}
