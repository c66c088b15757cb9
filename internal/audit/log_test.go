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
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestLogStoreRoundTrip(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	store, err := OpenSegmentStore(dir, StoreOptions{SegmentSize: 4096})
	g.Expect(err).NotTo(HaveOccurred())
	signer, pub := testKey(t, 1)
	l, _ := newTestLog(t, withSinks(store), withSigner(signer), withEvery(10))
	record(t, l, 95)
	g.Expect(l.Close()).To(Succeed())

	rep, err := Verify(dir, VerifyOptions{Key: pub})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rep.Events).To(Equal(95))
	g.Expect(rep.Checkpoints).To(Equal(10)) // 9 every 10 events + the final one
	g.Expect(rep.Files).To(BeNumerically(">", 3))
}

// captured is a logger that keeps what it was told.
type captured struct {
	mu    sync.Mutex
	lines []string
}

func (c *captured) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.lines = append(c.lines, args)
	}, funcr.Options{})
}

func (c *captured) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lines)
}

func TestLogRecordsEvents(t *testing.T) {
	g := NewWithT(t)
	sink := NewMemorySink()
	l, reg := newTestLog(t, withSinks(sink))
	l.Record(context.Background(), event(1))
	l.Record(context.Background(), Event{Action: ActionAgentSuspended, Decision: DecisionInfo})
	flush(t, l)
	recs := sink.Records()
	g.Expect(recs).To(HaveLen(2))
	r := recs[0]
	g.Expect(r.Schema).To(Equal(SchemaVersion))
	g.Expect(r.Seq).To(Equal(uint64(0)))
	g.Expect(r.Time).To(Equal(t0))
	g.Expect(r.PrevHash).To(Equal(GenesisHash))
	g.Expect(r.Hash).To(Equal(r.ComputeHash()))
	g.Expect(r.Event()).To(Equal(event(1)))
	g.Expect(recs[1].PrevHash).To(Equal(r.Hash))
	g.Expect(recs[1].Actor).To(BeNil())
	g.Expect(recs[1].Subject).To(BeNil())
	g.Expect(testutil.ToFloat64(l.metrics.records.WithLabelValues(TypeEvent))).To(Equal(2.0))
	g.Expect(l.Close()).To(Succeed())
	g.Expect(sink.Records()).To(HaveLen(2), "no signer: no final checkpoint")
	n, err := testutil.GatherAndCount(reg, "custos_audit_records_total")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(n).To(Equal(1))

	Discard().Record(context.Background(), event(1)) // does nothing, does not panic
}

func TestLogRedactsBeforeHashing(t *testing.T) {
	g := NewWithT(t)
	sink := NewMemorySink()
	l, _ := newTestLog(t, withSinks(sink))
	l.Record(context.Background(), Event{Action: ActionLeaseIssued,
		Reason:  "exchanged token eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJlLWJ5dGVz for a lease",
		Details: map[string]string{"token": "hunter2", "secretName": "ledger-api-creds", "ttl": "10m"}})
	g.Expect(l.Close()).To(Succeed())
	r := sink.Records()[0]
	g.Expect(r.Reason).To(Equal("exchanged token [REDACTED] for a lease"))
	g.Expect(r.Details).To(Equal(map[string]string{"token": Redacted, "secretName": "ledger-api-creds", "ttl": "10m"}))
	g.Expect(r.Redacted).To(Equal([]string{"reason", "details.token"}))
	g.Expect(string(r.Line())).NotTo(ContainSubstring("hunter2"))
	g.Expect(testutil.ToFloat64(l.metrics.redactions)).To(Equal(2.0))
}

func TestLogCheckpoints(t *testing.T) {
	g := NewWithT(t)
	sink := NewMemorySink()
	signer, pub := testKey(t, 1)
	clk := clocktesting.NewFakeClock(t0)
	l, _ := newTestLog(t, withSinks(sink), withSigner(signer), withEvery(5), withClock(clk))
	record(t, l, 12) // checkpoints after 5 and 10 events
	flush(t, l)
	g.Expect(checkpointSeqs(sink)).To(Equal([]uint64{5, 11}))

	// The interval: a checkpoint once a minute passed and records were
	// added; none when nothing was added.
	g.Eventually(clk.HasWaiters).Should(BeTrue())
	clk.Step(time.Minute)
	g.Eventually(func() []uint64 { return checkpointSeqs(sink) }).Should(Equal([]uint64{5, 11, 14}))
	clk.Step(time.Minute)
	flush(t, l)
	g.Consistently(func() []uint64 { return checkpointSeqs(sink) }, "100ms").Should(Equal([]uint64{5, 11, 14}))

	g.Expect(l.Close()).To(Succeed())
	recs := sink.Records()
	last := recs[len(recs)-1]
	g.Expect(last.Checkpoint.Final).To(BeTrue())
	g.Expect(last.Checkpoint.Size).To(Equal(uint64(15)))
	g.Expect(verifySignature(pub, &last)).To(Succeed())

	// Every checkpoint's root is the Merkle root of the records before
	// it, and proves their inclusion.
	var hashes []string
	for _, r := range recs {
		if r.Checkpoint != nil {
			for i := range r.Checkpoint.Size {
				p, err := ProveInclusion(hashes, i, r.Checkpoint.Size)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(p.Verify(r.Checkpoint.Root)).To(Succeed())
			}
		}
		hashes = append(hashes, r.Hash)
	}
}

