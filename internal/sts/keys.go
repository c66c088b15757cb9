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
	"encoding/base64"
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

// key returns the live key with id kid.
func (ks *KeySet) key(kid string) (crypto.PublicKey, bool) {
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

// errNoKey: the token's kid is none of the live keys.
var errNoKey = errors.New("signed by a key that is not one of the issuer's live keys")
