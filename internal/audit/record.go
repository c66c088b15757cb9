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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SchemaVersion names the record format; every record carries it in its
// "schema" member. A verifier refuses records of a schema it does not know.
const SchemaVersion = "custos.dev/audit/v1"

// Actions: what happened. An Event's Action is one of these (components may
// add more, named "<noun>.<past participle>").
const (
	ActionAgentOnboarded       = "agent.onboarded"
	ActionIdentityBound        = "identity.bound"
	ActionImageVerified        = "image.verified"
	ActionLeaseIssued          = "lease.issued"
	ActionLeaseRenewed         = "lease.renewed"
	ActionLeaseRevoked         = "lease.revoked"
	ActionAdmissionDenied      = "admission.denied"
	ActionAgentSuspended       = "agent.suspended"
	ActionAgentResumed         = "agent.resumed"
	ActionAgentExpired         = "agent.expired"
	ActionAgentDecommissioning = "agent.decommissioning"
	ActionAgentDecommissioned  = "agent.decommissioned"
	ActionWorkloadRemoved      = "workload.removed"
	ActionNetworkRemoved       = "network.removed"
	ActionIdentityRemoved      = "identity.removed"
	ActionSweeperReaped        = "sweeper.reaped"
	ActionBoundaryViolation    = "boundary.violation"
	// ActionIdentityForeignRemoved: Custos removed cloud workload-identity
	// annotations it did not set from an agent's ServiceAccount; details
	// name the keys, never the values.
	ActionIdentityForeignRemoved = "identity.foreignRemoved"
	// ActionWorkloadForeignRemoved: fields someone else wrote into an
	// agent's Deployment were removed.
	ActionWorkloadForeignRemoved = "workload.foreignRemoved"
	// ActionTokenExchanged and ActionTokenRefused: custos-sts exchanged a
	// token for an agent acting for a person, or refused to; details carry
	// the new jti and the parent's, so the delegation tree can be rebuilt.
	ActionTokenExchanged = "token.exchanged"
	ActionTokenRefused   = "token.refused"
	// ActionToolCalled and ActionToolRefused: custos-gateway passed an
	// agent's tools/call to its tool server, or refused it (on the way in
	// or on the way out); details carry the person, the actor chain, the
	// jti, the arguments' digest (never the arguments), every check and
	// its result, and the latency.
	ActionToolCalled  = "tool.called"
	ActionToolRefused = "tool.refused"
	// ActionAgentAttested: an owner attested an agent (spec.review), as
	// the API server authenticated them.
	ActionAgentAttested = "agent.attested"
	// ActionApprovalRequested: custos-gateway held a call an
	// ApprovalPolicy matched and made its ApprovalRequest (details: the
	// request, the call's digest, the policies, the quorum), or the
	// manager held an Agent change (details: the generation, the one in
	// force, what it adds).
	ActionApprovalRequested = "approval.requested"
	// ActionApprovalDecided: the manager counted a person's decision on a
	// request (counted or not, and why), or the request was decided:
	// Approved, Denied or Expired.
	ActionApprovalDecided = "approval.decided"
	// ActionApprovalConsumed: custos-gateway ran the approved call, once,
	// or the manager put an approved Agent change in force.
	ActionApprovalConsumed = "approval.consumed"
	// ActionGatewayRefused: custos-gateway refused a request that was not
	// a tools/call (an MCP session without a valid token, or for an agent
	// that may not act).
	ActionGatewayRefused = "gateway.refused"
	// ActionAgentFrozen: an AgentFreeze holds an agent (details: the
	// freeze, its trigger and signal, observed, baseline and limit, who
	// made it, and the evidence: audit log ID, sequence numbers, trace
	// IDs), as the manager first saw it.
	ActionAgentFrozen = "agent.frozen"
	// ActionAgentUnfrozen: a person lifted an AgentFreeze (details: the
	// freeze, the AgentUnfreeze, who, the verdict and why).
	ActionAgentUnfrozen = "agent.unfrozen"
	// ActionCapExceeded: custos-gateway withheld a call or its result
	// that would have crossed one of the agent's caps, and froze it
	// (details: tool, toolset, signal, window, limit, observed); the
	// call's own tool.refused record follows, naming the freeze.
	ActionCapExceeded = "cap.exceeded"
	// ActionBreakerTripped: the manager's breaker tripped on an agent
	// (details: trigger, signal, observed, baseline, evidence, the tick's
	// records and calls); the AgentFreeze it makes cites this record.
	ActionBreakerTripped = "breaker.tripped"
	// ActionBreakerObserved: the breaker tripped on an agent of a tenant
	// whose DataBoundaries say Observe: what would have frozen it, and
	// nothing frozen (details as breaker.tripped).
	ActionBreakerObserved = "breaker.observed"
	// ActionFindingOpened: the evaluator opened a Finding, or opened it
	// again with new evidence (details: finding, rubric, window, severity,
	// score, the records cited); ActionFindingReviewed: the manager
	// counted a person's FindingReview (details: the review, reviewer,
	// verdict and the phase it left).
	ActionFindingOpened   = "finding.opened"
	ActionFindingReviewed = "finding.reviewed"
	// ActionAgentReviewed: an owner signed off an agent's AgentReport
	// (an AgentAttestation naming it; details: the report, its period,
	// calls, score and formula, recommendation and patch, the attester).
	ActionAgentReviewed = "agent.reviewed"
	// ActionFindingJudged and ActionCallJudged: a tenant's judge said how
	// bad an open Finding, or a sampled call that raised nothing, looks
	// (details: verdict, confidence, rationale, model, prompt digest); it
	// decides nothing.
	ActionFindingJudged = "finding.judged"
	ActionCallJudged    = "call.judged"

	// ActionLogRecovered is written by the Log itself, first after a
	// restart that found the previous run's segment unsealed or ending in
	// a torn line; its details say what was found (see doc.go).
	ActionLogRecovered = "audit.recovered"
	// ActionRecordsDropped is written by the Log itself when events were
	// refused because the Log's queue was full; details["count"] says how
	// many, so the loss is part of the chain.
	ActionRecordsDropped = "audit.dropped"
)

