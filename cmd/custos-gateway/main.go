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

// Command custos-gateway is Custos's gateway in front of every tool call:
// an MCP server (streamable HTTP) that serves each agent a facade of its
// Toolsets at /tenants/<tenant>/mcp, checks every tools/call on the way
// in and on the way out, calls the tool server with a token custos-sts
// exchanged for it alone, and records every call, allowed or refused. It
// is stateless and holds no signing key. docs/gateway.md is its contract.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/breaker"
	"github.com/custos-dev/custos/internal/gateway"
	"github.com/custos-dev/custos/internal/serve"
	"github.com/custos-dev/custos/internal/sts/cluster"
	"github.com/custos-dev/custos/internal/tracing"
)

// What custos-gateway needs, in a role of its own: get, list and watch
// agents, toolsets and databoundaries (their callChecks), and patch
// toolsets/status (their Drifted condition, by server-side apply); get,
// list and watch approvalpolicies, get, list, watch and create
// approvalrequests and update approvalrequests/status (it holds calls and
// consumes approvals); get, list and watch ConfigMaps in custos-sts's
// namespace (the revocation
// lists); with --credentials-namespace, get, list and watch Secrets there
// (the leases of gateway-only credentials), and none elsewhere. It signs
// nothing.

// options are custos-gateway's flags.
type options struct {
	listen         string
	certDir        string
	issuerBase     string
	stsCA          string
	upstreamCA     string
	actorTokenFile string
	stsNamespace   string
	credentialsNS  string
	capsNS         string
	usageEvery     time.Duration
	trustDomain    string
	perAgent       gateway.Rate
	perTool        gateway.Rate
	breaker        gateway.BreakerSettings
	timeout        time.Duration
	maxResponse    int64
	maxRequest     int64
	resolve        resolveFlag
	probeAddr      string
	metricsAddr    string
	metricsSecure  bool
	shutdownDelay  time.Duration
	approvalHold   time.Duration
	audit          audit.Config
	feedReaders    []string
	feedDrain      time.Duration
	tracing        tracing.Options
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", ":8443", "Address the gateway listens on, over TLS.")
	flag.StringVar(&o.certDir, "tls-cert-dir", "", "Directory holding tls.crt and tls.key, reloaded when they change. Required: tokens never travel in the clear.")
	flag.StringVar(&o.issuerBase, "issuer-base", "", "custos-sts's --issuer-base: a tenant's issuer is <issuer-base>/tenants/<tenant>, its keys at <issuer>/jwks, its token endpoint at <issuer>/token. Required.")
	flag.StringVar(&o.stsCA, "sts-ca-file", "", "PEM bundle of CAs, besides the system's, that custos-sts's serving certificate chains to.")
	flag.StringVar(&o.upstreamCA, "upstream-ca-file", "", "PEM bundle of CAs, besides the system's, that tool servers' certificates chain to (in-cluster servers called over https).")
	flag.StringVar(&o.actorTokenFile, "actor-token-file", "/var/run/secrets/custos/sts/token", "The gateway pod's projected ServiceAccount token for custos-sts, read afresh for every exchange: the actor token when it exchanges a caller's token for a Toolset's.")
	flag.StringVar(&o.stsNamespace, "sts-namespace", os.Getenv("POD_NAMESPACE"), "custos-sts's namespace, where the tenants' revocation lists are (custos-sts-revocations-<tenant>); the pod's own by default.")
	flag.StringVar(&o.credentialsNS, "credentials-namespace", "", "Namespace where the manager keeps the leases of agents' gateway-only credentials (the manager's --gateway-credentials-namespace): the gateway watches its Secrets, and no others, and sets each lease on the calls to its Toolset. Empty: a call that needs one is refused (CredentialUnavailable).")
	flag.StringVar(&o.capsNS, "caps-namespace", "", "Namespace where the replicas keep, in ConfigMaps custos-caps-*, how much of each agent's caps (DataBoundary and Agent spec.caps) they have handed out this minute and day, so that together, and across restarts, they never serve past a cap. Empty: --credentials-namespace; when both are empty each replica counts alone, in memory (one replica, development).")
	flag.DurationVar(&o.usageEvery, "usage-report-interval", 15*time.Second, "How often each replica writes what each agent took through it (ConfigMap custos-usage-<pod> in the caps namespace) for the manager's breaker.")
	flag.StringVar(&o.trustDomain, "trust-domain", "cluster.local", "SPIFFE trust domain of the agents' IDs, as the manager's --trust-domain.")
	flag.IntVar(&o.perAgent.PerMinute, "rate-per-agent", 600, "Tool calls an agent may make per minute, all tools together; 0: no limit.")
	flag.IntVar(&o.perAgent.Burst, "rate-per-agent-burst", 60, "Calls an agent may make at once above its rate.")
	flag.IntVar(&o.perTool.PerMinute, "rate-per-tool", 300, "Calls an agent may make of one tool per minute; 0: no limit.")
	flag.IntVar(&o.perTool.Burst, "rate-per-tool-burst", 30, "Calls of one tool an agent may make at once above its rate.")
	flag.Func("breaker-failures", "Calls in a row that must fail for a tool server's circuit to open (default 5).", uintFlag(&o.breaker.Failures))
	flag.DurationVar(&o.breaker.OpenFor, "breaker-open-for", 30*time.Second, "How long an open circuit refuses calls before one is let through to try the tool server again.")
	flag.DurationVar(&o.timeout, "upstream-timeout", 10*time.Second, "How long a tool server gets to answer a call.")
	flag.Int64Var(&o.maxResponse, "max-response-bytes", 10<<20, "Largest answer taken from a tool server; a larger one is refused, nothing of it passed on.")
	flag.Int64Var(&o.maxRequest, "max-request-bytes", gateway.DefaultMaxRequestBytes, "Largest request taken from an agent.")
	flag.Var(&o.resolve, "resolve", "host:port=address:port, repeatable: dial address:port for host:port, as curl --resolve does (development and tests, where tool servers run on loopback).")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz.")
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", "0", "Address of the Prometheus metrics endpoint (per agent: calls, records, bytes; refusals by reason; call durations by tool); 0 disables it.")
	flag.BoolVar(&o.metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS to clients the API server authenticates (TokenReview) and authorizes (SubjectAccessReview: get on the non-resource URL /metrics): they name agents and namespaces. false serves plain HTTP to anyone who can connect.")
	flag.DurationVar(&o.shutdownDelay, "shutdown-delay", 5*time.Second, "On SIGTERM, how long to keep serving, with /readyz failing, before draining: the time every kube-proxy needs to take the pod out of the Service. The calls in flight then get up to 10 s more; the pod's terminationGracePeriodSeconds must cover both.")
	flag.DurationVar(&o.approvalHold, "approval-hold", approval.DefaultHold, "How long a call an ApprovalPolicy matches is held, waiting for people to approve it, before the gateway answers \"pending approval\" (the agent retries the same call); 0 answers at once.")
	o.audit.AddFlags(flag.CommandLine)
	flag.DurationVar(&o.feedDrain, "audit-feed-drain", 15*time.Second, "When stopping with --audit-feed-readers: how long to serve the feed alone, once everything else has stopped, until its reader has read the trail's last record (the pod's store goes with it).")
	flag.Func("audit-feed-readers", "ServiceAccounts (system:serviceaccount:<namespace>:<name>, comma-separated) answered at "+audit.FeedPath+" on --listen: the records of this process's audit trail, from its segment store (--audit-sink file or both), to a bearer token of audience "+audit.FeedAudience+" the API server authenticates as one of them. The manager's evaluator reads it; empty serves no feed.", func(v string) error {
		for _, r := range strings.Split(v, ",") {
			if r = strings.TrimSpace(r); r != "" {
				o.feedReaders = append(o.feedReaders, r)
			}
		}
		return nil
	})
	o.tracing.AddFlags(flag.CommandLine)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("custos-gateway")

	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "Unable to reach the API server")
		os.Exit(1)
	}
	if err := run(ctrl.SetupSignalHandler(), o, cfg, log, nil); err != nil {
		log.Error(err, "custos-gateway stopped")
		os.Exit(1)
	}
}

