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
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
)

// Trail is an audit trail the Runner follows: its log ID and its records
// from a seq on. The Findings' evidence names it <ID>@<chain>, the chain
// being the first 12 hex digits of its first record's hash: a trail whose
// store was emptied starts a new chain under the same ID.
type Trail struct {
	// ID names the trail: custos-gateway/<pod>, custos-sts/<pod>,
	// custos-manager.
	ID string
	// Records reads the records of seq from and after, in order, at most
	// max (an audit.StoreReader's Read, an audit.FeedClient's Records).
	Records func(ctx context.Context, from uint64, max int) ([]audit.Record, error)
}

// DirTrail follows the segment store in dir.
func DirTrail(id, dir string) Trail {
	r := &audit.StoreReader{Dir: dir}
	return Trail{ID: id, Records: func(_ context.Context, from uint64, max int) ([]audit.Record, error) { return r.Read(from, max) }}
}

// StateName is the ConfigMap, in the Runner's namespace, in which it keeps
// how far it has read each trail.
const StateName = "custos-evaluator-state"

// DefaultInterval is how often the Runner reads its trails.
const DefaultInterval = 10 * time.Second

// batch is the most records one batch reads of one trail.
const batch = 5000

// Runner follows audit trails and turns the rubrics' hits into Findings:
// one per agent, rubric and UTC day (the day of the hit's last record),
// so repeats merge into it. It keeps, per trail, the next seq to evaluate
// and the first seq still inside the longest rubric window, in the
// ConfigMap StateName, written only after the pass's Findings are: a
// manager that stops between the two evaluates the same records again on
// its next start, and the same hits find their evidence already on the
// Findings (a Finding only takes records past those it cites), so no
// record makes two Findings and none is skipped. Only the leader runs it.
type Runner struct {
	// Reader reads the state and the Findings from the API server, not a
	// cache: a Finding just written must be seen by the next hit.
	Reader client.Reader
	Client client.Client
	// Namespace holds the state ConfigMap.
	Namespace string
	// Trails are followed on every pass, and those Discover finds then
	// (the components' pods serving their feeds, FeedTrails).
	Trails   []Trail
	Discover func(context.Context) ([]Trail, error)
	// Thresholds says each agent's thresholds; nil reads them from the
	// cluster (ClusterThresholds over Reader) on each pass.
	Thresholds ThresholdsFor
	Interval   time.Duration
	Audit      audit.Recorder
	// Actor is who the finding.opened records are by.
	Actor audit.Actor
	// Recorder records an Event on each Finding opened, and on its Agent
	// where people look (kubectl describe agent); none when nil.
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	Log      logr.Logger
	// Sample, when set, is offered each call read that no rubric of one
	// record hit, with its trail's evidence name (the Judge's Offer).
	Sample func(rec *audit.Record, trail string)

	// recent holds, per trail, the records of the windowed rubrics still
	// within their window before the next seq and not consumed; a trail
	// missing from it is read back from its state (after a start).
	recent map[string][]audit.Record
}

// trailState is one trail's entry in the state ConfigMap.
type trailState struct {
	// Chain names the chain read (chainOf its first record).
	Chain string `json:"chain,omitempty"`
	// Next is the next seq to evaluate; LastHash the hash of the record
	// before it.
	Next     uint64 `json:"next"`
	LastHash string `json:"lastHash,omitempty"`
	// Lookback is the first seq still within the longest window.
	Lookback uint64 `json:"lookback"`
	// At is when records were last read (Unix seconds).
	At int64 `json:"at,omitempty"`
}

// Forget is how long the state of a trail no longer followed (a pod gone)
// is kept.
const Forget = 7 * 24 * time.Hour

var (
	recordsEvaluated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "custos_evaluator_records_total",
		Help: "Audit records the evaluator read and ran its rubrics over, by trail.",
	}, []string{"trail"})
	findingsOpened = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "custos_findings_opened_total",
		Help: "Findings the evaluator opened (or opened again with new evidence), by rubric and severity.",
	}, []string{"rubric", "severity"})
	recordsMissing = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "custos_evaluator_records_missing_total",
		Help: "Records of a trail the evaluator could not read because they were gone when it first read the trail (its state lost, and the component had pruned what an earlier reader read), by trail.",
	}, []string{"trail"})
	hitsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "custos_evaluator_hits_dropped_total",
		Help: "Rubric hits the API server would not let the evaluator write to their Finding whatever it did (Forbidden, such as a namespace being deleted; Invalid; NotFound), by reason: logged and passed over.",
	}, []string{"reason"})
	passFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "custos_evaluator_failures_total",
		Help: "Passes over a trail that failed (the trail could not be read, a Finding or the evaluator's state could not be written), by trail; the next pass reads the same records again.",
	}, []string{"trail"})
	evaluatorBehind = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "custos_evaluator_behind_seconds",
		Help: "How long ago the newest record the evaluator has read of each trail was written, after its last pass (0 when it has read none).",
	}, []string{"trail"})
)

