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
	"strings"
	"testing"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// TestRecognizers: each recognizer's rules, for and against.
func TestRecognizers(t *testing.T) {
	s := &Scanner{PhoneRegions: []string{"DE", "US"}}
	for _, tc := range []struct {
		text string
		want []string // type:value
	}{
		// Cards: issuer range, grouping, one separator, Luhn.
		{"card 4111 1111 1111 1111 exp 12/27", []string{"card:4111 1111 1111 1111"}},
		{"amex 3782-822463-10005.", []string{"card:3782-822463-10005"}},
		{"4111-1111 1111-1111", nil},               // two separators
		{"4111 1111 1111 1112", nil},               // Luhn fails
		{"7111 1111 1111 1114", nil},               // no issuer starts with 7
		{"4111 11 1111 1111 1111", nil},            // not a card's grouping
		{"tracking 1234-4111-1111-1111-1111", nil}, // a piece of a longer run
		{"sku 4111111111111111x", nil},             // part of a word
		{"order 4111111111111111 2026", []string{"card:4111111111111111"}},
		// SSNs: area, group, serial, samples, context for bare digits.
		{"SSN 536-22-1234", []string{"ssn:536-22-1234"}},
		{"ssn 000-12-3456, 666-12-3456, 912-12-3456", nil},
		{"ssn 536-00-1234 and 536-22-0000", nil},
		{"ssn 078-05-1120 (the Woolworth sample)", nil},
		{"ssn 536-22 1234", nil}, // mixed separators
		{"id 536221234", nil},    // bare, no context
		{"SSN: 536221234", []string{"ssn:536221234"}},
		// IBANs: length per country, mod 97.
		{"IBAN DE89 3704 0044 0532 0130 00", []string{"iban:DE89 3704 0044 0532 0130 00"}},
		{"GB82WEST12345698765432", []string{"iban:GB82WEST12345698765432"}},
		{"DE88 3704 0044 0532 0130 00", nil}, // check digits
		{"DE89 3704 0044 0532 0130", nil},    // too short for DE
		{"ZZ89 3704 0044 0532 0130 00", nil}, // no such country
		// Emails: they parse, as themselves.
		{"write to alice.smith@example.co.uk.", []string{"email:alice.smith@example.co.uk"}},
		{"a..b@example.com", nil},
		{"alice.@example.com", nil},
		{"not@an", nil},
		// IPs: parse; not versions or dotted runs.
		{"from 192.168.1.10 and 2001:db8::1", []string{"ip:192.168.1.10", "ip:2001:db8::1"}},
		{"v1.2.3.4, version 10.0.0.1, 1.3.6.1.4.1.311, 256.1.1.1", nil},
		{"12:30:45 and 00:1a:2b:3c:4d:5e", nil},
		// Phones: valid for their country or a region of the scanner's.
		{"call +49 30 901820", []string{"phone:+49 30 901820"}},
		{"call (415) 555-2671", []string{"phone:(415) 555-2671"}},
		{"phone 4155552671", []string{"phone:4155552671"}},
		{"order 4155552671", nil},    // bare, no context
		{"+49 12", nil},              // too short
		{"on 2026-12-07", nil},       // a date
		{"call 01 23 45 67 89", nil}, // FR, not a region of this scanner
		// Found as people write them (a review's cases).
		{"cards 4111111111111111 5500000000000004", []string{"card:4111111111111111", "card:5500000000000004"}},
		{"4111 1111 1111 1111 5500 0000 0000 0004", []string{"card:4111 1111 1111 1111", "card:5500 0000 0000 0004"}},
		{"USPS tracking 9400 3572 6079 0273 1205 97", nil},
		{"card:4111111111111111 ssn:536-22-1234 host:10.0.0.1", []string{"card:4111111111111111", "ssn:536-22-1234", "ip:10.0.0.1"}},
		{"GET http://10.0.0.1:8080/ from 203.0.113.5:51234 in 10.1.2.3/32", []string{"ip:10.0.0.1", "ip:203.0.113.5", "ip:10.1.2.3"}},
		{`{"patient_ssn":"536221234","phoneNumber":"4155552671"}`, []string{"ssn:536221234", "phone:4155552671"}},
		{"SS#536221234", []string{"ssn:536221234"}},
		{"patrick.o'brien@example.com, josé.garcía@example.es, müller@bücher.de",
			[]string{"email:patrick.o'brien@example.com", "email:josé.garcía@example.es", "email:müller@bücher.de"}},
		{"mapped ::ffff:192.168.1.1 and std::vector a::b", []string{"ip:::ffff:192.168.1.1"}},
		{"AT611904300234573201 ES9121000418450200051332", []string{"iban:AT611904300234573201", "iban:ES9121000418450200051332"}},
		{"de89 3704 0044 0532 0130 00 and DE89-3704-0044-0532-0130-00", []string{"iban:de89 3704 0044 0532 0130 00", "iban:DE89-3704-0044-0532-0130-00"}},
		{"see section 6.5.1.1 and ORD-2025-835744", nil},
		// Overlapping findings are one, so no part of a value is left.
		{`password="hunter2 alice@example.com"`, []string{`email:"hunter2 alice@example.com"`}},
		// Secrets: the audit trail's rules.
		{"key AKIAIOSFODNN7EXAMPLE here", []string{"secret:AKIAIOSFODNN7EXAMPLE"}},
		{"Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123", []string{"secret:abcdefghijklmnopqrstuvwxyz0123"}},
		{"password=hunter2hunter2", []string{"secret:hunter2hunter2"}},
	} {
		var got []string
		for _, f := range s.Scan(tc.text) {
			got = append(got, string(f.Type)+":"+tc.text[f.Start:f.End])
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%q: found %v, want %v", tc.text, got, tc.want)
		}
	}
}

