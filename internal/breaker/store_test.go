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

package breaker_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/breaker"
)

// learned is an agent's state after a day and a half of learning at about
// level records a tick, and (spike) four ticks of six times as much: with
// evidence accumulating.
func learned(seed uint64, level float64, spike bool) *breaker.AgentState {
	p := breaker.DefaultDetectorParams
	p.WarmUp = 24 * time.Hour
	p.Tick = time.Minute
	rng := rand.New(rand.NewPCG(seed, 7))
	st := &breaker.AgentState{}
	t := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for range 36 * 60 {
		calls := 10 + rng.Float64()*4
		p.Observe(st, t, breaker.Observation{Records: level * calls * (0.8 + 0.4*rng.Float64()), Calls: calls})
		t = t.Add(p.Tick)
	}
	// Ten quiet ticks: whatever evidence the noise left fades.
	for range 10 {
		p.Observe(st, t, breaker.Observation{Records: 0.8 * level * 12, Calls: 12})
		t = t.Add(p.Tick)
	}
	if spike {
		for range 4 {
			p.Observe(st, t, breaker.Observation{Records: 6 * level * 12, Calls: 12})
			t = t.Add(p.Tick)
		}
	}
	return st
}

func bin(t *testing.T, st *breaker.AgentState) []byte {
	t.Helper()
	b, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An agent's state kept and read back is the same state; bytes that are
// not one (cut short, of another format, not numbers, too many) are
// refused, and the state they were read into is left as it was.
func TestAgentStateRoundTrip(t *testing.T) {
	g := NewWithT(t)
	st := learned(1, 20, true)
	g.Expect(st.Hot()).To(BeTrue(), "four ticks of six times the records leave evidence")
	b := bin(t, st)
	var back breaker.AgentState
	g.Expect(back.UnmarshalBinary(b)).To(Succeed())
	g.Expect(bin(t, &back)).To(Equal(b))

	// The hot part alone, onto a state kept before the spike: its
	// evidence is the spike's, its baselines its own.
	before := learned(1, 20, false)
	g.Expect(before.Hot()).To(BeFalse())
	hot, baselines := len(before.AppendHot(nil)), bin(t, before)[len(before.AppendHot(nil)):]
	g.Expect(before.RestoreHot(st.AppendHot(nil))).To(Succeed())
	g.Expect(before.Hot()).To(BeTrue())
	g.Expect(before.AppendHot(nil)).To(Equal(st.AppendHot(nil)))
	g.Expect(bin(t, before)[hot:]).To(Equal(baselines))

	for name, bad := range map[string][]byte{
		"cut short":      b[:len(b)-3],
		"another format": append([]byte{9}, b[1:]...),
		"too long":       append(bytes.Clone(b), 0),
		"not a number":   append(append(bytes.Clone(b[:9]), 0, 0, 0, 0, 0, 0, 0xf8, 0x7f), b[17:]...),
	} {
		kept := bytes.Clone(bin(t, before))
		g.Expect(before.UnmarshalBinary(bad)).NotTo(Succeed(), name)
		g.Expect(before.RestoreHot(bad[:min(len(bad), 90)])).NotTo(Succeed(), name)
		g.Expect(bin(t, before)).To(Equal(kept), "%s: the state is left as it was", name)
	}
}

// The states kept in ConfigMaps of the manager's namespace: in as many
// shards as they take, read back whole; fewer agents take fewer shards
// and the rest are deleted; the tick parts written later make the whole
// states what the last tick left (an agent the newer ones leave out has
// its evidence forgotten); a shard that does not read costs its agents'
// baselines, not the others'.
func TestStateStore(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := apiServer(t)
	ns := newNamespace(t, "custos-system-")
	store := &breaker.StateStore{Reader: c, Client: c, Namespace: ns, ShardBytes: 16 << 10}
	states := map[types.NamespacedName]*breaker.AgentState{}
	for i := range 30 {
		states[types.NamespacedName{Namespace: fmt.Sprintf("team-%d", i%3), Name: fmt.Sprintf("agent-%d", i)}] = learned(uint64(i), float64(5+i), false)
	}
	at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	g.Expect(store.SaveAll(ctx, at, states)).To(Succeed())
	shards := func() int {
		n := 0
		for ; n < breaker.StateShards; n++ {
			err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: breaker.ShardName(n)}, &corev1.ConfigMap{})
			if apierrors.IsNotFound(err) {
				break
			}
			g.Expect(err).NotTo(HaveOccurred())
		}
		return n
	}
	g.Expect(shards()).To(Equal(6), "30 states of about 3 KiB, 16 KiB a shard")
	back, _, err := store.Load(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(back).To(HaveLen(30))
	for k, st := range states {
		g.Expect(back).To(HaveKey(k))
		g.Expect(bin(t, back[k])).To(Equal(bin(t, st)), "%s", k)
	}

	// Ten agents left; three of them with evidence, kept a tick later.
	small := map[types.NamespacedName]*breaker.AgentState{}
	var hot []types.NamespacedName
	for k, st := range states {
		if len(small) < 10 {
			small[k] = st
		}
	}
	at = at.Add(5 * time.Minute)
	g.Expect(store.SaveAll(ctx, at, small)).To(Succeed())
	g.Expect(shards()).To(Equal(2), "the shards no longer needed are deleted")
	for k := range small {
		if len(hot) < 3 {
			hot = append(hot, k)
			small[k] = learned(uint64(len(hot)), 30, true)
		}
	}
	tickAt := at.Add(time.Minute)
	wrote, err := store.SaveTick(ctx, tickAt, small)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(wrote).To(Equal(10))
	back, _, err = store.Load(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(back).To(HaveLen(10))
	for k, st := range small {
		g.Expect(back[k].Hot()).To(Equal(st.Hot()), "%s", k)
		g.Expect(back[k].AppendTick(nil, tickAt)).To(Equal(st.AppendTick(nil, tickAt)), "%s: as of the last tick", k)
	}
	// A tick later one of them is left out (the tick parts written in
	// part): its evidence is forgotten, not kept stale.
	partial := maps.Clone(small)
	delete(partial, hot[0])
	_, err = store.SaveTick(ctx, tickAt.Add(time.Minute), partial)
	g.Expect(err).NotTo(HaveOccurred())
	back, _, err = store.Load(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(back[hot[0]].Hot()).To(BeFalse(), "left out of the newer tick parts")
	g.Expect(back[hot[1]].Hot()).To(BeTrue())
	// Another tick later none has evidence: the tick parts say so.
	calm := map[types.NamespacedName]*breaker.AgentState{}
	for k := range small {
		calm[k] = learned(1, 30, false)
	}
	_, err = store.SaveTick(ctx, tickAt.Add(2*time.Minute), calm)
	g.Expect(err).NotTo(HaveOccurred())
	back, _, err = store.Load(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	for _, k := range hot {
		g.Expect(back[k].Hot()).To(BeFalse(), "%s: its evidence faded before the leader changed", k)
	}

	// A shard overwritten with bytes that are not states.
	var cm corev1.ConfigMap
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: breaker.ShardName(1)}, &cm)).To(Succeed())
	lost := cm.Data["agents"]
	cm.BinaryData["states"] = []byte{1, 2, 3}
	g.Expect(c.Update(ctx, &cm)).To(Succeed())
	back, _, err = store.Load(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fmt.Sprint(10-len(back))).To(Equal(lost), "the agents of the shard that does not read learn again; the others keep theirs")

	// The store writes what it wrote itself without reading it first;
	// written by someone else since (the shard above), it reads it again.
	gets := &countingReader{Reader: c}
	store.Reader = gets
	g.Expect(store.SaveAll(ctx, at.Add(10*time.Minute), small)).To(Succeed())
	g.Expect(gets.n).To(Equal(1), "the shard someone else wrote, read again after the conflict")
	back, _, err = store.Load(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(back).To(HaveLen(10), "every shard written whole again")
	gets.n = 0
	for i := range 3 {
		_, err = store.SaveTick(ctx, tickAt.Add(time.Duration(3+i)*time.Minute), calm)
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(store.SaveAll(ctx, at.Add(15*time.Minute), small)).To(Succeed())
	g.Expect(gets.n).To(BeZero(), "no read before a write of what the store wrote last")
}

// countingReader counts Gets.
type countingReader struct {
	client.Reader
	n int
}

func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.n++
	return r.Reader.Get(ctx, key, obj, opts...)
}

// The leader changes while an agent's records are six times its usual:
// the new leader goes on from the state the last one kept (baselines,
// evidence, the week of learning behind it) and freezes the agent as one
// leader would have, but for the ticks nobody observed, where a leader
// learning again would trip nothing for its whole warm-up.
func TestRunnerKeepsItsStateAcrossLeaders(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	w := newUsageWorld(t, custosv1alpha1.BreakerEnforce, nil)
	c := w.c
	params := leaderParams()
	store := &breaker.StateStore{Reader: c, Client: c, Namespace: newNamespace(t, "custos-system-")}
	leader := func() *breaker.Runner {
		return &breaker.Runner{Reports: c, Agents: c, Client: c, Namespace: w.gatewayNS, Params: params, Store: store, SaveEvery: 5 * time.Minute}
	}
	first := leader()
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	now = w.learn(first, params, now)
	for range 2 {
		w.take(now, 6)
		g.Expect(first.Step(ctx, now)).To(Succeed())
		now = now.Add(params.Tick)
	}
	g.Expect(w.frozen()).To(BeNil(), "two ticks are not enough evidence")
	var tick corev1.ConfigMap
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: store.Namespace, Name: breaker.TickShardName(0)}, &tick)).To(Succeed())
	g.Expect(tick.Data).To(HaveKeyWithValue("at", strconv.FormatInt(now.Add(-params.Tick).UnixMilli(), 10)), "the agent's last tick is kept")

	// The first leader is gone; a second takes over a tick later.
	now = now.Add(params.Tick)
	second := leader()
	took := 0
	for ; w.frozen() == nil && took < 12; took++ {
		w.take(now, 6)
		g.Expect(second.Step(ctx, now)).To(Succeed())
		now = now.Add(params.Tick)
	}
	frozen := w.frozen()
	g.Expect(frozen).NotTo(BeNil(), "the new leader learned the agent again instead of going on")
	t.Logf("the new leader tripped after %d ticks of its own: %s", took, frozen.Spec.Reason)
	// One leader would have tripped after five ticks: the first leader
	// saw two, the new one's first reads the reports and learns nothing,
	// and three more are enough.
	g.Expect(took).To(BeNumerically("<=", 4), "the new leader went on from the evidence kept")
	g.Expect(frozen.Spec.Trigger).To(Equal(custosv1alpha1.FreezeTrend))

	// A leader with nothing kept trips nothing in its warm-up.
	w2 := newUsageWorld(t, custosv1alpha1.BreakerEnforce, nil)
	fresh := &breaker.Runner{Reports: c, Agents: c, Client: c, Namespace: w2.gatewayNS, Params: params,
		Store: &breaker.StateStore{Reader: c, Client: c, Namespace: newNamespace(t, "custos-system-")}}
	for range 12 {
		w2.take(now, 6)
		g.Expect(fresh.Step(ctx, now)).To(Succeed())
		now = now.Add(params.Tick)
	}
	g.Expect(w2.frozen()).To(BeNil(), "in its warm-up")
}

