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
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/breaker"
	"github.com/custos-dev/custos/internal/evaluate"
)

// The containment suite's tenant (issue #15): a DataBoundary, namespace and
// people of its own, apart from the journeys' tenant, so that the two
// suites share the cluster and the chart without seeing each other.
const (
	ctTenant = "containment-e2e"
	ctNS     = "containment-agents"
	// gatewayCredentialsNS is the chart's gateway credentials namespace
	// of the release: the caps' ledger and the replicas' usage reports.
	gatewayCredentialsNS = custosNS + "-gateway-credentials"
	ctSigner             = "containment-image-signer"
	ctEditors            = "containment-editors"
	ctOwners             = "containment-owners"

	// The agents the tenants go after.
	victim    = "invoice-reconciler" // Active; credential ledger-api, a kubernetesToken of 12h
	neighbour = "invoice"            // Active; credential reconciler-ledger-api; bound to a role in each cloud
	sleeper   = "payroll"            // Suspended
	retired   = "retired"            // decommissioned before the cases run
	newcomer  = "newcomer"           // no Agent: its names are taken before it exists

	victimLease    = "agent-" + victim + ".ledger-api"
	neighbourLease = "agent-" + neighbour + ".reconciler-ledger-api"
	retiredLease   = "agent-" + retired + ".ledger-api"

	awsRole     = "arn:aws:iam::111122223333:role/containment-invoice"
	azureClient = "6f1c2b1e-8f4a-4b7e-9a51-2f0d1c3e4a5b"
	azureTenant = "0b6f4f4e-2d2c-4a8e-b3c1-7d9a0e1f2a3b"
	gcpAccount  = "invoice-agent@containment-e2e.iam.gserviceaccount.com"

	// The in-process admission policies (config/crd/policies).
	identityPolicy        = "custos-agent-identity"
	workloadPolicy        = "custos-agent-workload"
	serviceAccountsPolicy = "custos-agent-serviceaccounts"
	secretsPolicy         = "custos-agent-secrets"
	networkPoliciesPolicy = "custos-agent-networkpolicies"
	ownershipPolicy       = "custos-agent-ownership"
	narrowPolicy          = "custos-agent-networkpolicies-narrow"

	// Custos's webhooks.
	agentWebhook = "agents.custos.dev"
	podWebhook   = "pods.validate.custos.dev"

	narrowedAnnotation = "custos.dev/narrowed"
)

// actor is who makes an attempt: a person of the tenant's, or a controller
// of Kubernetes', always through the platform team's connection and
// impersonation.
type actor struct {
	key    string
	user   string
	groups []string
	// suffix ends the names of what the actor creates, so that one
	// actor's attempt never meets what another's left.
	suffix string
}

var (
	// tenantEditor has the built-in edit ClusterRole in the tenant's
	// namespace (what most platforms give a namespace team), and the
	// pods/status and pods/ephemeralcontainers that kubectl debug and
	// status tooling ask for.
	tenantEditor = actor{key: "edit", user: "erin@containment.example", groups: []string{ctEditors, "system:authenticated"}, suffix: "edit"}
	// agentOwner has the narrow agent-owner Role of the journeys: Agents
	// and Toolsets, and reading how they run.
	agentOwner = actor{key: "agent-owner", user: "olga@containment.example", groups: []string{ctOwners, "system:authenticated"}, suffix: "owner"}
	// rsController is Kubernetes' ReplicaSet controller, the one creator
	// of agent pods the policies admit: what gets past them meets the pod
	// guard. Its attempts are dry runs.
	rsController = actor{key: "replicaset-controller", user: "system:serviceaccount:kube-system:replicaset-controller",
		groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}, suffix: "rs"}

	actors = []actor{tenantEditor, agentOwner, rsController}
)

// What refuses an attempt, besides a policy (named by itself) or a webhook
// (webhookPrefix and its name).
const (
	byRBAC = "RBAC"
	// byAPI: the API server itself: a CRD's schema or rules, ServiceAccount
	// admission, a missing object.
	byAPI = "the API server"
	// byAgentAdmission: the Agent CRD's rules or Custos's webhook
	// agents.custos.dev, whichever holds the check.
	byAgentAdmission = "Agent admission"
	webhookPrefix    = "webhook "
)

// want is the expected outcome of one actor's attempt.
type want struct {
	// codes are the HTTP statuses a refusal may have; none: admitted.
	codes []int
	by    string
	msg   []string
	// admitted, for an attempt that is admitted, checks what it stored;
	// aspect names the check.
	admitted func(g Gomega, a actor)
	aspect   string
}

// title names an actor's attempt after what must meet it: "as edit,
// refused by custos-agent-identity", "as agent-owner, refused by RBAC".
func (w want) title(a actor) string {
	if len(w.codes) == 0 {
		return "as " + a.key + ", admitted: " + w.aspect
	}
	return "as " + a.key + ", refused by " + w.by
}

func policyRefuses(policy string, msg ...string) want {
	return want{codes: []int{403}, by: policy, msg: msg}
}

func rbacRefuses(verb, resource string) want {
	return want{codes: []int{403}, by: byRBAC, msg: []string{fmt.Sprintf("cannot %s resource %q", verb, resource)}}
}

func webhookRefuses(name string, msg ...string) want {
	return want{codes: []int{422}, by: webhookPrefix + name, msg: msg}
}

func apiRefuses(code int, msg ...string) want {
	return want{codes: []int{code}, by: byAPI, msg: msg}
}

func agentAdmissionRefuses(msg ...string) want {
	return want{codes: []int{403, 422}, by: byAgentAdmission, msg: msg}
}

func admittedIf(aspect string, check func(g Gomega, a actor)) want {
	return want{admitted: check, aspect: aspect}
}

// both is the outcome for the tenant's editor and for the agent owner.
func both(edit, owner want) map[string]want {
	return map[string]want{tenantEditor.key: edit, agentOwner.key: owner}
}

// ccase is one containment case: an attempt, what each actor must meet,
// and what must still hold afterwards.
type ccase struct {
	name string
	try  func(a *attempt) error
	want map[string]want
	// unchanged fails when the attempt of a stored or changed anything.
	unchanged func(g Gomega, a actor)
	// undo removes, as the platform team, what an admitted attempt of a
	// stored, so that a hole does not spill into the cases after it.
	undo func(a actor)
}

// attempt is one actor's try at a case, through its own clients.
type attempt struct {
	actor
	ctx context.Context
	cs  kubernetes.Interface
	dyn dynamic.Interface
	// create are the options of a create: a dry run for the controller.
	create metav1.CreateOptions
}

// name is base, made the actor's.
func (a actor) name(base string) string { return base + "-" + a.suffix }

var agentsGVR = schema.GroupVersionResource{Group: "custos.dev", Version: "v1alpha1", Resource: "agents"}

// containment is the suite's world: the platform team's clients and what
// the tenant's agents are made of, read once they run.
type containment struct {
	ctx        context.Context
	c          client.Client
	cs         kubernetes.Interface
	dyn        dynamic.Interface
	apiAudit   *apiAuditLog
	managerLog string

	uid    map[string]types.UID
	deploy map[string]*appsv1.Deployment // victim, neighbour, sleeper; retired as it was before its decommission
	rs     map[string]*appsv1.ReplicaSet // the ReplicaSets of victim and sleeper
	pod    *corev1.Pod                   // a running pod of the victim
	np     *networkingv1.NetworkPolicy   // the victim's NetworkPolicy
}

// TestContainment walks issue #15: everything a tenant did to wear an
// agent's identity, hold its credentials or widen its network, each as a
// tenant with the built-in edit ClusterRole and as the narrow agent-owner
// Role, through impersonation. Each attempt must be refused, by the policy,
// webhook or RBAC rule the case names, with a message that says why; the
// refusal must be on the record (the API server's audit log; Custos's audit
// trail for its webhooks' refusals); and nothing may be stored or changed.
// What gets past the policies (pods the ReplicaSet controller creates) is
// tried against Custos's pod guard as dry runs.
//
// It runs on the cluster of the journeys, with its own tenant; it installs
// the chart when the journeys have not, and then leaves the cluster as it
// found it.
func TestContainment(t *testing.T) {
	e := setUpContainment(t)
	t.Run("the tenants are not the manager", e.notTheManager)
	t.Run("the DataBoundary reports that edit's impersonate on ServiceAccounts escapes admission", e.rbacReported)
	t.Run("row 1: invoice and invoice-reconciler hold one lease each, named apart", e.leasesApart)
	t.Run("row 2: a 12h kubernetesToken lease is capped like the unrevocable ones", e.kubernetesTokenCapped)
	t.Run("ambient: in the default Leased mode no cloud identity reaches the agent but through leases", e.noAmbientIdentity)
	t.Run("after decommission nothing runs as the agent", e.nothingLeft)
	for i, c := range e.cases() {
		start := time.Now()
		t.Run(c.name, func(t *testing.T) {
			for _, a := range actors {
				if w, ok := c.want[a.key]; ok {
					t.Run(w.title(a), func(t *testing.T) { e.attempt(t, i, c, a, w) })
				}
			}
		})
		if d := time.Since(start); d > 10*time.Second {
			t.Logf("%s took %s", c.name, d.Round(time.Millisecond))
		}
	}
}

// setUpContainment installs Custos unless the journeys did, lays out the
// tenant and runs its agents: two Active, one Suspended, one
// decommissioned. Everything is undone when t ends.
func setUpContainment(t *testing.T) *containment {
	g := NewWithT(t)
	ctx := context.Background()
	start := time.Now()
	e := &containment{ctx: ctx, uid: map[string]types.UID{}, deploy: map[string]*appsv1.Deployment{}, rs: map[string]*appsv1.ReplicaSet{}}
	e.apiAudit = &apiAuditLog{path: cp.AuditLog(), keep: func(ev apiAuditEvent) bool {
		// The tenant's namespace, and Custos's own, where the breaker's
		// inputs and state are.
		return ev.ObjectRef != nil && (ev.ObjectRef.Namespace == ctNS || ev.ObjectRef.Namespace == custosNS || ev.ObjectRef.Namespace == gatewayCredentialsNS)
	}}
	if e.apiAudit.path == "" {
		t.Errorf("the API server keeps no audit log (controlplane.Options.AuditLog is not set in main_test.go): the policies' refusals cannot be checked on the record")
	}

	c := newClient(g)
	var deploys appsv1.DeploymentList
	g.Expect(c.List(ctx, &deploys, client.InNamespace(custosNS), client.MatchingLabels{"app.kubernetes.io/instance": release})).To(Succeed())
	if len(deploys.Items) == 0 {
		// The journeys did not run first: install as they do, and
		// uninstall at the end (last, after the manager stopped), for
		// them to install again.
		helm(g, "install", release, "../../charts/custos", "--namespace", custosNS, "--create-namespace", "--wait", "--timeout", "3m")
		t.Cleanup(func() {
			out, err := command(helmBin, "", helmEnv(), "--kubeconfig", admin, "uninstall", release, "--namespace", custosNS, "--wait", "--timeout", "2m")
			if err != nil {
				t.Errorf("helm uninstall: %v\n%s", err, out)
			}
		})
		mustKubectl(g, admin, "", "wait", "--for=condition=Established", "--timeout=60s",
			"crd/agents.custos.dev", "crd/toolsets.custos.dev", "crd/databoundaries.custos.dev")
		c = newClient(g)
	}
	e.c = c
	var err error
	e.cs, err = kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())
	e.dyn, err = dynamic.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())

	// The manager, as the chart runs it, with a log of its own (the
	// journeys' stays theirs).
	dir := mkdir(g, "containment")
	m, err := cp.StartChartManager(ctx, c, custosNS, release, managerBin, dir)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(m.Stop)
	e.managerLog = m.LogPath
	g.Eventually(func(g Gomega) {
		var vwcs unstructured.UnstructuredList
		vwcs.SetAPIVersion("admissionregistration.k8s.io/v1")
		vwcs.SetKind("ValidatingWebhookConfigurationList")
		g.Expect(c.List(ctx, &vwcs, client.MatchingLabels{"app.kubernetes.io/instance": release})).To(Succeed())
		g.Expect(vwcs.Items).To(HaveLen(1))
		hooks, _, _ := unstructured.NestedSlice(vwcs.Items[0].Object, "webhooks")
		for _, h := range hooks {
			ca, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "caBundle")
			g.Expect(ca).NotTo(BeEmpty())
		}
	}).WithTimeout(eventually).WithPolling(polling).Should(Succeed())

	// The tenant, as its platform team lays it out; undone first, while
	// the manager still runs (the agents' finalizers are its).
	t.Cleanup(func() { e.tearDown(t) })
	dumpOnFailure(t, ctNS)
	g.Eventually(func() error {
		out, err := kubectl(admin, ctPlatformYAML(), "apply", "-f", "-")
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}).WithTimeout(eventually).WithPolling(time.Second).Should(Succeed())
	mustKubectl(g, admin, "", "wait", "--for=condition=Ready", "--timeout=2m", "databoundary/"+ctTenant)
	e.waitForPolicies(t, g)

	// The owner's agents.
	owner := e.dynAs(g, agentOwner, "custos-containment/setup")
	for _, a := range []struct{ name, spec string }{
		{victim, "  credentials:\n    - {name: ledger-api, kubernetesToken: {audience: ledger-api}, ttl: 12h}\n"},
		{neighbour, "  credentials:\n    - {name: reconciler-ledger-api, kubernetesToken: {audience: ledger-api}, ttl: 10m}\n" +
			"  identity:\n    aws: {roleARN: \"" + awsRole + "\"}\n    azure: {clientID: " + azureClient + ", tenantID: " + azureTenant + "}\n" +
			"    gcp: {serviceAccount: " + gcpAccount + "}\n"},
		{sleeper, "  credentials:\n    - {name: ledger-api, kubernetesToken: {audience: ledger-api}, ttl: 10m}\n"},
		{retired, "  credentials:\n    - {name: ledger-api, kubernetesToken: {audience: ledger-api}, ttl: 10m}\n"},
	} {
		// Right after the install the API server may not serve the Agent
		// kind to every client yet (ServiceUnavailable): retried.
		g.Eventually(func() error {
			_, err := owner.Resource(agentsGVR).Namespace(ctNS).Create(ctx, object(g, ctAgentYAML(a.name, a.spec)), metav1.CreateOptions{})
			if apierrors.IsServiceUnavailable(err) {
				return err
			}
			g.Expect(err).NotTo(HaveOccurred(), "the owner creates Agent %s", a.name)
			return nil
		}).WithTimeout(eventually).WithPolling(time.Second).Should(Succeed())
	}
	for _, name := range []string{victim, neighbour, sleeper, retired} {
		e.waitRunning(g, name)
	}
	t.Logf("the tenant's four agents run, %s after the start", time.Since(start).Round(time.Second))

	// Read what they are made of.
	for _, name := range []string{victim, neighbour, sleeper, retired} {
		d := &appsv1.Deployment{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ctNS, Name: "agent-" + name}, d)).To(Succeed())
		e.deploy[name] = d
		e.uid[name] = e.agent(g, name).GetUID()
	}
	e.pod = &agentPods(g, c, ctNS, victim)[0]
	e.rs[victim] = e.controller(g, e.pod)
	e.np = &networkingv1.NetworkPolicy{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ctNS, Name: "agent-" + victim}, e.np)).To(Succeed())
	_, err = e.cs.CoreV1().Secrets(ctNS).Get(ctx, victimLease, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred(), "the victim's lease")
	sleeperPod := agentPods(g, c, ctNS, sleeper)[0]
	e.rs[sleeper] = e.controller(g, &sleeperPod)

	// Suspend one, decommission another.
	_, err = owner.Resource(agentsGVR).Namespace(ctNS).Patch(ctx, sleeper, types.MergePatchType,
		[]byte(`{"spec":{"lifecycle":{"state":"Suspended"}}}`), metav1.PatchOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(owner.Resource(agentsGVR).Namespace(ctNS).Delete(ctx, retired, metav1.DeleteOptions{})).To(Succeed())
	g.Eventually(func(g Gomega) {
		phase, _, _ := unstructured.NestedString(e.agent(g, sleeper).Object, "status", "lifecycle", "phase")
		g.Expect(phase).To(Equal(string(custosv1alpha1.AgentPhaseSuspended)))
		g.Expect(agentPods(g, c, ctNS, sleeper)).To(BeEmpty())
		_, err := e.dyn.Resource(agentsGVR).Namespace(ctNS).Get(ctx, retired, metav1.GetOptions{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Agent %s is gone: %v", retired, err)
	}).WithTimeout(eventually).WithPolling(polling).Should(Succeed())
	// The Deployment of a suspended agent stays, scaled to zero.
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ctNS, Name: "agent-" + sleeper}, e.deploy[sleeper])).To(Succeed())
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(e.np), e.np)).To(Succeed())
	t.Logf("set up in %s", time.Since(start).Round(time.Second))
	return e
}

