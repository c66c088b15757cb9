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
	"fmt"
	"os"
	"path/filepath"
	"sync"
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
}

// Read returns the records of seq from and after, in order, at most max of
// them (all when max <= 0). A line that is not a record (the last one,
// torn, of a segment a crash left) is skipped, as recovery does.
func (r *StoreReader) Read(from uint64, max int) ([]Record, error) {
	segs, err := listSegments(r.Dir)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sealed == nil {
		r.sealed = map[string]Seal{}
	}
	var out []Record
	for _, s := range segs {
		if seal, ok := r.sealed[s.name]; ok && seal.LastSeq < from {
			continue
		}
		data, err := os.ReadFile(filepath.Join(r.Dir, s.name))
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, err
		}
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			data = data[:i+1]
		} else {
			continue
		}
		for line := range bytes.Lines(data) {
			if bytes.HasPrefix(line, sealPrefix) {
				seal, err := parseSeal(bytes.TrimRight(line, "\n"))
				if err != nil {
					return nil, fmt.Errorf("%s: %w", s.name, err)
				}
				r.sealed[s.name] = *seal
				continue
			}
			rec, err := ParseRecord(line)
			if err != nil || rec.Seq < from {
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
