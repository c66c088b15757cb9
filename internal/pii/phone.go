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
	"regexp"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

var (
	// phoneCandidate is a run of digits with the punctuation phone
	// numbers are written with, an international + before it or not.
	phoneCandidate = regexp.MustCompile(`\+?\(?\d[\d().\- ]{5,22}\d`)
	// phoneContext are the words that make a bare run of digits a phone
	// number.
	phoneContext = contextWords("phone", "phones", "tel", "telephone", "mobile", "cell", "fax", "call", "whatsapp", "sms")
	// dateLike is a date: 2026-12-07, 07.12.2026, 12/07/26.
	dateLike = regexp.MustCompile(`^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})$`)
	// ssnShaped is an SSN's 3-2-4 grouping, which no phone plan writes.
	ssnShaped = regexp.MustCompile(`^\d{3}[- ]\d{2}[- ]\d{4}$`)
)

// phones: numbers written internationally (+49 30 ...) valid for their
// country, or nationally, valid for one of the scanner's regions; a bare
// run of digits (no punctuation) only with a context word before it.
func phones(s *Scanner, text string) []Finding {
	var out []Finding
	isPhoneByte := func(c byte) bool {
		return isDigit(c) || c == '+' || c == '(' || c == ')' || c == '.' || c == '-' || c == ' '
	}
	enoughDigits := func(run string) bool { return countDigits(run) >= 7 }
	for _, m := range runsOf(text, isPhoneByte, enoughDigits, func(run string) [][]int { return phoneCandidate.FindAllStringIndex(run, -1) }) {
		start, end := m[0], m[1]
		cand := text[start:end]
		digits := digitsOf(cand)
		if len(digits) < 7 || len(digits) > 15 || dateLike.MatchString(cand) || ssnShaped.MatchString(cand) || !isolated(text, start, end) ||
			inIdentifier(text, start) || identifierGoesOn(text, end) {
			continue
		}
		international := cand[0] == '+'
		bare := len(digits) == len(cand)
		if bare && !contextBefore(text, start, 30, phoneContext) {
			continue
		}
		if strings.Contains(cand, ".") && (!dottedPhone(cand) || versionBefore.MatchString(text[max(0, start-10):start])) {
			// Versions and OIDs are dotted too: a phone number's dots
			// part groups of two digits or more (01.23.45.67.89).
			continue
		}
		if valid(cand, international, s.PhoneRegions) {
			conf := 0.6
			if international {
				conf = 0.75
			}
			out = append(out, Finding{Type: Phone, Start: start, End: end, Confidence: conf})
		}
	}
	return out
}

// valid says whether cand is a valid number: of its own country when
// international, else of one of regions.
func valid(cand string, international bool, regions []string) bool {
	if international {
		n, err := phonenumbers.Parse(cand, "ZZ")
		return err == nil && phonenumbers.IsValidNumber(n)
	}
	for _, r := range regions {
		n, err := phonenumbers.Parse(cand, r)
		if err == nil && phonenumbers.IsValidNumberForRegion(n, r) {
			return true
		}
	}
	return false
}

// dottedPhone says whether a dotted candidate is written as phone numbers
// are: dots alone between groups of two digits or more, three groups or
// more.
func dottedPhone(cand string) bool {
	body := strings.TrimPrefix(cand, "+")
	groups := strings.Split(body, ".")
	if len(groups) < 3 {
		return false
	}
	for _, g := range groups {
		if len(g) < 2 || digitsOf(g) != g {
			return false
		}
	}
	return true
}
