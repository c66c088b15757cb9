//go:build e2e

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

package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/controlplane"
)

const (
	release  = "custos"
	custosNS = "custos-system"

	tenant    = "acme-e2e"
	boundary  = "acme-e2e"
	agentsNS  = "acme-agents"
	owners    = "acme-e2e-owners"
	agentName = "invoice-reconciler"
	// signerSecret holds the public key of the tenant's image signer.
	signerSecret = "acme-e2e-image-signer"
)

// euRegions are where the tenant's agents may run; the cluster also has a
// node in us-east-1, where they must not.
var euRegions = []string{"eu-west-1", "eu-central-1"}

// TestJourneys walks the journeys in order, each on what the previous one
// left: a step runs only when every step before it passed.
func TestJourneys(t *testing.T) {
	var owner string // the agent owner's kubeconfig: RBAC on Agents and Toolsets in agentsNS only
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"platform team installs Custos with helm and applies a DataBoundary", func(st *testing.T) { owner = install(st, t) }},
		{"a cross-tenant Agent is refused", func(t *testing.T) { crossTenant(t, owner) }},
		{"an out-of-region Toolset and an Agent using one are refused", func(t *testing.T) { outOfRegion(t, owner) }},
		{"owner applies an Agent and it becomes Ready in its regions", func(t *testing.T) { onboard(t, owner) }},
		{"owner suspends and resumes the Agent", func(t *testing.T) { suspendResume(t, owner) }},
		{"the Agent expires and the owner renews it", func(t *testing.T) { expire(t, owner) }},
		{"owner deletes the Agent and nothing of it remains", func(t *testing.T) { decommission(t, owner) }},
		{"the chart's RBAC covered everything the manager did", chartRBAC},
	}
	for _, s := range steps {
		start := time.Now()
		if !t.Run(s.name, s.run) {
			t.Fatalf("%q failed; the journeys after it need what it leaves, so they do not run", s.name)
		}
		t.Logf("%s: %s", s.name, time.Since(start).Round(time.Millisecond))
	}
}

