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
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/evaluate"
)

const attestUsage = `usage:
  kubectl custos attest AGENT [-n NAMESPACE] [--report YYYY-MM] --comment TEXT

Shows the Agent AGENT (owner, purpose, toolsets, phase and where its owner
review stands), then records your review of it as an AgentAttestation in
its namespace: the agent's next review is due spec.review.everyDays from
now, and an agent suspended because its review was overdue runs again.
--comment says what you reviewed, for the record; it is required. Who
attested is what the API server authenticated, stamped by Custos's
admission webhook: nothing this command sends names you.

--report signs off the agent's AgentReport of that month as well (kubectl
custos report AGENT --period YYYY-MM shows it first): it needs the verb
review on the Agent too, and the report records who signed it off.
`

// attest is kubectl custos attest.
func attest(args []string, stdout, stderr io.Writer) int {
	const prefix = "kubectl custos attest"
	fs := flag.NewFlagSet("attest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, attestUsage) }
	var cf clientFlags
	cf.add(fs)
	comment := fs.String("comment", "", "What you reviewed, for the record (required, at most 1024 characters).")
	period := fs.String("report", "", "Sign off the agent's AgentReport of this month too, YYYY-MM.")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	var problems []string
	if len(pos) != 1 {
		problems = append(problems, fmt.Sprintf("want one AGENT, got %d arguments", len(pos)))
	}
	if strings.TrimSpace(*comment) == "" {
		problems = append(problems, `--comment is required: say what you reviewed, e.g. --comment "owner, purpose and toolsets still right"`)
	} else if n := utf8.RuneCountInString(*comment); n > 1024 {
		problems = append(problems, fmt.Sprintf("--comment is %d characters long: at most 1024", n))
	}
	if p := periodProblem("--report", *period); p != "" {
		problems = append(problems, p)
	}
	if p := cf.check(); p != "" {
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "%s: %s\n%s", prefix, strings.Join(problems, "; "), attestUsage)
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

	agent := &custosv1alpha1.Agent{}
	if code, ok := getNamed(ctx, c, agent, "agent", namespace, name, prefix, stderr); !ok {
		return code
	}
	describeAgent(stdout, agent, time.Now())
	report := ""
	if *period != "" {
		rep := &custosv1alpha1.AgentReport{}
		report = evaluate.ReportName(name, string(agent.UID), *period)
		if code, ok := getNamed(ctx, c, rep, "agentreport", namespace, report, prefix, stderr); !ok {
			return code
		}
		printReport(stdout, rep, time.Now())
	}

	prefixName := generatedPrefix(name)
	// No spec.agentUID or spec.attester: Custos's admission webhook stamps
	// them from the Agent and from the API server's authentication of this
	// request, whatever a client writes.
	attestation := &custosv1alpha1.AgentAttestation{}
	attestation.Namespace = namespace
	attestation.GenerateName = prefixName
	attestation.Spec = custosv1alpha1.AgentAttestationSpec{Agent: name, Comment: *comment, Report: report}
	if err := c.Create(ctx, attestation); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prefix, err)
		return apiExit(err)
	}
	as := ""
	if u := attestation.Spec.Attester.Username; u != "" {
		as = " (as " + cell(u) + ")"
	}
	signed := ""
	if report != "" {
		signed = ", agentreport " + report + " signed off"
	}
	fmt.Fprintf(stdout, "agentattestation %s/%s created: %s attested%s%s\n", namespace, attestation.Name, name, signed, as)
	return exitOK
}

// describeAgent prints what the owner attests: who owns the agent, what it
// is for, what it may reach, and where its review stands.
func describeAgent(w io.Writer, a *custosv1alpha1.Agent, now time.Time) {
	phase := "not observed yet"
	if lc := a.Status.Lifecycle; lc != nil && lc.Phase != "" {
		phase = string(lc.Phase)
		if ready := meta.FindStatusCondition(a.Status.Conditions, custosv1alpha1.ReadyCondition); ready != nil &&
			lc.Phase == custosv1alpha1.AgentPhaseSuspended && ready.Reason != "" {
			phase += " (" + ready.Reason + ")"
		}
	}
	fmt.Fprintf(w, "agent %s/%s: %s\n", a.Namespace, a.Name, cell(phase))
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(tw, "  %s:\t%s\n", k, v) }
	owner := a.Spec.Owner.Team
	if a.Spec.Owner.Contact != "" {
		owner += " (" + a.Spec.Owner.Contact + ")"
	}
	line("owner", cell(owner))
	line("purpose", cell(a.Spec.Purpose))
	toolsets := make([]string, 0, len(a.Spec.ToolsetRefs))
	for _, r := range a.Spec.ToolsetRefs {
		if r.Namespace != "" {
			toolsets = append(toolsets, r.Namespace+"/"+r.Name)
		} else {
			toolsets = append(toolsets, r.Name)
		}
	}
	if len(toolsets) == 0 {
		toolsets = append(toolsets, "(none)")
	}
	line("toolsets", cell(strings.Join(toolsets, ", ")))
	if r := a.Spec.Review; r != nil {
		line("review", fmt.Sprintf("every %d days", r.EveryDays))
	} else {
		line("review", "not required (no spec.review)")
	}
	at := func(t *metav1.Time) string {
		return t.UTC().Format(time.RFC3339) + " (" + relative(t.Time, now) + ")"
	}
	st := a.Status.Review
	if st != nil && st.LastAttestedAt != nil {
		last := at(st.LastAttestedAt)
		if st.AttestedBy != "" {
			last += " by " + st.AttestedBy
		}
		if st.Attestation != "" {
			last += ", agentattestation " + st.Attestation
		}
		line("last attested", cell(last))
	} else {
		line("last attested", "never")
	}
	if st != nil && st.DueAt != nil {
		line("due", at(st.DueAt))
	}
	_ = tw.Flush()
}
