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

package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/custos-dev/custos/internal/audit"
)

// The keys of a tools/call's _meta the gateway reads.
const (
	// DecisionMetaKey holds the decision record an agent attaches to a
	// call: why it makes it (DecisionRecord).
	DecisionMetaKey = "custos.dev/decision"
	// TraceParentMetaKey and TraceStateMetaKey carry W3C Trace Context
	// (https://www.w3.org/TR/trace-context/), as the MCP trace-context
	// proposal puts them in _meta.
	TraceParentMetaKey = "traceparent"
	TraceStateMetaKey  = "tracestate"
)

// Limits of a call's _meta and of its decision record. Lengths of strings
// count Unicode characters (runes), not bytes.
const (
	// MaxMetaBytes bounds a call's _meta once marshalled as JSON.
	MaxMetaBytes = 64 << 10
	// MaxDecisionGoal bounds the goal, which must not be empty.
	MaxDecisionGoal = 1024
	// MaxDecisionReasoning bounds the reasoning.
	MaxDecisionReasoning = 8192
	// MaxDecisionAlternatives bounds how many alternatives are given, and
	// MaxDecisionAlternative each of them, which must not be empty.
	MaxDecisionAlternatives = 16
	MaxDecisionAlternative  = 1024
	// MaxTraceState bounds a tracestate kept; a longer one is dropped.
	MaxTraceState = 512
)

// Reasons a call is refused on account of its _meta, on the audit record.
const (
	// ReasonInvalidMeta: the call's _meta is too large, or not JSON.
	ReasonInvalidMeta = "InvalidMeta"
	// ReasonInvalidDecisionRecord: the decision record in _meta breaks a
	// rule of its form: a member of the wrong type, out of range, too
	// long, missing, or one the gateway does not know.
	ReasonInvalidDecisionRecord = "InvalidDecisionRecord"
	// ReasonMissingDecisionRecord: the call needs a decision record and
	// has none.
	ReasonMissingDecisionRecord = "MissingDecisionRecord"
)

// DecisionRecord is what an agent says of why it makes a call, under
// _meta custos.dev/decision. Its JSON form is the record's.
type DecisionRecord struct {
	// Goal is what the call is for: 1 to MaxDecisionGoal characters, not
	// only white space.
	Goal string `json:"goal"`
	// Reasoning is why this call serves the goal: at most
	// MaxDecisionReasoning characters.
	Reasoning string `json:"reasoning,omitempty"`
	// Alternatives are the courses the agent considered and did not take:
	// at most MaxDecisionAlternatives, each of 1 to MaxDecisionAlternative
	// characters, not only white space.
	Alternatives []string `json:"alternatives,omitempty"`
	// Confidence is the agent's, from 0 to 1; nil if not given.
	Confidence *float64 `json:"confidence,omitempty"`
	// Intent is the call the agent means to make, as it states it; nil if
	// not given.
	Intent *DecisionIntent `json:"intent,omitempty"`
}

// DecisionIntent is the call an agent states it means to make.
type DecisionIntent struct {
	Tool      string         `json:"tool,omitempty"`
	Arguments map[string]any `json:"arguments,omitempty"`
}

// Digest returns "sha256:" and the lower-case hex SHA-256 of the record's
// canonical JSON: its JSON form (json.Marshal) in the RFC 8785 (JSON
// Canonicalization Scheme) form, so that member order and the spelling of
// numbers do not change it. An empty reasoning, alternatives, intent tool
// or intent arguments is the same as none.
func (d *DecisionRecord) Digest() (string, error) {
	canonical, err := d.Canonical()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canonical)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Canonical is the record's JSON form (json.Marshal) in the RFC 8785 form:
// what Digest hashes, and what an ApprovalRequest shows its approvers.
func (d *DecisionRecord) Canonical() ([]byte, error) {
	data, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("decision record: %w", err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("decision record: %w", err)
	}
	canonical, err := audit.CanonicalValue(v)
	if err != nil {
		return nil, fmt.Errorf("decision record: %w", err)
	}
	return canonical, nil
}

// CallMeta is what the gateway reads of a tools/call's _meta.
type CallMeta struct {
	// Decision is the call's decision record, nil if it has none, and
	// DecisionDigest its Digest ("" if none).
	Decision       *DecisionRecord
	DecisionDigest string

	// TraceParent is the call's W3C traceparent when valid, "" otherwise;
	// TraceID, SpanID (the parent-id) and TraceFlags are its parts
	// (TraceID and SpanID convert to OpenTelemetry's trace.TraceID and
	// trace.SpanID). TraceParentInvalid says a traceparent was sent that
	// is not valid: it is ignored, not refused, since W3C Trace Context
	// has the receiver restart the trace then.
	TraceParent        string
	TraceID            [16]byte
	SpanID             [8]byte
	TraceFlags         byte
	TraceParentInvalid bool
	// TraceState is the call's W3C tracestate, kept only with a valid
	// traceparent and when it is at most MaxTraceState characters of
	// printable ASCII; "" otherwise.
	TraceState string
}

