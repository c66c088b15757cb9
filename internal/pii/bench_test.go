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
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/custos-dev/custos/internal/audit"
)

// benchText is about 1 MiB of tool results as prose: mostly ordinary
// words and identifiers, a value of personal data every few lines.
func benchText() string {
	r := rand.New(rand.NewPCG(3, 5))
	corpus := generate(99)
	var b strings.Builder
	for b.Len() < 1<<20 {
		if r.IntN(4) == 0 {
			b.WriteString(corpus[r.IntN(len(corpus))].Text)
		} else {
			l := lookalikes[r.IntN(len(lookalikes))]
			b.WriteString(strings.Replace(lookalikeSentences[r.IntN(len(lookalikeSentences))], "{}", l.make(r), 1))
		}
		b.WriteString(" The invoice was reconciled against the ledger and the supplier was notified.\n")
	}
	return b.String()
}

// benchStructured is about 1 MiB of JSON results: records with the string
// leaves the gateway scans one by one.
func benchStructured() []string {
	r := rand.New(rand.NewPCG(5, 7))
	corpus := generate(98)
	var leaves []string
	n := 0
	for n < 1<<20 {
		rec := map[string]any{"id": lookalikes[0].make(r), "status": "settled", "amount": "1,204.50",
			"note": corpus[r.IntN(len(corpus))].Text, "reference": lookalikes[r.IntN(len(lookalikes))].make(r)}
		for _, v := range rec {
			s := v.(string)
			leaves = append(leaves, s)
			n += len(s)
		}
	}
	return leaves
}

var sink int

// BenchmarkScanText: the recognizers over prose, in MB/s (b.SetBytes).
func BenchmarkScanText(b *testing.B) {
	text := benchText()
	s := &Scanner{PhoneRegions: []string{"DE", "US", "GB", "FR"}}
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for range b.N {
		sink += len(s.Scan(text))
	}
}

// BenchmarkRedactText: the audit trail's secret redaction over the same
// prose: the baseline BenchmarkScanText is read against.
func BenchmarkRedactText(b *testing.B) {
	text := benchText()
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for range b.N {
		sink += len(audit.RedactValue(text).(string))
	}
}

// BenchmarkScanStructured: the recognizers over the string leaves of JSON
// results, each scanned alone as the gateway will.
func BenchmarkScanStructured(b *testing.B) {
	leaves := benchStructured()
	total := 0
	for _, l := range leaves {
		total += len(l)
	}
	s := &Scanner{PhoneRegions: []string{"DE", "US", "GB", "FR"}}
	b.SetBytes(int64(total))
	b.ResetTimer()
	for range b.N {
		for _, l := range leaves {
			sink += len(s.Scan(l))
		}
	}
}

// BenchmarkDecodeStructured: decoding the same results from JSON, the
// baseline BenchmarkScanStructured is read against (what the gateway pays
// for a result already).
func BenchmarkDecodeStructured(b *testing.B) {
	leaves := benchStructured()
	raw, _ := json.Marshal(leaves)
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for range b.N {
		var v []string
		_ = json.Unmarshal(raw, &v)
		sink += len(v)
	}
}
