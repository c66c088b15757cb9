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

package approval

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// DefaultHold is how long custos-gateway holds a call waiting for its
// approval before it answers "pending approval".
const DefaultHold = 10 * time.Second

// Gate holds calls for custos-gateway: it finds or creates a call's
// ApprovalRequest, waits briefly for people to decide it, and consumes
// an approved one exactly once.
type Gate struct {
	// Client reads ApprovalPolicies and ApprovalRequests (a cache) and
	// writes requests and their status.
	Client client.Client
	// Live reads a request past the cache after a write conflicted.
	Live client.Reader
	// Hold is how long a call waits for its approval before the gateway
	// answers "pending approval"; 0 answers at once.
	Hold  time.Duration
	Clock clock.PassiveClock

	matcher Matcher
	mu      sync.Mutex
	waiting map[string]chan struct{}
}

// Outcome is what became of a held call.
type Outcome struct {
	// Request is the call's ApprovalRequest as last seen.
	Request *custosv1alpha1.ApprovalRequest
	// Run says the approval was consumed by this call: run it, once.
	Run bool
	// Created says this call made the request.
	Created bool
	// Used says the approval was consumed by another try of the call.
	Used bool
}

func (g *Gate) now() time.Time {
	if g.Clock == nil {
		return time.Now()
	}
	return g.Clock.Now()
}

// Require says what approval call needs under the ApprovalPolicies of its
// agent's namespace; nil when none matches.
func (g *Gate) Require(ctx context.Context, call Call) (*Requirement, error) {
	var policies custosv1alpha1.ApprovalPolicyList
	if err := g.Client.List(ctx, &policies, client.InNamespace(call.Agent.Namespace)); err != nil {
		return nil, fmt.Errorf("reading the ApprovalPolicies of namespace %s: %w", call.Agent.Namespace, err)
	}
	return g.matcher.Require(policies.Items, call), nil
}

// Await finds the request of h (creating it under req when the call has
// none that can still be used), holds the call up to Hold while it is
// Pending, and consumes it when Approved. A Denied request answers every
// retry of the call; after an Expired or Consumed one, a retry asks
// again.
func (g *Gate) Await(ctx context.Context, h *Held, req *Requirement) (Outcome, error) {
	deadline := g.now().Add(g.Hold)
	digest := h.Digest()
	key := h.Agent.Namespace + "/" + DigestLabel(digest)
	var out Outcome
	for {
		// Listening starts before the read: a change between the two
		// wakes this try at once.
		woken := g.listen(key)
		ar, n, err := g.find(ctx, h.Agent.Namespace, digest)
		if err != nil {
			return out, err
		}
		// A request that was consumed or expired while this try waited on
		// it answers this try; a retry after that asks again.
		waitedOn := ar != nil && out.Request != nil && out.Request.Name == ar.Name
		switch {
		case waitedOn && ar.Status.Phase == custosv1alpha1.ApprovalConsumed:
			out.Request, out.Used = ar, true
			return out, nil
		case waitedOn && ar.Status.Phase == custosv1alpha1.ApprovalExpired:
			out.Request = ar
			return out, nil
		case ar == nil || ar.Status.Phase == custosv1alpha1.ApprovalConsumed || ar.Status.Phase == custosv1alpha1.ApprovalExpired:
			created := Request(h, req, n+1, g.now())
			switch err := g.Client.Create(ctx, created); {
			case err == nil:
				ar, out.Created = created, true
			case apierrors.IsAlreadyExists(err):
				// Another try (or gateway) made it first, or the cache
				// has not seen it yet: read it.
				ar = &custosv1alpha1.ApprovalRequest{}
				if err := g.Live.Get(ctx, client.ObjectKeyFromObject(created), ar); err != nil {
					return out, fmt.Errorf("reading ApprovalRequest %s/%s: %w", created.Namespace, created.Name, err)
				}
			default:
				return out, fmt.Errorf("creating ApprovalRequest %s/%s: %w", created.Namespace, created.Name, err)
			}
		}
		if ar.Spec.CallDigest != digest {
			return out, fmt.Errorf("ApprovalRequest %s/%s is another call's (digest %s): its name collides", ar.Namespace, ar.Name, ar.Spec.CallDigest)
		}
		out.Request = ar
		switch ar.Status.Phase {
		case custosv1alpha1.ApprovalApproved:
			ran, latest, err := g.consume(ctx, ar, h.TraceID)
			if err != nil {
				return out, err
			}
			out.Request = latest
			if ran {
				out.Run = true
				return out, nil
			}
			if latest.Status.Phase == custosv1alpha1.ApprovalConsumed {
				out.Used = true
			}
			return out, nil
		case custosv1alpha1.ApprovalDenied, custosv1alpha1.ApprovalExpired, custosv1alpha1.ApprovalConsumed:
			return out, nil
		}
		// Pending (or not yet seen by the manager): wait for a change.
		if !g.wait(ctx, woken, deadline) {
			return out, nil
		}
	}
}

