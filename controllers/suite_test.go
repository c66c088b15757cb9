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

package controllers

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"crypto/ed25519"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/imageverify"
	"github.com/custos-dev/custos/internal/lease"
	custoswebhook "github.com/custos-dev/custos/internal/webhook"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/fixtures"
	"github.com/custos-dev/custos/test/imagetest"
	"github.com/custos-dev/custos/test/leasedoubles"
)

// The suite's control plane: a real kube-apiserver and etcd with Custos's
// CRDs and admission policies installed, shared by every test of the package.
var (
	testScheme = runtime.NewScheme()
	k8sClient  client.Client
	cp         *controlplane.ControlPlane
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(testScheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(testScheme))
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) (code int) {
	ctx := context.Background()
	var err error
	cp, err = controlplane.Start(ctx, controlplane.Options{RepoRoot: "..", Scheme: testScheme, Webhooks: true})
	if err != nil {
		fmt.Fprintf(os.Stderr, "controllers: cannot start the control plane: %v\n", err)
		return 1
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "controllers: stopping the control plane: %v\n", err)
		}
	}()
	k8sClient, err = client.New(cp.Config, client.Options{Scheme: testScheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "controllers: %v\n", err)
		return 1
	}

	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.Level(logLevel()))))
	closeAudit, err := openAudit()
	if err != nil {
		fmt.Fprintf(os.Stderr, "controllers: opening the audit trail: %v\n", err)
		return 1
	}
	defer closeAudit()
	// An STS of the suite's own, on loopback, trusting what tests tell it.
	if testSTS, err = leasedoubles.NewSTS(ctx, cp.Config); err != nil {
		fmt.Fprintf(os.Stderr, "controllers: starting the STS double: %v\n", err)
		return 1
	}
	defer testSTS.Close()
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		fmt.Fprintf(os.Stderr, "controllers: %v\n", err)
		return 1
	}
	tokens := lease.NewTokenSource(cs)
	testLeaseBackends = map[string]lease.Backend{
		lease.BackendKubernetesToken: &lease.KubernetesToken{Tokens: tokens},
		lease.BackendAWSSTS:          &lease.AWSSTS{Tokens: tokens, Endpoint: testSTS.URL, Region: "eu-west-1"},
	}
	// Deferred before the manager's stop, so run after it: every record of
	// the suite, closed by a final checkpoint, passes the verifier.
	defer func() {
		if code != 0 {
			return
		}
		if err := auditLog.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "controllers: closing the audit trail: %v\n", err)
			code = 1
			return
		}
		if len(auditRecords.Records()) == 0 {
			return // nothing was recorded (a run of a few tests)
		}
		report, err := audit.Verify(auditDir, audit.VerifyOptions{Key: auditKey})
		if err != nil {
			fmt.Fprintf(os.Stderr, "controllers: the suite's audit trail does not verify: %v\n", err)
			code = 1
			return
		}
		fmt.Printf("controllers: audit trail verified: %d records, %d checkpoints\n", report.Records, report.Checkpoints)
	}()
	// The suite's registry, holding the image every test agent runs,
	// signed by a key every test boundary trusts.
	closeImages, err := startImages(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "controllers: starting the image registry: %v\n", err)
		return 1
	}
	defer closeImages()
	if err := startManager(); err != nil {
		fmt.Fprintf(os.Stderr, "controllers: %v\n", err)
		return 1
	}
	defer func() { stopManager() }()
	if err := k8sClient.Create(ctx, sharedBoundary()); err != nil {
		fmt.Fprintf(os.Stderr, "controllers: %v\n", err)
		return 1
	}
	return m.Run()
}

// stopManager stops the running manager and waits until it has stopped.
var stopManager func()

// startManager starts the reconcilers as they run in the manager binary,
// with a clock the tests move and a short sweep interval; opts change the
// suite's options (testOptions) for this manager.
func startManager(opts ...func(*Options)) error {
	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{
		Scheme:                 testScheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  CacheOptions(),
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: cp.Webhook.Host, Port: cp.Webhook.Port, CertDir: cp.Webhook.CertDir,
		}),
		// Tests restart the manager; its controllers keep their names.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := testOptions()
	for _, change := range opts {
		change(&o)
	}
	if err := SetupWithManager(ctx, mgr, o); err != nil {
		cancel()
		return err
	}
	if err := custoswebhook.SetupWithManager(mgr, custoswebhook.Options{Clock: testClock, Audit: auditLog}); err != nil {
		cancel()
		return err
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	// Every request the webhooks govern fails until they are served.
	if err := waitForWebhooks(ctx); err != nil {
		stopManager = func() { cancel(); <-done }
		return err
	}
	stopManager = func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintf(os.Stderr, "controllers: the manager stopped with an error: %v\n", err)
		}
	}
	return nil
}

