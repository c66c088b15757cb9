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
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// gatewayOn are the values that run custos-gateway beside custos-sts.
var gatewayOn = []string{"sts.enabled=true", "sts.tls.secretName=sts-tls", "gateway.enabled=true", "gateway.tls.secretName=gateway-tls"}

// TestGateway: custos-gateway is off by default and never runs without
// custos-sts or TLS; on, it runs as two restricted replicas behind a PDB,
// with a role that reads Agents and Toolsets and the revocation lists only,
// and its own pod token of custos-sts's audience as its actor token.
func TestGateway(t *testing.T) {
	g := NewWithT(t)
	m := render(t, namespace)
	g.Expect(m.ofKind("Deployment")).To(HaveLen(1), "only the manager by default")
	g.Expect(names(m.ofKind("ServiceAccount"))).NotTo(ContainElement("custos-gateway"))

	g.Expect(renderError(t, "gateway.enabled=true", "gateway.tls.secretName=gateway-tls")).
		To(ContainSubstring("gateway.enabled needs custos-sts"))
	g.Expect(renderError(t, "sts.enabled=true", "sts.tls.secretName=sts-tls", "gateway.enabled=true")).
		To(ContainSubstring("gateway.enabled needs a serving certificate"))

	m = render(t, namespace, gatewayOn...)
	d := into[appsv1.Deployment](t, m.find(t, "Deployment", "custos-gateway"))
	g.Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(2))))
	g.Expect(d.Spec.Strategy.RollingUpdate.MaxUnavailable).To(HaveValue(Equal(intstr.FromInt32(0))))
	pod := d.Spec.Template.Spec
	g.Expect(pod.ServiceAccountName).To(Equal("custos-gateway"))
	m.find(t, "ServiceAccount", "custos-gateway")
	g.Expect(pod.TerminationGracePeriodSeconds).To(HaveValue(BeEquivalentTo(45)), "a call may take the upstream timeout")
	g.Expect(pod.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
	g.Expect(pod.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
	g.Expect(pod.SecurityContext.FSGroup).To(HaveValue(BeEquivalentTo(65532)), "the non-root gateway must read its serving key")
	g.Expect(pod.Containers).To(HaveLen(1))
	c := pod.Containers[0]
	g.Expect(c.Command).To(Equal([]string{"/custos-gateway"}))
	g.Expect(c.Args).To(ContainElements(
		"--listen=:8443",
		"--tls-cert-dir=/var/run/custos/gateway-tls",
		"--issuer-base=https://custos-sts."+namespace+".svc",
		"--sts-ca-file=/etc/custos/sts-ca/ca.crt",
		"--sts-namespace=$(POD_NAMESPACE)",
		"--actor-token-file=/var/run/secrets/custos/sts/token",
		"--trust-domain=cluster.local",
		"--rate-per-agent=600", "--rate-per-agent-burst=60", "--rate-per-tool=300", "--rate-per-tool-burst=30",
		"--breaker-failures=5", "--breaker-open-for=30s", "--upstream-timeout=10s",
		"--max-response-bytes=10485760", "--max-request-bytes=1048576",
		// Its trail to stdout and to a segment store it serves the
		// manager's evaluator (TestEvaluatorFeeds).
		"--audit-sink=both",
		"--audit-dir=/var/lib/custos/audit",
		"--health-probe-bind-address=:8081",
		"--shutdown-delay=5s",
		"--zap-log-level=info",
	))
	g.Expect(c.Args).NotTo(ContainElement(HavePrefix("--upstream-ca-file")), "the system's CAs only by default")
	g.Expect(c.Env).To(ContainElement(corev1.EnvVar{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}))
	g.Expect(c.SecurityContext.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
	g.Expect(c.SecurityContext.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
	g.Expect(c.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
	g.Expect(c.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
	g.Expect(c.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
	g.Expect(c.Resources.Requests.Cpu().String()).To(Equal("50m"))
	g.Expect(c.Resources.Requests.Memory().String()).To(Equal("64Mi"))
	g.Expect(c.Resources.Limits.Memory().String()).To(Equal("256Mi"))
	g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(c.Ports).To(ContainElements(
		corev1.ContainerPort{Name: "https", ContainerPort: 8443, Protocol: corev1.ProtocolTCP},
		corev1.ContainerPort{Name: "probes", ContainerPort: 8081, Protocol: corev1.ProtocolTCP},
	))

	// Every file the gateway reads is a volume, and it writes only /tmp
	// and its audit trail.
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = vm.Name
	}
	g.Expect(mounts).To(Equal(map[string]string{
		"/var/run/custos/gateway-tls": "tls",
		"/var/run/secrets/custos/sts": "sts-token",
		"/etc/custos/sts-ca":          "sts-ca",
		"/tmp":                        "tmp",
		"/var/lib/custos/audit":       "audit",
	}))
	g.Expect(volume(t, pod, "tls").Secret).To(HaveValue(HaveField("SecretName", "gateway-tls")))
	g.Expect(volume(t, pod, "tmp").EmptyDir).NotTo(BeNil())

	// Its actor token for custos-sts: its own pod's, of custos-sts's audience.
	token := volume(t, pod, "sts-token").Projected
	g.Expect(token).NotTo(BeNil())
	g.Expect(token.Sources).To(HaveLen(1))
	g.Expect(token.Sources[0].ServiceAccountToken).To(HaveValue(Equal(corev1.ServiceAccountTokenProjection{
		Audience: "custos-sts", ExpirationSeconds: ptr.To[int64](600), Path: "token"})))
	g.Expect(volume(t, render(t, namespace, append(gatewayOn, "sts.audience=sts.acme.example")...).
		deploymentNamed(t, "custos-gateway").Spec.Template.Spec, "sts-token").Projected.Sources[0].ServiceAccountToken.Audience).
		To(Equal("sts.acme.example"), "the audience custos-sts takes actor tokens of")

	// custos-sts's CA: the ca.crt of its TLS Secret, never its key.
	stsCA := volume(t, pod, "sts-ca").Secret
	g.Expect(stsCA).NotTo(BeNil())
	g.Expect(stsCA.SecretName).To(Equal("sts-tls"))
	g.Expect(stsCA.Items).To(Equal([]corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}))
	g.Expect(stsCA.Optional).To(Or(BeNil(), HaveValue(BeFalse())), "without it the gateway could not trust custos-sts")

	// Selectors: the gateway's pods only, apart from custos-sts's and the manager's.
	g.Expect(d.Spec.Selector.MatchLabels).To(HaveKeyWithValue("app.kubernetes.io/component", "gateway"))
	g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue("app.kubernetes.io/component", "gateway"))
	for _, other := range []*appsv1.Deployment{m.deploymentNamed(t, "custos-sts"), m.deployment(t)} {
		g.Expect(selects(t, d.Spec.Selector.MatchLabels, other.Spec.Template.Labels)).To(BeFalse(), other.Name)
		g.Expect(selects(t, other.Spec.Selector.MatchLabels, d.Spec.Template.Labels)).To(BeFalse(), other.Name)
	}
	pdb := into[policyv1.PodDisruptionBudget](t, m.find(t, "PodDisruptionBudget", "custos-gateway"))
	g.Expect(pdb.Spec.Selector.MatchLabels).To(Equal(d.Spec.Selector.MatchLabels))
	svc := into[corev1.Service](t, m.find(t, "Service", "custos-gateway"))
	g.Expect(svc.Spec.Selector).To(Equal(d.Spec.Selector.MatchLabels))
	g.Expect(svc.Spec.Ports).To(ConsistOf(corev1.ServicePort{
		Name: "https", Port: 443, TargetPort: intstr.FromString("https"), Protocol: corev1.ProtocolTCP}))
	// Its metrics: on their own port and Service, over HTTPS (--metrics-secure
	// is the default), scraped by a ServiceMonitor of their own.
	g.Expect(pod.Containers[0].Args).To(ContainElement("--metrics-bind-address=:8444"))
	g.Expect(pod.Containers[0].Ports).To(ContainElement(corev1.ContainerPort{Name: "metrics", ContainerPort: 8444, Protocol: corev1.ProtocolTCP}))
	metricsSvc := into[corev1.Service](t, m.find(t, "Service", "custos-gateway-metrics"))
	g.Expect(metricsSvc.Spec.Selector).To(Equal(d.Spec.Selector.MatchLabels))
	g.Expect(metricsSvc.Labels).To(HaveKeyWithValue("custos.dev/endpoint", "metrics"))
	g.Expect(metricsSvc.Spec.Ports).To(ConsistOf(corev1.ServicePort{
		Name: "https", Port: 8444, TargetPort: intstr.FromString("metrics"), Protocol: corev1.ProtocolTCP}))
	monitors := render(t, namespace, append(gatewayOn, "serviceMonitor.enabled=true")...)
	sm := monitors.find(t, "ServiceMonitor", "custos-gateway")
	g.Expect(sm.Object["spec"]).To(HaveKeyWithValue("selector", HaveKeyWithValue("matchLabels", And(
		HaveKeyWithValue("app.kubernetes.io/component", "gateway"), HaveKeyWithValue("custos.dev/endpoint", "metrics")))))
	g.Expect(sm.Object["spec"]).To(HaveKeyWithValue("endpoints", ContainElement(HaveKeyWithValue("honorLabels", true))),
		"the per-agent series keep the agent's namespace as namespace")
	g.Expect(names(render(t, namespace, "serviceMonitor.enabled=true").ofKind("ServiceMonitor"))).NotTo(ContainElement("custos-gateway"))
	g.Expect(pod.TopologySpreadConstraints).NotTo(BeEmpty())
	for _, tsc := range pod.TopologySpreadConstraints {
		g.Expect(tsc.LabelSelector.MatchLabels).To(Equal(d.Spec.Selector.MatchLabels))
	}
	g.Expect(names(render(t, namespace, append(gatewayOn, "gateway.replicaCount=1")...).ofKind("PodDisruptionBudget"))).
		NotTo(ContainElement("custos-gateway"), "minAvailable 1 of 1 replica would block every node drain")

	// RBAC: Agents, Toolsets and DataBoundaries (their callChecks)
	// cluster-wide, the revocation lists in the release namespace; no
	// Secrets, no pods; TokenReviews and SubjectAccessReviews only for its
	// metrics endpoint's scrapers (callers' tokens are verified with
	// custos-sts's keys). For approvals: ApprovalPolicies
	// read, ApprovalRequests created and their status written (Consumed),
	// never their spec changed nor deleted, and no ApprovalDecisions.
	cr := into[rbacv1.ClusterRole](t, m.find(t, "ClusterRole", "custos-gateway"))
	g.Expect(cr.Rules).To(ConsistOf(
		rbacv1.PolicyRule{APIGroups: []string{"custos.dev"}, Resources: []string{"agents", "toolsets", "databoundaries"}, Verbs: []string{"get", "list", "watch"}},
		rbacv1.PolicyRule{APIGroups: []string{"custos.dev"}, Resources: []string{"agentfreezes"}, Verbs: []string{"get", "list", "watch", "create"}},
		rbacv1.PolicyRule{APIGroups: []string{"custos.dev"}, Resources: []string{"agents"}, Verbs: []string{"trip"}},
		rbacv1.PolicyRule{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"custos.dev"}, Resources: []string{"toolsets/status"}, Verbs: []string{"patch"}},
		rbacv1.PolicyRule{APIGroups: []string{"custos.dev"}, Resources: []string{"approvalpolicies"}, Verbs: []string{"get", "list", "watch"}},
		rbacv1.PolicyRule{APIGroups: []string{"custos.dev"}, Resources: []string{"approvalrequests"}, Verbs: []string{"get", "list", "watch", "create"}},
		rbacv1.PolicyRule{APIGroups: []string{"custos.dev"}, Resources: []string{"approvalrequests/status"}, Verbs: []string{"update", "patch"}},
	), "nothing it does not read, but the requests of the calls it holds and their Consumed phase, and the freezes its caps trip")
	role := into[rbacv1.Role](t, m.find(t, "Role", "custos-gateway"))
	g.Expect(role.Namespace).To(Equal(namespace))
	g.Expect(role.Rules).To(ConsistOf(
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}},
	), "the revocation lists, read only")
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		b := into[rbacv1.RoleBinding](t, m.find(t, kind, "custos-gateway"))
		g.Expect(b.Subjects).To(Equal([]rbacv1.Subject{{Kind: "ServiceAccount", Name: "custos-gateway", Namespace: namespace}}), kind)
		g.Expect(b.RoleRef.Name).To(Equal("custos-gateway"), kind)
	}

	// custos-sts exchanges for the gateway's pods only when there is a gateway.
	g.Expect(m.deploymentNamed(t, "custos-sts").Spec.Template.Spec.Containers[0].Args).
		To(ContainElement("--gateway-service-account=" + namespace + "/custos-gateway"))
	g.Expect(render(t, namespace, "sts.enabled=true", "sts.tls.secretName=sts-tls").deploymentNamed(t, "custos-sts").
		Spec.Template.Spec.Containers[0].Args).NotTo(ContainElement(HavePrefix("--gateway-service-account")))
	other := render(t, "platform", append(gatewayOn, "fullnameOverride=platform-custos")...)
	g.Expect(other.deploymentNamed(t, "platform-custos-sts").Spec.Template.Spec.Containers[0].Args).
		To(ContainElement("--gateway-service-account=platform/platform-custos-gateway"))

	// cert-manager issues both certificates when none is given; the
	// gateway trusts custos-sts's through the ca.crt cert-manager writes.
	m = render(t, namespace, "sts.enabled=true", "gateway.enabled=true", "certManager.enabled=true")
	cert := m.find(t, "Certificate", "custos-gateway")
	g.Expect(cert.Object["spec"]).To(And(
		HaveKeyWithValue("secretName", "custos-gateway-tls"),
		HaveKeyWithValue("dnsNames", ConsistOf("custos-gateway."+namespace+".svc", "custos-gateway."+namespace+".svc.cluster.local"))))
	pod = m.deploymentNamed(t, "custos-gateway").Spec.Template.Spec
	g.Expect(volume(t, pod, "tls").Secret).To(HaveValue(HaveField("SecretName", "custos-gateway-tls")))
	g.Expect(volume(t, pod, "sts-ca").Secret).To(HaveValue(HaveField("SecretName", "custos-sts-tls")))
	g.Expect(names(render(t, namespace, append(gatewayOn, "certManager.enabled=true")...).ofKind("Certificate"))).
		NotTo(ContainElement("custos-gateway"), "a Secret given is used as it is")
}