// FuzzScan: no panic; findings within the text, in order, not
// overlapping; a text with each finding masked holds none of them again,
// but what the text makes with a mask's own bytes (see FuzzTransform).
func FuzzScan(f *testing.F) {
	for _, seed := range []string{"card 4111 1111 1111 1111", "SSN: 536221234", "DE89 3704 0044 0532 0130 00", "a@b.co", "+49 30 901820",
		"2001:db8::1", "::", "1.2.3.4.5", strings.Repeat("9", 40), "(((", "+", "@@", "\xff\xfe"} {
		f.Add(seed)
	}
	s := &Scanner{PhoneRegions: []string{"DE", "US", "GB"}}
	f.Fuzz(func(t *testing.T, text string) {
		found := s.Scan(text)
		end := 0
		for _, fd := range found {
			if fd.Start < end || fd.End > len(text) || fd.Start >= fd.End {
				t.Fatalf("finding %+v out of order or bounds in %q", fd, text)
			}
			end = fd.End
		}
		if len(found) == 0 || !utf8.ValidString(text) {
			return
		}
		masked, err := Transform(text, found, ActionMask, nil)
		if err != nil {
			t.Fatal(err)
		}
		put := placeholder.FindAllStringIndex(masked, -1)
		for _, again := range s.Scan(masked) {
			beside := false
			for _, p := range put {
				beside = beside || again.Start <= p[1] && p[0] <= again.End
			}
			if !beside {
				t.Fatalf("%q masked to %q still holds %s %q", text, masked, again.Type, masked[again.Start:again.End])
			}
		}
	})
}

// TestCustomPatterns: a tenant's own kinds, with their validators and
// context words; admission's errors name the field and the rule.
func TestCustomPatterns(t *testing.T) {
	ps, errs := CompilePatterns([]custosv1alpha1.PIIPattern{
		{Name: "employee-id", Regex: `EMP-\d{6}`},
		{Name: "member-card", Regex: `\d{12}`, Validator: custosv1alpha1.PIIValidatorLuhn, Context: []string{"member"}, ConfidencePercent: ptr.To[int32](95)},
		{Name: "account", Regex: `[A-Z]{2}\d{2}[A-Z0-9]{10,30}`, Validator: custosv1alpha1.PIIValidatorMod97},
	}, field.NewPath("spec", "pii", "patterns"))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	s := &Scanner{Patterns: ps}
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"badge EMP-004211 at the door", []string{"custom:employee-id:EMP-004211"}},
		{"XEMP-004211", nil},
		{"member no. 123456789015", []string{"custom:member-card:123456789015"}},
		{"member no. 123456789016", nil},                                            // Luhn fails
		{"order 123456789015", nil},                                                 // no context word
		{"account GB82WEST12345698765432", []string{"iban:GB82WEST12345698765432"}}, // the built-in is surer
	} {
		var got []string
		for _, f := range s.Scan(tc.text) {
			got = append(got, string(f.Type)+":"+tc.text[f.Start:f.End])
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%q: found %v, want %v", tc.text, got, tc.want)
		}
	}
	found := s.Scan("member 123456789015")
	if len(found) != 1 || found[0].Confidence != 0.95 {
		t.Errorf("confidence: %+v, want 0.95", found)
	}
	_, errs = CompilePatterns([]custosv1alpha1.PIIPattern{{Name: "broken", Regex: `(\d+`}, {Name: "empty", Regex: `\d*`}, {Name: "huge", Regex: `[a-z]{1000}x`}},
		field.NewPath("spec", "pii", "patterns"))
	if len(errs) != 3 || errs[0].Field != "spec.pii.patterns[0].regex" || !strings.Contains(errs[0].Detail, "not an RE2 regular expression") ||
		errs[1].Field != "spec.pii.patterns[1].regex" || !strings.Contains(errs[1].Detail, "matches the empty string") ||
		errs[2].Field != "spec.pii.patterns[2].regex" || !strings.Contains(errs[2].Detail, "instructions, more than 500") {
		t.Errorf("errors: %v", errs)
	}
}
