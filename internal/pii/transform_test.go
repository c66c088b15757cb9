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

package pii

import (
	"bytes"
	"regexp"
	"testing"

	. "github.com/onsi/gomega"
)

func testKeys(t testing.TB, seed byte) *Keys {
	k, err := DeriveKeys(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestTransform: mask, hash and tokenize replace each value found; a hash
// and a token are the same for the same value and tenant and differ for
// another tenant; a token reads back only under its tenant's key and its
// type, and not once altered; what they leave holds no personal data a
// scan would find.
func TestTransform(t *testing.T) {
	g := NewWithT(t)
	s := &Scanner{PhoneRegions: []string{"US"}}
	text := "Refund 4111 1111 1111 1111 to alice@example.com, SSN 536-22-1234."
	found := s.Scan(text)
	g.Expect(found).To(HaveLen(3))

	masked, err := Transform(text, found, ActionMask, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(masked).To(Equal("Refund <CARD> to <EMAIL>, SSN <SSN>."))

	acme, other := testKeys(t, 1), testKeys(t, 2)
	hashed, err := Transform(text, found, ActionHash, acme)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(hashed).To(MatchRegexp(`^Refund <CARD:h:[a-z2-7]{16}> to <EMAIL:h:[a-z2-7]{16}>, SSN <SSN:h:[a-z2-7]{16}>\.$`))
	again, _ := Transform(text, found, ActionHash, acme)
	g.Expect(again).To(Equal(hashed), "stable for joins")
	elsewhere, _ := Transform(text, found, ActionHash, other)
	g.Expect(elsewhere).NotTo(Equal(hashed), "another tenant's key")

	tokenized, err := Transform(text, found, ActionTokenize, acme)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tokenized).NotTo(ContainSubstring("alice"))
	spans, labels, tokens := Tokens(tokenized)
	g.Expect(labels).To(Equal([]string{"CARD", "EMAIL", "SSN"}))
	g.Expect(spans).To(HaveLen(3))
	var back []string
	for i, tok := range tokens {
		v, err := acme.Detokenize(labels[i], tok)
		g.Expect(err).NotTo(HaveOccurred())
		back = append(back, v)
	}
	g.Expect(back).To(Equal([]string{"4111 1111 1111 1111", "alice@example.com", "536-22-1234"}))
	again, _ = Transform(text, found, ActionTokenize, acme)
	g.Expect(again).To(Equal(tokenized), "deterministic")

	_, err = other.Detokenize("EMAIL", tokens[1])
	g.Expect(err).To(MatchError("not a token of this tenant and type"))
	_, err = acme.Detokenize("SSN", tokens[1])
	g.Expect(err).To(MatchError("not a token of this tenant and type"), "another type")
	altered := []byte(tokens[1])
	if altered[len(altered)-1] == 'a' {
		altered[len(altered)-1] = 'b'
	} else {
		altered[len(altered)-1] = 'a'
	}
	_, err = acme.Detokenize("EMAIL", string(altered))
	g.Expect(err).To(HaveOccurred(), "altered")
	_, err = acme.Detokenize("EMAIL", "not-a-token")
	g.Expect(err).To(MatchError("not a token"))

	for _, out := range []string{masked, hashed, tokenized} {
		g.Expect(s.Scan(out)).To(BeEmpty(), "%q holds nothing a scan finds", out)
	}
	_, err = Transform(text, found, ActionHash, nil)
	g.Expect(err).To(MatchError("hash needs the tenant's keys"))
	_, err = DeriveKeys([]byte("short"))
	g.Expect(err).To(MatchError("a tenant's PII key is at least 32 bytes, not 5"))
}

var placeholder = regexp.MustCompile(`<[A-Z0-9_]+(?::[ht]:[a-z2-7]+)?>`)

// FuzzTransform: transforming what a scan finds leaves text in which a
// scan finds nothing but what touches a placeholder put in (a value the
// text makes with a placeholder's own bytes).
func FuzzTransform(f *testing.F) {
	for _, seed := range []string{"card 4111 1111 1111 1111", "SSN: 536221234 and a@b.co", "+49 30 901820 from 10.0.0.1",
		"token=abcdefghijklmnopqrstuvwxyz0123456789ABCD"} {
		f.Add(seed, uint8(0))
	}
	s := &Scanner{PhoneRegions: []string{"DE", "US"}}
	keys := testKeys(f, 7)
	actions := []Action{ActionMask, ActionHash, ActionTokenize}
	f.Fuzz(func(t *testing.T, text string, which uint8) {
		action := actions[int(which)%len(actions)]
		out, err := Transform(text, s.Scan(text), action, keys)
		if err != nil {
			t.Fatal(err)
		}
		put := placeholder.FindAllStringIndex(out, -1)
		for _, f := range s.Scan(out) {
			touches := false
			for _, p := range put {
				if f.Start <= p[1] && p[0] <= f.End {
					touches = true
				}
			}
			if !touches {
				t.Fatalf("%s of %q gave %q, in which %s %q stands apart", action, text, out, f.Type, out[f.Start:f.End])
			}
		}
	})
}
