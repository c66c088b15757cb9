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
	"encoding/json"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/test/fixtures"
)

func kids(ks *sts.KeySet) []string {
	var out []string
	for _, k := range ks.JWKS().Keys {
		out = append(out, k.KeyID)
	}
	return out
}

// TestKeyStoreSharesKeysAcrossReplicas: two replicas of custos-sts sign
// with the same key and verify each other's tokens; a rotation by one is
// adopted by the other; two rotating at once rotate once.
func TestKeyStoreSharesKeysAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	ns := fixtures.CreateTenantNamespace(t, k8sClient, fixtures.UniqueTenant("sts-system"))
	tenant := fixtures.UniqueTenant("sts")
	now := time.Now()
	clk := clocktesting.NewFakePassiveClock(now)
	store := &KeyStore{Client: k8sClient, Namespace: ns, RotateEvery: time.Hour, Clock: clk}
	replica := func() *sts.Issuer {
		ks, err := sts.NewKeySet(now)
		if err != nil {
			t.Fatal(err)
		}
		return &sts.Issuer{URL: "https://sts/tenants/" + tenant, Tenant: tenant, Keys: ks}
	}
	a, b := replica(), replica()
	for _, r := range []*sts.Issuer{a, b} {
		if err := store.Sync(ctx, tenant, r.Keys); err != nil {
			t.Fatal(err)
		}
	}
	if ka, kb := kids(a.Keys), kids(b.Keys); len(ka) != 1 || ka[0] != kb[0] {
		t.Fatalf("after the first sync: %v and %v, want one key, the same", ka, kb)
	}
	before, err := a.Mint(sts.Claims{Subject: "alice", Audience: "x", Expiry: now.Add(2 * time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(before, "x", now); err != nil {
		t.Errorf("a token of replica A at replica B: %v", err)
	}

	// An hour on, both sync at once: one rotation, adopted by both.
	clk.SetTime(now.Add(time.Hour))
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, r := range []*sts.Issuer{a, b} {
		wg.Go(func() { errs[i] = store.Sync(ctx, tenant, r.Keys) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The loser of the race adopted the winner's keys on its next read; a
	// sync more settles both on what is stored.
	for _, r := range []*sts.Issuer{a, b} {
		if err := store.Sync(ctx, tenant, r.Keys); err != nil {
			t.Fatal(err)
		}
	}
	ka, kb := kids(a.Keys), kids(b.Keys)
	if len(ka) != 2 || ka[0] != kb[0] || ka[1] != kb[1] {
		t.Fatalf("after the rotation: %v and %v, want the same two keys", ka, kb)
	}
	after, err := b.Mint(sts.Claims{Subject: "alice", Audience: "x", Expiry: now.Add(2 * time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*sts.Issuer{a, b} {
		for name, tok := range map[string]string{"before the rotation": before, "after it": after} {
			if _, err := r.Verify(tok, "x", now.Add(time.Hour)); err != nil {
				t.Errorf("a token signed %s: %v", name, err)
			}
		}
	}
	var stored []sts.StoredKey
	got := storedKeys(t, ctx, ns, tenant)
	if err := json.Unmarshal(got, &stored); err != nil || len(stored) != 2 {
		t.Errorf("the Secret holds %d keys (%v), want 2", len(stored), err)
	}
}

func storedKeys(t *testing.T, ctx context.Context, ns, tenant string) []byte {
	t.Helper()
	s := &corev1.Secret{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: SecretName(tenant)}, s); err != nil {
		t.Fatal(err)
	}
	if s.Type != KeySecretType {
		t.Errorf("Secret type %q, want %q", s.Type, KeySecretType)
	}
	return s.Data[keysField]
}
