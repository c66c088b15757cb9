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
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// TestManagerLocatesGatewayAndSTS: the manager is told where custos-sts's
// and custos-gateway's pods are, as the NetworkPolicies it writes must
// select them: their namespace, labels that select their pods and nobody
// else's, and the port their container listens on (NetworkPolicies see
// traffic after the Service). custos-sts alone lets agents reach it; the
// gateway puts the manager in gateway mode.
func TestManagerLocatesGatewayAndSTS(t *testing.T) {
	g := NewWithT(t)
	args := func(m manifests) []string { return managerArgs(t, m, "custos-manager") }

	g.Expect(args(render(t, namespace))).NotTo(ContainElement(Or(HavePrefix("--sts-"), HavePrefix("--gateway-"))),
		"neither runs by default: agents reach their Toolsets' endpoints")

	m := render(t, namespace, "sts.enabled=true", "sts.tls.secretName=sts-tls")
	g.Expect(args(m)).To(ContainElements("--sts-namespace="+namespace, "--sts-port=8443"))
	g.Expect(args(m)).NotTo(ContainElement(HavePrefix("--gateway-")), "custos-sts alone is no gateway mode")
	expectLocates(t, m, "sts", m.deploymentNamed(t, "custos-sts"))

	m = render(t, namespace, gatewayOn...)
	g.Expect(args(m)).To(ContainElements(
		"--sts-namespace="+namespace, "--sts-port=8443",
		"--gateway-namespace="+namespace, "--gateway-port=8443",
	))
	expectLocates(t, m, "sts", m.deploymentNamed(t, "custos-sts"))
	expectLocates(t, m, "gateway", m.deploymentNamed(t, "custos-gateway"))

	// Another release's names and labels follow.
	m = render(t, "platform", append([]string{"fullnameOverride=platform-custos"}, gatewayOn...)...)
	g.Expect(managerArgs(t, m, "platform-custos-manager")).To(ContainElements("--gateway-namespace=platform", "--sts-namespace=platform"))
	expectLocates(t, m, "gateway", m.deploymentNamed(t, "platform-custos-gateway"))
}

// managerArgs are the arguments of the manager of Deployment name.
func managerArgs(t *testing.T, m manifests, name string) []string {
	t.Helper()
	return m.deploymentNamed(t, name).Spec.Template.Spec.Containers[0].Args
}

// expectLocates checks the manager's --<name>-pod-labels and --<name>-port
// against the Deployment d: the labels select its pods and no other pods of
// the release, and the port is its container's https port.
func expectLocates(t *testing.T, m manifests, name string, d *appsv1.Deployment) {
	t.Helper()
	g := NewWithT(t)
	flags := map[string]string{}
	manager := strings.TrimSuffix(d.Name, "-"+name) + "-manager"
	for _, a := range managerArgs(t, m, manager) {
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "--"+name+"-") {
			flags[strings.TrimPrefix(k, "--"+name+"-")] = v
		}
	}
	g.Expect(flags).To(HaveKey("pod-labels"))
	podLabels, err := labels.ConvertSelectorToLabelsMap(flags["pod-labels"])
	g.Expect(err).NotTo(HaveOccurred())
	for _, other := range m.ofKind("Deployment") {
		od := into[appsv1.Deployment](t, other)
		g.Expect(selects(t, podLabels, od.Spec.Template.Labels)).To(Equal(od.Name == d.Name),
			"--%s-pod-labels=%s and the pods of Deployment %s", name, flags["pod-labels"], od.Name)
	}
	var port int32
	for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
		if p.Name == "https" {
			port = p.ContainerPort
		}
	}
	g.Expect(flags["port"]).To(Equal(strconv.Itoa(int(port))), "--%s-port is the container port of Deployment %s", name, d.Name)
}