func init() {
	metrics.Registry.MustRegister(recordsEvaluated, findingsOpened, recordsMissing, hitsDropped, passFailures, evaluatorBehind)
}

// NeedLeaderElection: only the leader evaluates.
func (r *Runner) NeedLeaderElection() bool { return true }

// Start evaluates every Interval until ctx ends.
func (r *Runner) Start(ctx context.Context) error {
	t := time.NewTicker(cmp.Or(r.Interval, DefaultInterval))
	defer t.Stop()
	for {
		if err := r.Pass(ctx); err != nil && ctx.Err() == nil {
			r.Log.Error(err, "Evaluating the audit trails")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Pass reads what was added to each trail since the last pass and opens
// or updates the Findings it shows: batch after batch, until every trail
// is caught up (a first pass, a long stop).
func (r *Runner) Pass(ctx context.Context) error {
	failAll := func(trails []Trail, failed map[string]bool) {
		for _, t := range trails {
			failed[t.ID] = true
		}
	}
	failed := map[string]bool{}
	defer func() {
		for id := range failed {
			passFailures.WithLabelValues(id).Inc()
		}
	}()
	cm := &corev1.ConfigMap{}
	err := r.Reader.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: StateName}, cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: StateName,
			Labels: map[string]string{custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue}}}
		if err := r.Client.Create(ctx, cm); err != nil {
			failAll(r.Trails, failed)
			return fmt.Errorf("creating the evaluator's state: %w", err)
		}
	case err != nil:
		failAll(r.Trails, failed)
		return fmt.Errorf("reading the evaluator's state: %w", err)
	}
	th, thErr := r.Thresholds, func() error { return nil }
	if th == nil {
		cth := &ClusterThresholds{Reader: r.Reader}
		th, thErr = cth.For(ctx), cth.Err
	}
	trails := slices.Clone(r.Trails)
	var errs []error
	complete := true
	if r.Discover != nil {
		found, err := r.Discover(ctx)
		if err != nil {
			complete = false
			errs = append(errs, fmt.Errorf("finding the trails: %w", err))
		}
		trails = append(trails, found...)
	}
	reset := map[string]bool{}
	for more := true; more && ctx.Err() == nil; {
		var err error
		if more, err = r.batch(ctx, cm, trails, th, thErr, reset, failed); err != nil {
			// A Finding or the state not written fails every trail of the
			// batch: none went on (CustosEvaluatorFailing).
			failAll(trails, failed)
			errs = append(errs, err)
			break
		}
	}
	if complete {
		if err := r.forget(ctx, cm, trails); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// windowsKey is the state ConfigMap's key of the windowed rubrics'
// consumption, across trails (no trail's key starts with an underscore).
const windowsKey = "_windows"

// read is one trail's part of a batch.
type read struct {
	t        Trail
	key      string
	st       trailState
	fresh    []audit.Record
	evidence string
	// reset says the trail turned out another chain, read from its start.
	reset bool
}

// batch reads a batch of every trail and evaluates it: the rubrics of one
// record over each trail's new records, the windowed rubrics over every
// trail's records merged in time order (an agent's calls spread over
// gateway replicas are counted together); then writes the Findings, and
// last, in one write, how far each trail was read and what the windowed
// rubrics' hits consumed. A trail that cannot be read sits the batch out
// (failed); more says a trail may have more to read.
func (r *Runner) batch(ctx context.Context, cm *corev1.ConfigMap, trails []Trail, th ThresholdsFor, thErr func() error,
	reset, failed map[string]bool) (more bool, err error) {
	if r.recent == nil {
		r.recent = map[string][]audit.Record{}
	}
	consumed := map[string]uint64{}
	if v, ok := cm.Data[windowsKey]; ok {
		if err := json.Unmarshal([]byte(v), &consumed); err != nil {
			return false, fmt.Errorf("the windows' state %q: %w", v, err)
		}
	}
	isConsumed := func(trailKey string, rec *audit.Record) bool {
		rubric := WindowedRubric(rec)
		if rubric == "" {
			return false
		}
		seq, ok := consumed[windowKey(rec.Subject.Namespace, rec.Subject.Name, rubric, trailKey)]
		return ok && rec.Seq <= seq
	}
	var all, reads []*read
	for _, t := range trails {
		if failed[t.ID] {
			continue
		}
		rd, err := r.read(ctx, cm, t, reset, isConsumed)
		if err != nil {
			failed[t.ID] = true
			r.Log.Error(err, "Reading an audit trail", "trail", t.ID)
			continue
		}
		all = append(all, rd)
		if rd.reset {
			// What hits consumed of the chain before counts for nothing in
			// this one.
			for k := range consumed {
				if strings.HasSuffix(k, "|"+rd.key) {
					delete(consumed, k)
				}
			}
		}
		if len(rd.fresh) == 0 {
			evaluatorBehind.WithLabelValues(t.ID).Set(0)
			continue
		}
		reads = append(reads, rd)
	}
	if len(reads) == 0 {
		return false, nil
	}

	type origin struct {
		rd  *read
		seq uint64
	}
	var windowed []audit.Record
	var origins []origin
	for _, rd := range reads {
		hit := map[int]bool{}
		for _, h := range EvaluateRecords(rd.fresh, th) {
			if err := thErr(); err != nil {
				return false, fmt.Errorf("reading the agents' evaluation lines: %w", err)
			}
			if err := r.record(ctx, h, []cited{{trail: rd.evidence, seqs: h.Seqs}}); err != nil {
				return false, err
			}
			for _, i := range h.idx {
				hit[i] = true
			}
		}
		if r.Sample != nil {
			for i := range rd.fresh {
				if !hit[i] && rd.fresh[i].Action == audit.ActionToolCalled && rd.fresh[i].Type == audit.TypeEvent {
					r.Sample(&rd.fresh[i], rd.evidence)
				}
			}
		}
	}
	// Every trail's records still within a window, not only those of the
	// trails read now: an agent's refusals on another replica count.
	for _, rd := range all {
		for _, rec := range r.recent[rd.t.ID] {
			windowed = append(windowed, rec)
			origins = append(origins, origin{rd, rec.Seq})
		}
		for i := range rd.fresh {
			if keptFor(&rd.fresh[i]) > 0 {
				windowed = append(windowed, rd.fresh[i])
				origins = append(origins, origin{rd, rd.fresh[i].Seq})
			}
		}
	}
	// In time order; a trail's own records keep theirs.
	order := make([]int, len(windowed))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return windowed[a].Time.Compare(windowed[b].Time) })
	sorted := make([]audit.Record, len(order))
	sortedOrigins := make([]origin, len(order))
	for n, i := range order {
		sorted[n], sortedOrigins[n] = windowed[i], origins[i]
	}
	hits := EvaluateWindows(sorted, th)
	if err := thErr(); err != nil {
		return false, fmt.Errorf("reading the agents' evaluation lines: %w", err)
	}
	for _, h := range hits {
		// Every hit here is new: the records a hit cites are consumed.
		var parts []cited
		for _, i := range h.idx {
			o := sortedOrigins[i]
			k := slices.IndexFunc(parts, func(c cited) bool { return c.trail == o.rd.evidence })
			if k < 0 {
				parts = append(parts, cited{trail: o.rd.evidence, key: o.rd.key})
				k = len(parts) - 1
			}
			parts[k].seqs = append(parts[k].seqs, o.seq)
		}
		if err := r.record(ctx, h, parts); err != nil {
			return false, err
		}
		for _, c := range parts {
			k := windowKey(h.Namespace, h.Agent, h.Rubric, c.key)
			consumed[k] = max(consumed[k], slices.Max(c.seqs))
		}
	}

	// What the agents' reports count.
	if err := r.count(ctx, reads, th, thErr); err != nil {
		return false, err
	}

	// How far each trail was read, the records still within a window but
	// those consumed, and the consumption still of use: one write.
	patch := client.MergeFromWithOptions(cm.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	lookback := map[string]uint64{}
	recent := map[string][]audit.Record{}
	for _, rd := range all {
		if len(rd.fresh) == 0 {
			// Not read now: only what was consumed of it goes.
			recent[rd.t.ID] = slices.DeleteFunc(slices.Clone(r.recent[rd.t.ID]), func(rec audit.Record) bool { return isConsumed(rd.key, &rec) })
			lookback[rd.key] = rd.st.Lookback
			continue
		}
		kept := slices.Clone(r.recent[rd.t.ID])
		for i := range rd.fresh {
			if keptFor(&rd.fresh[i]) > 0 {
				kept = append(kept, rd.fresh[i])
			}
		}
		newest := rd.fresh[len(rd.fresh)-1]
		kept = prune(slices.DeleteFunc(kept, func(rec audit.Record) bool { return isConsumed(rd.key, &rec) }), newest.Time)
		rd.st.Next, rd.st.LastHash, rd.st.At = newest.Seq+1, newest.Hash, r.now().Unix()
		rd.st.Lookback = rd.st.Next
		if len(kept) > 0 {
			rd.st.Lookback = kept[0].Seq
		}
		lookback[rd.key] = rd.st.Lookback
		recent[rd.t.ID] = kept
		data, err := json.Marshal(rd.st)
		if err != nil {
			return false, err
		}
		cm.Data[rd.key] = string(data)
		more = more || len(rd.fresh) >= batch
	}
	for k, seq := range consumed {
		_, trailKey, _ := strings.Cut(k, "|")
		lb, read := lookback[trailKey]
		_, kept := cm.Data[trailKey]
		if read && lb > seq || !kept {
			// Nothing it consumed is read back any more, or its trail is
			// forgotten.
			delete(consumed, k)
		}
	}
	if len(consumed) == 0 {
		delete(cm.Data, windowsKey)
	} else {
		data, err := json.Marshal(consumed)
		if err != nil {
			return false, err
		}
		cm.Data[windowsKey] = string(data)
	}
	if err := r.Client.Patch(ctx, cm, patch); err != nil {
		// Evaluated again next pass: the Findings take only what they lack.
		return false, fmt.Errorf("writing the evaluator's state: %w", err)
	}
	for _, rd := range all {
		r.recent[rd.t.ID] = recent[rd.t.ID]
	}
	for _, rd := range reads {
		recordsEvaluated.WithLabelValues(rd.t.ID).Add(float64(len(rd.fresh)))
		evaluatorBehind.WithLabelValues(rd.t.ID).Set(max(0, r.now().Sub(rd.fresh[len(rd.fresh)-1].Time).Seconds()))
	}
	return more, nil
}

