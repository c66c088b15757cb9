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
	"encoding/json"
	"math"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestCanonicalize(t *testing.T) {
	tests := []struct {
		name, in, want, err string
	}{{
		// RFC 8785 section 3.2.2 (without its non-integer numbers).
		name: "RFC 8785 strings and literals",
		in:   `{"string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}`,
		want: `{"literals":[null,true,false],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
	}, {
		// RFC 8785 section 3.2.3: sorting by UTF-16 code units puts
		// the emoji (a surrogate pair, D83D) before U+FB33.
		name: "RFC 8785 member sorting",
		in: `{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One",
		      "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}`,
		want: "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\"," +
			"\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}",
	}, {
		name: "control characters use the short escapes or lower-case \\u00xx",
		in:   `["\b\f\n\r\t", "\u0001\u001F", "\u007f", "<>&\u2028"]`,
		want: "[\"\\b\\f\\n\\r\\t\",\"\\u0001\\u001f\",\"\u007f\",\"<>&\u2028\"]",
	}, {
		name: "nested objects are sorted too, arrays keep their order",
		in:   ` { "b" : [ 3, 1, {"z": 1, "a": 2} ], "a": {} } `,
		want: `{"a":{},"b":[3,1,{"a":2,"z":1}]}`,
	}, {
		name: "integers in any JSON form",
		in:   `[0, -0, 1e3, 4.0, -17, 9007199254740991]`,
		want: `[0,0,1000,4,-17,9007199254740991]`,
	}, {
		name: "fractions are refused",
		in:   `{"n": 4.5}`,
		err:  "number 4.5 is not an integer",
	}, {
		name: "integers beyond 2^53 are refused",
		in:   `[9007199254740993]`,
		err:  "outside ±(2^53-1)",
	}, {
		name: "duplicate names are refused",
		in:   `{"a": 1, "a": 2}`,
		err:  `duplicate member name "a"`,
	}, {
		name: "invalid UTF-8 is refused",
		in:   "[\"\xff\"]",
		err:  "not valid UTF-8",
	}, {
		name: "trailing data is refused",
		in:   `{} {}`,
		err:  "data after the top-level value",
	}, {
		name: "syntax errors are refused",
		in:   `{"a": }`,
		err:  "canonical JSON",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := Canonicalize([]byte(tt.in))
			if tt.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(got)).To(Equal(tt.want))
		})
	}
}

func TestCompareUTF16(t *testing.T) {
	g := NewWithT(t)
	g.Expect(compareUTF16("a", "b")).To(Equal(-1))
	g.Expect(compareUTF16("ab", "a")).To(Equal(1))
	g.Expect(compareUTF16("x", "x")).To(Equal(0))
	// Byte order would put U+FB33 first; UTF-16 puts the emoji first.
	g.Expect(compareUTF16("😀", "\ufb33")).To(Equal(-1))
	g.Expect(compareUTF16("😀", "😁")).To(Equal(-1))
}

// The record encoder writes canonical JSON directly; it must equal what
// the general canonicalizer makes of the same record.
func TestRecordEncodingIsCanonical(t *testing.T) {
	records := []*Record{
		{Schema: SchemaVersion, Seq: 0, Time: t0, Type: TypeEvent, PrevHash: GenesisHash},
		{Schema: SchemaVersion, Seq: 7, Time: t0.Add(time.Second), Type: TypeEvent, Action: ActionAdmissionDenied,
			Actor:    &Actor{Kind: ActorUser, Name: "jane", UID: "u-1", Groups: []string{"finance", "system:authenticated"}},
			Subject:  &Subject{Kind: "Agent", Namespace: "ns", Name: "a", UID: "uid", Tenant: "t"},
			Decision: DecisionDeny, Reason: "quote \" backslash \\ newline \n tab \t ctl \x01 unicode é 😀", Policy: "boundary/regions",
			TraceID: "abc", Details: map[string]string{"z": "1", "a": "2", "\ufb33": "x", "😀": "y", "A": ""},
			Redacted: []string{"details.token"}, PrevHash: GenesisHash, Hash: GenesisHash},
		{Schema: SchemaVersion, Seq: 9, Time: t0, Type: TypeCheckpoint, PrevHash: GenesisHash, Hash: GenesisHash,
			Checkpoint: &Checkpoint{Size: 9, Head: GenesisHash, Root: GenesisHash, KeyID: "0011", Algorithm: AlgorithmEd25519, Final: true, Signature: "c2ln"}},
	}
	for _, r := range records {
		checkEncoding(t, r)
	}
}

func checkEncoding(t *testing.T, r *Record) {
	t.Helper()
	g := NewWithT(t)
	std, err := json.Marshal(r)
	g.Expect(err).NotTo(HaveOccurred())
	want, err := Canonicalize(std)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(appendRecord(nil, r, true))).To(Equal(string(want)))

	var m map[string]any
	g.Expect(json.Unmarshal(std, &m)).To(Succeed())
	delete(m, "hash")
	std, _ = json.Marshal(m)
	want, err = Canonicalize(std)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(appendRecord(nil, r, false))).To(Equal(string(want)))
}

