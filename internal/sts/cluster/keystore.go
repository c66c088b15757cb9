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
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/sts"
)

// KeySecretType is the type of the Secrets holding custos-sts's signing
// keys, one per tenant.
const KeySecretType corev1.SecretType = "custos.dev/sts-keys"

// keysField is the Secret's key holding the stored keys as JSON.
const keysField = "keys.json"

// DefaultRotateEvery is how long a signing key signs before the next one
// takes over; the one before still verifies for as long again.
const DefaultRotateEvery = 24 * time.Hour

// KeyStore keeps each tenant's signing keys in a Secret of the STS's
// namespace, so that every replica signs with the same key and serves the
// same JWKS. Every replica syncs; writes are optimistic (resourceVersion),
// so two replicas rotating at once end with one rotation, the loser
// adopting the winner's keys.
type KeyStore struct {
	Client    client.Client
	Namespace string
	// RotateEvery is DefaultRotateEvery when 0.
	RotateEvery time.Duration
	Clock       clock.PassiveClock
}

// SecretName is the Secret of tenant's keys.
func SecretName(tenant string) string { return "custos-sts-keys-" + tenant }

// Sync brings ks in line with the store: adopt the stored keys, create
// them from ks when none are stored, and rotate when the signing key is
// older than RotateEvery.
func (s *KeyStore) Sync(ctx context.Context, tenant string, ks *sts.KeySet) error {
	every := s.RotateEvery
	if every == 0 {
		every = DefaultRotateEvery
	}
	key := client.ObjectKey{Namespace: s.Namespace, Name: SecretName(tenant)}
	for range 5 {
		secret := &corev1.Secret{}
		err := s.Client.Get(ctx, key, secret)
		if apierrors.IsNotFound(err) {
			err = s.create(ctx, key, tenant, ks)
			if apierrors.IsAlreadyExists(err) {
				continue // another replica made it first: adopt it
			}
			return err
		}
		if err != nil {
			return fmt.Errorf("reading Secret %s: %w", key, err)
		}
		var stored []sts.StoredKey
		if err := json.Unmarshal(secret.Data[keysField], &stored); err != nil {
			return fmt.Errorf("Secret %s: %s is not the keys' JSON: %w", key, keysField, err)
		}
		if err := ks.Load(stored); err != nil {
			return fmt.Errorf("Secret %s: %w", key, err)
		}
		now := s.Clock.Now()
		if now.Sub(ks.CurrentSince()) < every {
			return nil
		}
		if err := ks.Rotate(now); err != nil {
			return err
		}
		if err := s.write(secret, ks); err != nil {
			return err
		}
		err = s.Client.Update(ctx, secret)
		if apierrors.IsConflict(err) {
			continue // another replica rotated first: adopt its keys
		}
		return err
	}
	return fmt.Errorf("Secret %s changed under every one of 5 tries", key)
}

func (s *KeyStore) create(ctx context.Context, key client.ObjectKey, tenant string, ks *sts.KeySet) error {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{
			custosv1alpha1.TenantLabel: tenant, custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue}},
		Type: KeySecretType,
	}
	if err := s.write(secret, ks); err != nil {
		return err
	}
	return s.Client.Create(ctx, secret)
}

func (s *KeyStore) write(secret *corev1.Secret, ks *sts.KeySet) error {
	stored, err := ks.Export()
	if err != nil {
		return err
	}
	data, err := json.Marshal(stored)
	if err != nil {
		return err
	}
	secret.Data = map[string][]byte{keysField: data}
	return nil
}