// windowKey names, in the windows' state, what the hits of an agent's
// windowed rubric consumed of one trail: <namespace>/<agent>/<rubric>|<trail key>.
func windowKey(namespace, agent, rubric, trailKey string) string {
	return namespace + "/" + agent + "/" + rubric + "|" + trailKey
}

// read reads the batch of trail t after what was read of it: the chain
// checked (another chain under the same name is read from its start, once
// a pass), and, after a start, the records still within a window read
// back, but those consumed.
func (r *Runner) read(ctx context.Context, cm *corev1.ConfigMap, t Trail, reset map[string]bool, isConsumed func(string, *audit.Record) bool) (*read, error) {
	rd := &read{t: t, key: stateKey(t.ID)}
	if v, ok := cm.Data[rd.key]; ok {
		if err := json.Unmarshal([]byte(v), &rd.st); err != nil {
			return nil, fmt.Errorf("its state %q: %w", v, err)
		}
	}
	_, loaded := r.recent[t.ID]
	from := rd.st.Next
	if rd.st.Next > 0 {
		from = rd.st.Next - 1
	}
	fresh, err := t.Records(ctx, from, batch+1)
	if err != nil {
		return nil, err
	}
	var last *audit.Record
	if rd.st.Next > 0 {
		if len(fresh) == 0 || fresh[0].Seq != rd.st.Next-1 || fresh[0].Hash != rd.st.LastHash {
			// Another chain under the same name (a component whose store
			// was emptied starts again at seq 0): read it from its start.
			if reset[t.ID] {
				return nil, fmt.Errorf("record %d is not the one read before (%s), even after reading the trail again from its start", rd.st.Next-1, rd.st.LastHash)
			}
			reset[t.ID] = true
			r.Log.Info("The audit trail is not the chain read so far: reading it from its first record", "trail", t.ID,
				"chain", rd.st.Chain, "next", rd.st.Next)
			rd.st, rd.reset = trailState{}, true
			r.recent[t.ID], loaded = nil, true
			if fresh, err = t.Records(ctx, 0, batch); err != nil {
				return nil, err
			}
		} else {
			last = &fresh[0]
			fresh = fresh[1:]
		}
	}
	if rd.st.Next == 0 && len(fresh) > 0 {
		if fresh[0].Seq != 0 {
			// A feed prunes what its reader read: a reader without the
			// state (it was deleted) finds the first records gone.
			recordsMissing.WithLabelValues(t.ID).Add(float64(fresh[0].Seq))
			r.Log.Error(nil, "The trail's first records are gone: reading it from its first record there", "trail", t.ID, "first", fresh[0].Seq)
		}
		rd.st.Chain = chainOf(&fresh[0])
	}
	if !loaded {
		// Started again: read back the records still within a window, but
		// those a hit already consumed.
		var recent []audit.Record
		for from := min(rd.st.Lookback, rd.st.Next); from < rd.st.Next; {
			records, err := t.Records(ctx, from, batch)
			if err != nil {
				return nil, err
			}
			if len(records) == 0 {
				break
			}
			for i := range records {
				if records[i].Seq < rd.st.Next && keptFor(&records[i]) > 0 && !isConsumed(rd.key, &records[i]) {
					recent = append(recent, records[i])
				}
			}
			from = records[len(records)-1].Seq + 1
		}
		if last != nil {
			recent = prune(recent, last.Time)
		}
		r.recent[t.ID] = recent
	}
	rd.fresh = fresh
	rd.evidence = evidenceName(t.ID, rd.st.Chain)
	return rd, nil
}

