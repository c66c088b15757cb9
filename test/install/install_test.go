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

// Package install installs Custos with its Helm chart and a real helm
// binary into a fresh local control plane, runs the chart's manager (its
// flags, under its ServiceAccount's permissions only) through an Agent's
// whole life, then upgrades the release with a changed CRD and uninstalls
// it.
package install

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/fixtures"
	"github.com/custos-dev/custos/test/imagetest"
)

const (
	release   = "custos"
	namespace = "custos-system"
	tenant    = "acme-install"
	// HelmEnv names the helm binary; make test sets it (hack/helm.sh).
	HelmEnv = "HELM"
	// Service cluster IPs on loopback: the API server dials the webhook
	// Service's cluster IP, where the test's manager listens.
	serviceCIDR = "127.96.0.0/16"
)

var (
	scheme     = runtime.NewScheme()
	helmBin    string
	managerBin string
	kubeconfig string
	cp         *controlplane.ControlPlane
	c          client.Client
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	helmBin = os.Getenv(HelmEnv)
	if helmBin == "" {
		fmt.Fprintf(os.Stderr, "install: %s is not set: run make test, or %s=\"$(hack/helm.sh)\" go test ./test/install/\n", HelmEnv, HelmEnv)
		return 1
	}
	dir, err := os.MkdirTemp("", "custos-install-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The agents' image, signed, on loopback: the manager verifies it.
	images, err = imagetest.NewTrust("agents/install:1.0.0", namespace, "image-signers")
	if err != nil {
		fmt.Fprintf(os.Stderr, "install: serving the agents' image: %v\n", err)
		return 1
	}
	defer images.Close()
	if managerBin, err = controlplane.BuildManager("../..", dir); err != nil {
		fmt.Fprintf(os.Stderr, "install: %v\n", err)
		return 1
	}
	cp, err = controlplane.Start(context.Background(), controlplane.Options{RepoRoot: "../..", Scheme: scheme, Bare: true, ServiceCIDR: serviceCIDR})
	if err != nil {
		fmt.Fprintf(os.Stderr, "install: %v\n", err)
		return 1
	}
	defer func() { _ = cp.Stop() }()
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, cp.Kubeconfig, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if c, err = client.New(cp.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// helm runs the helm binary against the control plane.
func helm(g Gomega, args ...string) string {
	cmd := exec.Command(helmBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+os.TempDir()+"/custos-helm-cache", "HELM_CONFIG_HOME="+os.TempDir()+"/custos-helm-config")
	out, err := cmd.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "helm %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

func kubectl(g Gomega, args ...string) string {
	cmd := exec.Command(filepath.Join(os.Getenv(controlplane.AssetsEnv), "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "kubectl %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

const eventually = 60 * time.Second

func TestHelmInstallUpgradeUninstall(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()

	// Install, as the chart's README says.
	helm(g, "install", release, "../../charts/custos", "--namespace", namespace, "--create-namespace")
	for _, crd := range []string{"agents.custos.dev", "toolsets.custos.dev", "databoundaries.custos.dev"} {
		g.Eventually(func(g Gomega) {
			got := &apiextensionsv1.CustomResourceDefinition{}
			g.Expect(c.Get(ctx, client.ObjectKey{Name: crd}, got)).To(Succeed())
			g.Expect(crdEstablished(got)).To(BeTrue())
		}).WithTimeout(eventually).Should(Succeed(), crd)
	}
	// A client that discovers the kinds the chart brought.
	fresh, err := client.New(cp.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	c = fresh
	deploy := chartDeployment(g)
	g.Expect(deploy.Spec.Replicas).To(HaveValue(Equal(int32(2))))

	// The chart's manager, run here with its flags and under its
	// ServiceAccount: every permission it uses must come from the chart.
	mgr := startChartManager(t, g)

	// The webhook configurations reach it through the chart's Service,
	// with the CA the manager injected.
	g.Eventually(func(g Gomega) {
		var vwcs admissionregistrationv1.ValidatingWebhookConfigurationList
		g.Expect(c.List(ctx, &vwcs, client.MatchingLabels{"app.kubernetes.io/instance": release})).To(Succeed())
		g.Expect(vwcs.Items).To(HaveLen(1))
		for _, w := range vwcs.Items[0].Webhooks {
			g.Expect(w.ClientConfig.CABundle).NotTo(BeEmpty(), w.Name)
		}
	}).WithTimeout(eventually).Should(Succeed())

	// A platform team's boundary trusting its image signer (whose key it
	// keeps in the release's namespace), a tenant namespace, an Agent:
	// admitted, its image verified, onboarded, suspended, deleted, by the
	// chart's manager.
	g.Expect(images.Apply(ctx, c)).To(Succeed())
	g.Eventually(func() error {
		return c.Create(ctx, fixtures.DataBoundary(tenant, fixtures.WithImagePolicy(images.Policy())))
	}).WithTimeout(eventually).Should(Succeed(), "the DataBoundary webhook answers through the chart's Service")
	ns := fixtures.TenantNamespace("agents-", tenant)
	g.Expect(c.Create(ctx, ns)).To(Succeed())

	rogue := newAgent(ns.Name, "rogue")
	rogue.Labels[custosv1alpha1.TenantLabel] = "someone-else"
	// Discovery, and the admission policies that match Agents, may lag the
	// CRDs' establishment for a moment.
	g.Eventually(func() bool {
		err = c.Create(ctx, rogue)
		return meta.IsNoMatchError(err) || err != nil && strings.Contains(err.Error(), "There can be a delay between when CustomResourceDefinitions are created")
	}).WithTimeout(eventually).Should(BeFalse())
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "the chart's webhooks refuse a cross-tenant Agent: %v", err)

	agent := newAgent(ns.Name, "installed")
	g.Expect(c.Create(ctx, agent)).To(Succeed())
	childKey := client.ObjectKey{Namespace: ns.Name, Name: "agent-installed"}
	g.Eventually(func(g Gomega) {
		g.Expect(fixtures.MarkRolledOut(c, childKey.Namespace, childKey.Name)).To(Succeed())
		expectReady(g, agent, custosv1alpha1.SucceededReason)
	}).WithTimeout(eventually).Should(Succeed())
	expectPinned(g, childKey)
	g.Expect(c.Patch(ctx, agent, client.RawPatch("application/merge-patch+json",
		[]byte(`{"spec":{"lifecycle":{"state":"Suspended"}}}`)))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(fixtures.MarkRolledOut(c, childKey.Namespace, childKey.Name)).To(Succeed())
		expectReady(g, agent, custosv1alpha1.SuspendedBySpecReason)
	}).WithTimeout(eventually).Should(Succeed())
	g.Expect(c.Delete(ctx, agent)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(agent), &custosv1alpha1.Agent{}))).To(BeTrue())
		for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.ServiceAccount{}} {
			g.Expect(apierrors.IsNotFound(c.Get(ctx, childKey, obj))).To(BeTrue(), "%T left behind", obj)
		}
	}).WithTimeout(eventually).Should(Succeed())

	// One more Agent, to see what uninstalling does to Agents.
	survivor := newAgent(ns.Name, "survivor")
	g.Expect(c.Create(ctx, survivor)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "agent-survivor"}, &corev1.ServiceAccount{})).To(Succeed())
	}).WithTimeout(eventually).Should(Succeed())
	mgr.Stop()
	log, err := os.ReadFile(mgr.LogPath)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(log)).NotTo(ContainSubstring("forbidden"), "the chart's RBAC must cover everything the manager does")

	// Upgrade with a changed CRD: CRDs first (Helm never upgrades them),
	// then the release.
	next := t.TempDir()
	g.Expect(os.CopyFS(next, os.DirFS("../../charts/custos"))).To(Succeed())
	crdFile := filepath.Join(next, "crds", "custos.dev_agents.yaml")
	crd, err := os.ReadFile(crdFile)
	g.Expect(err).NotTo(HaveOccurred())
	changed := strings.Replace(string(crd), "additionalPrinterColumns:\n", "additionalPrinterColumns:\n    - jsonPath: .spec.owner.contact\n      name: Contact\n      priority: 1\n      type: string\n", 1)
	g.Expect(changed).NotTo(Equal(string(crd)), "the CRD has printer columns to add one to")
	g.Expect(os.WriteFile(crdFile, []byte(changed), 0o644)).To(Succeed())
	kubectl(g, "apply", "--server-side", "--force-conflicts", "-f", filepath.Join(next, "crds"))
	helm(g, "upgrade", release, next, "--namespace", namespace, "--reuse-values")
	g.Eventually(func(g Gomega) {
		got := &apiextensionsv1.CustomResourceDefinition{}
		g.Expect(c.Get(ctx, client.ObjectKey{Name: "agents.custos.dev"}, got)).To(Succeed())
		g.Expect(got.Spec.Versions[0].AdditionalPrinterColumns).To(ContainElement(HaveField("Name", "Contact")))
	}).WithTimeout(eventually).Should(Succeed())
	g.Expect(helm(g, "status", release, "--namespace", namespace)).To(ContainSubstring("REVISION: 2"))
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(survivor), &custosv1alpha1.Agent{})).To(Succeed(), "Agents survive an upgrade")

	// Uninstall: the release's objects go; CRDs and Agents stay.
	helm(g, "uninstall", release, "--namespace", namespace)
	g.Eventually(func(g Gomega) {
		var deploys appsv1.DeploymentList
		g.Expect(c.List(ctx, &deploys, client.InNamespace(namespace))).To(Succeed())
		g.Expect(deploys.Items).To(BeEmpty())
		var vwcs admissionregistrationv1.ValidatingWebhookConfigurationList
		g.Expect(c.List(ctx, &vwcs, client.MatchingLabels{"app.kubernetes.io/instance": release})).To(Succeed())
		g.Expect(vwcs.Items).To(BeEmpty())
		var roles rbacv1.ClusterRoleList
		g.Expect(c.List(ctx, &roles, client.MatchingLabels{"app.kubernetes.io/instance": release})).To(Succeed())
		g.Expect(roles.Items).To(BeEmpty())
	}).WithTimeout(eventually).Should(Succeed())
	g.Expect(c.Get(ctx, client.ObjectKey{Name: "agents.custos.dev"}, &apiextensionsv1.CustomResourceDefinition{})).To(Succeed(), "Helm keeps CRDs")
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(survivor), &custosv1alpha1.Agent{})).To(Succeed(), "Agents stay")
}