// A trip whose freeze cannot be made (the API server or the webhook away)
// is made again each tick, and by the next leader when this one goes: the
// trip reset the evidence the new leader reads, so the freeze must be
// kept with it. Made twice (a create that reached the API server but did
// not answer), it is still one freeze: every try names the same.
func TestRunnerKeepsAPendingFreezeAcrossLeaders(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	w := newUsageWorld(t, custosv1alpha1.BreakerEnforce, nil)
	c := w.c
	params := leaderParams()
	store := &breaker.StateStore{Reader: c, Client: c, Namespace: newNamespace(t, "custos-system-")}
	leader := func(c client.Client) *breaker.Runner {
		return &breaker.Runner{Reports: w.c, Agents: w.c, Client: c, Namespace: w.gatewayNS, Params: params, Store: store}
	}
	var tries []string
	first := leader(createsFreezes{Client: c, create: func(ctx context.Context, f *custosv1alpha1.AgentFreeze, opts ...client.CreateOption) error {
		tries = append(tries, f.Name)
		return apierrors.NewTimeoutError("the webhook did not answer", 1)
	}})
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	now = w.learn(first, params, now)
	for took := 0; len(tries) < 2 && took < 12; took++ {
		w.take(now, 6)
		g.Expect(first.Step(ctx, now)).To(Succeed())
		now = now.Add(params.Tick)
	}
	g.Expect(tries).To(HaveLen(2), "the trip's freeze, tried at the trip and again the next tick")
	g.Expect(tries[0]).To(MatchRegexp(`^reconciler-trend-[a-z0-9]{5}$`))
	g.Expect(tries[1]).To(Equal(tries[0]), "every try of a trip names the same freeze")
	g.Expect(w.frozen()).To(BeNil())
	var kept corev1.ConfigMap
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: store.Namespace, Name: breaker.PendingName}, &kept)).To(Succeed())
	g.Expect(string(kept.BinaryData["states"])).To(ContainSubstring(tries[0]))

	// The first leader is gone; the agent is back to normal, so the
	// second would never trip again: it makes the kept freeze at its
	// first tick.
	second := leader(c)
	w.take(now, 1)
	g.Expect(second.Step(ctx, now)).To(Succeed())
	frozen := w.frozen()
	g.Expect(frozen).NotTo(BeNil(), "the new leader lost the trip the last could not make")
	g.Expect(frozen.Name).To(Equal(tries[0]))
	g.Expect(frozen.Spec.Trigger).To(Equal(custosv1alpha1.FreezeTrend))
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: store.Namespace, Name: breaker.PendingName}, &kept)).To(Succeed())
	g.Expect(string(kept.BinaryData["states"])).To(Equal("[]"), "made, and no longer kept")

	// Kept though it was made (its create's answer lost): made again, it
	// is the same freeze, and no longer kept.
	pending := func(f custosv1alpha1.AgentFreeze) map[types.NamespacedName]*custosv1alpha1.AgentFreeze {
		f.ResourceVersion, f.UID = "", ""
		return map[types.NamespacedName]*custosv1alpha1.AgentFreeze{w.key: &f}
	}
	g.Expect(store.SavePending(ctx, now, pending(*frozen))).To(Succeed())
	now = now.Add(params.Tick)
	w.take(now, 1)
	g.Expect(leader(c).Step(ctx, now)).To(Succeed())
	var freezes custosv1alpha1.AgentFreezeList
	g.Expect(c.List(ctx, &freezes, client.InNamespace(w.agentsNS))).To(Succeed())
	g.Expect(freezes.Items).To(HaveLen(1))
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: store.Namespace, Name: breaker.PendingName}, &kept)).To(Succeed())
	g.Expect(string(kept.BinaryData["states"])).To(Equal("[]"))

	// A trip kept while its Agent was deleted and applied again is made
	// for the new one: as every freeze, it holds the name.
	g.Expect(c.Delete(ctx, frozen)).To(Succeed())
	old := *frozen
	old.Name, old.Labels = "reconciler-trend-old00", map[string]string{custosv1alpha1.AgentUIDLabel: "an-earlier-agent"}
	g.Expect(store.SavePending(ctx, now, pending(old))).To(Succeed())
	now = now.Add(params.Tick)
	w.take(now, 1)
	g.Expect(leader(c).Step(ctx, now)).To(Succeed())
	g.Expect(w.frozen()).To(HaveField("Name", "reconciler-trend-old00"), "deleting the Agent and applying it again escapes no trip")

	// A trip kept for an agent that is gone waits for its name, for a
	// warm-up's time; then it is dropped.
	g.Expect(store.SavePending(ctx, now, map[types.NamespacedName]*custosv1alpha1.AgentFreeze{{Namespace: w.key.Namespace, Name: "gone"}: {
		ObjectMeta: metav1.ObjectMeta{Namespace: w.key.Namespace, Name: "gone-trend-aaaaa", Annotations: map[string]string{"custos.dev/tripped-at": now.Format(time.RFC3339)}},
		Spec:       custosv1alpha1.AgentFreezeSpec{Agent: "gone", Trigger: custosv1alpha1.FreezeTrend, Reason: "tripped"},
	}})).To(Succeed())
	next := leader(c)
	now = now.Add(params.Tick)
	w.take(now, 1)
	g.Expect(next.Step(ctx, now)).To(Succeed())
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: store.Namespace, Name: breaker.PendingName}, &kept)).To(Succeed())
	g.Expect(string(kept.BinaryData["states"])).To(ContainSubstring("gone-trend-aaaaa"), "kept while the name may come back")
	now = now.Add(params.WarmUp + params.Tick)
	w.take(now, 1)
	g.Expect(next.Step(ctx, now)).To(Succeed())
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: store.Namespace, Name: breaker.PendingName}, &kept)).To(Succeed())
	g.Expect(string(kept.BinaryData["states"])).To(Equal("[]"), "dropped after a warm-up's time")
}