// evidenceName names a trail's chain in a Finding's evidence:
// <ID>@<chain>, the ID cut (and a digest of it added) to keep within the
// 253 bytes the Finding allows.
func evidenceName(id, chain string) string {
	if n := len(id) + 1 + len(chain); n <= 253 {
		return id + "@" + chain
	}
	sum := sha256.Sum256([]byte(id))
	return id[:253-1-len(chain)-9] + "~" + hex.EncodeToString(sum[:4]) + "@" + chain
}

// prune keeps the records still within their window of newest.
func prune(recent []audit.Record, newest time.Time) []audit.Record {
	return slices.DeleteFunc(recent, func(rec audit.Record) bool { return rec.Time.Before(newest.Add(-keptFor(&rec))) })
}

// forget drops the state of trails no longer followed and not read for
// Forget: the pods of a component come and go, each a trail.
func (r *Runner) forget(ctx context.Context, cm *corev1.ConfigMap, trails []Trail) error {
	current := map[string]bool{}
	for _, t := range trails {
		current[stateKey(t.ID)] = true
	}
	patch := client.MergeFromWithOptions(cm.DeepCopy(), client.MergeFromWithOptimisticLock{})
	gone := 0
	for k, v := range cm.Data {
		var st trailState
		if strings.HasPrefix(k, "_") || current[k] || json.Unmarshal([]byte(v), &st) != nil || st.At == 0 || r.now().Sub(time.Unix(st.At, 0)) < Forget {
			continue
		}
		delete(cm.Data, k)
		gone++
	}
	for id := range r.recent {
		if !current[stateKey(id)] {
			delete(r.recent, id)
			recordsEvaluated.DeleteLabelValues(id)
			evaluatorBehind.DeleteLabelValues(id)
			passFailures.DeleteLabelValues(id)
		}
	}
	if gone == 0 {
		return nil
	}
	if err := r.Client.Patch(ctx, cm, patch); err != nil {
		return fmt.Errorf("forgetting the trails no longer followed: %w", err)
	}
	return nil
}