// helmEnv is the environment helm runs in, as helm() gives it.
func helmEnv() []string {
	return []string{
		"HELM_CACHE_HOME=" + artifactsPath("helm/cache"),
		"HELM_CONFIG_HOME=" + artifactsPath("helm/config"),
		"HELM_DATA_HOME=" + artifactsPath("helm/data"),
	}
}

// tearDown deletes the tenant's agents (waiting for their decommission),
// namespace, DataBoundary and signer.
func (e *containment) tearDown(t *testing.T) {
	ctx := e.ctx
	for _, name := range []string{victim, neighbour, sleeper} {
		if err := e.dyn.Resource(agentsGVR).Namespace(ctNS).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting Agent %s: %v", name, err)
		}
	}
	deadline := time.Now().Add(eventually)
	for time.Now().Before(deadline) {
		list, err := e.dyn.Resource(agentsGVR).Namespace(ctNS).List(ctx, metav1.ListOptions{})
		if err == nil && len(list.Items) == 0 {
			break
		}
		time.Sleep(polling)
	}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ctNS}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: custosNS, Name: ctSigner}},
		&custosv1alpha1.DataBoundary{ObjectMeta: metav1.ObjectMeta{Name: ctTenant}},
	} {
		if err := e.c.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting %T %s: %v", obj, obj.GetName(), err)
		}
	}
	deadline = time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if apierrors.IsNotFound(e.c.Get(ctx, client.ObjectKey{Name: ctTenant}, &custosv1alpha1.DataBoundary{})) {
			return
		}
		time.Sleep(polling)
	}
	t.Logf("DataBoundary %s was not gone within 30s", ctTenant)
}

// ctPlatformYAML is what the platform team applies for the tenant: the
// image signer's key, the DataBoundary (EU regions, the suite's registry,
// a role in each cloud), the namespace, and the people's permissions.
func ctPlatformYAML() string {
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: %[1]s
  namespace: %[2]s
data:
  cosign.pub: %[3]s
---
apiVersion: custos.dev/v1alpha1
kind: DataBoundary
metadata:
  name: %[4]s
spec:
  tenant: %[4]s
  namespaceSelector:
    matchLabels:
      custos.dev/tenant: %[4]s
  regions: [eu-west-1, eu-central-1]
  images:
    registries: ["%[5]s/agents/"]
    publicKeys:
      - secretRef: {namespace: %[2]s, name: %[1]s, key: cosign.pub}
  cloudRoles:
    awsRoleARNs: ["arn:aws:iam::111122223333:role/containment-*"]
    azureClientIDs: ["%[6]s"]
    gcpServiceAccounts: ["*@containment-e2e.iam.gserviceaccount.com"]
---
apiVersion: v1
kind: Namespace
metadata:
  name: %[7]s
  labels:
    custos.dev/tenant: %[4]s
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: agent-owner
  namespace: %[7]s
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
  namespace: %[7]s
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: agent-owner}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: Group, name: %[8]s}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: tenant-editors
  namespace: %[7]s
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: Group, name: %[9]s}
---
# What kubectl debug and status tooling ask for beyond edit.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: pod-debug
  namespace: %[7]s
rules:
  - apiGroups: [""]
    resources: [pods/status, pods/ephemeralcontainers]
    verbs: [get, patch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: pod-debug
  namespace: %[7]s
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-debug}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: Group, name: %[9]s}
`, ctSigner, custosNS, base64PublicKey(), ctTenant, images.Registry.Host(), azureClient, ctNS, ctOwners, ctEditors)
}

// ctAgentYAML is an Agent of the tenant's; spec adds to its spec (indented
// by two spaces).
func ctAgentYAML(name, spec string) string {
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
    contact: finance-platform@containment.example
  purpose: Reconcile supplier invoices against the ledger and flag mismatches for review.
  image: %s
  runtime:
    replicas: 1
%s`, name, ctNS, ctTenant, images.Image, spec)
}

// object parses a manifest.
func object(g Gomega, manifest string) *unstructured.Unstructured {
	obj, err := parseObject(manifest)
	g.ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return obj
}

func parseObject(manifest string) (*unstructured.Unstructured, error) {
	obj := map[string]any{}
	if err := yaml.Unmarshal([]byte(manifest), &obj); err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: obj}, nil
}

// dynAs is a dynamic client of a.
func (e *containment) dynAs(g Gomega, a actor, userAgent string) dynamic.Interface {
	d, err := dynamic.NewForConfig(impersonating(a.user, a.groups, userAgent))
	g.ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return d
}

// agent is the Agent name, as the platform team reads it.
func (e *containment) agent(g Gomega, name string) *unstructured.Unstructured {
	u, err := e.dyn.Resource(agentsGVR).Namespace(ctNS).Get(e.ctx, name, metav1.GetOptions{})
	g.ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return u
}

// waitRunning waits until agent name is Ready and Active with its one pod
// running.
func (e *containment) waitRunning(g Gomega, name string) {
	g.Eventually(func(g Gomega) {
		u := e.agent(g, name)
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		ready := ""
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == custosv1alpha1.ReadyCondition {
				ready = fmt.Sprintf("%v: %v", m["status"], m["message"])
			}
		}
		g.Expect(ready).To(HavePrefix("True"), "Agent %s Ready", name)
		phase, _, _ := unstructured.NestedString(u.Object, "status", "lifecycle", "phase")
		g.Expect(phase).To(Equal(string(custosv1alpha1.AgentPhaseActive)))
		pods := agentPods(g, e.c, ctNS, name)
		g.Expect(pods).To(HaveLen(1), "agent %s runs one pod", name)
		g.Expect(pods[0].Status.Phase).To(Equal(corev1.PodRunning))
	}).WithTimeout(3 * time.Minute).WithPolling(polling).Should(Succeed())
}

// controller is the ReplicaSet that controls pod.
func (e *containment) controller(g Gomega, pod *corev1.Pod) *appsv1.ReplicaSet {
	ref := metav1.GetControllerOf(pod)
	g.ExpectWithOffset(1, ref).NotTo(BeNil(), "pod %s has a controller", pod.Name)
	rs := &appsv1.ReplicaSet{}
	g.ExpectWithOffset(1, e.c.Get(e.ctx, client.ObjectKey{Namespace: pod.Namespace, Name: ref.Name}, rs)).To(Succeed())
	return rs
}

// waitForPolicies waits until the API server enforces every containment
// policy installed (a dry run each policy refuses, or narrows); a policy
// not installed at all is reported, and its cases fail.
func (e *containment) waitForPolicies(t *testing.T, g Gomega) {
	installed := map[string]bool{}
	for _, kind := range []string{"ValidatingAdmissionPolicyList", "MutatingAdmissionPolicyList"} {
		var list unstructured.UnstructuredList
		list.SetAPIVersion("admissionregistration.k8s.io/v1")
		list.SetKind(kind)
		g.Expect(e.c.List(e.ctx, &list)).To(Succeed())
		for _, p := range list.Items {
			installed[p.GetName()] = true
		}
	}
	cs := e.csAs(g, tenantEditor, "custos-containment/probe")
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	probes := map[string]func() error{
		serviceAccountsPolicy: func() error {
			_, err := cs.CoreV1().ServiceAccounts(ctNS).Create(e.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "agent-probe"}}, dry)
			return err
		},
		secretsPolicy: func() error {
			_, err := cs.CoreV1().Secrets(ctNS).Create(e.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "agent-probe.probe"}}, dry)
			return err
		},
		networkPoliciesPolicy: func() error {
			_, err := cs.NetworkingV1().NetworkPolicies(ctNS).Create(e.ctx, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "agent-probe"}}, dry)
			return err
		},
		workloadPolicy: func() error {
			_, err := cs.AppsV1().Deployments(ctNS).Create(e.ctx, plainDeployment("agent-probe"), dry)
			return err
		},
		identityPolicy: func() error {
			p := plainPod("probe")
			p.Labels[custosv1alpha1.AgentLabel] = "probe"
			_, err := cs.CoreV1().Pods(ctNS).Create(e.ctx, p, dry)
			return err
		},
		ownershipPolicy: func() error {
			// A Secret of the editor's own, handed to an Agent in a dry
			// run of an update.
			s, err := cs.CoreV1().Secrets(ctNS).Get(e.ctx, "ownership-probe", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				s, err = cs.CoreV1().Secrets(ctNS).Create(e.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ownership-probe"}}, metav1.CreateOptions{})
			}
			if err != nil {
				return err
			}
			s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "custos.dev/v1alpha1", Kind: "Agent", Name: "probe", UID: "probe", Controller: ptr.To(true)}}
			_, err = cs.CoreV1().Secrets(ctNS).Update(e.ctx, s, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		},
		narrowPolicy: func() error {
			np, err := cs.NetworkingV1().NetworkPolicies(ctNS).Create(e.ctx, openNetworkPolicy("probe"), dry)
			if err != nil {
				return nil
			}
			if _, ok := np.Annotations[narrowedAnnotation]; !ok {
				return nil
			}
			return fmt.Errorf("narrowed")
		},
	}
	for policy, probe := range probes {
		if !installed[policy] {
			t.Errorf("admission policy %s is not installed (config/crd/policies, make manifests): its cases fail", policy)
			continue
		}
		g.Eventually(func() string {
			err := probe()
			if err == nil {
				return ""
			}
			return err.Error()
		}).WithTimeout(eventually).WithPolling(polling).Should(Or(ContainSubstring(policy), Equal("narrowed")), "the API server enforces %s", policy)
	}
}

// csAs is a clientset of a's.
func (e *containment) csAs(g Gomega, a actor, userAgent string) kubernetes.Interface {
	cs, err := kubernetes.NewForConfig(impersonating(a.user, a.groups, userAgent))
	g.ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return cs
}

