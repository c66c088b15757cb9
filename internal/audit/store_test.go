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
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// testStore writes a closed store of events with small segments.
func testStore(t *testing.T, events int) (dir string, pub any) {
	t.Helper()
	dir = t.TempDir()
	store, err := OpenSegmentStore(dir, StoreOptions{SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	signer, pub := testKey(t, 1)
	l, _ := newTestLog(t, withSinks(store), withSigner(signer), withEvery(10))
	record(t, l, events)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, pub
}

func segLines(t *testing.T, dir string, n int) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, SegmentName(n)))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	return lines[:len(lines)-1]
}

func writeSeg(t *testing.T, dir string, n int, lines []string) {
	t.Helper()
	path := filepath.Join(dir, SegmentName(n))
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	writeLines(t, path, lines)
}

func TestSegmentStoreRotatesAndSeals(t *testing.T) {
	g := NewWithT(t)
	dir, _ := testStore(t, 60)
	segs, err := listSegments(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(len(segs)).To(BeNumerically(">=", 4))
	for i, s := range segs {
		st, err := os.Stat(filepath.Join(dir, s.name))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(st.Mode().Perm()).To(Equal(os.FileMode(0o440)), "sealed segments are read-only")
		g.Expect(st.Size()).To(BeNumerically("<=", 4096+512), "a segment ends near the size limit (plus its seal)")
		lines := segLines(t, dir, s.index)
		seal, err := parseSeal([]byte(strings.TrimSuffix(lines[len(lines)-1], "\n")))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(seal.Segment).To(Equal(s.name))
		g.Expect(seal.Count).To(Equal(uint64(len(lines) - 1)))
		if i == len(segs)-1 {
			g.Expect(seal.Closed).To(BeTrue())
			g.Expect(seal.Next).To(BeEmpty())
		} else {
			g.Expect(seal.Next).To(Equal(SegmentName(s.index + 1)))
		}
	}
}

func TestVerifyDetectsStoreMutations(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, dir string)
		want   string
	}{{
		name: "altered record",
		mutate: func(t *testing.T, dir string) {
			l := segLines(t, dir, 2)
			l[3] = strings.Replace(l[3], `"ttl":"10m"`, `"ttl":"99h"`, 1)
			writeSeg(t, dir, 2, l)
		},
		want: "segment-000002.jsonl:4: record seq ",
	}, {
		name: "middle segment deleted",
		mutate: func(t *testing.T, dir string) {
			g := NewWithT(t)
			g.Expect(os.Remove(filepath.Join(dir, SegmentName(2)))).To(Succeed())
		},
		want: "segment-000002.jsonl: missing: the store goes from segment-000001.jsonl to segment-000003.jsonl (segment deleted)",
	}, {
		name: "first segment deleted",
		mutate: func(t *testing.T, dir string) {
			NewWithT(t).Expect(os.Remove(filepath.Join(dir, SegmentName(1)))).To(Succeed())
		},
		want: "segment-000002.jsonl: the store starts at segment-000002.jsonl, not segment-000001.jsonl (earlier segments are missing)",
	}, {
		name: "last segment deleted",
		mutate: func(t *testing.T, dir string) {
			segs, _ := listSegments(dir)
			NewWithT(t).Expect(os.Remove(filepath.Join(dir, segs[len(segs)-1].name))).To(Succeed())
		},
		want: "was sealed with next segment",
	}, {
		name: "tail of a middle segment cut, seal included",
		mutate: func(t *testing.T, dir string) {
			l := segLines(t, dir, 2)
			writeSeg(t, dir, 2, l[:len(l)-3])
		},
		want: "segment-000003.jsonl:1: record seq",
	}, {
		name: "seal altered",
		mutate: func(t *testing.T, dir string) {
			l := segLines(t, dir, 2)
			l[len(l)-1] = strings.Replace(l[len(l)-1], `"count":`, `"count":1`, 1)
			writeSeg(t, dir, 2, l)
		},
		want: "the seal says 1",
	}, {
		name: "record appended after a seal",
		mutate: func(t *testing.T, dir string) {
			l := segLines(t, dir, 2)
			writeSeg(t, dir, 2, append(l, l[0]))
		},
		want: "a line follows the seal line (appended after the segment was sealed)",
	}, {
		name: "torn last line",
		mutate: func(t *testing.T, dir string) {
			segs, _ := listSegments(dir)
			n := segs[len(segs)-1].index
			l := segLines(t, dir, n)
			l = l[:len(l)-1] // the seal
			l[len(l)-1] = l[len(l)-1][:30]
			writeSeg(t, dir, n, l)
		},
		want: "truncated record (torn write): the segment ends in the middle of a line",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			dir, pub := testStore(t, 60)
			_, err := Verify(dir, VerifyOptions{Key: pub})
			g.Expect(err).NotTo(HaveOccurred())
			tt.mutate(t, dir)
			_, err = Verify(dir, VerifyOptions{Key: pub})
			g.Expect(err).To(MatchError(ContainSubstring(tt.want)))
		})
	}
}

