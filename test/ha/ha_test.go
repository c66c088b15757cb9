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

// Package ha tests Custos run as it is deployed: several replicas of the
// manager binary, one leading the controllers, all serving the admission
// webhooks, the metrics endpoint behind the API server's authentication.
package ha

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/fixtures"
	"github.com/custos-dev/custos/test/imagetest"
)

var (
	scheme     = runtime.NewScheme()
	cp         *controlplane.ControlPlane
	k8sClient  client.Client
	managerBin string
	kubeconfig string
)

const (
	tenant    = "ha"
	managerNS = "custos-system"
	// Short leader-election timings, so that a handover is quick to test.
	leaseDuration = 4 * time.Second
	retryPeriod   = 500 * time.Millisecond
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(scheme))
	dir, err := os.MkdirTemp("", "custos-ha-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The agents' image, signed, on loopback: the leader verifies it.
	images, err = imagetest.NewTrust("agents/ha:1.0.0", managerNS, "image-signers")
	if err != nil {
		fmt.Fprintf(os.Stderr, "ha: serving the agents' image: %v\n", err)
		return 1
	}
	defer images.Close()
	if managerBin, err = controlplane.BuildManager("../..", dir); err != nil {
		fmt.Fprintf(os.Stderr, "ha: %v\n", err)
		return 1
	}
	ctx := context.Background()
	cp, err = controlplane.Start(ctx, controlplane.Options{RepoRoot: "../..", Scheme: scheme, Webhooks: true})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ha: %v\n", err)
		return 1
	}
	defer func() { _ = cp.Stop() }()
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, cp.Kubeconfig, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if k8sClient, err = client.New(cp.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: managerNS}}); err != nil {
		fmt.Fprintf(os.Stderr, "ha: %v\n", err)
		return 1
	}
	if err := images.Apply(ctx, k8sClient); err != nil {
		fmt.Fprintf(os.Stderr, "ha: %v\n", err)
		return 1
	}
	return m.Run()
}

var boundaryOnce sync.Once