// Decisions: the outcome an event records.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
	DecisionInfo  = "info"
)

// Actor kinds.
const (
	ActorUser       = "user"
	ActorAgent      = "agent"
	ActorController = "controller"
)

// Record types.
const (
	// TypeEvent is a record of an Event.
	TypeEvent = "event"
	// TypeCheckpoint is a signed commitment to every record before it.
	TypeCheckpoint = "checkpoint"
)

// GenesisHash is the prevHash of the first record of a log.
const GenesisHash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// Redacted replaces a value that looked like a secret.
const Redacted = "[REDACTED]"

// Actor is who did something: a user, an agent or a controller.
type Actor struct {
	// Kind is ActorUser, ActorAgent or ActorController.
	Kind string `json:"kind,omitempty"`
	// Name is the user name, the agent's service account user name or
	// the controller's name.
	Name string `json:"name,omitempty"`
	// UID is the user's or object's UID, when known.
	UID string `json:"uid,omitempty"`
	// Groups are the user's groups, when known.
	Groups []string `json:"groups,omitempty"`
}

// Subject is what an event is about, usually an Agent.
type Subject struct {
	// Kind is the object's kind, such as "Agent".
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	UID       string `json:"uid,omitempty"`
	// Tenant is the subject's tenant (its custos.dev/tenant label).
	Tenant string `json:"tenant,omitempty"`
}

// Event is what a component records: the Log adds the sequence number,
// time and hashes.
type Event struct {
	// Action is one of the Action constants.
	Action  string
	Actor   Actor
	Subject Subject
	// Decision is DecisionAllow, DecisionDeny or DecisionInfo.
	Decision string
	// Reason says why, for a person. Anything in it that looks like a
	// secret is redacted.
	Reason string
	// Policy names the policy or rule that decided.
	Policy string
	// TraceID links the record to a trace or request.
	TraceID string
	// Details holds further facts. Values that look like secrets, and the
	// whole values of keys named like secrets ("token", "credential",
	// "clientSecret", …), are redacted; name a key after what it holds
	// ("credentialName", "secretRef", "tokenAudience") to keep a value
	// that only refers to a secret.
	Details map[string]string
}

