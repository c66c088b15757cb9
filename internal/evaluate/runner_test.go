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

package evaluate

import (
	"context"
	"errors"
	"fmt"
	clocktesting "k8s.io/utils/clock/testing"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
)

// TestFindingName: one name per agent, rubric and UTC day, a valid
// object name whatever the agent's name.
func TestFindingName(t *testing.T) {
	g := NewWithT(t)
	at := time.Date(2026, 12, 7, 23, 59, 0, 0, time.FixedZone("UTC-5", -5*3600))
	g.Expect(FindingName("payer", RubricProbing, at)).To(Equal("payer-probing-20261208"), "the UTC day")
	long := strings.Repeat("a", 250)
	n1, n2 := FindingName(long, RubricLowConfidence, at), FindingName(long+"b", RubricLowConfidence, at)
	g.Expect(validation.IsDNS1123Subdomain(n1)).To(BeEmpty())
	g.Expect(n1).NotTo(Equal(n2), "names cut to fit stay apart")
	g.Expect(n1).To(HaveSuffix("-low-confidence-20261208"))
}

// TestMerge: a hit adds only the records a Finding lacks; the severity
// and score are the highest seen; evidence keeps the first and latest
// records; a closed Finding given new records opens again.
func TestMerge(t *testing.T) {
	g := NewWithT(t)
	now := metav1.NewTime(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	f := &custosv1alpha1.Finding{}
	hit := func(sev custosv1alpha1.FindingSeverity, score float64, seqs ...uint64) Hit {
		return Hit{Rubric: RubricProbing, Severity: sev, Score: score, From: now.Time, To: now.Time, Seqs: seqs, TraceIDs: []string{"4bf92f3577b34da6a3ce929d0e0e4736", "8d1c2a4e-5f60-4b7a-9c3d-2e1f0a9b8c7d"}, Why: "why"}
	}
	one := func(trail string, h Hit) []cited { return []cited{{trail: trail, seqs: h.Seqs}} }
	reopened, added := merge(f, one("gw-0", hit(custosv1alpha1.SeverityMedium, 0.5, 1, 2, 3)), hit(custosv1alpha1.SeverityMedium, 0.5, 1, 2, 3), now)
	g.Expect(reopened).To(BeFalse())
	g.Expect(added).To(Equal(3))
	g.Expect(f.Status.Phase).To(Equal(custosv1alpha1.FindingOpen))
	g.Expect(f.Status.OpenedAt).To(HaveValue(Equal(now)))

	_, added = merge(f, one("gw-0", hit(custosv1alpha1.SeverityMedium, 0.5, 2, 3)), hit(custosv1alpha1.SeverityMedium, 0.5, 2, 3), now)
	g.Expect(added).To(BeZero(), "counted already")
	_, added = merge(f, one("gw-0", hit(custosv1alpha1.SeverityLow, 0.9, 3, 4)), hit(custosv1alpha1.SeverityLow, 0.9, 3, 4), now)
	g.Expect(added).To(Equal(1))
	g.Expect(f.Status.Severity).To(Equal(custosv1alpha1.SeverityMedium))
	g.Expect(f.Status.Score).To(BeEquivalentTo(90))
	g.Expect(f.Status.Hits).To(BeEquivalentTo(2))
	g.Expect(f.Status.RecordCount).To(BeEquivalentTo(4))
	g.Expect(f.Status.Evidence[0].TraceIDs).To(Equal([]string{"4bf92f3577b34da6a3ce929d0e0e4736"}), "W3C trace IDs only, not a reconcile's ID")

	// Another trail's records are its own evidence.
	_, added = merge(f, one("gw-1", hit(custosv1alpha1.SeverityHigh, 0.1, 1)), hit(custosv1alpha1.SeverityHigh, 0.1, 1), now)
	g.Expect(added).To(Equal(1))
	g.Expect(f.Status.Evidence).To(HaveLen(2))
	g.Expect(f.Status.Severity).To(Equal(custosv1alpha1.SeverityHigh))

	var many []uint64
	for s := uint64(5); s < 200; s++ {
		many = append(many, s)
	}
	merge(f, one("gw-0", hit(custosv1alpha1.SeverityLow, 0, many...)), hit(custosv1alpha1.SeverityLow, 0, many...), now)
	seqs := f.Status.Evidence[0].Sequences
	g.Expect(seqs).To(HaveLen(maxSequences))
	g.Expect(seqs[0]).To(BeEquivalentTo(1))
	g.Expect(seqs[len(seqs)-1]).To(BeEquivalentTo(199))
	g.Expect(f.Status.RecordCount).To(BeEquivalentTo(4 + 1 + 195))

	// More trails than the evidence shows: what each counted is still
	// kept, so a record read again does not count twice.
	for i := range 20 {
		merge(f, one(fmt.Sprintf("gw-%d", i+2), hit(custosv1alpha1.SeverityLow, 0, 1)), hit(custosv1alpha1.SeverityLow, 0, 1), now)
	}
	g.Expect(f.Status.Evidence).To(HaveLen(maxTrails))
	g.Expect(f.Status.Counted).To(HaveLen(22))
	count := f.Status.RecordCount
	_, added = merge(f, one("gw-0", hit(custosv1alpha1.SeverityLow, 0, 199)), hit(custosv1alpha1.SeverityLow, 0, 199), now)
	g.Expect(added).To(BeZero(), "gw-0's evidence is no longer shown, its count is kept")
	_, added = merge(f, one("gw-2", hit(custosv1alpha1.SeverityLow, 0, 1)), hit(custosv1alpha1.SeverityLow, 0, 1), now)
	g.Expect(added).To(BeZero())
	g.Expect(f.Status.RecordCount).To(Equal(count))

	later := metav1.NewTime(now.Add(time.Hour))
	f.Status.Phase, f.Status.ClosedAt = custosv1alpha1.FindingDismissed, &now
	reopened, _ = merge(f, one("gw-0", hit(custosv1alpha1.SeverityLow, 0, 150)), hit(custosv1alpha1.SeverityLow, 0, 150), later)
	g.Expect(reopened).To(BeFalse(), "an old record opens nothing")
	g.Expect(f.Status.Phase).To(Equal(custosv1alpha1.FindingDismissed))
	reopened, _ = merge(f, one("gw-0", hit(custosv1alpha1.SeverityLow, 0, 200)), hit(custosv1alpha1.SeverityLow, 0, 200), later)
	g.Expect(reopened).To(BeTrue())
	g.Expect(f.Status.Phase).To(Equal(custosv1alpha1.FindingOpen))
	g.Expect(f.Status.ClosedAt).To(BeNil())
	g.Expect(f.Status.OpenedAt).To(HaveValue(Equal(later)))
}

// TestMergeAcrossTrails: one hit whose records two trails hold is one hit
// more, and each trail's records count against its own.
func TestMergeAcrossTrails(t *testing.T) {
	g := NewWithT(t)
	now := metav1.NewTime(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	f := &custosv1alpha1.Finding{}
	h := Hit{Rubric: RubricProbing, Severity: custosv1alpha1.SeverityMedium, From: now.Time, To: now.Time, Seqs: []uint64{7, 9, 4, 5, 6}, Why: "why"}
	parts := []cited{{trail: "gw-0@a", seqs: []uint64{7, 9}}, {trail: "gw-1@b", seqs: []uint64{4, 5, 6}}}
	_, added := merge(f, parts, h, now)
	g.Expect(added).To(Equal(5))
	g.Expect(f.Status.Hits).To(BeEquivalentTo(1))
	g.Expect(f.Status.Counted).To(ConsistOf(custosv1alpha1.FindingCount{Trail: "gw-0@a", Seq: 9}, custosv1alpha1.FindingCount{Trail: "gw-1@b", Seq: 6}))
	g.Expect(f.Status.Evidence).To(HaveLen(2))
	_, added = merge(f, parts, h, now)
	g.Expect(added).To(BeZero(), "read again")
	g.Expect(f.Status.Hits).To(BeEquivalentTo(1))
}

// TestEvidenceName: a trail's name in evidence fits the Finding, and two
// long names stay apart.
func TestEvidenceName(t *testing.T) {
	g := NewWithT(t)
	g.Expect(evidenceName("custos-gateway/gw-0", "3f2a9c1b07de")).To(Equal("custos-gateway/gw-0@3f2a9c1b07de"))
	long := "custos-gateway/" + strings.Repeat("p", 300)
	a, b := evidenceName(long, "3f2a9c1b07de"), evidenceName(long+"q", "3f2a9c1b07de")
	g.Expect(len(a)).To(Equal(253))
	g.Expect(a).NotTo(Equal(b))
	g.Expect(a).To(HaveSuffix("@3f2a9c1b07de"))
}

// TestPassCountsAFailedWrite: a pass whose state cannot be written fails
// every trail it read (custos_evaluator_failures_total, which
// CustosEvaluatorFailing watches), writes no state, and the next pass,
// once it can, reads the same records again and counts them once.
func TestPassCountsAFailedWrite(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dir := t.TempDir()
	store, err := audit.OpenSegmentStore(dir, audit.StoreOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	log, err := audit.New(audit.Options{Sinks: []audit.Sink{store}, BufferDir: t.TempDir(), Registerer: prometheus.NewRegistry(), Logger: logr.Discard()})
	g.Expect(err).NotTo(HaveOccurred())
	log.Record(ctx, audit.Event{Action: audit.ActionToolCalled, Decision: audit.DecisionAllow,
		Subject: audit.Subject{Kind: "Agent", Namespace: "ns", Name: "payer"},
		Details: map[string]string{"tool": "pay", "access": "Write", "irreversible": "true", "decisionDigest": "sha256:d", "decision.confidence": "0.1"}})
	g.Expect(log.Flush(ctx)).To(Succeed())

	scheme := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	g.Expect(custosv1alpha1.AddToScheme(scheme)).To(Succeed())
	base := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&custosv1alpha1.Finding{}).Build()
	failing := true
	c := interceptor.NewClient(base, interceptor.Funcs{Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
		if _, ok := obj.(*corev1.ConfigMap); ok && failing {
			return errors.New("the API server is throttling")
		}
		return c.Patch(ctx, obj, p, opts...)
	}})
	trail := "custos-gateway/test-failed-write"
	r := &Runner{Reader: c, Client: c, Namespace: "custos-system", Trails: []Trail{DirTrail(trail, dir)}, Thresholds: Fixed(DefaultThresholds), Log: logr.Discard()}
	before := testutil.ToFloat64(passFailures.WithLabelValues(trail))
	g.Expect(r.Pass(ctx)).To(MatchError(ContainSubstring("writing the evaluator's state")))
	g.Expect(testutil.ToFloat64(passFailures.WithLabelValues(trail)) - before).To(Equal(1.0))
	cm := &corev1.ConfigMap{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "custos-system", Name: StateName}, cm)).To(Succeed())
	g.Expect(cm.Data).To(BeEmpty(), "nothing read is said read")

	failing = false
	g.Expect(r.Pass(ctx)).To(Succeed())
	f := &custosv1alpha1.Finding{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: FindingName("payer", RubricLowConfidence, time.Now())}, f)).To(Succeed())
	g.Expect(f.Status.RecordCount).To(BeEquivalentTo(1), "read twice, counted once")
	g.Expect(testutil.ToFloat64(passFailures.WithLabelValues(trail)) - before).To(Equal(1.0))
}