func checkpointSeqs(s *MemorySink) []uint64 {
	var seqs []uint64
	for _, r := range s.Records() {
		if r.Type == TypeCheckpoint {
			seqs = append(seqs, r.Seq)
		}
	}
	return seqs
}

func TestInclusionProofRejectsWrongLeaf(t *testing.T) {
	g := NewWithT(t)
	var hashes []string
	for i := range 7 {
		r := &Record{Schema: SchemaVersion, Seq: uint64(i), Time: t0, Type: TypeEvent, PrevHash: GenesisHash}
		hashes = append(hashes, r.ComputeHash())
	}
	p, err := ProveInclusion(hashes, 3, 7)
	g.Expect(err).NotTo(HaveOccurred())
	root := p.Root
	g.Expect(p.Verify(root)).To(Succeed())
	p.Leaf = hashes[4]
	g.Expect(p.Verify(root)).To(MatchError(ContainSubstring("record 3 is not proven in the tree of 7 records")))
	_, err = ProveInclusion(hashes, 7, 7)
	g.Expect(err).To(HaveOccurred())
	tr := newTree()
	for _, h := range hashes {
		g.Expect(tr.append(h)).To(Succeed())
	}
	g.Expect(tr.root()).To(Equal(root))
}

// A sink that is down gets its records from the on-disk buffer, in order,
// once it is back; nothing is lost and everything is counted.
func TestLogBuffersForASinkThatIsDown(t *testing.T) {
	g := NewWithT(t)
	down := NewMemorySink()
	up := NewWriterSink("other", io.Discard)
	clk := clocktesting.NewFakeClock(t0)
	logs := &captured{}
	l, _ := newTestLog(t, withSinks(down, up), withClock(clk), func(o *Options) { o.Logger = logs.logger() })
	down.Fail(errors.New("connection refused"))
	record(t, l, 20)
	flush(t, l)
	g.Expect(down.Records()).To(BeEmpty())
	g.Expect(testutil.ToFloat64(l.metrics.buffered.WithLabelValues("memory"))).To(Equal(20.0))
	g.Expect(testutil.ToFloat64(l.metrics.sinkErrors.WithLabelValues("memory"))).To(BeNumerically(">=", 1))
	g.Expect(logs.all()).To(ContainElement(ContainSubstring(`"msg"="Audit sink is down; buffering its records on disk" "error"="connection refused" "sink"="memory"`)))

	down.Fail(nil)
	g.Eventually(clk.HasWaiters).Should(BeTrue())
	clk.Step(5 * time.Second) // the retry interval
	g.Eventually(func() int { return len(down.Records()) }).Should(Equal(20))
	record(t, l, 5)
	flush(t, l)
	recs := down.Records()
	g.Expect(recs).To(HaveLen(25))
	for i, r := range recs {
		g.Expect(r.Seq).To(Equal(uint64(i)), "replayed in order, then the new ones")
	}
	g.Expect(testutil.ToFloat64(l.metrics.buffered.WithLabelValues("memory"))).To(Equal(0.0))
	g.Expect(testutil.ToFloat64(l.metrics.dropped.WithLabelValues("memory"))).To(Equal(0.0))
	g.Expect(l.Close()).To(Succeed())
}

// When the buffer is full, records are dropped, but never silently.
func TestLogCountsAndLogsDropsWhenTheBufferIsFull(t *testing.T) {
	g := NewWithT(t)
	down := NewMemorySink()
	logs := &captured{}
	l, _ := newTestLog(t, withSinks(down), withBuffer(t.TempDir(), 3000), func(o *Options) { o.Logger = logs.logger() })
	down.Fail(errors.New("disk full"))
	record(t, l, 20)
	flush(t, l)
	buffered := testutil.ToFloat64(l.metrics.buffered.WithLabelValues("memory"))
	dropped := testutil.ToFloat64(l.metrics.dropped.WithLabelValues("memory"))
	g.Expect(buffered).To(BeNumerically(">", 0))
	g.Expect(dropped).To(BeNumerically(">", 0))
	g.Expect(buffered + dropped).To(Equal(20.0))
	g.Expect(logs.all()).To(ContainElement(ContainSubstring(`"msg"="Audit records dropped: the sink is down and its buffer is full or unwritable"`)))
	err := l.Close()
	g.Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf(`sink "memory" is down: %d records stay in`, int(buffered)))))
}

