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
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Key is the public key that signed the checkpoints.
	Key crypto.PublicKey
	// SkipSignatures verifies without Key: the chain, the sequence and
	// the checkpoints' roots are checked, their signatures are not.
	SkipSignatures bool
	// AllowPartial accepts a log that does not start at seq 0, such as a
	// file cut from a longer log; its first prevHash is taken on trust
	// and checkpoint roots cannot be recomputed.
	AllowPartial bool
	// AllowOpenTail accepts a log that does not end with a final
	// checkpoint, such as the store of a running manager; the records
	// after the last checkpoint are then not covered by a signature.
	AllowOpenTail bool
	// OnRecord, if set, sees every record that passed its checks.
	OnRecord func(file string, line int, r *Record)
}

// Report summarizes a verified log.
type Report struct {
	Files       int
	Records     int
	Events      int
	Checkpoints int
	// Chains counts logs started from the genesis hash: a stream from
	// several runs that each closed their log cleanly has several.
	Chains   int
	FirstSeq uint64
	LastSeq  uint64
	// Head is the hash of the last record.
	Head string
	// LastCheckpoint is the last checkpoint record, if any.
	LastCheckpoint *Record
	// Uncovered counts the records after the last checkpoint.
	Uncovered int
	// Warnings are findings that do not fail the verification, such as
	// a crash that a later audit.recovered record acknowledges.
	Warnings []string
}

// VerifyError is the first problem Verify found, located precisely.
type VerifyError struct {
	// File is the segment's name or the file's path.
	File string
	// Line is the line number from 1, or 0 for the file as a whole.
	Line int
	// Seq is the seq of the record the problem was found at, when
	// HasSeq.
	Seq    uint64
	HasSeq bool
	// Problem says what is wrong and, in parentheses, what it means.
	Problem string
}

// Error formats the problem as file:line: record seq N: problem.
func (e *VerifyError) Error() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if e.HasSeq {
		s += ": record seq " + strconv.FormatUint(e.Seq, 10)
	}
	return s + ": " + e.Problem
}

// Verify checks a log offline: a segment store directory or a JSON-lines
// file. It checks each record's schema, canonical form and hash, the
// sequence (gaps, reordering, duplicates), the hash chain, each
// checkpoint's size, head, Merkle root and signature, the segments' seals
// and order, and that the log is not truncated (a torn last line, a
// missing segment, no final checkpoint at the end). It stops at the first
// problem and returns it as a *VerifyError.
func Verify(path string, opts VerifyOptions) (*Report, error) {
	if opts.Key == nil && !opts.SkipSignatures {
		return nil, errors.New("no public key to check the checkpoint signatures with (or skip them explicitly)")
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	v := &verifier{opts: opts, tree: newTree(), rep: &Report{}, head: GenesisHash}
	if opts.Key != nil {
		if v.keyID, err = KeyID(opts.Key); err != nil {
			return nil, err
		}
	}
	if st.IsDir() {
		err = v.store(path)
	} else {
		v.files = []fileRef{{name: path, path: path}}
		err = v.file(0, false)
	}
	if err == nil {
		err = v.end()
	}
	if err != nil {
		return v.rep, err
	}
	return v.rep, nil
}

type fileRef struct{ name, path string }

type verifier struct {
	opts  VerifyOptions
	keyID string
	rep   *Report
	files []fileRef

	started    bool
	next       uint64 // expected seq
	head       string
	tree       *tree
	treeValid  bool
	lastFinal  bool
	lastFile   string
	lastLine   int
	enc1, enc2 []byte

	// unsealed segments that a later audit.recovered record must name
	unacked []unsealed
	// the segment just finished was not sealed (for the gap message)
	prevUnsealed string
}

type unsealed struct {
	name      string
	lines     int
	torn      []byte // nil: none
	tornLine  int
	tornStart int
}

func (v *verifier) fail(file string, line int, r *Record, format string, args ...any) error {
	e := &VerifyError{File: file, Line: line, Problem: fmt.Sprintf(format, args...)}
	if r != nil {
		e.Seq, e.HasSeq = r.Seq, true
	}
	return e
}

// store verifies a segment store directory.
func (v *verifier) store(dir string) error {
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return &VerifyError{File: dir, Problem: "no segment files (segment-NNNNNN.jsonl) found"}
	}
	for _, s := range segs {
		v.files = append(v.files, fileRef{name: s.name, path: filepath.Join(dir, s.name)})
	}
	if segs[0].index != 1 && !v.opts.AllowPartial {
		return &VerifyError{File: segs[0].name, Problem: fmt.Sprintf("the store starts at %s, not %s (earlier segments are missing)", segs[0].name, SegmentName(1))}
	}
	var prevSeal *Seal
	for i, s := range segs {
		if i > 0 && s.index != segs[i-1].index+1 {
			return &VerifyError{File: SegmentName(segs[i-1].index + 1), Problem: fmt.Sprintf("missing: the store goes from %s to %s (segment deleted)", segs[i-1].name, s.name)}
		}
		if prevSeal != nil && prevSeal.Next != "" && prevSeal.Next != s.name {
			return &VerifyError{File: segs[i-1].name, Problem: fmt.Sprintf("sealed with next segment %s, but %s follows", prevSeal.Next, s.name)}
		}
		seal, err := v.segment(i, i == len(segs)-1)
		if err != nil {
			return err
		}
		v.rep.Files++
		prevSeal = seal
	}
	if prevSeal != nil && prevSeal.Next != "" {
		return &VerifyError{File: prevSeal.Next, Problem: fmt.Sprintf("missing: %s was sealed with next segment %s (log truncated)", segs[len(segs)-1].name, prevSeal.Next)}
	}
	return nil
}

