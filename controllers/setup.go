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
	"errors"
	"sync"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/lease"
	"github.com/custos-dev/custos/internal/netpol"
)

// FieldOwner is the server-side apply field manager of everything Custos
// creates. It is fixed so that ownership of fields survives restarts and
// upgrades.
const FieldOwner = "custos"

// eventSource names Custos in the events it records.
const eventSource = "custos"

// Options configure the reconcilers.
type Options struct {
	// TrustDomain is the SPIFFE trust domain of the agents' IDs.
	TrustDomain string

	// SweepInterval is how often the sweeper looks for objects whose Agent
	// is gone; it also sweeps once at start-up.
	SweepInterval time.Duration

	// Clock tells the time; tests replace it to move past expiries.
	Clock clock.PassiveClock

	// DNS locates the cluster DNS that agents may always reach.
	DNS netpol.DNS

	// Gateway locates custos-gateway's pods. Set, Custos runs in gateway
	// mode: an Active agent's egress is DNS, the gateway and custos-sts
	// only (never its Toolsets' endpoints: every tool call goes through the
	// gateway), and the pods of each Toolset's in-cluster endpoint admit
	// the gateway's pods alone. It needs STS. Nil leaves agents egress to
	// their Toolsets' endpoints.
	Gateway *netpol.InClusterPeer

	// STS locates custos-sts's pods, where agents exchange tokens: set, an
	// Active agent may reach them too. Nil when custos-sts does not run.
	STS *netpol.InClusterPeer

	// Concurrency is how many Agents are reconciled at once.
	Concurrency int

	// Leases configure the credential leases; without backends, the
	// kubernetesToken backend is set up from the manager's connection.
	Leases LeaseOptions

	// Images configure image verification.
	Images ImageOptions

	// Audit receives the audit records of every governance decision and
	// lifecycle step; none are kept when nil.
	Audit audit.Recorder

	// ManagerServiceAccount is the ServiceAccount the manager runs as. The
	// DataBoundaries' RBAC report leaves its grants out: holding what
	// admission cannot stop is its job. Empty leaves out no ServiceAccount
	// for it (tests, or a manager running as a user).
	ManagerServiceAccount types.NamespacedName

	// FindingRetention is how long a closed Finding is kept
	// (DefaultFindingRetention when zero); FindingReviewWithin how long an
	// open one may wait before custos_findings_overdue counts it
	// (DefaultFindingReviewWithin when zero).
	FindingRetention    time.Duration
	FindingReviewWithin time.Duration
}

// The defaults of Options, which the manager's flags show too.
const (
	DefaultTrustDomain      = "cluster.local"
	DefaultSweepInterval    = 10 * time.Minute
	DefaultConcurrency      = 4
	DefaultRenewPercent     = 67
	DefaultMaxLeaseTTL      = time.Hour
	DefaultReverifyInterval = 10 * time.Minute
)

