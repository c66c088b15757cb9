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
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/custos-dev/custos/internal/boundary"
)

const (
	validatingWebhooks = "custos-validating-webhook-configuration"
	mutatingWebhooks   = "custos-mutating-webhook-configuration"
	// The manager's leaderElectionID (cmd/manager).
	leaderElectionLease = "custos-manager.custos.dev"
)

func TestLint(t *testing.T) {
	for name, sets := range map[string][]string{
		"defaults":     nil,
		"cert-manager": {"certManager.enabled=true"},
		"everything": {"certManager.enabled=true", "certManager.issuerRef.name=corp-ca", "certManager.issuerRef.kind=ClusterIssuer",
			"serviceMonitor.enabled=true", "audit.sink=both", "replicaCount=1", "audit.signingKeySecret.name=audit-key"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			for _, strict := range []bool{false, true} {
				args := []string{"lint", chartDir, "--namespace", namespace}
				if strict {
					args = append(args, "--strict")
				}
				for _, s := range sets {
					args = append(args, "--set", s)
				}
				stdout, stderr, err := helm(t, args...)
				g.Expect(err).NotTo(HaveOccurred(), "helm %v:\n%s%s", args, stdout, stderr)
				g.Expect(stdout).To(ContainSubstring("1 chart(s) linted, 0 chart(s) failed"))
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	g := NewWithT(t)
	m := render(t, namespace)
	d := m.deployment(t)
	pod := d.Spec.Template.Spec
	g.Expect(pod.Containers).To(HaveLen(1))
	c := pod.Containers[0]

	g.Expect(d.Spec.Replicas).To(HaveValue(BeEquivalentTo(2)), "two replicas by default: the webhooks fail closed")
	g.Expect(d.Spec.Strategy.Type).To(Equal(appsv1.RollingUpdateDeploymentStrategyType))
	g.Expect(d.Spec.Strategy.RollingUpdate.MaxUnavailable).To(HaveValue(Equal(intstr.FromInt32(0))),
		"a rollout must never leave the webhooks without a ready replica")
	g.Expect(c.Image).To(Equal("ghcr.io/custos-dev/custos:0.1.0"), "the tag defaults to the chart's appVersion")
	g.Expect(c.Args).To(ContainElements(
		"--leader-elect",
		"--leader-election-namespace=$(POD_NAMESPACE)",
		"--metrics-bind-address=:8443",
		"--metrics-secure=true",
		"--health-probe-bind-address=:8081",
		"--webhook-port=9443",
		"--webhook-cert-dir=/var/run/custos/webhook-certs",
		"--webhook-cert-secret=custos-webhook-tls",
		"--webhook-service=custos-webhook",
		"--validating-webhook-configuration="+validatingWebhooks,
		"--mutating-webhook-configuration="+mutatingWebhooks,
		"--trust-domain=cluster.local",
		"--sweep-interval=10m",
		"--concurrency=4",
		"--kube-api-qps=50",
		"--kube-api-burst=100",
		"--audit-sink=stdout",
		"--audit-checkpoint-every=1000",
		"--audit-checkpoint-interval=1m",
		"--zap-log-level=info",
	))
	g.Expect(c.Args).NotTo(ContainElement(HavePrefix("--audit-dir")), "no segment store with the stdout sink")
	g.Expect(c.Args).NotTo(ContainElement(HavePrefix("--audit-signing-key-secret")))
	g.Expect(c.Env).To(ContainElement(corev1.EnvVar{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}))

	// Restricted, as the pod security standard defines it.
	g.Expect(pod.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
	g.Expect(pod.SecurityContext.SeccompProfile).To(HaveValue(Equal(corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault})))
	g.Expect(pod.SecurityContext.RunAsUser).To(HaveValue(BeEquivalentTo(65532)))
	sc := c.SecurityContext
	g.Expect(sc).NotTo(BeNil())
	g.Expect(sc.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
	g.Expect(sc.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
	g.Expect(sc.RunAsNonRoot).To(HaveValue(BeTrue()))
	g.Expect(sc.Capabilities.Drop).To(Equal([]corev1.Capability{"ALL"}))
	g.Expect(sc.Capabilities.Add).To(BeEmpty())
	g.Expect(sc.Privileged).To(BeNil())
	g.Expect(pod.HostNetwork || pod.HostPID || pod.HostIPC).To(BeFalse())

	g.Expect(c.Resources.Requests).To(HaveKey(corev1.ResourceCPU))
	g.Expect(c.Resources.Requests).To(HaveKey(corev1.ResourceMemory))
	g.Expect(c.Resources.Limits).To(HaveKey(corev1.ResourceMemory))
	g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(c.LivenessProbe.HTTPGet.Port).To(Equal(intstr.FromString("probes")))
	g.Expect(c.Ports).To(ContainElement(corev1.ContainerPort{Name: "probes", ContainerPort: 8081, Protocol: corev1.ProtocolTCP}))

	// Every path the manager writes is a volume: the root filesystem is read-only.
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = vm.Name
	}
	g.Expect(mounts).To(HaveKeyWithValue("/var/run/custos/webhook-certs", "webhook-certs"))
	g.Expect(mounts).To(HaveKeyWithValue("/tmp", "tmp"))
	g.Expect(volume(t, pod, "webhook-certs").EmptyDir).To(HaveField("Medium", corev1.StorageMediumMemory),
		"the webhook private key stays off the node's disk")

	// Soft spread over nodes and zones, counting the manager's pods only.
	podLabels := labels.Set(d.Spec.Template.Labels)
	g.Expect(pod.TopologySpreadConstraints).To(HaveLen(2))
	var keys []string
	for _, tsc := range pod.TopologySpreadConstraints {
		keys = append(keys, tsc.TopologyKey)
		g.Expect(tsc.WhenUnsatisfiable).To(Equal(corev1.ScheduleAnyway))
		g.Expect(tsc.MatchLabelKeys).To(Equal([]string{"pod-template-hash"}))
		sel, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(sel.Matches(podLabels)).To(BeTrue(), "%s spreads pods it does not select", tsc.TopologyKey)
	}
	g.Expect(keys).To(ConsistOf("kubernetes.io/hostname", "topology.kubernetes.io/zone"))

	pdb := into[policyv1.PodDisruptionBudget](t, m.find(t, "PodDisruptionBudget", "custos-manager"))
	g.Expect(pdb.Spec.MinAvailable).To(HaveValue(Equal(intstr.FromInt32(1))))
	g.Expect(selects(t, pdb.Spec.Selector.MatchLabels, podLabels)).To(BeTrue())

	// The manager runs as its own ServiceAccount, bound to its roles.
	g.Expect(pod.ServiceAccountName).To(Equal("custos-manager"))
	m.find(t, "ServiceAccount", "custos-manager")
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		b := into[rbacv1.RoleBinding](t, m.find(t, kind, "custos-manager"))
		g.Expect(b.Subjects).To(Equal([]rbacv1.Subject{{Kind: "ServiceAccount", Name: "custos-manager", Namespace: namespace}}), kind)
		g.Expect(b.RoleRef.Name).To(Equal("custos-manager"), kind)
	}

	// The webhook Service reaches the webhook port of the manager's pods.
	svc := into[corev1.Service](t, m.find(t, "Service", "custos-webhook"))
	g.Expect(selects(t, svc.Spec.Selector, podLabels)).To(BeTrue())
	g.Expect(svc.Spec.Ports).To(ConsistOf(HaveField("TargetPort", intstr.FromString("webhook"))))
	g.Expect(c.Ports).To(ContainElement(corev1.ContainerPort{Name: "webhook", ContainerPort: 9443, Protocol: corev1.ProtocolTCP}))
	metricsSvc := into[corev1.Service](t, m.find(t, "Service", "custos-metrics"))
	g.Expect(selects(t, metricsSvc.Spec.Selector, podLabels)).To(BeTrue())
	g.Expect(metricsSvc.Spec.Ports).To(ConsistOf(corev1.ServicePort{
		Name: "https", Port: 8443, TargetPort: intstr.FromString("metrics"), Protocol: corev1.ProtocolTCP}))
	g.Expect(c.Ports).To(ContainElement(corev1.ContainerPort{Name: "metrics", ContainerPort: 8443, Protocol: corev1.ProtocolTCP}))

	// Prometheus gets a role to bind to.
	reader := into[rbacv1.ClusterRole](t, m.find(t, "ClusterRole", "custos-metrics-reader"))
	g.Expect(reader.Rules).To(Equal([]rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}))

	// Self-managed certificates: the webhook configurations carry no
	// cert-manager annotation and point at the chart's Service.
	for _, name := range []string{validatingWebhooks, mutatingWebhooks} {
		kind := "ValidatingWebhookConfiguration"
		if name == mutatingWebhooks {
			kind = "MutatingWebhookConfiguration"
		}
		o := m.find(t, kind, name)
		g.Expect(o.GetAnnotations()).NotTo(HaveKey("cert-manager.io/inject-ca-from"))
	}
	for _, wh := range validating(t, m).Webhooks {
		g.Expect(wh.ClientConfig.Service).To(HaveValue(And(
			HaveField("Name", "custos-webhook"), HaveField("Namespace", namespace))), wh.Name)
		g.Expect(wh.ClientConfig.CABundle).To(BeEmpty(), "the manager injects the CA; the chart must not reset it on upgrade")
	}

	// Nothing optional by default.
	for _, kind := range []string{"ServiceMonitor", "PersistentVolumeClaim", "Certificate", "Issuer"} {
		g.Expect(m.ofKind(kind)).To(BeEmpty(), "%s rendered by default", kind)
	}
}

func TestNamespacedRole(t *testing.T) {
	g := NewWithT(t)
	role := into[rbacv1.Role](t, render(t, namespace).find(t, "Role", "custos-manager"))
	g.Expect(role.Namespace).To(Equal(namespace))
	g.Expect(role.Rules).To(ConsistOf(
		rbacv1.PolicyRule{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"},
			ResourceNames: []string{leaderElectionLease}, Verbs: []string{"get", "update"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"},
			ResourceNames: []string{"custos-webhook-tls"}, Verbs: []string{"get", "update"}},
		// The evaluator's state, for the next leader.
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"},
			ResourceNames: []string{"custos-evaluator-state"}, Verbs: []string{"get", "patch"}},
	))

	// The signing key in the release namespace: get on that Secret only.
	role = into[rbacv1.Role](t, render(t, namespace, "audit.signingKeySecret.name=audit-key").find(t, "Role", "custos-manager"))
	g.Expect(role.Rules).To(ContainElement(rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"},
		ResourceNames: []string{"audit-key"}, Verbs: []string{"get"}}))

	// Elsewhere: a Role in that namespace, and the flag names it.
	m := render(t, namespace, "audit.signingKeySecret.name=audit-key", "audit.signingKeySecret.namespace=custos-keys")
	keyRole := into[rbacv1.Role](t, m.find(t, "Role", "custos-manager-audit-key"))
	g.Expect(keyRole.Namespace).To(Equal("custos-keys"))
	g.Expect(keyRole.Rules).To(Equal([]rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"},
		ResourceNames: []string{"audit-key"}, Verbs: []string{"get"}}}))
	binding := into[rbacv1.RoleBinding](t, m.find(t, "RoleBinding", "custos-manager-audit-key"))
	g.Expect(binding.Namespace).To(Equal("custos-keys"))
	g.Expect(binding.Subjects).To(Equal([]rbacv1.Subject{{Kind: "ServiceAccount", Name: "custos-manager", Namespace: namespace}}))
	g.Expect(m.deployment(t).Spec.Template.Spec.Containers[0].Args).To(ContainElement("--audit-signing-key-secret=custos-keys/audit-key"))
}

