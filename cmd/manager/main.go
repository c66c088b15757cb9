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

// Command manager is the Custos operator: its controllers and admission
// webhooks in one process.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
	// Agents' schedules name IANA time zones; the image may have no
	// zoneinfo.
	_ "time/tzdata"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/controllers"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/boundary"
	"github.com/custos-dev/custos/internal/breaker"
	"github.com/custos-dev/custos/internal/certs"
	"github.com/custos-dev/custos/internal/evaluate"
	"github.com/custos-dev/custos/internal/lease"
	"github.com/custos-dev/custos/internal/netpol"
	custoswebhook "github.com/custos-dev/custos/internal/webhook"
)

// leaderElectionID names the Lease replicas of the manager compete for.
const leaderElectionID = "custos-manager.custos.dev"

// The secure metrics endpoint authenticates and authorizes its clients with
// the API server.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Leader election: the replicas hold a Lease in the manager's own namespace.
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete,namespace=custos-system
// The audit trail's signing key (--audit-signing-key-secret) is read once at start-up.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get,namespace=custos-system

func main() {
	var (
		metricsAddr      string
		probeAddr        string
		leaderElect      bool
		webhookHost      string
		webhookPort      int
		webhookCertDir   string
		leaderNamespace  string
		trustDomain      string
		sweepInterval    time.Duration
		concurrency      int
		qps              float64
		metricsSecure    bool
		renewPercent     int
		maxLeaseTTL      time.Duration
		reverifyInterval time.Duration
		awsRegion        string
		awsEndpoint      string
		azureAuthority   string
		leaseDuration    time.Duration
		renewDeadline    time.Duration
		retryPeriod      time.Duration
		burst            int
		enableWebhooks   bool
		certSecret       string
		webhookService   string
		validatingHooks  string
		mutatingHooks    string
		pprofAddr        string
		gatewayNamespace string
		gatewayLabels    string
		gatewayPort      int
		gatewayCreds     string
		breakerEnabled   bool
		stsNamespace     string
		stsLabels        string
		stsPort          int
	)
	// --kubeconfig is registered by controller-runtime's config loading.
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "Address the Prometheus metrics endpoint binds to; 0 disables it.")
	flag.BoolVar(&metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS to clients the API server authenticates (TokenReview) and authorizes (SubjectAccessReview: get on the non-resource URL /metrics); false serves plain HTTP to anyone who can connect.")
	flag.DurationVar(&leaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a leader's Lease holds without renewal before another replica may take over.")
	flag.DurationVar(&renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew its Lease before it stops leading.")
	flag.DurationVar(&retryPeriod, "leader-elect-retry-period", 2*time.Second, "How often replicas try to acquire or renew the Lease.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Address Go's pprof profiles (/debug/pprof/) are served on, as plain HTTP to anyone who can connect, so bind it to loopback (127.0.0.1:8082) and port-forward; empty disables them.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz endpoints bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader with a Lease, so that only one replica reconciles at a time.")
	flag.StringVar(&leaderNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease; the manager's own namespace when empty.")
	flag.StringVar(&webhookHost, "webhook-host", "", "Address the admission webhook server binds to; every interface when empty.")
	flag.IntVar(&webhookPort, "webhook-port", 9443, "Port the admission webhook server listens on.")
	flag.StringVar(&webhookCertDir, "webhook-cert-dir", "", "Directory holding tls.crt and tls.key for the webhook server; a temporary directory when empty.")
	flag.StringVar(&trustDomain, "trust-domain", controllers.DefaultTrustDomain, "SPIFFE trust domain of the agents' IDs: spiffe://<trust domain>/ns/<namespace>/sa/<service account>.")
	flag.DurationVar(&sweepInterval, "sweep-interval", controllers.DefaultSweepInterval, "How often the sweeper looks for objects left behind by Agents that are gone; it also sweeps at start-up.")
	flag.IntVar(&concurrency, "concurrency", controllers.DefaultConcurrency, "How many Agents are reconciled at once.")
	flag.Float64Var(&qps, "kube-api-qps", 50, "Requests per second the manager may send to the API server.")
	flag.IntVar(&burst, "kube-api-burst", 100, "Requests the manager may send to the API server in a burst above --kube-api-qps.")
	flag.BoolVar(&enableWebhooks, "enable-webhooks", true, "Serve the admission webhooks. Turn off only to run the controllers alone (for example while debugging); the webhook configurations must then be removed too.")
	flag.StringVar(&certSecret, "webhook-cert-secret", "custos-webhook-tls", "Secret in the manager's namespace where the manager keeps the webhook CA and serving certificate, rotating them and injecting the CA into the webhook configurations; empty leaves certificates to someone else (cert-manager, or --webhook-cert-dir prepared by hand).")
	flag.StringVar(&webhookService, "webhook-service", "custos-webhook", "Service in front of the webhook server; its DNS names go into the serving certificate.")
	flag.StringVar(&validatingHooks, "validating-webhook-configuration", "custos-validating-webhook-configuration", "ValidatingWebhookConfiguration whose caBundle the manager keeps.")
	flag.StringVar(&mutatingHooks, "mutating-webhook-configuration", "custos-mutating-webhook-configuration", "MutatingWebhookConfiguration whose caBundle the manager keeps.")
	flag.IntVar(&renewPercent, "lease-renew-percent", controllers.DefaultRenewPercent, "Renew a credential lease after this share of its life (at most 90), less a jitter of up to a tenth of its life.")
	flag.DurationVar(&maxLeaseTTL, "lease-max-ttl", controllers.DefaultMaxLeaseTTL, "Cap on the TTL of every credential lease, whatever its credential asks for: AWS STS sessions and Entra ID access tokens cannot be revoked once issued (revoking one deletes its Secret, but a copy stays valid until it expires), and a Kubernetes token, revoked with its Secret, may have been exchanged for a cloud credential that is not.")
	flag.DurationVar(&maxLeaseTTL, "lease-max-unrevocable-ttl", controllers.DefaultMaxLeaseTTL, "Deprecated: use --lease-max-ttl, which it sets (the cap now applies to kubernetesToken leases too).")
	flag.DurationVar(&reverifyInterval, "image-reverify-interval", controllers.DefaultReverifyInterval, "How often a running agent's image is resolved and its signatures verified again (a moved tag, a removed signature or a signer rotated out is noticed within it); a change to a DataBoundary's image policy is acted on at once.")
	flag.StringVar(&awsRegion, "aws-region", "", "AWS region of the STS endpoint awsSTS leases are issued from; empty leaves awsSTS credentials unissued (BackendNotConfigured).")
	flag.StringVar(&awsEndpoint, "aws-sts-endpoint", "", "STS endpoint URL; empty: the region's own.")
	flag.StringVar(&azureAuthority, "azure-authority-host", "", "Entra ID authority host azureToken leases are issued from; empty: Azure's public cloud.")
	flag.StringVar(&gatewayNamespace, "gateway-namespace", "", "Namespace custos-gateway's pods run in. Set, Custos runs in gateway mode: an Active agent may reach DNS, custos-gateway and custos-sts only, never its Toolsets' endpoints (every tool call goes through the gateway), and the pods of each Toolset's in-cluster endpoint admit custos-gateway's pods alone. Needs --gateway-pod-labels and --sts-namespace; empty: agents reach their Toolsets' endpoints themselves.")
	flag.StringVar(&gatewayLabels, "gateway-pod-labels", "", "Labels that select custos-gateway's pods in --gateway-namespace, as key=value,key=value.")
	flag.BoolVar(&breakerEnabled, "breaker", true, "Run the breaker (the leader): read what each agent takes through custos-gateway (the replicas' usage reports in --gateway-credentials-namespace) and freeze an agent that stops behaving like itself (AgentFreeze, trigger Trend or Ratio), after 7 days of learning it.")
	flag.StringVar(&gatewayCreds, "gateway-credentials-namespace", "", "Namespace where the leases of gateway-only credentials (an Agent's spec.credentials[].gateway) are kept: one only the manager and custos-gateway may read, never the agents' own (custos-gateway sets such a lease on the calls to its Toolset; the agent's pods never hold it). Empty: an Agent asking for one gets CredentialsIssued False, GatewayNotConfigured.")
	flag.IntVar(&gatewayPort, "gateway-port", 8443, "Port custos-gateway's pods listen on: their container port, not their Service's (NetworkPolicies see traffic after a Service has sent it on to a pod).")
	flag.StringVar(&stsNamespace, "sts-namespace", "", "Namespace custos-sts's pods run in. Set, an Active agent may reach them, to exchange tokens. Needs --sts-pod-labels; empty: custos-sts does not run.")
	flag.StringVar(&stsLabels, "sts-pod-labels", "", "Labels that select custos-sts's pods in --sts-namespace, as key=value,key=value.")
	flag.IntVar(&stsPort, "sts-port", 8443, "Port custos-sts's pods listen on: their container port, not their Service's.")
	var evaluateTrails []string
	flag.Func("evaluate-trail", "An audit trail the evaluator follows (the leader), as <log ID>=<directory of its segment store>, e.g. custos-gateway/gw-0=/var/lib/custos-gateway/audit; repeat it for each trail. The manager's own trail is followed too when --audit-sink writes files. Its rubrics' hits open Findings.", func(v string) error {
		id, dir, ok := strings.Cut(v, "=")
		if !ok || id == "" || dir == "" {
			return fmt.Errorf("want <log ID>=<directory>, got %q", v)
		}
		evaluateTrails = append(evaluateTrails, v)
		return nil
	})
	var gatewayFeedCA, gatewayFeedName, stsFeedCA, stsFeedName string
	flag.StringVar(&gatewayFeedCA, "evaluate-gateway-ca-file", "", "The CA of custos-gateway's serving certificate. Set (with --gateway-namespace and --gateway-pod-labels), the evaluator reads each custos-gateway pod's audit trail from its feed (https://<pod IP>:--gateway-port"+audit.FeedPath+"), verifying its certificate for --evaluate-gateway-server-name, with a token of audience "+audit.FeedAudience+" for the manager's ServiceAccount.")
	flag.StringVar(&gatewayFeedName, "evaluate-gateway-server-name", "", "The name custos-gateway's certificate is verified for: its Service's DNS name.")
	flag.StringVar(&stsFeedCA, "evaluate-sts-ca-file", "", "The CA of custos-sts's serving certificate: as --evaluate-gateway-ca-file, for custos-sts's pods (--sts-namespace, --sts-pod-labels, --sts-port).")
	flag.StringVar(&stsFeedName, "evaluate-sts-server-name", "", "The name custos-sts's certificate is verified for: its Service's DNS name.")
	var evaluateInterval, findingRetention, findingReviewWithin time.Duration
	flag.DurationVar(&evaluateInterval, "evaluate-interval", evaluate.DefaultInterval, "How often the evaluator reads what its trails added.")
	var judgeCA string
	var judgeInterval time.Duration
	flag.StringVar(&judgeCA, "judge-ca-file", "", "CAs (PEM) that verify the judges' endpoints (a DataBoundary's spec.judge), besides the system's.")
	flag.DurationVar(&judgeInterval, "judge-interval", evaluate.DefaultJudgeInterval, "How often the judge (the leader) asks the tenants' judges about their open Findings and sampled calls.")
	flag.DurationVar(&findingRetention, "finding-retention", controllers.DefaultFindingRetention, "How long a closed (Confirmed or Dismissed) Finding is kept before the manager deletes it; its opening and reviews stay on the audit trail.")
	flag.DurationVar(&findingReviewWithin, "finding-review-within", controllers.DefaultFindingReviewWithin, "How long an open Finding may wait for a person before custos_findings_overdue counts it (and the chart's CustosFindingsOverdue alert fires).")
	var auditCfg audit.Config
	auditCfg.AddFlags(flag.CommandLine)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	if reverifyInterval < time.Minute {
		log.Error(nil, "--image-reverify-interval must be at least 1m: every agent's image is resolved at the registry that often", "got", reverifyInterval)
		os.Exit(1)
	}
	if maxLeaseTTL < 15*time.Minute {
		log.Error(nil, "--lease-max-ttl must be at least 15m: AWS STS issues no shorter session", "got", maxLeaseTTL)
		os.Exit(1)
	}

	gateway, err := peerFlags("gateway", gatewayNamespace, gatewayLabels, gatewayPort)
	if err != nil {
		log.Error(err, "Invalid custos-gateway flags")
		os.Exit(1)
	}
	sts, err := peerFlags("sts", stsNamespace, stsLabels, stsPort)
	if err != nil {
		log.Error(err, "Invalid custos-sts flags")
		os.Exit(1)
	}
	if gateway != nil && sts == nil {
		log.Error(nil, "--gateway-namespace needs --sts-namespace and --sts-pod-labels: agents get their tokens for custos-gateway from custos-sts, so they must reach it")
		os.Exit(1)
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "Unable to load a connection to the API server; pass --kubeconfig when running outside a cluster")
		os.Exit(1)
	}
	cfg.QPS, cfg.Burst = float32(qps), burst
	if webhookCertDir == "" {
		webhookCertDir = filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs")
	}

	metricsOpts := metricsserver.Options{BindAddress: metricsAddr}
	if metricsSecure {
		metricsOpts.SecureServing = true
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   controllers.CacheOptions(),
		Metrics:                 metricsOpts,
		LeaseDuration:           &leaseDuration,
		RenewDeadline:           &renewDeadline,
		RetryPeriod:             &retryPeriod,
		HealthProbeBindAddress:  probeAddr,
		PprofBindAddress:        pprofAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        leaderElectionID,
		LeaderElectionNamespace: leaderNamespace,
		// Hand the Lease over at once on a graceful shutdown instead of
		// making the next leader wait for it to expire.
		LeaderElectionReleaseOnCancel: true,
		WebhookServer: webhook.NewServer(webhook.Options{
			Host:    webhookHost,
			Port:    webhookPort,
			CertDir: webhookCertDir,
		}),
	})
	if err != nil {
		log.Error(err, "Unable to create the manager")
		os.Exit(1)
	}

	ctx := ctrl.SetupSignalHandler()
	// The audit trail opens before anything can decide: no decision goes
	// unrecorded. It closes (with a final signed checkpoint) after the
	// manager has stopped.
	auditCfg.Registerer = metrics.Registry
	auditLog, err := audit.Open(ctx, auditCfg, mgr.GetAPIReader(), ctrl.Log.WithName("audit"))
	if err != nil {
		log.Error(err, "Unable to open the audit trail")
		os.Exit(1)
	}
	// fail stops the manager after the audit trail is open: it closes the
	// trail first, which os.Exit would not.
	fail := func(err error, msg string) {
		log.Error(err, msg)
		if err := auditLog.Close(); err != nil {
			log.Error(err, "Closing the audit trail")
		}
		os.Exit(1)
	}
	tokens, err := kubernetes.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		fail(err, "Unable to make the TokenRequest client")
	}
	tokenSource := lease.NewTokenSource(tokens)
	self, err := managerServiceAccount(ctx, tokens)
	if err != nil {
		// Not fatal: the report then names the manager's own grants too.
		log.Error(err, "Unable to tell which ServiceAccount the manager runs as; the DataBoundaries' RBAC report will include its grants")
	} else {
		log.Info("The DataBoundaries' RBAC report leaves out the manager's ServiceAccount", "serviceAccount", self)
	}
	backends := map[string]lease.Backend{
		lease.BackendKubernetesToken: &lease.KubernetesToken{Tokens: tokenSource},
		lease.BackendAzureToken:      &lease.AzureToken{Tokens: tokenSource, AuthorityHost: azureAuthority},
	}
	if awsRegion != "" {
		backends[lease.BackendAWSSTS] = &lease.AWSSTS{Tokens: tokenSource, Region: awsRegion, Endpoint: awsEndpoint}
	}
	if err := controllers.SetupWithManager(ctx, mgr, controllers.Options{
		TrustDomain:           trustDomain,
		SweepInterval:         sweepInterval,
		Concurrency:           concurrency,
		Audit:                 auditLog,
		ManagerServiceAccount: self,
		FindingRetention:      findingRetention,
		FindingReviewWithin:   findingReviewWithin,
		Gateway:               gateway,
		STS:                   sts,
		Images:                controllers.ImageOptions{ReverifyInterval: reverifyInterval},
		Leases: controllers.LeaseOptions{
			Backends:     backends,
			RenewPercent: renewPercent,
			MaxTTL:       maxLeaseTTL,

			GatewayNamespace: gatewayCreds,
		},
	}); err != nil {
		fail(err, "Unable to set up the controllers")
	}

	// The breaker: the leader reads what each agent took through the
	// gateway replicas (their usage reports in the gateway's namespace)
	// and freezes an agent that stops behaving like itself.
	if gatewayCreds != "" && breakerEnabled {
		host, _ := os.Hostname()
		runner := &breaker.Runner{Reports: mgr.GetAPIReader(), Agents: mgr.GetClient(), Client: mgr.GetClient(),
			Namespace: gatewayCreds, Params: breaker.DefaultDetectorParams, Audit: auditLog, AuditLogID: "custos-manager/" + host,
			Log: ctrl.Log.WithName("breaker"), Metrics: breaker.NewMetrics(metrics.Registry)}
		// Its baselines are kept in the manager's own namespace, for the
		// next leader.
		if ns := cmp.Or(leaderNamespace, os.Getenv("POD_NAMESPACE")); ns != "" {
			runner.Store = &breaker.StateStore{Reader: mgr.GetAPIReader(), Client: mgr.GetClient(), Namespace: ns, Log: runner.Log}
		} else {
			log.Info("The breaker keeps its baselines in memory only (a new leader learns every agent again): set POD_NAMESPACE or --leader-election-namespace")
		}
		if err := mgr.Add(runner); err != nil {
			fail(err, "Unable to add the breaker")
		}
	}

	// The evaluator: the leader follows the audit trails and opens
	// Findings for people to review.
	trails := evaluatorTrails(evaluateTrails, auditCfg)
	feeds, err := evaluatorFeeds(gateway, gatewayFeedCA, gatewayFeedName, sts, stsFeedCA, stsFeedName)
	if err != nil {
		fail(err, "Invalid evaluator flags")
	}
	if len(trails) > 0 || len(feeds) > 0 {
		ns := cmp.Or(leaderNamespace, os.Getenv("POD_NAMESPACE"))
		if ns == "" {
			fail(errors.New("the evaluator needs POD_NAMESPACE or --leader-election-namespace"), "Unable to add the evaluator")
		}
		runner := &evaluate.Runner{Reader: mgr.GetAPIReader(), Client: mgr.GetClient(), Namespace: ns, Trails: trails, Interval: evaluateInterval,
			Audit: auditLog, Actor: controllers.ControllerActor, Recorder: mgr.GetEventRecorder("custos"), Log: ctrl.Log.WithName("evaluator")}
		if len(feeds) > 0 {
			if self.Name == "" {
				fail(errors.New("the manager does not run as a ServiceAccount (out of cluster?)"), "Unable to read the components' audit feeds")
			}
			token := &audit.FeedToken{Client: mgr.GetClient(), Namespace: self.Namespace, SA: self.Name}
			runner.Discover = evaluate.FeedTrails(mgr.GetAPIReader(), token.Get, feeds...)
		}
		// The tenants' judges (DataBoundary spec.judge) read the Findings
		// and a sample of the calls: they annotate, nothing else.
		judgeHTTP, err := evaluate.JudgeHTTPClient(judgeCA)
		if err != nil {
			fail(err, "Invalid --judge-ca-file")
		}
		judge := &evaluate.Judge{Reader: mgr.GetAPIReader(), Client: mgr.GetClient(), HTTP: judgeHTTP, Audit: auditLog, GatewayMode: gateway != nil,
			Actor: controllers.ControllerActor, Interval: judgeInterval, Log: ctrl.Log.WithName("judge")}
		runner.Sample = judge.Offer
		if err := mgr.Add(runner); err != nil {
			fail(err, "Unable to add the evaluator")
		}
		if err := mgr.Add(judge); err != nil {
			fail(err, "Unable to add the judge")
		}
	}

	ready := healthz.Ping
	if enableWebhooks {
		if err := custoswebhook.SetupWithManager(mgr, custoswebhook.Options{Audit: auditLog}); err != nil {
			fail(err, "Unable to set up the admission webhooks")
		}
		// Not ready until the webhook server serves: the API server sends
		// admission requests to every ready replica.
		ready = mgr.GetWebhookServer().StartedChecker()

		if certSecret != "" {
			ns := leaderNamespace
			if ns == "" {
				ns = os.Getenv("POD_NAMESPACE")
			}
			if ns == "" {
				fail(nil, "Managing webhook certificates needs the manager's namespace: set POD_NAMESPACE or --leader-election-namespace, or pass --webhook-cert-secret=\"\"")
			}
			rotator := &certs.Rotator{
				Client:             mgr.GetClient(),
				APIReader:          mgr.GetAPIReader(),
				Namespace:          ns,
				SecretName:         certSecret,
				ServiceName:        webhookService,
				ServiceNamespace:   ns,
				ValidatingWebhooks: []string{validatingHooks},
				MutatingWebhooks:   []string{mutatingHooks},
				CertDir:            webhookCertDir,
			}
			// The webhook server needs its files before it starts.
			if err := rotator.Ensure(ctx); err != nil {
				fail(err, "Unable to make the webhook serving certificate")
			}
			if err := mgr.Add(rotator); err != nil {
				fail(err, "Unable to add the certificate rotator")
			}
		}
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		fail(err, "Unable to add the health check")
	}
	if err := mgr.AddReadyzCheck("readyz", ready); err != nil {
		fail(err, "Unable to add the readiness check")
	}
	// Not ready until the caches have synced: a webhook answering from an
	// empty cache would refuse what it should admit.
	if err := mgr.AddReadyzCheck("caches", cachesSynced(mgr)); err != nil {
		fail(err, "Unable to add the cache readiness check")
	}

	log.Info("Starting the manager")
	if err := mgr.Start(ctx); err != nil {
		fail(err, "The manager stopped with an error")
	}
	if err := auditLog.Close(); err != nil {
		log.Error(err, "Closing the audit trail")
		os.Exit(1)
	}
}

