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
	"slices"
	"strconv"
	"strings"
)

// digitRun is a run of digit groups joined by single spaces or dashes.
var digitRun = regexp.MustCompile(`\d+(?:[ -]\d+)*`)

// groupsOf splits a run into its digit groups and the separators between
// them, with each group's start.
func groupsOf(run string, base int) (groups []string, starts []int, seps []byte) {
	start := 0
	for i := 0; i <= len(run); i++ {
		if i == len(run) || run[i] == ' ' || run[i] == '-' {
			groups, starts = append(groups, run[start:i]), append(starts, base+start)
			if i < len(run) {
				seps = append(seps, run[i])
			}
			start = i + 1
		}
	}
	return groups, starts, seps
}

// cards: runs of 12 to 19 digits, unseparated or in a card's grouping
// with one separator throughout, in an issuer's range for their length,
// passing Luhn. A run of digit groups is taken whole: cut into cards
// with nothing left over (two cards in a row), or else only its groups
// that are cards by themselves; never a few groups of a longer grouped
// number (9400 3572 6079 0273 1205 97 is a parcel's, not a card's).
func cards(_ *Scanner, text string) []Finding {
	var out []Finding
	isCardByte := func(c byte) bool { return isDigit(c) || c == ' ' || c == '-' }
	enoughDigits := func(run string) bool { return countDigits(run) >= 12 }
	for _, m := range runsOf(text, isCardByte, enoughDigits, func(run string) [][]int { return digitRun.FindAllStringIndex(run, -1) }) {
		if !isolatedBefore(text, m[0]) || !isolatedAfter(text, m[1]) || m[0] > 0 && text[m[0]-1] == '+' {
			// A number after + is a phone number's.
			continue
		}
		groups, starts, seps := groupsOf(text[m[0]:m[1]], m[0])
		card := func(i, j int) bool {
			n := 0
			for k := i; k <= j; k++ {
				n += len(groups[k])
			}
			if n < 12 || n > 19 || !sameSeparator(seps[i:j]) || !cardGrouping(groups[i:j+1]) {
				return false
			}
			d := strings.Join(groups[i:j+1], "")
			return inIssuerRange(d) && luhn(d)
		}
		finding := func(i, j int) Finding {
			conf := 0.9
			if j > i {
				conf = 0.97
			}
			return Finding{Type: Card, Start: starts[i], End: starts[j] + len(groups[j]), Confidence: conf}
		}
		// cut[i] is the end+1 of a card starting at group i in a cut of
		// groups[i:] into cards with nothing left over; -1 when none.
		cut := make([]int, len(groups)+1)
		cut[len(groups)] = len(groups)
		for i := len(groups) - 1; i >= 0; i-- {
			cut[i] = -1
			for j := min(len(groups)-1, i+6); j >= i; j-- {
				if cut[j+1] >= 0 && card(i, j) {
					cut[i] = j + 1
					break
				}
			}
		}
		if cut[0] >= 0 {
			for i := 0; i < len(groups); i = cut[i] {
				out = append(out, finding(i, cut[i]-1))
			}
			continue
		}
		for i := range groups {
			if card(i, i) {
				out = append(out, finding(i, i))
			}
		}
	}
	return out
}

// sameSeparator says whether every separator is the same one.
func sameSeparator(seps []byte) bool {
	for _, s := range seps {
		if s != seps[0] {
			return false
		}
	}
	return true
}

// cardGrouping says whether groups are a card number as written: one
// group, fours (the last of one to four), or 4-6-5 and 4-6-4.
func cardGrouping(groups []string) bool {
	if len(groups) == 1 {
		return true
	}
	if len(groups) == 3 && len(groups[0]) == 4 && len(groups[1]) == 6 && (len(groups[2]) == 5 || len(groups[2]) == 4) {
		return true
	}
	for i, g := range groups {
		if len(g) != 4 && (i != len(groups)-1 || len(g) > 4) {
			return false
		}
	}
	return true
}

// prefixIn says whether d's first len(lo) digits lie in [lo, hi].
func prefixIn(d, lo, hi string) bool {
	if len(d) < len(lo) {
		return false
	}
	p, _ := strconv.Atoi(d[:len(lo)])
	l, _ := strconv.Atoi(lo)
	h, _ := strconv.Atoi(hi)
	return p >= l && p <= h
}

// issuers: the ranges of the networks' issuer identification numbers and
// their lengths.
var issuers = []struct {
	lo, hi   string
	min, max int
	only     []int
}{
	{"4", "4", 13, 19, []int{13, 16, 19}}, // Visa
	{"51", "55", 16, 16, nil},             // Mastercard
	{"2221", "2720", 16, 16, nil},         // Mastercard
	{"34", "34", 15, 15, nil},             // American Express
	{"37", "37", 15, 15, nil},             // American Express
	{"6011", "6011", 16, 19, nil},         // Discover
	{"644", "649", 16, 19, nil},           // Discover
	{"65", "65", 16, 19, nil},             // Discover
	{"3528", "3589", 16, 19, nil},         // JCB
	{"300", "305", 14, 19, nil},           // Diners Club
	{"36", "36", 14, 19, nil},             // Diners Club
	{"38", "39", 16, 19, nil},             // Diners Club
	{"62", "62", 16, 19, nil},             // UnionPay
	{"2200", "2204", 16, 19, nil},         // Mir
	{"5018", "5018", 12, 19, nil},         // Maestro
	{"5020", "5020", 12, 19, nil},         // Maestro
	{"5038", "5038", 12, 19, nil},         // Maestro
	{"5893", "5893", 12, 19, nil},         // Maestro
	{"6304", "6304", 12, 19, nil},         // Maestro
	{"6759", "6759", 12, 19, nil},         // Maestro
	{"6761", "6763", 12, 19, nil},         // Maestro
}

// inIssuerRange says whether d is a card number's length for an issuer
// whose range holds it.
func inIssuerRange(d string) bool {
	for _, is := range issuers {
		if len(d) < is.min || len(d) > is.max || !prefixIn(d, is.lo, is.hi) {
			continue
		}
		if is.only != nil && !slices.Contains(is.only, len(d)) {
			continue
		}
		return true
	}
	return false
}