// A trip whose freeze is neither made nor kept (the API server refusing
// both) holds back the states too: the ones written before the trip still
// have the evidence that tripped, where the trip's own would have it reset
// and the trip lost with the leader.
func TestRunnerWritesNoStateWhileATripIsNotKept(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	w := newUsageWorld(t, custosv1alpha1.BreakerEnforce, nil)
	c := w.c
	params := leaderParams()
	failing := true
	storeClient := writesConfigMaps{Client: c, write: func(name string) error {
		if failing && name == breaker.PendingName {
			return apierrors.NewServiceUnavailable("etcd is away")
		}
		return nil
	}}
	store := &breaker.StateStore{Reader: c, Client: storeClient, Namespace: newNamespace(t, "custos-system-")}
	tried := 0
	r := &breaker.Runner{Reports: c, Agents: c, Namespace: w.gatewayNS, Params: params, Store: store,
		Client: createsFreezes{Client: c, create: func(context.Context, *custosv1alpha1.AgentFreeze, ...client.CreateOption) error {
			tried++
			return apierrors.NewServiceUnavailable("the webhook is away")
		}}}
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	now = w.learn(r, params, now)
	var trippedAt time.Time
	for took := 0; tried == 0 && took < 12; took++ {
		w.take(now, 6)
		g.Expect(r.Step(ctx, now)).To(Succeed())
		trippedAt = now
		now = now.Add(params.Tick)
	}
	g.Expect(tried).To(Equal(1), "tripped")
	// The newest state kept: whole, or a tick part.
	keptAt := func() string {
		newest := ""
		for _, name := range []string{breaker.ShardName(0), breaker.TickShardName(0)} {
			var cm corev1.ConfigMap
			g.Expect(c.Get(ctx, client.ObjectKey{Namespace: store.Namespace, Name: name}, &cm)).To(Succeed())
			if at := cm.Data["at"]; len(at) > len(newest) || (len(at) == len(newest) && at > newest) {
				newest = at
			}
		}
		return newest
	}
	before := strconv.FormatInt(trippedAt.Add(-params.Tick).UnixMilli(), 10)
	g.Expect(keptAt()).To(Equal(before), "the trip's tick (its evidence reset) is not written while the trip is not kept")
	w.take(now, 1)
	g.Expect(r.Step(ctx, now)).To(Succeed())
	g.Expect(keptAt()).To(Equal(before), "nor the ticks after it")

	// Once the trip is kept, the states are written again.
	failing = false
	now = now.Add(params.Tick)
	w.take(now, 1)
	g.Expect(r.Step(ctx, now)).To(Succeed())
	g.Expect(keptAt()).To(Equal(strconv.FormatInt(now.UnixMilli(), 10)))
	pending, err := store.LoadPending(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pending).To(HaveKey(w.key))
}

