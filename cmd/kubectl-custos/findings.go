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
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

const findingsUsage = `usage:
  kubectl custos findings [-n NAMESPACE | -A] [--closed]
  kubectl custos review FINDING [-n NAMESPACE] --verdict acknowledged|confirmed|dismissed --reason TEXT

findings lists the Findings Custos's evaluator opened on the audit trail and
people have not closed (Open, Acknowledged), the most severe and the oldest
first; --closed lists the Confirmed and Dismissed ones too.

review shows the Finding FINDING (what its rubric saw, the audit records and
traces that show it, the reviews so far) and records your review of it, a
FindingReview: acknowledged (you are looking at it; it stays open),
confirmed (it was wrong; closed) or dismissed (it was not; closed). It needs
the verb review on the Finding's Agent (the chart's agent-owner, approver
and risk-owner roles have it); dismissing is refused to the agent's owners,
and reviewing to ServiceAccounts. Who reviewed is what the API server
authenticated, stamped by Custos's admission webhook. --reason is required,
at most 1024 characters.
`

// findingVerdicts are review's --verdict values.
var findingVerdicts = map[string]custosv1alpha1.FindingPhase{
	"acknowledged": custosv1alpha1.FindingAcknowledged,
	"confirmed":    custosv1alpha1.FindingConfirmed,
	"dismissed":    custosv1alpha1.FindingDismissed,
}

// findingsCommand is kubectl custos findings.
func findingsCommand(args []string, stdout, stderr io.Writer) int {
	l := newListing("findings", findingsUsage, "the Findings", stderr)
	closed := l.fs.Bool("closed", false, "List the closed (Confirmed, Dismissed) Findings too.")
	c, namespace, code, ok := l.connect(args, nil)
	if !ok {
		return code
	}
	all := namespace == ""
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var list custosv1alpha1.FindingList
	if err := c.List(ctx, &list, in(namespace)...); err != nil {
		fmt.Fprintf(stderr, "kubectl custos findings: %v\n", err)
		return apiExit(err)
	}
	shown := slices.DeleteFunc(list.Items, func(f custosv1alpha1.Finding) bool {
		return f.Status.Phase == "" || (!*closed && f.Status.Phase.Closed())
	})
	if len(shown) == 0 {
		what := "open Findings"
		if *closed {
			what = "Findings"
		}
		if all {
			fmt.Fprintf(stdout, "No %s.\n", what)
		} else {
			fmt.Fprintf(stdout, "No %s in namespace %s.\n", what, namespace)
		}
		return exitOK
	}
	rank := map[custosv1alpha1.FindingSeverity]int{custosv1alpha1.SeverityHigh: 0, custosv1alpha1.SeverityMedium: 1, custosv1alpha1.SeverityLow: 2}
	slices.SortStableFunc(shown, func(a, b custosv1alpha1.Finding) int {
		return cmp.Or(
			cmp.Compare(boolRank(a.Status.Phase.Closed()), boolRank(b.Status.Phase.Closed())),
			cmp.Compare(rank[a.Status.Severity], rank[b.Status.Severity]),
			// Within a severity, the judge's verdict orders the queue.
			cmp.Compare(judgedRank(&a), judgedRank(&b)),
			openedAt(&a).Compare(openedAt(&b)),
			cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	now := time.Now()
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	header := "NAME\tAGENT\tRUBRIC\tSEVERITY\tSCORE\tHITS\tJUDGED\tPHASE\tWAITING\tSUMMARY"
	if all {
		header = "NAMESPACE\t" + header
	}
	fmt.Fprintln(w, header)
	for _, f := range shown {
		waiting := "-"
		if !f.Status.Phase.Closed() {
			waiting = humanDuration(now.Sub(openedAt(&f)).Round(time.Second))
		}
		judged := "-"
		if j := f.Status.Judgement; j != nil {
			judged = fmt.Sprintf("%s %d%%", j.Verdict, j.ConfidencePercent)
			if j.RecordCount < f.Status.RecordCount {
				judged += " (stale)"
			}
		}
		row := []string{f.Name, f.Spec.Agent, f.Spec.Rubric, string(f.Status.Severity), fmt.Sprint(f.Status.Score), fmt.Sprint(f.Status.Hits),
			judged, string(f.Status.Phase), waiting, truncate(f.Status.Summary, argumentsWidth)}
		if all {
			row = append([]string{f.Namespace}, row...)
		}
		for i := range row {
			row[i] = cell(row[i])
		}
		fmt.Fprintln(w, strings.Join(row, "\t"))
	}
	_ = w.Flush()
	return exitOK
}

// judgedRank orders Findings of one severity by the judge's verdict:
// Harmful, Suspicious, then the rest. A judge only promotes: Benign ranks
// as not judged, and so does a judgement of fewer records than the
// Finding has now (stale).
func judgedRank(f *custosv1alpha1.Finding) int {
	j := f.Status.Judgement
	if j == nil || j.RecordCount < f.Status.RecordCount {
		return 2
	}
	switch j.Verdict {
	case custosv1alpha1.JudgeHarmful:
		return 0
	case custosv1alpha1.JudgeSuspicious:
		return 1
	}
	return 2
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// openedAt is when f was opened (again), or made.
func openedAt(f *custosv1alpha1.Finding) time.Time {
	if f.Status.OpenedAt != nil {
		return f.Status.OpenedAt.Time
	}
	return f.CreationTimestamp.Time
}

// reviewCommand is kubectl custos review.
func reviewCommand(args []string, stdout, stderr io.Writer) int {
	const prefix = "kubectl custos review"
	fs := flag.NewFlagSet(prefix, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, findingsUsage) }
	var cf clientFlags
	cf.add(fs)
	reason := fs.String("reason", "", "Why, for the record (required, at most 1024 characters).")
	verdictFlag := fs.String("verdict", "", "acknowledged, confirmed or dismissed (required).")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	var problems []string
	if len(pos) != 1 {
		problems = append(problems, fmt.Sprintf("want one FINDING, got %d arguments", len(pos)))
	}
	if p := reasonProblem(*reason, "the payment was approved by finance, ticket FIN-2231"); p != "" {
		problems = append(problems, p)
	}
	verdict, ok := findingVerdicts[*verdictFlag]
	if !ok {
		problems = append(problems, fmt.Sprintf("--verdict %q: want acknowledged, confirmed or dismissed", *verdictFlag))
	}
	if p := cf.check(); p != "" {
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "%s: %s\n%s", prefix, strings.Join(problems, "; "), findingsUsage)
		return exitUsage
	}
	name := pos[0]
	c, namespace, err := cf.client()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prefix, err)
		return exitTrouble
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := &custosv1alpha1.Finding{}
	if code, ok := getNamed(ctx, c, f, "finding", namespace, name, prefix, stderr); !ok {
		return code
	}
	describeFinding(stdout, f, time.Now())
	generateName := generatedPrefix(name)
	// No spec.reviewer: admission stamps it.
	rv := &custosv1alpha1.FindingReview{}
	rv.Namespace, rv.GenerateName = namespace, generateName
	rv.Spec = custosv1alpha1.FindingReviewSpec{Finding: name, Verdict: verdict, Reason: *reason}
	if err := c.Create(ctx, rv); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prefix, err)
		return apiExit(err)
	}
	fmt.Fprintf(stdout, "findingreview %s/%s created: %s %s%s\n", namespace, rv.Name, name, verdict, as(rv.Spec.Reviewer.Username))
	return exitOK
}