// peerFlags reads the --<name>-namespace, --<name>-pod-labels and
// --<name>-port flags that locate custos-gateway's or custos-sts's pods: nil
// when the namespace is empty.
func peerFlags(name, namespace, podLabels string, port int) (*netpol.InClusterPeer, error) {
	if namespace == "" {
		if podLabels != "" {
			return nil, fmt.Errorf("--%s-pod-labels needs --%s-namespace", name, name)
		}
		return nil, nil
	}
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return nil, fmt.Errorf("--%s-namespace=%q is not a namespace name: %s", name, namespace, strings.Join(errs, "; "))
	}
	if podLabels == "" {
		return nil, fmt.Errorf("--%s-namespace needs --%s-pod-labels: without them the NetworkPolicies would select every pod of namespace %s", name, name, namespace)
	}
	set, err := labels.ConvertSelectorToLabelsMap(podLabels)
	if err != nil {
		return nil, fmt.Errorf("--%s-pod-labels=%q: want key=value,key=value: %w", name, podLabels, err)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("--%s-port=%d is not a port (1-65535)", name, port)
	}
	return &netpol.InClusterPeer{Namespace: namespace, PodSelector: set, Port: int32(port)}, nil
}

// managerServiceAccount asks the API server whom the manager's requests
// authenticate as (a SelfSubjectReview, which system:basic-user lets every
// authenticated user make): in a pod, its namespace and ServiceAccount,
// the subject its RBAC bindings name. It is empty when the manager runs
// as a user (out of cluster, with a kubeconfig).
func managerServiceAccount(ctx context.Context, cs kubernetes.Interface) (types.NamespacedName, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return types.NamespacedName{}, err
	}
	sa, _ := boundary.ServiceAccountOfUser(review.Status.UserInfo.Username)
	return sa, nil
}