func (o *Options) defaults() {
	if o.TrustDomain == "" {
		o.TrustDomain = DefaultTrustDomain
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.FindingRetention == 0 {
		o.FindingRetention = DefaultFindingRetention
	}
	if o.FindingReviewWithin == 0 {
		o.FindingReviewWithin = DefaultFindingReviewWithin
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	o.Leases.defaults()
	o.Images.defaults(o.Clock)
	if o.Audit == nil {
		o.Audit = audit.Discard()
	}
	if o.DNS.Namespace == "" {
		o.DNS = netpol.DefaultDNS
	}
}

// SetupWithManager registers every Custos reconciler, its indexers and the
// sweeper with mgr.
func SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	opts.defaults()
	if opts.Gateway != nil && opts.STS == nil {
		return errors.New("custos-gateway needs custos-sts: agents get their tokens for the gateway from custos-sts, so they must reach it (Options.STS)")
	}
	names, err := newNameCache(ctx, mgr)
	if err != nil {
		return err
	}
	if opts.Leases.Backends == nil {
		cs, err := kubernetes.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
		if err != nil {
			return err
		}
		opts.Leases.Backends = map[string]lease.Backend{
			lease.BackendKubernetesToken: &lease.KubernetesToken{Tokens: lease.NewTokenSource(cs), Clock: opts.Clock},
		}
	}
	policies := newImagePolicies(mgr.GetAPIReader(), opts.Clock, opts.Images.PolicyTTL)
	if err := (&AgentReconciler{
		Client:        mgr.GetClient(),
		APIReader:     mgr.GetAPIReader(),
		ChildNames:    names,
		Recorder:      mgr.GetEventRecorder(eventSource),
		Options:       opts,
		imagePolicies: policies,
	}).SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	if err := (&ToolsetReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder(eventSource),
		Gateway:   opts.Gateway,
	}).SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	if err := (&DataBoundaryReconciler{
		Client:                mgr.GetClient(),
		Recorder:              mgr.GetEventRecorder(eventSource),
		Audit:                 opts.Audit,
		ManagerServiceAccount: opts.ManagerServiceAccount,
		imagePolicies:         policies,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&ApprovalRequestReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder(eventSource),
		Access:   approval.SubjectAccessReviews{Client: mgr.GetClient()},
		Audit:    opts.Audit,
		Clock:    opts.Clock,
	}).SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	if err := (&AgentFreezeReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder(eventSource),
		Access:   approval.SubjectAccessReviews{Client: mgr.GetClient()},
		Audit:    opts.Audit,
		Clock:    opts.Clock,
	}).SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	if err := (&FindingReconciler{
		Client:    mgr.GetClient(),
		Recorder:  mgr.GetEventRecorder(eventSource),
		Access:    approval.SubjectAccessReviews{Client: mgr.GetClient()},
		Audit:     opts.Audit,
		Clock:     opts.Clock,
		Retention: opts.FindingRetention,
	}).SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	if err := (&AgentReportReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder(eventSource),
		Audit:     opts.Audit,
		Clock:     opts.Clock,
	}).SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	// Registered once per process: a manager restarted in the same process
	// (tests) keeps counting through the new one's cache.
	var reader client.Reader = mgr.GetCache()
	agentsCollector.reader.Store(&reader)
	registerAgentCollector.Do(func() { metrics.Registry.MustRegister(&agentsCollector) })
	findingsCollector.state.Store(&findingCollectorState{reader: reader, within: opts.FindingReviewWithin, clock: opts.Clock})
	registerFindingCollector.Do(func() { metrics.Registry.MustRegister(&findingsCollector) })
	return mgr.Add(&Sweeper{
		APIReader: mgr.GetAPIReader(),
		Client:    mgr.GetClient(),
		Recorder:  mgr.GetEventRecorder(eventSource),
		Audit:     opts.Audit,
		Interval:  opts.SweepInterval,

		GatewayNamespace: opts.Leases.GatewayNamespace,
	})
}

// CacheOptions limit the manager's cache of the kinds Custos creates for
// agents to the objects it made: an operator that cached every Deployment
// and ServiceAccount of a large cluster in full would hold them all in
// memory. (The name check keeps only names and labels of the others; see
// newNameCache.) Of Secrets only the lease Secrets' metadata is cached,
// never any Secret's data. The RBAC objects the DataBoundaries' report
// reads are cached whole (every one counts), but without managed fields.
func CacheOptions() cache.Options {
	mine := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{
		custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue,
	})}
	rbac := cache.ByObject{Transform: cache.TransformStripManagedFields()}
	byObject := map[client.Object]cache.ByObject{
		// All RBAC, for the DataBoundaries' report, without managed fields.
		&rbacv1.Role{}:               rbac,
		&rbacv1.RoleBinding{}:        rbac,
		&rbacv1.ClusterRole{}:        rbac,
		&rbacv1.ClusterRoleBinding{}: rbac,
	}
	// What Custos made for agents, and only that (lease Secrets by their
	// metadata only: see the Agent reconciler), except the kinds cached
	// whole (every NetworkPolicy may widen an agent's network).
	for _, k := range kindsWhere(func(k agentKind) bool { return k.made && !k.cachedWhole }) {
		byObject[k.newObj()] = mine
	}
	return cache.Options{ByObject: byObject}
}

// newNameCache starts, with mgr, a cache of the metadata of every
// ServiceAccount, NetworkPolicy and Deployment, so that the Agent reconciler
// tells a free child name from a taken one without a request per child. It
// keeps names, namespaces and labels only: no annotations, no managed
// fields, no spec or status.
func newNameCache(ctx context.Context, mgr ctrl.Manager) (cache.Cache, error) {
	names, err := cache.New(mgr.GetConfig(), cache.Options{
		HTTPClient: mgr.GetHTTPClient(),
		Scheme:     mgr.GetScheme(),
		Mapper:     mgr.GetRESTMapper(),
		DefaultTransform: func(obj any) (any, error) {
			if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
				m.Annotations, m.ManagedFields, m.OwnerReferences = nil, nil, nil
			}
			return obj, nil
		},
	})
	if err != nil {
		return nil, err
	}
	for _, k := range kindsWhere(func(k agentKind) bool { return k.named }) {
		gvk, err := apiutil.GVKForObject(k.newObj(), mgr.GetScheme())
		if err != nil {
			return nil, err
		}
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(gvk)
		if _, err := names.GetInformer(ctx, m); err != nil {
			return nil, err
		}
	}
	return names, mgr.Add(names)
}

var (
	agentsCollector        agentCollector
	registerAgentCollector sync.Once
)