// TestClusterRoleIsGenerated holds the chart's ClusterRole to the one
// controller-gen derives from the code's +kubebuilder:rbac markers.
func TestClusterRoleIsGenerated(t *testing.T) {
	g := NewWithT(t)
	var want *rbacv1.ClusterRole
	for _, o := range parseFile(t, "config/rbac/role.yaml").ofKind("ClusterRole") {
		want = into[rbacv1.ClusterRole](t, o)
	}
	g.Expect(want).NotTo(BeNil(), "config/rbac/role.yaml has no ClusterRole")

	m := render(t, namespace)
	got := into[rbacv1.ClusterRole](t, m.find(t, "ClusterRole", "custos-manager"))
	g.Expect(normalize(got.Rules)).To(Equal(normalize(want.Rules)),
		"the chart's ClusterRole differs from config/rbac/role.yaml (make manifests); edit charts/custos/templates/clusterrole.yaml")

	// Another release name renames the role, not the webhook configurations
	// the manager may patch.
	other := render(t, "platform", "fullnameOverride=platform-custos")
	got = into[rbacv1.ClusterRole](t, other.find(t, "ClusterRole", "platform-custos-manager"))
	g.Expect(normalize(got.Rules)).To(Equal(normalize(want.Rules)))
	other.find(t, "ValidatingWebhookConfiguration", validatingWebhooks)
	other.find(t, "MutatingWebhookConfiguration", mutatingWebhooks)
}

