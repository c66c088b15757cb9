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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

// metaOf decodes a _meta document as the MCP SDK does.
func metaOf(t testing.TB, doc string) map[string]any {
	t.Helper()
	var meta map[string]any
	if err := json.Unmarshal([]byte(doc), &meta); err != nil {
		t.Fatalf("test _meta %s: %v", doc, err)
	}
	return meta
}

// decisionMeta is a _meta with the decision record rec (JSON).
func decisionMeta(t testing.TB, rec string) map[string]any {
	t.Helper()
	return metaOf(t, `{"custos.dev/decision":`+rec+`}`)
}

func TestParseMetaEmpty(t *testing.T) {
	for _, meta := range []map[string]any{
		nil,
		{},
		{"progressToken": 7, "io.example/other": map[string]any{"x": 1}, "custos.dev/other": "ignored"},
	} {
		cm, refused := ParseMeta(meta)
		if refused != nil {
			t.Fatalf("ParseMeta(%v): refused: %s", meta, refused.Message)
		}
		if cm == nil || cm.Decision != nil || cm.DecisionDigest != "" || cm.TraceParent != "" || cm.TraceParentInvalid || cm.TraceState != "" {
			t.Errorf("ParseMeta(%v) = %+v, want an empty CallMeta", meta, cm)
		}
	}
}

func TestParseMetaDecision(t *testing.T) {
	half := 0.5
	zero, one := 0.0, 1.0
	for _, tc := range []struct {
		name string
		meta map[string]any
		want DecisionRecord
	}{{
		name: "goal only",
		meta: decisionMeta(t, `{"goal":"pay invoice 42"}`),
		want: DecisionRecord{Goal: "pay invoice 42"},
	}, {
		name: "every member",
		meta: decisionMeta(t, `{"goal":"pay invoice 42","reasoning":"it is due today","alternatives":["wait","ask the person"],"confidence":0.5,
			"intent":{"tool":"ledger.pay","arguments":{"invoice":42,"amount":{"value":"10.50","currency":"EUR"}}}}`),
		want: DecisionRecord{Goal: "pay invoice 42", Reasoning: "it is due today", Alternatives: []string{"wait", "ask the person"}, Confidence: &half,
			Intent: &DecisionIntent{Tool: "ledger.pay", Arguments: map[string]any{"invoice": 42.0, "amount": map[string]any{"value": "10.50", "currency": "EUR"}}}},
	}, {
		name: "bounds",
		meta: decisionMeta(t, `{"goal":"`+strings.Repeat("é", MaxDecisionGoal)+`","reasoning":"`+strings.Repeat("ü", MaxDecisionReasoning)+
			`","alternatives":[`+strings.TrimSuffix(strings.Repeat(`"`+strings.Repeat("<", MaxDecisionAlternative)+`",`, MaxDecisionAlternatives), ",")+`],"confidence":1}`),
		want: DecisionRecord{Goal: strings.Repeat("é", MaxDecisionGoal), Reasoning: strings.Repeat("ü", MaxDecisionReasoning),
			Alternatives: func() []string {
				var alts []string
				for range MaxDecisionAlternatives {
					alts = append(alts, strings.Repeat("<", MaxDecisionAlternative))
				}
				return alts
			}(), Confidence: &one},
	}, {
		name: "confidence 0, empty reasoning, alternatives and intent",
		meta: decisionMeta(t, `{"goal":"g","reasoning":"","alternatives":[],"confidence":0,"intent":{}}`),
		want: DecisionRecord{Goal: "g", Confidence: &zero, Intent: &DecisionIntent{}},
	}, {
		name: "minus zero",
		meta: decisionMeta(t, `{"goal":"g","confidence":-0}`),
		want: DecisionRecord{Goal: "g", Confidence: &zero},
	}, {
		name: "built of Go types",
		meta: map[string]any{DecisionMetaKey: map[string]any{"goal": "g", "alternatives": []string{"a"}, "confidence": 1, "intent": map[string]any{"arguments": map[string]int{"n": 3}}}},
		want: DecisionRecord{Goal: "g", Alternatives: []string{"a"}, Confidence: &one, Intent: &DecisionIntent{Arguments: map[string]any{"n": 3.0}}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cm, refused := ParseMeta(tc.meta)
			if refused != nil {
				t.Fatalf("refused: %s", refused.Message)
			}
			got, _ := json.Marshal(cm.Decision)
			want, _ := json.Marshal(tc.want)
			if string(got) != string(want) {
				t.Errorf("Decision = %s, want %s", got, want)
			}
			if (cm.Decision.Confidence == nil) != (tc.want.Confidence == nil) || cm.Decision.Confidence != nil && math.Signbit(*cm.Decision.Confidence) {
				t.Errorf("Confidence = %v, want %v", cm.Decision.Confidence, tc.want.Confidence)
			}
			digest, err := tc.want.Digest()
			if err != nil || cm.DecisionDigest != digest {
				t.Errorf("DecisionDigest = %q, want %q (%v)", cm.DecisionDigest, digest, err)
			}
		})
	}
}

