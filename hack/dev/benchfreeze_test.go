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

package main

import (
	"bytes"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// bench-freeze's figures: p99 is the nearest rank, so with fewer than 100
// trials it is the slowest, and a probe over its goal says MISSED.
func TestFreezeReport(t *testing.T) {
	g := NewWithT(t)
	ms := func(n ...int) []time.Duration {
		var out []time.Duration
		for _, v := range n {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	g.Expect(percentile(ms(30, 10, 20), 50)).To(Equal(20 * time.Millisecond))
	g.Expect(percentile(ms(30, 10, 20), 99)).To(Equal(30 * time.Millisecond))
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	g.Expect(percentile(ms(hundred...), 99)).To(Equal(99 * time.Millisecond))
	g.Expect(percentile(nil, 99)).To(BeZero())

	fast := trialResult{took: map[string]time.Duration{}}
	for _, p := range freezeProbes() {
		fast.took[p] = 100 * time.Millisecond
	}
	slow := trialResult{took: map[string]time.Duration{}, refusals: map[string]string{probeSTS: "custos-sts refused the exchange: frozen"}}
	for p, d := range fast.took {
		slow.took[p] = d
	}
	slow.took[probeGateways] = 2500 * time.Millisecond
	var out bytes.Buffer
	printFreezeReport(&out, []trialResult{fast, slow}, 2)
	g.Expect(out.String()).To(MatchRegexp(`every gateway replica refuses its calls +100 ms +2500 ms +2500 ms +≤ 2s MISSED`))
	g.Expect(out.String()).To(MatchRegexp(`custos-sts refuses its exchanges +100 ms +100 ms +100 ms +≤ 2s met`))
	g.Expect(out.String()).To(ContainSubstring("with 2 trials, the slowest"))
	g.Expect(out.String()).To(ContainSubstring("custos-sts refuses its exchanges, as seen: custos-sts refused the exchange: frozen"))
}
