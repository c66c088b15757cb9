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

package audit

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
)

// Recorder is what components hold to record audit events. Record never
// blocks for long and never fails: a sink that is down gets the record
// later from an on-disk buffer, and a record that cannot be kept at all
// is counted in custos_audit_records_dropped_total and logged.
type Recorder interface {
	Record(ctx context.Context, e Event)
}

// Sequencer is a Recorder that says where in its chain a record went, so
// that what cites it (a freeze's evidence) can name it.
type Sequencer interface {
	Recorder
	// RecordSeq records e and returns its sequence number; false when
	// it was dropped.
	RecordSeq(ctx context.Context, e Event) (uint64, bool)
}

// Discard returns a Recorder that drops every event, for components whose
// audit trail is not wired in (tests, tools).
func Discard() Recorder { return discard{} }

type discard struct{}

func (discard) Record(context.Context, Event) {}

// Limits on what one event may carry; longer values are cut, and the cut
// is marked, so that one record stays a reasonable line.
const (
	maxValueBytes = 4096
	maxDetails    = 64
	maxLineBytes  = 1 << 20
	truncatedMark = "…[truncated]"
)

// Options configure a Log.
type Options struct {
	// Sinks receive the records. At most one may be a Resumer (the
	// segment store), whose records the chain continues from. Empty means
	// the standard output.
	Sinks []Sink
	// Signer signs checkpoints; nil writes no checkpoints.
	Signer Signer
	// CheckpointEvery writes a checkpoint after this many records since
	// the last one; 0 means 1000. Negative disables it.
	CheckpointEvery int
	// CheckpointInterval writes a checkpoint when this much time passed
	// since the last one and records were added since; 0 means one
	// minute. Negative disables it.
	CheckpointInterval time.Duration
	// Clock gives record times and drives the interval; nil is the real
	// clock.
	Clock clock.WithTicker
	// Logger receives sink failures, drops and recoveries.
	Logger logr.Logger
	// Registerer registers the metrics, such as controller-runtime's
	// metrics.Registry; nil registers nothing.
	Registerer prometheus.Registerer
	// BufferDir holds each sink's on-disk buffer ("<sink>.spool"); empty
	// means "custos-audit-buffer" in the temporary directory.
	BufferDir string
	// BufferMaxBytes bounds each sink's buffer; 0 means 64 MiB.
	BufferMaxBytes int64
	// MaxBatch is the most records handed to a sink in one Write; 0
	// means 4096.
	MaxBatch int
	// QueueSize is the most records waiting for the writer before Record
	// starts dropping events; 0 means 65536.
	QueueSize int
	// RetryInterval is how often a failed sink is retried; 0 means 5 s.
	RetryInterval time.Duration
	// Actor is who the Log's own records (recovery, drops) are by; empty
	// means the controller "custos-audit".
	Actor Actor
}