// run serves until ctx ends. ready, when not nil, receives the address it
// listens on once it serves.
func run(ctx context.Context, o options, cfg *rest.Config, log logr.Logger, ready chan<- string) error {
	switch {
	case o.certDir == "":
		return errors.New("--tls-cert-dir is required: tokens never travel in the clear")
	case o.issuerBase == "":
		return errors.New("--issuer-base is required: the gateway verifies callers' tokens with custos-sts's keys")
	case o.stsNamespace == "":
		return errors.New("--sts-namespace (or POD_NAMESPACE) is required: the revocation lists live there")
	case o.timeout <= 0:
		return errors.New("--upstream-timeout must be positive")
	case o.maxResponse <= 0 || o.maxRequest <= 0:
		return errors.New("--max-response-bytes and --max-request-bytes must be positive")
	}
	stopping := ctx
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopTracing, err := tracing.Setup(ctx, "custos-gateway", o.tracing)
	if err != nil {
		return err
	}
	// Spans still queued are sent before the process ends.
	defer func() {
		flush, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer done()
		if err := stopTracing(flush); err != nil {
			log.Error(err, "Sending the last spans")
		}
	}()
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(scheme))
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOptions(o),
		HealthProbeBindAddress: o.probeAddr,
		// The revocation lists are watched, so every replica honours a
		// revocation as soon as it is written: custos-sts's namespace's
		// ConfigMaps only. The gateway reads no Secret but the leases of
		// --credentials-namespace, through a cache of its own (below).
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{o.stsNamespace: {}}},
		}},
	})
	if err != nil {
		return err
	}
	auditCfg := o.audit
	auditCfg.Registerer = metrics.Registry
	if len(o.feedReaders) > 0 && auditCfg.Sink != audit.SinkStdout && auditCfg.Dir != "" {
		// The feed prunes what its reader has read: a chain per run.
		if err := audit.FeedRunDir(&auditCfg, time.Now()); err != nil {
			return fmt.Errorf("--audit-dir: %w", err)
		}
	}
	auditLog, err := audit.Open(ctx, auditCfg, mgr.GetAPIReader(), log.WithName("audit"))
	if err != nil {
		return fmt.Errorf("opening the audit trail: %w", err)
	}
	defer func() { _ = auditLog.Close() }()

	stsClient, err := httpClient(o.stsCA, o.resolve, 10*time.Second, 0)
	if err != nil {
		return fmt.Errorf("--sts-ca-file: %w", err)
	}
	upstreamClient, err := httpClient(o.upstreamCA, o.resolve, o.timeout, o.maxResponse)
	if err != nil {
		return fmt.Errorf("--upstream-ca-file: %w", err)
	}
	clk := clock.RealClock{}
	// What a tool server lists is compared with what its Toolset pins; a
	// drifted tool is hidden and refused, and its Toolset says so.
	drift := &gateway.DriftChecks{Clock: clk, Report: (&cluster.ToolsetDrift{Client: mgr.GetClient(), Log: log.WithName("drift")}).Report}
	source := &cluster.AgentToolsets{Reader: mgr.GetClient(), TrustDomain: o.trustDomain}
	// The tenant's DataBoundary callChecks run over every call, with what
	// the agent did lately at this replica, counted from its records.
	recent := &gateway.Recent{Clock: clk}
	upstream := &gateway.MCPUpstream{
		Tokens: &gateway.STSClient{IssuerBase: o.issuerBase, Client: stsClient, ActorToken: func() (string, error) {
			b, err := os.ReadFile(o.actorTokenFile)
			return strings.TrimSpace(string(b)), err
		}},
		Client:   upstreamClient,
		Timeout:  o.timeout,
		Breakers: gateway.NewBreakers(o.breaker),
		Drift:    drift,
		Resource: func(ts types.NamespacedName) string { return cluster.ToolsetResource(ts.Namespace, ts.Name) },
	}
	// The sessions kept with tool servers end with the gateway.
	defer upstream.Close()
	var creds gateway.Credentials
	if o.credentialsNS != "" {
		// The leases it sets on calls: Secrets of that one namespace
		// only, watched apart from the manager's other caches.
		secrets, err := cache.New(mgr.GetConfig(), cache.Options{
			HTTPClient: mgr.GetHTTPClient(), Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
			DefaultNamespaces: map[string]cache.Config{o.credentialsNS: {}},
			ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{
				custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue,
			})}},
		})
		if err != nil {
			return fmt.Errorf("--credentials-namespace: %w", err)
		}
		if _, err := secrets.GetInformer(ctx, &corev1.Secret{}); err != nil {
			return fmt.Errorf("--credentials-namespace: %w", err)
		}
		if err := mgr.Add(secrets); err != nil {
			return err
		}
		creds = &cluster.GatewayCredentials{Reader: secrets, Namespace: o.credentialsNS}
	}
	// Calls ApprovalPolicies match wait for people (ApprovalRequests),
	// woken as soon as the manager writes a request's phase.
	approvals := &approval.Gate{Client: mgr.GetClient(), Live: mgr.GetAPIReader(), Hold: o.approvalHold, Clock: clk}
	if err := approvals.Watch(ctx, mgr.GetCache()); err != nil {
		return err
	}
	// The agents' caps, counted across replicas in --caps-namespace; a
	// crossing freezes the agent (verb trip on agents, the chart's).
	// The caps' ledger and the usage reports are read and written without
	// a cache (a stale total would hand out twice).
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), HTTPClient: mgr.GetHTTPClient(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return err
	}
	caps := capsOf(o, mgr, direct, source, log)
	defer func() {
		// What this replica holds and did not use goes back, for the
		// others to serve.
		release, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer done()
		if err := caps.Meter.Release(release); err != nil {
			log.Error(err, "Giving back the unused caps")
		}
	}()
	gwMetrics, err := gateway.NewMetrics(metrics.Registry)
	if err != nil {
		return err
	}
	// What each agent takes, reported for the manager's breaker in the
	// caps' namespace, a ConfigMap per replica.
	usage := &gateway.Usage{Started: time.Now()}
	if ns := capsNamespace(o); ns != "" {
		replica, _ := os.Hostname()
		if n := os.Getenv("POD_NAME"); n != "" {
			replica = n
		}
		if err := mgr.Add(&gateway.UsageReporter{Usage: usage, Client: direct, Namespace: ns, Replica: replica, Every: o.usageEvery,
			Log: log.WithName("usage")}); err != nil {
			return err
		}
	}
	gw := &gateway.Server{
		Usage:           usage,
		Metrics:         gwMetrics,
		Caps:            caps,
		Approvals:       approvals,
		Credentials:     creds,
		Drift:           drift,
		Verifier:        &gateway.Verifier{IssuerBase: o.issuerBase, Client: stsClient, Clock: clk},
		Source:          source,
		Policy:          &gateway.CallPolicy{Boundaries: source, Recent: recent},
		Revocations:     &cluster.Revocations{Reader: mgr.GetClient(), TrustDomain: o.trustDomain, Namespace: o.stsNamespace, Clock: clk},
		Upstream:        upstream,
		Limits:          gateway.NewLimiter(gateway.RateLimits{PerAgent: o.perAgent, PerTool: o.perTool}, clk),
		Audit:           recent.Observe(auditLog),
		Clock:           clk,
		MaxRequestBytes: o.maxRequest,
	}
	handler, feed, err := audit.WithFeed(gw.Handler(), auditCfg, o.feedReaders, mgr.GetClient())
	if err != nil {
		return err
	}
	err = serve.Run(stopping, serve.Options{
		Name: "gateway", Manager: mgr, Handler: handler, Listen: o.listen, CertDir: o.certDir,
		// A call may be held for approval, then take the upstream's
		// whole time, and the exchange before it.
		WriteTimeout:  o.approvalHold + o.timeout + 20*time.Second,
		ShutdownDelay: o.shutdownDelay, Ready: ready, Log: log,
	})
	// The trail's last records (those of the drain, the final checkpoint)
	// are read by the evaluator before the pod, and its store, go.
	if cerr := auditLog.Close(); cerr != nil {
		log.Error(cerr, "Closing the audit trail")
	}
	if size, _ := auditLog.Head(); feed != nil && size > 0 {
		read, derr := audit.DrainFeed(ctx, feed, o.listen, o.certDir, size-1, o.feedDrain)
		switch {
		case derr != nil:
			log.Error(derr, "Serving the audit feed until the evaluator has read it")
		case !read:
			log.Info("The evaluator did not read the audit trail's last records before the drain ended", "last", size-1, "drain", o.feedDrain)
		}
	}
	return err
}

