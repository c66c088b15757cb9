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
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/custos-dev/custos/internal/audit"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// writeStore writes a closed segment store of n events signed with the
// private key in keyDir.
func writeStore(t *testing.T, keyDir string, n int) string {
	t.Helper()
	return trail(t, keyDir, audit.StoreOptions{SegmentSize: 8192}, func(l *audit.Log) {
		for i := range n {
			l.Record(context.Background(), audit.Event{Action: audit.ActionAgentOnboarded, Decision: audit.DecisionAllow,
				Subject: audit.Subject{Kind: "Agent", Namespace: "finance-agents", Name: "invoice-reconciler", Tenant: "acme-finance"},
				Details: map[string]string{"i": strings.Repeat("x", i%7)}})
		}
	})
}

func TestVerifyCommand(t *testing.T) {
	g := NewWithT(t)
	keys := t.TempDir()
	code, out, _ := runCmd("keygen", "--out-dir", keys)
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(ContainSubstring("audit-private.pem"))
	g.Expect(out).To(ContainSubstring("--from-file=private.pem="))
	st, err := os.Stat(filepath.Join(keys, "audit-private.pem"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st.Mode().Perm()).To(Equal(os.FileMode(0o600)))
	code, _, errOut := runCmd("keygen", "--out-dir", keys)
	g.Expect(code).To(Equal(3), "keygen never overwrites a key")
	g.Expect(errOut).To(ContainSubstring("file exists"))

	dir := writeStore(t, keys, 200)
	pub := filepath.Join(keys, "audit-public.pem")

	code, out, errOut = runCmd("verify", "--key", pub, dir)
	g.Expect(errOut).To(BeEmpty())
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(MatchRegexp(`^ok: 221 records, 21 checkpoints, head sha256:[0-9a-f]{64} \(seq 0 to 220, 200 events, \d+ files, closed by a final checkpoint\)\n$`))

	// Flags after the path work too.
	code, _, _ = runCmd("verify", dir, "--key", pub)
	g.Expect(code).To(Equal(0))
	code, out, _ = runCmd("verify", "--no-signatures", dir)
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(ContainSubstring("signatures NOT checked"))

	// A record altered in the third segment.
	seg := filepath.Join(dir, audit.SegmentName(3))
	data, err := os.ReadFile(seg)
	g.Expect(err).NotTo(HaveOccurred())
	lines := strings.SplitAfter(string(data), "\n")
	seq := regexp.MustCompile(`"seq":(\d+)`).FindStringSubmatch(lines[4])[1]
	lines[4] = strings.Replace(lines[4], `"decision":"allow"`, `"decision":"deny"`, 1)
	g.Expect(os.Chmod(seg, 0o640)).To(Succeed())
	g.Expect(os.WriteFile(seg, []byte(strings.Join(lines, "")), 0o640)).To(Succeed())
	code, out, errOut = runCmd("verify", "--key", pub, dir)
	g.Expect(code).To(Equal(1))
	g.Expect(out).To(BeEmpty())
	g.Expect(errOut).To(MatchRegexp(`^segment-000003\.jsonl:5: record seq %s: hash mismatch: the record says sha256:[0-9a-f]{12}…, its content hashes to sha256:[0-9a-f]{12}… \(record altered\)\n$`, seq))

	// Another key: every checkpoint looks replaced.
	other := t.TempDir()
	runCmd("keygen", "--out-dir", other)
	dir2 := writeStore(t, keys, 15)
	code, _, errOut = runCmd("verify", "--key", filepath.Join(other, "audit-public.pem"), dir2)
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(MatchRegexp(`^segment-000001\.jsonl:11: record seq 10: the checkpoint is signed by key [0-9a-f]{16}, not by the verifying key [0-9a-f]{16} \(signing key replaced\)\n$`))
}

func TestProveCommand(t *testing.T) {
	g := NewWithT(t)
	keys := t.TempDir()
	runCmd("keygen", "--out-dir", keys)
	dir := writeStore(t, keys, 30)
	pub := filepath.Join(keys, "audit-public.pem")
	code, out, errOut := runCmd("prove", "--key", pub, "--seq", "7", dir)
	g.Expect(errOut).To(BeEmpty())
	g.Expect(code).To(Equal(0))
	var res struct {
		Record        string               `json:"record"`
		At            string               `json:"at"`
		CheckpointSeq uint64               `json:"checkpointSeq"`
		Proof         audit.InclusionProof `json:"proof"`
	}
	g.Expect(json.Unmarshal([]byte(out), &res)).To(Succeed())
	g.Expect(res.At).To(Equal("segment-000001.jsonl:8"))
	g.Expect(res.CheckpointSeq).To(Equal(uint64(33)), "the last checkpoint, the final one")
	g.Expect(res.Proof.Index).To(Equal(uint64(7)))
	g.Expect(res.Proof.Verify(res.Proof.Root)).To(Succeed())

	code, _, errOut = runCmd("prove", "--key", pub, "--seq", "99", dir)
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring("no record with seq 99"))
}