// newNamespace makes a namespace of the tenant, and the tenant's
// DataBoundary (trusting the suite's signer) the first time; the webhooks
// must be served.
func newNamespace(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	var err error
	boundaryOnce.Do(func() {
		err = k8sClient.Create(ctx, fixtures.DataBoundary(tenant, fixtures.WithImagePolicy(images.Policy())))
	})
	if err != nil {
		t.Fatal(err)
	}
	ns := fixtures.TenantNamespace("ha-", tenant)
	if err := k8sClient.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// startReplica starts one replica of the manager, electing a leader with
// the others and serving its webhooks behind webhooks (on a port of its
// own), or where the API server sends them when webhooks is nil.
func startReplica(t *testing.T, name string, webhooks *proxy, args ...string) *controlplane.Manager {
	t.Helper()
	// A port picked free can be taken by another suite's server before the
	// manager binds it: a start that fails on that is tried again.
	for attempt := 1; ; attempt++ {
		port := cp.Webhook.Port
		if webhooks != nil {
			port = freePort(t)
		}
		logPath := filepath.Join(t.TempDir(), name+".log")
		m, err := cp.StartManager(context.Background(), managerBin, kubeconfig, logPath, append([]string{
			"--leader-elect",
			"--leader-election-namespace=" + managerNS,
			"--leader-elect-lease-duration=" + leaseDuration.String(),
			"--leader-elect-renew-deadline=3s",
			"--leader-elect-retry-period=" + retryPeriod.String(),
			"--webhook-port=" + strconv.Itoa(port),
		}, args...)...)
		if err != nil {
			log, _ := os.ReadFile(logPath)
			if attempt < 3 && strings.Contains(string(log), "address already in use") {
				continue
			}
			t.Fatalf("starting replica %s: %v\n%s", name, err, tail(string(log), 20))
		}
		if webhooks != nil {
			webhooks.addBackend(port)
		}
		t.Cleanup(func() {
			m.Stop()
			if t.Failed() {
				if log, err := os.ReadFile(logPath); err == nil {
					t.Logf("log of replica %s:\n%s", name, tail(string(log), 40))
				}
			}
		})
		return m
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// leads reports whether the replica's log says it acquired the Lease.
func leads(m *controlplane.Manager) bool {
	log, err := os.ReadFile(m.LogPath)
	return err == nil && strings.Contains(string(log), "Successfully acquired lease")
}

// freePort picks a loopback port nobody listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newAgent is an Agent of the suite's tenant running its signed image, one
// replica.
func newAgent(ns, name string) *custosv1alpha1.Agent {
	return fixtures.Agent(ns, name, tenant, fixtures.WithImage(images.Image), fixtures.WithReplicas(1))
}

// TestLeaderHandover: one replica leads; killed, another takes over within
// the Lease's duration and the retry period; stopped gracefully, it hands
// the Lease over at once. The new leader reconciles.
func TestLeaderHandover(t *testing.T) {
	g := NewWithT(t)
	// The proxy keeps the webhooks served by whichever replica is up.
	webhooks := startProxy(t, cp.Webhook.Port)
	a := startReplica(t, "a", webhooks)
	g.Eventually(func() bool { return leads(a) }).WithTimeout(30*time.Second).Should(BeTrue(), "the first replica leads")
	b := startReplica(t, "b", webhooks)
	g.Consistently(func() bool { return leads(b) }).WithTimeout(2*time.Second).Should(BeFalse(), "only one replica leads")

	// Killed: no chance to release the Lease.
	a.Kill()
	killed := time.Now()
	g.Eventually(func() bool { return leads(b) }).WithTimeout(30 * time.Second).WithPolling(50 * time.Millisecond).Should(BeTrue())
	took := time.Since(killed)
	t.Logf("handover after the leader was killed: %s (lease %s + retry %s)", took.Round(10*time.Millisecond), leaseDuration, retryPeriod)
	// The follower takes over once the Lease has not been renewed for its
	// duration, at its next try; client-go jitters the retry period by up
	// to 1.2 times itself. A second's margin for noticing it in the log on a
	// machine busy with other suites (the default lease, 15 s, would still
	// fail this).
	g.Expect(took).To(BeNumerically("<=", leaseDuration+retryPeriod*22/10+time.Second))

	// The new leader reconciles: it verifies the agent's image and runs it
	// pinned by digest.
	ns := newNamespace(t)
	agent := newAgent(ns, "after-handover")
	g.Expect(k8sClient.Create(context.Background(), agent)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := &custosv1alpha1.Agent{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(agent), got)).To(Succeed())
		g.Expect(got.Status.Conditions).NotTo(BeEmpty())
		expectPinned(g, client.ObjectKey{Namespace: got.Namespace, Name: "agent-" + got.Name})
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// Stopped gracefully, the leader releases the Lease: the next replica
	// takes over within a retry period, not a Lease duration.
	c := startReplica(t, "c", webhooks)
	b.Stop()
	stopped := time.Now()
	g.Eventually(func() bool { return leads(c) }).WithTimeout(30 * time.Second).WithPolling(50 * time.Millisecond).Should(BeTrue())
	took = time.Since(stopped)
	t.Logf("handover after the leader stopped gracefully: %s", took.Round(10*time.Millisecond))
	g.Expect(took).To(BeNumerically("<", leaseDuration), "a released Lease does not wait out its duration")
}

// TestAdmissionSurvivesAReplica: both replicas serve the webhooks, so
// Agents keep being admitted while one of them is terminated, as Kubernetes
// terminates a pod it deletes, evicts or rolls (SIGTERM): the replica
// finishes the requests it has and takes no new ones. (A replica that
// crashes outright loses the requests it was answering; their clients see
// an error and retry, as kubectl and GitOps tools do.)
func TestAdmissionSurvivesAReplica(t *testing.T) {
	g := NewWithT(t)
	webhooks := startProxy(t, cp.Webhook.Port)
	a := startReplica(t, "a", webhooks)
	startReplica(t, "b", webhooks)
	ns := newNamespace(t)

	const creates, clients, killAt = 1000, 10, 300
	var done, failed atomic.Int64
	var firstErr atomic.Value
	var killOnce sync.Once // stopping, in fact
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			for i := w; i < creates; i += clients {
				if done.Load() >= killAt {
					killOnce.Do(func() { go a.Stop() })
				}
				err := k8sClient.Create(context.Background(), newAgent(ns, fmt.Sprintf("agent-%04d", i)))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	select {
	case <-a.Exited():
	default:
		t.Fatal("replica a was never stopped")
	}
	g.Expect(failed.Load()).To(BeZero(), "first failure: %v", firstErr.Load())
	var agents custosv1alpha1.AgentList
	g.Expect(k8sClient.List(context.Background(), &agents, client.InNamespace(ns))).To(Succeed())
	g.Expect(agents.Items).To(HaveLen(creates))
}

// TestMetricsNeedAuthorization: the metrics endpoint answers only clients
// the API server authenticates and authorizes for /metrics.
func TestMetricsNeedAuthorization(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	port := freePort(t)
	startReplica(t, "metrics", nil, "--metrics-secure=true", "--metrics-bind-address=127.0.0.1:"+strconv.Itoa(port))
	url := "https://127.0.0.1:" + strconv.Itoa(port) + "/metrics"
	// Something to count.
	g.Expect(k8sClient.Create(ctx, newAgent(newNamespace(t), "counted"))).To(Succeed())

	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())
	token := func(name string) string {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: managerNS}}
		g.Expect(k8sClient.Create(ctx, sa)).To(Succeed())
		tr, err := cs.CoreV1().ServiceAccounts(managerNS).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)},
		}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return tr.Status.Token
	}

	// The manager's certificate is its own, self-signed: the test trusts
	// whatever answers on loopback.
	httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	scrape := func(token string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		g.Expect(err).NotTo(HaveOccurred())
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		// The metrics server may start a moment after the manager is
		// ready.
		var resp *http.Response
		g.Eventually(func() error {
			resp, err = httpc.Do(req)
			return err
		}).WithTimeout(30 * time.Second).Should(Succeed())
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	code, _ := scrape("")
	g.Expect(code).To(Equal(http.StatusUnauthorized), "no token")
	// A workload the API server knows, without the metrics-reader role.
	// (The manager remembers a denial for 30 s, so the allowed scraper
	// below is another one.)
	code, _ = scrape(token("stranger"))
	g.Expect(code).To(Equal(http.StatusForbidden), "a token without the metrics-reader role")
	prometheus := token("prometheus")

	// The role the manifests ship for scrapers.
	role := &rbacv1.ClusterRole{}
	data, err := os.ReadFile("../../config/rbac/metrics_reader_role.yaml")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(yamlToObject(data, role)).To(Succeed())
	g.Expect(k8sClient.Create(ctx, role)).To(Succeed())
	g.Expect(k8sClient.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-custos-metrics"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "prometheus", Namespace: managerNS}},
	})).To(Succeed())
	g.Eventually(func(g Gomega) {
		code, body := scrape(prometheus)
		g.Expect(code).To(Equal(http.StatusOK))
		g.Expect(body).To(ContainSubstring("controller_runtime_reconcile_total"))
		g.Expect(body).To(MatchRegexp(`custos_agents\{phase="[A-Za-z]+",ready="[A-Za-z]+",tenant="ha"\} [1-9]`))
		g.Expect(body).To(ContainSubstring("custos_audit_records_total"))
		// A scrape that reached the API server's authorizer before the
		// binding did is denied, and the denial kept 30 s: outlast it.
	}).WithTimeout(45 * time.Second).Should(Succeed())
}