func TestParseMetaInvalidDecision(t *testing.T) {
	many := `"a"` + strings.Repeat(`,"a"`, MaxDecisionAlternatives)
	for _, tc := range []struct{ rec, want string }{
		{`"pay"`, `must be an object, not a string`},
		{`null`, `must be an object, not null`},
		{`[{"goal":"g"}]`, `must be an object, not an array`},
		{`{}`, `goal: is required`},
		{`{"reasoning":"r"}`, `goal: is required`},
		{`{"goal":1}`, `goal: must be a string, not a number`},
		{`{"goal":null}`, `goal: must be a string, not null`},
		{`{"goal":""}`, `goal: must not be empty`},
		{`{"goal":" \n\t"}`, `goal: must not be only white space`},
		{`{"goal":"` + strings.Repeat("é", MaxDecisionGoal+1) + `"}`, `goal: 1025 characters, more than 1024`},
		{`{"goal":"g","reasoning":true}`, `reasoning: must be a string, not a boolean`},
		{`{"goal":"g","reasoning":"` + strings.Repeat("x", MaxDecisionReasoning+1) + `"}`, `reasoning: 8193 characters, more than 8192`},
		{`{"goal":"g","alternatives":"wait"}`, `alternatives: must be an array of strings, not a string`},
		{`{"goal":"g","alternatives":[` + many + `]}`, `alternatives: 17 items, more than 16`},
		{`{"goal":"g","alternatives":["a",2]}`, `alternatives[1]: must be a string, not a number`},
		{`{"goal":"g","alternatives":["a",""]}`, `alternatives[1]: must not be empty`},
		{`{"goal":"g","alternatives":["  "]}`, `alternatives[0]: must not be only white space`},
		{`{"goal":"g","alternatives":["` + strings.Repeat("€", MaxDecisionAlternative+1) + `"]}`, `alternatives[0]: 1025 characters, more than 1024`},
		{`{"goal":"g","confidence":1.5}`, `confidence: 1.5 is not between 0 and 1`},
		{`{"goal":"g","confidence":-0.1}`, `confidence: -0.1 is not between 0 and 1`},
		{`{"goal":"g","confidence":1e300}`, `confidence: 1e+300 is not between 0 and 1`},
		{`{"goal":"g","confidence":"0.5"}`, `confidence: must be a number, not a string`},
		{`{"goal":"g","confidence":null}`, `confidence: must be a number, not null`},
		{`{"goal":"g","intent":"pay"}`, `intent: must be an object, not a string`},
		{`{"goal":"g","intent":{"tool":3}}`, `intent.tool: must be a string, not a number`},
		{`{"goal":"g","intent":{"arguments":[1]}}`, `intent.arguments: must be an object, not an array`},
		{`{"goal":"g","why":"because"}`, `unknown member "why": a decision record has goal, reasoning, alternatives, confidence and intent`},
		{`{"goal":"g","zeta":1,"beta":2}`, `unknown member "beta": a decision record has goal, reasoning, alternatives, confidence and intent`},
		{`{"goal":"","Goal":"g"}`, `unknown member "Goal": a decision record has goal, reasoning, alternatives, confidence and intent`},
		{`{"goal":"g","intent":{"tool":"a.b","args":{}}}`, `intent: unknown member "args": an intent has tool and arguments`},
	} {
		cm, refused := ParseMeta(decisionMeta(t, tc.rec))
		name := tc.rec
		if len(name) > 60 {
			name = name[:60] + "…"
		}
		if refused == nil {
			t.Errorf("%s: not refused, want %q", name, tc.want)
			continue
		}
		if want := "_meta custos.dev/decision: " + tc.want; refused.Reason != ReasonInvalidDecisionRecord || refused.Message != want {
			t.Errorf("%s: refused %s %q, want %s %q", name, refused.Reason, refused.Message, ReasonInvalidDecisionRecord, want)
		}
		if cm == nil || cm.Decision != nil || cm.DecisionDigest != "" {
			t.Errorf("%s: CallMeta %+v with a refusal, want one without a decision", name, cm)
		}
	}
}