// describeFinding prints what a Finding saw, for the person reviewing it.
func describeFinding(w io.Writer, f *custosv1alpha1.Finding, now time.Time) {
	st := &f.Status
	fmt.Fprintf(w, "finding %s/%s: %s on agent %s, %s (score %d), %s\n", f.Namespace, f.Name, cell(f.Spec.Rubric), cell(f.Spec.Agent),
		cmp.Or(string(st.Severity), "<unknown>"), st.Score, cmp.Or(string(st.Phase), "<new>"))
	fmt.Fprintf(w, "  summary: %s\n", cell(st.Summary))
	fmt.Fprintf(w, "  hits: %d over %d records, opened %s\n", st.Hits, st.RecordCount, relative(openedAt(f), now))
	for _, e := range st.Evidence {
		fmt.Fprintf(w, "  evidence: audit log %s, records %v", cell(e.AuditLogID), e.Sequences)
		if len(e.TraceIDs) > 0 {
			fmt.Fprintf(w, ", traces %s", cell(strings.Join(e.TraceIDs, ", ")))
		}
		fmt.Fprintln(w)
	}
	if j := st.Judgement; j != nil {
		fmt.Fprintf(w, "  judged: %s (%d%%) by %s, %s, at %d records (prompt %s): %s\n", j.Verdict, j.ConfidencePercent, cell(j.Model),
			relative(j.At.Time, now), j.RecordCount, cell(j.PromptDigest), cell(j.Rationale))
	}
	for _, r := range st.Reviews {
		fmt.Fprintf(w, "  review %s: %s by %s, %s: %s\n", cell(r.Review), r.Verdict, cell(r.Reviewer.Username), relative(r.At.Time, now), cell(r.Reason))
	}
}