// TestNoWildcards: least privilege means every rule names what it grants.
func TestNoWildcards(t *testing.T) {
	for name, sets := range map[string][]string{
		"defaults": nil,
		"everything": {"certManager.enabled=true", "serviceMonitor.enabled=true", "audit.sink=file", "replicaCount=1",
			"audit.signingKeySecret.name=k", "audit.signingKeySecret.namespace=keys"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			m := render(t, namespace, sets...)
			for _, o := range append(m.ofKind("ClusterRole"), m.ofKind("Role")...) {
				role := into[rbacv1.ClusterRole](t, o)
				g.Expect(role.AggregationRule).To(BeNil())
				for _, r := range role.Rules {
					for _, field := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames, r.NonResourceURLs} {
						for _, v := range field {
							g.Expect(v).NotTo(ContainSubstring("*"), "%s %s: %+v", o.GetKind(), o.GetName(), r)
						}
					}
				}
			}
		})
	}
}

// TestTenantRoles: the ClusterRoles the chart ships for tenants grant
// nothing the DataBoundaries' RBAC report flags, by the report's own rules
// (internal/boundary), even bound cluster-wide; and none of what the
// containment depends on tenants not having.
func TestTenantRoles(t *testing.T) {
	g := NewWithT(t)
	m := render(t, namespace)
	owner := into[rbacv1.ClusterRole](t, m.find(t, "ClusterRole", "custos-agent-owner"))
	viewer := into[rbacv1.ClusterRole](t, m.find(t, "ClusterRole", "custos-agent-viewer"))
	approver := into[rbacv1.ClusterRole](t, m.find(t, "ClusterRole", "custos-approver"))
	riskOwner := into[rbacv1.ClusterRole](t, m.find(t, "ClusterRole", "custos-risk-owner"))

	for _, role := range []*rbacv1.ClusterRole{owner, viewer, approver, riskOwner} {
		g.Expect(role.Labels).To(HaveKeyWithValue("app.kubernetes.io/part-of", "custos"), role.Name)
		g.Expect(boundary.UnsafeGrants(role.Rules, false)).To(BeEmpty(), "%s, bound in a namespace", role.Name)
		g.Expect(boundary.UnsafeGrants(role.Rules, true)).To(BeEmpty(), "%s, bound cluster-wide", role.Name)
		// Its rules are files/tenantroles's, which the controllers' envtest
		// suite binds.
		var file struct {
			Rules []rbacv1.PolicyRule `json:"rules"`
		}
		raw, err := os.ReadFile(filepath.Join(chartDir, "files", "tenantroles", strings.TrimPrefix(role.Name, "custos-")+".yaml"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(yaml.UnmarshalStrict(raw, &file)).To(Succeed())
		g.Expect(role.Rules).To(Equal(file.Rules), role.Name)

		for _, r := range role.Rules {
			for _, res := range r.Resources {
				g.Expect(res).NotTo(BeElementOf("secrets", "pods/exec", "pods/attach", "pods/portforward", "pods/proxy",
					"pods/ephemeralcontainers", "pods/status", "serviceaccounts/token", "pods/binding"), "%s: %+v", role.Name, r)
			}
			g.Expect(r.Verbs).NotTo(ContainElement(BeElementOf("*", "impersonate", "escalate", "bind", "use", "verify")), "%s: %+v", role.Name, r)
			if slices.Contains(r.Resources, "pods") || slices.Contains(r.Resources, "deployments") || slices.Contains(r.Resources, "replicasets") ||
				slices.Contains(r.Resources, "networkpolicies") || slices.Contains(r.Resources, "serviceaccounts") {
				g.Expect(r.Verbs).To(ConsistOf("get", "list", "watch"), "%s may only read what Custos makes: %+v", role.Name, r)
			}
		}
	}
	g.Expect(owner.Rules).To(ContainElement(rbacv1.PolicyRule{APIGroups: []string{"custos.dev"}, Resources: []string{"agents", "toolsets"},
		Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}}))
	for _, r := range viewer.Rules {
		g.Expect(r.Verbs).To(ConsistOf("get", "list", "watch"), "the viewer only reads: %+v", r)
	}

	// Custos's API, role by role: exactly these verbs on these resources,
	// in every object of the namespace (no resourceNames). Approvals: the
	// risk owner alone writes ApprovalPolicies; the approver alone decides
	// (creates ApprovalDecisions) and holds approve on toolsets and agents,
	// which is what the SubjectAccessReviews of a call's and of an Agent
	// change's approvals ask; nobody writes an
	// ApprovalRequest or its status (custos-gateway's and Custos's), nor
	// changes or deletes a decision.
	read := []string{"get", "list", "watch"}
	write := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	grants := func(verbs []string, resources ...string) []string {
		var out []string
		for _, res := range resources {
			for _, v := range verbs {
				out = append(out, v+" "+res)
			}
		}
		return out
	}
	for _, tc := range []struct {
		role *rbacv1.ClusterRole
		want []string
	}{
		{owner, append(append(grants(write, "agents", "toolsets"), grants(read, "approvalrequests", "approvaldecisions", "agentattestations", "agentfreezes", "agentunfreezes")...),
			append(grants(read, "findings", "findingreviews", "agentreports"), "create agentattestations", "create agentfreezes", "freeze agents",
				"create findingreviews", "review agents")...)},
		{viewer, grants(read, "agents", "toolsets", "approvalrequests", "approvaldecisions", "agentattestations", "agentfreezes", "agentunfreezes",
			"findings", "findingreviews", "agentreports")},
		{approver, append(grants(read, "approvalrequests", "approvaldecisions", "agents", "toolsets", "findings", "findingreviews", "agentreports"),
			"create approvaldecisions", "approve agents", "approve toolsets", "create findingreviews", "review agents")},
		{riskOwner, append(append(grants(write, "approvalpolicies"), grants(read, "approvalrequests", "approvaldecisions", "agentfreezes", "agentunfreezes", "agents",
			"findings", "findingreviews", "agentreports")...),
			"create agentfreezes", "create agentunfreezes", "freeze agents", "unfreeze agents", "create findingreviews", "review agents")},
	} {
		var got []string
		for _, r := range tc.role.Rules {
			if !slices.Contains(r.APIGroups, "custos.dev") {
				continue
			}
			g.Expect(r.ResourceNames).To(BeEmpty(), "%s: %+v", tc.role.Name, r)
			got = append(got, grants(r.Verbs, r.Resources...)...)
		}
		g.Expect(got).To(ConsistOf(tc.want), tc.role.Name)
		for _, res := range []string{"approvalrequests", "approvalrequests/status", "approvaldecisions", "agentattestations",
			"agentfreezes", "agentfreezes/status", "agentunfreezes", "findings", "findings/status", "findingreviews", "agentreports", "agentreports/status"} {
			for _, v := range []string{"update", "patch", "delete"} {
				g.Expect(got).NotTo(ContainElement(v+" "+res), tc.role.Name)
			}
		}
		g.Expect(got).NotTo(ContainElement("create approvalrequests"), tc.role.Name)
		g.Expect(got).NotTo(ContainElement("create agentreports"), tc.role.Name+": only Custos makes an agent's reports")
		g.Expect(got).NotTo(ContainElement("trip agents"), tc.role.Name+": only Custos's components trip the breaker")
	}
	// The approvers and risk owners need nothing but Custos's API.
	for _, role := range []*rbacv1.ClusterRole{approver, riskOwner} {
		for _, r := range role.Rules {
			g.Expect(r.APIGroups).To(Equal([]string{"custos.dev"}), "%s: %+v", role.Name, r)
		}
	}

	// The check is not vacuous: the same rules flag what edit has.
	g.Expect(boundary.UnsafeGrants(append(slices.Clone(owner.Rules),
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"impersonate"}}), false)).
		To(HaveLen(2))

	// Named for the release, and optional.
	other := render(t, "platform", "fullnameOverride=platform-custos")
	other.find(t, "ClusterRole", "platform-custos-agent-owner")
	other.find(t, "ClusterRole", "platform-custos-agent-viewer")
	other.find(t, "ClusterRole", "platform-custos-approver")
	other.find(t, "ClusterRole", "platform-custos-risk-owner")
	for _, o := range render(t, namespace, "tenantRoles.create=false").ofKind("ClusterRole") {
		for _, role := range []string{"agent-owner", "agent-viewer", "approver", "risk-owner"} {
			g.Expect(o.GetName()).NotTo(HaveSuffix("-" + role))
		}
	}
}

