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
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// StoreReader reads the records of a segment store (a SegmentStore's
// directory) as they are written, for a reader that follows the trail:
// the manager's evaluator. Sealed segments cannot change, so it remembers
// the seq range of each and opens only those that hold records it is
// asked for; the segment being written is read up to its last whole line
// (a line being appended is left for the next read). It checks neither
// hashes nor signatures (Verify does): a follower that reads a trail its
// writer alone can write needs its order, not its proof.
type StoreReader struct {
	Dir string

	mu     sync.Mutex
	sealed map[string]Seal
	// ends are, per segment, the offset after its last whole line read,
	// the seq of the last record before it and where that record's line
	// starts: a read from that seq or a later one starts there instead of
	// at the start of the file.
	ends map[string]segmentEnd
	// files are the segments as they were read: a file of the same name
	// that is another file (a store emptied and begun again) is read
	// afresh.
	files map[string]os.FileInfo
}

type segmentEnd struct {
	offset, lastStart int64
	seq               uint64
}

// Read returns the records of seq from and after, in order, at most max of
// them (all when max <= 0). A line that is not a record (the last one,
// torn, of a segment a crash left) is skipped, as recovery does.
func (r *StoreReader) Read(from uint64, max int) ([]Record, error) {
	segs, err := listSegments(r.Dir)
	if os.IsNotExist(err) {
		// Nothing written yet.
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sealed == nil {
		r.sealed = map[string]Seal{}
	}
	if r.ends == nil {
		r.ends, r.files = map[string]segmentEnd{}, map[string]os.FileInfo{}
	}
	var out []Record
	for _, s := range segs {
		path := filepath.Join(r.Dir, s.name)
		fi, err := os.Stat(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if old, ok := r.files[s.name]; ok && !os.SameFile(old, fi) {
			delete(r.sealed, s.name)
			delete(r.ends, s.name)
		}
		r.files[s.name] = fi
		if seal, ok := r.sealed[s.name]; ok && seal.LastSeq < from {
			continue
		}
		var start int64
		if end, ok := r.ends[s.name]; ok && end.seq < from {
			start = end.offset
		} else if ok && end.seq == from {
			start = end.lastStart
		}
		data, err := readFrom(path, start)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, err
		}
		if start > 0 && data == nil {
			// Shorter than it was: not the file read before.
			delete(r.ends, s.name)
			start = 0
			if data, err = readFrom(path, 0); err != nil {
				return nil, err
			}
		}
		i := bytes.LastIndexByte(data, '\n')
		if i < 0 {
			continue
		}
		data = data[:i+1]
		offset := start
		for line := range bytes.Lines(data) {
			lineStart := offset
			offset += int64(len(line))
			if bytes.HasPrefix(line, sealPrefix) {
				seal, err := parseSeal(bytes.TrimRight(line, "\n"))
				if err != nil {
					return nil, fmt.Errorf("%s: %w", s.name, err)
				}
				r.sealed[s.name] = *seal
				continue
			}
			rec, err := ParseRecord(line)
			if err != nil {
				continue
			}
			if end := r.ends[s.name]; offset > end.offset {
				r.ends[s.name] = segmentEnd{offset: offset, lastStart: lineStart, seq: rec.Seq}
			}
			if rec.Seq < from {
				continue
			}
			out = append(out, *rec)
			if max > 0 && len(out) >= max {
				return out, nil
			}
		}
	}
	return out, nil
}

// readFrom reads the file at path from offset on; nil when the file is
// shorter than offset.
func readFrom(path string, offset int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < offset {
		return nil, nil
	}
	data := make([]byte, st.Size()-offset)
	n, err := f.ReadAt(data, offset)
	if err != nil && n < len(data) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return data[:n], nil
}

// PruneRead removes the sealed segments whose records are all before seq
// before and that were sealed before olderThan, but never the last
// segment: a feed's store (FeedRunDir) keeps what its reader has not read,
// and what a reader started again may read back, and no more. It says how
// many it removed.
func (r *StoreReader) PruneRead(before uint64, olderThan time.Time) (int, error) {
	segs, err := listSegments(r.Dir)
	if err != nil || len(segs) < 2 {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	removed := 0
	for _, s := range segs[:len(segs)-1] {
		seal, ok := r.sealed[s.name]
		if !ok || seal.LastSeq >= before {
			continue
		}
		path := filepath.Join(r.Dir, s.name)
		fi, err := os.Stat(path)
		if err != nil || !fi.ModTime().Before(olderThan) {
			continue
		}
		if err := os.Remove(path); err != nil {
			return removed, err
		}
		delete(r.sealed, s.name)
		delete(r.ends, s.name)
		delete(r.files, s.name)
		removed++
	}
	return removed, nil
}

// FeedRunDir makes cfg write its segment store in a directory of its own
// under cfg.Dir for this run of the process (run-<start time>), and
// removes the other runs' there: a store a feed serves and prunes
// (PruneRead) has lost its first records, from which a Log resumes its
// chain, so each run starts a chain of its own.
func FeedRunDir(cfg *Config, now time.Time) error {
	parent := cfg.Dir
	entries, err := os.ReadDir(parent)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "run-") {
			if err := os.RemoveAll(filepath.Join(parent, e.Name())); err != nil {
				return err
			}
		}
	}
	cfg.Dir = filepath.Join(parent, "run-"+now.UTC().Format("20060102T150405.000000000"))
	return os.MkdirAll(cfg.Dir, 0o700)
}
