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
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// lookalike is a generator of values that are not personal data but
// look like it, and whether its values are Luhn-valid digit runs.
type lookalike struct {
	name string
	make func(r *rand.Rand) string
	luhn bool
}

var lookalikes = []lookalike{
	{"uuid", func(r *rand.Rand) string {
		return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<16), r.IntN(1<<16), r.Uint64()&(1<<48-1))
	}, false},
	{"sha256", func(r *rand.Rand) string {
		return fmt.Sprintf("sha256:%016x%016x%016x%016x", r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64())
	}, false},
	{"git commit", func(r *rand.Rand) string { return fmt.Sprintf("%016x%016x%08x", r.Uint64(), r.Uint64(), r.Uint32()) }, false},
	{"resourceVersion", func(r *rand.Rand) string { return digits(r, 6+r.IntN(4)) }, false},
	{"timestamp", func(r *rand.Rand) string {
		return time.Date(2020+r.IntN(7), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), 0, time.UTC).Format(time.RFC3339)
	}, false},
	{"unix millis", func(r *rand.Rand) string { return fmt.Sprint(1_700_000_000_000 + r.Int64N(100_000_000_000)) }, false},
	{"order number", func(r *rand.Rand) string { return fmt.Sprintf("ORD-%d-%06d", 2020+r.IntN(7), r.IntN(1_000_000)) }, false},
	{"invoice number", func(r *rand.Rand) string { return "INV-" + digits(r, 6+r.IntN(6)) }, false},
	{"tracking number", func(r *rand.Rand) string {
		if r.IntN(2) == 0 {
			return "1Z" + strings.ToUpper(fmt.Sprintf("%016x", r.Uint64()))
		}
		return digits(r, 12+r.IntN(11))
	}, false},
	{"grouped parcel number", func(r *rand.Rand) string {
		d := "9400" + digits(r, 18)
		return d[:4] + " " + d[4:8] + " " + d[8:12] + " " + d[12:16] + " " + d[16:20] + " " + d[20:]
	}, false},
	{"section number", func(r *rand.Rand) string {
		return fmt.Sprintf("section %d.%d.%d.%d", 1+r.IntN(20), r.IntN(20), r.IntN(20), r.IntN(20))
	}, false},
	{"IMEI", func(r *rand.Rand) string { return withLuhn(r, []string{"35", "86", "01", "99"}[r.IntN(4)], 15) }, true},
	{"ISBN-13", func(r *rand.Rand) string {
		d := "978" + digits(r, 9)
		sum := 0
		for i, c := range d {
			w := 1
			if i%2 == 1 {
				w = 3
			}
			sum += int(c-'0') * w
		}
		return fmt.Sprintf("%s-%d", d, (10-sum%10)%10)
	}, false},
	{"amount", func(r *rand.Rand) string {
		return fmt.Sprintf("%d,%03d.%02d", 1+r.IntN(999), r.IntN(1000), r.IntN(100))
	}, false},
	{"version", func(r *rand.Rand) string { return fmt.Sprintf("v%d.%d.%d", r.IntN(20), r.IntN(50), r.IntN(100)) }, false},
	{"dotted version", func(r *rand.Rand) string {
		return fmt.Sprintf("version %d.%d.%d.%d", r.IntN(20), r.IntN(50), r.IntN(100), r.IntN(1000))
	}, false},
	{"OID", func(r *rand.Rand) string { return fmt.Sprintf("1.3.6.1.4.1.%d.%d", r.IntN(60000), r.IntN(100)) }, false},
	{"MAC address", func(r *rand.Rand) string {
		return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", r.IntN(256), r.IntN(256), r.IntN(256), r.IntN(256), r.IntN(256), r.IntN(256))
	}, false},
	{"time of day", func(r *rand.Rand) string { return fmt.Sprintf("%02d:%02d:%02d", r.IntN(24), r.IntN(60), r.IntN(60)) }, false},
	{"account number", func(r *rand.Rand) string { return "ACCT-" + digits(r, 10) }, false},
	{"date", func(r *rand.Rand) string {
		return fmt.Sprintf("%02d.%02d.%d", 1+r.IntN(28), 1+r.IntN(12), 2000+r.IntN(30))
	}, false},
	{"Luhn-valid run outside card ranges", func(r *rand.Rand) string {
		return withLuhn(r, []string{"1", "7", "8", "9", "0"}[r.IntN(5)], 13+r.IntN(7))
	}, true},
	{"Luhn-valid run in a card's range, in an identifier", func(r *rand.Rand) string { return "txn_" + withLuhn(r, "4", 16) }, true},
}

var lookalikeSentences = []string{"Resource {} was updated.", "id={}", `{"id":"{}","status":"ok"}`, "Reference: {}", "Processed {} at noon."}

// TestLookalikes: 138,000 generated values that look like personal data
// and are not (identifiers, digests, timestamps, order, invoice and
// tracking numbers, IMEIs, ISBNs, amounts, versions, Luhn-valid runs
// outside card ranges) in sentences: at most 1 finding per 10,000; the
// Luhn-valid ones counted apart.
func TestLookalikes(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	s := &Scanner{PhoneRegions: corpusRegions}
	const each = 6000
	var total, found, luhnTotal, luhnFound int
	for _, l := range lookalikes {
		n := 0
		for range each {
			v := l.make(r)
			tpl := lookalikeSentences[r.IntN(len(lookalikeSentences))]
			text := strings.Replace(tpl, "{}", v, 1)
			fs := s.Scan(text)
			// A digit run that passes Luhn is counted with the Luhn-valid
			// ones, whatever made it: in a card's range it is a card's
			// number as far as anyone can tell.
			luhnValid := l.luhn
			if d := digitsOf(v); len(d) >= 12 && len(d) <= 19 && luhn(d) {
				luhnValid = true
			}
			if luhnValid {
				luhnTotal++
			} else {
				total++
			}
			if len(fs) > 0 {
				n++
				if luhnValid {
					luhnFound++
				} else {
					found++
				}
				if n <= 3 {
					t.Logf("%s: %s %q in %q", l.name, fs[0].Type, text[fs[0].Start:fs[0].End], text)
				}
			}
		}
		t.Logf("%-52s %5d of %d", l.name, n, each)
	}
	t.Logf("look-alikes: %d findings in %d (%.2f per 10,000); Luhn-valid: %d in %d", found, total, float64(found)*10000/float64(total), luhnFound, luhnTotal)
	if float64(found)*10000/float64(total) > 1 {
		t.Errorf("%d findings in %d look-alikes: more than 1 per 10,000", found, total)
	}
}