// find returns the newest request of digest in ns, and its number (0
// when there is none).
func (g *Gate) find(ctx context.Context, ns, digest string) (*custosv1alpha1.ApprovalRequest, int, error) {
	var list custosv1alpha1.ApprovalRequestList
	if err := g.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{custosv1alpha1.CallDigestLabel: DigestLabel(digest)}); err != nil {
		return nil, 0, fmt.Errorf("reading the ApprovalRequests of namespace %s: %w", ns, err)
	}
	var newest *custosv1alpha1.ApprovalRequest
	n := 0
	for i := range list.Items {
		ar := &list.Items[i]
		if ar.Spec.CallDigest != digest {
			continue
		}
		if k := sequence(ar.Name); k > n {
			n, newest = k, ar
		}
	}
	return newest, n, nil
}

func sequence(name string) int {
	i := strings.LastIndexByte(name, '-')
	n, err := strconv.Atoi(name[i+1:])
	if err != nil {
		return 0
	}
	return n
}

// consume marks ar Consumed, guarded by its resourceVersion: of every try
// that saw it Approved, exactly one succeeds. It says whether this one
// did, and the request as it now is.
func (g *Gate) consume(ctx context.Context, ar *custosv1alpha1.ApprovalRequest, traceID string) (bool, *custosv1alpha1.ApprovalRequest, error) {
	for {
		if ar.Status.Phase != custosv1alpha1.ApprovalApproved || !g.now().Before(ar.Spec.ExpiresAt.Time) {
			return false, ar, nil
		}
		next := ar.DeepCopy()
		now := metav1.NewTime(g.now())
		next.Status.Phase = custosv1alpha1.ApprovalConsumed
		next.Status.ConsumedAt, next.Status.ConsumedTraceID = &now, traceID
		err := g.Client.Status().Update(ctx, next)
		if err == nil {
			return true, next, nil
		}
		if !apierrors.IsConflict(err) {
			return false, ar, fmt.Errorf("consuming ApprovalRequest %s/%s: %w", ar.Namespace, ar.Name, err)
		}
		latest := &custosv1alpha1.ApprovalRequest{}
		if err := g.Live.Get(ctx, client.ObjectKeyFromObject(ar), latest); err != nil {
			return false, ar, fmt.Errorf("reading ApprovalRequest %s/%s: %w", ar.Namespace, ar.Name, err)
		}
		ar = latest
	}
}

// Watch wakes held calls when their requests change, through informers
// (the gateway's manager cache).
func (g *Gate) Watch(ctx context.Context, informers cache.Informers) error {
	inf, err := informers.GetInformer(ctx, &custosv1alpha1.ApprovalRequest{})
	if err != nil {
		return fmt.Errorf("watching ApprovalRequests: %w", err)
	}
	changed := func(obj any) {
		if ar, ok := obj.(*custosv1alpha1.ApprovalRequest); ok {
			g.Changed(ar.Namespace, ar.Labels[custosv1alpha1.CallDigestLabel])
		}
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    changed,
		UpdateFunc: func(_, obj any) { changed(obj) },
	})
	return err
}

// Changed wakes the calls held on the requests of namespace ns whose
// call digest label is digestLabel (the gateway's informer calls it on
// every change of a request).
func (g *Gate) Changed(ns, digestLabel string) {
	key := ns + "/" + digestLabel
	g.mu.Lock()
	ch, ok := g.waiting[key]
	delete(g.waiting, key)
	g.mu.Unlock()
	if ok {
		close(ch)
	}
}

// listen returns the channel Changed closes for key.
func (g *Gate) listen(key string) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.waiting == nil {
		g.waiting = map[string]chan struct{}{}
	}
	ch, ok := g.waiting[key]
	if !ok {
		ch = make(chan struct{})
		g.waiting[key] = ch
	}
	return ch
}

// recheck bounds a wait without news: a change missed is seen within it.
const recheck = time.Second

// wait waits for woken until deadline; false when the deadline passed or
// ctx ended.
func (g *Gate) wait(ctx context.Context, woken <-chan struct{}, deadline time.Time) bool {
	left := deadline.Sub(g.now())
	if left <= 0 {
		return false
	}
	t := time.NewTimer(min(left, recheck))
	defer t.Stop()
	select {
	case <-woken:
		return true
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
