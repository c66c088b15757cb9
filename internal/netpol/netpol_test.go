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

package netpol

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

func TestRenderDenyAllWithoutEgress(t *testing.T) {
	g := NewWithT(t)
	np := Render("agent-x", "ns", map[string]string{"custos.dev/agent": "x"}, DefaultDNS, nil)
	g.Expect(np.Spec.PolicyTypes).To(ConsistOf(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress))
	g.Expect(np.Spec.Ingress).To(BeEmpty())
	g.Expect(np.Spec.Egress).To(BeEmpty(), "no rule at all: not even DNS")
	g.Expect(np.Spec.PodSelector.MatchLabels).To(Equal(map[string]string{"custos.dev/agent": "x"}))
}

func TestRenderEgress(t *testing.T) {
	g := NewWithT(t)
	np := Render("agent-x", "ns", map[string]string{"custos.dev/agent": "x"}, DefaultDNS, &Egress{
		InCluster: []InClusterPeer{{Namespace: "tools", PodSelector: map[string]string{"app": "ledger"}, Port: 8080}},
		External:  []ExternalPeer{{CIDRs: []string{"203.0.113.0/24", "198.51.100.0/24"}, Port: 443}},
	})
	g.Expect(np.Spec.Egress).To(HaveLen(3))

	dns := np.Spec.Egress[0]
	g.Expect(dns.To[0].NamespaceSelector.MatchLabels).To(Equal(map[string]string{namespaceNameLabel: "kube-system"}))
	g.Expect(dns.To[0].PodSelector.MatchLabels).To(Equal(map[string]string{"k8s-app": "kube-dns"}))
	g.Expect(*dns.Ports[0].Protocol).To(Equal(corev1.ProtocolUDP))
	g.Expect(dns.Ports[0].Port.IntValue()).To(Equal(53))
	g.Expect(*dns.Ports[1].Protocol).To(Equal(corev1.ProtocolTCP))

	tools := np.Spec.Egress[1]
	g.Expect(tools.To[0].NamespaceSelector.MatchLabels).To(Equal(map[string]string{namespaceNameLabel: "tools"}))
	g.Expect(tools.To[0].PodSelector.MatchLabels).To(Equal(map[string]string{"app": "ledger"}))
	g.Expect(tools.Ports[0].Port.IntValue()).To(Equal(8080))

	ext := np.Spec.Egress[2]
	g.Expect(ext.To).To(HaveLen(2))
	g.Expect(*ext.To[0].IPBlock.CIDR).To(Equal("198.51.100.0/24"), "CIDRs are sorted so the policy is stable")
	g.Expect(*ext.To[1].IPBlock.CIDR).To(Equal("203.0.113.0/24"))
	g.Expect(ext.Ports[0].Port.IntValue()).To(Equal(443))
}
