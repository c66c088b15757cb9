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
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Sink receives records, in seq order, in batches. Write returns only once
// the batch is as durable as the sink can make it; an error means none of
// the batch may be assumed written, and the Log buffers the whole batch
// and offers it again later, so a sink should not write part of a batch
// and fail (a writer that cannot avoid it produces duplicates, which the
// verifier reports).
type Sink interface {
	// Name identifies the sink in metrics, logs and buffer file names.
	Name() string
	// Write writes a batch of records.
	Write(records []*Record) error
	// Close flushes and releases the sink.
	Close() error
}

// Resumer is a Sink that keeps the log across restarts: the Log continues
// the chain from what it holds.
type Resumer interface {
	Sink
	// Resume reads back every record hash in seq order, so the Log can
	// rebuild its Merkle tree, and says whether the previous run ended
	// cleanly. last is nil for an empty store.
	Resume(hash func(seq uint64, hash string) error) (last *Record, recovery map[string]string, err error)
}

// WriterSink writes records as JSON lines to an io.Writer, such as
// os.Stdout, where log shippers pick them up. Each batch is one Write call.
type WriterSink struct {
	name string
	w    io.Writer
	buf  []byte
}

// NewWriterSink returns a sink named name that writes JSON lines to w.
func NewWriterSink(name string, w io.Writer) *WriterSink {
	return &WriterSink{name: name, w: w}
}

// NewStdoutSink returns the "stdout" sink.
func NewStdoutSink() *WriterSink { return NewWriterSink("stdout", os.Stdout) }

// Name implements Sink.
func (s *WriterSink) Name() string { return s.name }

// Write implements Sink.
func (s *WriterSink) Write(records []*Record) error {
	s.buf = s.buf[:0]
	for _, r := range records {
		s.buf = append(s.buf, r.Line()...)
		s.buf = append(s.buf, '\n')
	}
	_, err := s.w.Write(s.buf)
	if f, ok := s.w.(*os.File); ok && err == nil && f != os.Stdout && f != os.Stderr {
		err = f.Sync()
	}
	return err
}

// Close implements Sink; it does not close the writer.
func (s *WriterSink) Close() error { return nil }

// MemorySink keeps records in memory, for tests. It is safe for concurrent
// use; Fail makes it refuse writes, to test a sink that is down.
type MemorySink struct {
	mu      sync.Mutex
	records []*Record
	err     error
}

// NewMemorySink returns an empty "memory" sink.
func NewMemorySink() *MemorySink { return &MemorySink{} }

// Name implements Sink.
func (s *MemorySink) Name() string { return "memory" }

// Write implements Sink.
func (s *MemorySink) Write(records []*Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.records = append(s.records, records...)
	return nil
}

// Close implements Sink.
func (s *MemorySink) Close() error { return nil }

// Fail makes later writes fail with err, or succeed again when err is nil.
func (s *MemorySink) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// Records returns copies of the records written so far.
func (s *MemorySink) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, len(s.records))
	for i, r := range s.records {
		out[i] = *r
	}
	return out
}

// Events returns the records of TypeEvent written so far.
func (s *MemorySink) Events() []Record {
	return slices.DeleteFunc(s.Records(), func(r Record) bool { return r.Type != TypeEvent })
}

// spool is a sink's bounded on-disk buffer: the JSON lines of records the
// sink could not take, in order, replayed when it recovers.
type spool struct {
	path     string
	maxBytes int64
	size     int64
	count    int
}

func openSpool(dir, sink string, maxBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &spool{path: filepath.Join(dir, sink+".spool"), maxBytes: maxBytes}
	data, err := os.ReadFile(s.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	// A torn last line (a crash while spooling) is dropped here; the
	// records it held are then missing from that sink, which its
	// verification reports as a gap.
	if i := bytes.LastIndexByte(data, '\n'); i+1 != len(data) {
		data = data[:i+1]
		if err := os.WriteFile(s.path, data, 0o600); err != nil {
			return nil, err
		}
	}
	s.size = int64(len(data))
	s.count = bytes.Count(data, []byte{'\n'})
	return s, nil
}

// add appends the records that fit; it returns how many did not.
func (s *spool) add(records []*Record) (dropped int, err error) {
	var buf []byte
	n := 0
	for _, r := range records {
		l := int64(len(r.Line()) + 1)
		if s.size+int64(len(buf))+l > s.maxBytes {
			break
		}
		buf = append(buf, r.Line()...)
		buf = append(buf, '\n')
		n++
	}
	if n > 0 {
		f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return len(records), err
		}
		_, err = f.Write(buf)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return len(records), err
		}
		s.size += int64(len(buf))
		s.count += n
	}
	return len(records) - n, nil
}

// replay offers the spooled records to write in batches of at most batch;
// on success the spool is empty, on failure it keeps what write did not
// take.
func (s *spool) replay(batch int, write func([]*Record) error) error {
	if s.count == 0 {
		return nil
	}
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes+1)
	var pending []*Record
	var done int64
	flush := func() error {
		if err := write(pending); err != nil {
			return err
		}
		for _, r := range pending {
			done += int64(len(r.line) + 1)
		}
		pending = pending[:0]
		return nil
	}
	var werr error
	for sc.Scan() {
		r, err := ParseRecord(sc.Bytes())
		if err != nil {
			return fmt.Errorf("buffer %s: %v", s.path, err)
		}
		r.line = slices.Clone(sc.Bytes())
		pending = append(pending, r)
		if len(pending) == batch {
			if werr = flush(); werr != nil {
				break
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("buffer %s: %v", s.path, err)
	}
	if werr == nil && len(pending) > 0 {
		werr = flush()
	}
	if werr == nil {
		s.size, s.count = 0, 0
		return os.Truncate(s.path, 0)
	}
	// Keep the rest: copy it to a new file and rename it over the spool.
	if _, err := f.Seek(done, io.SeekStart); err != nil {
		return errors.Join(werr, err)
	}
	rest, err := io.ReadAll(f)
	if err != nil {
		return errors.Join(werr, err)
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, rest, 0o600); err != nil {
		return errors.Join(werr, err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return errors.Join(werr, err)
	}
	s.size = int64(len(rest))
	s.count = bytes.Count(rest, []byte{'\n'})
	return werr
}