// attempt makes one actor's try at case c (the i-th) and checks what it
// met, aspect by aspect, so that a failing case says what is missing.
func (e *containment) attempt(t *testing.T, i int, c ccase, a actor, w want) {
	userAgent := fmt.Sprintf("custos-containment/%03d/%s", i, a.key)
	g := NewWithT(t)
	cfg := impersonating(a.user, a.groups, userAgent)
	cs, err := kubernetes.NewForConfig(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	dyn, err := dynamic.NewForConfig(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	at := &attempt{actor: a, ctx: e.ctx, cs: cs, dyn: dyn}
	if a.key == rsController.key {
		at.create.DryRun = []string{metav1.DryRunAll}
	}
	start := time.Now()
	err = c.try(at)
	if c.undo != nil {
		defer c.undo(a)
	}
	if err != nil {
		t.Logf("%s was answered: %v", a.key, err)
	}

	if len(w.codes) == 0 {
		t.Run("admitted", func(t *testing.T) {
			NewWithT(t).Expect(err).NotTo(HaveOccurred())
		})
		t.Run(w.aspect, func(t *testing.T) { w.admitted(NewWithT(t), a) })
		t.Run("audited", func(t *testing.T) {
			g := NewWithT(t)
			ev := e.apiEvent(g, userAgent)
			g.Expect(ev.ResponseStatus).NotTo(BeNil())
			g.Expect(ev.ResponseStatus.Code).To(BeNumerically("<", 300), "the audit event of an admitted request")
		})
		return
	}

	status := &metav1.Status{}
	if s, ok := err.(apierrors.APIStatus); ok {
		status = ptr.To(s.Status())
	}
	t.Run("refused", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(err).To(HaveOccurred(), "ADMITTED: %s expected a refusal by %s", a.key, w.by)
		g.Expect(w.codes).To(ContainElement(int(status.Code)), "the refusal's HTTP status: %v", err)
	})
	t.Run("message", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(err).To(HaveOccurred())
		msg := err.Error()
		switch {
		case w.by == byRBAC:
			g.Expect(msg).To(ContainSubstring(fmt.Sprintf("User %q cannot", a.user)), "RBAC refused it")
		case w.by == byAPI:
		case w.by == byAgentAdmission:
		case strings.HasPrefix(w.by, webhookPrefix):
			g.Expect(msg).To(ContainSubstring(fmt.Sprintf("admission webhook %q denied the request", strings.TrimPrefix(w.by, webhookPrefix))))
		default:
			g.Expect(msg).To(ContainSubstring(fmt.Sprintf("ValidatingAdmissionPolicy '%s'", w.by)))
		}
		for _, m := range w.msg {
			g.Expect(msg).To(ContainSubstring(m))
		}
	})
	t.Run("audited", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(err).To(HaveOccurred())
		ev := e.apiEvent(g, userAgent)
		g.Expect(ev.ImpersonatedUser).NotTo(BeNil())
		g.Expect(ev.ImpersonatedUser.Username).To(Equal(a.user))
		g.Expect(ev.ResponseStatus).NotTo(BeNil(), "the event records the response")
		g.Expect(ev.ResponseStatus.Code).To(Equal(status.Code))
		switch {
		case w.by == byRBAC:
			g.Expect(ev.Annotations).To(HaveKeyWithValue(authorizationDecisionAnnotation, "forbid"))
		case w.by == byAPI:
		case w.by == byAgentAdmission && !strings.Contains(err.Error(), "admission webhook"):
		case w.by == byAgentAdmission || strings.HasPrefix(w.by, webhookPrefix):
			g.Expect(ev.ResponseStatus.Message).To(ContainSubstring("admission webhook"))
			// Custos's own record of its refusal.
			e.expectDenialRecord(g, a, start, w.msg)
		default:
			g.Expect(ev.ResponseStatus.Message).To(ContainSubstring(w.by))
		}
	})
	if strings.HasPrefix(w.by, "custos-") {
		// A policy's refusal is recorded by name, as the policy's.
		t.Run("audited as the policy's", func(t *testing.T) {
			g := NewWithT(t)
			ev := e.apiEvent(g, userAgent)
			g.Expect(ev.Annotations).To(HaveKey(policyFailureAnnotation),
				"the event names the policy that refused (its binding needs validationActions [Deny, Audit])")
			var failures []struct {
				Policy  string `json:"policy"`
				Message string `json:"message"`
			}
			g.Expect(json.Unmarshal([]byte(ev.Annotations[policyFailureAnnotation]), &failures)).To(Succeed())
			g.Expect(failures).To(ContainElement(HaveField("Policy", w.by)))
		})
	}
	if c.unchanged != nil {
		t.Run("nothing stored", func(t *testing.T) { c.unchanged(NewWithT(t), a) })
	}
}

// apiEvent is the API server's audit event of the request sent with
// userAgent (the last, if the client retried).
func (e *containment) apiEvent(g Gomega, userAgent string) apiAuditEvent {
	g.ExpectWithOffset(1, e.apiAudit.path).NotTo(BeEmpty(), "the API server keeps no audit log (controlplane.Options.AuditLog)")
	var events []apiAuditEvent
	g.Eventually(func(g Gomega) {
		g.Expect(e.apiAudit.refresh()).To(Succeed())
		events = e.apiAudit.find(func(ev apiAuditEvent) bool { return ev.UserAgent == userAgent })
		g.Expect(events).NotTo(BeEmpty(), "the API server's audit log has an event of the attempt (user agent %s)", userAgent)
	}).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	return events[len(events)-1]
}

// expectDenialRecord: Custos's audit trail has an admission.denied record
// of a's request since start, whose reason says msg.
func (e *containment) expectDenialRecord(g Gomega, a actor, start time.Time, msg []string) {
	g.Eventually(func(g Gomega) {
		records, err := custosAuditRecords(e.managerLog)
		g.Expect(err).NotTo(HaveOccurred())
		var mine []audit.Record
		for _, r := range records {
			if r.Action == audit.ActionAdmissionDenied && r.Actor != nil && r.Actor.Name == a.user && !r.Time.Before(start.Add(-time.Second)) {
				mine = append(mine, r)
			}
		}
		g.Expect(mine).NotTo(BeEmpty(), "an %s record of %s's request", audit.ActionAdmissionDenied, a.user)
		r := mine[len(mine)-1]
		g.Expect(r.Decision).To(Equal(audit.DecisionDeny))
		for _, m := range msg {
			g.Expect(r.Reason).To(ContainSubstring(m))
		}
	}).WithTimeout(10 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

// absent: nothing named name of obj's kind is stored.
func (e *containment) absent(g Gomega, obj client.Object, name string) {
	err := e.c.Get(e.ctx, client.ObjectKey{Namespace: ctNS, Name: name}, obj)
	g.ExpectWithOffset(1, apierrors.IsNotFound(err)).To(BeTrue(), "STORED: %T %s (%v)", obj, name, err)
}

// remove deletes, as the platform team, what an admitted attempt stored.
func (e *containment) remove(obj client.Object, name string) {
	obj.SetNamespace(ctNS)
	obj.SetName(name)
	_ = e.c.Delete(e.ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground), client.GracePeriodSeconds(0))
}

// absentAs and removeAs are absent and remove of a's own name of base.
func (e *containment) absentAs(newObj func() client.Object, base string) func(Gomega, actor) {
	return func(g Gomega, a actor) { e.absent(g, newObj(), a.name(base)) }
}

func (e *containment) removeAs(newObj func() client.Object, base string) func(actor) {
	return func(a actor) { e.remove(newObj(), a.name(base)) }
}

func newPod() client.Object            { return &corev1.Pod{} }
func newSecret() client.Object         { return &corev1.Secret{} }
func newServiceAccount() client.Object { return &corev1.ServiceAccount{} }
func newNetworkPolicy() client.Object  { return &networkingv1.NetworkPolicy{} }
func newDeployment() client.Object     { return &appsv1.Deployment{} }
func newReplicaSet() client.Object     { return &appsv1.ReplicaSet{} }

// template is a copy of the pod template of agent name's Deployment.
func (e *containment) template(name string) corev1.PodTemplateSpec {
	return *e.deploy[name].Spec.Template.DeepCopy()
}

// podOf is a bare pod made of tmpl.
func podOf(name string, tmpl corev1.PodTemplateSpec) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ctNS, Labels: tmpl.Labels, Annotations: tmpl.Annotations},
		Spec:       tmpl.Spec,
	}
}

// rsPod is a pod of rs, as the ReplicaSet controller creates it.
func rsPod(rs *appsv1.ReplicaSet, name string) *corev1.Pod {
	tmpl := rs.Spec.Template.DeepCopy()
	p := podOf(name, *tmpl)
	p.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}}
	return p
}

// plainPod is a pod of the tenant's own, nothing to do with an agent.
func plainPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ctNS, Labels: map[string]string{"app.kubernetes.io/name": "curious"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: images.Pinned()}}},
	}
}

// plainDeployment is a Deployment of plain pods.
func plainDeployment(name string) *appsv1.Deployment {
	sel := map[string]string{"app.kubernetes.io/name": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ctNS},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       plainPod(name).Spec,
			},
		},
	}
}

// openNetworkPolicy selects every pod of the namespace and allows all
// traffic in and out.
func openNetworkPolicy(name string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ctNS},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{}},
		},
	}
}

// selector is the labels of t's pods, without the hash the deployment
// controller adds: what a copy selects its pods by.
func selector(t corev1.PodTemplateSpec) map[string]string {
	sel := map[string]string{}
	for k, v := range t.Labels {
		if k != appsv1.DefaultDeploymentUniqueLabelKey {
			sel[k] = v
		}
	}
	return sel
}

func withVolume(p *corev1.Pod, v corev1.Volume) *corev1.Pod {
	p.Spec.Volumes = append(p.Spec.Volumes, v)
	return p
}

func leaseVolume(name string) corev1.Volume {
	return corev1.Volume{Name: "stolen", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name}}}
}

func projectedTokenVolume(audience string, seconds int64) corev1.Volume {
	return corev1.Volume{Name: "cloud-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
			Audience: audience, ExpirationSeconds: ptr.To(seconds), Path: "token",
		}}},
	}}}
}

// narrowed: the stored NetworkPolicy name (of a) selects no agent pod and
// says why.
func (e *containment) narrowed(name string) func(Gomega, actor) {
	return func(g Gomega, a actor) {
		np := &networkingv1.NetworkPolicy{}
		g.Expect(e.c.Get(e.ctx, client.ObjectKey{Namespace: ctNS, Name: a.name(name)}, np)).To(Succeed())
		g.Expect(np.Annotations).To(HaveKey(narrowedAnnotation))
		g.Expect(np.Spec.PodSelector.MatchExpressions).To(ContainElement(metav1.LabelSelectorRequirement{
			Key: custosv1alpha1.AgentLabel, Operator: metav1.LabelSelectorOpDoesNotExist,
		}))
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(sel.Matches(labels.Set(e.pod.Labels))).To(BeFalse(), "the policy selects the agent's pod %s", e.pod.Name)
	}
}

// deploymentUnchanged: agent name's Deployment is as it was.
func (e *containment) deploymentUnchanged(name string) func(Gomega, actor) {
	return func(g Gomega, _ actor) {
		d := &appsv1.Deployment{}
		g.Expect(e.c.Get(e.ctx, client.ObjectKeyFromObject(e.deploy[name]), d)).To(Succeed())
		g.Expect(d.Generation).To(Equal(e.deploy[name].Generation), "CHANGED: the spec of Deployment %s", d.Name)
		g.Expect(d.Spec.Replicas).To(Equal(e.deploy[name].Spec.Replicas))
	}
}

// podUnchanged: the victim's pod keeps its labels, owner and containers.
func (e *containment) podUnchanged(g Gomega, _ actor) {
	p := &corev1.Pod{}
	g.Expect(e.c.Get(e.ctx, client.ObjectKeyFromObject(e.pod), p)).To(Succeed())
	for _, k := range []string{custosv1alpha1.AgentLabel, custosv1alpha1.AgentUIDLabel, custosv1alpha1.ManagedByLabel, custosv1alpha1.TenantLabel} {
		g.Expect(p.Labels).To(HaveKeyWithValue(k, e.pod.Labels[k]), "CHANGED: label %s of pod %s", k, p.Name)
	}
	g.Expect(p.OwnerReferences).To(Equal(e.pod.OwnerReferences), "CHANGED: the owner of pod %s", p.Name)
	g.Expect(p.Spec.EphemeralContainers).To(BeEmpty(), "CHANGED: a container joined pod %s", p.Name)
}

// serviceAccountUnchanged: the victim's ServiceAccount carries no cloud
// annotation.
func (e *containment) serviceAccountUnchanged(g Gomega, _ actor) {
	sa := &corev1.ServiceAccount{}
	g.Expect(e.c.Get(e.ctx, client.ObjectKey{Namespace: ctNS, Name: "agent-" + victim}, sa)).To(Succeed())
	for k := range sa.Annotations {
		g.Expect(cloudAnnotation(k)).To(BeFalse(), "CHANGED: ServiceAccount %s carries %s", sa.Name, k)
	}
}