// Checkpoint is a signed commitment to the first Size records of a log: the
// hash of the last of them and the RFC 6962 Merkle tree root over all
// their hashes.
type Checkpoint struct {
	// Size is the number of records covered, seq 0 to Size-1. It equals
	// the checkpoint record's own seq.
	Size uint64 `json:"size"`
	// Head is the hash of record Size-1, the chain head.
	Head string `json:"head"`
	// Root is the RFC 6962 Merkle tree hash over the record hashes of
	// seq 0 to Size-1 (each leaf is the 32 bytes of a record hash).
	Root string `json:"root"`
	// KeyID identifies the signing key: see KeyID.
	KeyID string `json:"keyID"`
	// Algorithm is AlgorithmEd25519 or AlgorithmECDSAP256.
	Algorithm string `json:"alg"`
	// Final is set on the checkpoint the Log writes when it is closed.
	Final bool `json:"final,omitempty"`
	// Signature is the base64 (standard, padded) signature over
	// SignedPayload.
	Signature string `json:"sig"`
}

// Record is one line of the audit log.
type Record struct {
	Schema string    `json:"schema"`
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	// Type is TypeEvent or TypeCheckpoint.
	Type string `json:"type"`

	Action   string            `json:"action,omitempty"`
	Actor    *Actor            `json:"actor,omitempty"`
	Subject  *Subject          `json:"subject,omitempty"`
	Decision string            `json:"decision,omitempty"`
	Reason   string            `json:"reason,omitempty"`
	Policy   string            `json:"policy,omitempty"`
	TraceID  string            `json:"traceID,omitempty"`
	Details  map[string]string `json:"details,omitempty"`
	// Redacted lists the fields whose values were replaced by Redacted,
	// such as "reason" or "details.token".
	Redacted []string `json:"redacted,omitempty"`

	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`

	// PrevHash is the Hash of the record before, or GenesisHash.
	PrevHash string `json:"prevHash"`
	// Hash is "sha256:" and the hex SHA-256 of the record's canonical
	// JSON without its hash member.
	Hash string `json:"hash"`

	line []byte // the canonical line, without the newline, once known
}

// Event returns the event a record of TypeEvent records.
func (r *Record) Event() Event {
	e := Event{Action: r.Action, Decision: r.Decision, Reason: r.Reason, Policy: r.Policy, TraceID: r.TraceID, Details: r.Details}
	if r.Actor != nil {
		e.Actor = *r.Actor
	}
	if r.Subject != nil {
		e.Subject = *r.Subject
	}
	return e
}

// Line returns the record's canonical JSON encoding, hash included, as it
// is written on one line of a sink (without the newline).
func (r *Record) Line() []byte {
	if r.line == nil {
		r.line = appendRecord(nil, r, true)
	}
	return r.line
}

// ComputeHash returns the hash the record should carry: "sha256:" and the
// hex SHA-256 of its canonical JSON encoding without the hash member.
func (r *Record) ComputeHash() string {
	return hashOf(appendRecord(nil, r, false))
}

func hashOf(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return formatHash(sum[:])
}

func formatHash(sum []byte) string {
	return "sha256:" + hex.EncodeToString(sum)
}

// parseHash returns the 32 bytes of a "sha256:<hex>" hash.
func parseHash(s string) ([]byte, error) {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return nil, fmt.Errorf("%q is not a sha256:<64 hex digits> hash", s)
	}
	b, err := hex.DecodeString(h)
	if err != nil || strings.ToLower(h) != h {
		return nil, fmt.Errorf("%q is not a sha256:<64 lower-case hex digits> hash", s)
	}
	return b, nil
}

// ParseRecord decodes one line of an audit log. It refuses unknown members
// and a schema other than SchemaVersion, but checks neither the hash nor
// the canonical form: Verify does.
func ParseRecord(line []byte) (*Record, error) {
	line = bytes.TrimRight(line, "\r\n")
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	r := &Record{}
	if err := dec.Decode(r); err != nil {
		return nil, fmt.Errorf("not an audit record: %v", err)
	}
	if dec.More() {
		return nil, errors.New("not an audit record: data after the JSON object")
	}
	if r.Schema != SchemaVersion {
		return nil, fmt.Errorf("unsupported schema %q (this verifier knows %q)", r.Schema, SchemaVersion)
	}
	return r, nil
}

// appendRecord writes r's RFC 8785 canonical JSON, with or without its hash
// member. Members are written in the UTF-16 order of their names; the
// tests check the result against Canonicalize.
func appendRecord(b []byte, r *Record, withHash bool) []byte {
	b = append(b, '{')
	first := true
	member := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
	}
	str := func(name, v string) {
		if v != "" {
			member(name)
			b = appendCanonicalString(b, v)
		}
	}
	str("action", r.Action)
	if r.Actor != nil && !actorEmpty(r.Actor) {
		member("actor")
		b = appendActor(b, r.Actor)
	}
	if c := r.Checkpoint; c != nil {
		member("checkpoint")
		b = appendCheckpoint(b, c)
	}
	str("decision", r.Decision)
	if len(r.Details) > 0 {
		member("details")
		b = appendStringMap(b, r.Details)
	}
	if withHash {
		member("hash")
		b = appendCanonicalString(b, r.Hash)
	}
	str("policy", r.Policy)
	member("prevHash")
	b = appendCanonicalString(b, r.PrevHash)
	str("reason", r.Reason)
	if len(r.Redacted) > 0 {
		member("redacted")
		b = appendStrings(b, r.Redacted)
	}
	member("schema")
	b = appendCanonicalString(b, r.Schema)
	member("seq")
	b = strconv.AppendUint(b, r.Seq, 10)
	if r.Subject != nil && *r.Subject != (Subject{}) {
		member("subject")
		b = appendSubject(b, r.Subject)
	}
	member("time")
	b = appendCanonicalString(b, formatTime(r.Time))
	str("traceID", r.TraceID)
	member("type")
	b = appendCanonicalString(b, r.Type)
	return append(b, '}')
}

func actorEmpty(a *Actor) bool {
	return a.Kind == "" && a.Name == "" && a.UID == "" && len(a.Groups) == 0
}

// formatTime is the one form of a record's time: RFC 3339 in UTC with as
// many fractional digits as needed.
func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

func appendActor(b []byte, a *Actor) []byte {
	o := object{b: b}
	if len(a.Groups) > 0 {
		o.member("groups")
		o.b = appendStrings(o.b, a.Groups)
	}
	o.str("kind", a.Kind)
	o.str("name", a.Name)
	o.str("uid", a.UID)
	return o.end()
}

func appendSubject(b []byte, s *Subject) []byte {
	o := object{b: b}
	o.str("kind", s.Kind)
	o.str("name", s.Name)
	o.str("namespace", s.Namespace)
	o.str("tenant", s.Tenant)
	o.str("uid", s.UID)
	return o.end()
}

func appendCheckpoint(b []byte, c *Checkpoint) []byte {
	o := object{b: b}
	o.member("alg")
	o.b = appendCanonicalString(o.b, c.Algorithm)
	if c.Final {
		o.member("final")
		o.b = append(o.b, "true"...)
	}
	o.member("head")
	o.b = appendCanonicalString(o.b, c.Head)
	o.member("keyID")
	o.b = appendCanonicalString(o.b, c.KeyID)
	o.member("root")
	o.b = appendCanonicalString(o.b, c.Root)
	o.member("sig")
	o.b = appendCanonicalString(o.b, c.Signature)
	o.member("size")
	o.b = strconv.AppendUint(o.b, c.Size, 10)
	return o.end()
}

// object writes one JSON object's members in the order they are given.
type object struct {
	b       []byte
	started bool
}

func (o *object) member(name string) {
	if !o.started {
		o.b = append(o.b, '{')
		o.started = true
	} else {
		o.b = append(o.b, ',')
	}
	o.b = appendCanonicalString(o.b, name)
	o.b = append(o.b, ':')
}

func (o *object) str(name, v string) {
	if v != "" {
		o.member(name)
		o.b = appendCanonicalString(o.b, v)
	}
}

func (o *object) end() []byte {
	if !o.started {
		return append(o.b, '{', '}')
	}
	return append(o.b, '}')
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCanonicalString(b, s)
	}
	return append(b, ']')
}

func appendStringMap(b []byte, m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareUTF16)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCanonicalString(b, k)
		b = append(b, ':')
		b = appendCanonicalString(b, m[k])
	}
	return append(b, '}')
}