func crdEstablished(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, cond := range crd.Status.Conditions {
		if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// chartDeployment is the manager Deployment the release installed.
func chartDeployment(g Gomega) *appsv1.Deployment {
	var list appsv1.DeploymentList
	g.Expect(c.List(context.Background(), &list, client.InNamespace(namespace),
		client.MatchingLabels{"app.kubernetes.io/instance": release})).To(Succeed())
	g.Expect(list.Items).To(HaveLen(1))
	return &list.Items[0]
}

// startChartManager runs the manager binary as the chart's Deployment would,
// as the chart's ServiceAccount (controlplane.StartChartManager).
func startChartManager(t *testing.T, g Gomega) *controlplane.Manager {
	m, err := cp.StartChartManager(context.Background(), c, namespace, release, managerBin, t.TempDir())
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(m.Stop)
	return m
}

// newAgent is an Agent of the suite's tenant running its signed image.
func newAgent(ns, name string) *custosv1alpha1.Agent {
	return fixtures.Agent(ns, name, tenant, fixtures.WithImage(images.Image))
}

func expectReady(g Gomega, agent *custosv1alpha1.Agent, reason string) {
	got := &custosv1alpha1.Agent{}
	g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(agent), got)).To(Succeed())
	var ready *metav1.Condition
	for i := range got.Status.Conditions {
		if got.Status.Conditions[i].Type == custosv1alpha1.ReadyCondition {
			ready = &got.Status.Conditions[i]
		}
	}
	g.Expect(ready).NotTo(BeNil())
	g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), ready.Message)
	g.Expect(ready.Reason).To(Equal(reason))
}