// capsNamespace is where the replicas keep the caps' ledger and report
// the agents' usage: --caps-namespace, else --credentials-namespace.
func capsNamespace(o options) string {
	if o.capsNS != "" {
		return o.capsNS
	}
	return o.credentialsNS
}

// metricsOptions serves the metrics as --metrics-secure says.
func metricsOptions(o options) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: o.metricsAddr}
	if o.metricsSecure {
		opts.SecureServing = true
		opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return opts
}

// capsOf is the gateway's Caps: a ConfigMapLedger in --caps-namespace
// (or --credentials-namespace), read and written without a cache.
func capsOf(o options, mgr ctrl.Manager, direct client.Client, source *cluster.AgentToolsets, log logr.Logger) *gateway.Caps {
	logID, _ := os.Hostname()
	caps := &gateway.Caps{Boundaries: source, AuditLogID: "custos-gateway/" + logID,
		Freezer: gateway.ClientFreezer{Client: mgr.GetClient(), Reader: mgr.GetClient()}}
	ns := capsNamespace(o)
	if ns == "" {
		log.Error(nil, "No --caps-namespace nor --credentials-namespace: this replica counts the agents' caps alone, in memory, and forgets them when it stops; with several replicas each serves up to the whole cap")
		caps.Meter = &breaker.Meter{Ledger: &breaker.MemoryLedger{}}
		return caps
	}
	caps.Meter = &breaker.Meter{Ledger: &breaker.ConfigMapLedger{Client: direct, Namespace: ns}}
	return caps
}

