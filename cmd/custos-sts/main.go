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

// Command custos-sts is Custos's token service: it exchanges a person's
// token for one an agent may use on that person's behalf (RFC 8693), with
// the actor chain checked at every hop, for every tenant whose DataBoundary
// trusts an identity provider. It holds the tenants' signing keys; the
// gateway holds none. docs/sts.md is its contract.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
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
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/serve"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/internal/sts/cluster"
	"github.com/custos-dev/custos/internal/tracing"
)

// What custos-sts needs, in a role of its own (not the manager's): create
// tokenreviews; get, list and watch agents, toolsets, databoundaries and
// pods; get, create and update Secrets in its own namespace (the signing
// keys); get, list and watch ConfigMaps there (the revocation lists).

// options are custos-sts's flags.
type options struct {
	listen      string
	certDir     string
	namespace   string
	issuerBase  string
	audience    string
	trustDomain string
	tokenTTL    time.Duration
	rotateEvery time.Duration
	issuersCA   string
	probeAddr   string
	metricsAddr string
	// shutdownDelay is how long a replica told to stop serves on, not
	// ready, before it drains.
	shutdownDelay time.Duration
	// gatewaySA is custos-gateway's ServiceAccount, namespace/name.
	gatewaySA   string
	audit       audit.Config
	feedReaders []string
	feedDrain   time.Duration
	tracing     tracing.Options
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", ":8443", "Address the token service listens on, over TLS.")
	flag.StringVar(&o.certDir, "tls-cert-dir", "", "Directory holding tls.crt and tls.key, reloaded when they change. Required: tokens never travel in the clear.")
	flag.StringVar(&o.namespace, "namespace", os.Getenv("POD_NAMESPACE"), "Namespace of the Secrets holding the tenants' signing keys (custos-sts-keys-<tenant>); the pod's own by default.")
	flag.StringVar(&o.issuerBase, "issuer-base", "", "Common prefix of the tenants' issuers, as verifiers reach the STS (https://custos-sts.<namespace>.svc): a tenant's issuer is <issuer-base>/tenants/<tenant>. Required.")
	flag.StringVar(&o.audience, "audience", "custos-sts", "Audience an actor token (the agent pod's projected ServiceAccount token) must carry.")
	flag.StringVar(&o.trustDomain, "trust-domain", "cluster.local", "SPIFFE trust domain of the agents' IDs, as the manager's --trust-domain.")
	flag.DurationVar(&o.tokenTTL, "token-ttl", sts.DefaultTTL, "Lifetime of an exchanged token, never past its parent's.")
	flag.DurationVar(&o.rotateEvery, "key-rotation", cluster.DefaultRotateEvery, "How long a signing key signs before the next takes over; the one before verifies for as long again.")
	flag.StringVar(&o.issuersCA, "trusted-issuers-ca-file", "", "PEM bundle of CAs, besides the system's, that trusted identity providers' certificates may chain to (an in-house IdP).")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz.")
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", "0", "Address of the Prometheus metrics endpoint; 0 disables it.")
	flag.DurationVar(&o.shutdownDelay, "shutdown-delay", 5*time.Second, "On SIGTERM, how long to keep serving, with /readyz failing, before draining: the time every kube-proxy needs to take the pod out of the Service. Then the exchanges in flight get up to 10 s more; the pod's terminationGracePeriodSeconds must cover both.")
	flag.StringVar(&o.gatewaySA, "gateway-service-account", "", "custos-gateway's ServiceAccount, as namespace/name: its pods exchange the tokens agents were given for the gateway, for the agents' Toolsets (docs/sts.md). Empty: no gateway.")
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
	log := ctrl.Log.WithName("custos-sts")

	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "Unable to reach the API server")
		os.Exit(1)
	}
	if err := run(ctrl.SetupSignalHandler(), o, cfg, log, nil); err != nil {
		log.Error(err, "custos-sts stopped")
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
		return errors.New("--issuer-base is required: it is the iss of every token")
	case o.namespace == "":
		return errors.New("--namespace (or POD_NAMESPACE) is required: the signing keys' Secrets live there")
	}
	gateway, err := parseServiceAccount(o.gatewaySA)
	if err != nil {
		return fmt.Errorf("--gateway-service-account: %w", err)
	}
	// The caller's ctx ending (SIGTERM) starts the shutdown (serve.Run).
	// What the exchanges need (the audit trail, the IdPs' key fetches)
	// lives by the ctx below, which ends when run returns, once the server
	// drained.
	stopping := ctx
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopTracing, err := tracing.Setup(ctx, "custos-sts", o.tracing)
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
		Metrics:                metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress: o.probeAddr,
		// The signing keys' Secrets are read and written directly, never
		// cached: only the STS's own namespace's, by name.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		// The tenants' revocation lists are watched, so every replica
		// honours a revocation as soon as it is written: the ConfigMaps of
		// the STS's own namespace only.
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{o.namespace: {}}},
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

	idpClient, err := issuerClient(o.issuersCA)
	if err != nil {
		return err
	}
	clk := clock.RealClock{}
	issuers := &cluster.TenantIssuers{
		Reader: mgr.GetClient(), Base: o.issuerBase, Clock: clk, Log: log.WithName("keys"),
		Keys: &cluster.KeyStore{Client: mgr.GetClient(), Namespace: o.namespace, RotateEvery: o.rotateEvery, Clock: clk},
	}
	if err := mgr.Add(issuers); err != nil {
		return err
	}
	svc := &sts.Service{
		Issuers: issuers,
		Actors: &cluster.Actors{Client: mgr.GetClient(), Reader: mgr.GetClient(), TrustDomain: o.trustDomain,
			Audience: o.audience, Clock: clk, Gateway: gateway},
		Subjects:    &cluster.Subjects{Reader: mgr.GetClient(), Issuers: issuers, HTTPClient: idpClient, Clock: clk, Context: ctx},
		Targets:     &cluster.Targets{Reader: mgr.GetClient(), TrustDomain: o.trustDomain},
		Revocations: &cluster.Revocations{Reader: mgr.GetClient(), TrustDomain: o.trustDomain, Namespace: o.namespace, Clock: clk},
		Audit:       auditLog, Clock: clk, TTL: o.tokenTTL,
	}

	handler, feed, err := audit.WithFeed(sts.Handler(svc), auditCfg, o.feedReaders, mgr.GetClient())
	if err != nil {
		return err
	}
	err = serve.Run(stopping, serve.Options{
		Name: "issuers", Manager: mgr, Handler: handler, Listen: o.listen, CertDir: o.certDir,
		ShutdownDelay: o.shutdownDelay, Ready: ready, Log: log,
		BeforeServe: func(ctx context.Context) error {
			if err := issuers.Sync(ctx); err != nil {
				return fmt.Errorf("the first sync of the tenants' issuers: %w", err)
			}
			return nil
		},
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

// issuerClient is the HTTP client that fetches the trusted identity
// providers' discovery documents and keys: the system's CAs and those of
// caFile.
func issuerClient(caFile string) (*http.Client, error) {
	roots, err := serve.RootCAs(caFile)
	if err != nil {
		return nil, fmt.Errorf("--trusted-issuers-ca-file: %w", err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	return &http.Client{Timeout: 10 * time.Second, Transport: transport}, nil
}

// parseServiceAccount reads namespace/name; empty is none.
func parseServiceAccount(s string) (types.NamespacedName, error) {
	if s == "" {
		return types.NamespacedName{}, nil
	}
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return types.NamespacedName{}, fmt.Errorf("%q is not namespace/name", s)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}