func cloudAnnotation(k string) bool {
	for _, p := range []string{"eks.amazonaws.com/", "azure.workload.identity/", "iam.gke.io/"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// networkPolicyUnchanged: the victim's NetworkPolicy is as Custos made it.
func (e *containment) networkPolicyUnchanged(g Gomega, _ actor) {
	np := &networkingv1.NetworkPolicy{}
	g.Expect(e.c.Get(e.ctx, client.ObjectKeyFromObject(e.np), np)).To(Succeed(), "DELETED: NetworkPolicy %s", e.np.Name)
	g.Expect(np.DeletionTimestamp).To(BeNil(), "DELETED: NetworkPolicy %s is going", np.Name)
	g.Expect(np.Generation).To(Equal(e.np.Generation), "CHANGED: NetworkPolicy %s", np.Name)
}

// cases are the containment cases, in the order of issue #15's table, then
// the suite's own: each subresource, each copy, each name, each moment.
func (e *containment) cases() []ccase {
	ctx := e.ctx
	victimSA := "agent-" + victim
	victimDeploy := "agent-" + victim
	edit, owner := tenantEditor.key, agentOwner.key

	createPod := func(p func(a *attempt) *corev1.Pod) func(a *attempt) error {
		return func(a *attempt) error {
			_, err := a.cs.CoreV1().Pods(ctNS).Create(ctx, p(a), a.create)
			return err
		}
	}
	createAgent := func(name, spec string) func(a *attempt) error {
		return func(a *attempt) error {
			obj, err := parseObject(ctAgentYAML(a.name(name), spec))
			if err != nil {
				return err
			}
			_, err = a.dyn.Resource(agentsGVR).Namespace(ctNS).Create(ctx, obj, metav1.CreateOptions{})
			return err
		}
	}
	newAgent := func() client.Object { return &custosv1alpha1.Agent{} }
	// victimPod is a bare pod made of the victim's template, changed by f.
	victimPod := func(base string, f func(p *corev1.Pod)) func(a *attempt) *corev1.Pod {
		return func(a *attempt) *corev1.Pod {
			p := podOf(a.name(base), e.template(victim))
			if f != nil {
				f(p)
			}
			return p
		}
	}
	notCreator := func(agent string) want {
		return policyRefuses(identityPolicy, "metadata.ownerReferences: Forbidden",
			"a pod of Custos agent "+agent+" is created only by the ReplicaSet controller")
	}
	patchPod := func(pt types.PatchType, patch string, sub ...string) func(a *attempt) error {
		return func(a *attempt) error {
			_, err := a.cs.CoreV1().Pods(ctNS).Patch(ctx, e.pod.Name, pt, []byte(patch), metav1.PatchOptions{}, sub...)
			return err
		}
	}
	patchDeployment := func(name, patch string) func(a *attempt) error {
		return func(a *attempt) error {
			_, err := a.cs.AppsV1().Deployments(ctNS).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
			return err
		}
	}
	container := e.template(victim).Spec.Containers[0].Name
	deploymentRefused := func(name string) want {
		return policyRefuses(workloadPolicy, "spec: Forbidden: Deployment "+name+" runs a Custos agent")
	}
	copyRefused := func(kind string) want {
		return policyRefuses(workloadPolicy, "spec.template.spec.serviceAccountName: Forbidden: a "+kind+" cannot run pods as "+victimSA)
	}
	patchServiceAccount := func(patch string) func(a *attempt) error {
		return func(a *attempt) error {
			_, err := a.cs.CoreV1().ServiceAccounts(ctNS).Patch(ctx, victimSA, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			return err
		}
	}
	saReserved := func(name string) want {
		return policyRefuses(serviceAccountsPolicy, "metadata.name: Forbidden: ServiceAccount names starting with agent- are reserved", name)
	}
	createSecret := func(s func(a *attempt) *corev1.Secret) func(a *attempt) error {
		return func(a *attempt) error {
			_, err := a.cs.CoreV1().Secrets(ctNS).Create(ctx, s(a), a.create)
			return err
		}
	}
	// The field is metadata.name, or type for a Secret of type
	// custos.dev/lease (as Custos's leases are).
	leaseName := func(name string) want {
		return policyRefuses(secretsPolicy, ": Forbidden: Secret "+name+" would be a credential lease")
	}
	tokenSecret := func(sa string) func(a *attempt) *corev1.Secret {
		return func(a *attempt) *corev1.Secret {
			return &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: a.name("forever-token"), Annotations: map[string]string{corev1.ServiceAccountNameKey: sa}},
				Type:       corev1.SecretTypeServiceAccountToken,
			}
		}
	}
	mintToken := func(sa string) func(a *attempt) error {
		return func(a *attempt) error {
			tr, err := a.cs.CoreV1().ServiceAccounts(ctNS).CreateToken(ctx, sa, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
				Audiences: []string{"sts.amazonaws.com"}, ExpirationSeconds: ptr.To(int64(48 * 3600)),
			}}, metav1.CreateOptions{})
			if err == nil && tr.Status.Token != "" {
				return nil
			}
			return err
		}
	}
	createNetworkPolicy := func(np func(a *attempt) *networkingv1.NetworkPolicy) func(a *attempt) error {
		return func(a *attempt) error {
			_, err := a.cs.NetworkingV1().NetworkPolicies(ctNS).Create(ctx, np(a), a.create)
			return err
		}
	}
	npReserved := func(name string) want {
		return policyRefuses(networkPoliciesPolicy, "metadata.name: Forbidden: NetworkPolicy "+name+" isolates the pods of Custos agent")
	}
	connect := func(verb, sub string, params ...string) func(a *attempt) error {
		return func(a *attempt) error {
			r := a.cs.CoreV1().RESTClient().Post()
			if verb == "get" {
				r = a.cs.CoreV1().RESTClient().Get()
			}
			r = r.Namespace(ctNS).Resource("pods").Name(e.pod.Name).SubResource(sub)
			for i := 0; i+1 < len(params); i += 2 {
				r = r.Param(params[i], params[i+1])
			}
			return r.Do(ctx).Error()
		}
	}
	connectRefused := func(sub string) want {
		return policyRefuses(identityPolicy, "pods/"+sub+": Forbidden: "+e.pod.Name+" is the pod of a Custos agent")
	}
	createWorkload := func(obj func(a *attempt) client.Object) func(a *attempt) error {
		return func(a *attempt) error {
			o := obj(a)
			var err error
			switch o := o.(type) {
			case *appsv1.Deployment:
				_, err = a.cs.AppsV1().Deployments(ctNS).Create(ctx, o, a.create)
			case *appsv1.ReplicaSet:
				_, err = a.cs.AppsV1().ReplicaSets(ctNS).Create(ctx, o, a.create)
			case *appsv1.StatefulSet:
				_, err = a.cs.AppsV1().StatefulSets(ctNS).Create(ctx, o, a.create)
			case *appsv1.DaemonSet:
				_, err = a.cs.AppsV1().DaemonSets(ctNS).Create(ctx, o, a.create)
			case *batchv1.Job:
				_, err = a.cs.BatchV1().Jobs(ctNS).Create(ctx, o, a.create)
			case *batchv1.CronJob:
				_, err = a.cs.BatchV1().CronJobs(ctNS).Create(ctx, o, a.create)
			case *corev1.ReplicationController:
				_, err = a.cs.CoreV1().ReplicationControllers(ctNS).Create(ctx, o, a.create)
			default:
				err = fmt.Errorf("no create for %T", o)
			}
			return err
		}
	}
	meta := func(a *attempt, base string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: a.name(base), Namespace: ctNS}
	}
	replicaSetOf := func(name string, tmpl corev1.PodTemplateSpec) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ctNS}, Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: selector(tmpl)}, Template: tmpl,
		}}
	}
	deploymentOf := func(name string, tmpl corev1.PodTemplateSpec) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ctNS}, Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: selector(tmpl)}, Template: tmpl,
		}}
	}
	jobTemplate := func() corev1.PodTemplateSpec {
		t := e.template(victim)
		t.Spec.RestartPolicy = corev1.RestartPolicyNever
		return t
	}
	// The pod guard, behind the policies: a pod of the victim as its
	// ReplicaSet controller would create it (a dry run), changed by f.
	guarded := func(f func(p *corev1.Pod)) func(a *attempt) error {
		return func(a *attempt) error {
			p := rsPod(e.rs[victim], a.name("guarded"))
			if f != nil {
				f(p)
			}
			_, err := a.cs.CoreV1().Pods(ctNS).Create(ctx, p, a.create)
			return err
		}
	}
	byGuard := func(msg ...string) map[string]want {
		return map[string]want{rsController.key: webhookRefuses(podWebhook, msg...)}
	}
	firstContainer := func(p *corev1.Pod) *corev1.Container { return &p.Spec.Containers[0] }
	securityContext := func(c *corev1.Container) *corev1.SecurityContext {
		if c.SecurityContext == nil {
			c.SecurityContext = &corev1.SecurityContext{}
		}
		return c.SecurityContext
	}

	return []ccase{
		// Row 1: names that could collide.
		{
			name: "row 1: an Agent named invoice.reconciler (a dot in the name)",
			try:  createAgent("invoice.reconciler", "  credentials:\n    - {name: ledger-api, kubernetesToken: {audience: ledger-api}}\n"),
			want: both(rbacRefuses("create", "agents"), apiRefuses(422, "metadata.name: must be a DNS label")),
			unchanged: func(g Gomega, a actor) {
				e.absent(g, newAgent(), a.name("invoice.reconciler"))
			},
			undo: func(a actor) { e.remove(newAgent(), a.name("invoice.reconciler")) },
		},
		{
			name: "row 1: a credential named reconciler.ledger-api (a dot in the name)",
			try:  createAgent("dotted", "  credentials:\n    - {name: reconciler.ledger-api, kubernetesToken: {audience: ledger-api}}\n"),
			want: both(rbacRefuses("create", "agents"), apiRefuses(422, "spec.credentials[0].name")),
			unchanged: func(g Gomega, a actor) {
				e.absent(g, newAgent(), a.name("dotted"))
			},
			undo: func(a actor) { e.remove(newAgent(), a.name("dotted")) },
		},

		// Row 2: cloud credentials outside the leases.
		{
			name:      "row 2: a kubernetesToken lease for audience sts.amazonaws.com",
			try:       createAgent("sts-token", "  credentials:\n    - {name: aws, kubernetesToken: {audience: sts.amazonaws.com}, ttl: 12h}\n"),
			want:      both(rbacRefuses("create", "agents"), agentAdmissionRefuses("spec.credentials[0].kubernetesToken.audience", "sts.amazonaws.com")),
			unchanged: e.absentAs(newAgent, "sts-token"),
			undo:      e.removeAs(newAgent, "sts-token"),
		},
		{
			name:      "row 2: a kubernetesToken lease for audience api:__AzureADTokenExchange",
			try:       createAgent("entra-token", "  credentials:\n    - {name: azure, kubernetesToken: {audience: \"api://AzureADTokenExchange\"}}\n"),
			want:      both(rbacRefuses("create", "agents"), agentAdmissionRefuses("spec.credentials[0].kubernetesToken.audience", "api://AzureADTokenExchange")),
			unchanged: e.absentAs(newAgent, "entra-token"),
			undo:      e.removeAs(newAgent, "entra-token"),
		},
		{
			name: "row 2: a kubernetesToken lease for a GCP workload identity pool's audience",
			try: createAgent("gcp-token", "  credentials:\n    - {name: gcp, kubernetesToken: {audience: "+
				"\"//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/acme/providers/custos\"}}\n"),
			want: both(rbacRefuses("create", "agents"), agentAdmissionRefuses("spec.credentials[0].kubernetesToken.audience",
				"//iam.googleapis.com/")),
			unchanged: e.absentAs(newAgent, "gcp-token"),
			undo:      e.removeAs(newAgent, "gcp-token"),
		},

		// Row 3: the agent's identity while it is Suspended.
		{
			name: "row 3: a pod with the Suspended agent's labels, ServiceAccount and verified digest",
			try: createPod(func(a *attempt) *corev1.Pod {
				return podOf(a.name("payroll-while-suspended"), e.template(sleeper))
			}),
			want:      both(notCreator(sleeper), rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "payroll-while-suspended"),
			undo:      e.removeAs(newPod, "payroll-while-suspended"),
		},
		{
			name: "while suspended: a ReplicaSet of the Suspended agent's template",
			try: createWorkload(func(a *attempt) client.Object {
				return replicaSetOf(a.name("payroll-while-suspended"), e.template(sleeper))
			}),
			want: both(policyRefuses(workloadPolicy, "spec: Forbidden: ReplicaSet", "would run a Custos agent"),
				rbacRefuses("create", "replicasets")),
			unchanged: e.absentAs(newReplicaSet, "payroll-while-suspended"),
			undo:      e.removeAs(newReplicaSet, "payroll-while-suspended"),
		},
		{
			name: "while suspended: scale the Suspended agent's Deployment to 1 (deployments scale)",
			try: func(a *attempt) error {
				_, err := a.cs.AppsV1().Deployments(ctNS).UpdateScale(ctx, "agent-"+sleeper, &autoscalingv1.Scale{
					ObjectMeta: metav1.ObjectMeta{Name: "agent-" + sleeper, Namespace: ctNS}, Spec: autoscalingv1.ScaleSpec{Replicas: 1},
				}, metav1.UpdateOptions{})
				return err
			},
			want: both(policyRefuses(workloadPolicy, "spec.replicas: Forbidden: Deployment agent-"+sleeper+" runs a Custos agent"),
				rbacRefuses("update", "deployments/scale")),
			unchanged: e.deploymentUnchanged(sleeper),
		},
		{
			name: "while suspended: re-create the Suspended agent's revoked lease",
			try: createSecret(func(a *attempt) *corev1.Secret {
				return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "agent-" + sleeper + ".ledger-api"}, StringData: map[string]string{"token": "kept"}}
			}),
			want:      both(leaseName("agent-"+sleeper+".ledger-api"), rbacRefuses("create", "secrets")),
			unchanged: func(g Gomega, _ actor) { e.absent(g, newSecret(), "agent-"+sleeper+".ledger-api") },
			undo:      func(actor) { e.remove(newSecret(), "agent-"+sleeper+".ledger-api") },
		},
		{
			name:      "while suspended: patch the Suspended agent's Deployment to 1 replica",
			try:       patchDeployment("agent-"+sleeper, `{"spec":{"replicas":1}}`),
			want:      both(deploymentRefused("agent-"+sleeper), rbacRefuses("patch", "deployments")),
			unchanged: e.deploymentUnchanged(sleeper),
		},

		// Row 4: agent pods without the labels that tie them to the agent.
		{
			name: "row 4: an agent pod without app.kubernetes.io_managed-by or custos.dev_agent-uid",
			try: createPod(victimPod("unlabelled", func(p *corev1.Pod) {
				delete(p.Labels, custosv1alpha1.ManagedByLabel)
				delete(p.Labels, custosv1alpha1.AgentUIDLabel)
			})),
			want:      both(notCreator(victim), rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "unlabelled"),
			undo:      e.removeAs(newPod, "unlabelled"),
		},
		{
			name: "row 4: a pod running as the agent's ServiceAccount without the agent label",
			try: createPod(func(a *attempt) *corev1.Pod {
				p := plainPod(a.name("sa-only"))
				p.Spec.ServiceAccountName = victimSA
				return p
			}),
			want: both(policyRefuses(identityPolicy, "spec.serviceAccountName: Forbidden: "+victimSA+" is the identity of Custos agent "+victim),
				rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "sa-only"),
			undo:      e.removeAs(newPod, "sa-only"),
		},
		{
			name: "row 4: a pod running as the agent's ServiceAccount, labelled as another agent's",
			try: createPod(victimPod("other-label", func(p *corev1.Pod) {
				p.Labels[custosv1alpha1.AgentLabel] = neighbour
				p.Labels[custosv1alpha1.AgentUIDLabel] = string(e.uid[neighbour])
				p.Spec.Volumes = nil
				p.Spec.Containers[0].VolumeMounts = nil
			})),
			want: both(policyRefuses(identityPolicy, "spec.serviceAccountName: Forbidden: "+victimSA+" is the identity of Custos agent "+victim),
				rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "other-label"),
			undo:      e.removeAs(newPod, "other-label"),
		},
		{
			name:      "row 4: drop app.kubernetes.io_managed-by from a running agent pod",
			try:       patchPod(types.MergePatchType, `{"metadata":{"labels":{"app.kubernetes.io/managed-by":null}}}`),
			want:      both(policyRefuses(identityPolicy, "metadata.labels: Forbidden: the Custos labels of a pod of agent "+victim), rbacRefuses("patch", "pods")),
			unchanged: e.podUnchanged,
		},
		{
			name:      "row 4: give a running agent pod another agent's UID",
			try:       patchPod(types.MergePatchType, fmt.Sprintf(`{"metadata":{"labels":{"custos.dev/agent-uid":%q}}}`, e.uid[neighbour])),
			want:      both(policyRefuses(identityPolicy, "metadata.labels: Forbidden: the Custos labels of a pod of agent "+victim), rbacRefuses("patch", "pods")),
			unchanged: e.podUnchanged,
		},

		// Row 5: agent pods holding more than the agent's identity.
		{
			name: "row 5: an agent pod with a projected ServiceAccount token (sts.amazonaws.com, 24h)",
			try: createPod(victimPod("projected-token", func(p *corev1.Pod) {
				withVolume(p, projectedTokenVolume("sts.amazonaws.com", 86400))
			})),
			want:      both(notCreator(victim), rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "projected-token"),
			undo:      e.removeAs(newPod, "projected-token"),
		},
		{
			name: "row 5: an agent pod mounting another agent's lease",
			try: createPod(victimPod("neighbours-lease", func(p *corev1.Pod) {
				withVolume(p, leaseVolume(neighbourLease))
			})),
			want:      both(notCreator(victim), rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "neighbours-lease"),
			undo:      e.removeAs(newPod, "neighbours-lease"),
		},
		{
			name: "row 5: an agent pod with SELinux type spc_t",
			try: createPod(victimPod("spc-t", func(p *corev1.Pod) {
				securityContext(firstContainer(p)).SELinuxOptions = &corev1.SELinuxOptions{Type: "spc_t"}
			})),
			want:      both(notCreator(victim), rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "spc-t"),
			undo:      e.removeAs(newPod, "spc-t"),
		},
		{
			name: "row 5: an agent pod with AppArmor Unconfined",
			try: createPod(victimPod("unconfined", func(p *corev1.Pod) {
				securityContext(firstContainer(p)).AppArmorProfile = &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}
			})),
			want:      both(notCreator(victim), rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "unconfined"),
			undo:      e.removeAs(newPod, "unconfined"),
		},
		{
			name: "row 5: an agent pod with an nfs volume",
			try: createPod(victimPod("nfs", func(p *corev1.Pod) {
				withVolume(p, corev1.Volume{Name: "nfs", VolumeSource: corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{Server: "127.0.0.1", Path: "/export"}}})
			})),
			want:      both(notCreator(victim), rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "nfs"),
			undo:      e.removeAs(newPod, "nfs"),
		},
		{
			name: "row 5: an agent pod with spec.nodeName outside the boundary's regions",
			try: createPod(victimPod("us-node", func(p *corev1.Pod) {
				p.Spec.NodeName = "kwok-us-east-1"
				p.Spec.Affinity = nil
			})),
			want:      both(notCreator(victim), rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "us-node"),
			undo:      e.removeAs(newPod, "us-node"),
		},

		// Row 6: Custos's own Deployment of the agent.
		{
			name:      "row 6: add a command to the agent's Deployment",
			try:       patchDeployment(victimDeploy, fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":%q,"command":["sleep","infinity"]}]}}}}`, container)),
			want:      both(deploymentRefused(victimDeploy), rbacRefuses("patch", "deployments")),
			unchanged: e.deploymentUnchanged(victim),
		},
		{
			name: "row 6: add a projected STS token to the agent's Deployment",
			try: patchDeployment(victimDeploy, `{"spec":{"template":{"spec":{"volumes":[{"name":"aws-token","projected":{"sources":[`+
				`{"serviceAccountToken":{"audience":"sts.amazonaws.com","expirationSeconds":86400,"path":"token"}}]}}]}}}}`),
			want:      both(deploymentRefused(victimDeploy), rbacRefuses("patch", "deployments")),
			unchanged: e.deploymentUnchanged(victim),
		},
		{
			name:      "row 6: mount another agent's lease in the agent's Deployment",
			try:       patchDeployment(victimDeploy, fmt.Sprintf(`{"spec":{"template":{"spec":{"volumes":[{"name":"stolen","secret":{"secretName":%q}}]}}}}`, neighbourLease)),
			want:      both(deploymentRefused(victimDeploy), rbacRefuses("patch", "deployments")),
			unchanged: e.deploymentUnchanged(victim),
		},
		{
			name:      "row 6: kubectl set image on the agent's Deployment (the tag, not the verified digest)",
			try:       patchDeployment(victimDeploy, fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":%q,"image":%q}]}}}}`, container, images.Image)),
			want:      both(deploymentRefused(victimDeploy), rbacRefuses("patch", "deployments")),
			unchanged: e.deploymentUnchanged(victim),
		},
		{
			name: "row 6: kubectl rollout restart of the agent's Deployment",
			try: patchDeployment(victimDeploy, fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`,
				time.Now().UTC().Format(time.RFC3339))),
			want:      both(deploymentRefused(victimDeploy), rbacRefuses("patch", "deployments")),
			unchanged: e.deploymentUnchanged(victim),
		},

		// Row 7: relabelling through pods/status.
		{
			name:      "row 7: remove the agent label through the pods status subresource",
			try:       patchPod(types.JSONPatchType, `[{"op":"remove","path":"/metadata/labels/custos.dev~1agent"}]`, "status"),
			want:      both(policyRefuses(identityPolicy, "metadata.labels: Forbidden", "not even through pods/status"), rbacRefuses("patch", "pods/status")),
			unchanged: e.podUnchanged,
		},
		{
			name:      "row 7: remove the agent-uid label through the pods status subresource",
			try:       patchPod(types.JSONPatchType, `[{"op":"remove","path":"/metadata/labels/custos.dev~1agent-uid"}]`, "status"),
			want:      both(policyRefuses(identityPolicy, "metadata.labels: Forbidden", "not even through pods/status"), rbacRefuses("patch", "pods/status")),
			unchanged: e.podUnchanged,
		},
		{
			name:      "row 7: orphan a running agent pod (remove its owner reference)",
			try:       patchPod(types.JSONPatchType, `[{"op":"remove","path":"/metadata/ownerReferences"}]`),
			want:      both(policyRefuses(identityPolicy, "metadata.ownerReferences: Forbidden: a pod of agent "+victim+" stays under its ReplicaSet"), rbacRefuses("patch", "pods")),
			unchanged: e.podUnchanged,
		},

		// Row 8: a never-expiring token.
		{
			name: "row 8: a service-account-token Secret for the agent's ServiceAccount",
			try:  createSecret(tokenSecret(victimSA)),
			want: both(policyRefuses(secretsPolicy, "metadata.annotations[kubernetes.io/service-account.name]: Forbidden: "+victimSA),
				rbacRefuses("create", "secrets")),
			unchanged: e.absentAs(newSecret, "forever-token"),
			undo:      e.removeAs(newSecret, "forever-token"),
		},
		{
			name: "row 8: a service-account-token Secret for the Suspended agent's ServiceAccount",
			try: createSecret(func(a *attempt) *corev1.Secret {
				s := tokenSecret("agent-" + sleeper)(a)
				s.Name = a.name("sleeper-token")
				return s
			}),
			want: both(policyRefuses(secretsPolicy, "metadata.annotations[kubernetes.io/service-account.name]: Forbidden: agent-"+sleeper),
				rbacRefuses("create", "secrets")),
			unchanged: e.absentAs(newSecret, "sleeper-token"),
			undo:      e.removeAs(newSecret, "sleeper-token"),
		},

		// Row 9: a token minted outside every lease.
		{
			name: "row 9: kubectl create token for the agent's ServiceAccount (sts.amazonaws.com, 48h)",
			try:  mintToken(victimSA),
			want: both(policyRefuses(serviceAccountsPolicy, "serviceaccounts/token: Forbidden: "+victimSA+" is the identity of Custos agent "+victim),
				rbacRefuses("create", "serviceaccounts/token")),
		},
		{
			name: "row 9: kubectl create token for the Suspended agent's ServiceAccount",
			try:  mintToken("agent-" + sleeper),
			want: both(policyRefuses(serviceAccountsPolicy, "serviceaccounts/token: Forbidden: agent-"+sleeper),
				rbacRefuses("create", "serviceaccounts/token")),
		},

		// Row 10: NetworkPolicies add up.
		{
			name: "row 10: a NetworkPolicy with podSelector {} and ingress and egress [{}] is narrowed",
			try: createNetworkPolicy(func(a *attempt) *networkingv1.NetworkPolicy {
				return openNetworkPolicy(a.name("allow-all"))
			}),
			want: map[string]want{edit: admittedIf("narrowed to select no agent pod", e.narrowed("allow-all")), owner: rbacRefuses("create", "networkpolicies")},
			undo: e.removeAs(newNetworkPolicy, "allow-all"),
		},
		{
			name: "row 10: a NetworkPolicy selecting the agent's pods with egress [{}] is narrowed",
			try: createNetworkPolicy(func(a *attempt) *networkingv1.NetworkPolicy {
				np := openNetworkPolicy(a.name("egress-to-agent"))
				np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{custosv1alpha1.AgentLabel: victim}}
				return np
			}),
			want: map[string]want{edit: admittedIf("narrowed to select no agent pod", e.narrowed("egress-to-agent")), owner: rbacRefuses("create", "networkpolicies")},
			undo: e.removeAs(newNetworkPolicy, "egress-to-agent"),
		},
		{
			name: "row 10: a narrowed NetworkPolicy updated to select the agent again is narrowed again",
			try: func(a *attempt) error {
				np, err := a.cs.NetworkingV1().NetworkPolicies(ctNS).Create(ctx, openNetworkPolicy(a.name("unnarrowed")), a.create)
				if err != nil {
					return err
				}
				// Retried on a conflict: the manager may touch the policy between the two writes.
				return retry.RetryOnConflict(retry.DefaultRetry, func() error {
					np, err := a.cs.NetworkingV1().NetworkPolicies(ctNS).Get(ctx, np.Name, metav1.GetOptions{})
					if err != nil {
						return err
					}
					np.Spec.PodSelector = metav1.LabelSelector{}
					delete(np.Annotations, narrowedAnnotation)
					_, err = a.cs.NetworkingV1().NetworkPolicies(ctNS).Update(ctx, np, metav1.UpdateOptions{})
					return err
				})
			},
			want: map[string]want{edit: admittedIf("narrowed to select no agent pod", e.narrowed("unnarrowed")), owner: rbacRefuses("create", "networkpolicies")},
			undo: e.removeAs(newNetworkPolicy, "unnarrowed"),
		},
		{
			name: "row 10: pre-create NetworkPolicy agent-newcomer",
			try: createNetworkPolicy(func(a *attempt) *networkingv1.NetworkPolicy {
				return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "agent-" + newcomer, Namespace: ctNS}}
			}),
			want:      both(npReserved("agent-"+newcomer), rbacRefuses("create", "networkpolicies")),
			unchanged: func(g Gomega, _ actor) { e.absent(g, newNetworkPolicy(), "agent-"+newcomer) },
			undo:      func(actor) { e.remove(newNetworkPolicy(), "agent-"+newcomer) },
		},
		{
			name: "row 10: widen the agent's own NetworkPolicy (egress [{}])",
			try: func(a *attempt) error {
				_, err := a.cs.NetworkingV1().NetworkPolicies(ctNS).Patch(ctx, e.np.Name, types.MergePatchType, []byte(`{"spec":{"egress":[{}]}}`), metav1.PatchOptions{})
				return err
			},
			want:      both(npReserved(e.np.Name), rbacRefuses("patch", "networkpolicies")),
			unchanged: e.networkPolicyUnchanged,
		},
		{
			name: "row 10: delete the agent's own NetworkPolicy",
			try: func(a *attempt) error {
				return a.cs.NetworkingV1().NetworkPolicies(ctNS).Delete(ctx, e.np.Name, metav1.DeleteOptions{})
			},
			want:      both(npReserved(e.np.Name), rbacRefuses("delete", "networkpolicies")),
			unchanged: e.networkPolicyUnchanged,
		},

		// Row 11: the agent's ServiceAccount.
		{
			name:      "row 11: add an Azure client-id annotation to the agent's ServiceAccount",
			try:       patchServiceAccount(fmt.Sprintf(`{"metadata":{"annotations":{"azure.workload.identity/client-id":%q}}}`, azureClient)),
			want:      both(saReserved(victimSA), rbacRefuses("patch", "serviceaccounts")),
			unchanged: e.serviceAccountUnchanged,
		},
		{
			name:      "row 11: add a GCP service account annotation to the agent's ServiceAccount",
			try:       patchServiceAccount(fmt.Sprintf(`{"metadata":{"annotations":{"iam.gke.io/gcp-service-account":%q}}}`, gcpAccount)),
			want:      both(saReserved(victimSA), rbacRefuses("patch", "serviceaccounts")),
			unchanged: e.serviceAccountUnchanged,
		},
		{
			name: "row 11: add EKS role-arn and token-expiration annotations to the agent's ServiceAccount",
			try: patchServiceAccount(fmt.Sprintf(`{"metadata":{"annotations":{"eks.amazonaws.com/role-arn":%q,"eks.amazonaws.com/token-expiration":"86400"}}}`,
				awsRole)),
			want:      both(saReserved(victimSA), rbacRefuses("patch", "serviceaccounts")),
			unchanged: e.serviceAccountUnchanged,
		},
		{
			name: "row 11: pre-create ServiceAccount agent-newcomer with Custos's labels and another tenant's role",
			try: func(a *attempt) error {
				_, err := a.cs.CoreV1().ServiceAccounts(ctNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
					Name: "agent-" + newcomer, Namespace: ctNS,
					Labels: map[string]string{custosv1alpha1.AgentLabel: newcomer, custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue,
						custosv1alpha1.TenantLabel: ctTenant},
					Annotations: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::444455556666:role/globex-payments"},
				}}, a.create)
				return err
			},
			want:      both(saReserved("agent-"+newcomer), rbacRefuses("create", "serviceaccounts")),
			unchanged: func(g Gomega, _ actor) { e.absent(g, newServiceAccount(), "agent-"+newcomer) },
			undo:      func(actor) { e.remove(newServiceAccount(), "agent-"+newcomer) },
		},

		// Row 12: the name after decommission.
		{
			name: "row 12: re-create ServiceAccount agent-retired after its agent's decommission",
			try: func(a *attempt) error {
				_, err := a.cs.CoreV1().ServiceAccounts(ctNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
					Name: "agent-" + retired, Namespace: ctNS,
				}}, a.create)
				return err
			},
			want:      both(saReserved("agent-"+retired), rbacRefuses("create", "serviceaccounts")),
			unchanged: func(g Gomega, _ actor) { e.absent(g, newServiceAccount(), "agent-"+retired) },
			undo:      func(actor) { e.remove(newServiceAccount(), "agent-"+retired) },
		},
		{
			name: "row 12: mint a token for agent-retired after its agent's decommission",
			try:  mintToken("agent-" + retired),
			want: both(apiRefuses(404, `serviceaccounts "agent-`+retired+`" not found`), rbacRefuses("create", "serviceaccounts/token")),
		},

		// Row 13: any pod reading a lease.
		{
			name: "row 13: a plain pod mounting the agent's lease as a volume",
			try: createPod(func(a *attempt) *corev1.Pod {
				return withVolume(plainPod(a.name("lease-volume")), leaseVolume(victimLease))
			}),
			want:      both(leaseRefused(victimLease, victim), rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "lease-volume"),
			undo:      e.removeAs(newPod, "lease-volume"),
		},
		{
			name: "row 13: a plain pod mounting the agent's lease as a projected source",
			try: createPod(func(a *attempt) *corev1.Pod {
				return withVolume(plainPod(a.name("lease-projected")), corev1.Volume{Name: "stolen", VolumeSource: corev1.VolumeSource{
					Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
						Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: victimLease}},
					}}},
				}})
			}),
			want:      both(leaseRefused(victimLease, victim), rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "lease-projected"),
			undo:      e.removeAs(newPod, "lease-projected"),
		},
		{
			name: "row 13: a plain pod reading the agent's lease into an environment variable",
			try: createPod(func(a *attempt) *corev1.Pod {
				p := plainPod(a.name("lease-env"))
				p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: victimLease}, Key: "token",
				}}}}
				return p
			}),
			want:      both(leaseRefused(victimLease, victim), rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "lease-env"),
			undo:      e.removeAs(newPod, "lease-env"),
		},
		{
			name: "row 13: a plain pod reading the agent's lease as envFrom",
			try: createPod(func(a *attempt) *corev1.Pod {
				p := plainPod(a.name("lease-envfrom"))
				p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: victimLease},
				}}}
				return p
			}),
			want:      both(leaseRefused(victimLease, victim), rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "lease-envfrom"),
			undo:      e.removeAs(newPod, "lease-envfrom"),
		},
		{
			name: "row 13: a plain pod reading the agent's lease in an init container",
			try: createPod(func(a *attempt) *corev1.Pod {
				p := plainPod(a.name("lease-init"))
				p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: images.Pinned(), Env: []corev1.EnvVar{{Name: "TOKEN",
					ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: victimLease}, Key: "token",
					}}}}}}
				return p
			}),
			want:      both(leaseRefused(victimLease, victim), rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "lease-init"),
			undo:      e.removeAs(newPod, "lease-init"),
		},
		{
			name: "row 13: a Deployment of plain pods mounting the agent's lease (its pods are refused)",
			try: createWorkload(func(a *attempt) client.Object {
				d := plainDeployment(a.name("lease-reader"))
				d.Spec.Template.Spec.Volumes = []corev1.Volume{leaseVolume(victimLease)}
				return d
			}),
			want: map[string]want{
				edit:  admittedIf("its pods are refused, on the record", e.podsRefused("lease-reader", victimLease)),
				owner: rbacRefuses("create", "deployments"),
			},
			undo: e.removeAs(newDeployment, "lease-reader"),
		},

		// Each subresource: into the agent's pod.
		{
			name:      "subresource: exec into an agent pod",
			try:       connect("post", "exec", "command", "id", "stdout", "true"),
			want:      both(connectRefused("exec"), rbacRefuses("create", "pods/exec")),
			unchanged: e.podUnchanged,
		},
		{
			name:      "subresource: attach to an agent pod",
			try:       connect("post", "attach", "stdout", "true"),
			want:      both(connectRefused("attach"), rbacRefuses("create", "pods/attach")),
			unchanged: e.podUnchanged,
		},
		{
			name:      "subresource: port-forward to an agent pod",
			try:       connect("post", "portforward", "ports", "8080"),
			want:      both(connectRefused("portforward"), rbacRefuses("create", "pods/portforward")),
			unchanged: e.podUnchanged,
		},
		{
			name:      "subresource: proxy to an agent pod",
			try:       connect("get", "proxy"),
			want:      both(connectRefused("proxy"), rbacRefuses("get", "pods/proxy")),
			unchanged: e.podUnchanged,
		},
		{
			name: "subresource: an ephemeral container in an agent pod (kubectl debug)",
			try: func(a *attempt) error {
				p := e.pod.DeepCopy()
				p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{
					EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: a.name("debug"), Image: images.Pinned()},
					TargetContainerName:      container,
				})
				_, err := a.cs.CoreV1().Pods(ctNS).UpdateEphemeralContainers(ctx, p.Name, p, metav1.UpdateOptions{})
				return err
			},
			want: both(policyRefuses(identityPolicy, "spec.ephemeralContainers: Forbidden: no container joins a pod of Custos agent "+victim),
				rbacRefuses("update", "pods/ephemeralcontainers")),
			unchanged: e.podUnchanged,
		},
		{
			name: "subresource: scale the running agent's Deployment (deployments scale)",
			try: func(a *attempt) error {
				_, err := a.cs.AppsV1().Deployments(ctNS).UpdateScale(ctx, victimDeploy, &autoscalingv1.Scale{
					ObjectMeta: metav1.ObjectMeta{Name: victimDeploy, Namespace: ctNS}, Spec: autoscalingv1.ScaleSpec{Replicas: 5},
				}, metav1.UpdateOptions{})
				return err
			},
			want: both(policyRefuses(workloadPolicy, "spec.replicas: Forbidden: Deployment "+victimDeploy+" runs a Custos agent"),
				rbacRefuses("update", "deployments/scale")),
			unchanged: e.deploymentUnchanged(victim),
		},
		{
			name: "subresource: scale the agent's ReplicaSet (replicasets scale)",
			try: func(a *attempt) error {
				_, err := a.cs.AppsV1().ReplicaSets(ctNS).UpdateScale(ctx, e.rs[victim].Name, &autoscalingv1.Scale{
					ObjectMeta: metav1.ObjectMeta{Name: e.rs[victim].Name, Namespace: ctNS}, Spec: autoscalingv1.ScaleSpec{Replicas: 5},
				}, metav1.UpdateOptions{})
				return err
			},
			want: both(policyRefuses(workloadPolicy, "spec.replicas: Forbidden: ReplicaSet "+e.rs[victim].Name),
				rbacRefuses("update", "replicasets/scale")),
			unchanged: e.replicaSetUnchanged,
		},
		{
			name: "subresource: change the agent's ReplicaSet's pod template",
			try: func(a *attempt) error {
				_, err := a.cs.AppsV1().ReplicaSets(ctNS).Patch(ctx, e.rs[victim].Name, types.StrategicMergePatchType,
					[]byte(fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":%q,"command":["sleep","infinity"]}]}}}}`, container)), metav1.PatchOptions{})
				return err
			},
			want:      both(policyRefuses(workloadPolicy, "spec: Forbidden: ReplicaSet "+e.rs[victim].Name), rbacRefuses("patch", "replicasets")),
			unchanged: e.replicaSetUnchanged,
		},

		// Each copy of the agent's template.
		{
			name:      "copy: a second pod of the agent's template",
			try:       createPod(victimPod("copy", nil)),
			want:      both(notCreator(victim), rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "copy"),
			undo:      e.removeAs(newPod, "copy"),
		},
		{
			name: "copy: a Job of the agent's template",
			try: createWorkload(func(a *attempt) client.Object {
				return &batchv1.Job{ObjectMeta: meta(a, "copy"), Spec: batchv1.JobSpec{Template: jobTemplate()}}
			}),
			want:      both(copyRefused("Job"), rbacRefuses("create", "jobs")),
			unchanged: e.absentAs(func() client.Object { return &batchv1.Job{} }, "copy"),
			undo:      e.removeAs(func() client.Object { return &batchv1.Job{} }, "copy"),
		},
		{
			name: "copy: a CronJob of the agent's template",
			try: createWorkload(func(a *attempt) client.Object {
				return &batchv1.CronJob{ObjectMeta: meta(a, "copy"), Spec: batchv1.CronJobSpec{Schedule: "* * * * *",
					JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: jobTemplate()}}}}
			}),
			want:      both(copyRefused("CronJob"), rbacRefuses("create", "cronjobs")),
			unchanged: e.absentAs(func() client.Object { return &batchv1.CronJob{} }, "copy"),
			undo:      e.removeAs(func() client.Object { return &batchv1.CronJob{} }, "copy"),
		},
		{
			name: "copy: a ReplicaSet of the agent's template",
			try: createWorkload(func(a *attempt) client.Object {
				return replicaSetOf(a.name("copy"), e.template(victim))
			}),
			want:      both(policyRefuses(workloadPolicy, "spec: Forbidden: ReplicaSet", "would run a Custos agent"), rbacRefuses("create", "replicasets")),
			unchanged: e.absentAs(newReplicaSet, "copy"),
			undo:      e.removeAs(newReplicaSet, "copy"),
		},
		{
			name: "copy: a Deployment of the agent's template",
			try: createWorkload(func(a *attempt) client.Object {
				return deploymentOf(a.name("copy"), e.template(victim))
			}),
			want: map[string]want{
				edit:  deploymentRefused(tenantEditor.name("copy")),
				owner: rbacRefuses("create", "deployments"),
			},
			unchanged: e.absentAs(newDeployment, "copy"),
			undo:      e.removeAs(newDeployment, "copy"),
		},
		{
			name: "copy: a Deployment running as the agent's ServiceAccount without Custos's labels",
			try: createWorkload(func(a *attempt) client.Object {
				d := plainDeployment(a.name("sa-copy"))
				d.Spec.Template.Spec.ServiceAccountName = victimSA
				return d
			}),
			want: map[string]want{
				edit:  deploymentRefused(tenantEditor.name("sa-copy")),
				owner: rbacRefuses("create", "deployments"),
			},
			unchanged: e.absentAs(newDeployment, "sa-copy"),
			undo:      e.removeAs(newDeployment, "sa-copy"),
		},
		{
			name: "copy: a StatefulSet of the agent's template",
			try: createWorkload(func(a *attempt) client.Object {
				t := e.template(victim)
				return &appsv1.StatefulSet{ObjectMeta: meta(a, "copy"), Spec: appsv1.StatefulSetSpec{
					Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: selector(t)}, Template: t,
				}}
			}),
			want:      both(copyRefused("StatefulSet"), rbacRefuses("create", "statefulsets")),
			unchanged: e.absentAs(func() client.Object { return &appsv1.StatefulSet{} }, "copy"),
			undo:      e.removeAs(func() client.Object { return &appsv1.StatefulSet{} }, "copy"),
		},
		{
			name: "copy: a DaemonSet of the agent's template",
			try: createWorkload(func(a *attempt) client.Object {
				t := e.template(victim)
				return &appsv1.DaemonSet{ObjectMeta: meta(a, "copy"), Spec: appsv1.DaemonSetSpec{
					Selector: &metav1.LabelSelector{MatchLabels: selector(t)}, Template: t,
				}}
			}),
			want:      both(copyRefused("DaemonSet"), rbacRefuses("create", "daemonsets")),
			unchanged: e.absentAs(func() client.Object { return &appsv1.DaemonSet{} }, "copy"),
			undo:      e.removeAs(func() client.Object { return &appsv1.DaemonSet{} }, "copy"),
		},
		{
			name: "copy: a ReplicationController of the agent's template",
			try: createWorkload(func(a *attempt) client.Object {
				t := e.template(victim)
				return &corev1.ReplicationController{ObjectMeta: meta(a, "copy"), Spec: corev1.ReplicationControllerSpec{
					Replicas: ptr.To(int32(1)), Selector: selector(t), Template: &t,
				}}
			}),
			want:      both(copyRefused("ReplicationController"), rbacRefuses("create", "replicationcontrollers")),
			unchanged: e.absentAs(func() client.Object { return &corev1.ReplicationController{} }, "copy"),
			undo:      e.removeAs(func() client.Object { return &corev1.ReplicationController{} }, "copy"),
		},

		// Each name Custos makes, taken before the agent exists.
		{
			name: "name: pre-create lease Secret agent-newcomer.ledger-api",
			try: createSecret(func(a *attempt) *corev1.Secret {
				return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "agent-" + newcomer + ".ledger-api"}, StringData: map[string]string{"token": "forged"}}
			}),
			want:      both(leaseName("agent-"+newcomer+".ledger-api"), rbacRefuses("create", "secrets")),
			unchanged: func(g Gomega, _ actor) { e.absent(g, newSecret(), "agent-"+newcomer+".ledger-api") },
			undo:      func(actor) { e.remove(newSecret(), "agent-"+newcomer+".ledger-api") },
		},
		{
			name: "name: a Secret of type custos.dev_lease",
			try: createSecret(func(a *attempt) *corev1.Secret {
				return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: a.name("look-alike")}, Type: "custos.dev/lease", StringData: map[string]string{"token": "forged"}}
			}),
			want:      both(policyRefuses(secretsPolicy, "type: Forbidden: Secret"), rbacRefuses("create", "secrets")),
			unchanged: e.absentAs(newSecret, "look-alike"),
			undo:      e.removeAs(newSecret, "look-alike"),
		},
		{
			name: "name: overwrite the agent's lease Secret",
			try: func(a *attempt) error {
				_, err := a.cs.CoreV1().Secrets(ctNS).Patch(ctx, victimLease, types.MergePatchType, []byte(`{"stringData":{"token":"forged"}}`), metav1.PatchOptions{})
				return err
			},
			want:      both(leaseName(victimLease), rbacRefuses("patch", "secrets")),
			unchanged: e.leaseUnchanged,
		},
		{
			name: "name: hand a tenant's own Secret to the agent (a controller reference to its Agent, added later)",
			try: func(a *attempt) error {
				s, err := a.cs.CoreV1().Secrets(ctNS).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: a.name("adopt-me")},
					StringData: map[string]string{"token": "planted"}}, a.create)
				if err != nil {
					return err
				}
				return retry.RetryOnConflict(retry.DefaultRetry, func() error {
					s, err := a.cs.CoreV1().Secrets(ctNS).Get(ctx, s.Name, metav1.GetOptions{})
					if err != nil {
						return err
					}
					s.OwnerReferences = append(s.OwnerReferences, e.agentControllerRef(victim))
					_, err = a.cs.CoreV1().Secrets(ctNS).Update(ctx, s, metav1.UpdateOptions{})
					return err
				})
			},
			want: both(policyRefuses(ownershipPolicy, "metadata.ownerReferences: Forbidden: "+tenantEditor.name("adopt-me")+" was not made for Agent "+victim),
				rbacRefuses("create", "secrets")),
			unchanged: e.notAdopted(newSecret, "adopt-me"),
			undo:      e.removeAs(newSecret, "adopt-me"),
		},
		{
			name: "name: hand a tenant's own Deployment to the agent (a controller reference to its Agent, added later)",
			try: func(a *attempt) error {
				d, err := a.cs.AppsV1().Deployments(ctNS).Create(ctx, plainDeployment(a.name("adopt-me")), a.create)
				if err != nil {
					return err
				}
				// Retried on a conflict: the deployment controller writes its status between the two writes.
				return retry.RetryOnConflict(retry.DefaultRetry, func() error {
					d, err := a.cs.AppsV1().Deployments(ctNS).Get(ctx, d.Name, metav1.GetOptions{})
					if err != nil {
						return err
					}
					d.OwnerReferences = append(d.OwnerReferences, e.agentControllerRef(victim))
					_, err = a.cs.AppsV1().Deployments(ctNS).Update(ctx, d, metav1.UpdateOptions{})
					return err
				})
			},
			want: both(policyRefuses(ownershipPolicy, "metadata.ownerReferences: Forbidden: "+tenantEditor.name("adopt-me")+" was not made for Agent "+victim),
				rbacRefuses("create", "deployments")),
			unchanged: e.notAdopted(newDeployment, "adopt-me"),
			undo:      e.removeAs(newDeployment, "adopt-me"),
		},
		{
			name: "name: pre-create Deployment agent-newcomer",
			try: createWorkload(func(a *attempt) client.Object {
				return plainDeployment("agent-" + newcomer)
			}),
			want:      both(deploymentRefused("agent-"+newcomer), rbacRefuses("create", "deployments")),
			unchanged: func(g Gomega, _ actor) { e.absent(g, newDeployment(), "agent-"+newcomer) },
			undo:      func(actor) { e.remove(newDeployment(), "agent-"+newcomer) },
		},
		{
			name: "name: pre-create ReplicaSet agent-newcomer-5d8f7c9b6",
			try: createWorkload(func(a *attempt) client.Object {
				d := plainDeployment("agent-" + newcomer + "-5d8f7c9b6")
				return replicaSetOf(d.Name, d.Spec.Template)
			}),
			want:      both(policyRefuses(workloadPolicy, "spec: Forbidden: ReplicaSet agent-"+newcomer+"-5d8f7c9b6"), rbacRefuses("create", "replicasets")),
			unchanged: func(g Gomega, _ actor) { e.absent(g, newReplicaSet(), "agent-"+newcomer+"-5d8f7c9b6") },
			undo:      func(actor) { e.remove(newReplicaSet(), "agent-"+newcomer+"-5d8f7c9b6") },
		},

		// Each moment: after decommission.
		{
			name: "after decommission: re-create the lease Secret agent-retired.ledger-api",
			try: createSecret(func(a *attempt) *corev1.Secret {
				return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: retiredLease}, StringData: map[string]string{"token": "replayed"}}
			}),
			want:      both(leaseName(retiredLease), rbacRefuses("create", "secrets")),
			unchanged: func(g Gomega, _ actor) { e.absent(g, newSecret(), retiredLease) },
			undo:      func(actor) { e.remove(newSecret(), retiredLease) },
		},
		{
			name: "after decommission: re-create NetworkPolicy agent-retired",
			try: createNetworkPolicy(func(a *attempt) *networkingv1.NetworkPolicy {
				np := openNetworkPolicy("agent-" + retired)
				np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{custosv1alpha1.AgentLabel: retired}}
				return np
			}),
			want:      both(npReserved("agent-"+retired), rbacRefuses("create", "networkpolicies")),
			unchanged: func(g Gomega, _ actor) { e.absent(g, newNetworkPolicy(), "agent-"+retired) },
			undo:      func(actor) { e.remove(newNetworkPolicy(), "agent-"+retired) },
		},
		{
			name: "after decommission: re-create Deployment agent-retired of its last template",
			try: createWorkload(func(a *attempt) client.Object {
				return deploymentOf("agent-"+retired, e.template(retired))
			}),
			want:      both(deploymentRefused("agent-"+retired), rbacRefuses("create", "deployments")),
			unchanged: func(g Gomega, _ actor) { e.absent(g, newDeployment(), "agent-"+retired) },
			undo:      func(actor) { e.remove(newDeployment(), "agent-"+retired) },
		},
		{
			name: "after decommission: a pod of the decommissioned agent's template",
			try: createPod(func(a *attempt) *corev1.Pod {
				return podOf(a.name("retired"), e.template(retired))
			}),
			want:      both(notCreator(retired), rbacRefuses("create", "pods")),
			unchanged: e.absentAs(newPod, "retired"),
			undo:      e.removeAs(newPod, "retired"),
		},

		// The Agent's own claims.
		{
			name:      "ambient: an Agent in identity mode Ambient, which the boundary does not allow",
			try:       createAgent("ambient", "  identity:\n    mode: Ambient\n    aws: {roleARN: \"arn:aws:iam::111122223333:role/containment-ambient\"}\n"),
			want:      both(rbacRefuses("create", "agents"), agentAdmissionRefuses("spec.identity.mode: Forbidden", "ambient")),
			unchanged: e.absentAs(newAgent, "ambient"),
			undo:      e.removeAs(newAgent, "ambient"),
		},
		{
			name: "cloudRoles: an Agent bound to another tenant's AWS role",
			try:  createAgent("foreign-role", "  identity:\n    aws: {roleARN: \"arn:aws:iam::444455556666:role/globex-payments\"}\n"),
			want: both(rbacRefuses("create", "agents"), webhookRefuses(agentWebhook, "spec.identity.aws.roleARN: Forbidden",
				`is not allowed by DataBoundary "`+ctTenant+`"`)),
			unchanged: e.absentAs(newAgent, "foreign-role"),
			undo:      e.removeAs(newAgent, "foreign-role"),
		},

		// The pod guard, behind the policies: what the ReplicaSet
		// controller may create, checked for what it carries (dry runs).
		{
			name: "pod guard: an unchanged pod of the agent, as its ReplicaSet controller creates it, is admitted",
			try:  guarded(nil),
			want: map[string]want{rsController.key: admittedIf("admitted as it is", func(Gomega, actor) {})},
		},
		{
			name: "pod guard: a pod of the Suspended agent, as its ReplicaSet controller would create it",
			try: func(a *attempt) error {
				_, err := a.cs.CoreV1().Pods(ctNS).Create(ctx, rsPod(e.rs[sleeper], a.name("payroll")), a.create)
				return err
			},
			want: byGuard("agent " + sleeper + " is Suspended"),
		},
		{
			name: "pod guard: an agent pod without app.kubernetes.io_managed-by or custos.dev_agent-uid",
			try: guarded(func(p *corev1.Pod) {
				delete(p.Labels, custosv1alpha1.ManagedByLabel)
				delete(p.Labels, custosv1alpha1.AgentUIDLabel)
			}),
			want: byGuard("metadata.labels[app.kubernetes.io/managed-by]: Required value", "metadata.labels[custos.dev/agent-uid]: Required value"),
		},
		{
			name: "pod guard: an agent pod carrying another agent's UID",
			try:  guarded(func(p *corev1.Pod) { p.Labels[custosv1alpha1.AgentUIDLabel] = string(e.uid[neighbour]) }),
			want: byGuard("metadata.labels[custos.dev/agent-uid]: Forbidden", "is not the UID of agent "+victim),
		},
		{
			name: "pod guard: a pod of the decommissioned agent, as a ReplicaSet controller would create it",
			try: guarded(func(p *corev1.Pod) {
				hash := p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
				p.Labels[custosv1alpha1.AgentLabel] = retired
				p.Labels[custosv1alpha1.AgentUIDLabel] = string(e.uid[retired])
				p.Spec.ServiceAccountName = "agent-" + retired
				p.Spec.Volumes, p.Spec.Containers[0].VolumeMounts = nil, nil
				p.OwnerReferences[0].Name = "agent-" + retired + "-" + hash
			}),
			want: byGuard(`no Agent "` + retired + `" exists`),
		},
		{
			name: "pod guard: an agent pod mounting a hostPath",
			try: guarded(func(p *corev1.Pod) {
				withVolume(p, corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/run"}}})
			}),
			want: byGuard(".hostPath: Forbidden"),
		},
		{
			name: "pod guard: an agent pod running as root",
			try: guarded(func(p *corev1.Pod) {
				sc := securityContext(firstContainer(p))
				sc.RunAsUser, sc.RunAsNonRoot = ptr.To(int64(0)), nil
			}),
			want: byGuard("runAsUser: Forbidden"),
		},
		{
			name: "pod guard: an agent pod with a projected ServiceAccount token",
			try:  guarded(func(p *corev1.Pod) { withVolume(p, projectedTokenVolume("sts.amazonaws.com", 86400)) }),
			want: byGuard("serviceAccountToken: Forbidden"),
		},
		{
			name: "pod guard: an agent pod with SELinux type spc_t",
			try: guarded(func(p *corev1.Pod) {
				securityContext(firstContainer(p)).SELinuxOptions = &corev1.SELinuxOptions{Type: "spc_t"}
			}),
			want: byGuard("seLinuxOptions.type: Forbidden", "spc_t"),
		},
		{
			name: "pod guard: an agent pod with AppArmor Unconfined",
			try: guarded(func(p *corev1.Pod) {
				securityContext(firstContainer(p)).AppArmorProfile = &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}
			}),
			want: byGuard("appArmorProfile.type: Forbidden", "Unconfined"),
		},
		{
			name: "pod guard: an agent pod with an nfs volume",
			try: guarded(func(p *corev1.Pod) {
				withVolume(p, corev1.Volume{Name: "nfs", VolumeSource: corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{Server: "127.0.0.1", Path: "/export"}}})
			}),
			want: byGuard(".nfs: Forbidden"),
		},
		{
			name: "pod guard: an agent pod with spec.nodeName outside the boundary's regions",
			try:  guarded(func(p *corev1.Pod) { p.Spec.NodeName = "kwok-us-east-1" }),
			want: byGuard("spec.nodeName: Forbidden"),
		},
		{
			name: "pod guard: an agent pod mounting a Secret that is not one of its leases",
			try:  guarded(func(p *corev1.Pod) { withVolume(p, leaseVolume(ctSigner)) }),
			want: byGuard("is not one of agent " + victim + "'s lease Secrets"),
		},
		{
			name: "pod guard: an agent pod mounting another agent's lease",
			try:  guarded(func(p *corev1.Pod) { withVolume(p, leaseVolume(neighbourLease)) }),
			// The policy refuses it first, for everyone.
			want: map[string]want{rsController.key: leaseRefused(neighbourLease, neighbour)},
		},
		{
			name: "pod guard: an agent pod with seccomp Unconfined",
			try: guarded(func(p *corev1.Pod) {
				securityContext(firstContainer(p)).SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
			}),
			want: byGuard("seccompProfile.type: Forbidden"),
		},
		{
			name: "pod guard: an agent pod adding capability SYS_ADMIN",
			try: guarded(func(p *corev1.Pod) {
				sc := securityContext(firstContainer(p))
				if sc.Capabilities == nil {
					sc.Capabilities = &corev1.Capabilities{}
				}
				sc.Capabilities.Add = append(sc.Capabilities.Add, "SYS_ADMIN")
			}),
			want: byGuard("capabilities.add[0]: Forbidden"),
		},
		{
			name: "pod guard: a privileged agent pod",
			try: guarded(func(p *corev1.Pod) {
				sc := securityContext(firstContainer(p))
				sc.Privileged, sc.AllowPrivilegeEscalation = ptr.To(true), ptr.To(true)
			}),
			want: byGuard("privileged: Forbidden"),
		},
		{
			name: "pod guard: an agent pod on the host network",
			try:  guarded(func(p *corev1.Pod) { p.Spec.HostNetwork = true }),
			want: byGuard("spec.hostNetwork: Forbidden"),
		},
		{
			name: "pod guard: an agent pod setting an unsafe sysctl",
			try: guarded(func(p *corev1.Pod) {
				if p.Spec.SecurityContext == nil {
					p.Spec.SecurityContext = &corev1.PodSecurityContext{}
				}
				p.Spec.SecurityContext.Sysctls = []corev1.Sysctl{{Name: "kernel.msgmax", Value: "65536"}}
			}),
			want: byGuard("sysctls[0].name: Forbidden", "kernel.msgmax"),
		},
		{
			name: "pod guard: an agent pod with the image's tag instead of the verified digest",
			try:  guarded(func(p *corev1.Pod) { p.Spec.Containers[0].Image = images.Image }),
			want: byGuard("image: Forbidden"),
		},

		// The breaker's watch: what it reads (the gateway replicas' usage
		// reports), the caps' ledger, and the state it keeps for the next
		// leader are Custos's alone. A tenant who could write them would
		// blind the breaker to its agent, hand the agent its caps back, or
		// reset the evidence against it.
		{
			name: "breaker: a usage report of a replica that does not exist, saying the agent took nothing",
			try: func(a *attempt) error {
				_, err := a.cs.CoreV1().ConfigMaps(gatewayCredentialsNS).Create(ctx, &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: "custos-usage-" + a.suffix, Labels: map[string]string{"custos.dev/usage": "gateway"}},
					Data:       map[string]string{ctNS + "." + victim: "0 0 0"},
				}, metav1.CreateOptions{})
				return err
			},
			want:      both(rbacRefuses("create", "configmaps"), rbacRefuses("create", "configmaps")),
			unchanged: func(g Gomega, a actor) { e.absentIn(g, gatewayCredentialsNS, "custos-usage-"+a.suffix) },
		},
		{
			name: "breaker: a replica's usage report rewritten",
			try:  patchConfigMap(gatewayCredentialsNS, "custos-usage-custos-gateway", `{"data":{"`+ctNS+`.`+victim+`":"0 0 0"}}`),
			want: both(rbacRefuses("patch", "configmaps"), rbacRefuses("patch", "configmaps")),
		},
		{
			name: "breaker: the caps' ledger, the day's count given back",
			try:  patchConfigMap(gatewayCredentialsNS, "custos-caps-0", `{"data":{"`+ctNS+`.`+victim+`":"0"}}`),
			want: both(rbacRefuses("patch", "configmaps"), rbacRefuses("patch", "configmaps")),
		},
		{
			name: "breaker: the evidence it keeps for the next leader, reset",
			try:  patchConfigMap(custosNS, breaker.TickShardName(0), `{"binaryData":{"states":""}}`),
			want: both(rbacRefuses("patch", "configmaps"), rbacRefuses("patch", "configmaps")),
		},
		{
			name: "breaker: a trip it could not make yet, dropped",
			try:  patchConfigMap(custosNS, breaker.PendingName, `{"binaryData":{"states":"W10="}}`),
			want: both(rbacRefuses("patch", "configmaps"), rbacRefuses("patch", "configmaps")),
		},

		// Findings: what the evaluator saw on the trail waits for a person.
		// A tenant who could write them would forge one clean, close one
		// against their agent, or erase it; who could reset the evaluator's
		// state would have records read again or skipped.
		{
			name: "findings: a Finding of the tenant's own, closed before anyone saw it",
			try: func(a *attempt) error {
				_, err := a.dyn.Resource(findingsGVR).Namespace(ctNS).Create(a.ctx, &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "custos.dev/v1alpha1", "kind": "Finding",
					"metadata": map[string]any{"name": a.name(victim + "-probing-20261207")},
					"spec":     map[string]any{"agent": victim, "rubric": "probing", "windowStart": "2026-12-07T00:00:00Z"},
				}}, metav1.CreateOptions{})
				return err
			},
			want: both(rbacRefuses("create", "findings"), rbacRefuses("create", "findings")),
		},
		{
			name: "findings: an open Finding marked Dismissed (findings/status)",
			try: func(a *attempt) error {
				_, err := a.dyn.Resource(findingsGVR).Namespace(ctNS).Patch(a.ctx, victim+"-probing-20261207", types.MergePatchType,
					[]byte(`{"status":{"phase":"Dismissed"}}`), metav1.PatchOptions{}, "status")
				return err
			},
			want: both(rbacRefuses("patch", "findings/status"), rbacRefuses("patch", "findings/status")),
		},
		{
			name: "findings: an open Finding deleted",
			try: func(a *attempt) error {
				return a.dyn.Resource(findingsGVR).Namespace(ctNS).Delete(a.ctx, victim+"-probing-20261207", metav1.DeleteOptions{})
			},
			want: both(rbacRefuses("delete", "findings"), rbacRefuses("delete", "findings")),
		},
		{
			name: "findings: a review dismissing one, naming someone else as the reviewer",
			try: func(a *attempt) error {
				_, err := a.dyn.Resource(findingReviewsGVR).Namespace(ctNS).Create(a.ctx, &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "custos.dev/v1alpha1", "kind": "FindingReview",
					"metadata": map[string]any{"name": a.name("dismiss")},
					"spec": map[string]any{"finding": victim + "-probing-20261207", "verdict": "Dismissed", "reason": "nothing to see",
						"reviewer": map[string]any{"username": "rita@containment.example"}},
				}}, metav1.CreateOptions{})
				return err
			},
			want: both(rbacRefuses("create", "findingreviews"), rbacRefuses("create", "findingreviews")),
		},
		{
			name: "findings: the evaluator's record of how far it has read, reset",
			try:  patchConfigMap(custosNS, evaluate.StateName, `{"data":{"custos-gateway.x":"{\"next\":0}"}}`),
			want: both(rbacRefuses("patch", "configmaps"), rbacRefuses("patch", "configmaps")),
		},
	}
}