// TestWebhooksAreGenerated holds the chart's webhook configurations to the
// ones controller-gen derives from the +kubebuilder:webhook markers, apart
// from where they send requests.
func TestWebhooksAreGenerated(t *testing.T) {
	g := NewWithT(t)
	generated := parseFile(t, "config/webhook/manifests.yaml")
	wantV := into[admissionregistrationv1.ValidatingWebhookConfiguration](t, generated.ofKind("ValidatingWebhookConfiguration")[0])
	wantM := into[admissionregistrationv1.MutatingWebhookConfiguration](t, generated.ofKind("MutatingWebhookConfiguration")[0])

	// config/ excludes custos-system, the release namespace here.
	m := render(t, namespace)
	gotV, gotM := validating(t, m), mutating(t, m)
	g.Expect(withoutService(gotV.Webhooks)).To(Equal(withoutService(wantV.Webhooks)),
		"the chart's ValidatingWebhookConfiguration differs from config/webhook/manifests.yaml (make manifests)")
	g.Expect(withoutService(gotM.Webhooks)).To(Equal(withoutService(wantM.Webhooks)),
		"the chart's MutatingWebhookConfiguration differs from config/webhook/manifests.yaml (make manifests)")
}

// TestWebhooksSkipTheReleaseNamespace: the manager's own pods, and the
// cluster's, never wait on the manager.
func TestWebhooksSkipTheReleaseNamespace(t *testing.T) {
	g := NewWithT(t)
	const ns = "platform-security"
	m := render(t, ns)
	excluded := metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", ns},
	}}}
	var selectors int
	check := func(name string, sel *metav1.LabelSelector, cc admissionregistrationv1.WebhookClientConfig) {
		g.Expect(cc.Service).To(HaveValue(And(HaveField("Name", "custos-webhook"), HaveField("Namespace", ns))), name)
		if name == "databoundaries.custos.dev" {
			// Cluster-scoped: a namespace selector would not apply.
			g.Expect(sel).To(BeNil())
			return
		}
		g.Expect(sel).To(HaveValue(Equal(excluded)), name)
		selectors++
	}
	for _, wh := range validating(t, m).Webhooks {
		check(wh.Name, wh.NamespaceSelector, wh.ClientConfig)
	}
	for _, wh := range mutating(t, m).Webhooks {
		check(wh.Name, wh.NamespaceSelector, wh.ClientConfig)
	}
	// agents, toolsets, namespaces, pods (validating and mutating), the
	// approvals: approvalpolicies, approvaldecisions (validating and
	// mutating), agentattestations, agentfreezes and agentunfreezes
	// (validating and mutating each), findings, findingreviews (validating
	// and mutating).
	g.Expect(selectors).To(Equal(17))
	g.Expect(m.deployment(t).Namespace).To(Equal(ns))
}