func TestParseMetaSize(t *testing.T) {
	// {"x":"…"} is 8 bytes and the string's.
	cm, refused := ParseMeta(map[string]any{"x": strings.Repeat("a", MaxMetaBytes-8)})
	if refused != nil || cm == nil {
		t.Errorf("_meta of %d bytes: refused: %v", MaxMetaBytes, refused)
	}
	_, refused = ParseMeta(map[string]any{"x": strings.Repeat("a", MaxMetaBytes-7)})
	if refused == nil || refused.Reason != ReasonInvalidMeta || refused.Message != "_meta is 65537 bytes once marshalled as JSON, more than the 65536 the gateway takes" {
		t.Errorf("_meta of %d bytes: refused %+v, want %s", MaxMetaBytes+1, refused, ReasonInvalidMeta)
	}
	// A decision record counts; a character counts its bytes in UTF-8.
	_, refused = ParseMeta(map[string]any{DecisionMetaKey: map[string]any{"goal": "g", "intent": map[string]any{"arguments": map[string]any{"blob": strings.Repeat("€", MaxMetaBytes/3+1)}}}})
	if refused == nil || refused.Reason != ReasonInvalidMeta {
		t.Errorf("_meta with a large record: refused %+v, want %s", refused, ReasonInvalidMeta)
	}
	// What JSON cannot say.
	for _, meta := range []map[string]any{{"x": math.NaN()}, {DecisionMetaKey: map[string]any{"goal": "g", "confidence": math.Inf(1)}}, {"x": make(chan int)}} {
		if _, refused := ParseMeta(meta); refused == nil || refused.Reason != ReasonInvalidMeta || refused.Message != "_meta cannot be read as JSON" || refused.Detail == "" {
			t.Errorf("ParseMeta(%v): refused %+v, want %s", meta, refused, ReasonInvalidMeta)
		}
	}
	if _, refused := ParseMeta(map[string]any{DecisionMetaKey: map[string]any{"goal": "g", "confidence": json.Number("1e999")}}); refused == nil || refused.Reason != ReasonInvalidDecisionRecord {
		t.Errorf("confidence 1e999: refused %+v, want %s", refused, ReasonInvalidDecisionRecord)
	}
}