// TestPassOffersTheCallsThatRaisedNothing: the judge is offered each call
// no rubric of one record hit, not the one that opened a Finding.
func TestPassOffersTheCallsThatRaisedNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dir := t.TempDir()
	store, err := audit.OpenSegmentStore(dir, audit.StoreOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	log, err := audit.New(audit.Options{Sinks: []audit.Sink{store}, BufferDir: t.TempDir(), Registerer: prometheus.NewRegistry(), Logger: logr.Discard()})
	g.Expect(err).NotTo(HaveOccurred())
	subject := audit.Subject{Kind: "Agent", Namespace: "ns", Name: "payer"}
	log.Record(ctx, audit.Event{Action: audit.ActionToolCalled, Decision: audit.DecisionAllow, Subject: subject,
		Details: map[string]string{"tool": "ledger.get_invoice", "access": "Read"}})
	log.Record(ctx, audit.Event{Action: audit.ActionToolCalled, Decision: audit.DecisionAllow, Subject: subject,
		Details: map[string]string{"tool": "bank.pay", "access": "Write", "irreversible": "true", "decisionDigest": "sha256:d", "decision.confidence": "0.1"}})
	log.Record(ctx, audit.Event{Action: audit.ActionToolRefused, Decision: audit.DecisionDeny, Policy: "UnknownTool", Subject: subject,
		Details: map[string]string{"tool": "ledger.export"}})
	g.Expect(log.Flush(ctx)).To(Succeed())
	scheme := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	g.Expect(custosv1alpha1.AddToScheme(scheme)).To(Succeed())
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&custosv1alpha1.Finding{}).Build()
	var offered []string
	r := &Runner{Reader: c, Client: c, Namespace: "custos-system", Trails: []Trail{DirTrail("custos-gateway/gw-0", dir)}, Thresholds: Fixed(DefaultThresholds),
		Log: logr.Discard(), Sample: func(rec *audit.Record, trail string) {
			offered = append(offered, rec.Details["tool"]+"@"+strings.Split(trail, "@")[0])
		}}
	g.Expect(r.Pass(ctx)).To(Succeed())
	g.Expect(offered).To(Equal([]string{"ledger.get_invoice@custos-gateway/gw-0"}))
}