// lineReader yields the lines of one file, the last possibly torn.
type lineReader struct {
	f    *os.File
	r    *bufio.Reader
	n    int
	name string
}

func openLines(ref fileRef) (*lineReader, error) {
	f, err := os.Open(ref.path)
	if err != nil {
		return nil, err
	}
	return &lineReader{f: f, r: bufio.NewReaderSize(f, 1<<20), name: ref.name}, nil
}

// next returns the next line without its newline; torn says it had none.
func (l *lineReader) next() (line []byte, torn bool, err error) {
	line, err = l.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, false, &VerifyError{File: l.name, Line: l.n + 1, Problem: "line longer than 1 MiB (not an audit record)"}
	}
	if err == io.EOF {
		if len(line) == 0 {
			return nil, false, io.EOF
		}
		l.n++
		return line, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	l.n++
	return line[:len(line)-1], false, nil
}

// segment verifies one segment file and returns its seal, if any.
func (v *verifier) segment(idx int, last bool) (*Seal, error) {
	ref := v.files[idx]
	lr, err := openLines(ref)
	if err != nil {
		return nil, err
	}
	defer lr.f.Close()
	var count uint64
	var first, lastRec *Record
	var seal *Seal
	for {
		line, torn, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if seal != nil {
			return nil, v.fail(ref.name, lr.n, nil, "a line follows the seal line (appended after the segment was sealed)")
		}
		if torn {
			u := unsealed{name: ref.name, lines: lr.n - 1, torn: bytes.Clone(line), tornLine: lr.n}
			if last {
				if v.opts.AllowOpenTail {
					v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf("%s:%d: truncated record (torn write): the segment ends in the middle of a line (a write in progress?)", ref.name, lr.n))
					v.prevUnsealed = ref.name
					return nil, nil
				}
				return nil, v.fail(ref.name, lr.n, nil, "truncated record (torn write): the segment ends in the middle of a line (log truncated or writer crashed)")
			}
			v.unacked = append(v.unacked, u)
			v.prevUnsealed = ref.name
			return nil, nil
		}
		if bytes.HasPrefix(line, sealPrefix) {
			s, err := parseSeal(line)
			if err != nil {
				return nil, v.fail(ref.name, lr.n, nil, "%v", err)
			}
			switch {
			case s.Segment != ref.name:
				return nil, v.fail(ref.name, lr.n, nil, "the seal names segment %s (segment renamed or copied)", s.Segment)
			case count == 0 || s.Count != count || s.FirstSeq != first.Seq || s.LastSeq != lastRec.Seq || s.LastHash != lastRec.Hash:
				got := "no records"
				if count > 0 {
					got = fmt.Sprintf("%d records, seq %d to %d, last hash %s", count, first.Seq, lastRec.Seq, short(lastRec.Hash))
				}
				return nil, v.fail(ref.name, lr.n, nil, "the seal says %d records, seq %d to %d, last hash %s, but the segment has %s (segment altered)",
					s.Count, s.FirstSeq, s.LastSeq, short(s.LastHash), got)
			}
			seal = s
			continue
		}
		r, err := v.record(idx, lr.n, line)
		if err != nil {
			return nil, err
		}
		if count == 0 {
			first = r
		}
		count++
		lastRec = r
	}
	if seal == nil {
		if !last {
			v.unacked = append(v.unacked, unsealed{name: ref.name, lines: lr.n})
		}
		v.prevUnsealed = ref.name
	} else {
		v.prevUnsealed = ""
	}
	return seal, nil
}