// TestAdmissionPoliciesAreConfig: the chart renders the admission policies of
// config/crd/policies as they are.
func TestAdmissionPoliciesAreConfig(t *testing.T) {
	g := NewWithT(t)
	paths, err := filepath.Glob(filepath.Join(repoRoot, "config/crd/policies/*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var want []map[string]any
	for _, p := range paths {
		if filepath.Base(p) == "kustomization.yaml" {
			continue
		}
		rel, _ := filepath.Rel(repoRoot, p)
		for _, o := range parseFile(t, rel) {
			want = append(want, o.Object)
		}
	}
	g.Expect(want).NotTo(BeEmpty(), "config/crd/policies holds no policies")

	// Every admission policy and binding the chart renders, and anything
	// else of a kind config/crd/policies holds.
	kinds := []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"}
	for _, w := range want {
		if kind, _ := w["kind"].(string); !slices.Contains(kinds, kind) {
			kinds = append(kinds, kind)
		}
	}
	m := render(t, namespace)
	var got []any
	for _, kind := range kinds {
		for _, o := range m.ofKind(kind) {
			got = append(got, o.Object)
		}
	}
	elems := make([]any, len(want))
	for i, w := range want {
		elems[i] = Equal(w)
	}
	g.Expect(got).To(ConsistOf(elems...),
		"charts/custos/files/policies differs from config/crd/policies: run make manifests")
}

func TestCertManager(t *testing.T) {
	g := NewWithT(t)
	m := render(t, namespace, "certManager.enabled=true")

	// A CA of the release's own signs the serving certificate.
	g.Expect(names(m.ofKind("Issuer"))).To(ConsistOf("custos-selfsigned", "custos-ca"))
	g.Expect(names(m.ofKind("Certificate"))).To(ConsistOf("custos-ca", "custos-webhook"))
	ca := m.find(t, "Certificate", "custos-ca")
	g.Expect(ca.Object).To(HaveKeyWithValue("spec", HaveKeyWithValue("isCA", true)))
	serving := m.find(t, "Certificate", "custos-webhook")
	spec := serving.Object["spec"].(map[string]any)
	g.Expect(spec["dnsNames"]).To(ContainElement("custos-webhook.custos-system.svc"))
	g.Expect(spec["issuerRef"]).To(HaveKeyWithValue("name", "custos-ca"))
	secretName := spec["secretName"]

	// The cainjector fills the caBundle of both configurations.
	for kind, name := range map[string]string{
		"ValidatingWebhookConfiguration": validatingWebhooks, "MutatingWebhookConfiguration": mutatingWebhooks,
	} {
		g.Expect(m.find(t, kind, name).GetAnnotations()).To(HaveKeyWithValue(
			"cert-manager.io/inject-ca-from", "custos-system/custos-webhook"), kind)
	}

	// The manager leaves certificates alone and serves cert-manager's.
	d := m.deployment(t)
	c := d.Spec.Template.Spec.Containers[0]
	g.Expect(c.Args).To(ContainElements("--webhook-cert-secret=", "--webhook-cert-dir=/var/run/custos/webhook-certs"))
	g.Expect(c.Args).NotTo(ContainElement(HavePrefix("--webhook-service=")))
	g.Expect(volume(t, d.Spec.Template.Spec, "webhook-certs").Secret).To(HaveValue(HaveField("SecretName", secretName)))
	g.Expect(c.VolumeMounts).To(ContainElement(And(
		HaveField("Name", "webhook-certs"), HaveField("MountPath", "/var/run/custos/webhook-certs"), HaveField("ReadOnly", true))))

	// ... and may not create Secrets.
	role := into[rbacv1.Role](t, m.find(t, "Role", "custos-manager"))
	for _, r := range role.Rules {
		g.Expect(r.Resources).NotTo(ContainElement("secrets"), "%+v", r)
	}

	// An issuer of the user's replaces the chart's CA.
	m = render(t, namespace, "certManager.enabled=true", "certManager.issuerRef.name=corp-ca", "certManager.issuerRef.kind=ClusterIssuer")
	g.Expect(m.ofKind("Issuer")).To(BeEmpty())
	g.Expect(names(m.ofKind("Certificate"))).To(ConsistOf("custos-webhook"))
	g.Expect(m.find(t, "Certificate", "custos-webhook").Object["spec"]).To(HaveKeyWithValue("issuerRef",
		map[string]any{"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}))
}

func TestServiceMonitor(t *testing.T) {
	g := NewWithT(t)
	m := render(t, namespace, "serviceMonitor.enabled=true", "serviceMonitor.labels.release=prometheus")
	sm := m.find(t, "ServiceMonitor", "custos-manager")
	g.Expect(sm.GetAPIVersion()).To(Equal("monitoring.coreos.com/v1"))
	g.Expect(sm.GetLabels()).To(HaveKeyWithValue("release", "prometheus"))

	var spec struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port            string         `json:"port"`
			Scheme          string         `json:"scheme"`
			Path            string         `json:"path"`
			BearerTokenFile string         `json:"bearerTokenFile"`
			TLSConfig       map[string]any `json:"tlsConfig"`
			HonorLabels     bool           `json:"honorLabels"`
		} `json:"endpoints"`
	}
	raw, _ := json.Marshal(sm.Object["spec"])
	g.Expect(json.Unmarshal(raw, &spec)).To(Succeed())
	g.Expect(spec.Endpoints).To(HaveLen(1))
	ep := spec.Endpoints[0]
	// The agent's namespace on per-agent series stays namespace, not
	// exported_namespace: the dashboard filters on it.
	g.Expect(ep.HonorLabels).To(BeTrue())
	g.Expect(ep.Port).To(Equal("https"))
	g.Expect(ep.Scheme).To(Equal("https"))
	g.Expect(ep.Path).To(Equal("/metrics"))
	g.Expect(ep.BearerTokenFile).To(Equal("/var/run/secrets/kubernetes.io/serviceaccount/token"))
	g.Expect(ep.TLSConfig).To(HaveKeyWithValue("insecureSkipVerify", true))

	// It scrapes the metrics Service, not the webhook Service.
	sel, err := metav1.LabelSelectorAsSelector(&spec.Selector)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sel.Matches(labels.Set(m.find(t, "Service", "custos-metrics").GetLabels()))).To(BeTrue())
	g.Expect(sel.Matches(labels.Set(m.find(t, "Service", "custos-webhook").GetLabels()))).To(BeFalse())

	// A CA instead of skipping verification.
	m = render(t, namespace, "serviceMonitor.enabled=true", "serviceMonitor.tlsConfig.insecureSkipVerify=false",
		"serviceMonitor.tlsConfig.ca.secretName=metrics-ca", "serviceMonitor.tlsConfig.serverName=custos-metrics.custos-system.svc")
	g.Expect(m.find(t, "ServiceMonitor", "custos-manager").Object).To(HaveKeyWithValue("spec", HaveKeyWithValue("endpoints",
		ContainElement(HaveKeyWithValue("tlsConfig", map[string]any{
			"insecureSkipVerify": false,
			"serverName":         "custos-metrics.custos-system.svc",
			"ca":                 map[string]any{"secret": map[string]any{"name": "metrics-ca", "key": "ca.crt"}},
		})))))
}

func TestAuditFileSink(t *testing.T) {
	g := NewWithT(t)
	m := render(t, namespace, "audit.sink=file", "replicaCount=1", "audit.persistence.storageClassName=fast", "audit.persistence.size=50Gi")
	pvc := into[corev1.PersistentVolumeClaim](t, m.find(t, "PersistentVolumeClaim", "custos-audit"))
	g.Expect(pvc.Annotations).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"), "the audit trail outlives the release")
	g.Expect(pvc.Spec.StorageClassName).To(HaveValue(Equal("fast")))
	g.Expect(pvc.Spec.AccessModes).To(Equal([]corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}))
	g.Expect(pvc.Spec.Resources.Requests.Storage().String()).To(Equal("50Gi"))

	d := m.deployment(t)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	g.Expect(c.Args).To(ContainElements("--audit-sink=file", "--audit-dir=/var/lib/custos/audit"))
	g.Expect(volume(t, pod, "audit").PersistentVolumeClaim).To(HaveValue(HaveField("ClaimName", "custos-audit")))
	g.Expect(c.VolumeMounts).To(ContainElement(And(HaveField("Name", "audit"), HaveField("MountPath", "/var/lib/custos/audit"))))
	g.Expect(pod.SecurityContext.FSGroup).To(HaveValue(BeEquivalentTo(65532)), "the non-root manager must be able to write the volume")
	g.Expect(d.Spec.Strategy.Type).To(Equal(appsv1.RecreateDeploymentStrategyType),
		"the old pod must close the segment store before the new one opens it")

	// An existing claim instead of the chart's.
	m = render(t, namespace, "audit.sink=both", "replicaCount=1", "audit.persistence.existingClaim=audit-archive")
	g.Expect(m.ofKind("PersistentVolumeClaim")).To(BeEmpty())
	g.Expect(volume(t, m.deployment(t).Spec.Template.Spec, "audit").PersistentVolumeClaim).To(HaveValue(HaveField("ClaimName", "audit-archive")))

	// Two writers on one segment store would corrupt the trail.
	g.Expect(renderError(t, "audit.sink=file")).To(And(ContainSubstring("audit.sink=file needs replicaCount=1"), ContainSubstring("got 2")))
}

func TestSingleReplicaHasNoPDB(t *testing.T) {
	g := NewWithT(t)
	m := render(t, namespace, "replicaCount=1")
	g.Expect(m.ofKind("PodDisruptionBudget")).To(BeEmpty(), "minAvailable 1 of 1 replica would block every node drain")
	g.Expect(m.deployment(t).Spec.Replicas).To(HaveValue(BeEquivalentTo(1)))

	g.Expect(render(t, namespace, "replicaCount=3", "podDisruptionBudget.enabled=false").ofKind("PodDisruptionBudget")).To(BeEmpty())
}

func TestImage(t *testing.T) {
	g := NewWithT(t)
	digest := "sha256:" + strings.Repeat("ab", 32)
	c := render(t, namespace, "image.repository=registry.example/custos", "image.tag=9.9.9", "image.digest="+digest,
		"image.pullPolicy=Always").deployment(t).Spec.Template.Spec.Containers[0]
	g.Expect(c.Image).To(Equal("registry.example/custos@"+digest), "a digest wins over the tag")
	g.Expect(c.ImagePullPolicy).To(Equal(corev1.PullAlways))

	c = render(t, namespace, "image.tag=0.2.0-rc.1").deployment(t).Spec.Template.Spec.Containers[0]
	g.Expect(c.Image).To(Equal("ghcr.io/custos-dev/custos:0.2.0-rc.1"))
}

func TestManagerValues(t *testing.T) {
	g := NewWithT(t)
	m := render(t, namespace,
		"trustDomain=prod.acme.example", "sweepInterval=1h", "concurrency=16", "kubeAPI.qps=200", "kubeAPI.burst=400",
		"logLevel=debug", "audit.checkpointEvery=500", "audit.checkpointInterval=30s", "extraArgs[0]=--audit-segment-size=1048576",
		"nodeSelector.pool=system", "tolerations[0].key=dedicated", "tolerations[0].operator=Exists",
		"priorityClassName=system-cluster-critical", "podAnnotations.team=platform", "podLabels.cost-center=security",
		"affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=arch",
		"affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
		"podSecurityContext.runAsUser=null", "webhook.port=10250", "metrics.port=9443",
	)
	d := m.deployment(t)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	g.Expect(c.Args).To(ContainElements(
		"--trust-domain=prod.acme.example", "--sweep-interval=1h", "--concurrency=16", "--kube-api-qps=200",
		"--kube-api-burst=400", "--zap-log-level=debug", "--audit-checkpoint-every=500", "--audit-checkpoint-interval=30s",
		"--audit-segment-size=1048576", "--webhook-port=10250", "--metrics-bind-address=:9443",
	))
	g.Expect(pod.NodeSelector).To(Equal(map[string]string{"pool": "system"}))
	g.Expect(pod.Tolerations).To(Equal([]corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}))
	g.Expect(pod.PriorityClassName).To(Equal("system-cluster-critical"))
	g.Expect(pod.Affinity.NodeAffinity).NotTo(BeNil())
	g.Expect(d.Spec.Template.Annotations).To(HaveKeyWithValue("team", "platform"))
	g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue("cost-center", "security"))
	g.Expect(selects(t, d.Spec.Selector.MatchLabels, labels.Set(d.Spec.Template.Labels))).To(BeTrue())
	g.Expect(pod.SecurityContext.RunAsUser).To(BeNil(), "null leaves the user to the platform")
	g.Expect(pod.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
	g.Expect(c.Ports).To(ContainElements(
		corev1.ContainerPort{Name: "webhook", ContainerPort: 10250, Protocol: corev1.ProtocolTCP},
		corev1.ContainerPort{Name: "metrics", ContainerPort: 9443, Protocol: corev1.ProtocolTCP},
	))
	g.Expect(m.find(t, "Service", "custos-metrics").Object["spec"]).To(HaveKeyWithValue("ports",
		ContainElement(HaveKeyWithValue("port", BeEquivalentTo(9443)))))

	// Pod labels never take over the selector.
	d = render(t, namespace, "podLabels.app\\.kubernetes\\.io/component=other").deployment(t)
	g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue("app.kubernetes.io/component", "manager"))
}