func TestUsage(t *testing.T) {
	g := NewWithT(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "usage:"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"verify", "x"}, "--key is required (or --no-signatures"},
		{[]string{"verify", "--no-signatures"}, "want one DIR or FILE, got 0"},
		{[]string{"verify", "--no-signatures", "a", "b"}, "want one DIR or FILE, got 2"},
		{[]string{"prove", "--no-signatures", "--seq", "x", "a"}, `--seq "x" is not a record number`},
	} {
		code, _, errOut := runCmd(tt.args...)
		g.Expect(code).To(Equal(2), "%v", tt.args)
		g.Expect(errOut).To(ContainSubstring(tt.want))
	}
	code, _, errOut := runCmd("verify", "--no-signatures", filepath.Join(t.TempDir(), "missing"))
	g.Expect(code).To(Equal(3))
	g.Expect(errOut).To(ContainSubstring("no such file or directory"))
}

// trail writes a closed segment store, signed with the private key in
// keyDir, of the events write records (which may use the log's sequence
// numbers).
func trail(t *testing.T, keyDir string, opts audit.StoreOptions, write func(l *audit.Log)) string {
	t.Helper()
	g := NewWithT(t)
	privPEM, err := os.ReadFile(filepath.Join(keyDir, "audit-private.pem"))
	g.Expect(err).NotTo(HaveOccurred())
	key, err := audit.ParsePrivateKeyPEM(privPEM, nil)
	g.Expect(err).NotTo(HaveOccurred())
	signer, err := audit.NewSigner(key)
	g.Expect(err).NotTo(HaveOccurred())
	dir := filepath.Join(t.TempDir(), "audit")
	store, err := audit.OpenSegmentStore(dir, opts)
	g.Expect(err).NotTo(HaveOccurred())
	l, err := audit.New(audit.Options{Sinks: []audit.Sink{store}, Signer: signer, CheckpointEvery: 10, BufferDir: t.TempDir(), Logger: logr.Discard()})
	g.Expect(err).NotTo(HaveOccurred())
	write(l)
	g.Expect(l.Close()).To(Succeed())
	return dir
}

