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

// Package pii finds personal data in text, and validates what it finds
// rather than only matching it (issue #24): a payment card number is in an
// issuer's range, consistently separated and passes Luhn; a US SSN obeys
// the area, group and serial rules, is no published sample, and a bare
// nine-digit run counts only with a context word before it; an IBAN has
// its country's length and passes mod-97; an email address parses; a
// phone number is valid for a region the tenant names (libphonenumber's
// metadata); an IP address parses; a secret is what the audit trail
// redacts. Each finding has a type, a span and a confidence. Nothing here keeps or logs what it scans.
package pii

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/custos-dev/custos/internal/audit"
)

// Type is the kind of personal data a finding is.
type Type string

const (
	Card  Type = "card"
	SSN   Type = "ssn"
	IBAN  Type = "iban"
	Email Type = "email"
	Phone Type = "phone"
	IP    Type = "ip"
	// Secret is what the audit trail redacts (audit.SecretSpans): keys,
	// tokens, passwords, private keys.
	Secret Type = "secret"
)

// Finding is one value found: its type, its byte span [Start, End) in the
// text scanned, and how sure the recognizer is, from 0 to 1.
type Finding struct {
	Type       Type
	Start, End int
	Confidence float64
}

// Scanner finds personal data. Its zero value finds every type, phone
// numbers only when written internationally (+49 ...).
type Scanner struct {
	// PhoneRegions are the ISO 3166-1 regions (DE, US) whose national
	// phone numbers are recognized without a country code.
	PhoneRegions []string
	// Patterns are the tenant's own (CompilePatterns).
	Patterns []Pattern
}

// recognizer finds candidates of one type in text.
type recognizer func(s *Scanner, text string) []Finding

// recognizers run first; phones then read the text with what they found
// blanked, so that a phone candidate never takes in another value (a
// number beside an address) and is refused whole for it.
var recognizers = []recognizer{cards, ssns, ibans, emails, ips, secrets}

// secrets: the spans the audit trail's redaction takes for secrets, one
// rule set for both.
func secrets(_ *Scanner, text string) []Finding {
	var out []Finding
	for _, sp := range audit.SecretSpans(text) {
		out = append(out, Finding{Type: Secret, Start: sp[0], End: sp[1], Confidence: 0.9})
	}
	return out
}

// Scan returns what text holds, in order, no two overlapping: findings
// that overlap become one spanning them all, of the surest one's type
// (then the longest's), so that no part of a value is left out because
// another type was surer of its middle.
func (s *Scanner) Scan(text string) []Finding {
	var all []Finding
	for _, r := range recognizers {
		all = append(all, r(s, text)...)
	}
	for i := range s.Patterns {
		all = append(all, s.Patterns[i].find(text)...)
	}
	blanked := text
	if len(all) > 0 {
		b := []byte(text)
		for _, f := range all {
			for i := f.Start; i < f.End; i++ {
				b[i] = '\n'
			}
		}
		blanked = string(b)
	}
	all = append(all, phones(s, blanked)...)
	if len(all) == 0 {
		return nil
	}
	slices.SortFunc(all, func(a, b Finding) int { return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(b.End, a.End)) })
	out := []Finding{all[0]}
	for _, f := range all[1:] {
		last := &out[len(out)-1]
		if f.Start >= last.End {
			out = append(out, f)
			continue
		}
		if f.Confidence > last.Confidence || f.Confidence == last.Confidence && f.End-f.Start > last.End-last.Start {
			last.Type, last.Confidence = f.Type, f.Confidence
		}
		last.End = max(last.End, f.End)
	}
	return out
}

// isDigit says whether b is an ASCII digit.
func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// isWord says whether b is an ASCII letter, digit or underscore.
func isWord(b byte) bool {
	return isDigit(b) || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b == '_'
}

// isolated says whether text[start:end] stands alone: not a piece of a
// word or of a longer run of digit groups (1234-5678-9012-3456-7890
// holds no 16-digit card). A label before it (card:, ssn=) is no part of
// it.
func isolated(text string, start, end int) bool {
	return isolatedBefore(text, start) && isolatedAfter(text, end)
}