func TestParseMetaDecisionDigest(t *testing.T) {
	digest := func(rec string) string {
		t.Helper()
		cm, refused := ParseMeta(decisionMeta(t, rec))
		if refused != nil {
			t.Fatalf("%s: refused: %s", rec, refused.Message)
		}
		return cm.DecisionDigest
	}
	a := digest(`{"goal":"pay","reasoning":"due","alternatives":["wait","ask"],"confidence":0.8,"intent":{"tool":"ledger.pay","arguments":{"id":42,"to":{"iban":"X","name":"Y"}}}}`)
	same := []string{
		`{"intent":{"arguments":{"to":{"name":"Y","iban":"X"},"id":42},"tool":"ledger.pay"},"confidence":0.8,"alternatives":["wait","ask"],"reasoning":"due","goal":"pay"}`,
		`{"confidence":8e-1,"goal":"pay","reasoning":"d\u0075e","alternatives":["wait","ask"],"intent":{"tool":"ledger.pay","arguments":{"id":42.0,"to":{"iban":"X","name":"Y"}}}}`,
	}
	for _, rec := range same {
		if got := digest(rec); got != a {
			t.Errorf("%s: digest %s, want %s as in another member order", rec, got, a)
		}
	}
	differ := []string{
		`{"goal":"Pay","reasoning":"due","alternatives":["wait","ask"],"confidence":0.8,"intent":{"tool":"ledger.pay","arguments":{"id":42,"to":{"iban":"X","name":"Y"}}}}`,
		`{"goal":"pay","reasoning":"due","alternatives":["ask","wait"],"confidence":0.8,"intent":{"tool":"ledger.pay","arguments":{"id":42,"to":{"iban":"X","name":"Y"}}}}`,
		`{"goal":"pay","reasoning":"due","alternatives":["wait","ask"],"confidence":0.81,"intent":{"tool":"ledger.pay","arguments":{"id":42,"to":{"iban":"X","name":"Y"}}}}`,
		`{"goal":"pay","reasoning":"due","alternatives":["wait","ask"],"intent":{"tool":"ledger.pay","arguments":{"id":42,"to":{"iban":"X","name":"Y"}}}}`,
		`{"goal":"pay","reasoning":"due","alternatives":["wait","ask"],"confidence":0.8,"intent":{"tool":"ledger.pay","arguments":{"id":43,"to":{"iban":"X","name":"Y"}}}}`,
		`{"goal":"pay","reasoning":"due","alternatives":["wait","ask"],"confidence":0.8,"intent":{"tool":"ledger.pay","arguments":{"id":42,"to":{"iban":"X","name":"Z"}}}}`,
	}
	for _, rec := range differ {
		if got := digest(rec); got == a {
			t.Errorf("%s: digest %s, the same as another record's", rec, got)
		}
	}
	// The digest is of the RFC 8785 form of the record.
	sum := sha256.Sum256([]byte(`{"confidence":0.5,"goal":"g","intent":{"arguments":{"a":[1,"é\n",null,true]}}}`))
	if got, want := digest(`{ "goal" : "g", "intent": {"arguments": {"a": [1.0, "\u00e9\n", null, true]}}, "confidence": 5E-1 }`), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("digest %s, want %s", got, want)
	}
}

