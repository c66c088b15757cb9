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

package breaker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// reserve is a Ledger's arithmetic: total is what was handed out of the
// window; it returns what to add, or the cap need would cross.
func reserve(w Window, total, need, want, limits Usage) (Usage, *Exceeded) {
	var exceeded *Exceeded
	check := func(signal string, t, n, l int64) {
		if exceeded == nil && l > 0 && n > 0 && t+n > l {
			exceeded = &Exceeded{Window: w, Signal: signal, Limit: l, Observed: t + n}
		}
	}
	check(SignalRecords, total.Records, need.Records, limits.Records)
	check(SignalBytes, total.Bytes, need.Bytes, limits.Bytes)
	check(SignalCalls, total.Calls, need.Calls, limits.Calls)
	if exceeded != nil {
		return Usage{}, exceeded
	}
	// Near a cap the chunks shrink (an eighth of what is left at most), so
	// that what other replicas hold and have not used is little when the
	// cap is reached: the cap is reached early by little, never late.
	grant := func(t, n, wa, l int64) int64 {
		if l == 0 {
			return wa
		}
		return max(n, min(wa, (l-t)/8))
	}
	return Usage{grant(total.Records, need.Records, want.Records, limits.Records),
		grant(total.Bytes, need.Bytes, want.Bytes, limits.Bytes),
		grant(total.Calls, need.Calls, want.Calls, limits.Calls)}, nil
}

// MemoryLedger is a Ledger of one process, for one replica and tests.
type MemoryLedger struct {
	mu     sync.Mutex
	totals map[memoryKey]Usage
}

type memoryKey struct {
	agent Key
	w     Window
	start time.Time
}

// Reserve implements Ledger.
func (l *MemoryLedger) Reserve(_ context.Context, agent Key, w Window, start time.Time, need, want, limits Usage) (Usage, *Exceeded, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.totals == nil {
		l.totals = map[memoryKey]Usage{}
	}
	k := memoryKey{agent, w, start.UTC()}
	got, exceeded := reserve(w, l.totals[k], need, want, limits)
	if exceeded == nil {
		l.totals[k] = l.totals[k].plus(got)
	}
	// The windows before the last two of this agent are over.
	for old := range l.totals {
		if old.agent == agent && old.w == w && old.start.Before(start.Add(-2*w.length())) {
			delete(l.totals, old)
		}
	}
	return got, exceeded, nil
}

// Release implements Ledger.
func (l *MemoryLedger) Release(_ context.Context, agent Key, w Window, start time.Time, unused Usage) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := memoryKey{agent, w, start.UTC()}
	if t, ok := l.totals[k]; ok {
		l.totals[k] = t.minus(unused).atLeastZero()
	}
	return nil
}

// ConfigMapLedger keeps each agent's totals in a ConfigMap of the
// gateway's own namespace (custos-caps-<hash of the agent's namespace and
// name>), written with the resourceVersion read, so that replicas racing
// for the same agent each get a share or a conflict to retry, and a
// replica starting again (or another one) reads what was handed out
// before it. Tenants cannot write there.
type ConfigMapLedger struct {
	// Client reads and writes the ConfigMaps; reads must not come from a
	// cache (a stale total would hand out twice).
	Client    client.Client
	Namespace string
}

// LedgerName is the name of the ConfigMap keeping agent's totals.
func LedgerName(agent Key) string {
	sum := sha256.Sum256([]byte(agent.Namespace + "/" + agent.Name))
	return "custos-caps-" + hex.EncodeToString(sum[:10])
}

// Reserve implements Ledger.
func (l *ConfigMapLedger) Reserve(ctx context.Context, agent Key, w Window, start time.Time, need, want, limits Usage) (Usage, *Exceeded, error) {
	var got Usage
	var exceeded *Exceeded
	err := l.update(ctx, agent, w, start, func(total Usage, _ bool) (Usage, bool) {
		got, exceeded = reserve(w, total, need, want, limits)
		return total.plus(got), exceeded == nil
	})
	if err != nil {
		return Usage{}, nil, err
	}
	return got, exceeded, nil
}

