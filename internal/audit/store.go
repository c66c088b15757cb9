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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// SegmentStoreName is the sink name of a SegmentStore.
const SegmentStoreName = "file"

// segmentPattern matches segment file names; the number orders them.
var segmentPattern = regexp.MustCompile(`^segment-(\d{6,})\.jsonl$`)

// SegmentName is the file name of segment n (from 1).
func SegmentName(n int) string { return fmt.Sprintf("segment-%06d.jsonl", n) }

// Seal is the last line of a sealed segment, {"seal":{...}}. It is not a
// record and not chained: the verifier checks it against the segment's
// records, so that a segment cut short or a segment missing after it is
// reported.
type Seal struct {
	// Segment is the file's own name.
	Segment string `json:"segment"`
	// Count is the number of records in the segment.
	Count uint64 `json:"count"`
	// FirstSeq and LastSeq are the seq of its first and last record.
	FirstSeq uint64 `json:"firstSeq"`
	LastSeq  uint64 `json:"lastSeq"`
	// LastHash is the hash of its last record.
	LastHash string `json:"lastHash"`
	// Next names the segment that follows when the segment was sealed
	// because it was full.
	Next string `json:"next,omitempty"`
	// Closed is set when it was sealed because the Log was closed.
	Closed bool `json:"closed,omitempty"`
}

func (s *Seal) line() []byte {
	o := object{}
	o.member("seal")
	in := object{b: o.b}
	if s.Closed {
		in.member("closed")
		in.b = append(in.b, "true"...)
	}
	in.member("count")
	in.b = strconv.AppendUint(in.b, s.Count, 10)
	in.member("firstSeq")
	in.b = strconv.AppendUint(in.b, s.FirstSeq, 10)
	in.member("lastHash")
	in.b = appendCanonicalString(in.b, s.LastHash)
	in.member("lastSeq")
	in.b = strconv.AppendUint(in.b, s.LastSeq, 10)
	in.str("next", s.Next)
	in.member("segment")
	in.b = appendCanonicalString(in.b, s.Segment)
	o.b = in.end()
	return o.end()
}

var sealPrefix = []byte(`{"seal":`)