// Log is the Recorder: it assigns sequence numbers and times, redacts,
// hashes, chains, checkpoints and hands records to its sinks from one
// writer goroutine, in batches (whatever accumulated while the previous
// batch was written).
type Log struct {
	opts    Options
	log     logr.Logger
	clock   clock.WithTicker
	metrics *metrics
	sinks   []*sinkState

	mu              sync.Mutex
	seq             uint64 // the next record's
	base            uint64 // seq when this Log started
	head            string // the last record's hash
	tree            *tree
	sinceCheckpoint int
	lastCheckpoint  time.Time
	pending         []*Record
	droppedEvents   int // refused while the queue was full, not yet reported
	closed          bool
	written         uint64        // records handed to every sink
	progress        chan struct{} // closed and replaced when written grows
	scratch         []byte

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// sinkState is one sink and its on-disk buffer.
type sinkState struct {
	sink      Sink
	spool     *spool
	nextRetry time.Time
}

// New opens a Log. When a sink is a Resumer holding records, the chain
// continues from them, and a record of ActionLogRecovered comes first if
// the previous run did not close the log cleanly. Records left in a
// sink's on-disk buffer by an earlier run are replayed first.
func New(opts Options) (*Log, error) {
	if len(opts.Sinks) == 0 {
		opts.Sinks = []Sink{NewStdoutSink()}
	}
	if opts.CheckpointEvery == 0 {
		opts.CheckpointEvery = 1000
	}
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.BufferDir == "" {
		opts.BufferDir = filepath.Join(os.TempDir(), "custos-audit-buffer")
	}
	if opts.BufferMaxBytes == 0 {
		opts.BufferMaxBytes = 64 << 20
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 65536
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = 5 * time.Second
	}
	if opts.Actor.Name == "" {
		opts.Actor = Actor{Kind: ActorController, Name: "custos-audit"}
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("audit metrics: %w", err)
	}
	l := &Log{
		opts: opts, log: opts.Logger, clock: opts.Clock, metrics: m,
		head: GenesisHash, tree: newTree(),
		progress: make(chan struct{}),
		wake:     make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	var resumer Resumer
	names := map[string]bool{}
	for _, s := range opts.Sinks {
		if names[s.Name()] {
			return nil, fmt.Errorf("audit: two sinks are named %q", s.Name())
		}
		names[s.Name()] = true
		if r, ok := s.(Resumer); ok {
			if resumer != nil {
				return nil, fmt.Errorf("audit: sinks %q and %q both keep the log; use one", resumer.Name(), s.Name())
			}
			resumer = r
		}
		sp, err := openSpool(opts.BufferDir, s.Name(), opts.BufferMaxBytes)
		if err != nil {
			return nil, fmt.Errorf("audit: the buffer of sink %q: %w", s.Name(), err)
		}
		st := &sinkState{sink: s, spool: sp}
		if err := st.spool.replay(opts.MaxBatch, s.Write); err != nil {
			if s == Sink(resumer) {
				return nil, fmt.Errorf("audit: sink %q cannot take the %d records buffered by an earlier run: %w", s.Name(), sp.count, err)
			}
			l.log.Error(err, "Audit sink is still down; its buffered records wait", "sink", s.Name(), "buffered", sp.count)
		}
		m.buffered.WithLabelValues(s.Name()).Set(float64(sp.count))
		l.sinks = append(l.sinks, st)
	}
	if resumer != nil {
		if err := l.resume(resumer); err != nil {
			return nil, err
		}
	}
	l.lastCheckpoint = l.clock.Now()
	go l.run()
	return l, nil
}

// resume continues the chain from what r holds.
func (l *Log) resume(r Resumer) error {
	last, recovery, err := r.Resume(func(seq uint64, hash string) error {
		if seq != l.tree.size() {
			return fmt.Errorf("expected seq %d, found seq %d", l.tree.size(), seq)
		}
		return l.tree.append(hash)
	})
	if err != nil {
		return fmt.Errorf("audit: cannot continue the log in sink %q (run custos-audit verify on it): %w", r.Name(), err)
	}
	if last == nil {
		return nil
	}
	l.seq, l.base, l.head = last.Seq+1, last.Seq+1, last.Hash
	if last.Type == TypeCheckpoint {
		l.sinceCheckpoint = 0
	}
	if recovery != nil {
		l.log.Error(nil, "The audit log was not closed cleanly by the previous run; recording the recovery", "sink", r.Name(), "details", recovery)
		l.mu.Lock()
		l.appendLocked(&Record{Type: TypeEvent, Action: ActionLogRecovered, Actor: &l.opts.Actor, Decision: DecisionInfo,
			Reason: recovery["reason"], Details: recovery})
		l.mu.Unlock()
	}
	return nil
}

// Record implements Recorder.
func (l *Log) Record(ctx context.Context, e Event) {
	l.RecordSeq(ctx, e)
}

// RecordSeq implements Sequencer.
func (l *Log) RecordSeq(_ context.Context, e Event) (uint64, bool) {
	redacted := sanitizeEvent(&e)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.metrics.dropped.WithLabelValues(queueSink).Inc()
		l.log.Error(nil, "Audit event recorded after the log was closed; dropped", "action", e.Action)
		return 0, false
	}
	if len(l.pending) >= l.opts.QueueSize {
		if l.droppedEvents == 0 {
			l.log.Error(nil, "The audit queue is full: the sinks are too slow; dropping events until it drains (an audit.dropped record will count them)", "queue", l.opts.QueueSize)
		}
		l.droppedEvents++
		l.mu.Unlock()
		l.metrics.dropped.WithLabelValues(queueSink).Inc()
		return 0, false
	}
	if l.droppedEvents > 0 {
		l.log.Error(nil, "Audit events were dropped while the queue was full", "count", l.droppedEvents)
		l.appendLocked(&Record{Type: TypeEvent, Action: ActionRecordsDropped, Actor: &l.opts.Actor, Decision: DecisionInfo,
			Reason:  "events were dropped because the audit queue was full",
			Details: map[string]string{"count": strconv.Itoa(l.droppedEvents)}})
		l.droppedEvents = 0
	}
	r := &Record{Type: TypeEvent, Action: e.Action, Decision: e.Decision, Reason: e.Reason, Policy: e.Policy,
		TraceID: e.TraceID, Details: e.Details, Redacted: redacted}
	if !actorEmpty(&e.Actor) {
		r.Actor = &e.Actor
	}
	if e.Subject != (Subject{}) {
		r.Subject = &e.Subject
	}
	l.appendLocked(r)
	seq := r.Seq
	if n := l.opts.CheckpointEvery; n > 0 && l.sinceCheckpoint >= n {
		l.checkpointLocked(false)
	}
	l.mu.Unlock()
	if len(redacted) > 0 {
		l.metrics.redactions.Add(float64(len(redacted)))
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return seq, true
}

// appendLocked gives r its place in the chain and queues it.
func (l *Log) appendLocked(r *Record) {
	r.Schema, r.Seq, r.PrevHash = SchemaVersion, l.seq, l.head
	if r.Time.IsZero() {
		r.Time = l.clock.Now().UTC()
	}
	l.scratch = appendRecord(l.scratch[:0], r, false)
	sum := sha256.Sum256(l.scratch)
	r.Hash = formatHash(sum[:])
	r.line = appendRecord(make([]byte, 0, len(l.scratch)+80), r, true)
	_ = l.tree.r.Append(hashLeaf(sum[:]), nil)
	l.seq++
	l.head = r.Hash
	l.sinceCheckpoint++
	l.pending = append(l.pending, r)
	l.metrics.records.WithLabelValues(r.Type).Inc()
}

// checkpointLocked signs the chain head and the Merkle root of every
// record so far and appends the checkpoint as a record.
func (l *Log) checkpointLocked(final bool) {
	if l.opts.Signer == nil || l.seq == 0 {
		return
	}
	r := &Record{Type: TypeCheckpoint, Time: l.clock.Now().UTC(), Seq: l.seq, Schema: SchemaVersion, Checkpoint: &Checkpoint{
		Size: l.seq, Head: l.head, Root: l.tree.root(), KeyID: l.opts.Signer.KeyID(), Algorithm: l.opts.Signer.Algorithm(), Final: final,
	}}
	sig, err := l.opts.Signer.Sign(SignedPayload(r))
	if err != nil {
		// The records stay chained; the next checkpoint covers them.
		l.log.Error(err, "Cannot sign an audit checkpoint", "size", l.seq)
		return
	}
	r.Checkpoint.Signature = encodeSignature(sig)
	l.appendLocked(r)
	l.sinceCheckpoint = 0
	l.lastCheckpoint = l.clock.Now()
	l.metrics.checkpoints.Inc()
}

// run is the writer goroutine.
func (l *Log) run() {
	defer close(l.done)
	period := l.opts.RetryInterval
	if d := l.opts.CheckpointInterval; d > 0 && d < period {
		period = d
	}
	tick := l.clock.NewTicker(period)
	defer tick.Stop()
	for {
		stopping := false
		select {
		case <-l.wake:
		case <-tick.C():
			l.mu.Lock()
			if d := l.opts.CheckpointInterval; d > 0 && l.sinceCheckpoint > 0 && !l.closed && l.clock.Since(l.lastCheckpoint) >= d {
				l.checkpointLocked(false)
			}
			l.mu.Unlock()
		case <-l.stop:
			stopping = true
		}
		l.writePending(stopping)
		if stopping {
			return
		}
	}
}

// writePending hands everything queued to every sink.
func (l *Log) writePending(force bool) {
	for {
		l.mu.Lock()
		batch := l.pending
		if len(batch) > l.opts.MaxBatch {
			batch = batch[:l.opts.MaxBatch]
		}
		l.pending = l.pending[len(batch):]
		if len(l.pending) == 0 {
			l.pending = nil
		}
		l.mu.Unlock()
		for _, s := range l.sinks {
			l.writeSink(s, batch, force)
		}
		if len(batch) > 0 {
			l.mu.Lock()
			l.written += uint64(len(batch))
			close(l.progress)
			l.progress = make(chan struct{})
			l.mu.Unlock()
		}
		if len(batch) < l.opts.MaxBatch {
			return
		}
	}
}

// writeSink writes batch to s, replaying its buffer first when it is due
// (or force), and buffers what s does not take.
func (l *Log) writeSink(s *sinkState, batch []*Record, force bool) {
	name := s.sink.Name()
	if s.spool.count > 0 {
		if !force && l.clock.Now().Before(s.nextRetry) {
			l.bufferRecords(s, batch)
			return
		}
		if err := s.spool.replay(l.opts.MaxBatch, func(rs []*Record) error { return l.timedWrite(s.sink, rs) }); err != nil {
			l.sinkFailed(s, err)
			l.bufferRecords(s, batch)
			return
		}
		l.log.Info("Audit sink recovered; its buffered records were written", "sink", name)
		l.metrics.buffered.WithLabelValues(name).Set(0)
	}
	if len(batch) == 0 {
		return
	}
	err := l.timedWrite(s.sink, batch)
	if err == nil {
		return
	}
	l.sinkFailed(s, err)
	var pe *PartialWriteError
	if errors.As(err, &pe) && pe.Written > 0 && pe.Written <= len(batch) {
		batch = batch[pe.Written:]
	}
	l.bufferRecords(s, batch)
}

func (l *Log) timedWrite(s Sink, batch []*Record) error {
	start := time.Now()
	err := s.Write(batch)
	l.metrics.writeTime.WithLabelValues(s.Name()).Observe(time.Since(start).Seconds())
	return err
}

func (l *Log) sinkFailed(s *sinkState, err error) {
	l.metrics.sinkErrors.WithLabelValues(s.sink.Name()).Inc()
	if s.spool.count == 0 {
		l.log.Error(err, "Audit sink is down; buffering its records on disk", "sink", s.sink.Name(), "buffer", s.spool.path)
	}
	s.nextRetry = l.clock.Now().Add(l.opts.RetryInterval)
}

// bufferRecords puts records in s's buffer; what does not fit is dropped,
// counted and logged.
func (l *Log) bufferRecords(s *sinkState, records []*Record) {
	if len(records) == 0 {
		return
	}
	name := s.sink.Name()
	dropped, err := s.spool.add(records)
	l.metrics.buffered.WithLabelValues(name).Set(float64(s.spool.count))
	if dropped > 0 {
		l.metrics.dropped.WithLabelValues(name).Add(float64(dropped))
		first := records[len(records)-dropped]
		l.log.Error(err, "Audit records dropped: the sink is down and its buffer is full or unwritable",
			"sink", name, "dropped", dropped, "firstSeq", first.Seq, "lastSeq", records[len(records)-1].Seq,
			"buffer", s.spool.path, "bufferMaxBytes", l.opts.BufferMaxBytes)
	}
}

// Flush waits until every record recorded before it was handed to every
// sink (written, or buffered on disk for a sink that is down).
func (l *Log) Flush(ctx context.Context) error {
	l.mu.Lock()
	target := l.seq
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	for {
		l.mu.Lock()
		// written counts records since this Log started; seq may have
		// started above 0 when the log was resumed.
		done := l.written >= target-l.base
		ch := l.progress
		l.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-l.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close writes a final checkpoint, writes everything queued, retries the
// sinks' buffers once and closes the sinks. Records still buffered for a
// sink that is down stay on disk for the next run and are reported in the
// error.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	if l.droppedEvents > 0 {
		l.appendLocked(&Record{Type: TypeEvent, Action: ActionRecordsDropped, Actor: &l.opts.Actor, Decision: DecisionInfo,
			Reason:  "events were dropped because the audit queue was full",
			Details: map[string]string{"count": strconv.Itoa(l.droppedEvents)}})
		l.droppedEvents = 0
	}
	l.checkpointLocked(true)
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	var errs []error
	for _, s := range l.sinks {
		if s.spool.count > 0 {
			errs = append(errs, fmt.Errorf("sink %q is down: %d records stay in %s for the next run", s.sink.Name(), s.spool.count, s.spool.path))
		}
		if err := s.sink.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sink %q: %w", s.sink.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// Head returns the number of records in the chain and the hash of the last
// one (GenesisHash when there is none).
func (l *Log) Head() (size uint64, hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, l.head
}

// sanitizeEvent makes e fit a record: valid UTF-8, bounded lengths, no
// secrets. It returns the fields it redacted.
func sanitizeEvent(e *Event) []string {
	fix := func(s string) string {
		if !utf8.ValidString(s) {
			s = strings.ToValidUTF8(s, "\uFFFD")
		}
		if len(s) > maxValueBytes {
			cut := maxValueBytes
			for cut > 0 && !utf8.RuneStart(s[cut]) {
				cut--
			}
			s = s[:cut] + truncatedMark
		}
		return s
	}
	e.Action, e.Decision, e.Reason, e.Policy, e.TraceID = fix(e.Action), fix(e.Decision), fix(e.Reason), fix(e.Policy), fix(e.TraceID)
	e.Actor = Actor{Kind: fix(e.Actor.Kind), Name: fix(e.Actor.Name), UID: fix(e.Actor.UID), Groups: fixAll(e.Actor.Groups, fix)}
	s := &e.Subject
	s.Kind, s.Namespace, s.Name, s.UID, s.Tenant = fix(s.Kind), fix(s.Namespace), fix(s.Name), fix(s.UID), fix(s.Tenant)
	if len(e.Details) > 0 {
		d := make(map[string]string, len(e.Details))
		keys := make([]string, 0, len(e.Details))
		for k := range e.Details {
			keys = append(keys, k)
		}
		sortUTF16(keys)
		for i, k := range keys {
			if i == maxDetails {
				d["truncated"] = strconv.Itoa(len(keys)-maxDetails) + " more details were cut"
				break
			}
			d[fix(k)] = fix(e.Details[k])
		}
		e.Details = d
	}
	return redactEvent(e)
}

func fixAll(ss []string, fix func(string) string) []string {
	if len(ss) == 0 {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fix(s)
	}
	return out
}
