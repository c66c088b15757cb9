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
	"crypto"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// testLogFile writes a closed log of events to a JSON-lines file, signed
// with key 1, with a checkpoint every 10 records: 50 records, seq 0 to 49,
// checkpoints at seq 10, 21, 32, 43 and the final one at 49.
func testLogFile(t *testing.T, events int) (path string, lines []string, pub crypto.PublicKey) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "audit.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	signer, pub := testKey(t, 1)
	l, _ := newTestLog(t, withSinks(NewWriterSink("file", f)), withSigner(signer), withEvery(10))
	record(t, l, events)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines = strings.SplitAfter(string(data), "\n")
	return path, lines[:len(lines)-1], pub
}

func parse(t *testing.T, line string) *Record {
	t.Helper()
	r, err := ParseRecord([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// rehash is an attacker who edits a record and recomputes its own hash.
func rehash(t *testing.T, line string, edit func(*Record)) string {
	r := parse(t, line)
	edit(r)
	r.Hash = r.ComputeHash()
	r.line = nil
	return string(r.Line()) + "\n"
}

// rechain is an attacker who renumbers and re-chains every record from
// line from on. With fixCheckpoints it also recomputes the checkpoints'
// size, head and root, and re-signs them with signer if it is not nil.
func rechain(t *testing.T, lines []string, fixCheckpoints bool, signer Signer) []string {
	out := slices.Clone(lines)
	tr := newTree()
	head := GenesisHash
	for i, line := range out {
		r := parse(t, line)
		r.Seq, r.PrevHash = uint64(i), head
		if c := r.Checkpoint; c != nil && fixCheckpoints {
			c.Size, c.Head, c.Root = r.Seq, head, tr.root()
			if signer != nil {
				c.KeyID = signer.KeyID()
				sig, err := signer.Sign(SignedPayload(r))
				if err != nil {
					t.Fatal(err)
				}
				c.Signature = encodeSignature(sig)
			}
		}
		r.Hash = r.ComputeHash()
		r.line = nil
		out[i] = string(r.Line()) + "\n"
		if err := tr.append(r.Hash); err != nil {
			t.Fatal(err)
		}
		head = r.Hash
	}
	return out
}

// checkpointLines returns the indexes of the checkpoint lines.
func checkpointLines(t *testing.T, lines []string) []int {
	var idx []int
	for i, l := range lines {
		if parse(t, l).Type == TypeCheckpoint {
			idx = append(idx, i)
		}
	}
	return idx
}

func TestVerifyIntactLog(t *testing.T) {
	g := NewWithT(t)
	path, lines, pub := testLogFile(t, 45)
	g.Expect(lines).To(HaveLen(50))
	g.Expect(checkpointLines(t, lines)).To(Equal([]int{10, 21, 32, 43, 49}))

	rep, err := Verify(path, VerifyOptions{Key: pub})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rep.Records).To(Equal(50))
	g.Expect(rep.Events).To(Equal(45))
	g.Expect(rep.Checkpoints).To(Equal(5))
	g.Expect(rep.LastSeq).To(Equal(uint64(49)))
	g.Expect(rep.Head).To(Equal(parse(t, lines[49]).Hash))
	g.Expect(rep.LastCheckpoint.Checkpoint.Final).To(BeTrue())
	g.Expect(rep.Warnings).To(BeEmpty())

	_, err = Verify(path, VerifyOptions{})
	g.Expect(err).To(MatchError(ContainSubstring("no public key")))
	_, err = Verify(path, VerifyOptions{SkipSignatures: true})
	g.Expect(err).NotTo(HaveOccurred())
}

// The mutation suite: every way of tampering with a log that the issue
// lists is detected, at the right line, with a message that says what.
func TestVerifyDetectsMutations(t *testing.T) {
	_, otherPub := testKey(t, 2)
	attacker, _ := testKey(t, 2)
	tests := []struct {
		name   string
		mutate func(t *testing.T, lines []string) []string
		opts   func(*VerifyOptions)
		// want is the error's "file:line: record seq N: " prefix (the
		// file is "audit.jsonl"), then a phrase it must contain.
		prefix, phrase string
	}{{
		name: "altered field",
		mutate: func(t *testing.T, l []string) []string {
			l[4] = strings.Replace(l[4], "issued for 10m", "issued for 10h", 1)
			return l
		},
		prefix: "audit.jsonl:5: record seq 4: ", phrase: "hash mismatch: the record says sha256:",
	}, {
		name: "altered field, the record's hash recomputed",
		mutate: func(t *testing.T, l []string) []string {
			l[4] = rehash(t, l[4], func(r *Record) { r.Decision = DecisionDeny })
			return l
		},
		prefix: "audit.jsonl:6: record seq 5: ", phrase: "chain broken: prevHash sha256:",
	}, {
		name: "altered field, the chain recomputed",
		mutate: func(t *testing.T, l []string) []string {
			l[4] = rehash(t, l[4], func(r *Record) { r.Subject.Tenant = "other-tenant" })
			return rechain(t, l, false, nil)
		},
		prefix: "audit.jsonl:11: record seq 10: ", phrase: "the checkpoint's head sha256:",
	}, {
		name: "altered field, the chain and checkpoints recomputed",
		mutate: func(t *testing.T, l []string) []string {
			l[4] = rehash(t, l[4], func(r *Record) { r.Details["ttl"] = "10h" })
			return rechain(t, l, true, nil)
		},
		prefix: "audit.jsonl:11: record seq 10: ", phrase: "bad checkpoint signature: Ed25519 signature does not verify (forged checkpoint)",
	}, {
		name: "altered field, canonical form broken",
		mutate: func(t *testing.T, l []string) []string {
			l[4] = strings.Replace(l[4], `"seq":4,`, `"seq": 4,`, 1)
			return l
		},
		prefix: "audit.jsonl:5: record seq 4: ", phrase: "not in RFC 8785 canonical form",
	}, {
		name: "unknown member added",
		mutate: func(t *testing.T, l []string) []string {
			l[4] = strings.Replace(l[4], `{`, `{"approved":"yes",`, 1)
			return l
		},
		prefix: "audit.jsonl:5: ", phrase: `not an audit record: json: unknown field "approved"`,
	}, {
		name: "dropped record",
		mutate: func(t *testing.T, l []string) []string {
			return slices.Delete(l, 4, 5)
		},
		prefix: "audit.jsonl:5: record seq 5: ", phrase: "sequence gap: expected seq 4, found seq 5 (1 record missing)",
	}, {
		name: "dropped records",
		mutate: func(t *testing.T, l []string) []string {
			return slices.Delete(l, 4, 7)
		},
		prefix: "audit.jsonl:5: record seq 7: ", phrase: "sequence gap: expected seq 4, found seq 7 (3 records missing)",
	}, {
		name: "dropped record, the chain and checkpoints recomputed",
		mutate: func(t *testing.T, l []string) []string {
			return rechain(t, slices.Delete(l, 4, 5), true, nil)
		},
		prefix: "audit.jsonl:10: record seq 9: ", phrase: "bad checkpoint signature",
	}, {
		name: "dropped first record",
		mutate: func(t *testing.T, l []string) []string {
			return l[1:]
		},
		prefix: "audit.jsonl:1: record seq 1: ", phrase: "the log does not start at its beginning",
	}, {
		name: "reordered records",
		mutate: func(t *testing.T, l []string) []string {
			l[4], l[5] = l[5], l[4]
			return l
		},
		prefix: "audit.jsonl:5: record seq 5: ", phrase: "out of order: expected seq 4, which is at audit.jsonl:6 (records reordered)",
	}, {
		name: "reordered records, far apart",
		mutate: func(t *testing.T, l []string) []string {
			l[4], l[30] = l[30], l[4]
			return l
		},
		prefix: "audit.jsonl:5: record seq 30: ", phrase: "out of order: expected seq 4, which is at audit.jsonl:31 (records reordered)",
	}, {
		name: "duplicated record",
		mutate: func(t *testing.T, l []string) []string {
			return slices.Insert(l, 5, l[4])
		},
		prefix: "audit.jsonl:6: record seq 4: ", phrase: "out of order: seq 4 comes after seq 4 (records reordered or duplicated)",
	}, {
		name: "inserted record",
		mutate: func(t *testing.T, l []string) []string {
			forged := rehash(t, l[4], func(r *Record) { r.Action = ActionAgentResumed })
			return slices.Insert(l, 5, forged)
		},
		prefix: "audit.jsonl:6: record seq 4: ", phrase: "out of order: seq 4 comes after seq 4",
	}, {
		name: "inserted record, the chain and checkpoints recomputed",
		mutate: func(t *testing.T, l []string) []string {
			forged := rehash(t, l[4], func(r *Record) { r.Action = ActionAgentResumed })
			return rechain(t, slices.Insert(l, 5, forged), true, nil)
		},
		prefix: "audit.jsonl:12: record seq 11: ", phrase: "bad checkpoint signature",
	}, {
		name: "truncated tail: torn last line",
		mutate: func(t *testing.T, l []string) []string {
			l[len(l)-1] = l[len(l)-1][:40]
			return l
		},
		prefix: "audit.jsonl:50: ", phrase: "truncated record (torn write): the file ends in the middle of a line",
	}, {
		name: "truncated tail: last records removed",
		mutate: func(t *testing.T, l []string) []string {
			return l[:47]
		},
		prefix: "audit.jsonl:47: record seq 46: ", phrase: "the log ends here without a final checkpoint, 3 records after the last checkpoint",
	}, {
		name: "truncated tail, ending on a checkpoint that is not final",
		mutate: func(t *testing.T, l []string) []string {
			return l[:44]
		},
		prefix: "audit.jsonl:44: record seq 43: ", phrase: "the log ends here without a final checkpoint, 0 records after the last checkpoint",
	}, {
		name: "truncated tail, the last checkpoint forged final",
		mutate: func(t *testing.T, l []string) []string {
			l[43] = rehash(t, l[43], func(r *Record) { r.Checkpoint.Final = true })
			return l[:44]
		},
		prefix: "audit.jsonl:44: record seq 43: ", phrase: "bad checkpoint signature: Ed25519 signature does not verify (forged checkpoint)",
	}, {
		name: "forged checkpoint: root changed",
		mutate: func(t *testing.T, l []string) []string {
			l[21] = rehash(t, l[21], func(r *Record) { r.Checkpoint.Root = parse(t, l[10]).Checkpoint.Root })
			return rechain(t, l, false, nil)
		},
		prefix: "audit.jsonl:22: record seq 21: ", phrase: "the checkpoint's Merkle root sha256:",
	}, {
		name: "forged checkpoint: size changed",
		mutate: func(t *testing.T, l []string) []string {
			l[21] = rehash(t, l[21], func(r *Record) { r.Checkpoint.Size = 20 })
			return rechain(t, l, false, nil)
		},
		prefix: "audit.jsonl:22: record seq 21: ", phrase: "the checkpoint covers 20 records but stands at seq 21 (forged checkpoint)",
	}, {
		name: "forged checkpoint: signature replaced",
		mutate: func(t *testing.T, l []string) []string {
			l[21] = rehash(t, l[21], func(r *Record) { r.Checkpoint.Signature = parse(t, l[10]).Checkpoint.Signature })
			return rechain(t, l, false, nil)
		},
		prefix: "audit.jsonl:22: record seq 21: ", phrase: "bad checkpoint signature: Ed25519 signature does not verify (forged checkpoint)",
	}, {
		name: "forged checkpoint: signed by another key under the genuine key ID",
		mutate: func(t *testing.T, l []string) []string {
			r := parse(t, l[21])
			sig, _ := attacker.Sign(SignedPayload(r))
			l[21] = rehash(t, l[21], func(r *Record) { r.Checkpoint.Signature = encodeSignature(sig) })
			return rechain(t, l, false, nil)
		},
		prefix: "audit.jsonl:22: record seq 21: ", phrase: "bad checkpoint signature",
	}, {
		name: "forged checkpoint: an event record turned into one",
		mutate: func(t *testing.T, l []string) []string {
			l[4] = rehash(t, l[4], func(r *Record) { r.Checkpoint = parse(t, l[10]).Checkpoint })
			return rechain(t, l, false, nil)
		},
		prefix: "audit.jsonl:5: record seq 4: ", phrase: "an event record carries a checkpoint (forged checkpoint)",
	}, {
		name: "replaced key: everything re-signed by another key",
		mutate: func(t *testing.T, l []string) []string {
			l[4] = rehash(t, l[4], func(r *Record) { r.Decision = DecisionAllow; r.Reason = "nothing to see" })
			return rechain(t, l, true, attacker)
		},
		prefix: "audit.jsonl:11: record seq 10: ", phrase: fmt.Sprintf("the checkpoint is signed by key %s, not by the verifying key ", attacker.KeyID()),
	}, {
		name:   "replaced key: the verifier is given the wrong key",
		mutate: func(t *testing.T, l []string) []string { return l },
		opts:   func(o *VerifyOptions) { o.Key = otherPub },
		prefix: "audit.jsonl:11: record seq 10: ", phrase: "(signing key replaced)",
	}, {
		name: "a new chain started without closing the previous one",
		mutate: func(t *testing.T, l []string) []string {
			return append(l[:30:30], l...)
		},
		prefix: "audit.jsonl:31: record seq 0: ", phrase: "a new log starts here from the genesis hash, but the one before it (last record at audit.jsonl:30) did not end with a final checkpoint",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			path, lines, pub := testLogFile(t, 45)
			writeLines(t, path, tt.mutate(t, lines))
			opts := VerifyOptions{Key: pub}
			if tt.opts != nil {
				tt.opts(&opts)
			}
			_, err := Verify(path, opts)
			g.Expect(err).To(HaveOccurred(), "mutation not detected")
			ve := &VerifyError{}
			g.Expect(err).To(BeAssignableToTypeOf(ve))
			msg := strings.Replace(err.Error(), path, "audit.jsonl", -1)
			g.Expect(msg).To(HavePrefix(tt.prefix))
			g.Expect(msg).To(ContainSubstring(tt.phrase))
		})
	}
}

func writeLines(t *testing.T, path string, lines []string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Random corruption (a changed, dropped or added byte anywhere) never
// passes.
func TestVerifyDetectsRandomCorruption(t *testing.T) {
	path, lines, pub := testLogFile(t, 45)
	orig := []byte(strings.Join(lines, ""))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		data := bytes.Clone(orig)
		pos := rng.IntN(len(data))
		switch i % 3 {
		case 0:
			data[pos] ^= byte(1 + rng.IntN(255))
		case 1:
			data = slices.Delete(data, pos, pos+1)
		case 2:
			data = slices.Insert(data, pos, byte(' '+rng.IntN(90)))
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(path, VerifyOptions{Key: pub}); err == nil {
			t.Fatalf("mutation %d at byte %d not detected", i, pos)
		}
	}
}

// A stream holding several runs, each closed with a final checkpoint, is
// several chains; records logged after a Close of a resumed store continue
// the same chain.
func TestVerifySeveralRuns(t *testing.T) {
	g := NewWithT(t)
	path, lines, pub := testLogFile(t, 45)
	writeLines(t, path, append(slices.Clone(lines), lines...))
	rep, err := Verify(path, VerifyOptions{Key: pub})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rep.Chains).To(Equal(2))
	g.Expect(rep.Records).To(Equal(100))
}

func TestVerifyOptions(t *testing.T) {
	g := NewWithT(t)
	path, lines, pub := testLogFile(t, 45)

	writeLines(t, path, lines[5:])
	rep, err := Verify(path, VerifyOptions{Key: pub, AllowPartial: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rep.FirstSeq).To(Equal(uint64(5)))
	g.Expect(rep.Warnings).To(ConsistOf(ContainSubstring("the log starts at seq 5")))

	writeLines(t, path, lines[:47])
	rep, err = Verify(path, VerifyOptions{Key: pub, AllowOpenTail: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rep.Uncovered).To(Equal(3))
}