// stateKey is a trail's key in the state ConfigMap.
func stateKey(id string) string {
	k := strings.Map(func(c rune) rune {
		if c == '-' || c == '.' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			return c
		}
		return '.'
	}, id)
	if len(k) > 200 {
		sum := sha256.Sum256([]byte(id))
		k = k[:180] + "." + hex.EncodeToString(sum[:8])
	}
	return k
}

// keptFor says how long a record is kept for the next passes: those of
// the windowed rubrics (probing, denied approvals) for their longest
// window; 0 for the rest.
func keptFor(rec *audit.Record) time.Duration {
	switch WindowedRubric(rec) {
	case RubricProbing:
		return MaxProbeWindow
	case RubricDeniedApprovals:
		return MaxDeniedWindow
	}
	return 0
}

// chainOf names the chain whose first record read is first: the first 12
// hex digits of its hash, which no other chain shares.
func chainOf(first *audit.Record) string {
	h := strings.TrimPrefix(first.Hash, "sha256:")
	return h[:min(12, len(h))]
}

func (r *Runner) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// FindingName is the name of the Finding of rubric on agent for the UTC
// day of t: <agent>-<rubric>-<yyyymmdd>, the agent's name cut and a digest
// added when that would pass 253 bytes.
func FindingName(agent, rubric string, t time.Time) string {
	suffix := "-" + rubric + "-" + t.UTC().Format("20060102")
	if len(agent)+len(suffix) <= validation.DNS1123SubdomainMaxLength {
		return agent + suffix
	}
	sum := sha256.Sum256([]byte(agent))
	cut := validation.DNS1123SubdomainMaxLength - len(suffix) - 9
	return strings.TrimRight(agent[:cut], "-.") + "-" + hex.EncodeToString(sum[:4]) + suffix
}