// file verifies a JSON-lines file.
func (v *verifier) file(idx int, _ bool) error {
	ref := v.files[idx]
	lr, err := openLines(ref)
	if err != nil {
		return err
	}
	defer lr.f.Close()
	v.rep.Files++
	for {
		line, torn, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if torn {
			if v.opts.AllowOpenTail {
				v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf("%s:%d: truncated record (torn write): the file ends in the middle of a line (a write in progress?)", ref.name, lr.n))
				return nil
			}
			return v.fail(ref.name, lr.n, nil, "truncated record (torn write): the file ends in the middle of a line (log truncated or writer crashed)")
		}
		if len(bytes.TrimSpace(line)) == 0 {
			return v.fail(ref.name, lr.n, nil, "empty line (not an audit record)")
		}
		if _, err := v.record(idx, lr.n, line); err != nil {
			return err
		}
	}
}

// record checks one record line in order.
func (v *verifier) record(fileIdx, n int, line []byte) (*Record, error) {
	file := v.files[fileIdx].name
	r, err := ParseRecord(line)
	if err != nil {
		return nil, v.fail(file, n, nil, "%v", err)
	}
	v.enc1 = appendRecord(v.enc1[:0], r, false)
	sum := sha256.Sum256(v.enc1)
	if want := formatHash(sum[:]); want != r.Hash {
		return nil, v.fail(file, n, r, "hash mismatch: the record says %s, its content hashes to %s (record altered)", short(r.Hash), short(want))
	}
	v.enc2 = appendRecord(v.enc2[:0], r, true)
	if !bytes.Equal(v.enc2, line) {
		return nil, v.fail(file, n, r, "not in RFC 8785 canonical form (record altered or rewritten by a tool)")
	}
	switch r.Type {
	case TypeEvent:
		if r.Checkpoint != nil {
			return nil, v.fail(file, n, r, "an event record carries a checkpoint (forged checkpoint)")
		}
	case TypeCheckpoint:
		if r.Checkpoint == nil {
			return nil, v.fail(file, n, r, "a checkpoint record without a checkpoint (forged checkpoint)")
		}
	default:
		return nil, v.fail(file, n, r, "unknown record type %q", r.Type)
	}

	// Its place in the sequence and the chain.
	switch {
	case !v.started:
		if r.Seq != 0 || r.PrevHash != GenesisHash {
			if !v.opts.AllowPartial {
				return nil, v.fail(file, n, r, "the log does not start at its beginning: the first record is seq %d, not seq 0 chained from the genesis hash (records before it are missing)", r.Seq)
			}
			v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf("%s:%d: the log starts at seq %d; its prevHash %s is taken on trust and checkpoint roots are not recomputed", file, n, r.Seq, short(r.PrevHash)))
			v.head, v.next = r.PrevHash, r.Seq
		} else {
			v.treeValid = true
		}
		v.started = true
		v.rep.FirstSeq = r.Seq
		v.rep.Chains = 1
	case r.Seq == 0 && r.PrevHash == GenesisHash && v.next > 0:
		if !v.lastFinal {
			return nil, v.fail(file, n, r, "a new log starts here from the genesis hash, but the one before it (last record at %s:%d) did not end with a final checkpoint (its tail is truncated, or its writer crashed)", v.lastFile, v.lastLine)
		}
		v.next, v.head, v.tree, v.treeValid = 0, GenesisHash, newTree(), true
		v.rep.Chains++
	case r.Seq > v.next:
		return nil, v.seqError(fileIdx, n, r)
	case r.Seq < v.next:
		return nil, v.fail(file, n, r, "out of order: seq %d comes after seq %d (records reordered or duplicated)", r.Seq, v.next-1)
	}
	if r.PrevHash != v.head {
		return nil, v.fail(file, n, r, "chain broken: prevHash %s is not the hash of seq %d, %s (a record before it was altered, removed or replaced)", short(r.PrevHash), v.next-1, short(v.head))
	}

	if c := r.Checkpoint; c != nil {
		if err := v.checkpoint(file, n, r); err != nil {
			return nil, err
		}
		v.rep.Checkpoints++
		v.rep.LastCheckpoint = r
		v.rep.Uncovered = 0
		v.lastFinal = c.Final
	} else {
		v.rep.Events++
		v.rep.Uncovered++
		v.lastFinal = false
	}
	if r.Action == ActionLogRecovered {
		if err := v.recovered(file, n, r); err != nil {
			return nil, err
		}
	}
	if err := v.tree.r.Append(hashLeaf(sum[:]), nil); err != nil {
		return nil, err
	}
	v.head, v.next = r.Hash, r.Seq+1
	v.rep.Records++
	v.rep.LastSeq, v.rep.Head = r.Seq, r.Hash
	v.lastFile, v.lastLine = file, n
	if v.opts.OnRecord != nil {
		v.opts.OnRecord(file, n, r)
	}
	return r, nil
}

