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
// the agent's Toolsets that its DataBoundary allows.
package netpol

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
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

// InClusterPeer is a tool server's pods.
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
				WithTo(networkingv1ac.NetworkPolicyPeer().
					WithNamespaceSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{namespaceNameLabel: p.Namespace})).
					WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(p.PodSelector))).
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

func dnsRule(dns DNS) *networkingv1ac.NetworkPolicyEgressRuleApplyConfiguration {
	return networkingv1ac.NetworkPolicyEgressRule().
		WithTo(networkingv1ac.NetworkPolicyPeer().
			WithNamespaceSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{namespaceNameLabel: dns.Namespace})).
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(dns.PodSelector))).
		WithPorts(port(corev1.ProtocolUDP, 53), port(corev1.ProtocolTCP, 53))
}

func port(protocol corev1.Protocol, n int32) *networkingv1ac.NetworkPolicyPortApplyConfiguration {
	return networkingv1ac.NetworkPolicyPort().WithProtocol(protocol).WithPort(intstr.FromInt32(n))
}
