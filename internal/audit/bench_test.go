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

	"github.com/go-logr/logr"
)

func BenchmarkSanitizeEvent(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		e := event(i)
		sanitizeEvent(&e)
	}
}

// BenchmarkLogRecord is the cost of one Record call into a store, batches
// and fsyncs included.
func BenchmarkLogRecord(b *testing.B) {
	store, err := OpenSegmentStore(b.TempDir(), StoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	signer, _ := testKey(b, 1)
	l, err := New(Options{Sinks: []Sink{store}, Signer: signer, BufferDir: b.TempDir(), Logger: logr.Discard(), QueueSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Record(context.Background(), event(i))
			i++
		}
	})
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSegmentStoreWrite appends batches of 256 records.
func BenchmarkSegmentStoreWrite(b *testing.B) {
	recs := benchRecords(b, 256)
	store, err := OpenSegmentStore(b.TempDir(), StoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(recs) * (len(recs[0].Line()) + 1)))
	for b.Loop() {
		if err := store.Write(recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkPlainFileWrite is the baseline: the same batches, written and
// fsynced to one file.
func BenchmarkPlainFileWrite(b *testing.B) {
	recs := benchRecords(b, 256)
	f, err := os.Create(filepath.Join(b.TempDir(), "plain.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(int64(len(recs) * (len(recs[0].Line()) + 1)))
	var buf []byte
	for b.Loop() {
		buf = buf[:0]
		for _, r := range recs {
			buf = append(append(buf, r.Line()...), '\n')
		}
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkVerify verifies a log of 10,000 records per iteration.
func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	store, err := OpenSegmentStore(dir, StoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	signer, pub := testKey(b, 1)
	l, err := New(Options{Sinks: []Sink{store}, Signer: signer, BufferDir: b.TempDir(), Logger: logr.Discard()})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		l.Record(context.Background(), event(i))
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Verify(dir, VerifyOptions{Key: pub}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*10010)/b.Elapsed().Seconds(), "records/s")
}

func benchRecords(b *testing.B, n int) []*Record {
	sink := NewMemorySink()
	l, err := New(Options{Sinks: []Sink{sink}, BufferDir: b.TempDir(), Logger: logr.Discard()})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		l.Record(context.Background(), event(i))
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	recs := sink.Records()
	out := make([]*Record, len(recs))
	for i := range recs {
		out[i] = &recs[i]
	}
	return out
}