// cachesSynced is a readiness check that fails until the manager's caches
// have synced. It asks the cache once per probe with a short deadline, so a
// probe never hangs.
func cachesSynced(mgr ctrl.Manager) healthz.Checker {
	var synced atomic.Bool
	return func(req *http.Request) error {
		if synced.Load() {
			return nil
		}
		ctx, cancel := context.WithTimeout(req.Context(), 100*time.Millisecond)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("the caches have not synced yet")
		}
		synced.Store(true)
		return nil
	}
}

// evaluatorTrails are the trails of --evaluate-trail, and the manager's
// own (custos-manager) when it writes a segment store.
func evaluatorTrails(flags []string, cfg audit.Config) []evaluate.Trail {
	var trails []evaluate.Trail
	for _, v := range flags {
		id, dir, _ := strings.Cut(v, "=")
		trails = append(trails, evaluate.DirTrail(id, dir))
	}
	if cfg.Sink != audit.SinkStdout && cfg.Dir != "" {
		// One name whatever the pod: a segment store has one writer, and
		// the manager's pod that writes it next (a rollout, a restart)
		// continues its chain, which the evaluator goes on reading.
		trails = append(trails, evaluate.DirTrail(evaluate.ManagerTrail, cfg.Dir))
	}
	return trails
}

