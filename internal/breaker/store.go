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
)

// The ConfigMaps the breaker keeps its states in, in the manager's own
// namespace: StateName-0 to StateName-63 (every agent's whole state, in
// shards) and StateName-hot (the hot parts, every tick).
const (
	StateName = "custos-breaker-state"
	// StateShards is the most shards: 64 of 768 KiB hold about 20,000
	// agents.
	StateShards = 64
	stateLabel  = "custos.dev/breaker-state"
	stateAt     = "at"
	stateAgents = "agents"
	stateKey    = "states"
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
}

func (s *StateStore) shardBytes() int {
	if s.ShardBytes > 0 {
		return s.ShardBytes
	}
	return 768 << 10
}

// ShardName is the i-th shard's ConfigMap; HotName the hot parts'.
func ShardName(i int) string { return StateName + "-" + strconv.Itoa(i) }

// HotName is the ConfigMap of the hot parts.
const HotName = StateName + "-hot"

// Load reads every agent's state as the last leader left it: the newest
// whole state of each, and its hot part when that is newer (an agent the
// hot part no longer lists had none then: its evidence is forgotten). An
// agent whose bytes do not decode is left out (it learns again) and
// logged. No state at all is an empty map.
func (s *StateStore) Load(ctx context.Context) (map[types.NamespacedName]*AgentState, error) {
	states := map[types.NamespacedName]*AgentState{}
	at := map[types.NamespacedName]time.Time{}
	for i := range StateShards {
		shard, when, err := s.read(ctx, ShardName(i))
		if err != nil {
			return nil, err
		}
		if shard == nil {
			break
		}
		for key, b := range shard {
			if when.Before(at[key]) {
				continue
			}
			st := &AgentState{}
			if err := st.UnmarshalBinary(b); err != nil {
				s.Log.Error(err, "An agent's kept state does not read; it learns again", "agent", key, "configMap", ShardName(i))
				continue
			}
			states[key], at[key] = st, when
		}
	}
	hot, hotAt, err := s.read(ctx, HotName)
	if err != nil || hot == nil {
		return states, err
	}
	for key, st := range states {
		if !hotAt.After(at[key]) {
			continue
		}
		b, ok := hot[key]
		if !ok {
			st.Reset()
			continue
		}
		if err := st.RestoreHot(b); err != nil {
			s.Log.Error(err, "An agent's kept evidence does not read; it is forgotten", "agent", key, "configMap", HotName)
			st.Reset()
		}
	}
	return states, nil
}

// read is one ConfigMap's entries and when they were written; nil when it
// does not exist.
func (s *StateStore) read(ctx context.Context, name string) (map[types.NamespacedName][]byte, time.Time, error) {
	var cm corev1.ConfigMap
	if err := s.Reader.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: name}, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, time.Time{}, nil
		}
		return nil, time.Time{}, fmt.Errorf("reading the breaker's state %s/%s: %w", s.Namespace, name, err)
	}
	when := millis(cm.Data[stateAt])
	out, err := decodeEntries(cm.BinaryData[stateKey])
	if err != nil {
		s.Log.Error(err, "The breaker's kept state does not read; the agents in it learn again", "configMap", name)
		return map[types.NamespacedName][]byte{}, when, nil
	}
	return out, when, nil
}

// SaveAll writes every agent's whole state, in as many shards as it
// takes, and deletes the shards it no longer takes.
func (s *StateStore) SaveAll(ctx context.Context, now time.Time, states map[types.NamespacedName]*AgentState) error {
	keys := sortedKeys(states)
	var shards [][]byte
	var counts []int
	var cur []byte
	n := 0
	for _, key := range keys {
		b, _ := states[key].MarshalBinary()
		e := appendEntry(nil, key, b)
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
		return fmt.Errorf("%d agents' states take %d ConfigMaps of %d KiB, more than %d", len(keys), len(shards), s.shardBytes()>>10, StateShards)
	}
	for i, b := range shards {
		if err := s.put(ctx, ShardName(i), "all", now, counts[i], b); err != nil {
			return err
		}
	}
	for i := len(shards); i < StateShards; i++ {
		err := s.Client.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: ShardName(i)}})
		if apierrors.IsNotFound(err) {
			break
		}
		if err != nil {
			return fmt.Errorf("deleting the breaker's state %s/%s: %w", s.Namespace, ShardName(i), err)
		}
	}
	return nil
}

// SaveHot writes the hot parts of the agents that have any, the most
// evidence first, as many as one ConfigMap holds. It reports how many it
// wrote.
func (s *StateStore) SaveHot(ctx context.Context, now time.Time, states map[types.NamespacedName]*AgentState) (int, error) {
	var keys []types.NamespacedName
	for key, st := range states {
		if st.Hot() {
			keys = append(keys, key)
		}
	}
	slices.SortFunc(keys, func(a, b types.NamespacedName) int {
		if c := cmp.Compare(states[b].maxEvidence(), states[a].maxEvidence()); c != 0 {
			return c
		}
		return cmp.Compare(a.String(), b.String())
	})
	var b []byte
	n := 0
	for _, key := range keys {
		e := appendEntry(nil, key, states[key].AppendHot(nil))
		if len(b)+len(e) > s.shardBytes() {
			s.Log.Info("More agents have evidence than the breaker's hot state holds; the least are left out", "kept", n, "agents", len(keys))
			break
		}
		b, n = append(b, e...), n+1
	}
	return n, s.put(ctx, HotName, "hot", now, n, b)
}

func (st *AgentState) maxEvidence() float64 {
	return max(st.evidence[0], st.evidence[1], st.evidence[2])
}

func (s *StateStore) put(ctx context.Context, name, part string, now time.Time, agents int, b []byte) error {
	data := map[string]string{stateAt: strconv.FormatInt(now.UnixMilli(), 10), stateAgents: strconv.Itoa(agents)}
	var cm corev1.ConfigMap
	err := s.Reader.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: name}, &cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: name, Labels: map[string]string{stateLabel: part}},
			Data: data, BinaryData: map[string][]byte{stateKey: b}}
		err = s.Client.Create(ctx, &cm)
	case err == nil:
		cm.Data, cm.BinaryData = data, map[string][]byte{stateKey: b}
		err = s.Client.Update(ctx, &cm)
	}
	if err != nil {
		return fmt.Errorf("writing the breaker's state %s/%s: %w", s.Namespace, name, err)
	}
	return nil
}

func sortedKeys(states map[types.NamespacedName]*AgentState) []types.NamespacedName {
	keys := make([]types.NamespacedName, 0, len(states))
	for k := range states {
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