// install: the platform team installs the chart, then applies the tenant's
// image signer, DataBoundary, namespace and the owners' permissions, as it
// would from its GitOps repository. Returns the owner's kubeconfig. The
// manager runs until journey, the whole of the journeys, ends.
func install(t, journey *testing.T) string {
	g := NewWithT(t)
	dumpOnFailure(t, custosNS, agentsNS)
	ctx := context.Background()

	// --wait: kwok runs the manager Deployment's pods, so the release
	// becomes ready as on a real cluster.
	helm(g, "install", release, "../../charts/custos", "--namespace", custosNS, "--create-namespace", "--wait", "--timeout", "3m")
	mustKubectl(g, admin, "", "wait", "--for=condition=Established", "--timeout=60s",
		"crd/agents.custos.dev", "crd/toolsets.custos.dev", "crd/databoundaries.custos.dev")
	c := newClient(g)
	var deploys appsv1.DeploymentList
	g.Expect(c.List(ctx, &deploys, client.InNamespace(custosNS), client.MatchingLabels{"app.kubernetes.io/instance": release})).To(Succeed())
	g.Expect(deploys.Items).To(HaveLen(1))
	g.Expect(deploys.Items[0].Status.AvailableReplicas).To(Equal(*deploys.Items[0].Spec.Replicas), "helm --wait waited for the manager's pods")

	startChartManager(journey, g, c, custosNS, release)
	g.Eventually(func(g Gomega) {
		var vwcs admissionregistrationv1.ValidatingWebhookConfigurationList
		g.Expect(c.List(ctx, &vwcs, client.MatchingLabels{"app.kubernetes.io/instance": release})).To(Succeed())
		g.Expect(vwcs.Items).To(HaveLen(1))
		for _, w := range vwcs.Items[0].Webhooks {
			g.Expect(w.ClientConfig.CABundle).NotTo(BeEmpty(), "the manager injects its CA into webhook %s", w.Name)
		}
	}).WithTimeout(eventually).WithPolling(polling).Should(Succeed())

	platform := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: %[1]s
  namespace: %[2]s
data:
  cosign.pub: %[3]s
---
%[4]s
---
apiVersion: v1
kind: Namespace
metadata:
  name: %[5]s
  labels:
    custos.dev/tenant: %[6]s
---
# The owners manage their Agents and Toolsets and see how they run; nothing more.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: agent-owner
  namespace: %[5]s
rules:
  - apiGroups: [custos.dev]
    resources: [agents, toolsets]
    verbs: [get, list, watch, create, update, patch, delete]
  - apiGroups: ["", apps, events.k8s.io]
    resources: [pods, events, deployments, replicasets]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: agent-owners
  namespace: %[5]s
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: agent-owner
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: Group
    name: %[7]s
`, signerSecret, custosNS, base64.StdEncoding.EncodeToString(images.Signer.PublicKeyPEM()),
		boundaryYAML(euRegions...), agentsNS, tenant, owners)
	// The first request through the chart's Service may come before the
	// manager's webhook server has the certificate it injected.
	g.Eventually(func() (string, error) {
		return kubectl(admin, platform, "apply", "-f", "-")
	}).WithTimeout(eventually).WithPolling(time.Second).Should(ContainSubstring("created"))
	mustKubectl(g, admin, "", "wait", "--for=condition=Ready", "--timeout=2m", "databoundary/"+boundary)
	out := mustKubectl(g, admin, "", "get", "databoundary", boundary)
	g.Expect(out).To(ContainSubstring("eu-west-1"))

	owner := userKubeconfig(g, "alice@acme.example", owners)
	// The API server applies the chart's admission policies once it has
	// loaded them and the CRDs' schemas, a moment after the CRDs are
	// Established; until then an Agent is refused ("Resource kind … not
	// found") or stored without its decommission finalizer. The owner's
	// first Agent, as a server-side dry run, tells when they are in force.
	g.Eventually(func() (string, error) {
		return kubectl(owner, agentYAML(agentName, tenant, ""), "create", "--dry-run=server", "-f", "-", "-o", "jsonpath={.metadata.finalizers}")
	}).WithTimeout(eventually).WithPolling(polling).Should(ContainSubstring(custosv1alpha1.DecommissionFinalizer))
	return owner
}

// boundaryYAML is the tenant's DataBoundary: its namespaces, regions, and
// the images it trusts (from the suite's registry, signed by its signer).
func boundaryYAML(regions ...string) string {
	return fmt.Sprintf(`apiVersion: custos.dev/v1alpha1
kind: DataBoundary
metadata:
  name: %s
spec:
  tenant: %s
  namespaceSelector:
    matchLabels:
      custos.dev/tenant: %s
  regions: [%s]
  images:
    registries: ["%s/agents/"]
    publicKeys:
      - secretRef: {namespace: %s, name: %s, key: cosign.pub}
`, boundary, tenant, tenant, strings.Join(regions, ", "), images.Registry.Host(), custosNS, signerSecret)
}

// agentYAML is an Agent of the tenant's, by its owner.
func agentYAML(name, tenantLabel, toolset string) string {
	refs := ""
	if toolset != "" {
		refs = fmt.Sprintf("  toolsetRefs:\n    - name: %s\n", toolset)
	}
	return fmt.Sprintf(`apiVersion: custos.dev/v1alpha1
kind: Agent
metadata:
  name: %s
  namespace: %s
  labels:
    custos.dev/tenant: %s
spec:
  owner:
    team: finance-platform
    contact: finance-platform@acme.example
  purpose: Reconcile supplier invoices against the ledger and flag mismatches for review.
  image: %s
  runtime:
    replicas: 3
  credentials:
    - name: ledger-api
      kubernetesToken:
        audience: ledger-api
      ttl: 10m
%s`, name, agentsNS, tenantLabel, images.Image, refs)
}

// toolsetYAML is a read-only Toolset served in the tenant's namespace, in
// region.
func toolsetYAML(name, region string) string {
	return fmt.Sprintf(`apiVersion: custos.dev/v1alpha1
kind: Toolset
metadata:
  name: %s
  namespace: %s
  labels:
    custos.dev/tenant: %s
spec:
  description: Look up invoices and ledger entries.
  endpoint:
    inCluster:
      namespace: %s
      podSelector:
        app.kubernetes.io/name: %s
      port: 8080
  region: %s
  dataClassification: Confidential
  tools:
    - name: get_invoice
      description: Fetch one supplier invoice by its number.
      access: Read
      inputSchema:
        type: object
        required: [invoiceNumber]
        properties:
          invoiceNumber: {type: string}
`, name, agentsNS, tenant, agentsNS, name, region)
}

// crossTenant: an owner cannot make an Agent of another tenant in their
// namespace, so it cannot take that tenant's roles, images or Toolsets.
func crossTenant(t *testing.T, owner string) {
	g := NewWithT(t)
	dumpOnFailure(t, agentsNS)
	out, err := kubectl(owner, agentYAML("intruder", "globex-e2e", ""), "apply", "-f", "-")
	g.Expect(err).To(HaveOccurred(), "a cross-tenant Agent was admitted:\n%s", out)
	t.Logf("kubectl apply said:\n%s", out)
	g.Expect(out).To(ContainSubstring(`"intruder" is invalid`))
	g.Expect(out).To(ContainSubstring(`metadata.labels[custos.dev/tenant]`))
	g.Expect(out).To(ContainSubstring(`"globex-e2e"`))
	g.Expect(out).To(ContainSubstring(`"acme-e2e"`))
	_, err = kubectl(admin, "", "get", "agent", "-n", agentsNS, "intruder")
	g.Expect(err).To(HaveOccurred(), "nothing was stored")
}

// outOfRegion: residency. A Toolset outside the tenant's regions is
// refused; so is an Agent that would use one that predates a narrowing of
// the boundary (the platform team allowed us-east-1 for a while).
func outOfRegion(t *testing.T, owner string) {
	g := NewWithT(t)
	dumpOnFailure(t, agentsNS)
	c := newClient(g)

	out, err := kubectl(owner, toolsetYAML("crm-us", "us-east-1"), "apply", "-f", "-")
	g.Expect(err).To(HaveOccurred(), "an out-of-region Toolset was admitted:\n%s", out)
	t.Logf("kubectl apply said:\n%s", out)
	g.Expect(out).To(ContainSubstring(`spec.region: Forbidden: region "us-east-1" is not allowed by DataBoundary "acme-e2e" (spec.regions: eu-west-1, eu-central-1)`))

	// The platform team allows us-east-1, the tool owner publishes the US
	// CRM's tools there, then residency narrows to the EU again.
	applyBoundary(g, c, append(slices.Clone(euRegions), "us-east-1")...)
	mustKubectl(g, owner, toolsetYAML("crm-us", "us-east-1"), "apply", "-f", "-")
	applyBoundary(g, c, euRegions...)

	out, err = kubectl(owner, agentYAML("crm-sync", tenant, "crm-us"), "apply", "-f", "-")
	g.Expect(err).To(HaveOccurred(), "an Agent using an out-of-region Toolset was admitted:\n%s", out)
	t.Logf("kubectl apply said:\n%s", out)
	g.Expect(out).To(ContainSubstring(`"crm-sync" is invalid`))
	g.Expect(out).To(ContainSubstring(`spec.toolsetRefs[0]: Forbidden: Toolset acme-agents/crm-us: spec.region: region "us-east-1" is not allowed by DataBoundary "acme-e2e" (spec.regions: eu-west-1, eu-central-1)`))
}

// applyBoundary applies the tenant's DataBoundary with regions and waits
// until Custos has seen it (its admission checks read the same cache).
func applyBoundary(g Gomega, c client.Client, regions ...string) {
	mustKubectl(g, admin, boundaryYAML(regions...), "apply", "-f", "-")
	g.Eventually(func(g Gomega) {
		b := &custosv1alpha1.DataBoundary{}
		g.Expect(c.Get(context.Background(), client.ObjectKey{Name: boundary}, b)).To(Succeed())
		g.Expect(b.Spec.Regions).To(Equal(regions))
		g.Expect(b.Status.ObservedGeneration).To(Equal(b.Generation))
	}).WithTimeout(eventually).WithPolling(polling).Should(Succeed())
}

// onboard: the owner applies a Toolset and an Agent and waits for it with
// kubectl; it runs the verified digest, on nodes of the EU only.
func onboard(t *testing.T, owner string) {
	g := NewWithT(t)
	dumpOnFailure(t, agentsNS)
	ctx := context.Background()
	c := newClient(g)

	mustKubectl(g, owner, toolsetYAML("ledger-readonly", "eu-west-1")+"---\n"+agentYAML(agentName, tenant, "ledger-readonly"), "apply", "-f", "-")
	mustKubectl(g, owner, "", "wait", "-n", agentsNS, "--for=condition=Ready", "--timeout=3m", "agent/"+agentName)
	out := mustKubectl(g, owner, "", "get", "agent", "-n", agentsNS, agentName)
	g.Expect(out).To(MatchRegexp(`(?m)^` + agentName + `\s+` + tenant + `\s+finance-platform\s+Active\s+True`))

	expectRunning(g, c)
	agent := getAgent(g, c)
	g.Expect(agent.Status.Image).NotTo(BeNil())
	g.Expect(agent.Status.Image.Digest).To(Equal(images.Digest))
	g.Expect(condition(agent, custosv1alpha1.ImageVerifiedCondition)).To(HaveField("Status", metav1.ConditionTrue))
	var deploy appsv1.Deployment
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: agentsNS, Name: "agent-" + agentName}, &deploy)).To(Succeed())
	g.Expect(deploy.Spec.Template.Spec.Containers[0].Image).To(Equal(images.Pinned()), "the workload runs the verified digest, never the tag")

	// Its lease: a Secret with a token for the ledger API.
	var secrets corev1.SecretList
	g.Expect(c.List(ctx, &secrets, client.InNamespace(agentsNS), client.MatchingLabels{custosv1alpha1.AgentLabel: agentName})).To(Succeed())
	g.Expect(secrets.Items).To(ContainElement(HaveField("Type", corev1.SecretType("custos.dev/lease"))))
}

// expectRunning: the Agent is Ready and Active, its Deployment has rolled
// out, and its three pods run on nodes of the boundary's regions only.
func expectRunning(g Gomega, c client.Client) {
	ctx := context.Background()
	regionOf := map[string]string{}
	for _, n := range cluster.Nodes {
		regionOf[n.Name] = n.Region
	}
	g.Eventually(func(g Gomega) {
		agent := getAgent(g, c)
		ready := condition(agent, custosv1alpha1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), ready.Message)
		g.Expect(ready.Reason).To(Equal(custosv1alpha1.SucceededReason))
		g.Expect(agent.Status.Lifecycle).NotTo(BeNil())
		g.Expect(agent.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseActive))

		var deploy appsv1.Deployment
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: agentsNS, Name: "agent-" + agentName}, &deploy)).To(Succeed())
		g.Expect(deploy.Status.AvailableReplicas).To(Equal(int32(3)))

		pods := agentPods(g, c, agentsNS, agentName)
		g.Expect(pods).To(HaveLen(3))
		for _, p := range pods {
			g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning), "pod %s", p.Name)
			g.Expect(p.Spec.NodeName).NotTo(BeEmpty(), "pod %s is scheduled", p.Name)
			g.Expect(euRegions).To(ContainElement(regionOf[p.Spec.NodeName]),
				"pod %s runs on node %s in region %q, outside the boundary's regions", p.Name, p.Spec.NodeName, regionOf[p.Spec.NodeName])
		}
	}).WithTimeout(eventually).WithPolling(polling).Should(Succeed())
	// The scheduler placed them by the node labels, which are what the
	// region affinity names.
	for _, p := range agentPods(g, c, agentsNS, agentName) {
		node := &corev1.Node{}
		g.Expect(c.Get(ctx, client.ObjectKey{Name: p.Spec.NodeName}, node)).To(Succeed())
		g.Expect(euRegions).To(ContainElement(node.Labels[controlplane.RegionLabel]))
	}
}

// expectSuspended: the Agent is Suspended for reason, Ready says so, and
// none of its pods is left.
func expectSuspended(g Gomega, c client.Client, reason string) {
	g.Eventually(func(g Gomega) {
		agent := getAgent(g, c)
		g.Expect(agent.Status.Lifecycle).NotTo(BeNil())
		g.Expect(agent.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseSuspended))
		ready := condition(agent, custosv1alpha1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Reason).To(Equal(reason), ready.Message)
		g.Expect(agentPods(g, c, agentsNS, agentName)).To(BeEmpty(), "the pods of a suspended agent are gone")
	}).WithTimeout(eventually).WithPolling(polling).Should(Succeed())
}

func getAgent(g Gomega, c client.Client) *custosv1alpha1.Agent {
	agent := &custosv1alpha1.Agent{}
	g.ExpectWithOffset(1, c.Get(context.Background(), client.ObjectKey{Namespace: agentsNS, Name: agentName}, agent)).To(Succeed())
	return agent
}

// suspendResume: the owner suspends the agent (its pods go) and resumes it
// (they come back, in its regions).
func suspendResume(t *testing.T, owner string) {
	g := NewWithT(t)
	dumpOnFailure(t, agentsNS)
	c := newClient(g)

	mustKubectl(g, owner, "", "patch", "agent", "-n", agentsNS, agentName, "--type=merge",
		"-p", `{"spec":{"lifecycle":{"state":"Suspended"}}}`)
	expectSuspended(g, c, custosv1alpha1.SuspendedBySpecReason)
	out := mustKubectl(g, owner, "", "get", "agent", "-n", agentsNS, agentName, "-o", "wide")
	g.Expect(out).To(ContainSubstring("Suspended by spec.lifecycle.state"))

	mustKubectl(g, owner, "", "patch", "agent", "-n", agentsNS, agentName, "--type=merge",
		"-p", `{"spec":{"lifecycle":{"state":"Active"}}}`)
	expectRunning(g, c)
}

// expire: the owner gives the agent an expiry a few seconds ahead; it is
// suspended when it passes, and runs again when the owner moves it.
func expire(t *testing.T, owner string) {
	g := NewWithT(t)
	dumpOnFailure(t, agentsNS)
	c := newClient(g)

	at := time.Now().Add(8 * time.Second).UTC().Format(time.RFC3339)
	mustKubectl(g, owner, "", "patch", "agent", "-n", agentsNS, agentName, "--type=merge",
		"-p", fmt.Sprintf(`{"spec":{"lifecycle":{"expiresAt":%q}}}`, at))
	expectSuspended(g, c, custosv1alpha1.ExpiredReason)
	g.Expect(condition(getAgent(g, c), custosv1alpha1.ReadyCondition).Message).To(ContainSubstring("Expired at " + at))

	renewed := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	mustKubectl(g, owner, "", "patch", "agent", "-n", agentsNS, agentName, "--type=merge",
		"-p", fmt.Sprintf(`{"spec":{"lifecycle":{"expiresAt":%q}}}`, renewed))
	expectRunning(g, c)
}

// decommission: the owner deletes the running agent; kubectl returns once
// it is gone, and with it everything it had. Custos's decommission deletes
// the leases, the Deployment and pods, the NetworkPolicy and the
// ServiceAccount; the Deployment's ReplicaSet is left to the controller
// manager's garbage collector (envtest, without one, keeps it for ever),
// and kwok finishes the pods' deletion as a kubelet would.
func decommission(t *testing.T, owner string) {
	g := NewWithT(t)
	dumpOnFailure(t, agentsNS)
	ctx := context.Background()
	c := newClient(g)

	// What the agent has now, by kind and name.
	had := map[string][]string{}
	sel := client.MatchingLabels{custosv1alpha1.AgentLabel: agentName}
	lists := map[string]client.ObjectList{
		"Deployment":     &appsv1.DeploymentList{},
		"ReplicaSet":     &appsv1.ReplicaSetList{},
		"Pod":            &corev1.PodList{},
		"ServiceAccount": &corev1.ServiceAccountList{},
		"NetworkPolicy":  &networkingv1.NetworkPolicyList{},
		"Secret":         &corev1.SecretList{},
	}
	names := func(g Gomega, list client.ObjectList) []string {
		g.Expect(c.List(ctx, list, client.InNamespace(agentsNS), sel)).To(Succeed())
		var out []string
		items, err := metaItems(list)
		g.Expect(err).NotTo(HaveOccurred())
		for _, o := range items {
			out = append(out, o.GetName())
		}
		return out
	}
	for kind, list := range lists {
		had[kind] = names(g, list)
		g.Expect(had[kind]).NotTo(BeEmpty(), "the running agent has a %s", kind)
	}
	t.Logf("the agent has: %v", had)

	start := time.Now()
	out := mustKubectl(g, owner, "", "delete", "agent", "-n", agentsNS, agentName, "--timeout=3m")
	g.Expect(out).To(ContainSubstring(fmt.Sprintf(`agent.custos.dev "%s" deleted`, agentName)))
	t.Logf("kubectl delete returned after %s", time.Since(start).Round(time.Millisecond))
	g.Expect(apierrors.IsNotFound(c.Get(ctx, client.ObjectKey{Namespace: agentsNS, Name: agentName}, &custosv1alpha1.Agent{}))).
		To(BeTrue(), "kubectl delete waits until the Agent is gone")

	g.Eventually(func(g Gomega) {
		for kind, list := range lists {
			g.Expect(names(g, list)).To(BeEmpty(), "%s left behind", kind)
		}
		// By name too, in case a label was lost on the way.
		for kind, objs := range had {
			for _, name := range objs {
				obj := map[string]client.Object{
					"Deployment": &appsv1.Deployment{}, "ReplicaSet": &appsv1.ReplicaSet{}, "Pod": &corev1.Pod{},
					"ServiceAccount": &corev1.ServiceAccount{}, "NetworkPolicy": &networkingv1.NetworkPolicy{}, "Secret": &corev1.Secret{},
				}[kind]
				err := c.Get(ctx, client.ObjectKey{Namespace: agentsNS, Name: name}, obj)
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%s %s left behind (%v)", kind, name, err)
			}
		}
	}).WithTimeout(eventually).WithPolling(polling).Should(Succeed())
	t.Logf("everything of the agent gone %s after the delete", time.Since(start).Round(time.Millisecond))
}

// chartRBAC: the manager ran as the chart's ServiceAccount all along; had
// the chart's RBAC missed a permission, the API server would have refused
// it and the manager logged so.
func chartRBAC(t *testing.T) {
	g := NewWithT(t)
	dumpOnFailure(t)
	log := mustReadFile(g, artifactsPath("manager.log"))
	for _, line := range strings.Split(log, "\n") {
		g.Expect(line).NotTo(ContainSubstring("is forbidden"), "the chart's RBAC must cover everything the manager does")
	}
}
