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
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
)

// TestEvaluateReport: bench-evaluate's verdict counts a Finding missing,
// one citing a record twice or skipping one, one without its opening on
// the trail or with two, and times each hit from its last record written
// to its first sight.
func TestEvaluateReport(t *testing.T) {
	g := NewWithT(t)
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var records []audit.Record
	add := func(agent, action, policy string, details map[string]string) {
		records = append(records, audit.Record{Seq: uint64(len(records)), Type: audit.TypeEvent, Time: at.Add(time.Duration(len(records)) * time.Second),
			Action: action, Policy: policy, Details: details,
			Subject: &audit.Subject{Kind: "Agent", Namespace: benchNamespace, Name: agent}})
	}
	low := map[string]string{"tool": "pay", "access": "Write", "irreversible": "true", "decisionDigest": "d", "decision.confidence": "0.1"}
	add("a", audit.ActionToolCalled, "", low)
	add("b", audit.ActionToolCalled, "", low)
	for range 5 {
		add("a", audit.ActionToolRefused, "UnknownTool", map[string]string{"tool": "x"})
	}
	want := expectedFindings(records)
	g.Expect(want).To(HaveLen(3))
	g.Expect(want["a-probing-20261207"].seqs).To(HaveLen(5))
	g.Expect(want["a-probing-20261207"].lasts).To(Equal([]uint64{6}))

	finding := func(name string, count int32) custosv1alpha1.Finding {
		return custosv1alpha1.Finding{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: custosv1alpha1.FindingStatus{RecordCount: count}}
	}
	written := map[uint64]time.Time{0: at, 1: at, 6: at}
	seen := map[string]map[int64]time.Time{
		"a-low-confidence-20261207": {0: at.Add(2 * time.Second)},
		"a-probing-20261207":        {6: at.Add(30 * time.Second)},
	}
	r := compareFindings(want, []custosv1alpha1.Finding{finding("a-low-confidence-20261207", 2), finding("a-probing-20261207", 4), finding("c-probing-20261207", 1)},
		map[string]int{"a-low-confidence-20261207": 2}, written, seen)
	g.Expect(r.missing).To(Equal(1), "b's")
	g.Expect(r.extra).To(Equal(1), "c's")
	g.Expect(r.doubled).To(Equal(1))
	g.Expect(r.short).To(Equal(1))
	g.Expect(r.unopened).To(Equal(1))
	g.Expect(r.openedTwice).To(Equal(1))
	g.Expect(r.latencies).To(ConsistOf(2*time.Second, 30*time.Second))
}