func TestParseMetaTraceContext(t *testing.T) {
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name        string
		meta        map[string]any
		invalid     bool
		traceParent string
		traceState  string
	}{
		{name: "valid", meta: map[string]any{"traceparent": valid, "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"},
			traceParent: valid, traceState: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"},
		{name: "valid, flags 00, no tracestate", meta: map[string]any{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
			traceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
		{name: "tracestate of 512", meta: map[string]any{"traceparent": valid, "tracestate": "a=" + strings.Repeat("b", 510)},
			traceParent: valid, traceState: "a=" + strings.Repeat("b", 510)},
		{name: "tracestate of 513", meta: map[string]any{"traceparent": valid, "tracestate": "a=" + strings.Repeat("b", 511)}, traceParent: valid},
		{name: "tracestate not ASCII", meta: map[string]any{"traceparent": valid, "tracestate": "a=é"}, traceParent: valid},
		{name: "tracestate with a line feed", meta: map[string]any{"traceparent": valid, "tracestate": "a=b\r\nX-Injected: 1"}, traceParent: valid},
		{name: "tracestate not a string", meta: map[string]any{"traceparent": valid, "tracestate": []any{"a=b"}}, traceParent: valid},
		{name: "tracestate without traceparent", meta: map[string]any{"tracestate": "a=b"}},
		{name: "upper case", meta: map[string]any{"traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", "tracestate": "a=b"}, invalid: true},
		{name: "upper-case flags", meta: map[string]any{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A"}, invalid: true},
		{name: "trace-id all zero", meta: map[string]any{"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, invalid: true},
		{name: "parent-id all zero", meta: map[string]any{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"}, invalid: true},
		{name: "trace-id short", meta: map[string]any{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"}, invalid: true},
		{name: "parent-id long", meta: map[string]any{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b71-01"}, invalid: true},
		{name: "trailing data", meta: map[string]any{"traceparent": valid + "-what"}, invalid: true},
		{name: "version ff", meta: map[string]any{"traceparent": "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, invalid: true},
		{name: "version 01", meta: map[string]any{"traceparent": "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, invalid: true},
		{name: "not hex", meta: map[string]any{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01"}, invalid: true},
		{name: "other separator", meta: map[string]any{"traceparent": "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01"}, invalid: true},
		{name: "empty", meta: map[string]any{"traceparent": ""}, invalid: true},
		{name: "not a string", meta: map[string]any{"traceparent": 1}, invalid: true},
		{name: "invalid, with a decision record", meta: map[string]any{"traceparent": "nope", DecisionMetaKey: map[string]any{"goal": "g"}}, invalid: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cm, refused := ParseMeta(tc.meta)
			if refused != nil {
				t.Fatalf("refused: %s", refused.Message)
			}
			if cm.TraceParentInvalid != tc.invalid || cm.TraceParent != tc.traceParent || cm.TraceState != tc.traceState {
				t.Errorf("TraceParentInvalid %v, TraceParent %q, TraceState %q; want %v, %q, %q",
					cm.TraceParentInvalid, cm.TraceParent, cm.TraceState, tc.invalid, tc.traceParent, tc.traceState)
			}
			if tc.traceParent == "" {
				if cm.TraceID != ([16]byte{}) || cm.SpanID != ([8]byte{}) || cm.TraceFlags != 0 {
					t.Errorf("ids %x %x %x without a valid traceparent", cm.TraceID, cm.SpanID, cm.TraceFlags)
				}
				return
			}
			if got := "00-" + hex.EncodeToString(cm.TraceID[:]) + "-" + hex.EncodeToString(cm.SpanID[:]) + "-" + hex.EncodeToString([]byte{cm.TraceFlags}); got != tc.traceParent {
				t.Errorf("parts %s, want %s", got, tc.traceParent)
			}
		})
	}
	// The trace context is read even when the record is refused.
	cm, refused := ParseMeta(map[string]any{"traceparent": valid, DecisionMetaKey: map[string]any{"goal": ""}})
	if refused == nil || cm == nil || cm.TraceParent != valid {
		t.Errorf("refused record: CallMeta %+v, refusal %v; want the trace context and a refusal", cm, refused)
	}
}

func TestCallMetaRequire(t *testing.T) {
	with, refused := ParseMeta(decisionMeta(t, `{"goal":"g"}`))
	if refused != nil {
		t.Fatal(refused.Message)
	}
	without, _ := ParseMeta(metaOf(t, `{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`))
	for _, tc := range []struct {
		name    string
		cm      *CallMeta
		need    bool
		refused bool
	}{
		{"needed, given", with, true, false},
		{"not needed, given", with, false, false},
		{"not needed, none", without, false, false},
		{"needed, none", without, true, true},
		{"needed, nil CallMeta", nil, true, true},
		{"not needed, nil CallMeta", nil, false, false},
	} {
		r := tc.cm.Require(tc.need, "ledger.pay")
		if (r != nil) != tc.refused {
			t.Errorf("%s: refused %v, want %v", tc.name, r, tc.refused)
			continue
		}
		if r != nil {
			want := "tool ledger.pay: a decision record is required (_meta custos.dev/decision: goal, reasoning, alternatives, confidence): its Agent asks for one on this call"
			if r.Reason != ReasonMissingDecisionRecord || r.Message != want {
				t.Errorf("%s: refused %s %q, want %s %q", tc.name, r.Reason, r.Message, ReasonMissingDecisionRecord, want)
			}
		}
	}
}

func FuzzParseMeta(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"custos.dev/decision":{"goal":"pay invoice 42","reasoning":"due today","alternatives":["wait"],"confidence":0.9,"intent":{"tool":"ledger.pay","arguments":{"id":42}}}}`,
		`{"custos.dev/decision":{"goal":"g","confidence":1.5}}`,
		`{"custos.dev/decision":{"goal":"","extra":1}}`,
		`{"custos.dev/decision":null,"progressToken":"t"}`,
		`{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"rojo=00f067aa0ba902b7"}`,
		`{"traceparent":"00-00000000000000000000000000000000-00f067aa0ba902b7-01","custos.dev/decision":{"goal":"\u00e9\ud83d\ude00"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var meta map[string]any
		if err := json.Unmarshal(data, &meta); err != nil {
			t.Skip()
		}
		cm, refused := ParseMeta(meta)
		if cm == nil {
			t.Fatal("nil CallMeta")
		}
		again, refusedAgain := ParseMeta(meta)
		if again.DecisionDigest != cm.DecisionDigest || (refused == nil) != (refusedAgain == nil) || refused != nil && *refused != *refusedAgain {
			t.Fatalf("two parses differ: %q %v, %q %v", cm.DecisionDigest, refused, again.DecisionDigest, refusedAgain)
		}
		if refused != nil {
			switch refused.Reason {
			case ReasonInvalidMeta, ReasonInvalidDecisionRecord:
			default:
				t.Fatalf("refusal reason %q", refused.Reason)
			}
			if cm.Decision != nil || cm.DecisionDigest != "" {
				t.Fatal("a decision with a refusal")
			}
		}
		if cm.TraceParent != "" && (cm.TraceParentInvalid || len(cm.TraceParent) != 55) || cm.TraceParent == "" && cm.TraceState != "" || len(cm.TraceState) > MaxTraceState {
			t.Fatalf("trace context %+v", cm)
		}
		if cm.Decision == nil {
			if cm.DecisionDigest != "" {
				t.Fatal("a digest without a decision")
			}
			return
		}
		d := cm.Decision
		if !strings.HasPrefix(cm.DecisionDigest, "sha256:") || len(cm.DecisionDigest) != 71 {
			t.Fatalf("digest %q", cm.DecisionDigest)
		}
		if n := utf8.RuneCountInString(d.Goal); n < 1 || n > MaxDecisionGoal {
			t.Fatalf("goal of %d characters", n)
		}
		if d.Confidence != nil && !(*d.Confidence >= 0 && *d.Confidence <= 1) {
			t.Fatalf("confidence %v", *d.Confidence)
		}
		if len(d.Alternatives) > MaxDecisionAlternatives || utf8.RuneCountInString(d.Reasoning) > MaxDecisionReasoning {
			t.Fatalf("record %+v", d)
		}
		if digest, err := d.Digest(); err != nil || digest != cm.DecisionDigest {
			t.Fatalf("Digest() = %q, %v; want %q", digest, err, cm.DecisionDigest)
		}
		// The record kept reads back as itself.
		rec, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		back, refused := ParseMeta(decisionMeta(t, string(rec)))
		if refused != nil || back.DecisionDigest != cm.DecisionDigest {
			t.Fatalf("record %s read back: %q %v, want %q", rec, back.DecisionDigest, refused, cm.DecisionDigest)
		}
	})
}
