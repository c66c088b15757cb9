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
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// The ConfigMaps the breaker keeps its states in, in the manager's own
// namespace: StateName-0 to StateName-63 (every agent's whole state, in
// shards) and StateName-tick-0 to -63 (every agent's tick part, every
// tick).
const (
	StateName = "custos-breaker-state"
	// StateShards is the most shards of each part: 64 of 768 KiB hold
	// about 16,000 agents' whole states.
	StateShards = 64
	stateLabel  = "custos.dev/breaker-state"
	stateAt     = "at"
	stateAgents = "agents"
	stateKey    = "states"
	tickName    = StateName + "-tick"
	// PendingName holds the freezes a trip could not make yet.
	PendingName = StateName + "-pending"
)

// StateStore keeps the breaker's states where a new leader finds them.
type StateStore struct {
	// Reader reads the ConfigMaps (uncached: they are the manager's own
	// namespace's, by name).
	Reader client.Reader
	Client client.Client
	// Namespace is the manager's own (only the platform's administrators
	// may write there).
	Namespace string
	// ShardBytes is the most one ConfigMap holds; 768 KiB when 0.
	ShardBytes int
	Log        logr.Logger

	// written is the resourceVersion of each ConfigMap as this store last
	// wrote it, so that the next write needs no read; shards is how many
	// shards of each part it last wrote.
	written map[string]string
	shards  map[string]int
}

func (s *StateStore) shardBytes() int {
	if s.ShardBytes > 0 {
		return s.ShardBytes
	}
	return 768 << 10
}

// ShardName is the i-th shard of the whole states' ConfigMaps.
func ShardName(i int) string { return StateName + "-" + strconv.Itoa(i) }

// TickShardName is the i-th shard of the tick parts' ConfigMaps.
func TickShardName(i int) string { return tickName + "-" + strconv.Itoa(i) }

// Load reads every agent's state as the last leader left it: its newest
// whole state, and its tick part when that is newer (the two are the
// state as of the last leader's last tick). An agent the newer tick parts
// leave out has its evidence forgotten. An agent whose bytes do not decode
// is left out (it learns again) and logged. No state at all is an empty
// map. last is the last leader's last tick (zero when none is kept).
func (s *StateStore) Load(ctx context.Context) (states map[types.NamespacedName]*AgentState, last time.Time, err error) {
	states = map[types.NamespacedName]*AgentState{}
	at := map[types.NamespacedName]time.Time{}
	all, err := s.readShards(ctx, ShardName)
	if err != nil {
		return nil, time.Time{}, err
	}
	for key, e := range all {
		st := &AgentState{}
		if err := st.UnmarshalBinary(e.b); err != nil {
			s.Log.Error(err, "An agent's kept state does not read; it learns again", "agent", key)
			continue
		}
		states[key], at[key] = st, e.at
	}
	ticks, err := s.readShards(ctx, TickShardName)
	if err != nil {
		return nil, time.Time{}, err
	}
	for _, e := range ticks {
		if e.at.After(last) {
			last = e.at
		}
	}
	for key, st := range states {
		e, ok := ticks[key]
		switch {
		case ok && e.at.After(at[key]):
			if err := st.RestoreHot(e.b); err != nil {
				s.Log.Error(err, "An agent's kept evidence does not read; it is forgotten", "agent", key)
				st.Reset()
			}
		case !ok && last.After(at[key]):
			st.Reset()
		}
	}
	return states, last, nil
}

// entry is an agent's bytes and when they were written.
type entry struct {
	b  []byte
	at time.Time
}

