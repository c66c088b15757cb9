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

// Package audit owns Custos's audit trail: the record schema, the
// tamper-evident chain and its signed checkpoints, the sinks records go to,
// the redaction of secrets, and the offline verification that
// `custos-audit verify` runs.
//
// # Records
//
// A component records an Event through a Recorder (a *Log, or Discard()).
// The Log turns it into a Record, one JSON object on one line:
//
//	{"action":"lease.issued","actor":{"kind":"controller","name":"custos-controller-manager"},
//	 "decision":"allow","details":{"credential":"ledger-api","ttl":"10m"},
//	 "hash":"sha256:…","policy":"lease/ttl","prevHash":"sha256:…","reason":"…",
//	 "schema":"custos.dev/audit/v1","seq":41,"subject":{"kind":"Agent","name":"invoice-reconciler",
//	 "namespace":"finance-agents","tenant":"acme-finance","uid":"…"},
//	 "time":"2026-03-01T12:00:00.123456789Z","traceID":"…","type":"event"}
//
// (wrapped here; a record is one line). Members: schema (SchemaVersion),
// seq (0, 1, 2, … with no gaps), time (RFC 3339, UTC), type ("event" or
// "checkpoint"), the event's action, actor, subject, decision, reason,
// policy, traceID and details (string values only), redacted (the fields
// whose values were redacted), checkpoint (for type "checkpoint"),
// prevHash and hash. Empty members are left out. Every line is the RFC 8785
// (JSON Canonicalization Scheme) encoding of its record: members sorted,
// no white space, minimal string escaping; records hold only strings,
// integers and booleans, so number formatting never arises.
//
// # The chain
//
// A record's hash is "sha256:" and the lower-case hex SHA-256 of its
// canonical encoding without the hash member. Its prevHash is the hash of
// the record before it; the first record of a log has GenesisHash
// ("sha256:" and 64 zeros). Altering, removing, inserting or reordering a
// record therefore breaks the chain at that point, unless every later hash
// is recomputed, which the checkpoints prevent.
//
// # Checkpoints
//
// With a Signer, the Log appends a checkpoint record every
// CheckpointEvery records and every CheckpointInterval (when records were
// added), and a final one on Close. A checkpoint at seq n commits to the
// n records before it: size n, head (the hash of record n-1), root (the
// RFC 6962 Merkle tree hash, via github.com/transparency-dev/merkle, over
// the 32-byte record hashes of seq 0 to n-1), the signing key's ID (KeyID)
// and algorithm, and whether it is final. The signature (Ed25519, or ECDSA
// P-256 over SHA-256 as cosign signs) covers SignedPayload: the canonical
// JSON of those members with the record's schema, seq and time. The
// checkpoint is itself a record in the chain, so it is checked in order.
// The Merkle root lets a verifier prove that one record is in the log
// without the rest of it (ProveInclusion, InclusionProof.Verify,
// `custos-audit prove`).
//
// # Sinks
//
// JSON lines on the standard output by default (NewStdoutSink), and/or a
// SegmentStore on a volume: a directory of segment-NNNNNN.jsonl files,
// appended in batches (one write and one fsync for whatever accumulated
// while the previous batch was written), sealed when full with a last
// line {"seal":{…}} that states the segment's record count, first and
// last seq and last hash and names the next segment, and made read-only.
// Every run writes to a new segment and continues the chain from the last
// record on disk. A segment that a crash left unsealed, or ending in a
// torn line, is left untouched; the next run records an audit.recovered
// event describing it (for a torn line: its line number, length and
// SHA-256), and the verifier reports the crash as a warning only because
// that record acknowledges it.
//
// A sink that fails gets its records later: they go to a bounded buffer
// file per sink (BufferDir/<sink>.spool) and are replayed, in order,
// when the sink takes writes again (retried every RetryInterval, and at
// the next start). What does not fit in the buffer is dropped, counted in
// custos_audit_records_dropped_total{sink} and logged with its seq range;
// the verifier of that sink's copy then reports the gap. When the Log's
// own queue is full, events are dropped before they get a seq, counted
// (sink="queue") and logged, and an audit.dropped record with their count
// follows, so the chain stays whole and says what it lost.
//
// # Redaction
//
// Before hashing, the reason, policy, traceID and details are scrubbed:
// JWTs, PEM blocks, AWS access key IDs and the secret keys that go with
// them, HTTP Authorization credentials, passwords in URLs, name=value
// pairs whose name says secret, well-known token formats, and long
// high-entropy base64 strings are replaced by "[REDACTED]", and so is the
// whole value of a detail whose key names a secret (token, secret,
// password, credential, private key, …) unless the key names a reference
// to it (secretName, tokenAudience, …). The record's redacted member lists
// what was replaced.
//
// # Verifying
//
//	custos-audit verify --key audit-public.pem /var/lib/custos/audit
//	custos-audit verify --key audit-public.pem audit.jsonl
//
// checks every record's schema, canonical form and hash, the sequence
// (gaps, reordering, duplicates), the chain, every checkpoint's size, head,
// Merkle root, key ID and signature, the seals and the order of the
// segments, and truncation (a torn last line, a missing segment, a log
// that does not end with a final checkpoint). It prints the first problem
// as file:line: record seq N: what is wrong (what it means), and exits 1.
// A store still being written fails the last check; --allow-open accepts
// it. The verifier trusts nothing in the log but the public key; a whole
// run cut from the end of a log after a clean close is only detected by
// comparing the reported head with a checkpoint kept elsewhere.
package audit
