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

package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/breaker"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/fixtures"
)

// watched is an agent's breaker state after days of learning about 20
// records a call (the warm-up over or not), and a few ticks of six times
// as much when spiking.
func watched(days int, spiking bool) *breaker.AgentState {
	p := breaker.DefaultDetectorParams
	p.Tick = time.Minute
	st := &breaker.AgentState{}
	now := time.Now()
	t := now.Add(-time.Duration(days) * 24 * time.Hour)
	for ; t.Before(now.Add(-5 * time.Minute)); t = t.Add(p.Tick) {
		p.Observe(st, t, breaker.Observation{Records: 200, Calls: 10})
	}
	for ; t.Before(now); t = t.Add(p.Tick) {
		rise := 1.0
		if spiking {
			rise = 6
		}
		p.Observe(st, t, breaker.Observation{Records: 200 * rise, Calls: 10})
	}
	return st
}

// TestTop: kubectl custos top shows every agent as the breaker's leader
// kept it, the most evidence first, with how it is watched (the tenant's
// sensitivity, Observe in its first days) and whether it is frozen; an
// agent's owner may not read it.
func TestTop(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cp, err := controlplane.Start(ctx, controlplane.Options{RepoRoot: "../.."})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = cp.Stop() }()
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(scheme))
	c, err := client.New(cp.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	tenant := fixtures.UniqueTenant("finance")
	b := fixtures.DataBoundary(tenant)
	b.Spec.Breaker = &custosv1alpha1.BreakerPolicy{Sensitivity: custosv1alpha1.SensitivityHigh}
	fixtures.Create(t, c, b)
	ns := fixtures.CreateTenantNamespace(t, c, tenant)
	system := fixtures.Create(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "custos-system-"}}).Name
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	g.Expect(controlplane.WriteKubeconfig(kubeconfig, cp.Config)).To(Succeed())
	states := map[types.NamespacedName]*breaker.AgentState{}
	for name, st := range map[string]*breaker.AgentState{"steady": watched(9, false), "spiking": watched(9, true), "newcomer": watched(2, false), "held": watched(9, false)} {
		a := fixtures.Create(t, c, fixtures.Agent(ns, name, tenant))
		a.Status.Lifecycle = &custosv1alpha1.LifecycleStatus{Phase: custosv1alpha1.AgentPhaseActive}
		g.Expect(c.Status().Update(ctx, a)).To(Succeed())
		states[types.NamespacedName{Namespace: ns, Name: name}] = st
	}
	fixtures.Create(t, c, &custosv1alpha1.AgentFreeze{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "held-manual"},
		Spec: custosv1alpha1.AgentFreezeSpec{Agent: "held", Trigger: custosv1alpha1.FreezeManual, Reason: "looking into it"}})
	store := &breaker.StateStore{Reader: c, Client: c, Namespace: system}
	tick := time.Now().Truncate(time.Second)
	g.Expect(store.SaveAll(ctx, tick.Add(-time.Minute), states)).To(Succeed())
	_, err = store.SaveTick(ctx, tick, states)
	g.Expect(err).NotTo(HaveOccurred())

	var out, errOut bytes.Buffer
	code := run([]string{"top", "--kubeconfig", kubeconfig, "-n", ns, "--custos-namespace", system}, &out, &errOut)
	g.Expect(code).To(Equal(exitOK), errOut.String())
	t.Log("\n" + out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	g.Expect(lines[0]).To(HavePrefix("As of the breaker's tick at " + tick.UTC().Format(time.RFC3339)))
	g.Expect(strings.Fields(lines[1])).To(Equal([]string{"NAMESPACE", "AGENT", "RECORDS/MIN", "BASELINE/MIN", "EVIDENCE", "WATCH", "STATE"}))
	g.Expect(lines).To(HaveLen(6))
	spiking := strings.Fields(lines[2])
	g.Expect(spiking[:3]).To(Equal([]string{ns, "spiking", "1200"}), "the most evidence first, six times its 200 a minute")
	g.Expect(spiking[3]).To(Equal("200"))
	g.Expect(lines[2]).To(MatchRegexp(`\s[1-9][0-9.]*/6 records per call\s+High\s+Active`), "High: 6 spreads trip it")
	g.Expect(out.String()).To(MatchRegexp(`newcomer\s+200\s+200\s+0\.0/6\s+High, Observe \(first days\)\s+Active, learning until `))
	g.Expect(out.String()).To(MatchRegexp(`held\s+200\s+200\s+0\.0/6\s+High\s+Frozen by held-manual \(Manual\)`))
	g.Expect(out.String()).To(MatchRegexp(`steady\s+200\s+200\s+0\.0/6\s+High\s+Active`))

	// An owner of the agents may not read the breaker's state.
	out.Reset()
	errOut.Reset()
	code = run([]string{"top", "--kubeconfig", kubeconfig, "-n", ns, "--custos-namespace", system, "--as", "olga"}, &out, &errOut)
	g.Expect(code).To(Equal(exitTrouble))
	g.Expect(errOut.String()).To(ContainSubstring("forbidden"))
	// Nor may anyone give -n and -A.
	g.Expect(run([]string{"top", "-n", ns, "-A"}, &out, &errOut)).To(Equal(exitUsage))
}