// readShards reads the shards name(0), name(1), ... up to the first that
// does not exist: each agent's newest entry.
func (s *StateStore) readShards(ctx context.Context, name func(int) string) (map[types.NamespacedName]entry, error) {
	out := map[types.NamespacedName]entry{}
	for i := range StateShards {
		var cm corev1.ConfigMap
		if err := s.Reader.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: name(i)}, &cm); err != nil {
			if apierrors.IsNotFound(err) {
				break
			}
			return nil, fmt.Errorf("reading the breaker's state %s/%s: %w", s.Namespace, name(i), err)
		}
		when := millis(cm.Data[stateAt])
		shard, err := decodeEntries(cm.BinaryData[stateKey])
		if err != nil {
			s.Log.Error(err, "The breaker's kept state does not read; the agents in it learn again", "configMap", name(i))
			continue
		}
		for key, b := range shard {
			if prev, ok := out[key]; !ok || when.After(prev.at) {
				out[key] = entry{b: b, at: when}
			}
		}
	}
	return out, nil
}

// SaveAll writes every agent's whole state, in as many shards as it
// takes, and deletes the shards it no longer takes.
func (s *StateStore) SaveAll(ctx context.Context, now time.Time, states map[types.NamespacedName]*AgentState) error {
	_, err := s.saveShards(ctx, ShardName, "all", now, states, func(st *AgentState) []byte {
		b, _ := st.MarshalBinary()
		return b
	})
	return err
}

// SaveTick writes every agent's tick part of the tick at now. It reports
// how many agents it wrote.
func (s *StateStore) SaveTick(ctx context.Context, now time.Time, states map[types.NamespacedName]*AgentState) (int, error) {
	return s.saveShards(ctx, TickShardName, "tick", now, states, func(st *AgentState) []byte { return st.AppendTick(nil, now) })
}

func (s *StateStore) saveShards(ctx context.Context, name func(int) string, part string, now time.Time,
	states map[types.NamespacedName]*AgentState, encode func(*AgentState) []byte) (int, error) {
	keys := sortedKeys(states)
	var shards [][]byte
	var counts []int
	var cur []byte
	n := 0
	for _, key := range keys {
		e := appendEntry(nil, key, encode(states[key]))
		if len(cur)+len(e) > s.shardBytes() && len(cur) > 0 {
			shards, counts = append(shards, cur), append(counts, n)
			cur, n = nil, 0
		}
		cur, n = append(cur, e...), n+1
	}
	if len(cur) > 0 || len(shards) == 0 {
		shards, counts = append(shards, cur), append(counts, n)
	}
	if len(shards) > StateShards {
		return 0, fmt.Errorf("%d agents' states take %d ConfigMaps of %d KiB, more than %d", len(keys), len(shards), s.shardBytes()>>10, StateShards)
	}
	for i, b := range shards {
		if err := s.put(ctx, name(i), part, now, counts[i], b); err != nil {
			// How many shards there are is not known any more: the next
			// save deletes up to the first missing.
			delete(s.shards, part)
			return 0, err
		}
	}
	// The shards no longer needed: those this store wrote last time, or,
	// before it wrote any, whatever the last leader left.
	last, known := s.shards[part]
	for i := len(shards); i < StateShards && (!known || i < last); i++ {
		err := s.Client.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: name(i)}})
		delete(s.written, name(i))
		if apierrors.IsNotFound(err) {
			if known {
				continue
			}
			break
		}
		if err != nil {
			delete(s.shards, part)
			return 0, fmt.Errorf("deleting the breaker's state %s/%s: %w", s.Namespace, name(i), err)
		}
	}
	if s.shards == nil {
		s.shards = map[string]int{}
	}
	s.shards[part] = len(shards)
	return len(keys), nil
}