// TestGatewayValues: the gateway's values reach its flags.
func TestGatewayValues(t *testing.T) {
	g := NewWithT(t)
	m := render(t, namespace, append(gatewayOn,
		"gateway.replicaCount=3", "trustDomain=prod.acme.example", "logLevel=debug",
		"sts.issuerBase=https://sts.acme.example/custos",
		"gateway.rateLimits.perAgent.perMinute=1200", "gateway.rateLimits.perAgent.burst=100",
		"gateway.rateLimits.perTool.perMinute=0", "gateway.rateLimits.perTool.burst=5",
		"gateway.breaker.failures=3", "gateway.breaker.openFor=1m", "gateway.upstreamTimeout=45s",
		"gateway.maxResponseBytes=2097152", "gateway.maxRequestBytes=65536",
		"gateway.upstreamCA.configMap=tool-cas", "gateway.upstreamCA.key=bundle.pem",
		"gateway.resources.limits.memory=1Gi",
	)...)
	d := m.deploymentNamed(t, "custos-gateway")
	g.Expect(d.Spec.Replicas).To(HaveValue(BeEquivalentTo(3)))
	c := d.Spec.Template.Spec.Containers[0]
	g.Expect(c.Args).To(ContainElements(
		"--issuer-base=https://sts.acme.example/custos", "--trust-domain=prod.acme.example", "--zap-log-level=debug",
		"--rate-per-agent=1200", "--rate-per-agent-burst=100", "--rate-per-tool=0", "--rate-per-tool-burst=5",
		"--breaker-failures=3", "--breaker-open-for=1m", "--upstream-timeout=45s",
		"--max-response-bytes=2097152", "--max-request-bytes=65536",
		"--upstream-ca-file=/etc/custos/upstream-ca/bundle.pem",
	))
	g.Expect(c.Resources.Limits.Memory().String()).To(Equal("1Gi"))
	g.Expect(c.VolumeMounts).To(ContainElement(And(HaveField("Name", "upstream-ca"), HaveField("MountPath", "/etc/custos/upstream-ca"))))
	g.Expect(volume(t, d.Spec.Template.Spec, "upstream-ca").ConfigMap).To(HaveValue(And(
		HaveField("Name", "tool-cas"), HaveField("Items", []corev1.KeyToPath{{Key: "bundle.pem", Path: "bundle.pem"}}))))

	// Numbers from a values file are floats to Helm: they must still reach
	// the flags as integers.
	file := filepath.Join(t.TempDir(), "values.yaml")
	g.Expect(os.WriteFile(file, []byte(`
sts: {enabled: true, tls: {secretName: sts-tls}}
gateway:
  enabled: true
  tls: {secretName: gateway-tls}
  rateLimits: {perAgent: {perMinute: 1000000, burst: 100000}}
  maxResponseBytes: 104857600
`), 0o600)).To(Succeed())
	stdout, stderr, err := helm(t, "template", release, chartDir, "--namespace", namespace, "--values", file)
	g.Expect(err).NotTo(HaveOccurred(), stderr)
	m, err = parse(stdout)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(m.deploymentNamed(t, "custos-gateway").Spec.Template.Spec.Containers[0].Args).To(ContainElements(
		"--rate-per-agent=1000000", "--rate-per-agent-burst=100000", "--max-response-bytes=104857600"))

	// The schema holds the gateway's values too.
	for set, want := range map[string]string{
		"gateway.rateLimit.perAgent.perMinute=1":  "additional properties 'rateLimit' not allowed",
		"gateway.rateLimits.perTool.perMinute=-1": "/gateway/rateLimits/perTool/perMinute",
		"gateway.breaker.openFor=soon":            "/gateway/breaker/openFor",
		"gateway.upstreamTimeout=10":              "/gateway/upstreamTimeout",
		"gateway.maxResponseBytes=0":              "/gateway/maxResponseBytes",
		"gateway.replicaCount=0":                  "/gateway/replicaCount",
		"gateway.enabled=yes":                     "/gateway/enabled",
	} {
		stderr := renderError(t, set)
		g.Expect(stderr).To(ContainSubstring("values don't meet the specifications of the schema"), set)
		g.Expect(stderr).To(ContainSubstring(want), set)
	}
}

// TestGatewayLint: helm lint --strict passes with the gateway on, with
// cert-manager and without.
func TestGatewayLint(t *testing.T) {
	g := NewWithT(t)
	for _, sets := range [][]string{
		append(gatewayOn, "gateway.upstreamCA.configMap=tool-cas"),
		{"sts.enabled=true", "gateway.enabled=true", "certManager.enabled=true"},
	} {
		args := []string{"lint", chartDir, "--namespace", namespace, "--strict"}
		for _, s := range sets {
			args = append(args, "--set", s)
		}
		stdout, stderr, err := helm(t, args...)
		g.Expect(err).NotTo(HaveOccurred(), "helm %v:\n%s%s", args, stdout, stderr)
		g.Expect(stdout).To(ContainSubstring("1 chart(s) linted, 0 chart(s) failed"))
	}
}

// deploymentNamed returns the Deployment name.
func (m manifests) deploymentNamed(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	return into[appsv1.Deployment](t, m.find(t, "Deployment", name))
}
