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
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/breaker"
	"github.com/custos-dev/custos/internal/gateway"
	"github.com/custos-dev/custos/test/fixtures"
)

// trail is an audit.Sequencer that keeps what it is given.
type trail struct {
	mu     sync.Mutex
	events []audit.Event
}

func (tr *trail) Record(ctx context.Context, e audit.Event) { tr.RecordSeq(ctx, e) }

func (tr *trail) RecordSeq(_ context.Context, e audit.Event) (uint64, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.events = append(tr.events, e)
	return uint64(len(tr.events) - 1), true
}

// The breaker in the manager reads what two gateway replicas report of an
// agent (their usage, in ConfigMaps, as custos-gateway writes them), learns
// it, trips on a sustained sixfold rise in records per call, and freezes
// it: an AgentFreeze with trigger Trend, citing its breaker.tripped record.
// A replica that starts again (a new report, counting from zero) is no
// rise. Nothing trips before.
func TestRunnerFreezesOnATrend(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := apiServer(t)
	gatewayNS := newNamespace(t, "custos-gateway-")
	tenant := fixtures.UniqueTenant("brk")
	agentsNS := fixtures.CreateTenantNamespace(t, c, tenant)
	agent := fixtures.Agent(agentsNS, "reconciler", tenant)
	g.Expect(c.Create(ctx, agent)).To(Succeed())
	agent.Status.Lifecycle = &custosv1alpha1.LifecycleStatus{Phase: custosv1alpha1.AgentPhaseActive}
	g.Expect(c.Status().Update(ctx, agent)).To(Succeed())

	params := breaker.DefaultDetectorParams
	params.WarmUp = time.Hour
	params.Tick = time.Minute // fewer API round trips than 15 s ticks, the same detector
	tr := &trail{}
	r := &breaker.Runner{Reports: c, Agents: c, Client: c, Namespace: gatewayNS, Params: params, Audit: tr, AuditLogID: "custos-manager/test"}

	key := types.NamespacedName{Namespace: agentsNS, Name: "reconciler"}
	replicas := []*gateway.Usage{{}, {}}
	names := []string{"gw-a", "gw-b"}
	report := func(i int, now time.Time) {
		cm := &corev1.ConfigMap{}
		err := c.Get(ctx, client.ObjectKey{Namespace: gatewayNS, Name: "custos-usage-" + names[i]}, cm)
		if err != nil {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: gatewayNS, Name: "custos-usage-" + names[i],
				Labels: map[string]string{gateway.UsageLabel: "gateway"}}, Data: replicas[i].Report(now)}
			g.Expect(c.Create(ctx, cm)).To(Succeed())
			return
		}
		cm.Data = replicas[i].Report(now)
		g.Expect(c.Update(ctx, cm)).To(Succeed())
	}
	rng := rand.New(rand.NewPCG(11, 12))
	// Each tick, 30 calls of about 20 records, served by either replica;
	// from rise on, six times the records per call.
	tick := func(now time.Time, rise float64) *custosv1alpha1.AgentFreeze {
		for range 30 {
			records := int64(math.Round(rise * math.Exp(math.Log(20)+0.4*rng.NormFloat64())))
			replicas[rng.IntN(2)].Add(key, records, now)
		}
		report(0, now)
		report(1, now)
		g.Expect(r.Step(ctx, now)).To(Succeed())
		var freezes custosv1alpha1.AgentFreezeList
		g.Expect(c.List(ctx, &freezes, client.InNamespace(agentsNS))).To(Succeed())
		if len(freezes.Items) > 0 {
			return &freezes.Items[0]
		}
		return nil
	}
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	for end := now.Add(150 * time.Minute); now.Before(end); now = now.Add(params.Tick) {
		if now.Equal(time.Date(2026, 12, 7, 10, 30, 0, 0, time.UTC)) {
			// gw-b starts again: a new report, from zero.
			g.Expect(c.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: gatewayNS, Name: "custos-usage-gw-b"}})).To(Succeed())
			replicas[1] = &gateway.Usage{}
		}
		g.Expect(tick(now, 1)).To(BeNil(), "tripped on a steady agent at %s", now)
	}
	var frozen *custosv1alpha1.AgentFreeze
	took := 0
	for ; frozen == nil && took < 10; took++ {
		frozen = tick(now, 6)
		now = now.Add(params.Tick)
	}
	g.Expect(frozen).NotTo(BeNil(), "ten minutes of six times the records per call did not trip the breaker")
	t.Logf("tripped after %d ticks of %s: %s", took, params.Tick, frozen.Spec.Reason)
	g.Expect(took).To(BeNumerically(">", 1), "not on one tick")
	g.Expect(frozen.Spec.Agent).To(Equal("reconciler"))
	g.Expect(frozen.Spec.Trigger).To(Equal(custosv1alpha1.FreezeTrend))
	g.Expect(frozen.Spec.Signal).To(Equal(breaker.SignalRecords))
	g.Expect(frozen.Spec.Evidence).NotTo(BeNil())
	g.Expect(frozen.Spec.Evidence.AuditLogID).To(Equal("custos-manager/test"))
	tr.mu.Lock()
	defer tr.mu.Unlock()
	g.Expect(tr.events).To(HaveLen(1))
	e := tr.events[0]
	g.Expect(e.Action).To(Equal(audit.ActionBreakerTripped))
	g.Expect(e.Subject.Name).To(Equal("reconciler"))
	g.Expect(frozen.Spec.Evidence.Sequences).To(Equal([]int64{0}), "the freeze cites the breaker.tripped record")
	g.Expect(e.Details).To(HaveKeyWithValue("trigger", "Trend"))
}
