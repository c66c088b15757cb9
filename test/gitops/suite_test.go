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

// Package gitops checks Custos the way GitOps tools drive it: the real
// manager binary against a real kube-apiserver with Custos's CRDs, admission
// policies and webhooks; kstatus (Flux, kubectl-wait tooling) and the Argo CD
// health check of docs/argocd read the objects it reconciles; kubectl applies
// config/samples server-side, twice, and prunes. Every agent runs an image
// signed with a key generated here, from a registry on loopback.
package gitops

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/fixtures"
)

// The package's control plane and manager, shared by every test.
var (
	scheme    = runtime.NewScheme()
	k8sClient client.Client
	repoRoot  string
	// healthScript is the Argo CD health check of docs/argocd.
	healthScript string
	kubectl      string
	kubeconfig   string
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(scheme))
}

const (
	eventually = 30 * time.Second
	poll       = 100 * time.Millisecond
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctx := context.Background()
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "gitops: "+format+"\n", args...)
		return 1
	}
	var err error
	if repoRoot, err = filepath.Abs("../.."); err != nil {
		return fail("%v", err)
	}
	assets := os.Getenv(controlplane.AssetsEnv)
	if assets == "" {
		return fail("%s is not set: run with KUBEBUILDER_ASSETS=\"$(hack/controlplane.sh)\"", controlplane.AssetsEnv)
	}
	kubectl = filepath.Join(assets, "kubectl")
	script, err := os.ReadFile(filepath.Join(repoRoot, healthScriptPath))
	if err != nil {
		return fail("reading the Argo CD health check: %v", err)
	}
	healthScript = string(script)

	tmp, err := os.MkdirTemp("", "custos-gitops-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(tmp)

	// The agents' images, signed, on loopback: the manager verifies them.
	err = startImages(tmp)
	if images != nil {
		defer images.Close()
	}
	if err != nil {
		return fail("serving the agents' images: %v", err)
	}

	// The manager as it ships: the binary of cmd/manager, not the
	// reconcilers linked into the test.
	bin, err := controlplane.BuildManager(repoRoot, tmp)
	if err != nil {
		return fail("%v", err)
	}

	cp, err := controlplane.Start(ctx, controlplane.Options{RepoRoot: repoRoot, Scheme: scheme, Webhooks: true})
	if err != nil {
		return fail("starting the control plane: %v", err)
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "gitops: stopping the control plane: %v\n", err)
		}
	}()
	kubeconfig = filepath.Join(tmp, "kubeconfig")
	if err := os.WriteFile(kubeconfig, cp.Kubeconfig, 0o600); err != nil {
		return fail("%v", err)
	}
	if k8sClient, err = client.New(cp.Config, client.Options{Scheme: scheme}); err != nil {
		return fail("%v", err)
	}
	if err := images.Apply(ctx, k8sClient); err != nil {
		return fail("%v", err)
	}

	logPath := filepath.Join(tmp, "manager.log")
	mgr, err := cp.StartManager(ctx, bin, kubeconfig, logPath)
	if err != nil {
		dumpLog(logPath)
		return fail("starting the manager: %v", err)
	}
	defer mgr.Stop()
	if err := waitForWebhooks(ctx); err != nil {
		dumpLog(logPath)
		return fail("%v", err)
	}

	code := m.Run()
	if code != 0 || os.Getenv("CUSTOS_TEST_LOG") != "" {
		dumpLog(logPath)
	}
	select {
	case <-mgr.Exited():
		return fail("the manager exited during the tests: %v", mgr.Err())
	default:
	}
	return code
}

// dumpLog prints the manager's log, to tell why a test failed.
func dumpLog(path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	const tail = 64 << 10
	if len(data) > tail {
		data = data[len(data)-tail:]
	}
	fmt.Fprintf(os.Stderr, "gitops: the manager's log (%s):\n%s\n", path, data)
}

// waitForWebhooks waits until the API server reaches the manager's webhook
// server: a dry-run tenant namespace passes the namespace webhook.
func waitForWebhooks(ctx context.Context) error {
	probe := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   "webhook-probe",
		Labels: map[string]string{custosv1alpha1.TenantLabel: "probe"},
	}}
	var err error
	for range 300 {
		if err = k8sClient.Create(ctx, probe.DeepCopy(), client.DryRunAll); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the webhook server did not answer: %w", err)
}

// runKubectl runs the kubectl built next to kube-apiserver against the
// control plane and returns its standard output, its standard error and
// its exit code.
func runKubectl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Dir = repoRoot
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		return stdout.String(), stderr.String(), exit.ExitCode()
	}
	if err != nil {
		t.Fatalf("running kubectl %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), 0
}

// newBoundary is tenant's DataBoundary: its labelled namespaces, one
// region, egress to 203.0.113.0/24, the tenant's AWS roles, the suite's
// image signer.
func newBoundary(tenant string) *custosv1alpha1.DataBoundary {
	return fixtures.DataBoundary(tenant,
		fixtures.WithEgressCIDRs("203.0.113.0/24"),
		fixtures.WithAWSRoles(fixtures.AWSRoleARN(tenant+"-*")),
		fixtures.WithImagePolicy(images.Policy()))
}

// createBoundary creates tenant's DataBoundary, deleted when the test ends.
func createBoundary(t *testing.T, tenant string) *custosv1alpha1.DataBoundary {
	t.Helper()
	return fixtures.Create(t, k8sClient, newBoundary(tenant))
}

// newAgent is fixtures.Agent running the suite's signed image from the
// loopback registry.
func newAgent(ns, name, tenant string, opts ...fixtures.AgentOption) *custosv1alpha1.Agent {
	return fixtures.Agent(ns, name, tenant, append([]fixtures.AgentOption{fixtures.WithImage(images.Image)}, opts...)...)
}

// get reads obj afresh from the API server into obj.
func get(g Gomega, obj client.Object) {
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
}