// httpClient trusts the system's CAs and those of caFile, dials as
// resolve says, and, when maxBody is set, refuses an answer larger than it.
func httpClient(caFile string, resolve resolveFlag, timeout time.Duration, maxBody int64) (*http.Client, error) {
	roots, err := serve.RootCAs(caFile)
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	transport.MaxIdleConnsPerHost = 64
	if len(resolve) > 0 {
		transport.DialContext = gateway.Dialer(resolve)
	}
	var rt http.RoundTripper = transport
	if maxBody > 0 {
		rt = gateway.LimitBody(transport, maxBody)
	}
	return &http.Client{Timeout: timeout, Transport: rt}, nil
}

// resolveFlag maps host:port to the address dialled instead.
type resolveFlag map[string]string

func (r *resolveFlag) String() string { return fmt.Sprint(map[string]string(*r)) }

func (r *resolveFlag) Set(v string) error {
	hostPort, addr, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("%q is not host:port=address:port", v)
	}
	for _, hp := range []string{hostPort, addr} {
		if host, port, err := net.SplitHostPort(hp); err != nil || host == "" || port == "" {
			return fmt.Errorf("%q is not host:port=address:port", v)
		}
	}
	if *r == nil {
		*r = resolveFlag{}
	}
	(*r)[hostPort] = addr
	return nil
}

// uintFlag parses a flag into a uint32.
func uintFlag(p *uint32) func(string) error {
	return func(s string) error {
		var v uint32
		if _, err := fmt.Sscanf(s, "%d", &v); err != nil {
			return fmt.Errorf("%q is not a count", s)
		}
		*p = v
		return nil
	}
}