var (
	findingsGVR       = schema.GroupVersionResource{Group: "custos.dev", Version: "v1alpha1", Resource: "findings"}
	findingReviewsGVR = schema.GroupVersionResource{Group: "custos.dev", Version: "v1alpha1", Resource: "findingreviews"}
)

// patchConfigMap merge-patches ConfigMap namespace/name.
func patchConfigMap(namespace, name, patch string) func(a *attempt) error {
	return func(a *attempt) error {
		_, err := a.cs.CoreV1().ConfigMaps(namespace).Patch(a.ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	}
}

// absentIn: no ConfigMap namespace/name was stored.
func (e *containment) absentIn(g Gomega, namespace, name string) {
	err := e.c.Get(e.ctx, client.ObjectKey{Namespace: namespace, Name: name}, &corev1.ConfigMap{})
	g.ExpectWithOffset(1, apierrors.IsNotFound(err)).To(BeTrue(), "STORED: ConfigMap %s/%s (%v)", namespace, name, err)
}

// leaseRefused: custos-agent-identity refuses a pod referencing lease,
// which belongs to agent.
func leaseRefused(lease, agent string) want {
	return policyRefuses(identityPolicy, "spec: Forbidden: Secret "+lease+" is a credential lease of Custos agent "+agent)
}

// agentControllerRef is a controller reference to Agent name.
func (e *containment) agentControllerRef(name string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: custosv1alpha1.GroupVersion.String(), Kind: "Agent", Name: name, UID: e.uid[name], Controller: ptr.To(true)}
}