// Release implements Ledger.
func (l *ConfigMapLedger) Release(ctx context.Context, agent Key, w Window, start time.Time, unused Usage) error {
	return l.update(ctx, agent, w, start, func(total Usage, found bool) (Usage, bool) {
		// Nothing to give back of a window the ledger no longer keeps
		// (or that was deleted meanwhile), and never below zero.
		return total.minus(unused).atLeastZero(), found
	})
}

// update reads agent's totals of the window w starting at start, changes
// them with f (false: nothing to write) and writes them, again on a
// conflict. Each window's totals have keys of their own
// (<window>.<start, Unix seconds>.<signal>): a replica whose clock is a
// little behind reserves in the window it is in, never over the next
// one's totals. Windows before the last two are dropped.
func (l *ConfigMapLedger) update(ctx context.Context, agent Key, w Window, start time.Time, f func(total Usage, found bool) (Usage, bool)) error {
	key := client.ObjectKey{Namespace: l.Namespace, Name: LedgerName(agent)}
	prefix := windowKey(w, start)
	return retry.RetryOnConflict(ledgerRetry, func() error {
		cm := &corev1.ConfigMap{}
		err := l.Client.Get(ctx, key, cm)
		create := apierrors.IsNotFound(err)
		if err != nil && !create {
			return err
		}
		if create {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{
				custosv1alpha1.AgentNamespaceLabel: agent.Namespace, custosv1alpha1.AgentLabel: agent.Name}}}
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		total, found, err := parseUsage(cm.Data, prefix)
		if err != nil {
			return fmt.Errorf("ConfigMap %s: %w", key, err)
		}
		next, write := f(total, found)
		if !write {
			return nil
		}
		cm.Data["agent"] = agent.String()
		next.each(func(signal string, v int64) { cm.Data[prefix+"."+signal] = strconv.FormatInt(v, 10) })
		oldest := start.Add(-2 * w.length()).Unix()
		for k := range cm.Data {
			kind, rest, ok := strings.Cut(k, ".")
			if !ok || kind != string(w) {
				continue
			}
			at, _, _ := strings.Cut(rest, ".")
			if n, err := strconv.ParseInt(at, 10, 64); err == nil && n < oldest {
				delete(cm.Data, k)
			}
		}
		if create {
			err = l.Client.Create(ctx, cm)
			if apierrors.IsAlreadyExists(err) {
				// Another replica made it first: read it, as on a conflict.
				return apierrors.NewConflict(corev1.Resource("configmaps"), key.Name, err)
			}
			return err
		}
		return l.Client.Update(ctx, cm)
	})
}

// ledgerRetry is how often a write that lost a race to another replica
// is tried again: replicas serving one busy agent race for its ConfigMap,
// most of all near a cap, where every result is a reservation.
var ledgerRetry = wait.Backoff{Steps: 40, Duration: 2 * time.Millisecond, Factor: 1.3, Jitter: 1, Cap: 200 * time.Millisecond}

// windowKey is the prefix of the keys of window w starting at start.
func windowKey(w Window, start time.Time) string {
	return string(w) + "." + strconv.FormatInt(start.Unix(), 10)
}

// parseUsage reads the totals under prefix; found says whether any is
// there. A total that is not a number, or below zero, is corrupt: the
// ledger refuses rather than guess.
func parseUsage(data map[string]string, prefix string) (Usage, bool, error) {
	var u Usage
	found := false
	for _, f := range []struct {
		signal string
		v      *int64
	}{{SignalRecords, &u.Records}, {SignalBytes, &u.Bytes}, {SignalCalls, &u.Calls}} {
		text, ok := data[prefix+"."+f.signal]
		if !ok {
			continue
		}
		found = true
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil || n < 0 {
			return Usage{}, false, fmt.Errorf("%s.%s is %q: not a count", prefix, f.signal, text)
		}
		*f.v = n
	}
	return u, found, nil
}
