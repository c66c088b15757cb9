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
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

const freezeUsage = `usage:
  kubectl custos freeze AGENT [-n NAMESPACE] --reason TEXT
  kubectl custos unfreeze AGENT [-n NAMESPACE] --verdict false-positive|confirmed-misuse --reason TEXT

freeze makes an AgentFreeze (trigger Manual) of the Agent AGENT: custos-gateway
refuses its calls and custos-sts its exchanges at once, and Custos holds it
Frozen (leases revoked, deny-all, scaled to zero) until the freeze is
lifted. It needs the verb freeze on the Agent (the chart's agent-owner and
risk-owner roles have it).

unfreeze shows each freeze that holds AGENT and lifts it with an
AgentUnfreeze carrying your verdict (what the freeze was: a false positive
or confirmed misuse) and reason. It needs the verb unfreeze on the Agent
(the chart's risk-owner role) and is refused to the agent's owners and to
ServiceAccounts.

Who froze or unfroze is what the API server authenticated, stamped by
Custos's admission webhook: nothing these commands send names you. --reason
is required, at most 1024 characters.
`

// verdicts are unfreeze's --verdict values.
var verdicts = map[string]custosv1alpha1.FreezeVerdict{
	"false-positive":   custosv1alpha1.FalsePositive,
	"confirmed-misuse": custosv1alpha1.ConfirmedMisuse,
}

// freezeCommand is kubectl custos freeze, or unfreeze when lift is set.
func freezeCommand(lift bool, args []string, stdout, stderr io.Writer) int {
	prefix := "kubectl custos freeze"
	if lift {
		prefix = "kubectl custos unfreeze"
	}
	fs := flag.NewFlagSet(prefix, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, freezeUsage) }
	var cf clientFlags
	cf.add(fs)
	reason := fs.String("reason", "", "Why, for the record (required, at most 1024 characters).")
	verdictFlag := ""
	if lift {
		fs.StringVar(&verdictFlag, "verdict", "", "What the freeze was: false-positive or confirmed-misuse (required).")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	var problems []string
	if len(pos) != 1 {
		problems = append(problems, fmt.Sprintf("want one AGENT, got %d arguments", len(pos)))
	}
	if p := reasonProblem(*reason, "records 40x its baseline since 14:02"); p != "" {
		problems = append(problems, p)
	}
	verdict, ok := verdicts[verdictFlag]
	if lift && !ok {
		problems = append(problems, fmt.Sprintf("--verdict %q: want false-positive or confirmed-misuse (what the freeze was)", verdictFlag))
	}
	if p := cf.check(); p != "" {
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "%s: %s\n%s", prefix, strings.Join(problems, "; "), freezeUsage)
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
	generateName := generatedPrefix(name)
	if !lift {
		// No spec.agentUID or spec.frozenBy: admission stamps them.
		f := &custosv1alpha1.AgentFreeze{}
		f.Namespace, f.GenerateName = namespace, generateName
		f.Spec = custosv1alpha1.AgentFreezeSpec{Agent: name, Trigger: custosv1alpha1.FreezeManual, Reason: *reason}
		if err := c.Create(ctx, f); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", prefix, err)
			return apiExit(err)
		}
		fmt.Fprintf(stdout, "agentfreeze %s/%s created: %s frozen%s; lift it with kubectl custos unfreeze %s -n %s\n",
			namespace, f.Name, name, as(f.Spec.FrozenBy.Username), name, namespace)
		return exitOK
	}

	var list custosv1alpha1.AgentFreezeList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		fmt.Fprintf(stderr, "%s: listing the AgentFreezes of %s: %v\n", prefix, namespace, err)
		return apiExit(err)
	}
	holding := slices.DeleteFunc(list.Items, func(f custosv1alpha1.AgentFreeze) bool { return !f.Holds(agent) })
	if len(holding) == 0 {
		fmt.Fprintf(stderr, "%s: agent %s/%s is not frozen: no AgentFreeze holds it\n", prefix, namespace, name)
		return exitFailed
	}
	now := time.Now()
	for i := range holding {
		f := &holding[i]
		describeFreeze(stdout, f, now)
		// No spec.unfrozenBy: admission stamps it.
		u := &custosv1alpha1.AgentUnfreeze{}
		u.Namespace, u.GenerateName = namespace, generateName
		u.Spec = custosv1alpha1.AgentUnfreezeSpec{Freeze: f.Name, Verdict: verdict, Reason: *reason}
		if err := c.Create(ctx, u); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", prefix, err)
			return apiExit(err)
		}
		fmt.Fprintf(stdout, "agentunfreeze %s/%s created: %s lifted (%s)%s\n", namespace, u.Name, f.Name, verdict, as(u.Spec.UnfrozenBy.Username))
	}
	return exitOK
}

// as names who the API server said made an object, when it says.
func as(user string) string {
	if user == "" {
		return ""
	}
	return " (as " + cell(user) + ")"
}

// describeFreeze prints what froze the agent, for the person lifting it.
func describeFreeze(w io.Writer, f *custosv1alpha1.AgentFreeze, now time.Time) {
	by := f.Spec.FrozenBy.Username
	if by == "" {
		by = "<unknown>"
	}
	fmt.Fprintf(w, "agentfreeze %s/%s: %s by %s, %s\n", f.Namespace, f.Name, f.Spec.Trigger, cell(by), relative(f.CreationTimestamp.Time, now))
	fmt.Fprintf(w, "  reason: %s\n", cell(f.Spec.Reason))
	if f.Spec.Signal != "" {
		var vals []string
		for _, v := range []struct {
			k string
			n *int64
		}{{"observed", f.Spec.Observed}, {"baseline", f.Spec.Baseline}, {"limit", f.Spec.Limit}} {
			if v.n != nil {
				vals = append(vals, fmt.Sprintf("%s %d", v.k, *v.n))
			}
		}
		fmt.Fprintf(w, "  %s: %s\n", f.Spec.Signal, strings.Join(vals, ", "))
	}
	if e := f.Spec.Evidence; e != nil {
		fmt.Fprintf(w, "  evidence: audit log %s, records %v, traces %s\n", cell(e.AuditLogID), e.Sequences, cell(strings.Join(e.TraceIDs, ", ")))
	}
}
