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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
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

var gateway = InClusterPeer{
	Namespace:   "custos-system",
	PodSelector: map[string]string{"app.kubernetes.io/component": "gateway", "app.kubernetes.io/name": "custos"},
	Port:        8443,
}

// TestRenderGatewayEgress: in gateway mode an agent's egress is DNS, the
// gateway and the STS, each on its pods' own port.
func TestRenderGatewayEgress(t *testing.T) {
	g := NewWithT(t)
	sts := InClusterPeer{Namespace: "custos-system", PodSelector: map[string]string{"app.kubernetes.io/component": "sts"}, Port: 9443}
	np := Render("agent-x", "ns", map[string]string{"custos.dev/agent": "x"}, DefaultDNS, &Egress{InCluster: []InClusterPeer{gateway, sts}})
	g.Expect(np.Spec.Egress).To(HaveLen(3))
	for i, p := range []InClusterPeer{gateway, sts} {
		rule := np.Spec.Egress[i+1]
		g.Expect(rule.To).To(HaveLen(1))
		g.Expect(rule.To[0].NamespaceSelector.MatchLabels).To(Equal(map[string]string{namespaceNameLabel: "custos-system"}))
		g.Expect(rule.To[0].PodSelector.MatchLabels).To(Equal(p.PodSelector))
		g.Expect(rule.Ports).To(HaveLen(1))
		g.Expect(rule.Ports[0].Port.IntValue()).To(Equal(int(p.Port)))
	}
}

// TestToolServer: a tool server's pods, and never an agent's, admit the
// gateway's pods on the endpoint's port; the policy governs ingress alone.
func TestToolServer(t *testing.T) {
	g := NewWithT(t)
	np := ToolServer("custos-toolset-tools.ledger", "tools", map[string]string{"app": "ledger"}, 8080, gateway)
	g.Expect(*np.Name).To(Equal("custos-toolset-tools.ledger"))
	g.Expect(*np.Namespace).To(Equal("tools"))
	g.Expect(np.Spec.PolicyTypes).To(ConsistOf(networkingv1.PolicyTypeIngress))
	g.Expect(np.Spec.Egress).To(BeEmpty())
	g.Expect(np.Spec.PodSelector.MatchLabels).To(Equal(map[string]string{"app": "ledger"}))
	g.Expect(np.Spec.PodSelector.MatchExpressions).To(HaveLen(1))
	g.Expect(*np.Spec.PodSelector.MatchExpressions[0].Key).To(Equal("custos.dev/agent"))
	g.Expect(*np.Spec.PodSelector.MatchExpressions[0].Operator).To(Equal(metav1.LabelSelectorOpDoesNotExist))
	g.Expect(np.Spec.Ingress).To(HaveLen(1))
	in := np.Spec.Ingress[0]
	g.Expect(in.From).To(HaveLen(1))
	g.Expect(in.From[0].NamespaceSelector.MatchLabels).To(Equal(map[string]string{namespaceNameLabel: "custos-system"}))
	g.Expect(in.From[0].PodSelector.MatchLabels).To(Equal(gateway.PodSelector))
	g.Expect(in.From[0].IPBlock).To(BeNil())
	g.Expect(in.Ports).To(HaveLen(1))
	g.Expect(*in.Ports[0].Protocol).To(Equal(corev1.ProtocolTCP))
	g.Expect(in.Ports[0].Port.IntValue()).To(Equal(8080))
}

func TestGovernsIngress(t *testing.T) {
	g := NewWithT(t)
	g.Expect(GovernsIngress(&networkingv1.NetworkPolicySpec{})).To(BeTrue(), "no types: Ingress by default")
	g.Expect(GovernsIngress(&networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}})).To(BeTrue())
	g.Expect(GovernsIngress(&networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}})).To(BeFalse())
}

// TestAdmitsOnly: only rules whose every peer is exactly the gateway's
// pods admit the gateway alone to the tool server's port; anything else is
// taken to admit more. Rules that reach other ports do not count.
func TestAdmitsOnly(t *testing.T) {
	gw := networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{namespaceNameLabel: "custos-system"}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: gateway.PodSelector},
	}
	with := func(change func(*networkingv1.NetworkPolicyPeer)) networkingv1.NetworkPolicyPeer {
		p := *gw.DeepCopy()
		change(&p)
		return p
	}
	rules := func(peers ...networkingv1.NetworkPolicyPeer) *networkingv1.NetworkPolicySpec {
		return &networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: peers}}}
	}
	everyoneOn := func(ports ...networkingv1.NetworkPolicyPort) *networkingv1.NetworkPolicySpec {
		return &networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: ports}}}
	}
	num := func(n int32) *intstr.IntOrString { return ptr.To(intstr.FromInt32(n)) }
	udp := corev1.ProtocolUDP
	cases := []struct {
		name string
		spec *networkingv1.NetworkPolicySpec
		want bool
	}{
		{"no rule: deny all", &networkingv1.NetworkPolicySpec{}, true},
		{"the gateway", rules(gw), true},
		{"the gateway twice", &networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{gw}}, {From: []networkingv1.NetworkPolicyPeer{gw}}}}, true},
		{"a rule without peers: everyone", everyoneOn(), false},
		{"everyone on the tool server's port", everyoneOn(networkingv1.NetworkPolicyPort{Port: num(8080)}), false},
		{"everyone on a range with the tool server's port", everyoneOn(networkingv1.NetworkPolicyPort{Port: num(8000), EndPort: ptr.To(int32(8100))}), false},
		{"everyone on a named port", everyoneOn(networkingv1.NetworkPolicyPort{Port: ptr.To(intstr.FromString("metrics"))}), false},
		{"everyone on every TCP port", everyoneOn(networkingv1.NetworkPolicyPort{}), false},
		{"everyone on another port", everyoneOn(networkingv1.NetworkPolicyPort{Port: num(9090)}), true},
		{"everyone on a range without it", everyoneOn(networkingv1.NetworkPolicyPort{Port: num(9000), EndPort: ptr.To(int32(9100))}), true},
		{"everyone on UDP", everyoneOn(networkingv1.NetworkPolicyPort{Protocol: &udp, Port: num(8080)}), true},
		{"the gateway and another peer", rules(gw, networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}}), false},
		{"every pod of the gateway's namespace", rules(with(func(p *networkingv1.NetworkPolicyPeer) { p.PodSelector = nil })), false},
		{"those pods in every namespace", rules(with(func(p *networkingv1.NetworkPolicyPeer) { p.NamespaceSelector = nil })), false},
		{"another namespace", rules(with(func(p *networkingv1.NetworkPolicyPeer) {
			p.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{namespaceNameLabel: "tools"}}
		})), false},
		{"fewer pod labels", rules(with(func(p *networkingv1.NetworkPolicyPeer) {
			p.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "custos"}}
		})), false},
		{"an expression", rules(with(func(p *networkingv1.NetworkPolicyPeer) {
			p.PodSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "x", Operator: metav1.LabelSelectorOpDoesNotExist}}
		})), false},
		{"an IP block", rules(with(func(p *networkingv1.NetworkPolicyPeer) {
			p.IPBlock = &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}
		})), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(AdmitsOnly(tc.spec, gateway, 8080)).To(Equal(tc.want))
		})
	}
}
