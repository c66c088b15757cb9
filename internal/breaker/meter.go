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
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// Usage is what an agent's calls took: records returned, bytes served,
// calls made. As a limit, 0 is no limit.
type Usage struct {
	Records, Bytes, Calls int64
}

// Signals are Usage's members, as caps, freezes and audit records name
// them.
const (
	SignalRecords = "records"
	SignalBytes   = "bytes"
	SignalCalls   = "calls"
)

func (u Usage) each(f func(signal string, v int64)) {
	f(SignalRecords, u.Records)
	f(SignalBytes, u.Bytes)
	f(SignalCalls, u.Calls)
}

func (u Usage) plus(o Usage) Usage {
	return Usage{u.Records + o.Records, u.Bytes + o.Bytes, u.Calls + o.Calls}
}

func (u Usage) minus(o Usage) Usage {
	return Usage{u.Records - o.Records, u.Bytes - o.Bytes, u.Calls - o.Calls}
}

func (u Usage) atLeastZero() Usage {
	return Usage{max(0, u.Records), max(0, u.Bytes), max(0, u.Calls)}
}

// Window is a cap's window: a clock minute or a calendar day, in UTC.
type Window string

// The windows caps are kept over.
const (
	Minute Window = "minute"
	Day    Window = "day"
)

// length is how long a window w lasts.
func (w Window) length() time.Duration {
	if w == Minute {
		return time.Minute
	}
	return 24 * time.Hour
}