// Records buffered when a run ended are replayed by the next one.
func TestLogReplaysTheBufferOfAnEarlierRun(t *testing.T) {
	g := NewWithT(t)
	buf := t.TempDir()
	sink := NewMemorySink()
	sink.Fail(errors.New("down"))
	l, _ := newTestLog(t, withSinks(sink), withBuffer(buf, 1<<20))
	record(t, l, 3)
	g.Expect(l.Close()).To(MatchError(ContainSubstring("3 records stay in")))
	sink.Fail(nil)
	l, _ = newTestLog(t, withSinks(sink), withBuffer(buf, 1<<20))
	g.Expect(sink.Records()).To(HaveLen(3))
	g.Expect(l.Close()).To(Succeed())
}

// When the queue is full, events are refused before they get a seq, and
// a record of how many follows: the chain stays whole.
func TestLogQueueFullDropsBeforeSequencing(t *testing.T) {
	g := NewWithT(t)
	sink := &blockingSink{MemorySink: NewMemorySink(), release: make(chan struct{})}
	l, _ := newTestLog(t, withSinks(sink), func(o *Options) { o.QueueSize = 5 })
	l.Record(context.Background(), event(0))
	g.Eventually(sink.entered.Load).Should(BeTrue()) // the writer holds seq 0
	record(t, l, 8)                                  // 5 queue, 3 dropped
	g.Expect(testutil.ToFloat64(l.metrics.dropped.WithLabelValues(queueSink))).To(Equal(3.0))
	close(sink.release)
	flush(t, l)
	l.Record(context.Background(), event(9))
	g.Expect(l.Close()).To(Succeed())
	recs := sink.Records()
	g.Expect(recs).To(HaveLen(8))
	g.Expect(recs[6].Action).To(Equal(ActionRecordsDropped))
	g.Expect(recs[6].Details).To(HaveKeyWithValue("count", "3"))
	for i, r := range recs {
		g.Expect(r.Seq).To(Equal(uint64(i)))
	}
}

type blockingSink struct {
	*MemorySink
	entered atomic.Bool
	release chan struct{}
}

func (s *blockingSink) Write(rs []*Record) error {
	s.entered.Store(true)
	<-s.release
	return s.MemorySink.Write(rs)
}

// Many goroutines record at once; the chain is one valid sequence.
func TestLogConcurrentRecord(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	f, err := os.Create(path)
	g.Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	signer, pub := testKey(t, 1)
	l, _ := newTestLog(t, withSinks(NewWriterSink("file", f)), withSigner(signer), withEvery(100))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 250 {
				l.Record(context.Background(), event(w*1000+i))
			}
		})
	}
	wg.Wait()
	g.Expect(l.Close()).To(Succeed())
	rep, err := Verify(path, VerifyOptions{Key: pub})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rep.Events).To(Equal(2000))
}

// Events are cut to size and made valid UTF-8 before hashing.
func TestSanitizeEvent(t *testing.T) {
	g := NewWithT(t)
	details := map[string]string{}
	for i := range 70 {
		details[fmt.Sprintf("k%02d", i)] = "v"
	}
	e := Event{Reason: strings.Repeat("é", 3000), Policy: "bad \xff utf8", Details: details}
	sanitizeEvent(&e)
	g.Expect(len(e.Reason)).To(BeNumerically("<=", maxValueBytes+len(truncatedMark)))
	g.Expect(e.Reason).To(HaveSuffix(truncatedMark))
	g.Expect(utf8.ValidString(e.Reason)).To(BeTrue())
	g.Expect(e.Policy).To(Equal("bad \uFFFD utf8"))
	g.Expect(e.Details).To(HaveLen(maxDetails + 1))
	g.Expect(e.Details).To(HaveKeyWithValue("truncated", "6 more details were cut"))
	g.Expect(details).To(HaveLen(70), "the caller's map is not changed")
}

// A closed standard output (here a pipe whose reader is gone) fails the
// sink's writes with EPIPE; the records are buffered, not lost, and the
// process is not killed.
func TestLogStdoutClosed(t *testing.T) {
	g := NewWithT(t)
	r, w, err := os.Pipe()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Close()).To(Succeed())
	defer w.Close()
	l, _ := newTestLog(t, withSinks(NewWriterSink("stdout", w)))
	record(t, l, 3)
	flush(t, l)
	g.Expect(testutil.ToFloat64(l.metrics.sinkErrors.WithLabelValues("stdout"))).To(BeNumerically(">=", 1))
	g.Expect(testutil.ToFloat64(l.metrics.buffered.WithLabelValues("stdout"))).To(Equal(3.0))
	g.Expect(l.Close()).To(MatchError(ContainSubstring(`sink "stdout" is down: 3 records stay in`)))
}