// custos-audit freezes recomputes each freeze from the trails alone: a cap
// freeze from the gateway's cap.exceeded record it cites, a person's as
// theirs; one whose evidence does not bear it out fails.
func TestFreezesCommand(t *testing.T) {
	g := NewWithT(t)
	keys := t.TempDir()
	code, _, _ := runCmd("keygen", "--out-dir", keys)
	g.Expect(code).To(Equal(0))
	agent := audit.Subject{Kind: "Agent", Namespace: "finance-agents", Name: "invoice-reconciler", Tenant: "acme-finance"}
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	var capSeq, calledSeq uint64
	gateway := trail(t, keys, audit.StoreOptions{}, func(l *audit.Log) {
		calledSeq, _ = l.RecordSeq(context.Background(), audit.Event{Action: audit.ActionToolCalled, Decision: audit.DecisionAllow, Subject: agent, TraceID: "0af7651916cd43dd8448eb211c80319c"})
		capSeq, _ = l.RecordSeq(context.Background(), audit.Event{Action: audit.ActionCapExceeded, Decision: audit.DecisionDeny, Subject: agent, TraceID: trace,
			Details: map[string]string{"tool": "ledger.search", "signal": "records", "window": "day", "limit": "10000", "observed": "10040"}})
	})
	frozen := func(name, trigger string, details map[string]string) audit.Event {
		d := map[string]string{"freeze": name, "trigger": trigger, "frozenBy": "system:serviceaccount:custos-system:custos-gateway"}
		for k, v := range details {
			d[k] = v
		}
		return audit.Event{Action: audit.ActionAgentFrozen, Decision: audit.DecisionDeny, Subject: agent, Details: d}
	}
	cap := map[string]string{"evidence.auditLogID": "custos-gateway/gw-0", "evidence.sequences": strconv.FormatUint(capSeq, 10),
		"evidence.traceIDs": trace, "limit": "10000", "observed": "10040", "signal": "records"}
	manager := trail(t, keys, audit.StoreOptions{}, func(l *audit.Log) {
		l.Record(context.Background(), frozen("invoice-reconciler-cap-x1", "Cap", cap))
		l.Record(context.Background(), frozen("invoice-reconciler-7xk2q", "Manual", map[string]string{"frozenBy": "olga"}))
		tripped, _ := l.RecordSeq(context.Background(), audit.Event{Action: audit.ActionBreakerTripped, Decision: audit.DecisionDeny, Subject: agent,
			Reason:  "records per call: 135 this tick (15s), against a baseline of 19.9: Trend evidence 8.8",
			Details: map[string]string{"trigger": "Trend", "signal": "records per call", "observed": "135.00", "baseline": "19.90"}})
		l.Record(context.Background(), frozen("invoice-reconciler-trend-k2", "Trend", map[string]string{"frozenBy": "system:serviceaccount:custos-system:custos-manager",
			"evidence.auditLogID": "custos-manager/m-0", "evidence.sequences": strconv.FormatUint(tripped, 10), "signal": "records"}))
	})
	code, out, errOut := runCmd("freezes", "--key", filepath.Join(keys, "audit-public.pem"), "--trail", "custos-gateway/gw-0="+gateway, manager)
	g.Expect(code).To(Equal(0), "%s%s", out, errOut)
	g.Expect(out).To(ContainSubstring("ok   finance-agents/invoice-reconciler frozen by invoice-reconciler-cap-x1 (Cap, record "))
	g.Expect(out).To(ContainSubstring("10040 records per day over the cap of 10000 (custos-gateway/gw-0 record " + strconv.FormatUint(capSeq, 10) + ", tool ledger.search, trace " + trace + ")"))
	g.Expect(out).To(ContainSubstring("frozen by invoice-reconciler-7xk2q (Manual, record 1): by a person (olga): nothing to recompute"))
	g.Expect(out).To(ContainSubstring("frozen by invoice-reconciler-trend-k2 (Trend, record 3): records per call: records per call: 135 this tick (15s), against a baseline of 19.9: Trend evidence 8.8 (custos-manager/m-0 record 2)"))
	g.Expect(out).To(ContainSubstring("3 freezes on the trail"))

	// Evidence that does not bear the freeze out: a record that is no
	// crossing, numbers that differ, a trail not given.
	forged := trail(t, keys, audit.StoreOptions{}, func(l *audit.Log) {
		c := map[string]string{}
		for k, v := range cap {
			c[k] = v
		}
		c["evidence.sequences"] = strconv.FormatUint(calledSeq, 10)
		l.Record(context.Background(), frozen("cites-a-call", "Cap", c))
		c = map[string]string{}
		for k, v := range cap {
			c[k] = v
		}
		c["observed"] = "20000"
		l.Record(context.Background(), frozen("inflated", "Cap", c))
		c["evidence.auditLogID"], c["observed"] = "custos-gateway/gw-9", "10040"
		l.Record(context.Background(), frozen("elsewhere", "Cap", c))
		c["evidence.auditLogID"], c["signal"] = "custos-gateway/gw-0", "bytes"
		l.Record(context.Background(), frozen("other-signal", "Cap", c))
	})
	code, out, _ = runCmd("freezes", "--key", filepath.Join(keys, "audit-public.pem"), "--trail", "custos-gateway/gw-0="+gateway, forged)
	g.Expect(code).To(Equal(1), out)
	g.Expect(out).To(ContainSubstring("FAIL finance-agents/invoice-reconciler frozen by cites-a-call (Cap, record 0): cites record " + strconv.FormatUint(calledSeq, 10) + " of custos-gateway/gw-0, a tool.called, not a cap.exceeded"))
	g.Expect(out).To(ContainSubstring("frozen by inflated (Cap, record 1): record " + strconv.FormatUint(capSeq, 10) + " of custos-gateway/gw-0 says 10040 of 10000, the freeze 20000 of 10000"))
	g.Expect(out).To(ContainSubstring("frozen by elsewhere (Cap, record 2): cites record " + strconv.FormatUint(capSeq, 10) + " of trail custos-gateway/gw-9, which is not in the trails given"))
	g.Expect(out).To(ContainSubstring("frozen by other-signal (Cap, record 3): record " + strconv.FormatUint(capSeq, 10) + " of custos-gateway/gw-0 is of records, the freeze of bytes"))
	code, _, errOut = runCmd("freezes", "--key", filepath.Join(keys, "audit-public.pem"), "--trail", "custos-gateway/gw-0="+gateway, "--trail", "custos-gateway/gw-0="+gateway, forged)
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(ContainSubstring("log ID custos-gateway/gw-0 given twice"))

	// A breaker record whose own numbers do not trip: evidence short of
	// the h it was watched at, a window not above its ratio.
	weak := trail(t, keys, audit.StoreOptions{}, func(l *audit.Log) {
		trend, _ := l.RecordSeq(context.Background(), audit.Event{Action: audit.ActionBreakerTripped, Decision: audit.DecisionDeny, Subject: agent,
			Details: map[string]string{"trigger": "Trend", "signal": "records", "evidence": "5.10", "h": "8.00"}})
		ratio, _ := l.RecordSeq(context.Background(), audit.Event{Action: audit.ActionBreakerTripped, Decision: audit.DecisionDeny, Subject: agent,
			Details: map[string]string{"trigger": "Ratio", "signal": "records", "observed": "400.00", "baseline": "100.00", "ratio": "5"}})
		for name, seq := range map[string]uint64{"weak-trend": trend, "weak-ratio": ratio} {
			trigger := "Trend"
			if name == "weak-ratio" {
				trigger = "Ratio"
			}
			l.Record(context.Background(), frozen(name, trigger, map[string]string{"evidence.auditLogID": "custos-manager/m-0",
				"evidence.sequences": strconv.FormatUint(seq, 10), "signal": "records"}))
		}
	})
	code, out, _ = runCmd("freezes", "--key", filepath.Join(keys, "audit-public.pem"), weak)
	g.Expect(code).To(Equal(1), out)
	g.Expect(out).To(ContainSubstring("frozen by weak-trend (Trend, record "))
	g.Expect(out).To(ContainSubstring("says evidence 5.10, short of the 8.00 that trips the breaker"))
	g.Expect(out).To(ContainSubstring("says 400.00 records against a baseline of 100.00: not above 5 times"))
}
