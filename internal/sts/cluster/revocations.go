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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/custos-dev/custos/internal/sts"
)

// Revocations says what may not be exchanged any more:
//
//   - an agent while it may not act (suspended, frozen, decommissioned,
//     gone or its image not verified), as its Agent says now. Every agent
//     of a chain is checked at every exchange, so suspending one stops
//     every token that passed through it from being exchanged further;
//   - a token (by jti) or a person's session (by sid) that someone revoked
//     (kubectl custos revoke): the tenant's revocation list, a ConfigMap of
//     the STS's namespace (RevocationListName) that every replica watches.
//     A session's revocation stops every token of the session, whatever
//     hop it is at; a jti's stops that token, and what was exchanged from
//     it before lives until it expires (minutes): revoke the session to
//     cut those too.
type Revocations struct {
	// Reader reads Agents and the revocation lists; the STS's reads from
	// its cache, which watches the ConfigMaps of Namespace.
	Reader      client.Reader
	TrustDomain string
	// Namespace holds the tenants' revocation lists.
	Namespace string
	Clock     clock.PassiveClock
	// Timeout bounds one read; 5 s when 0.
	Timeout time.Duration
}

var _ sts.Revocations = (*Revocations)(nil)

// Revoked reports whether agentID may not act, or the token jti or the
// session of tenant is revoked, and why. A read that fails says revoked:
// revocation must not fail open.
func (r *Revocations) Revoked(tenant, jti, session, agentID string) (string, bool) {
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if jti != "" || session != "" {
		if why, revoked := r.listed(ctx, tenant, jti, session); revoked {
			return why, true
		}
	}
	if agentID == "" {
		return "", false
	}
	key, ok := (&Targets{TrustDomain: r.TrustDomain}).agentOf(agentID)
	if !ok {
		return "it is no agent of trust domain " + r.TrustDomain, true
	}
	agent, err := getAgent(ctx, r.Reader, key)
	if err != nil {
		return strings.TrimSpace("its Agent cannot be read: " + err.Error()), true
	}
	if ok, why := runnable(ctx, r.Reader, agent); !ok {
		return why, true
	}
	return "", false
}

// listed looks jti and session up on tenant's revocation list.
func (r *Revocations) listed(ctx context.Context, tenant, jti, session string) (string, bool) {
	cm := &corev1.ConfigMap{}
	err := r.Reader.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: RevocationListName(tenant)}, cm, client.UnsafeDisableDeepCopy)
	switch {
	case apierrors.IsNotFound(err):
		return "", false
	case err != nil:
		return "the revocation list cannot be read: " + err.Error(), true
	}
	now := nowOf(r.Clock)
	for _, k := range []struct{ kind, value string }{{RevokeToken, jti}, {RevokeSession, session}} {
		if k.value == "" {
			continue
		}
		raw, ok := cm.Data[revocationKey(k.kind, k.value)]
		if !ok {
			continue
		}
		var e Revocation
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			return fmt.Sprintf("the revocation list's entry for %s %q is unreadable: %v", k.kind, k.value, err), true
		}
		if e.Kind != k.kind || e.Value != k.value || !now.Before(e.Until.Time) {
			continue
		}
		return e.describe(), true
	}
	return "", false
}

// What a Revocation revokes.
const (
	RevokeToken   = "jti"
	RevokeSession = "sid"
)

// revocationListLimit keeps a revocation list well inside a ConfigMap's
// 1 MiB.
const revocationListLimit = 900 << 10

// Revocation is one entry of a tenant's revocation list.
type Revocation struct {
	// Kind is RevokeToken or RevokeSession.
	Kind  string `json:"kind"`
	Value string `json:"value"`
	// Until is when the entry may go: when the token expires, or when no
	// token of the session can be alive any more.
	Until metav1.Time `json:"until"`
	// At is when it was revoked, By who (as the API server named them) and
	// Reason why.
	At     metav1.Time `json:"at"`
	By     string      `json:"by,omitempty"`
	Reason string      `json:"reason,omitempty"`
}