// notAdopted: a's object base, if stored, is controlled by no Agent.
func (e *containment) notAdopted(newObj func() client.Object, base string) func(Gomega, actor) {
	return func(g Gomega, a actor) {
		obj := newObj()
		err := e.c.Get(e.ctx, client.ObjectKey{Namespace: ctNS, Name: a.name(base)}, obj)
		if apierrors.IsNotFound(err) {
			return
		}
		g.Expect(err).NotTo(HaveOccurred())
		if ref := metav1.GetControllerOf(obj); ref != nil {
			g.Expect(ref.Kind).NotTo(Equal("Agent"), "ADOPTED: %T %s is controlled by Agent %s", obj, obj.GetName(), ref.Name)
		}
	}
}

// replicaSetUnchanged: the victim's ReplicaSet keeps its spec.
func (e *containment) replicaSetUnchanged(g Gomega, _ actor) {
	rs := &appsv1.ReplicaSet{}
	g.Expect(e.c.Get(e.ctx, client.ObjectKeyFromObject(e.rs[victim]), rs)).To(Succeed())
	g.Expect(rs.Generation).To(Equal(e.rs[victim].Generation), "CHANGED: the spec of ReplicaSet %s", rs.Name)
}

// leaseUnchanged: the victim's lease holds what Custos issued.
func (e *containment) leaseUnchanged(g Gomega, _ actor) {
	s := &corev1.Secret{}
	g.Expect(e.c.Get(e.ctx, client.ObjectKey{Namespace: ctNS, Name: victimLease}, s)).To(Succeed())
	g.Expect(s.Data).NotTo(HaveKeyWithValue("token", []byte("forged")), "CHANGED: the lease holds the tenant's token")
}

