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
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestFindingsAndReview: kubectl custos findings lists the open Findings,
// the most severe first, and the closed ones with --closed; review shows
// one (its evidence and reviews) and makes a FindingReview with the
// verdict and reason and nothing of who reviewed, and refuses a verdict it
// does not know before anything is sent.
func TestFindingsAndReview(t *testing.T) {
	ctx := context.Background()
	cp, err := controlplane.Start(ctx, controlplane.Options{RepoRoot: "../.."})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Stop() }()
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(scheme))
	c, err := client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := fixtures.CreateTenantNamespace(t, c, fixtures.UniqueTenant("finance"))
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := controlplane.WriteKubeconfig(kubeconfig, cp.Config); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--kubeconfig", kubeconfig, "-n", ns}
	run1 := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(append(args, flags...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	code, out, _ := run1("findings")
	if code != exitOK || out != "No open Findings in namespace "+ns+".\n" {
		t.Errorf("findings of an empty namespace: exit %d, %q", code, out)
	}

	day := metav1.NewTime(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	opened := metav1.NewTime(time.Now().Add(-90 * time.Minute))
	mk := func(name, rubric string, sev custosv1alpha1.FindingSeverity, phase custosv1alpha1.FindingPhase, summary string) {
		f := fixtures.Create(t, c, &custosv1alpha1.Finding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: custosv1alpha1.FindingSpec{Agent: "payer", Rubric: rubric, WindowStart: day}})
		f.Status = custosv1alpha1.FindingStatus{Phase: phase, Severity: sev, Score: 80, Hits: 2, RecordCount: 3, Summary: summary, OpenedAt: &opened,
			Evidence: []custosv1alpha1.FindingEvidence{{AuditLogID: "custos-gateway/gw-0", Sequences: []int64{41, 97}, TraceIDs: []string{"4bf92f3577b34da6a3ce929d0e0e4736"}}}}
		if phase == custosv1alpha1.FindingDismissed {
			f.Status.Reviews = []custosv1alpha1.FindingReviewRecord{{Review: name + "-x", Verdict: phase, Reviewer: custosv1alpha1.Approver{Username: "rita"},
				Reason: "a batch run", At: opened}}
		}
		if err := c.Status().Update(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	mk("payer-probing-20261207", "probing", custosv1alpha1.SeverityMedium, custosv1alpha1.FindingOpen, "5 calls refused within 40s (UnknownTool 5)")
	mk("payer-low-confidence-20261207", "low-confidence", custosv1alpha1.SeverityHigh, custosv1alpha1.FindingAcknowledged,
		"\x1b[2Jirreversible call of pay with a stated confidence of 0.4, below 0.7")
	mk("payer-delegation-at-max-depth-20261207", "delegation-at-max-depth", custosv1alpha1.SeverityLow, custosv1alpha1.FindingDismissed, "deep")
	// Newer, of the same severity, and judged Harmful: before probing.
	opened = metav1.NewTime(time.Now().Add(-10 * time.Minute))
	mk("payer-off-schedule-20261207", "off-schedule", custosv1alpha1.SeverityMedium, custosv1alpha1.FindingOpen, "call of pay at 03:12")
	judged := &custosv1alpha1.Finding{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "payer-off-schedule-20261207"}, judged); err != nil {
		t.Fatal(err)
	}
	judged.Status.Judgement = &custosv1alpha1.FindingJudgement{Verdict: custosv1alpha1.JudgeHarmful, ConfidencePercent: 80, Model: "judge-small",
		PromptDigest: "sha256:" + strings.Repeat("a", 64), RecordCount: 3, At: opened, Rationale: "a payment at night"}
	if err := c.Status().Update(ctx, judged); err != nil {
		t.Fatal(err)
	}

	code, out, _ = run1("findings")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || len(lines) != 4 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.HasPrefix(lines[1], "payer-low-confidence-20261207") || !strings.HasPrefix(lines[2], "payer-off-schedule-20261207") ||
		!strings.HasPrefix(lines[3], "payer-probing-20261207") {
		t.Errorf("findings: exit %d, want the open ones, High first, then the Medium one the judge says is Harmful:\n%s", code, out)
	}
	if !regexp.MustCompile(`payer-off-schedule-20261207 .* Harmful 80% +Open`).MatchString(out) {
		t.Errorf("findings: want the judge's verdict shown:\n%s", out)
	}
	if !strings.Contains(out, `\u001b[2J`) || !strings.Contains(out, "1h30m") {
		t.Errorf("findings: want the summary's escape shown, not run, and how long it waits:\n%s", out)
	}
	code, out, _ = run1("findings", "--closed")
	if code != exitOK || !strings.Contains(out, "payer-delegation-at-max-depth-20261207") || strings.Count(out, "\n") != 5 {
		t.Errorf("findings --closed: exit %d\n%s", code, out)
	}

	reviews := func() []custosv1alpha1.FindingReview {
		var list custosv1alpha1.FindingReviewList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	code, _, stderr := run1("review", "payer-probing-20261207", "--verdict", "maybe", "--reason", "x")
	if code != exitUsage || !strings.Contains(stderr, `--verdict "maybe": want acknowledged, confirmed or dismissed`) || len(reviews()) != 0 {
		t.Errorf("an unknown verdict: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = run1("review", "payer-probing-20261207", "--verdict", "confirmed")
	if code != exitUsage || !strings.Contains(stderr, "--reason is required") {
		t.Errorf("no reason: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = run1("review", "nobody-probing-20261207", "--verdict", "confirmed", "--reason", "x")
	if code != exitFailed || !strings.Contains(stderr, "finding nobody-probing-20261207 not found in namespace "+ns) {
		t.Errorf("a Finding that is not there: exit %d, stderr %q", code, stderr)
	}

	code, out, stderr = run1("review", "payer-probing-20261207", "--verdict", "confirmed", "--reason", "it tried drop-table: key rotated")
	for _, want := range []string{
		"finding " + ns + "/payer-probing-20261207: probing on agent payer, Medium (score 80), Open",
		"  summary: 5 calls refused within 40s (UnknownTool 5)",
		"  evidence: audit log custos-gateway/gw-0, records [41 97], traces 4bf92f3577b34da6a3ce929d0e0e4736",
		"findingreview " + ns + "/payer-probing-20261207-",
		"created: payer-probing-20261207 Confirmed",
	} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("review: exit %d, want %q in stdout\n%s\nstderr %q", code, want, out, stderr)
		}
	}
	got := reviews()
	// No webhook runs here: what is stored is what the client sent.
	if len(got) != 1 || got[0].Spec.Finding != "payer-probing-20261207" || got[0].Spec.Verdict != custosv1alpha1.FindingConfirmed ||
		got[0].Spec.Reason != "it tried drop-table: key rotated" || got[0].Spec.Reviewer.Username != "" {
		t.Errorf("the review: %+v, want a Confirmed one with the reason and no reviewer", got)
	}
	code, out, _ = run1("review", "payer-delegation-at-max-depth-20261207", "--verdict", "confirmed", "--reason", "x")
	if !strings.Contains(out, "  review payer-delegation-at-max-depth-20261207-x: Dismissed by rita") {
		t.Errorf("review shows the reviews so far: exit %d\n%s", code, out)
	}
}