// TestNumbersFromValuesFiles: Helm reads numbers in values files as floats;
// a million must still reach an integer flag as 1000000, not 1e+06.
func TestNumbersFromValuesFiles(t *testing.T) {
	g := NewWithT(t)
	file := filepath.Join(t.TempDir(), "values.yaml")
	g.Expect(os.WriteFile(file, []byte(`
replicaCount: 3
concurrency: 1000000
kubeAPI: {qps: 2.5, burst: 10000000}
audit: {checkpointEvery: 1000000}
podSecurityContext: {runAsUser: 1000680000, runAsGroup: 1000680000, fsGroup: 1000680000}
podDisruptionBudget: {minAvailable: 2}
`), 0o600)).To(Succeed())
	stdout, stderr, err := helm(t, "template", release, chartDir, "--namespace", namespace, "--values", file)
	g.Expect(err).NotTo(HaveOccurred(), stderr)
	m, err := parse(stdout)
	g.Expect(err).NotTo(HaveOccurred())
	d := m.deployment(t)
	g.Expect(d.Spec.Replicas).To(HaveValue(BeEquivalentTo(3)))
	g.Expect(d.Spec.Template.Spec.Containers[0].Args).To(ContainElements(
		"--concurrency=1000000", "--kube-api-qps=2.5", "--kube-api-burst=10000000", "--audit-checkpoint-every=1000000"))
	g.Expect(d.Spec.Template.Spec.SecurityContext.RunAsUser).To(HaveValue(BeEquivalentTo(1000680000)))
	pdb := into[policyv1.PodDisruptionBudget](t, m.find(t, "PodDisruptionBudget", "custos-manager"))
	g.Expect(pdb.Spec.MinAvailable).To(HaveValue(Equal(intstr.FromInt32(2))))

	pdb = into[policyv1.PodDisruptionBudget](t, render(t, namespace, "podDisruptionBudget.minAvailable=50%").find(t, "PodDisruptionBudget", "custos-manager"))
	g.Expect(pdb.Spec.MinAvailable).To(HaveValue(Equal(intstr.FromString("50%"))))
}