// writesConfigMaps is a client whose ConfigMap creates and updates first
// ask write, which may refuse them.
type writesConfigMaps struct {
	client.Client
	write func(name string) error
}

func (c writesConfigMaps) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if err := c.write(obj.GetName()); err != nil {
		return err
	}
	return c.Client.Create(ctx, obj, opts...)
}

func (c writesConfigMaps) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if err := c.write(obj.GetName()); err != nil {
		return err
	}
	return c.Client.Update(ctx, obj, opts...)
}

// createsFreezes is a client whose AgentFreeze creates go to create.
type createsFreezes struct {
	client.Client
	create func(ctx context.Context, f *custosv1alpha1.AgentFreeze, opts ...client.CreateOption) error
}

func (c createsFreezes) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if f, ok := obj.(*custosv1alpha1.AgentFreeze); ok {
		return c.create(ctx, f, opts...)
	}
	return c.Client.Create(ctx, obj, opts...)
}

// leaderParams are the breaker's settings in the tests of its kept state:
// an hour's warm-up, one-minute ticks.
func leaderParams() breaker.DetectorParams {
	p := breaker.DefaultDetectorParams
	p.WarmUp, p.Tick = time.Hour, time.Minute
	return p
}

// learn has r learn the agent taking what it usually does for 90 minutes
// from now (past leaderParams' warm-up), and returns the time after.
func (w *usageWorld) learn(r *breaker.Runner, params breaker.DetectorParams, now time.Time) time.Time {
	for end := now.Add(90 * time.Minute); now.Before(end); now = now.Add(params.Tick) {
		w.take(now, 1)
		w.g.Expect(r.Step(context.Background(), now)).To(Succeed())
	}
	return now
}
