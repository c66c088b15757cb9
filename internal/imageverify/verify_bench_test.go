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

package imageverify

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkVerify measures what verifying an agent's image costs: cold
// (every call resolves and verifies: what a new digest or policy costs),
// cached by digest (what a reconcile of a verified agent pinned by digest
// costs) and cached by tag (a scheduled re-check of a tag: one HEAD to
// resolve it). It reports registry requests per verification, and prints
// the cold/cached ratios. Run it with make bench-image.
func BenchmarkVerify(b *testing.B) {
	reg := newTestRegistry(b)
	d := reg.push(b, "agents/bench:1")
	signer, pub := newSigner(b)
	reg.sign(b, d, signer)
	policy := Policy{Keys: [][]byte{pub}}
	ctx := context.Background()
	tag := reg.host + "/agents/bench:1"

	perOp := map[string]float64{}
	run := func(name, image string, v *Verifier) {
		b.Run(name, func(b *testing.B) {
			if _, err := v.Verify(ctx, image, policy, reg.kc); err != nil { // warm the cache, if any
				b.Fatal(err)
			}
			before := reg.Requests()
			b.ResetTimer()
			for range b.N {
				if _, err := v.Verify(ctx, image, policy, reg.kc); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(reg.Requests()-before)/float64(b.N), "requests/op")
			perOp[name] = float64(b.Elapsed()) / float64(b.N)
		})
	}
	run("cold", d.String(), &Verifier{TTL: -1})
	run("cached-digest", d.String(), &Verifier{TTL: time.Hour})
	run("cached-tag", tag, &Verifier{TTL: time.Hour})
	if perOp["cached-digest"] > 0 && perOp["cached-tag"] > 0 {
		fmt.Printf("verification cold %v, cached by digest %v (%.0fx cheaper), cached by tag %v (%.1fx cheaper)\n",
			time.Duration(perOp["cold"]).Round(time.Microsecond), time.Duration(perOp["cached-digest"]).Round(10*time.Nanosecond),
			perOp["cold"]/perOp["cached-digest"], time.Duration(perOp["cached-tag"]).Round(time.Microsecond), perOp["cold"]/perOp["cached-tag"])
	}
}