func isolatedBefore(text string, start int) bool {
	if start == 0 {
		return true
	}
	c := text[start-1]
	if isWord(c) {
		return false
	}
	// 12-4111..., 3.4111..., 10:4111...: the same run goes on.
	return !(c == '-' || c == '.' || c == '/' || c == ':') || start < 2 || !isDigit(text[start-2])
}

// inIdentifier says whether start follows a word and a dash, dot or
// slash (ORD-2025-835744, build/4155552671): the rest of an identifier.
func inIdentifier(text string, start int) bool {
	if start < 2 {
		return false
	}
	c := text[start-1]
	return (c == '-' || c == '.' || c == '/' || c == '_') && isWord(text[start-2])
}

// identifierGoesOn says whether text[end:] goes on with a dash, dot,
// slash or underscore and a word (88276365-6853-b066-...): the value is
// a piece of an identifier.
func identifierGoesOn(text string, end int) bool {
	if end+1 >= len(text) {
		return false
	}
	c := text[end]
	return (c == '-' || c == '.' || c == '/' || c == '_') && isWord(text[end+1])
}

func isolatedAfter(text string, end int) bool {
	if end == len(text) {
		return true
	}
	c := text[end]
	if isWord(c) {
		return false
	}
	return !(c == '-' || c == '.' || c == '/' || c == ':') || end+1 >= len(text) || !isDigit(text[end+1])
}

// contextBefore says whether one of words (lower case) stands within n
// bytes before start: as a word of its own once camelCase, snake_case
// and kebab-case are split (patient_ssn, phoneNumber).
func contextBefore(text string, start, n int, words *regexp.Regexp) bool {
	window := text[max(0, start-n):start]
	var b strings.Builder
	prevLower := false
	for _, r := range window {
		switch {
		case unicode.IsUpper(r):
			if prevLower {
				b.WriteByte(' ')
			}
			b.WriteRune(unicode.ToLower(r))
			prevLower = false
		case r == '_' || r == '-':
			b.WriteByte(' ')
			prevLower = false
		default:
			b.WriteRune(r)
			prevLower = unicode.IsLower(r)
		}
	}
	return words.MatchString(b.String())
}

// contextWords is a matcher of words, each standing alone (not inside
// another word, whatever its letters' script), for contextBefore.
func contextWords(words ...string) *regexp.Regexp {
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = regexp.QuoteMeta(strings.ToLower(w))
	}
	return regexp.MustCompile(`(?:^|[^\pL\pN])(?:` + strings.Join(quoted, "|") + `)(?:[^\pL\pN]|$)`)
}

// countDigits is how many ASCII digits s holds.
func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			n++
		}
	}
	return n
}

// withoutSeparators is s without the spaces and dashes a value is grouped
// with.
var withoutSeparators = strings.NewReplacer(" ", "", "-", "")

// digitsOf is s with only its ASCII digits.
func digitsOf(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			out = append(out, s[i])
		}
	}
	return string(out)
}

// luhn says whether digits pass the Luhn check.
func luhn(digits string) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return len(digits) > 0 && sum%10 == 0
}

// runsOf calls match with each maximal run of text's bytes that in says
// belong, and its offset, when keep says the run may hold a value: a
// recognizer's regular expression then reads only those runs (prose is
// mostly letters, which no number holds). The spans match returns are
// the run's, shifted to text's.
func runsOf(text string, in func(byte) bool, keep func(string) bool, match func(string) [][]int) [][]int {
	var out [][]int
	for i := 0; i < len(text); {
		if !in(text[i]) {
			i++
			continue
		}
		j := i
		for j < len(text) && in(text[j]) {
			j++
		}
		if run := text[i:j]; keep(run) {
			for _, m := range match(run) {
				shifted := make([]int, len(m))
				for k, v := range m {
					shifted[k] = v
					if v >= 0 {
						shifted[k] = v + i
					}
				}
				out = append(out, shifted)
			}
		}
		i = j
	}
	return out
}