// ParseMeta reads what the gateway needs of a tools/call's _meta (meta,
// nil or empty for none):
//
//   - custos.dev/decision: the decision record, checked against its form
//     (DecisionRecord); one that breaks it, has a member the gateway does
//     not know, or is not an object (null included) is refused with
//     ReasonInvalidDecisionRecord, so that the agent does not believe it
//     recorded what the gateway ignored.
//   - traceparent and tracestate: W3C Trace Context. An invalid
//     traceparent is ignored (TraceParentInvalid), never refused.
//
// Every other key is ignored, and none of the caller's _meta is forwarded
// upstream: what the gateway sends upstream is its own. A _meta larger
// than MaxMetaBytes once marshalled, or that cannot be marshalled, is
// refused with ReasonInvalidMeta.
//
// ParseMeta always returns a CallMeta with the trace context, even with a
// refusal, so that the refused call can be recorded in its trace; its
// Decision is set only without a refusal.
func ParseMeta(meta map[string]any) (*CallMeta, *Refusal) {
	cm := &CallMeta{}
	if len(meta) == 0 {
		return cm, nil
	}
	cm.parseTrace(meta)
	// Compact JSON, with no escaping of <, > and & that the wire need not
	// have had.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(meta); err != nil {
		return cm, &Refusal{Reason: ReasonInvalidMeta, Message: "_meta cannot be read as JSON", Detail: err.Error()}
	}
	if n := buf.Len() - 1; n > MaxMetaBytes { // Encode ends with a new line
		return cm, &Refusal{Reason: ReasonInvalidMeta,
			Message: fmt.Sprintf("_meta is %d bytes once marshalled as JSON, more than the %d the gateway takes", n, MaxMetaBytes)}
	}
	raw, ok := meta[DecisionMetaKey]
	if !ok {
		return cm, nil
	}
	// Read the record as JSON says it, whatever Go types meta was built of.
	var v any
	data, err := json.Marshal(raw)
	if err == nil {
		err = json.Unmarshal(data, &v)
	}
	if err != nil {
		return cm, invalidDecision("cannot be read as JSON: %v", err)
	}
	rec, refused := parseDecision(v)
	if refused != nil {
		return cm, refused
	}
	digest, err := rec.Digest()
	if err != nil {
		return cm, invalidDecision("%v", err)
	}
	cm.Decision, cm.DecisionDigest = rec, digest
	return cm, nil
}

// Require refuses a call that needs a decision record (need) and has
// none; toolName is the tool called, for the message. Whether a call needs
// one is the caller's to say. A nil CallMeta has no record.
func (m *CallMeta) Require(need bool, toolName string) *Refusal {
	if !need || (m != nil && m.Decision != nil) {
		return nil
	}
	return &Refusal{Reason: ReasonMissingDecisionRecord,
		Message: fmt.Sprintf("tool %s: a decision record is required (_meta %s: goal, reasoning, alternatives, confidence): its Agent asks for one on this call", toolName, DecisionMetaKey)}
}

func invalidDecision(format string, args ...any) *Refusal {
	return &Refusal{Reason: ReasonInvalidDecisionRecord, Message: "_meta " + DecisionMetaKey + ": " + fmt.Sprintf(format, args...)}
}

var (
	decisionMembers = []string{"goal", "reasoning", "alternatives", "confidence", "intent"}
	intentMembers   = []string{"tool", "arguments"}
)

