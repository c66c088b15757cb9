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
	"math/big"
	"net/mail"
	"net/netip"
	"regexp"
	"strings"
)

// ssnCandidate is nine digits, 3-2-4, with one separator or none.
var ssnCandidate = regexp.MustCompile(`\d{3}([- ]?)\d{2}([- ]?)\d{4}`)

// ssnContext are the words that make a bare nine-digit run an SSN.
var ssnContext = contextWords("ssn", "ssns", "social security", "social security number", "soc sec", "soc. sec", "ss#", "taxpayer", "tin")

// ssnSamples are numbers published as examples, never issued.
var ssnSamples = map[string]bool{"078051120": true, "219099999": true, "123456789": true, "111111111": true, "457555462": true}

// ssns: US social security numbers whose area is 001 to 899 but 666,
// whose group is not 00 and serial not 0000, and that are no published
// sample; written bare, only with a context word within 40 bytes before.
func ssns(_ *Scanner, text string) []Finding {
	var out []Finding
	for _, m := range ssnCandidate.FindAllStringSubmatchIndex(text, -1) {
		start, end := m[0], m[1]
		sep1, sep2 := text[m[2]:m[3]], text[m[4]:m[5]]
		if sep1 != sep2 || !isolated(text, start, end) || inIdentifier(text, start) || identifierGoesOn(text, end) {
			continue
		}
		d := digitsOf(text[start:end])
		area, group, serial := d[:3], d[3:5], d[5:]
		if area == "000" || area == "666" || area >= "900" || group == "00" || serial == "0000" || ssnSamples[d] {
			continue
		}
		conf := 0.85
		if sep1 == "" {
			if !contextBefore(text, start, 40, ssnContext) {
				continue
			}
			conf = 0.7
		}
		out = append(out, Finding{Type: SSN, Start: start, End: end, Confidence: conf})
	}
	return out
}

// ibanCandidate is a country code, two check digits and the account, in
// groups of four (spaces or dashes) or not, in either case.
var ibanCandidate = regexp.MustCompile(`(?i)[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,4})?`)

// ibanLength is each country's IBAN length (the ECBS registry).
var ibanLength = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28, "CH": 21,
	"CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
	"GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
	"IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
	"ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
	"RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
	"TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

// ibans: IBANs of their country's length whose check digits hold
// (mod 97 is 1). A candidate longer than its country's IBAN is cut to it,
// and the search goes on after the cut (two IBANs in a row).
func ibans(_ *Scanner, text string) []Finding {
	var out []Finding
	for from := 0; from < len(text); {
		m := ibanCandidate.FindStringIndex(text[from:])
		if m == nil {
			break
		}
		start, end := from+m[0], from+m[1]
		from = end
		want, ok := ibanLength[strings.ToUpper(text[start:start+2])]
		if !ok {
			from = start + 1
			continue
		}
		n := 0
		cut := start
		for ; cut < end && n < want; cut++ {
			if c := text[cut]; c != ' ' && c != '-' {
				n++
			}
		}
		if n < want {
			continue
		}
		compact := strings.ToUpper(withoutSeparators.Replace(text[start:cut]))
		if !isolated(text, start, cut) && !(cut < end) || !isolatedBefore(text, start) || !mod97(compact) {
			from = start + 1
			continue
		}
		out = append(out, Finding{Type: IBAN, Start: start, End: cut, Confidence: 0.97})
		from = cut
	}
	return out
}

// mod97 says whether iban's check digits hold: the number of its
// rearranged letters and digits is 1 modulo 97.
func mod97(iban string) bool {
	var b strings.Builder
	for _, c := range iban[4:] + iban[:4] {
		switch {
		case c >= '0' && c <= '9':
			b.WriteRune(c)
		case c >= 'A' && c <= 'Z':
			b.WriteString(big.NewInt(int64(c - 'A' + 10)).String())
		default:
			return false
		}
	}
	n, ok := new(big.Int).SetString(b.String(), 10)
	return ok && new(big.Int).Mod(n, big.NewInt(97)).Int64() == 1
}