func FuzzRecordEncodingIsCanonical(f *testing.F) {
	f.Add("reason", "key", "value", "name", uint64(3), int64(0))
	f.Add("a\"b\\c\x00", "😀", "\ufb33", "é", uint64(1<<40), int64(1e9))
	f.Fuzz(func(t *testing.T, reason, key, value, name string, seq uint64, nanos int64) {
		if seq > maxSafeInteger {
			seq %= maxSafeInteger
		}
		e := Event{Reason: reason, Actor: Actor{Name: name}, Details: map[string]string{key: value, "k": reason}}
		sanitizeEvent(&e) // valid UTF-8, as the Log makes it
		r := &Record{Schema: SchemaVersion, Seq: seq, Time: time.Unix(0, nanos).UTC(), Type: TypeEvent,
			Reason: e.Reason, Details: e.Details, PrevHash: GenesisHash, Hash: GenesisHash}
		if !actorEmpty(&e.Actor) {
			r.Actor = &e.Actor
		}
		checkEncoding(t, r)
	})
}

func FuzzCanonicalize(f *testing.F) {
	f.Add([]byte(`{"b":[1,2,{"c":"\u00e9"}],"a":null}`))
	f.Add([]byte(`[1e3, -0, "\u001f", true]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := Canonicalize(data)
		if err != nil {
			return
		}
		// Canonical JSON is valid JSON, and a fixed point.
		if !json.Valid(out) {
			t.Fatalf("Canonicalize(%q) = %q, not valid JSON", data, out)
		}
		again, err := Canonicalize(out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("Canonicalize is not idempotent on %q: %q, %v", out, again, err)
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	r := &Record{Schema: SchemaVersion, Seq: 1, Time: t0, Type: TypeEvent, Action: ActionAgentSuspended, PrevHash: GenesisHash}
	r.Hash = r.ComputeHash()
	f.Add(r.Line())
	f.Add([]byte(`{"schema":"custos.dev/audit/v1","seq":-1}`))
	f.Add([]byte(`{"seal":{"segment":"x"}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseRecord(line)
		if err != nil {
			return
		}
		// A record that parses re-encodes canonically, and its hash
		// is well formed.
		enc := appendRecord(nil, r, true)
		if _, err := Canonicalize(enc); err != nil {
			t.Fatalf("re-encoding %q gives non-canonical %q: %v", line, enc, err)
		}
		if _, err := parseHash(r.ComputeHash()); err != nil {
			t.Fatal(err)
		}
		_, _ = parseSeal(line)
	})
}

// TestCanonicalValue: decoded values with numbers of any kind in RFC 8785
// form, as decision records and tool arguments are digested.
func TestCanonicalValue(t *testing.T) {
	// RFC 8785 appendix B: IEEE 754 doubles and their ECMAScript form.
	for bits, want := range map[uint64]string{
		0x0000000000000000: "0",
		0x8000000000000000: "0",
		0x0000000000000001: "5e-324",
		0x8000000000000001: "-5e-324",
		0x7fefffffffffffff: "1.7976931348623157e+308",
		0xffefffffffffffff: "-1.7976931348623157e+308",
		0x4340000000000000: "9007199254740992",
		0xc340000000000000: "-9007199254740992",
		0x4430000000000000: "295147905179352830000",
		0x44b52d02c7e14af5: "9.999999999999997e+22",
		0x44b52d02c7e14af6: "1e+23",
		0x44b52d02c7e14af7: "1.0000000000000001e+23",
		0x444b1ae4d6e2ef4e: "999999999999999700000",
		0x444b1ae4d6e2ef4f: "999999999999999900000",
		0x444b1ae4d6e2ef50: "1e+21",
		0x3eb0c6f7a0b5ed8c: "9.999999999999997e-7",
		0x3eb0c6f7a0b5ed8d: "0.000001",
		0x41b3de4355555553: "333333333.3333332",
		0x41b3de4355555554: "333333333.33333325",
		0x41b3de4355555555: "333333333.3333333",
		0x41b3de4355555556: "333333333.3333334",
		0x41b3de4355555557: "333333333.33333343",
		0xbecbf647612f3696: "-0.0000033333333333333333",
		0x43143ff3c1cb0959: "1424953923781206.2",
	} {
		got, err := appendESNumber(nil, math.Float64frombits(bits))
		if err != nil || string(got) != want {
			t.Errorf("%#016x: %s (%v), want %s", bits, got, err, want)
		}
	}
	// Where Canonicalize answers (no numbers but integers), both agree.
	for _, doc := range []string{
		`{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`,
		`{"numbers":[333,1E3,-0,4.0,9007199254740991],"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/\u007f","literals":[null,true,false]}`,
		`{"a":{"c":[],"b":{}},"":"empty","<&>":"\u2028"}`,
	} {
		want, err := Canonicalize([]byte(doc))
		if err != nil {
			t.Fatalf("Canonicalize(%s): %v", doc, err)
		}
		var v any
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			t.Fatal(err)
		}
		got, err := CanonicalValue(v)
		if err != nil || string(got) != string(want) {
			t.Errorf("%s:\n got %s (%v)\nwant %s", doc, got, err, want)
		}
	}
}