// parseDecision checks v, a decision record decoded from JSON, rule by
// rule in a fixed order, so that the same record is always refused the
// same way.
func parseDecision(v any) (*DecisionRecord, *Refusal) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, invalidDecision("must be an object, not %s", jsonKind(v))
	}
	if r := unknownMember(obj, "", decisionMembers, "a decision record has goal, reasoning, alternatives, confidence and intent"); r != nil {
		return nil, r
	}
	rec := &DecisionRecord{}

	goal, present := obj["goal"]
	if !present {
		return nil, invalidDecision("goal: is required")
	}
	s, r := text("goal", goal, 1, MaxDecisionGoal)
	if r != nil {
		return nil, r
	}
	rec.Goal = s

	if reasoning, present := obj["reasoning"]; present {
		if rec.Reasoning, r = text("reasoning", reasoning, 0, MaxDecisionReasoning); r != nil {
			return nil, r
		}
	}

	if alts, present := obj["alternatives"]; present {
		list, ok := alts.([]any)
		if !ok {
			return nil, invalidDecision("alternatives: must be an array of strings, not %s", jsonKind(alts))
		}
		if len(list) > MaxDecisionAlternatives {
			return nil, invalidDecision("alternatives: %d items, more than %d", len(list), MaxDecisionAlternatives)
		}
		for i, alt := range list {
			s, r := text(fmt.Sprintf("alternatives[%d]", i), alt, 1, MaxDecisionAlternative)
			if r != nil {
				return nil, r
			}
			rec.Alternatives = append(rec.Alternatives, s)
		}
	}

	if conf, present := obj["confidence"]; present {
		c, ok := conf.(float64)
		if !ok {
			return nil, invalidDecision("confidence: must be a number, not %s", jsonKind(conf))
		}
		if !(c >= 0 && c <= 1) {
			return nil, invalidDecision("confidence: %s is not between 0 and 1", strconv.FormatFloat(c, 'g', -1, 64))
		}
		if c == 0 {
			c = 0 // not -0
		}
		rec.Confidence = &c
	}

	if intent, present := obj["intent"]; present {
		in, ok := intent.(map[string]any)
		if !ok {
			return nil, invalidDecision("intent: must be an object, not %s", jsonKind(intent))
		}
		if r := unknownMember(in, "intent", intentMembers, "an intent has tool and arguments"); r != nil {
			return nil, r
		}
		rec.Intent = &DecisionIntent{}
		if tool, present := in["tool"]; present {
			s, ok := tool.(string)
			if !ok {
				return nil, invalidDecision("intent.tool: must be a string, not %s", jsonKind(tool))
			}
			rec.Intent.Tool = s
		}
		if args, present := in["arguments"]; present {
			a, ok := args.(map[string]any)
			if !ok {
				return nil, invalidDecision("intent.arguments: must be an object, not %s", jsonKind(args))
			}
			if len(a) > 0 {
				rec.Intent.Arguments = a
			}
		}
	}
	return rec, nil
}

// unknownMember refuses the first member of obj (in sorted order) that is
// not one of known; where names obj, "" for the record itself.
func unknownMember(obj map[string]any, where string, known []string, has string) *Refusal {
	var unknown []string
	for name := range obj {
		if !slices.Contains(known, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	if where != "" {
		where += ": "
	}
	return invalidDecision("%sunknown member %q: %s", where, unknown[0], has)
}

// text checks that v is a string of least to most characters; with
// least > 0, not only white space either.
func text(name string, v any, least, most int) (string, *Refusal) {
	s, ok := v.(string)
	if !ok {
		return "", invalidDecision("%s: must be a string, not %s", name, jsonKind(v))
	}
	n := utf8.RuneCountInString(s)
	switch {
	case n > most:
		return "", invalidDecision("%s: %d characters, more than %d", name, n, most)
	case least > 0 && n == 0:
		return "", invalidDecision("%s: must not be empty", name)
	case least > 0 && strings.TrimSpace(s) == "":
		return "", invalidDecision("%s: must not be only white space", name)
	}
	return s, nil
}

// jsonKind names the JSON type of a value decoded from JSON, with its
// article.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}

// parseTrace reads the W3C Trace Context of meta. A tracestate is read
// only with a valid traceparent, as W3C Trace Context asks.
func (m *CallMeta) parseTrace(meta map[string]any) {
	tp, present := meta[TraceParentMetaKey]
	if !present {
		return
	}
	s, _ := tp.(string)
	if !m.parseTraceParent(s) {
		m.TraceParentInvalid = true
		return
	}
	if ts, ok := meta[TraceStateMetaKey].(string); ok && len(ts) <= MaxTraceState && printableASCII(ts) {
		m.TraceState = ts
	}
}

// parseTraceParent parses a version 00 traceparent strictly:
// 00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>, lower case, the
// ids not all zero.
func (m *CallMeta) parseTraceParent(s string) bool {
	// 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
	if len(s) != 55 || s[:3] != "00-" || s[35] != '-' || s[52] != '-' {
		return false
	}
	if !lowerHex(s[3:35]) || !lowerHex(s[36:52]) || !lowerHex(s[53:55]) {
		return false
	}
	var tid [16]byte
	var sid [8]byte
	var flags [1]byte
	hex.Decode(tid[:], []byte(s[3:35]))
	hex.Decode(sid[:], []byte(s[36:52]))
	hex.Decode(flags[:], []byte(s[53:55]))
	if tid == ([16]byte{}) || sid == ([8]byte{}) {
		return false
	}
	m.TraceParent, m.TraceID, m.SpanID, m.TraceFlags = s, tid, sid, flags[0]
	return true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