// After a crash that tore the last line, the next run leaves the torn
// segment alone, continues the chain in a new segment that starts with an
// audit.recovered record, and the verifier accepts the log with a
// warning that names the torn line.
func TestSegmentStoreRecoversFromTornTail(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	signer, pub := testKey(t, 1)
	open := func() *Log {
		store, err := OpenSegmentStore(dir, StoreOptions{SegmentSize: 1 << 20})
		g.Expect(err).NotTo(HaveOccurred())
		l, _ := newTestLog(t, withSinks(store), withSigner(signer), withEvery(10))
		return l
	}
	l := open()
	record(t, l, 25)
	flush(t, l)
	// The crash: the log is never closed, and the last write was torn.
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	path := filepath.Join(dir, SegmentName(1))
	data, err := os.ReadFile(path)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(path, append(data, `{"action":"lease.rev`...), 0o640)).To(Succeed())
	_, err = Verify(dir, VerifyOptions{Key: pub})
	g.Expect(err).To(MatchError(ContainSubstring("segment-000001.jsonl:28: truncated record (torn write)")))

	l = open()
	record(t, l, 5)
	g.Expect(l.Close()).To(Succeed())

	rep, err := Verify(dir, VerifyOptions{Key: pub})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rep.Chains).To(Equal(1))
	g.Expect(rep.Warnings).To(ConsistOf(MatchRegexp(`^segment-000001\.jsonl:28: truncated record \(torn write, 20 bytes\) left by a crash; acknowledged by record seq 27 at segment-000002\.jsonl:1$`)))
	first := parse(t, segLines(t, dir, 2)[0])
	g.Expect(first.Action).To(Equal(ActionLogRecovered))
	g.Expect(first.Seq).To(Equal(uint64(27)))
	g.Expect(first.Details).To(HaveKeyWithValue("tornLine", "28"))
	st, err := os.Stat(path)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st.Size()).To(Equal(int64(len(data)+20)), "the torn segment is left as it was")

	// Forging the recovery record's description of the torn line is
	// detected (the forger re-signs nothing, so use the keyless check).
	lines := segLinesAll(t, dir, 2)
	lines[0] = rehash(t, lines[0], func(r *Record) { r.Details["tornSHA256"] = strings.Repeat("0", 64) })
	writeSeg(t, dir, 2, rechain(t, append(segLinesAll(t, dir, 1), lines...), false, nil)[27:])
	_, err = Verify(dir, VerifyOptions{SkipSignatures: true})
	g.Expect(err).To(MatchError(ContainSubstring("the recovery record describes a torn line of segment-000001.jsonl that is not the one on disk")))
}

// segLinesAll returns segment n's complete record lines (no torn line,
// no seal).
func segLinesAll(t *testing.T, dir string, n int) []string {
	var out []string
	for _, l := range segLines(t, dir, n) {
		if !strings.HasPrefix(l, `{"seal"`) {
			out = append(out, l)
		}
	}
	return out
}

// A clean restart continues the chain in a new segment: one chain, no
// recovery record.
func TestSegmentStoreCleanRestart(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	signer, pub := testKey(t, 1)
	for run := range 3 {
		store, err := OpenSegmentStore(dir, StoreOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		l, _ := newTestLog(t, withSinks(store), withSigner(signer))
		if run > 0 {
			n, _ := l.Head()
			g.Expect(n).To(Equal(uint64(run * 11)))
		}
		record(t, l, 10)
		g.Expect(l.Close()).To(Succeed())
	}
	rep, err := Verify(dir, VerifyOptions{Key: pub})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rep.Chains).To(Equal(1))
	g.Expect(rep.Records).To(Equal(33))
	g.Expect(rep.Files).To(Equal(3))
	g.Expect(rep.Warnings).To(BeEmpty())
}

// A run that stopped without closing (no torn line) is recovered too.
func TestSegmentStoreRecoversFromUnsealedSegment(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	signer, pub := testKey(t, 1)
	store, err := OpenSegmentStore(dir, StoreOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	l, _ := newTestLog(t, withSinks(store), withSigner(signer))
	record(t, l, 10)
	flush(t, l)

	store2, err := OpenSegmentStore(dir, StoreOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	l2, _ := newTestLog(t, withSinks(store2), withSigner(signer))
	l2.Record(context.Background(), event(1))
	g.Expect(l2.Close()).To(Succeed())
	rep, err := Verify(dir, VerifyOptions{Key: pub})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rep.Warnings).To(ConsistOf("segment-000001.jsonl: not sealed (the writer stopped without closing the log); acknowledged by record seq 10 at segment-000002.jsonl:1"))
}
