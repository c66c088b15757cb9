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

package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/sts"
)

// DefaultSyncEvery is how often TenantIssuers look at the DataBoundaries
// and the stored keys.
const DefaultSyncEvery = time.Minute

// TenantIssuers are custos-sts's issuers: one per tenant that has a
// DataBoundary with trusted issuers, its keys kept in the KeyStore. Sync
// brings them in line; Start syncs every SyncEvery.
type TenantIssuers struct {
	Reader client.Reader
	Keys   *KeyStore
	// Base is the issuers' common prefix; a tenant's issuer is
	// Base + "/tenants/" + tenant.
	Base      string
	SyncEvery time.Duration
	Clock     clock.PassiveClock
	Log       logr.Logger

	mu      sync.RWMutex
	issuers map[string]*sts.Issuer
}

var _ sts.Issuers = (*TenantIssuers)(nil)

// Issuer returns tenant's issuer.
func (t *TenantIssuers) Issuer(tenant string) (*sts.Issuer, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	is, ok := t.issuers[tenant]
	return is, ok
}

// Sync makes an issuer for every tenant whose DataBoundary trusts an
// identity provider, syncs its keys, and drops the issuers of tenants
// that no longer have one. A tenant whose keys cannot be synced keeps the
// keys it had; the errors are returned together.
func (t *TenantIssuers) Sync(ctx context.Context) error {
	var boundaries custosv1alpha1.DataBoundaryList
	if err := t.Reader.List(ctx, &boundaries, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing DataBoundaries: %w", err)
	}
	want := map[string]bool{}
	for _, b := range boundaries.Items {
		if len(b.Spec.TrustedIssuers) > 0 && b.DeletionTimestamp.IsZero() {
			want[b.Spec.Tenant] = true
		}
	}
	var errs []error
	next := map[string]*sts.Issuer{}
	for tenant := range want {
		is, ok := t.Issuer(tenant)
		if !ok {
			ks, err := sts.NewKeySet(t.Clock.Now())
			if err != nil {
				return err
			}
			is = &sts.Issuer{URL: t.Base + "/tenants/" + tenant, Tenant: tenant, Keys: ks}
		}
		if err := t.Keys.Sync(ctx, tenant, is.Keys); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", tenant, err))
			if !ok {
				continue // never serve keys no other replica has
			}
		}
		next[tenant] = is
	}
	t.mu.Lock()
	t.issuers = next
	t.mu.Unlock()
	return errors.Join(errs...)
}

// Start syncs at once and every SyncEvery until ctx ends (a
// controller-runtime Runnable, run by every replica).
func (t *TenantIssuers) Start(ctx context.Context) error {
	every := t.SyncEvery
	if every == 0 {
		every = DefaultSyncEvery
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if err := t.Sync(ctx); err != nil {
			t.Log.Error(err, "Syncing the tenants' issuers and signing keys")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