// parseSeal decodes a seal line.
func parseSeal(line []byte) (*Seal, error) {
	var v struct {
		Seal *Seal `json:"seal"`
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil || v.Seal == nil {
		return nil, fmt.Errorf("not a valid seal line: %v", err)
	}
	if !bytes.Equal(v.Seal.line(), line) {
		return nil, errors.New("seal line is not in canonical form (altered)")
	}
	return v.Seal, nil
}

// PartialWriteError says that a sink durably wrote the first Written
// records of a batch before failing; the Log buffers only the rest.
type PartialWriteError struct {
	Written int
	Err     error
}

// Error implements error.
func (e *PartialWriteError) Error() string {
	return fmt.Sprintf("wrote %d records, then: %v", e.Written, e.Err)
}

// Unwrap returns the write error.
func (e *PartialWriteError) Unwrap() error { return e.Err }

// StoreOptions configure a SegmentStore.
type StoreOptions struct {
	// SegmentSize is the size at which the active segment is sealed and
	// a new one started; 0 means 64 MiB.
	SegmentSize int64
}

// SegmentStore is an append-only store of the log on a volume: a directory
// of segment files of JSON lines. Records are appended to the active
// segment, one write and one fsync per batch. A full segment is sealed
// (a seal line, fsync, made read-only) and the next one started. Each
// run starts a new segment, so a file once closed is never written again.
type SegmentStore struct {
	dir     string
	size    int64
	lastIdx int // the highest segment number on disk

	f    *os.File // the active segment, nil until the first write
	name string
	cur  segmentState
	buf  []byte

	recovery map[string]string
}

// segmentState is what a seal line says about the active segment.
type segmentState struct {
	bytes          int64
	count          uint64
	firstSeq, last uint64
	lastHash       string
}

// OpenSegmentStore opens or creates the store in dir. When the last
// segment was left unsealed by a crash (possibly with a torn last line),
// it is made read-only and left as it is, and Resume reports the recovery,
// which the Log records as the next record.
func OpenSegmentStore(dir string, opts StoreOptions) (*SegmentStore, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = 64 << 20
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("audit store: %w", err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("audit store: %w", err)
	}
	s := &SegmentStore{dir: dir, size: opts.SegmentSize}
	if len(segs) == 0 {
		return s, nil
	}
	last := segs[len(segs)-1]
	s.lastIdx = last.index
	data, err := os.ReadFile(filepath.Join(dir, last.name))
	if err != nil {
		return nil, fmt.Errorf("audit store: %w", err)
	}
	if rec := inspectTail(last.name, data); rec != nil {
		s.recovery = rec
		if err := os.Chmod(filepath.Join(dir, last.name), 0o440); err != nil {
			return nil, fmt.Errorf("audit store: %w", err)
		}
	}
	return s, nil
}

// inspectTail returns the recovery details for a segment that was not
// sealed, or nil for a sealed one.
func inspectTail(name string, data []byte) map[string]string {
	complete := data
	var torn []byte
	if i := bytes.LastIndexByte(data, '\n'); i+1 != len(data) {
		complete, torn = data[:i+1], data[i+1:]
	}
	lines := bytes.Count(complete, []byte{'\n'})
	if torn == nil && lines > 0 {
		lastLine := complete[bytes.LastIndexByte(complete[:len(complete)-1], '\n')+1 : len(complete)-1]
		if bytes.HasPrefix(lastLine, sealPrefix) {
			if _, err := parseSeal(lastLine); err == nil {
				return nil
			}
		}
	}
	rec := map[string]string{
		"segment": name,
		"lines":   strconv.Itoa(lines),
	}
	if torn != nil {
		sum := sha256.Sum256(torn)
		rec["reason"] = "the previous run stopped in the middle of writing a record: " + name + " ends in a torn line, which was left in place"
		rec["tornLine"] = strconv.Itoa(lines + 1)
		rec["tornOffset"] = strconv.Itoa(len(complete))
		rec["tornBytes"] = strconv.Itoa(len(torn))
		rec["tornSHA256"] = hex.EncodeToString(sum[:])
	} else {
		rec["reason"] = "the previous run did not close the log: " + name + " was not sealed"
	}
	return rec
}

type segmentFile struct {
	name  string
	index int
}

func listSegments(dir string) ([]segmentFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segmentFile
	for _, e := range entries {
		m := segmentPattern.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil {
			continue
		}
		segs = append(segs, segmentFile{name: e.Name(), index: n})
	}
	slices.SortFunc(segs, func(a, b segmentFile) int { return a.index - b.index })
	return segs, nil
}

// Name implements Sink.
func (s *SegmentStore) Name() string { return SegmentStoreName }

// Dir is the store's directory.
func (s *SegmentStore) Dir() string { return s.dir }

// Resume implements Resumer: it reads every record's seq and hash, in
// order, skipping seal lines and a torn last line that recovery reports.
func (s *SegmentStore) Resume(hash func(seq uint64, hash string) error) (*Record, map[string]string, error) {
	segs, err := listSegments(s.dir)
	if err != nil {
		return nil, nil, err
	}
	var lastLine []byte
	for _, seg := range segs {
		if s.f != nil && seg.name == s.name {
			// Records that this run already wrote (replayed from the
			// buffer) count too.
			if err := s.f.Sync(); err != nil {
				return nil, nil, err
			}
		}
		f, err := os.Open(filepath.Join(s.dir, seg.name))
		if err != nil {
			return nil, nil, err
		}
		r := bufio.NewReaderSize(f, 1<<20)
		for n := 1; ; n++ {
			line, err := r.ReadSlice('\n')
			if err == bufio.ErrBufferFull {
				f.Close()
				return nil, nil, fmt.Errorf("%s:%d: line longer than 1 MiB", seg.name, n)
			}
			if err == io.EOF {
				break // a torn line, reported by OpenSegmentStore
			}
			if err != nil {
				f.Close()
				return nil, nil, err
			}
			if bytes.HasPrefix(line, sealPrefix) {
				continue
			}
			var v struct {
				Seq  uint64 `json:"seq"`
				Hash string `json:"hash"`
			}
			if err := json.Unmarshal(line, &v); err != nil {
				f.Close()
				return nil, nil, fmt.Errorf("%s:%d: %v", seg.name, n, err)
			}
			if err := hash(v.Seq, v.Hash); err != nil {
				f.Close()
				return nil, nil, fmt.Errorf("%s:%d: %w", seg.name, n, err)
			}
			lastLine = append(lastLine[:0], line...)
		}
		f.Close()
	}
	if lastLine == nil {
		return nil, s.recovery, nil
	}
	last, err := ParseRecord(lastLine)
	if err != nil {
		return nil, nil, err
	}
	return last, s.recovery, nil
}

// Write implements Sink: one write and one fsync for the batch, sealing
// and starting segments as they fill. On failure the active segment is cut
// back to where the batch started; a PartialWriteError says how many
// records were already sealed in an earlier segment.
func (s *SegmentStore) Write(records []*Record) error {
	if len(records) == 0 {
		return nil
	}
	if s.f == nil {
		if err := s.startSegment(); err != nil {
			return err
		}
	}
	start := s.cur
	done := 0
	fail := func(err error) error {
		if terr := s.f.Truncate(start.bytes); terr != nil {
			err = errors.Join(err, terr)
		}
		s.cur = start
		if done > 0 {
			return &PartialWriteError{Written: done, Err: err}
		}
		return err
	}
	s.buf = s.buf[:0]
	for i, r := range records {
		line := r.Line()
		fill := s.cur.bytes + int64(len(s.buf))
		if s.cur.count > 0 && fill+int64(len(line))+1 > s.size {
			if err := s.writeBuf(); err != nil {
				return fail(err)
			}
			if err := s.seal(false); err != nil {
				return fail(err)
			}
			if err := s.startSegment(); err != nil {
				return &PartialWriteError{Written: i, Err: err}
			}
			done, start = i, s.cur
		}
		s.buf = append(s.buf, line...)
		s.buf = append(s.buf, '\n')
		if s.cur.count == 0 {
			s.cur.firstSeq = r.Seq
		}
		s.cur.count++
		s.cur.last, s.cur.lastHash = r.Seq, r.Hash
	}
	if err := s.writeBuf(); err != nil {
		return fail(err)
	}
	if err := s.f.Sync(); err != nil {
		return fail(err)
	}
	return nil
}

func (s *SegmentStore) writeBuf() error {
	if len(s.buf) == 0 {
		return nil
	}
	n, err := s.f.Write(s.buf)
	s.cur.bytes += int64(n)
	s.buf = s.buf[:0]
	return err
}

// startSegment creates the next segment file.
func (s *SegmentStore) startSegment() error {
	s.lastIdx++
	name := SegmentName(s.lastIdx)
	f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("audit store: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return fmt.Errorf("audit store: %w", err)
	}
	s.f, s.name, s.cur = f, name, segmentState{}
	return nil
}

// seal ends the active segment with its seal line and makes it read-only.
func (s *SegmentStore) seal(closed bool) error {
	seal := Seal{Segment: s.name, Count: s.cur.count, FirstSeq: s.cur.firstSeq, LastSeq: s.cur.last, LastHash: s.cur.lastHash, Closed: closed}
	if !closed {
		seal.Next = SegmentName(s.lastIdx + 1)
	}
	line := append(seal.line(), '\n')
	if _, err := s.f.Write(line); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	if err := s.f.Close(); err != nil {
		return err
	}
	s.f = nil
	return os.Chmod(filepath.Join(s.dir, s.name), 0o440)
}

// Close implements Sink: it seals the active segment.
func (s *SegmentStore) Close() error {
	if s.f == nil {
		return nil
	}
	if s.cur.count == 0 {
		// Created, but its first batch failed: leave no empty,
		// unsealed file for the next run to take for a crash.
		err := s.f.Close()
		s.f = nil
		return errors.Join(err, os.Remove(filepath.Join(s.dir, s.name)))
	}
	return s.seal(true)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !strings.Contains(err.Error(), "invalid argument") {
		return err
	}
	return nil
}