// start is the start of the window w that t is in.
func (w Window) start(t time.Time) time.Time {
	t = t.UTC()
	if w == Minute {
		return t.Truncate(time.Minute)
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// Limits are an agent's caps in force: per minute and per day, 0 for none.
type Limits struct {
	Minute, Day Usage
}

// None says whether l caps nothing.
func (l Limits) None() bool { return l == Limits{} }

func (l Limits) of(w Window) Usage {
	if w == Minute {
		return l.Minute
	}
	return l.Day
}

// LimitsOf are the caps in force for an agent: the lowest of each
// DataBoundary's (the tenant's boundaries that cover the agent) and the
// Agent's own.
func LimitsOf(agent *custosv1alpha1.Agent, boundaries ...*custosv1alpha1.DataBoundary) Limits {
	var l Limits
	lower := func(c *custosv1alpha1.AgentCaps) {
		if c == nil {
			return
		}
		lowerUsage(&l.Minute, c.PerMinute)
		lowerUsage(&l.Day, c.PerDay)
	}
	for _, b := range boundaries {
		if b != nil {
			lower(b.Spec.Caps)
		}
	}
	if agent != nil {
		lower(agent.Spec.Caps)
	}
	return l
}

func lowerUsage(u *Usage, c *custosv1alpha1.CapLimits) {
	if c == nil {
		return
	}
	lowerOne(&u.Records, c.Records)
	lowerOne(&u.Bytes, c.Bytes)
	lowerOne(&u.Calls, c.Calls)
}

func lowerOne(v *int64, c *int64) {
	if c != nil && *c > 0 && (*v == 0 || *c < *v) {
		*v = *c
	}
}

// CheckAgentCaps refuses caps of agent above its DataBoundary b's: an
// Agent may only lower the caps its boundary sets (a cap the boundary
// does not set is the agent's own).
func CheckAgentCaps(agent *custosv1alpha1.Agent, b *custosv1alpha1.DataBoundary) field.ErrorList {
	if agent.Spec.Caps == nil || b == nil || b.Spec.Caps == nil {
		return nil
	}
	var errs field.ErrorList
	path := field.NewPath("spec", "caps")
	for _, w := range []struct {
		name        string
		agent, ceil *custosv1alpha1.CapLimits
	}{{"perMinute", agent.Spec.Caps.PerMinute, b.Spec.Caps.PerMinute}, {"perDay", agent.Spec.Caps.PerDay, b.Spec.Caps.PerDay}} {
		if w.agent == nil || w.ceil == nil {
			continue
		}
		for _, c := range []struct {
			name        string
			agent, ceil *int64
		}{{SignalRecords, w.agent.Records, w.ceil.Records}, {SignalBytes, w.agent.Bytes, w.ceil.Bytes}, {SignalCalls, w.agent.Calls, w.ceil.Calls}} {
			if c.agent != nil && c.ceil != nil && *c.agent > *c.ceil {
				errs = append(errs, field.Invalid(path.Child(w.name, c.name), *c.agent, fmt.Sprintf(
					"above DataBoundary %s's cap of %d (spec.caps.%s.%s there): an Agent may only lower its boundary's caps", b.Name, *c.ceil, w.name, c.name)))
			}
		}
	}
	return errs
}

// Exceeded says which cap a call or result would have crossed.
type Exceeded struct {
	// Window is Minute or Day; "" for a tool's maxRecords (one call).
	Window Window
	// Signal is SignalRecords, SignalBytes or SignalCalls.
	Signal string
	// Limit is the cap; Observed what the agent would have taken with
	// this call or result, at least (every replica's share counted).
	Limit, Observed int64
}

// Describe says what was crossed, for people.
func (e *Exceeded) Describe() string {
	if e.Window == "" {
		return fmt.Sprintf("%d %s in one call, over the tool's maxRecords %d", e.Observed, e.Signal, e.Limit)
	}
	return fmt.Sprintf("%d %s this %s, over the cap of %d a %s", e.Observed, e.Signal, e.Window, e.Limit, e.Window)
}

// Key is the agent whose use a Ledger keeps. By name, not UID: an Agent
// deleted and applied again the same day has the day's use still.
type Key = types.NamespacedName

// Ledger keeps, across the gateway's replicas and restarts, how much of
// each agent's caps has been handed out (reserved) in a window. A replica
// reserves before it serves, so what every replica served, together, is
// never above the cap: a replica that stops without giving back what it
// did not use only makes the cap reached early, never late.
type Ledger interface {
	// Reserve adds to agent's total in the window that starts at start
	// between need and want (need <= want), as much of want as the
	// limits (0: none) leave, and returns what it added; or, when even
	// need would take a total over its limit, adds nothing and says
	// which (Exceeded.Observed is the total with need).
	Reserve(ctx context.Context, agent Key, w Window, start time.Time, need, want, limits Usage) (Usage, *Exceeded, error)
	// Release gives back what a replica reserved and did not use, while
	// the window is the current one.
	Release(ctx context.Context, agent Key, w Window, start time.Time, unused Usage) error
}

// Meter enforces the caps of the agents whose calls a gateway replica
// serves. Each replica takes chunks of an agent's caps from the Ledger
// (a sixteenth of a cap at a time, or what the call needs) and serves
// from what it holds, so an agent's busy calls touch the Ledger a few
// times a window, and every replica together serves no more than the cap.
type Meter struct {
	Ledger Ledger
	// Clock is the real clock when nil.
	Clock clock.PassiveClock

	mu        sync.Mutex
	accounts  map[Key]*account
	nextSweep time.Time
}

// account is what one replica holds and used of an agent's caps.
type account struct {
	mu      sync.Mutex
	windows [2]held // Minute, Day
	// swept: dropped from the Meter (its day is over); whoever holds it
	// takes the Meter's account again.
	swept bool
}

type held struct {
	start      time.Time
	held, used Usage
}

// chunks is how many pieces of a cap a replica takes at a time, at most.
const chunks = 16

// Take counts n (a call about to be made, or a result about to be
// served) against the agent's caps limits, reserving from the Ledger
// what the replica does not hold; it returns the cap n would cross (and
// counts nothing) or nil. An error (the Ledger cannot be reached) counts
// nothing either: the caller refuses the call, it does not serve it
// uncounted.
func (m *Meter) Take(ctx context.Context, agent Key, limits Limits, n Usage) (*Exceeded, error) {
	if limits.None() {
		return nil, nil
	}
	a := m.account(agent)
	a.mu.Lock()
	for a.swept {
		a.mu.Unlock()
		a = m.account(agent)
		a.mu.Lock()
	}
	defer a.mu.Unlock()
	now := m.now()
	for i, w := range []Window{Minute, Day} {
		lim := limits.of(w)
		if lim == (Usage{}) {
			continue
		}
		h := &a.windows[i]
		if start := w.start(now); !h.start.Equal(start) {
			// A new window: what was held of the last one ends with it.
			*h = held{start: start}
		}
		need := shortfall(h.used.plus(n), h.held, lim)
		if need == (Usage{}) {
			continue
		}
		want := Usage{chunkOf(lim.Records, need.Records), chunkOf(lim.Bytes, need.Bytes), chunkOf(lim.Calls, need.Calls)}
		got, exceeded, err := m.Ledger.Reserve(ctx, agent, w, h.start, need, want, lim)
		if err != nil {
			return nil, fmt.Errorf("the caps of Agent %s cannot be counted: %w", agent, err)
		}
		if exceeded != nil {
			return exceeded, nil
		}
		h.held = h.held.plus(got)
	}
	// Both windows hold enough: n is used of each.
	for i, w := range []Window{Minute, Day} {
		if limits.of(w) != (Usage{}) {
			a.windows[i].used = a.windows[i].used.plus(n)
		}
	}
	return nil, nil
}

// Release gives back to the Ledger what this replica holds and has not
// used in the current windows (on shutdown).
func (m *Meter) Release(ctx context.Context) error {
	m.mu.Lock()
	accounts := make(map[Key]*account, len(m.accounts))
	for k, a := range m.accounts {
		accounts[k] = a
	}
	m.mu.Unlock()
	now := m.now()
	var errs []error
	for agent, a := range accounts {
		a.mu.Lock()
		for i, w := range []Window{Minute, Day} {
			h := &a.windows[i]
			unused := h.held.minus(h.used)
			if !h.start.Equal(w.start(now)) || unused == (Usage{}) {
				continue
			}
			if err := m.Ledger.Release(ctx, agent, w, h.start, unused); err != nil {
				errs = append(errs, err)
				continue
			}
			h.held = h.used
		}
		a.mu.Unlock()
	}
	if len(errs) > 0 {
		return fmt.Errorf("giving back unused caps: %v", errs)
	}
	return nil
}

// shortfall is, for each capped signal, how much more than held the
// replica must hold to have used.
func shortfall(used, held, lim Usage) Usage {
	one := func(u, h, l int64) int64 {
		if l == 0 || u <= h {
			return 0
		}
		return u - h
	}
	return Usage{one(used.Records, held.Records, lim.Records), one(used.Bytes, held.Bytes, lim.Bytes), one(used.Calls, held.Calls, lim.Calls)}
}

// chunkOf is what a replica asks for when it needs need of a cap: a
// sixteenth of it, or need when that is more.
func chunkOf(cap, need int64) int64 {
	if cap == 0 || need == 0 {
		return need
	}
	return max(need, (cap+chunks-1)/chunks)
}

func (m *Meter) account(agent Key) *account {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.accounts == nil {
		m.accounts = map[Key]*account{}
	}
	// What is held of a day that ended is void: those accounts go, at
	// most once a minute, so that memory follows the agents of the day.
	if now := m.now(); !now.Before(m.nextSweep) {
		today := Day.start(now)
		for k, a := range m.accounts {
			if a.mu.TryLock() {
				if a.windows[1].start.Before(today) && a.windows[0].start.Before(today) {
					a.swept = true
					delete(m.accounts, k)
				}
				a.mu.Unlock()
			}
		}
		m.nextSweep = now.Add(time.Minute)
	}
	a, ok := m.accounts[agent]
	if !ok {
		a = &account{}
		m.accounts[agent] = a
	}
	return a
}

func (m *Meter) now() time.Time {
	if m.Clock == nil {
		return time.Now()
	}
	return m.Clock.Now()
}