func (v *verifier) checkpoint(file string, n int, r *Record) error {
	c := r.Checkpoint
	if c.Size != r.Seq {
		return v.fail(file, n, r, "the checkpoint covers %d records but stands at seq %d (forged checkpoint)", c.Size, r.Seq)
	}
	if c.Head != v.head {
		return v.fail(file, n, r, "the checkpoint's head %s is not the hash of seq %d, %s (records before it were altered and re-chained, or the checkpoint is forged)", short(c.Head), r.Seq-1, short(v.head))
	}
	if v.treeValid {
		if root := v.tree.root(); c.Root != root {
			return v.fail(file, n, r, "the checkpoint's Merkle root %s does not match the %d records before it, %s (records before it were altered and re-chained, or the checkpoint is forged)", short(c.Root), c.Size, short(root))
		}
	}
	if v.opts.Key == nil {
		return nil
	}
	if c.KeyID != v.keyID {
		return v.fail(file, n, r, "the checkpoint is signed by key %s, not by the verifying key %s (signing key replaced)", c.KeyID, v.keyID)
	}
	if err := verifySignature(v.opts.Key, r); err != nil {
		return v.fail(file, n, r, "bad checkpoint signature: %v (forged checkpoint)", err)
	}
	return nil
}

// recovered checks an audit.recovered record against the unsealed
// segment it names, which then no longer fails the verification.
func (v *verifier) recovered(file string, n int, r *Record) error {
	name := r.Details["segment"]
	for i, u := range v.unacked {
		if u.name != name {
			continue
		}
		if u.torn != nil {
			sum := sha256.Sum256(u.torn)
			if r.Details["tornSHA256"] != hex.EncodeToString(sum[:]) || r.Details["tornLine"] != strconv.Itoa(u.tornLine) {
				return v.fail(file, n, r, "the recovery record describes a torn line of %s that is not the one on disk (%s:%d)", name, name, u.tornLine)
			}
			v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf("%s:%d: truncated record (torn write, %d bytes) left by a crash; acknowledged by record seq %d at %s:%d", name, u.tornLine, len(u.torn), r.Seq, file, n))
		} else {
			v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf("%s: not sealed (the writer stopped without closing the log); acknowledged by record seq %d at %s:%d", name, r.Seq, file, n))
		}
		v.unacked = append(v.unacked[:i], v.unacked[i+1:]...)
		return nil
	}
	return nil
}