func (e Revocation) describe() string {
	what := "token " + e.Value
	if e.Kind == RevokeSession {
		what = "session " + e.Value
	}
	s := what + " was revoked at " + e.At.UTC().Format(time.RFC3339)
	if e.By != "" {
		s += " by " + e.By
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// RevocationListName is the ConfigMap of tenant's revoked tokens and
// sessions, in the STS's namespace.
func RevocationListName(tenant string) string { return "custos-sts-revocations-" + tenant }

// revocationKey is e's key in the list: ConfigMap keys allow only
// [-._a-zA-Z0-9], and a jti or sid may hold anything.
func revocationKey(kind, value string) string {
	sum := sha256.Sum256([]byte(value))
	return kind + "." + hex.EncodeToString(sum[:20])
}

// Revoke puts e on tenant's revocation list in namespace, creating the
// list when there is none, and drops the entries that have expired. Every
// replica honours it as soon as its cache sees the change.
func Revoke(ctx context.Context, c client.Client, namespace, tenant string, e Revocation, now time.Time) error {
	switch {
	case e.Kind != RevokeToken && e.Kind != RevokeSession:
		return fmt.Errorf("kind %q: must be %s (a token) or %s (a session)", e.Kind, RevokeToken, RevokeSession)
	case e.Value == "":
		return fmt.Errorf("the %s to revoke is empty", e.Kind)
	case !e.Until.After(now):
		return fmt.Errorf("until %s is not in the future: nothing would be revoked", e.Until.UTC().Format(time.RFC3339))
	}
	if e.At.IsZero() {
		e.At = metav1.NewTime(now)
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	key := types.NamespacedName{Namespace: namespace, Name: RevocationListName(tenant)}
	// Two writers at once: the loser reads again (a conflict, or a list the
	// other created first).
	return retry.OnError(revokeBackoff, func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
	}, func() error {
		cm := &corev1.ConfigMap{}
		err := c.Get(ctx, key, cm)
		create := apierrors.IsNotFound(err)
		switch {
		case create:
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: key.Name, Labels: map[string]string{
				"app.kubernetes.io/part-of": "custos", "app.kubernetes.io/component": "sts-revocations",
			}}}
		case err != nil:
			return fmt.Errorf("reading the revocation list %s: %w", key, err)
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		size := 0
		for k, v := range cm.Data {
			var old Revocation
			if json.Unmarshal([]byte(v), &old) == nil && !now.Before(old.Until.Time) {
				delete(cm.Data, k)
				continue
			}
			size += len(k) + len(v)
		}
		k := revocationKey(e.Kind, e.Value)
		if old, ok := cm.Data[k]; ok {
			// Revoked already: keep the longer of the two.
			var prev Revocation
			if json.Unmarshal([]byte(old), &prev) == nil && prev.Until.After(e.Until.Time) {
				return nil
			}
		}
		if size+len(k)+len(raw) > revocationListLimit {
			return fmt.Errorf("the revocation list %s is full (%d entries, %d bytes): revoke the session rather than its tokens one by one", key, len(cm.Data), size)
		}
		cm.Data[k] = string(raw)
		if create {
			return c.Create(ctx, cm)
		}
		return c.Update(ctx, cm)
	})
}

// RevocationList reads tenant's revocation list in namespace: the entries
// still in force at now, oldest first. No list is an empty one.
func RevocationList(ctx context.Context, r client.Reader, namespace, tenant string, now time.Time) ([]Revocation, error) {
	cm := &corev1.ConfigMap{}
	err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: RevocationListName(tenant)}, cm)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading the revocation list %s/%s: %w", namespace, RevocationListName(tenant), err)
	}
	var out []Revocation
	for k, raw := range cm.Data {
		var e Revocation
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			return nil, fmt.Errorf("the revocation list's entry %s is unreadable: %w", k, err)
		}
		if now.Before(e.Until.Time) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Revocation) int { return a.At.Compare(b.At.Time) })
	return out, nil
}

// revokeBackoff spreads writers racing for one list (people revoking at
// once during an incident) until each has landed.
var revokeBackoff = wait.Backoff{Steps: 30, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 1, Cap: time.Second}

// nowOf is clk's now, or the real one when clk is nil.
func nowOf(clk clock.PassiveClock) time.Time {
	if clk == nil {
		return time.Now()
	}
	return clk.Now()
}
