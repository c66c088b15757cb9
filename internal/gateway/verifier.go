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

package gateway

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"k8s.io/utils/clock"

	"github.com/custos-dev/custos/internal/sts"
)

// DefaultRefetchAfter is the least time between two fetches of a tenant's
// keys that a token with an unknown kid may cause.
const DefaultRefetchAfter = 10 * time.Second

// Verifier checks the caller's token on the way in, locally: a token of
// the tenant's custos-sts issuer, for the tenant's gateway
// (sts.GatewayAudience), with an agent acting. It holds no signing key: it
// reads each tenant's public keys from the issuer's /jwks, again when a
// token names a key it does not know (custos-sts rotated), at most every
// RefetchAfter.
type Verifier struct {
	// IssuerBase is custos-sts's --issuer-base: a tenant's issuer is
	// <IssuerBase>/tenants/<tenant>, and its keys are at <issuer>/jwks.
	IssuerBase string
	Client     *http.Client
	Clock      clock.PassiveClock
	// RefetchAfter is DefaultRefetchAfter when 0.
	RefetchAfter time.Duration
	// VerifiedFor is how long a token once verified is taken again
	// without checking its signature (DefaultVerifiedFor when 0; never
	// past its expiry): an agent calls with the same token many times,
	// and an ES256 verification is the costliest check of a call.
	// Revocations and the agent are checked on every request whatever.
	VerifiedFor time.Duration

	mu      sync.Mutex
	tenants map[string]*tenantKeys

	verifiedMu sync.Mutex
	verified   map[string]verifiedToken
}

// DefaultVerifiedFor is how long a verified token is taken again without
// checking its signature; a key custos-sts withdraws stops verifying
// tokens within it.
const DefaultVerifiedFor = time.Minute

// maxVerified bounds the verified tokens kept.
const maxVerified = 10000

type verifiedToken struct {
	claims *sts.Claims
	until  time.Time
}

// tenantKeys are one tenant's keys as last fetched. Lookups of known keys
// take the read lock only; a fetch holds fetching, not mu, so a slow
// custos-sts never holds up tokens of keys already known.
type tenantKeys struct {
	mu       sync.RWMutex
	keys     jose.JSONWebKeySet
	fetched  time.Time
	err      error
	fetching sync.Mutex
}

// Verify checks token as the caller's token at tenant's gateway and
// returns its claims. The error says why a token is refused
// (sts.VerifyError for the token itself).
func (v *Verifier) Verify(ctx context.Context, tenant, token string) (*sts.Claims, error) {
	now := v.Clock.Now()
	key := tenant + "\x00" + token
	v.verifiedMu.Lock()
	hit, ok := v.verified[key]
	v.verifiedMu.Unlock()
	if ok && now.Before(hit.until) {
		return hit.claims, nil
	}
	issuer := v.IssuerBase + "/tenants/" + tenant
	keys := &jwksKeys{ctx: ctx, v: v, tenant: tenant, issuer: issuer}
	c, err := sts.Verify(keys, issuer, token, sts.GatewayAudience(tenant), now)
	if err != nil {
		if keys.fetchErr != nil {
			return nil, fmt.Errorf("%w (the issuer's keys: %v)", err, keys.fetchErr)
		}
		return nil, err
	}
	if c.Act == nil {
		return nil, errors.New("no agent acts in the token: the gateway takes the token an agent was given for it (docs/sts.md)")
	}
	v.remember(key, c, now)
	return c, nil
}

// remember keeps a verified token until VerifiedFor has passed or it
// expires, whichever is first.
func (v *Verifier) remember(key string, c *sts.Claims, now time.Time) {
	for_ := v.VerifiedFor
	if for_ == 0 {
		for_ = DefaultVerifiedFor
	}
	until := now.Add(for_)
	if exp := time.Unix(c.Expiry, 0); c.Expiry > 0 && exp.Before(until) {
		until = exp
	}
	v.verifiedMu.Lock()
	defer v.verifiedMu.Unlock()
	if v.verified == nil {
		v.verified = map[string]verifiedToken{}
	}
	if len(v.verified) >= maxVerified {
		for k, e := range v.verified {
			if !now.Before(e.until) || len(v.verified) >= maxVerified {
				delete(v.verified, k)
			}
		}
	}
	v.verified[key] = verifiedToken{claims: c, until: until}
}

// jwksKeys looks kids up among a tenant's fetched keys, fetching again for
// a kid it does not know.
type jwksKeys struct {
	ctx            context.Context
	v              *Verifier
	tenant, issuer string
	fetchErr       error
}

func (k *jwksKeys) PublicKey(kid string) (crypto.PublicKey, bool) {
	t := k.v.keysOf(k.tenant)
	if pub, ok := t.lookup(kid); ok {
		return pub, true
	}
	// One fetch at a time per tenant; who waited for it looks again first.
	t.fetching.Lock()
	defer t.fetching.Unlock()
	t.mu.RLock()
	pub, ok := lookup(t.keys, kid)
	fetched, lastErr := t.fetched, t.err
	t.mu.RUnlock()
	if ok {
		return pub, true
	}
	after := k.v.RefetchAfter
	if after == 0 {
		after = DefaultRefetchAfter
	}
	now := k.v.Clock.Now()
	if !fetched.IsZero() && now.Sub(fetched) < after {
		k.fetchErr = lastErr
		return nil, false
	}
	keys, err := k.v.fetch(k.ctx, k.issuer+"/jwks")
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fetched, t.err = now, err
	if err != nil {
		// The keys fetched before stay: a custos-sts that is down for a
		// moment does not refuse tokens of keys already known.
		k.fetchErr = err
		return nil, false
	}
	t.keys = keys
	return lookup(t.keys, kid)
}

func (t *tenantKeys) lookup(kid string) (crypto.PublicKey, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return lookup(t.keys, kid)
}

func (v *Verifier) keysOf(tenant string) *tenantKeys {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.tenants == nil {
		v.tenants = map[string]*tenantKeys{}
	}
	t, ok := v.tenants[tenant]
	if !ok {
		t = &tenantKeys{}
		v.tenants[tenant] = t
	}
	return t
}

func lookup(set jose.JSONWebKeySet, kid string) (crypto.PublicKey, bool) {
	for _, k := range set.Key(kid) {
		if k.Valid() && k.IsPublic() && (k.Use == "" || k.Use == "sig") {
			return k.Key, true
		}
	}
	return nil, false
}

// fetch reads a JWKS, at most 1 MiB.
func (v *Verifier) fetch(ctx context.Context, url string) (jose.JSONWebKeySet, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	resp, err := v.Client.Do(req)
	if err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return jose.JSONWebKeySet{}, fmt.Errorf("fetching %s: %s", url, resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("fetching %s: not a JWKS: %w", url, err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return jose.JSONWebKeySet{}, fmt.Errorf("fetching %s: key %q is not a public key", url, strings.TrimSpace(k.KeyID))
		}
	}
	return set, nil
}
