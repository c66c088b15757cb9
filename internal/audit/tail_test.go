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
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestStoreReaderFollows: a follower reads every record of a store in
// order from any seq, across sealed segments and the one being written,
// and leaves a line being appended for its next read.
func TestStoreReaderFollows(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	store, err := OpenSegmentStore(dir, StoreOptions{SegmentSize: 4096})
	g.Expect(err).NotTo(HaveOccurred())
	signer, _ := testKey(t, 1)
	l, _ := newTestLog(t, withSinks(store), withSigner(signer), withEvery(10))
	record(t, l, 40)
	g.Expect(l.Flush(context.Background())).To(Succeed())

	r := &StoreReader{Dir: dir}
	all, err := r.Read(0, 0)
	g.Expect(err).NotTo(HaveOccurred())
	segs, err := listSegments(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(len(segs)).To(BeNumerically(">=", 3), "records over several segments, the last being written")
	size, _ := l.Head()
	g.Expect(all).To(HaveLen(int(size)), "every record, checkpoints included")
	for i, rec := range all {
		g.Expect(rec.Seq).To(BeEquivalentTo(i))
	}

	// From a seq in a later segment: the sealed ones before it are not
	// read again (their seals say so).
	from := all[len(all)-5].Seq
	tail, err := r.Read(from, 0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tail).To(HaveLen(5))
	g.Expect(tail[0].Seq).To(Equal(from))
	g.Expect(r.sealed).To(HaveLen(len(segs)-1), "the sealed segments' ranges are remembered")
	some, err := r.Read(3, 4)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(some).To(HaveLen(4))
	g.Expect(some[3].Seq).To(BeEquivalentTo(6))

	// Records added since are read from where the last read ended.
	g.Expect(r.ends).NotTo(BeEmpty())
	record(t, l, 3)
	g.Expect(l.Flush(context.Background())).To(Succeed())
	added, err := r.Read(size, 0)
	g.Expect(err).NotTo(HaveOccurred())
	newSize, _ := l.Head()
	g.Expect(added).NotTo(BeEmpty())
	g.Expect(added).To(HaveLen(int(newSize - size)))
	for i, rec := range added {
		g.Expect(rec.Seq).To(Equal(size + uint64(i)))
	}
	size = newSize
	segs, err = listSegments(dir)
	g.Expect(err).NotTo(HaveOccurred())

	// A line half written at the end of the segment being written is not
	// read until it is whole.
	last := filepath.Join(dir, segs[len(segs)-1].name)
	f, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = f.WriteString(`{"action":"tool.called","seq":`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.Close()).To(Succeed())
	again, err := r.Read(size, 0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(BeEmpty())
}

// TestStoreReaderNewStore: a store emptied and begun again under the same
// segment names is read as the new files it is, not through what was
// remembered of the old ones; and a read from the last record read returns
// it again.
func TestStoreReaderNewStore(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	write := func(n int) {
		store, err := OpenSegmentStore(dir, StoreOptions{SegmentSize: 4096})
		g.Expect(err).NotTo(HaveOccurred())
		l, _ := newTestLog(t, withSinks(store))
		record(t, l, n)
		g.Expect(l.Close()).To(Succeed())
	}
	write(60)
	r := &StoreReader{Dir: dir}
	old, err := r.Read(0, 0)
	g.Expect(err).NotTo(HaveOccurred())
	last := old[len(old)-1]
	again, err := r.Read(last.Seq, 0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(HaveLen(1))
	g.Expect(again[0].Hash).To(Equal(last.Hash))

	entries, err := os.ReadDir(dir)
	g.Expect(err).NotTo(HaveOccurred())
	for _, e := range entries {
		g.Expect(os.Remove(filepath.Join(dir, e.Name()))).To(Succeed())
	}
	write(90)
	fresh, err := r.Read(50, 0)
	g.Expect(err).NotTo(HaveOccurred())
	all, err := (&StoreReader{Dir: dir}).Read(50, 0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fresh).To(Equal(all))
	g.Expect(fresh).NotTo(BeEmpty())
	g.Expect(fresh[0].Seq).To(BeEquivalentTo(50))
}

// TestPruneRead: a feed's store drops the sealed segments its reader has
// read past, once old enough, never the one being written; and each run of
// a process serving a feed writes a store of its own (FeedRunDir).
func TestPruneRead(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	store, err := OpenSegmentStore(dir, StoreOptions{SegmentSize: 4096})
	g.Expect(err).NotTo(HaveOccurred())
	l, _ := newTestLog(t, withSinks(store))
	record(t, l, 60)
	g.Expect(l.Flush(context.Background())).To(Succeed())
	r := &StoreReader{Dir: dir}
	all, err := r.Read(0, 0)
	g.Expect(err).NotTo(HaveOccurred())
	segs, err := listSegments(dir)
	g.Expect(err).NotTo(HaveOccurred())

	n, err := r.PruneRead(40, time.Now().Add(-time.Hour))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(n).To(BeZero(), "too recent")
	n, err = r.PruneRead(40, time.Now().Add(time.Minute))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(n).To(BeNumerically(">", 0))
	left, err := listSegments(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(len(left)).To(Equal(len(segs) - n))
	rest, err := r.Read(0, 0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rest[0].Seq).To(BeNumerically(">", 0))
	g.Expect(rest[0].Seq).To(BeNumerically("<=", 40), "nothing from 40 on is gone")
	g.Expect(rest[len(rest)-1]).To(Equal(all[len(all)-1]))
	n, err = r.PruneRead(1000, time.Now().Add(time.Minute))
	g.Expect(err).NotTo(HaveOccurred())
	left, _ = listSegments(dir)
	g.Expect(left).To(HaveLen(1), "the segment being written stays")

	parent := t.TempDir()
	g.Expect(os.MkdirAll(filepath.Join(parent, "run-old"), 0o700)).To(Succeed())
	cfg := Config{Sink: SinkBoth, Dir: parent}
	g.Expect(FeedRunDir(&cfg, time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))).To(Succeed())
	g.Expect(cfg.Dir).To(Equal(filepath.Join(parent, "run-20261207T120000.000000000")))
	entries, err := os.ReadDir(parent)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(entries).To(HaveLen(1))
	g.Expect(entries[0].Name()).To(Equal("run-20261207T120000.000000000"))
}
