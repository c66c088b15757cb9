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
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/evaluate"
)

const reportUsage = `usage:
  kubectl custos report AGENT [-n NAMESPACE] [--period YYYY-MM]

Shows the AgentReport of AGENT for a month (the last one by default): its
calls and how many succeeded, refusals, tools called, approvals, freezes
and Findings as the audit trail has them, its score with the formula, and
what Custos recommends (keep, narrow to the tools it called, decommission)
with the patch that does it, and whether an owner signed it off (kubectl
custos attest AGENT --report YYYY-MM).
`

// reportCommand is kubectl custos report.
func reportCommand(args []string, stdout, stderr io.Writer) int {
	const prefix = "kubectl custos report"
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, reportUsage) }
	var cf clientFlags
	cf.add(fs)
	period := fs.String("period", "", "The month, YYYY-MM (UTC); the last one when empty.")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	var problems []string
	if len(pos) != 1 {
		problems = append(problems, fmt.Sprintf("want one AGENT, got %d arguments", len(pos)))
	}
	if p := periodProblem("--period", *period); p != "" {
		problems = append(problems, p)
	}
	if p := cf.check(); p != "" {
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "%s: %s\n%s", prefix, strings.Join(problems, "; "), reportUsage)
		return exitUsage
	}
	c, namespace, err := cf.client()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prefix, err)
		return exitTrouble
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now()
	agent := &custosv1alpha1.Agent{}
	if code, ok := getNamed(ctx, c, agent, "agent", namespace, pos[0], prefix, stderr); !ok {
		return code
	}
	rep := &custosv1alpha1.AgentReport{}
	name := evaluate.ReportName(agent.Name, string(agent.UID), cmp.Or(*period, lastMonth(now)))
	if code, ok := getNamed(ctx, c, rep, "agentreport", namespace, name, prefix, stderr); !ok {
		return code
	}
	printReport(stdout, rep, now)
	return exitOK
}

// periodProblem says what is wrong with the month given as flag, "" when
// nothing.
func periodProblem(flag, period string) string {
	if period == "" {
		return ""
	}
	if _, _, err := evaluate.PeriodBounds(period); err != nil {
		return flag + " " + strconv.Quote(period) + " is not a month: want YYYY-MM, e.g. " + flag + " " + lastMonth(time.Now())
	}
	return ""
}

// lastMonth is the UTC month before now's.
func lastMonth(now time.Time) string {
	y, m, _ := now.UTC().Date()
	return evaluate.Period(time.Date(y, m-1, 1, 0, 0, 0, 0, time.UTC))
}

// printReport shows rep as a person reviews it.
func printReport(w io.Writer, rep *custosv1alpha1.AgentReport, now time.Time) {
	st := rep.Status
	asOf := "nothing counted yet"
	if st.AsOf != nil {
		asOf = "as of " + st.AsOf.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "agentreport %s/%s: Agent %s, %s (%s)\n", rep.Namespace, rep.Name, rep.Spec.Agent, rep.Spec.Period, asOf)
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(tw, "  %s:\t%s\n", k, cell(v)) }
	calls := strconv.FormatInt(st.Calls, 10)
	if st.SuccessPercent != nil {
		calls += fmt.Sprintf(" (%d succeeded, %d%%)", st.Succeeded, *st.SuccessPercent)
	}
	line("calls", calls)
	counts := func(cs []custosv1alpha1.ReportCount) string {
		if len(cs) == 0 {
			return "none"
		}
		out := make([]string, 0, len(cs))
		for _, c := range cs {
			out = append(out, fmt.Sprintf("%s %d", c.Kind, c.Count))
		}
		return strings.Join(out, ", ")
	}
	line("refusals", counts(st.Refusals))
	tools := make([]string, 0, len(st.Tools))
	for _, u := range st.Tools {
		s := fmt.Sprintf("%s %s %d", u.Toolset, u.Tool, u.Calls)
		if u.Errors > 0 {
			s += fmt.Sprintf(" (%d errors)", u.Errors)
		}
		tools = append(tools, s)
	}
	if len(tools) == 0 {
		tools = append(tools, "none")
	}
	line("tools called", strings.Join(tools, ", "))
	line("approvals", counts(st.Approvals))
	line("freezes", counts(st.Freezes))
	line("findings", counts(st.Findings))
	if st.NotCounted != "" {
		line("not counted", st.NotCounted)
	}
	score := "none"
	if st.Score != nil {
		score = strconv.Itoa(int(*st.Score))
	}
	line("score", score+": "+st.Formula)
	line("recommendation", fmt.Sprintf("%s: %s", cmp.Or(string(st.Recommendation), "not assessed yet"), st.Reason))
	if st.Patch != "" {
		line("patch", fmt.Sprintf("kubectl patch agent %s -n %s --type merge -p '%s'", rep.Spec.Agent, rep.Namespace, st.Patch))
	}
	for _, so := range st.SignOffs {
		line("signed off", fmt.Sprintf("by %s %s (%s), agentattestation %s, as %s: %s", so.By.Username, so.At.UTC().Format(time.RFC3339),
			relative(so.At.Time, now), so.Attestation, cmp.Or(string(so.Signed.Recommendation), "no recommendation"), so.Comment))
	}
	if len(st.SignOffs) == 0 {
		line("signed off", fmt.Sprintf(`not yet: kubectl custos attest %s -n %s --report %s --comment "..."`, rep.Spec.Agent, rep.Namespace, rep.Spec.Period))
	}
	_ = tw.Flush()
}