// TestHistoryRubrics: an agent that read about 100 records a day, at
// 10:00-13:59 UTC, for three weeks, then 350 at 03:00 on a Sunday: a
// volume Finding (3.5 times its mean, and over the budget of 320) and an
// idle-slot one, on that day only, from what its AgentReports count;
// read again from the start, nothing doubles.
func TestHistoryRubrics(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dir, log, clk := clockedTrail(g, t, time.Date(2026, 11, 10, 10, 0, 0, 0, time.UTC))
	agent := &custosv1alpha1.Agent{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "payer", UID: "uid-payer"}}
	subject := audit.Subject{Kind: "Agent", Namespace: "ns", Name: "payer", UID: "uid-payer", Tenant: "t"}
	call := func(at time.Time, records int) {
		clk.SetTime(at)
		log.Record(ctx, audit.Event{Action: audit.ActionToolCalled, Decision: audit.DecisionAllow, Subject: subject,
			Details: map[string]string{"tool": "ledger.list_invoices", "toolset": "ns/ledger", "access": "Read", "outcome": "ok", "records": strconv.Itoa(records)}})
	}
	for day := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC); day.Before(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)); day = day.AddDate(0, 0, 1) {
		for h := 10; h < 14; h++ {
			call(day.Add(time.Duration(h)*time.Hour), 25)
		}
	}
	sunday := time.Date(2026, 12, 6, 3, 12, 0, 0, time.UTC)
	call(sunday, 350)
	g.Expect(log.Flush(ctx)).To(Succeed())

	scheme := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	g.Expect(custosv1alpha1.AddToScheme(scheme)).To(Succeed())
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(agent).
		WithStatusSubresource(&custosv1alpha1.Finding{}, &custosv1alpha1.AgentReport{}).Build()
	th := DefaultThresholds
	th.DailyRecordBudget = 320
	runner := func() *Runner {
		return &Runner{Reader: c, Client: c, Namespace: "custos-system", Trails: []Trail{DirTrail("custos-gateway/gw-0", dir)}, Thresholds: Fixed(th), Log: logr.Discard()}
	}
	g.Expect(runner().Pass(ctx)).To(Succeed())

	var list custosv1alpha1.FindingList
	g.Expect(c.List(ctx, &list)).To(Succeed())
	g.Expect(list.Items).To(HaveLen(2), "one volume and one idle-slot Finding, on that day only")
	volume := &custosv1alpha1.Finding{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: FindingName("payer", RubricVolume, sunday)}, volume)).To(Succeed())
	g.Expect(volume.Status.Severity).To(Equal(custosv1alpha1.SeverityHigh), "over the budget")
	g.Expect(volume.Status.Summary).To(Equal("350 records on 2026-12-06, over 3× its daily mean of 100 over the 28 days before (26 days with calls; line 300); " +
		"350 records on 2026-12-06, over the daily budget of 320"))
	g.Expect(volume.Status.RecordCount).To(BeEquivalentTo(1))
	idle := &custosv1alpha1.Finding{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: FindingName("payer", RubricIdleSlot, sunday)}, idle)).To(Succeed())
	g.Expect(idle.Status.Severity).To(Equal(custosv1alpha1.SeverityLow))
	g.Expect(idle.Status.Summary).To(Equal("1 call(s) on 2026-12-06 at 03:00-03:59 UTC, weekend hours in which it made no call this month or the one before (21 days with calls)"))

	rep := &custosv1alpha1.AgentReport{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: ReportName("payer", "uid-payer", "2026-12")}, rep)).To(Succeed())
	g.Expect(rep.Status.Days).To(HaveLen(6))
	g.Expect(rep.Status.Days[5]).To(Equal(custosv1alpha1.ReportDay{Day: 6, Calls: 1, Records: 350}))
	g.Expect(rep.Status.CallsBySlot[24+3]).To(BeEquivalentTo(1))
	g.Expect(rep.Status.CallsBySlot[10]).To(BeEquivalentTo(4), "Tuesday the 1st to Friday the 4th at 10:00, weekdays")

	// Its state lost: the trail is read from the start again, and neither
	// the Findings nor the reports count anything twice.
	g.Expect(c.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "custos-system", Name: StateName}})).To(Succeed())
	g.Expect(runner().Pass(ctx)).To(Succeed())
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(volume), volume)).To(Succeed())
	g.Expect(volume.Status.RecordCount).To(BeEquivalentTo(1))
	again := &custosv1alpha1.AgentReport{}
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(rep), again)).To(Succeed())
	g.Expect(again.Status.Days).To(Equal(rep.Status.Days))
	g.Expect(again.Status.Calls).To(Equal(rep.Status.Calls))
}

