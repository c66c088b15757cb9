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
