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

package sts

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Algorithm is the one signature algorithm of Custos tokens.
const Algorithm = jose.ES256

// liveKeys is how many keys a KeySet keeps: the one that signs and the one
// before it, which still verifies the tokens it signed until they expire.
const liveKeys = 2

// signingKey is one key of a KeySet.
type signingKey struct {
	id     string
	signer crypto.Signer
	// created is when it started signing.
	created time.Time
}

// KeySet holds a tenant's signing keys: the newest signs, and the one
// before it still verifies (liveKeys). Rotate adds a key and retires the
// oldest. It is safe for concurrent use.
type KeySet struct {
	mu   sync.RWMutex
	keys []signingKey // newest first
	// newKey makes a key; tests and an HSM or KMS replace it.
	newKey func() (crypto.Signer, error)
}

// NewKeySet returns a key set with one new P-256 key, created at now.
func NewKeySet(now time.Time) (*KeySet, error) {
	ks := &KeySet{newKey: func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }}
	return ks, ks.Rotate(now)
}

// Rotate makes a new key the signing key; the one that signed until now
// still verifies, and the one before it is retired: its tokens no longer
// verify. Rotate at least one token lifetime apart, so that no live token
// loses its key.
func (ks *KeySet) Rotate(now time.Time) error {
	signer, err := ks.newKey()
	if err != nil {
		return fmt.Errorf("making a signing key: %w", err)
	}
	kid, err := keyID(signer.Public())
	if err != nil {
		return err
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.keys = append([]signingKey{{id: kid, signer: signer, created: now}}, ks.keys...)
	if len(ks.keys) > liveKeys {
		ks.keys = ks.keys[:liveKeys]
	}
	return nil
}

// current is the signing key.
func (ks *KeySet) current() signingKey {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return ks.keys[0]
}

// PublicKey returns the live key with id kid.
func (ks *KeySet) PublicKey(kid string) (crypto.PublicKey, bool) {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	for _, k := range ks.keys {
		if k.id == kid {
			return k.signer.Public(), true
		}
	}
	return nil, false
}

// JWKS is the public half of every live key, newest first, as served at
// the issuer's jwks_uri.
func (ks *KeySet) JWKS() jose.JSONWebKeySet {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	var set jose.JSONWebKeySet
	for _, k := range ks.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.signer.Public(), KeyID: k.id, Algorithm: string(Algorithm), Use: "sig"})
	}
	return set
}

// keyID is the RFC 7638 thumbprint of pub, base64url: the same key always
// has the same kid, on every replica.
func keyID(pub crypto.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("thumbprint of a signing key: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// StoredKey is a signing key as a key store keeps it: its private key in
// PKCS #8 PEM, and when it started signing.
type StoredKey struct {
	PEM     []byte    `json:"pem"`
	Created time.Time `json:"created"`
}

// Export returns the live keys, newest first, for a key store.
func (ks *KeySet) Export() ([]StoredKey, error) {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	out := make([]StoredKey, 0, len(ks.keys))
	for _, k := range ks.keys {
		der, err := x509.MarshalPKCS8PrivateKey(k.signer)
		if err != nil {
			return nil, fmt.Errorf("exporting signing key %s: %w", k.id, err)
		}
		out = append(out, StoredKey{PEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), Created: k.created})
	}
	return out, nil
}

// Load replaces the live keys with stored ones (newest first; at most
// liveKeys are kept): what another replica rotated to.
func (ks *KeySet) Load(stored []StoredKey) error {
	if len(stored) == 0 {
		return errors.New("no signing key")
	}
	keys := make([]signingKey, 0, len(stored))
	for i, s := range stored {
		block, _ := pem.Decode(s.PEM)
		if block == nil || block.Type != "PRIVATE KEY" {
			return fmt.Errorf("stored key %d is not a PKCS #8 PEM private key", i)
		}
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return fmt.Errorf("stored key %d: %w", i, err)
		}
		ec, ok := key.(*ecdsa.PrivateKey)
		if !ok || ec.Curve != elliptic.P256() {
			return fmt.Errorf("stored key %d is not a P-256 key", i)
		}
		kid, err := keyID(ec.Public())
		if err != nil {
			return err
		}
		keys = append(keys, signingKey{id: kid, signer: ec, created: s.Created})
	}
	if len(keys) > liveKeys {
		keys = keys[:liveKeys]
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.keys = keys
	return nil
}

// CurrentSince is when the signing key started signing.
func (ks *KeySet) CurrentSince() time.Time { return ks.current().created }

// errNoKey: the token's kid is none of the live keys.
var errNoKey = errors.New("signed by a key that is not one of the issuer's live keys")