// testOptions are the reconcilers' options in the suite: a clock the
// tests move, a short sweep interval, the suite's audit trail, lease
// backends and image registry.
func testOptions() Options {
	return Options{
		TrustDomain:   testTrustDomain,
		SweepInterval: 2 * time.Second,
		Clock:         testClock,
		Audit:         auditLog,
		Leases:        LeaseOptions{Backends: testLeaseBackends},
		// Key material is read again every 2 s, so tests see a rotated key
		// without waiting a minute.
		Images: ImageOptions{PolicyTTL: 2 * time.Second, Verifier: &imageverify.Verifier{
			Clock: testClock,
			RemoteOptions: []remote.Option{
				// Test images with made-up registries never leave the machine.
				remote.WithTransport(imagetest.LoopbackOnly()),
				remote.WithRetryBackoff(remote.Backoff{Duration: 100 * time.Millisecond, Factor: 1, Steps: 1}),
			},
		}},
	}
}

const testTrustDomain = "custos.test"

// testClock is the reconcilers' clock; tests step it past expiries.
var testClock = clocktesting.NewFakeClock(time.Now())

// logLevel is the manager's log verbosity in tests: silent unless
// CUSTOS_TEST_LOG is set (to a zap level such as -1 for debug, 2 for
// errors). Tests assert on what users see, not on logs; and deleting test
// namespaces makes the event recorder log errors that mean nothing.
func logLevel() int {
	if v := os.Getenv("CUSTOS_TEST_LOG"); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		return 0
	}
	return int(zapcore.FatalLevel)
}

func keyOf(obj client.Object) client.ObjectKey {
	return client.ObjectKeyFromObject(obj)
}

// waitForWebhooks waits until the API server gets answers from the webhook
// server: a dry-run namespace with a tenant label passes the namespace
// webhook.
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

// sharedBoundary is acme-finance's DataBoundary, as in config/samples, for
// the tests that write manifests the way a user would.
func sharedBoundary() *custosv1alpha1.DataBoundary {
	return fixtures.DataBoundary("acme-finance",
		fixtures.WithRegions("eu-west-1", "eu-central-1"),
		fixtures.WithEgress(custosv1alpha1.EgressPolicy{CIDRs: []string{"203.0.113.0/24"}, Namespaces: []string{"finance-agents"}}),
		fixtures.WithAWSRoles(fixtures.AWSRoleARN("acme-finance-*")),
		fixtures.WithImagePolicy(trustedImages()))
}

// The suite's audit trail, as the manager keeps it with --audit-sink=file
// and a signing key: a signed segment store in a temporary directory, and a
// memory copy the tests read records from.
var (
	auditLog     *audit.Log
	auditRecords *audit.MemorySink
	auditDir     string
	auditKey     ed25519.PublicKey
)

func openAudit() (func(), error) {
	dir, err := os.MkdirTemp("", "custos-audit-")
	if err != nil {
		return nil, err
	}
	store, err := audit.OpenSegmentStore(dir, audit.StoreOptions{})
	if err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	signer, err := audit.NewSigner(priv)
	if err != nil {
		return nil, err
	}
	auditRecords = audit.NewMemorySink()
	auditLog, err = audit.New(audit.Options{
		Sinks:              []audit.Sink{store, auditRecords},
		Signer:             signer,
		CheckpointEvery:    50,
		CheckpointInterval: time.Second,
		BufferDir:          dir + "-buffer",
		Registerer:         prometheus.NewRegistry(),
		Logger:             logr.Discard(),
	})
	if err != nil {
		return nil, err
	}
	auditDir, auditKey = dir, pub
	return func() {
		_ = auditLog.Close()
		_ = os.RemoveAll(dir)
		_ = os.RemoveAll(dir + "-buffer")
	}, nil
}

// The suite's lease backends: Kubernetes tokens from the API server, AWS STS
// from a double that verifies the agents' tokens against it.
var (
	testSTS           *leasedoubles.STS
	testLeaseBackends map[string]lease.Backend
)
