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

package sts

import (
	"strings"
	"testing"
	"time"

	"github.com/custos-dev/custos/internal/audit"
)

// records are the world's audit events as the trail would keep them, a
// second apart.
func (w *world) records() []audit.Record {
	var out []audit.Record
	for i, e := range w.recorded.events {
		out = append(out, audit.Record{Time: w.now.Add(time.Duration(i) * time.Second), Type: audit.TypeEvent,
			Action: e.Action, Decision: e.Decision, Reason: e.Reason, Policy: e.Policy, Details: e.Details})
	}
	return out
}

// TestTrace rebuilds the delegation tree from the decisions on the record:
// alice's token to invoice, invoice's to payments, payments' to the bank,
// and a refused attempt from the token payments got.
func TestTrace(t *testing.T) {
	w := newWorld(t)
	alice := w.person(t, "alice", "ledger.read payments.execute")
	toPayments := w.hop(t, alice, "pod-invoice", agentID("finance", "payments"), "payments.execute")
	toBank := w.hop(t, toPayments, "pod-payments", bank, "")
	if _, err := w.exchange(toPayments, "pod-payments", ledger, ""); err == nil {
		t.Fatal("payments reached the ledger, which is none of its targets")
	}
	jtiOf := func(tok, aud string) string {
		c, err := w.issuers["acme"].Verify(tok, aud, w.now)
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	hop1, hop2 := jtiOf(toPayments, agentID("finance", "payments")), jtiOf(toBank, bank)
	hops := HopsFrom(w.records())
	at := func(i int) string { return w.now.Add(time.Duration(i) * time.Second).UTC().Format(time.RFC3339) }
	if len(hops) != 3 {
		t.Fatalf("%d hops on the record, want 3", len(hops))
	}

	got, err := Trace(hops, hop2)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	want := []string{
		"person alice, token idp-alice",
		"└─ " + at(0) + " exchanged " + hop1 + ": " + agentID("finance", "invoice") + " → " + agentID("finance", "payments"),
		"   └─ " + at(1) + " exchanged " + hop2 + ": " + agentID("finance", "payments") + " → " + bank,
	}
	if len(lines) != len(want) {
		t.Fatalf("trace of the last hop:\n%s", got)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d:\n got %s\nwant %s…", i, lines[i], want[i])
		}
	}
	if !strings.HasSuffix(lines[2], "◀ "+hop2) {
		t.Errorf("the traced token is not marked: %s", lines[2])
	}

	// From the middle: the ancestors, and below it the bank and the refusal.
	got, err = Trace(hops, hop1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "exchanged "+hop2) || !strings.Contains(got, "refused  "+agentID("finance", "payments")+" → "+ledger+": TargetNotAllowed") {
		t.Errorf("trace of the first hop lacks what came of it:\n%s", got)
	}
	// From the person's token: everything.
	if got, err = Trace(hops, "idp-alice"); err != nil || strings.Count(got, "└─") != 3 {
		t.Errorf("trace of alice's token: %v\n%s", err, got)
	}
	if _, err := Trace(hops, "nobody"); err == nil {
		t.Error("a token nobody exchanged was traced")
	}
}