// TestHistoryRubricsAcrossBatches: new hours on two days in one batch
// open each day's Finding with that day's calls; a report write that
// fails makes the next pass find the same hits, which the Findings count
// once; an agent that read almost nothing is judged against a floor, not
// never.
func TestHistoryRubricsAcrossBatches(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dir, log, clk := clockedTrail(g, t, time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC))
	agent := &custosv1alpha1.Agent{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "quiet", UID: "uid-quiet"}}
	subject := audit.Subject{Kind: "Agent", Namespace: "ns", Name: "quiet", UID: "uid-quiet", Tenant: "t"}
	call := func(at time.Time, records int) uint64 {
		clk.SetTime(at)
		seq, ok := log.RecordSeq(ctx, audit.Event{Action: audit.ActionToolCalled, Decision: audit.DecisionAllow, Subject: subject,
			Details: map[string]string{"tool": "ledger.get_invoice", "toolset": "ns/ledger", "access": "Read", "outcome": "ok", "records": strconv.Itoa(records)}})
		g.Expect(ok).To(BeTrue())
		return seq
	}
	// Twenty weekdays of a call at 10:00 that returns nothing.
	for day := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC); day.Before(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)); day = day.AddDate(0, 0, 1) {
		if wd := day.Weekday(); wd != time.Saturday && wd != time.Sunday {
			call(day.Add(10*time.Hour), 0)
		}
	}
	tue3 := call(time.Date(2026, 12, 1, 3, 10, 0, 0, time.UTC), 0)
	wed2 := call(time.Date(2026, 12, 2, 2, 10, 0, 0, time.UTC), 0)
	wed3 := call(time.Date(2026, 12, 2, 3, 10, 0, 0, time.UTC), 1000)
	g.Expect(log.Flush(ctx)).To(Succeed())

	scheme := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	g.Expect(custosv1alpha1.AddToScheme(scheme)).To(Succeed())
	base := fake.NewClientBuilder().WithScheme(scheme).WithObjects(agent).
		WithStatusSubresource(&custosv1alpha1.Finding{}, &custosv1alpha1.AgentReport{}).Build()
	failReport := true
	c := interceptor.NewClient(base, interceptor.Funcs{SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
		if r, ok := obj.(*custosv1alpha1.AgentReport); ok && failReport && r.Spec.Period == "2026-12" {
			failReport = false
			return errors.New("the API server is throttling")
		}
		return c.SubResource(sub).Update(ctx, obj, opts...)
	}})
	runner := func() *Runner {
		return &Runner{Reader: c, Client: c, Namespace: "custos-system", Trails: []Trail{DirTrail("custos-gateway/gw-0", dir)}, Thresholds: Fixed(DefaultThresholds), Log: logr.Discard()}
	}
	g.Expect(runner().Pass(ctx)).To(MatchError(ContainSubstring("the API server is throttling")))
	g.Expect(runner().Pass(ctx)).To(Succeed())

	finding := func(rubric string, day time.Time) *custosv1alpha1.Finding {
		f := &custosv1alpha1.Finding{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: FindingName("quiet", rubric, day)}, f)).To(Succeed())
		return f
	}
	tue, wed := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	idleTue, idleWed := finding(RubricIdleSlot, tue), finding(RubricIdleSlot, wed)
	g.Expect(idleTue.Status.Evidence[0].Sequences).To(Equal([]int64{int64(tue3)}))
	g.Expect(idleWed.Status.Evidence[0].Sequences).To(Equal([]int64{int64(wed2), int64(wed3)}), "each day's Finding, its own calls, once")
	g.Expect(idleWed.Status.RecordCount).To(BeEquivalentTo(2))
	g.Expect(idleWed.Status.Summary).To(Equal("2 call(s) on 2026-12-02 at 02:00-02:59, 03:00-03:59 UTC, weekday hours in which it made no call this month or the one before (21 days with calls)"))
	volume := finding(RubricVolume, wed)
	g.Expect(volume.Status.Summary).To(Equal("1000 records on 2026-12-02, over 3× its daily mean of 0 over the 28 days before (20 days with calls; line 30)"))
	g.Expect(volume.Status.RecordCount).To(BeEquivalentTo(1))
	var list custosv1alpha1.FindingList
	g.Expect(c.List(ctx, &list)).To(Succeed())
	g.Expect(list.Items).To(HaveLen(3))
}

// clockedTrail is a segment store in a temporary directory written
// through an audit.Log at the time of its fake clock, from start.
func clockedTrail(g Gomega, t *testing.T, start time.Time) (string, *audit.Log, *clocktesting.FakeClock) {
	dir := t.TempDir()
	store, err := audit.OpenSegmentStore(dir, audit.StoreOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	clk := clocktesting.NewFakeClock(start)
	log, err := audit.New(audit.Options{Sinks: []audit.Sink{store}, Clock: clk, BufferDir: t.TempDir(), Registerer: prometheus.NewRegistry(), Logger: logr.Discard()})
	g.Expect(err).NotTo(HaveOccurred())
	return dir, log, clk
}