// emailCandidate is a local part, @ and a domain with a TLD of letters.
var emailCandidate = regexp.MustCompile(`[\pL\pN._%+'!#$&*/=?^{|}~\-]+@[\pL\pN](?:[\pL\pN\-]*[\pL\pN])?(?:\.[\pL\pN](?:[\pL\pN\-]*[\pL\pN])?)*\.(?:[\pL]{2,24}|xn--[a-zA-Z0-9\-]{2,59})`)

// emails: addresses that parse (RFC 5322) as themselves, whose local part
// neither starts nor ends with a dot nor holds two in a row.
func emails(_ *Scanner, text string) []Finding {
	if strings.IndexByte(text, '@') < 0 {
		return nil
	}
	var out []Finding
	for _, m := range emailCandidate.FindAllStringIndex(text, -1) {
		start, end := m[0], m[1]
		for start < end && text[start] == '.' {
			start++
		}
		s := text[start:end]
		local := s[:strings.IndexByte(s, '@')]
		if local == "" || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
			continue
		}
		a, err := mail.ParseAddress(s)
		if err != nil || a.Address != s {
			continue
		}
		if end < len(text) && (isWord(text[end]) || text[end] == '@') || start > 0 && text[start-1] == '@' {
			continue
		}
		out = append(out, Finding{Type: Email, Start: start, End: end, Confidence: 0.95})
	}
	return out
}

// ipv4Candidate is four dotted numbers; ipv6Candidate hex groups and
// colons (an embedded IPv4 tail too).
var (
	ipv4Candidate = regexp.MustCompile(`\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}`)
	ipv6Candidate = regexp.MustCompile(`(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]{0,4})`)
	versionBefore = regexp.MustCompile(`(?i)(?:\bv|version|ver\.?|release|build|oid|section|sect\.?|§|clause|chapter|rule|step|article|art\.)\s*$`)
	// portOrPrefix is what may follow an address: :port, /prefix.
	portOrPrefix = regexp.MustCompile(`^(?::\d{1,5}|/\d{1,3})`)
)

// ips: IPv4 addresses that parse and are no version number or piece of
// a longer dotted run; IPv6 addresses that parse, with at least two
// groups.
func ips(_ *Scanner, text string) []Finding {
	var out []Finding
	for _, m := range ipv4Candidates(text) {
		start, end := m[0], m[1]
		after := end + len(portOrPrefix.FindString(text[end:]))
		if !isolatedBefore(text, start) || !isolatedAfter(text, after) || versionBefore.MatchString(text[max(0, start-10):start]) {
			continue
		}
		a, err := netip.ParseAddr(text[start:end])
		if err != nil || !a.Is4() {
			continue
		}
		out = append(out, Finding{Type: IP, Start: start, End: end, Confidence: 0.85})
	}
	if strings.Count(text, ":") < 2 {
		return out
	}
	for _, m := range ipv6Candidate.FindAllStringIndex(text, -1) {
		start, end := m[0], m[1]
		s := text[start:end]
		if strings.Count(s, ":") < 2 || !strings.ContainsAny(s, "0123456789") || !isolatedHex(text, start, end) {
			// a::b in C++ is no address.
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is6() || s == "::" {
			continue
		}
		out = append(out, Finding{Type: IP, Start: start, End: end, Confidence: 0.85})
	}
	return out
}

// isolatedHex: as isolated, for a run that may itself end in a colon's
// neighbours.
func isolatedHex(text string, start, end int) bool {
	if start > 0 && (isWord(text[start-1]) || text[start-1] == ':') {
		return false
	}
	if end < len(text) && (isWord(text[end]) || text[end] == ':') {
		return false
	}
	return true
}

// ipv4Candidates are ipv4Candidate's matches, the regular expression run
// only where a digit, a dot and a digit stand together (prose has dots
// and digits, seldom so).
func ipv4Candidates(text string) [][]int {
	return runsOf(text, func(c byte) bool { return isDigit(c) || c == '.' }, func(run string) bool { return strings.Count(run, ".") >= 3 },
		func(run string) [][]int { return ipv4Candidate.FindAllStringIndex(run, -1) })
}
