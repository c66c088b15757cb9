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
)

// TestEvaluatorFeeds: with custos-gateway and custos-sts installed, each
// keeps its trail in a segment store on an emptyDir (besides stdout) and
// serves it to the manager's ServiceAccount alone; the manager reads each
// pod's, verifying it against the ca.crt of the component's TLS Secret
// (never its key) for its Service's name. evaluator.feeds.enabled=false
// leaves them on stdout, and the manager without their CAs.
func TestEvaluatorFeeds(t *testing.T) {
	g := NewWithT(t)
	m := render(t, namespace, gatewayOn...)
	reader := "--audit-feed-readers=system:serviceaccount:" + namespace + ":custos-manager"
	for _, name := range []string{"custos-gateway", "custos-sts"} {
		pod := m.deploymentNamed(t, name).Spec.Template.Spec
		g.Expect(pod.Containers[0].Args).To(ContainElements("--audit-sink=both", "--audit-dir=/var/lib/custos/audit", reader), name)
		g.Expect(pod.Containers[0].VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "audit", MountPath: "/var/lib/custos/audit"}), name)
		g.Expect(volume(t, pod, "audit").EmptyDir).To(HaveValue(HaveField("SizeLimit.String()", "1Gi")), name)
	}
	g.Expect(m.deploymentNamed(t, "custos-sts").Spec.Template.Spec.Containers[0].Args).To(ContainElement("--audit-feed-drain=10s"),
		"its delay (5 s), drain (10 s) and the feed's within its 30 s")
	mgr := m.deployment(t).Spec.Template.Spec
	g.Expect(mgr.Containers[0].Args).To(ContainElements(
		"--evaluate-interval=10s", "--finding-retention=720h", "--finding-review-within=24h",
		"--evaluate-sts-ca-file=/var/run/custos/sts-ca/ca.crt",
		"--evaluate-sts-server-name=custos-sts."+namespace+".svc",
		"--evaluate-gateway-ca-file=/var/run/custos/gateway-ca/ca.crt",
		"--evaluate-gateway-server-name=custos-gateway."+namespace+".svc",
		// The pods it reads are the ones its NetworkPolicies name.
		"--gateway-port=8443", "--sts-port=8443"))
	for secret, vol := range map[string]string{"sts-tls": "sts-ca", "gateway-tls": "gateway-ca"} {
		s := volume(t, mgr, vol).Secret
		g.Expect(s).NotTo(BeNil(), vol)
		g.Expect(s.SecretName).To(Equal(secret))
		g.Expect(s.Items).To(Equal([]corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}), "the CA only, never the serving key")
	}

	off := render(t, namespace, append(gatewayOn, "evaluator.feeds.enabled=false", "evaluator.interval=30s")...)
	for _, name := range []string{"custos-gateway", "custos-sts"} {
		args := off.deploymentNamed(t, name).Spec.Template.Spec.Containers[0].Args
		g.Expect(args).To(ContainElement("--audit-sink=stdout"), name)
		g.Expect(args).NotTo(ContainElement(HavePrefix("--audit-feed-readers")), name)
	}
	mgr = off.deployment(t).Spec.Template.Spec
	g.Expect(mgr.Containers[0].Args).To(ContainElement("--evaluate-interval=30s"))
	g.Expect(mgr.Containers[0].Args).NotTo(ContainElement(HavePrefix("--evaluate-gateway")))
	for _, v := range mgr.Volumes {
		g.Expect(v.Name).NotTo(BeElementOf("sts-ca", "gateway-ca"))
	}
	// Without the components, nothing of them.
	g.Expect(render(t, namespace).deployment(t).Spec.Template.Spec.Containers[0].Args).NotTo(ContainElement(HavePrefix("--evaluate-sts")))
}

// TestJudgeValues: the judge's interval, and its CAs from a ConfigMap's
// ca.crt when given (none by default).
func TestJudgeValues(t *testing.T) {
	g := NewWithT(t)
	mgr := render(t, namespace).deployment(t).Spec.Template.Spec
	g.Expect(mgr.Containers[0].Args).To(ContainElement("--judge-interval=30s"))
	g.Expect(mgr.Containers[0].Args).NotTo(ContainElement(HavePrefix("--judge-ca-file")))
	mgr = render(t, namespace, "evaluator.judge.caConfigMap=judge-ca-bundle", "evaluator.judge.interval=1m").deployment(t).Spec.Template.Spec
	g.Expect(mgr.Containers[0].Args).To(ContainElements("--judge-interval=1m", "--judge-ca-file=/var/run/custos/judge-ca/ca.crt"))
	g.Expect(mgr.Containers[0].VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "judge-ca", MountPath: "/var/run/custos/judge-ca", ReadOnly: true}))
	cm := volume(t, mgr, "judge-ca").ConfigMap
	g.Expect(cm).NotTo(BeNil())
	g.Expect(cm.Name).To(Equal("judge-ca-bundle"))
	g.Expect(cm.Items).To(Equal([]corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}))
}