// dayOf is the start of t's UTC day.
func dayOf(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

var severityRank = map[custosv1alpha1.FindingSeverity]int{custosv1alpha1.SeverityLow: 1, custosv1alpha1.SeverityMedium: 2, custosv1alpha1.SeverityHigh: 3}

// evidence caps: the first and the latest of a trail's records cited.
const (
	maxSequences = 64
	maxTraceIDs  = 32
	maxTrails    = 16
	maxCounted   = 256
)

// record opens the Finding of hit h, whose records are parts, or adds to
// it what it lacks; a closed Finding given new records is opened again.
func (r *Runner) record(ctx context.Context, h Hit, parts []cited) error {
	day := dayOf(h.To)
	name := FindingName(h.Agent, h.Rubric, day)
	key := client.ObjectKey{Namespace: h.Namespace, Name: name}
	recorded := false
	for attempt := 0; ; attempt++ {
		f := &custosv1alpha1.Finding{}
		err := r.Reader.Get(ctx, key, f)
		if apierrors.IsNotFound(err) {
			f = &custosv1alpha1.Finding{
				ObjectMeta: metav1.ObjectMeta{Namespace: h.Namespace, Name: name, Labels: findingLabels(h)},
				Spec: custosv1alpha1.FindingSpec{Agent: h.Agent, AgentUID: h.AgentUID, Rubric: h.Rubric,
					WindowStart: metav1.NewTime(day)},
			}
			if err = r.Client.Create(ctx, f); apierrors.IsAlreadyExists(err) && attempt < 5 {
				continue
			}
			if apierrors.IsNotFound(err) {
				// The namespace is gone: nobody is left to review it; the
				// records stay on the trail.
				r.Log.Info("Hit on an agent whose namespace is gone: no Finding", "namespace", h.Namespace, "agent", h.Agent, "rubric", h.Rubric)
				return nil
			}
		}
		if err != nil {
			return r.dropped(key, h, err)
		}
		opening := f.Status.Phase == "" || f.Status.Phase.Closed()
		reopened, added := merge(f, parts, h, metav1.NewTime(r.now()))
		if added == 0 {
			return nil
		}
		// On the trail (written, not queued) before the Finding says it is
		// open: a manager that stops between the two records the opening
		// again on its next pass (the same Finding UID), rather than never.
		if opening && !recorded {
			r.opened(ctx, f, parts, h, reopened)
			if fl, ok := r.Audit.(interface{ Flush(context.Context) error }); ok {
				if err := fl.Flush(ctx); err != nil {
					return fmt.Errorf("finding %s: writing its opening to the audit trail: %w", key, err)
				}
			}
			recorded = true
		}
		if err := r.Client.Status().Update(ctx, f); err != nil {
			if apierrors.IsConflict(err) && attempt < 5 {
				continue
			}
			return r.dropped(key, h, err)
		}
		if opening {
			findingsOpened.WithLabelValues(f.Spec.Rubric, string(f.Status.Severity)).Inc()
		}
		return nil
	}
}

// dropped says what to do with hit h that could not be written to Finding
// key: an error the API server will give again whatever the evaluator does
// (forbidden, such as a namespace being deleted; invalid) drops the hit,
// counted and logged, so that one agent's hit does not hold back every
// other's; any other error fails the pass, which reads it again.
func (r *Runner) dropped(key client.ObjectKey, h Hit, err error) error {
	reason := permanent(err)
	if reason == "" {
		return fmt.Errorf("finding %s: %w", key, err)
	}
	hitsDropped.WithLabelValues(reason).Inc()
	r.Log.Error(err, "A hit could not be written to its Finding, and is dropped", "finding", key, "rubric", h.Rubric, "seqs", h.Seqs)
	return nil
}

// permanent is the reason of an error the API server will give again
// whatever the evaluator does (Forbidden, such as a namespace being
// deleted; Invalid; NotFound), "" for any other.
func permanent(err error) string {
	switch {
	case apierrors.IsForbidden(err):
		return "Forbidden"
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return "Invalid"
	case apierrors.IsNotFound(err):
		return "NotFound"
	}
	return ""
}

// cited are the records of a hit in one trail: its evidence name
// (<ID>@<chain>), its state key, and their seqs.
type cited struct {
	trail, key string
	seqs       []uint64
}

// merge adds hit h, whose records are parts, to f's status: the records
// it lacks (past the last it counted of each trail), its severity and
// score when higher, its sentence. It says whether f was closed and is
// opened again, and how many records were added (none: h was counted
// already).
func merge(f *custosv1alpha1.Finding, parts []cited, h Hit, now metav1.Time) (reopened bool, added int) {
	st := &f.Status
	for _, part := range parts {
		added += mergePart(st, part, h.TraceIDs)
	}
	if added == 0 {
		return false, 0
	}
	if st.Phase.Closed() {
		reopened = true
		st.ClosedAt = nil
	}
	if st.Phase == "" || reopened {
		st.Phase = custosv1alpha1.FindingOpen
		st.OpenedAt = &now
	}
	sev := h.Severity
	if severityRank[sev] > severityRank[st.Severity] {
		st.Severity = sev
	}
	st.Score = max(st.Score, int32(math.Round(h.Score*100)))
	st.Summary = clip(h.Why, 1024)
	st.Hits++
	st.RecordCount += int32(added)
	from, to := metav1.NewTime(h.From), metav1.NewTime(h.To)
	if st.FirstSeen == nil || from.Before(st.FirstSeen) {
		st.FirstSeen = &from
	}
	if st.LastSeen == nil || st.LastSeen.Before(&to) {
		st.LastSeen = &to
	}
	return reopened, added
}

// mergePart adds the records of one trail a hit cites to st: those past
// the last it counted of that trail, to its count and its evidence. It
// says how many.
func mergePart(st *custosv1alpha1.FindingStatus, part cited, traceIDs []string) int {
	last := highWater(st.Counted, part.trail)
	var seqs []int64
	for _, s := range part.seqs {
		if s <= math.MaxInt64 && int64(s) > last {
			seqs = append(seqs, int64(s))
		}
	}
	if len(seqs) == 0 {
		return 0
	}
	setHighWater(&st.Counted, part.trail, slices.Max(seqs))

	// The evidence people read: the first records cited and the latest,
	// of the latest trails.
	i := slices.IndexFunc(st.Evidence, func(e custosv1alpha1.FindingEvidence) bool { return e.AuditLogID == part.trail })
	if i < 0 {
		if len(st.Evidence) >= maxTrails {
			st.Evidence = st.Evidence[1:]
		}
		st.Evidence = append(st.Evidence, custosv1alpha1.FindingEvidence{AuditLogID: part.trail})
		i = len(st.Evidence) - 1
	}
	e := &st.Evidence[i]
	e.Sequences = append(e.Sequences, seqs...)
	if n := len(e.Sequences); n > maxSequences {
		e.Sequences = append(e.Sequences[:maxSequences/2:maxSequences/2], e.Sequences[n-maxSequences/2:]...)
	}
	for _, id := range traceIDs {
		// W3C trace IDs only: the manager's records carry its reconcile's
		// ID instead, which leads to its logs, not to a trace.
		if !isTraceID(id) {
			continue
		}
		if len(e.TraceIDs) < maxTraceIDs && !slices.Contains(e.TraceIDs, id) {
			e.TraceIDs = append(e.TraceIDs, id)
		}
	}
	return len(seqs)
}

// highWater is the last record of trail counted (counted, a Finding's
// or an AgentReport's); -1 when none.
func highWater(counted []custosv1alpha1.FindingCount, trail string) int64 {
	if c := slices.IndexFunc(counted, func(c custosv1alpha1.FindingCount) bool { return c.Trail == trail }); c >= 0 {
		return counted[c].Seq
	}
	return -1
}

// setHighWater says seq of trail is counted (and those before it). Past
// maxCounted trails, the trail first counted goes: 256 trails in a day or
// a month are a gateway whose pods come and go by the minute (a trail
// gone this way and read again would count again).
func setHighWater(counted *[]custosv1alpha1.FindingCount, trail string, seq int64) {
	c := slices.IndexFunc(*counted, func(c custosv1alpha1.FindingCount) bool { return c.Trail == trail })
	if c < 0 {
		if len(*counted) >= maxCounted {
			*counted = (*counted)[1:]
		}
		*counted = append(*counted, custosv1alpha1.FindingCount{Trail: trail, Seq: -1})
		c = len(*counted) - 1
	}
	(*counted)[c].Seq = max((*counted)[c].Seq, seq)
}

// isTraceID says whether id is a W3C trace ID: 32 lower-case hex digits.
func isTraceID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

// opened records the Finding's opening on the trail, and as Events.
func (r *Runner) opened(ctx context.Context, f *custosv1alpha1.Finding, parts []cited, h Hit, reopened bool) {
	if r.Recorder != nil {
		note := clip(fmt.Sprintf("Finding %s (%s, %s): %s; review it: kubectl custos review %s -n %s", f.Name, h.Rubric, f.Status.Severity, h.Why, f.Name, f.Namespace), 1024)
		r.Recorder.Eventf(f, nil, corev1.EventTypeWarning, "FindingOpened", "Evaluate", "%s", note)
		agent := &custosv1alpha1.Agent{}
		if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: f.Namespace, Name: f.Spec.Agent}, agent); err == nil {
			r.Recorder.Eventf(agent, f, corev1.EventTypeWarning, "FindingOpened", "Evaluate", "%s", note)
		}
	}
	if r.Audit == nil {
		return
	}
	details := map[string]string{"finding": f.Name, "findingUID": string(f.UID), "rubric": h.Rubric, "window": f.Spec.WindowStart.UTC().Format(time.DateOnly),
		"severity": string(f.Status.Severity), "score": strconv.Itoa(int(f.Status.Score))}
	for n, part := range parts[:min(len(parts), maxTrails)] {
		seqs := make([]string, 0, len(part.seqs))
		for _, s := range part.seqs[:min(len(part.seqs), maxSequences)] {
			seqs = append(seqs, strconv.FormatUint(s, 10))
		}
		prefix := "evidence."
		if n > 0 {
			prefix = "evidence." + strconv.Itoa(n) + "."
		}
		details[prefix+"auditLogID"], details[prefix+"sequences"] = part.trail, strings.Join(seqs, ",")
	}
	verb := "opened"
	if reopened {
		details["reopened"] = "true"
		verb = "opened again"
	}
	r.Audit.Record(ctx, audit.Event{Action: audit.ActionFindingOpened, Actor: r.Actor,
		Subject:  audit.Subject{Kind: "Agent", Namespace: h.Namespace, Name: h.Agent, UID: h.AgentUID, Tenant: h.Tenant},
		Decision: audit.DecisionInfo, Policy: "evaluate." + h.Rubric,
		Reason:  clip(fmt.Sprintf("Finding %s %s: %s", f.Name, verb, h.Why), 1024),
		Details: details})
}

// findingLabels name the Finding's agent and tenant as Custos's objects
// for an agent do, where the values fit a label.
func findingLabels(h Hit) map[string]string {
	l := map[string]string{custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue, RubricLabel: h.Rubric}
	for k, v := range map[string]string{custosv1alpha1.AgentLabel: h.Agent, custosv1alpha1.AgentUIDLabel: h.AgentUID, custosv1alpha1.TenantLabel: h.Tenant} {
		if v != "" && len(validation.IsValidLabelValue(v)) == 0 {
			l[k] = v
		}
	}
	return l
}

// RubricLabel is a Finding's rubric, for selecting them.
const RubricLabel = "custos.dev/rubric"

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