// evaluatorFeeds are the components whose pods' feeds the evaluator reads:
// each whose CA file is given, with its pods' flags.
func evaluatorFeeds(gateway *netpol.InClusterPeer, gatewayCA, gatewayName string, sts *netpol.InClusterPeer, stsCA, stsName string) ([]evaluate.Feed, error) {
	var feeds []evaluate.Feed
	for _, c := range []struct {
		flag, component string
		peer            *netpol.InClusterPeer
		ca, name        string
	}{{"gateway", "custos-gateway", gateway, gatewayCA, gatewayName}, {"sts", "custos-sts", sts, stsCA, stsName}} {
		if c.ca == "" {
			continue
		}
		if c.peer == nil {
			return nil, fmt.Errorf("--evaluate-%s-ca-file needs --%s-namespace and --%s-pod-labels: they find its pods", c.flag, c.flag, c.flag)
		}
		if c.name == "" {
			return nil, fmt.Errorf("--evaluate-%s-ca-file needs --evaluate-%s-server-name: the name its certificate is verified for", c.flag, c.flag)
		}
		feeds = append(feeds, evaluate.Feed{Component: c.component, Namespace: c.peer.Namespace, Selector: labels.SelectorFromSet(c.peer.PodSelector),
			Port: int(c.peer.Port), HTTP: evaluate.FeedHTTPClient(c.ca, c.name)})
	}
	return feeds, nil
}