// podsRefused: the workload base (of a) runs no pod: the API server
// refused the controller's every pod create, naming the lease, on the
// record.
func (e *containment) podsRefused(base, lease string) func(Gomega, actor) {
	return func(g Gomega, a actor) {
		name := a.name(base)
		g.Expect(e.apiAudit.path).NotTo(BeEmpty(), "the API server keeps no audit log (controlplane.Options.AuditLog)")
		g.Eventually(func(g Gomega) {
			g.Expect(e.apiAudit.refresh()).To(Succeed())
			refused := e.apiAudit.find(func(ev apiAuditEvent) bool {
				return ev.Verb == "create" && ev.ObjectRef != nil && ev.ObjectRef.Resource == "pods" && ev.ObjectRef.Subresource == "" &&
					ev.ResponseStatus != nil && ev.ResponseStatus.Code == 403 &&
					strings.Contains(ev.ResponseStatus.Message, lease) && strings.Contains(ev.ResponseStatus.Message, identityPolicy) &&
					strings.Contains(ev.ResponseStatus.Message, name)
			})
			g.Expect(refused).NotTo(BeEmpty(), "the API server's audit log records a refused pod of %s", name)
		}).WithTimeout(time.Minute).WithPolling(polling).Should(Succeed())
		var pods corev1.PodList
		g.Expect(e.c.List(e.ctx, &pods, client.InNamespace(ctNS), client.MatchingLabels{"app.kubernetes.io/name": name})).To(Succeed())
		g.Expect(pods.Items).To(BeEmpty(), "RUNS: a pod of %s holds the lease", name)
	}
}

