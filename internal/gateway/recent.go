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
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/policy"
)

// recentSlots is how many buckets a window of Recent has: a window of a
// minute counts in buckets of 5 s, one of an hour in buckets of 5 min.
const recentSlots = 12

const (
	callsWindow   = time.Minute
	refusedWindow = time.Hour
)

// Recent counts what each agent did lately at this replica of
// custos-gateway, for the callChecks' payload (recent): its tool calls,
// allowed or refused, in the last minute, and those refused in the last
// hour, each to within a twelfth of its window. It counts the records of
// calls the Server writes (Observe), so that it sees every call and every
// refusal, whichever check refused it.
//
// The counts are this replica's, kept in memory: they start at zero when
// it starts, and with several replicas behind the Service an agent's calls
// are spread over as many counters. A check on recent bounds what one
// replica lets through.
type Recent struct {
	// Clock is the real clock when nil.
	Clock clock.PassiveClock

	mu     sync.Mutex
	agents map[recentKey]*recentCounts
	swept  time.Time
}

type recentKey struct{ tenant, agent string }

type recentCounts struct {
	calls, refused window
	last           time.Time
}

// window counts events in recentSlots buckets of a twelfth of its span.
type window [recentSlots]struct {
	slot int64 // the bucket's number since the epoch
	n    uint32
}

func (w *window) add(now time.Time, span time.Duration) {
	slot := now.UnixNano() / int64(span/recentSlots)
	b := &w[uint64(slot)%recentSlots]
	if b.slot != slot {
		b.slot, b.n = slot, 0
	}
	b.n++
}

func (w *window) count(now time.Time, span time.Duration) int {
	current := now.UnixNano() / int64(span/recentSlots)
	n := 0
	for _, b := range w {
		if b.slot > current-recentSlots && b.slot <= current {
			n += int(b.n)
		}
	}
	return n
}

func (r *Recent) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// Observe returns a Recorder that counts every record of a tools/call by
// an agent (tool.called, tool.refused) and passes each record on to next
// (none when nil). The Server records through it for Recent to count:
// Server.Audit = recent.Observe(trail).
func (r *Recent) Observe(next audit.Recorder) audit.Recorder {
	return observer{recent: r, next: next}
}

type observer struct {
	recent *Recent
	next   audit.Recorder
}

func (o observer) Record(ctx context.Context, e audit.Event) {
	o.RecordSeq(ctx, e)
}

// RecordSeq implements audit.Sequencer when next does.
func (o observer) RecordSeq(ctx context.Context, e audit.Event) (uint64, bool) {
	o.recent.observe(e)
	if s, ok := o.next.(audit.Sequencer); ok {
		return s.RecordSeq(ctx, e)
	}
	if o.next != nil {
		o.next.Record(ctx, e)
	}
	return 0, false
}

func (r *Recent) observe(e audit.Event) {
	if (e.Action != audit.ActionToolCalled && e.Action != audit.ActionToolRefused) || e.Actor.Kind != audit.ActorAgent || e.Actor.Name == "" {
		return
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.agents == nil {
		r.agents = map[recentKey]*recentCounts{}
	}
	r.sweep(now)
	key := recentKey{tenant: e.Subject.Tenant, agent: e.Actor.Name}
	c, ok := r.agents[key]
	if !ok {
		c = &recentCounts{}
		r.agents[key] = c
	}
	c.calls.add(now, callsWindow)
	if e.Action == audit.ActionToolRefused {
		c.refused.add(now, refusedWindow)
	}
	c.last = now
}

// sweep forgets, once a minute, the agents that made no call for the
// longest window: their counts are all zero.
func (r *Recent) sweep(now time.Time) {
	if now.Sub(r.swept) < time.Minute {
		return
	}
	r.swept = now
	for k, c := range r.agents {
		if now.Sub(c.last) > refusedWindow {
			delete(r.agents, k)
		}
	}
}

// Counts is what agentID of tenant did lately, at this replica.
func (r *Recent) Counts(tenant, agentID string) policy.RecentInfo {
	if r == nil {
		return policy.RecentInfo{}
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.agents[recentKey{tenant: tenant, agent: agentID}]
	if !ok {
		return policy.RecentInfo{}
	}
	return policy.RecentInfo{Calls: c.calls.count(now, callsWindow), Refused: c.refused.count(now, refusedWindow)}
}
