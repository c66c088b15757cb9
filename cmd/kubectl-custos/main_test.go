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
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/custos-dev/custos/internal/audit"
)

// trail writes custos-sts's decisions of one delegation into a signed
// segment store, as custos-sts with --audit-sink=file and a signing key
// would, and returns the store and the public key's file.
func trail(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	store := filepath.Join(dir, "audit")
	privPEM, pubPEM, err := audit.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := audit.ParsePrivateKeyPEM(privPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	segments, err := audit.OpenSegmentStore(store, audit.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.New(audit.Options{Sinks: []audit.Sink{segments}, Signer: signer, BufferDir: filepath.Join(dir, "buffer"),
		Registerer: prometheus.NewRegistry(), Logger: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	sts := audit.Actor{Kind: audit.ActorController, Name: "custos-sts"}
	for _, e := range []audit.Event{
		{Action: audit.ActionTokenExchanged, Decision: audit.DecisionAllow, Policy: "delegation", Reason: "exchanged",
			Details: map[string]string{"jti": "hop-1", "parentJTI": "idp-alice", "actor": "agent-invoice", "person": "alice", "target": "agent-payments", "scope": "payments.execute"}},
		{Action: audit.ActionTokenExchanged, Decision: audit.DecisionAllow, Policy: "delegation", Reason: "exchanged",
			Details: map[string]string{"jti": "hop-2", "parentJTI": "hop-1", "actor": "agent-payments", "person": "alice", "target": "bank", "scope": "payments.execute"}},
		{Action: audit.ActionTokenRefused, Decision: audit.DecisionDeny, Policy: "TargetNotAllowed", Reason: "ledger is none of its targets",
			Details: map[string]string{"parentJTI": "hop-1", "actor": "agent-payments", "person": "alice", "target": "ledger"}},
		{Action: audit.ActionAgentOnboarded, Decision: audit.DecisionAllow, Reason: "unrelated"},
	} {
		e.Actor = sts
		log.Record(context.Background(), e)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "audit-public.pem")
	if err := os.WriteFile(pub, pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return store, pub
}

func TestTrace(t *testing.T) {
	store, pub := trail(t)
	var out, errOut bytes.Buffer
	if code := run([]string{"trace", "--key", pub, store, "hop-1"}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	got := out.String()
	for _, want := range []string{"person alice, token idp-alice", "exchanged hop-1: agent-invoice → agent-payments", "◀ hop-1",
		"exchanged hop-2: agent-payments → bank", "refused  agent-payments → ledger: TargetNotAllowed: ledger is none of its targets"} {
		if !strings.Contains(got, want) {
			t.Errorf("the trace lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "unrelated") {
		t.Errorf("the trace holds a record that is no exchange:\n%s", got)
	}

	out.Reset()
	errOut.Reset()
	if code := run([]string{"trace", "--key", pub, store, "nobody"}, &out, &errOut); code != exitFailed || !strings.Contains(errOut.String(), "no exchange") {
		t.Errorf("a token with no exchange: exit %d, %s", code, errOut.String())
	}
	if code := run([]string{"trace", store, "hop-1"}, &out, &errOut); code != exitUsage {
		t.Errorf("no --key and no --no-signatures: exit %d, want %d", code, exitUsage)
	}
}

// TestTraceRefusesATamperedTrail: a trail someone edited is not traced.
func TestTraceRefusesATamperedTrail(t *testing.T) {
	store, pub := trail(t)
	segs, _ := filepath.Glob(filepath.Join(store, "*.jsonl"))
	if len(segs) == 0 {
		t.Fatal("no segment written")
	}
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), `"actor":"agent-invoice"`, `"actor":"agent-crm"`, 1)
	if edited == string(data) {
		t.Fatal("nothing to tamper with")
	}
	if err := os.WriteFile(segs[0], []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"trace", "--key", pub, store, "hop-1"}, &out, &errOut); code != exitFailed ||
		!strings.Contains(errOut.String(), "does not verify") || out.Len() != 0 {
		t.Errorf("a tampered trail: exit %d, stdout %q, stderr %s", code, out.String(), errOut.String())
	}
}