func TestSchema(t *testing.T) {
	for _, tc := range []struct {
		set  string
		want []string
	}{
		{"replicas=3", []string{"additional properties 'replicas' not allowed"}},
		{"image.tags=1.0", []string{"/image", "additional properties 'tags' not allowed"}},
		{"audit.persistence.sizes=1Gi", []string{"/audit/persistence", "'sizes'"}},
		{"serviceMonitor.tlsConfig.caFile=/ca.crt", []string{"/serviceMonitor/tlsConfig", "'caFile'"}},
		{"replicaCount=two", []string{"/replicaCount", "want integer"}},
		{"replicaCount=0", []string{"/replicaCount"}},
		{"certManager.enabled=yes", []string{"/certManager/enabled", "want boolean"}},
		{"audit.sink=s3", []string{"/audit/sink"}},
		{"image.digest=latest", []string{"/image/digest"}},
		{"sweepInterval=ten minutes", []string{"/sweepInterval"}},
		{"logLevel=verbose", []string{"/logLevel"}},
		{"extraArgs[0]=audit-sink=file", []string{"/extraArgs/0"}},
		{"tolerations[0].operater=Exists", []string{"/tolerations/0", "'operater'"}},
		{"topologySpreadConstraints[0].maxSkew=0", []string{"/topologySpreadConstraints/0/maxSkew"}},
	} {
		t.Run(tc.set, func(t *testing.T) {
			g := NewWithT(t)
			stderr := renderError(t, tc.set)
			g.Expect(stderr).To(ContainSubstring("values don't meet the specifications of the schema"))
			for _, w := range tc.want {
				g.Expect(stderr).To(ContainSubstring(w))
			}
		})
	}
}