// seqError explains a seq above the expected one: the expected record is
// either missing or further on (reordered).
func (v *verifier) seqError(fileIdx, n int, r *Record) error {
	file := v.files[fileIdx].name
	if where := v.find(v.next, fileIdx, n); where != "" {
		return v.fail(file, n, r, "out of order: expected seq %d, which is at %s (records reordered)", v.next, where)
	}
	missing := r.Seq - v.next
	noun := "records"
	if missing == 1 {
		noun = "record"
	}
	msg := fmt.Sprintf("sequence gap: expected seq %d, found seq %d (%d %s missing", v.next, r.Seq, missing, noun)
	if v.prevUnsealed != "" && n == 1 {
		msg += fmt.Sprintf("; %s before it is not sealed: its tail was cut", v.prevUnsealed)
	}
	return v.fail(file, n, r, "%s)", msg)
}

// find looks for the record with seq after line n of file fileIdx and
// returns "file:line", or "".
func (v *verifier) find(seq uint64, fileIdx, n int) string {
	for i := fileIdx; i < len(v.files); i++ {
		lr, err := openLines(v.files[i])
		if err != nil {
			return ""
		}
		for {
			line, _, err := lr.next()
			if err != nil {
				break
			}
			if i == fileIdx && lr.n <= n {
				continue
			}
			var s struct {
				Seq *uint64 `json:"seq"`
			}
			if json.Unmarshal(line, &s) == nil && s.Seq != nil && *s.Seq == seq {
				lr.f.Close()
				return fmt.Sprintf("%s:%d", v.files[i].name, lr.n)
			}
		}
		lr.f.Close()
	}
	return ""
}

// end checks how the log ends.
func (v *verifier) end() error {
	if !v.started {
		return &VerifyError{File: v.files[0].name, Problem: "no audit records"}
	}
	if len(v.unacked) > 0 {
		u := v.unacked[0]
		if u.torn != nil {
			return &VerifyError{File: u.name, Line: u.tornLine, Problem: "truncated record (torn write), and no audit.recovered record acknowledges it (log truncated)"}
		}
		return &VerifyError{File: u.name, Problem: fmt.Sprintf("not sealed, though segments follow it, and no audit.recovered record acknowledges it (its tail was cut after line %d)", u.lines)}
	}
	if !v.lastFinal && !v.opts.AllowOpenTail {
		why := fmt.Sprintf("%d records after the last checkpoint", v.rep.Uncovered)
		if v.rep.Checkpoints == 0 {
			why = "the log has no checkpoints"
		}
		return &VerifyError{File: v.lastFile, Line: v.lastLine, Seq: v.rep.LastSeq, HasSeq: true,
			Problem: fmt.Sprintf("the log ends here without a final checkpoint, %s (tail truncated, or the writer is still running or crashed; accept an open log explicitly to verify it anyway)", why)}
	}
	return nil
}

// short abbreviates a hash for messages: sha256:0123456789ab….
func short(h string) string {
	if len(h) > 19 {
		return h[:19] + "…"
	}
	return h
}