// notTheManager: the tenants' roles do not include what the policies take
// for Custos (use on agents/identity).
func (e *containment) notTheManager(t *testing.T) {
	g := NewWithT(t)
	for _, a := range []actor{tenantEditor, agentOwner} {
		sar, err := e.cs.AuthorizationV1().SubjectAccessReviews().Create(e.ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: a.user, Groups: a.groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ctNS, Verb: "use", Group: "custos.dev", Resource: "agents", Subresource: "identity"},
		}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(sar.Status.Allowed).To(BeFalse(), "%s may use agents/identity", a.key)
	}
}

// rbacReported: what admission cannot see is reported. The built-in edit
// ClusterRole lets the tenant's editors impersonate any ServiceAccount of
// the namespace, the agents' too; the DataBoundary says so, naming them.
func (e *containment) rbacReported(t *testing.T) {
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		b := &custosv1alpha1.DataBoundary{}
		g.Expect(e.c.Get(e.ctx, client.ObjectKey{Name: ctTenant}, b)).To(Succeed())
		var cond *metav1.Condition
		for i := range b.Status.Conditions {
			if b.Status.Conditions[i].Type == "TenantRBACContained" {
				cond = &b.Status.Conditions[i]
			}
		}
		g.Expect(cond).NotTo(BeNil(), "condition TenantRBACContained")
		g.Expect(cond.Status).To(Equal(metav1.ConditionFalse), cond.Message)
		g.Expect(cond.Message).To(ContainSubstring(ctEditors))
		g.Expect(cond.Message).To(ContainSubstring("impersonate"))
	}).WithTimeout(30 * time.Second).WithPolling(polling).Should(Succeed())
}

// leasesApart: row 1. Agent invoice's credential reconciler-ledger-api and
// agent invoice-reconciler's credential ledger-api once shared a Secret
// name; now each has its own lease, controlled by its own Agent, mounted
// by its own pods only, and the two reconcilers do not fight.
func (e *containment) leasesApart(t *testing.T) {
	g := NewWithT(t)
	for _, l := range []struct{ agent, lease string }{{victim, victimLease}, {neighbour, neighbourLease}} {
		s := &corev1.Secret{}
		g.Expect(e.c.Get(e.ctx, client.ObjectKey{Namespace: ctNS, Name: l.lease}, s)).To(Succeed(), "the lease of %s", l.agent)
		g.Expect(s.Labels).To(HaveKeyWithValue(custosv1alpha1.AgentLabel, l.agent))
		g.Expect(s.Labels).To(HaveKeyWithValue(custosv1alpha1.AgentUIDLabel, string(e.uid[l.agent])))
		ref := metav1.GetControllerOf(s)
		g.Expect(ref).NotTo(BeNil())
		g.Expect(ref.UID).To(Equal(e.uid[l.agent]))
		for _, p := range agentPods(g, e.c, ctNS, l.agent) {
			for _, v := range p.Spec.Volumes {
				if v.Secret != nil {
					g.Expect(v.Secret.SecretName).To(Equal(l.lease), "pod %s mounts only its own agent's lease", p.Name)
				}
			}
		}
	}
	e.absent(g, newSecret(), "agent-invoice-reconciler-ledger-api")
	issued := func() map[string]int {
		records, err := custosAuditRecords(e.managerLog)
		g.Expect(err).NotTo(HaveOccurred())
		n := map[string]int{}
		for _, r := range records {
			if (r.Action == audit.ActionLeaseIssued || r.Action == audit.ActionLeaseRenewed) && r.Subject != nil {
				n[r.Subject.Name]++
			}
		}
		return n
	}
	before := issued()
	time.Sleep(3 * time.Second)
	after := issued()
	g.Expect(after[victim]).To(Equal(before[victim]), "leases issued to %s in 3s: the reconcilers fight over a lease", victim)
	g.Expect(after[neighbour]).To(Equal(before[neighbour]), "leases issued to %s in 3s: the reconcilers fight over a lease", neighbour)
}

// kubernetesTokenCapped: row 2. The victim asks for a 12h kubernetesToken;
// a copy of a bound token outlives a revocation like an STS session does,
// so its lease is capped like theirs (1h, the manager's default).
func (e *containment) kubernetesTokenCapped(t *testing.T) {
	g := NewWithT(t)
	leases, _, _ := unstructured.NestedSlice(e.agent(g, victim).Object, "status", "leases")
	g.Expect(leases).To(HaveLen(1))
	l := leases[0].(map[string]any)
	issued, err := time.Parse(time.RFC3339, fmt.Sprint(l["issuedAt"]))
	g.Expect(err).NotTo(HaveOccurred())
	expires, err := time.Parse(time.RFC3339, fmt.Sprint(l["expiresAt"]))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(expires.Sub(issued)).To(BeNumerically("<=", time.Hour), "the 12h kubernetesToken lease of %s lasts %s", victim, expires.Sub(issued))
}

// noAmbientIdentity: the ambient-credential case. The neighbour is bound to
// a role in each cloud, in the default identity mode (Leased): its
// ServiceAccount carries no annotation and its pods no label that would
// make a platform's webhook inject a cloud token, and its status says so.
func (e *containment) noAmbientIdentity(t *testing.T) {
	g := NewWithT(t)
	sa := &corev1.ServiceAccount{}
	g.Expect(e.c.Get(e.ctx, client.ObjectKey{Namespace: ctNS, Name: "agent-" + neighbour}, sa)).To(Succeed())
	for k := range sa.Annotations {
		g.Expect(cloudAnnotation(k)).To(BeFalse(), "ServiceAccount %s carries %s=%s", sa.Name, k, sa.Annotations[k])
	}
	for _, p := range agentPods(g, e.c, ctNS, neighbour) {
		g.Expect(p.Labels).NotTo(HaveKey("azure.workload.identity/use"), "pod %s", p.Name)
		for _, v := range p.Spec.Volumes {
			g.Expect(v.Projected == nil || !slices.ContainsFunc(v.Projected.Sources, func(s corev1.VolumeProjection) bool {
				return s.ServiceAccountToken != nil
			})).To(BeTrue(), "pod %s has a projected token", p.Name)
		}
	}
	mode, _, _ := unstructured.NestedString(e.agent(g, neighbour).Object, "status", "identity", "mode")
	g.Expect(mode).To(Equal("Leased"), "status.identity.mode")
}

// nothingLeft: after the decommission, no pod in the namespace runs as the
// retired agent's ServiceAccount (labelled or not), and its
// ServiceAccount, leases and NetworkPolicy are gone.
func (e *containment) nothingLeft(t *testing.T) {
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		var pods corev1.PodList
		g.Expect(e.c.List(e.ctx, &pods, client.InNamespace(ctNS))).To(Succeed())
		for _, p := range pods.Items {
			g.Expect(p.Spec.ServiceAccountName).NotTo(Equal("agent-"+retired), "pod %s runs as the decommissioned agent", p.Name)
		}
		e.absent(g, newServiceAccount(), "agent-"+retired)
		e.absent(g, newSecret(), retiredLease)
		e.absent(g, newNetworkPolicy(), "agent-"+retired)
		e.absent(g, newDeployment(), "agent-"+retired)
	}).WithTimeout(eventually).WithPolling(polling).Should(Succeed())
}

// base64PublicKey is the image signer's public key, for the Secret.
func base64PublicKey() string {
	return base64.StdEncoding.EncodeToString(images.Signer.PublicKeyPEM())
}