// TestReadmeListsEveryValue: the chart's README documents every value the
// schema accepts.
func TestReadmeListsEveryValue(t *testing.T) {
	g := NewWithT(t)
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	g.Expect(err).NotTo(HaveOccurred())
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	g.Expect(err).NotTo(HaveOccurred())
	var schema map[string]any
	g.Expect(json.Unmarshal(raw, &schema)).To(Succeed())

	var paths []string
	var walk func(props map[string]any, prefix string)
	walk = func(props map[string]any, prefix string) {
		for key, p := range props {
			p := p.(map[string]any)
			g.Expect(p).To(HaveKey("description"), prefix+key)
			if key == "global" {
				continue
			}
			if sub, ok := p["properties"].(map[string]any); ok && key != "resources" && key != "affinity" {
				g.Expect(p).To(HaveKeyWithValue("additionalProperties", false), prefix+key)
				walk(sub, prefix+key+".")
				continue
			}
			paths = append(paths, prefix+key)
		}
	}
	g.Expect(schema).To(HaveKeyWithValue("additionalProperties", false))
	walk(schema["properties"].(map[string]any), "")
	sort.Strings(paths)
	for _, p := range paths {
		g.Expect(string(readme)).To(ContainSubstring("| `"+p+"` |"), "charts/custos/README.md does not describe %s", p)
	}

	// And values.yaml sets every one of them.
	var values map[string]any
	raw, err = os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(yaml.Unmarshal(raw, &values)).To(Succeed())
	for _, p := range paths {
		var v any = values
		for _, k := range strings.Split(p, ".") {
			g.Expect(v).To(HaveKey(k), "values.yaml does not set %s", p)
			v = v.(map[string]any)[k]
		}
	}
}

// TestNotes renders NOTES.txt, which helm template leaves out: a mistake in
// it would only show at helm install.
func TestNotes(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	g.Expect(os.CopyFS(dir, os.DirFS(chartDir))).To(Succeed())
	notes, err := os.ReadFile(filepath.Join(chartDir, "templates", "NOTES.txt"))
	g.Expect(err).NotTo(HaveOccurred())
	wrapper := `{{- define "custos.test.notes" }}` + string(notes) + "{{- end }}\n" +
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ include \"custos.test.notes\" . | toJson }}\n"
	g.Expect(os.WriteFile(filepath.Join(dir, "templates", "zz-notes.yaml"), []byte(wrapper), 0o600)).To(Succeed())
	show := func(sets ...string) string {
		args := append(templateArgs(dir, namespace, sets...), "--show-only", "templates/zz-notes.yaml")
		stdout, stderr, err := helm(t, args...)
		g.Expect(err).NotTo(HaveOccurred(), stderr)
		objs, err := parse(stdout)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(objs).To(HaveLen(1))
		return objs[0].Object["data"].(map[string]any)["notes"].(string)
	}

	out := show()
	g.Expect(out).To(ContainSubstring("kubectl -n custos-system rollout status deployment/custos-manager"))
	g.Expect(out).To(ContainSubstring("kubectl apply -k config/samples"))
	g.Expect(out).To(ContainSubstring(`grep '"schema":"custos.dev/audit/v1"'`))
	g.Expect(out).To(ContainSubstring("custos-audit keygen"))
	g.Expect(out).To(ContainSubstring("custos-audit verify --no-signatures"))
	g.Expect(out).To(ContainSubstring("--clusterrole=custos-metrics-reader"))
	g.Expect(out).To(ContainSubstring("kubectl apply --server-side -f charts/custos/crds/"))

	out = show("audit.sink=file", "replicaCount=1", "audit.signingKeySecret.name=audit-key", "certManager.enabled=true", "serviceMonitor.enabled=true")
	g.Expect(out).To(ContainSubstring("PersistentVolumeClaim\n   custos-audit, which is kept"))
	g.Expect(out).To(ContainSubstring("custos-audit verify --key audit-public.pem --allow-open <copy of /var/lib/custos/audit>"))
	g.Expect(out).To(ContainSubstring("get certificate custos-webhook"))
	g.Expect(out).To(ContainSubstring("The ServiceMonitor custos-manager"))
	g.Expect(out).NotTo(ContainSubstring("standard output"))
}

func validating(t *testing.T, m manifests) *admissionregistrationv1.ValidatingWebhookConfiguration {
	t.Helper()
	return into[admissionregistrationv1.ValidatingWebhookConfiguration](t, m.find(t, "ValidatingWebhookConfiguration", validatingWebhooks))
}

func mutating(t *testing.T, m manifests) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	return into[admissionregistrationv1.MutatingWebhookConfiguration](t, m.find(t, "MutatingWebhookConfiguration", mutatingWebhooks))
}

// withoutService clears what differs between config/ and a release: the
// Service the webhooks call (the path stays) and the CA bundle.
func withoutService[T admissionregistrationv1.ValidatingWebhook | admissionregistrationv1.MutatingWebhook](whs []T) []T {
	out := slices.Clone(whs)
	for i := range out {
		var cc *admissionregistrationv1.WebhookClientConfig
		switch wh := any(&out[i]).(type) {
		case *admissionregistrationv1.ValidatingWebhook:
			cc = &wh.ClientConfig
		case *admissionregistrationv1.MutatingWebhook:
			cc = &wh.ClientConfig
		}
		cc.CABundle = nil
		if cc.Service != nil {
			svc := *cc.Service
			svc.Name, svc.Namespace = "", ""
			cc.Service = &svc
		}
	}
	return out
}

// normalize sorts rules and their lists, which RBAC treats as sets.
func normalize(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	out := make([]rbacv1.PolicyRule, len(rules))
	for i, r := range rules {
		r = *r.DeepCopy()
		for _, s := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames, r.NonResourceURLs} {
			sort.Strings(s)
		}
		out[i] = r
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// selects reports whether the selector matchLabels selects the labels set.
func selects(t *testing.T, matchLabels map[string]string, set labels.Set) bool {
	t.Helper()
	return len(matchLabels) > 0 && labels.SelectorFromSet(matchLabels).Matches(set)
}

func volume(t *testing.T, pod corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range pod.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q", name)
	return corev1.Volume{}
}

func names(m manifests) []string {
	var out []string
	for _, o := range m {
		out = append(out, o.GetName())
	}
	return out
}