// put writes b, the agents' entries of one ConfigMap, as name.
func (s *StateStore) put(ctx context.Context, name, part string, now time.Time, agents int, b []byte) error {
	data := map[string]string{stateAt: strconv.FormatInt(now.UnixMilli(), 10), stateAgents: strconv.Itoa(agents)}
	binary := map[string][]byte{stateKey: b}
	if s.written == nil {
		s.written = map[string]string{}
	}
	cm := corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: name, Labels: map[string]string{stateLabel: part}},
		Data: data, BinaryData: binary}
	if rv, ok := s.written[name]; ok {
		// Written by this store last: no read needed. Anyone else's
		// write since (a conflict) or a deletion reads it again.
		cm.ResourceVersion = rv
		err := s.Client.Update(ctx, &cm)
		if err == nil {
			s.written[name] = cm.ResourceVersion
			return nil
		}
		delete(s.written, name)
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("writing the breaker's state %s/%s: %w", s.Namespace, name, err)
		}
		cm.ResourceVersion = ""
	}
	var cur corev1.ConfigMap
	err := s.Reader.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: name}, &cur)
	switch {
	case apierrors.IsNotFound(err):
		err = s.Client.Create(ctx, &cm)
	case err == nil:
		cm = cur
		cm.Data, cm.BinaryData = data, binary
		err = s.Client.Update(ctx, &cm)
	}
	if err != nil {
		return fmt.Errorf("writing the breaker's state %s/%s: %w", s.Namespace, name, err)
	}
	s.written[name] = cm.ResourceVersion
	return nil
}

// LoadPending reads the freezes the last leader tripped on and could not
// make: the new leader makes them.
func (s *StateStore) LoadPending(ctx context.Context) (map[types.NamespacedName]*custosv1alpha1.AgentFreeze, error) {
	out := map[types.NamespacedName]*custosv1alpha1.AgentFreeze{}
	var cm corev1.ConfigMap
	err := s.Reader.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: PendingName}, &cm)
	switch {
	case apierrors.IsNotFound(err):
		return out, nil
	case err != nil:
		return nil, fmt.Errorf("reading the breaker's pending freezes %s/%s: %w", s.Namespace, PendingName, err)
	}
	var list []custosv1alpha1.AgentFreeze
	if raw := cm.BinaryData[stateKey]; len(raw) > 0 {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("reading the breaker's pending freezes %s/%s: %w", s.Namespace, PendingName, err)
		}
	}
	for i := range list {
		f := &list[i]
		out[types.NamespacedName{Namespace: f.Namespace, Name: f.Spec.Agent}] = f
	}
	return out, nil
}

// SavePending writes the freezes tripped at or before now and not made
// yet (by agent), as JSON, where the states are kept.
func (s *StateStore) SavePending(ctx context.Context, now time.Time, pending map[types.NamespacedName]*custosv1alpha1.AgentFreeze) error {
	list := make([]custosv1alpha1.AgentFreeze, 0, len(pending))
	for _, key := range sortedKeys(pending) {
		list = append(list, *pending[key])
	}
	raw, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return s.put(ctx, PendingName, "pending", now, len(list), raw)
}

// sortedKeys are m's keys, in order.
func sortedKeys[V any](m map[types.NamespacedName]V) []types.NamespacedName {
	keys := make([]types.NamespacedName, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b types.NamespacedName) int { return cmp.Compare(a.String(), b.String()) })
	return keys
}

// An entry is the agent's "namespace/name" (its length in two bytes) and
// its state (its length in four).
func appendEntry(b []byte, key types.NamespacedName, state []byte) []byte {
	k := key.String()
	b = binary.LittleEndian.AppendUint16(b, uint16(len(k)))
	b = append(b, k...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(state)))
	return append(b, state...)
}

func decodeEntries(b []byte) (map[types.NamespacedName][]byte, error) {
	out := map[types.NamespacedName][]byte{}
	d := decoder{b: b}
	for len(d.b) > 0 && d.err == nil {
		k := string(d.take(int(binary.LittleEndian.Uint16(d.take(2)))))
		v := d.take(int(binary.LittleEndian.Uint32(d.take(4))))
		ns, name, ok := strings.Cut(k, "/")
		if d.err == nil && (!ok || ns == "" || name == "") {
			d.fail("%q is not namespace/name", k)
		}
		out[types.NamespacedName{Namespace: ns, Name: name}] = v
	}
	if d.err != nil {
		return nil, d.err
	}
	return out, nil
}
