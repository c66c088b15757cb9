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

// Command kubectl-custos is the kubectl plugin of Custos (kubectl custos
// ...), on PATH as kubectl-custos.
//
//	kubectl custos trace --key PUBLIC.pem AUDIT JTI
//	kubectl custos trace --no-signatures [--allow-open] AUDIT JTI
//
// trace verifies the audit trail AUDIT (a segment store directory, or a
// JSON-lines file of records: custos-sts's standard output) and draws the
// delegation tree through the token JTI from custos-sts's decisions: the
// exchanges from the person's token down to it, and everything exchanged
// or refused from it since. A trail that does not verify is not traced.
//
//	kubectl custos revoke --tenant TENANT (--session SID | --jti JTI) --reason WHY
//
// revoke puts a person's session or one token on the tenant's revocation
// list (revoke.go), as the user kubectl is configured as.
//
//	kubectl custos pending [-n NAMESPACE | -A]
//	kubectl custos approve REQUEST [-n NAMESPACE] [--comment TEXT] [--wait]
//	kubectl custos deny REQUEST [-n NAMESPACE] [--comment TEXT] [--wait]
//
// pending lists the tool calls waiting for people's approval
// (ApprovalRequests); approve and deny show one and record a decision on
// it, an ApprovalDecision the API server attributes to the user kubectl is
// configured as (approve.go).
//
//	kubectl custos attest AGENT [-n NAMESPACE] [--report YYYY-MM] --comment TEXT
//	kubectl custos report AGENT [-n NAMESPACE] [--period YYYY-MM]
//
// attest shows an Agent and where its owner review (spec.review) stands,
// and records an owner's review of it, an AgentAttestation the API server
// attributes to the user kubectl is configured as, which may sign off its
// monthly AgentReport too (attest.go); report shows that report
// (report.go).
//
//	kubectl custos freeze AGENT [-n NAMESPACE] --reason TEXT
//	kubectl custos unfreeze AGENT [-n NAMESPACE] --verdict V --reason TEXT
//
// freeze makes an AgentFreeze of an Agent by hand; unfreeze lifts the
// freezes that hold it with a person's verdict (freeze.go).
//
//	kubectl custos top [-n NAMESPACE | -A] [--watch]
//
// top shows each agent as the breaker sees it, the most evidence first
// (top.go).
//
//	kubectl custos findings [-n NAMESPACE | -A] [--closed]
//	kubectl custos review FINDING [-n NAMESPACE] --verdict V --reason TEXT
//
// findings lists the Findings waiting for people; review shows one and
// records a person's review of it (findings.go).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/sts"
)

// Exit codes, as custos-audit's.
const (
	exitOK      = 0
	exitFailed  = 1 // the trail did not verify or holds nothing of the token; the revocation was not written
	exitUsage   = 2
	exitTrouble = 3 // the trail could not be read; the API server could not be reached
)

const usage = `usage:
  kubectl custos trace --key PUBLIC.pem [--allow-open] [--allow-partial] AUDIT JTI
  kubectl custos trace --no-signatures [--allow-open] [--allow-partial] AUDIT JTI
  kubectl custos revoke --tenant TENANT (--session SID | --jti JTI) --reason WHY [--for 24h] [-n NAMESPACE]
  kubectl custos pending [-n NAMESPACE | -A]
  kubectl custos approve REQUEST [-n NAMESPACE] [--comment TEXT] [--wait [--timeout 30s]]
  kubectl custos deny REQUEST [-n NAMESPACE] [--comment TEXT] [--wait [--timeout 30s]]
  kubectl custos attest AGENT [-n NAMESPACE] [--report YYYY-MM] --comment TEXT
  kubectl custos report AGENT [-n NAMESPACE] [--period YYYY-MM]
  kubectl custos freeze AGENT [-n NAMESPACE] --reason TEXT
  kubectl custos unfreeze AGENT [-n NAMESPACE] --verdict false-positive|confirmed-misuse --reason TEXT
  kubectl custos top [-n NAMESPACE | -A] [--custos-namespace custos-system] [--watch]
  kubectl custos findings [-n NAMESPACE | -A] [--closed]
  kubectl custos review FINDING [-n NAMESPACE] --verdict acknowledged|confirmed|dismissed --reason TEXT

AUDIT is an audit segment store (--audit-dir) or a JSON-lines file of
records (custos-sts's standard output with --audit-sink=stdout); JTI is a
token's jti, or a person's token's jti as their identity provider set it.

revoke puts a session (every token of it) or a token on the tenant's
revocation list; custos-sts refuses it from its next exchange. Run
kubectl custos revoke --help for its flags.

pending lists the tool calls held for people's approval (ApprovalRequests)
in NAMESPACE (the kubeconfig context's by default) or every namespace (-A).
approve and deny show the call REQUEST holds and record your decision on it
(an ApprovalDecision); the API server, not the command, says who you are.

attest shows the Agent AGENT (owner, purpose, toolsets, phase, review) and
records your review of it as one of its owners (an AgentAttestation): its
next review is due spec.review.everyDays from now, and an agent suspended
for an overdue review (ReviewOverdue) runs again. --comment is required.
With --report it also signs off the agent's AgentReport of that month.

report shows an agent's AgentReport of a month (the last by default): its
calls, success, refusals, tools called, approvals, freezes and Findings, a
score with its formula, and the recommendation (keep, narrow to the tools
it called, decommission) with the kubectl patch that does it.

freeze makes an AgentFreeze of AGENT: its calls and exchanges are refused
at once and it is held Frozen until a person lifts the freeze. unfreeze
shows each freeze that holds AGENT and lifts it with your verdict
(false-positive or confirmed-misuse); it is refused to the agent's owners.

top shows each agent as the breaker sees it (records in the last minute
against its baseline, evidence against what trips it, how it is watched,
learning, Active or Frozen), the most evidence first: a platform
administrator's view (it reads the breaker's kept state).

findings lists the Findings the evaluator opened on the audit trail that
wait for a person, the most severe and oldest first. review shows one and
records your review (acknowledged, confirmed or dismissed) with a reason;
an agent's owners do not dismiss its Findings.

pending, approve, deny, attest, report, freeze, unfreeze, top, findings and
review take --kubeconfig,
--context, --as and --as-group as kubectl does.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "trace":
		return trace(args[1:], stdout, stderr)
	case "revoke":
		return revoke(args[1:], stdout, stderr)
	case "pending":
		return pending(args[1:], stdout, stderr)
	case "approve":
		return decide(custosv1alpha1.Approve, args[1:], stdout, stderr)
	case "deny":
		return decide(custosv1alpha1.Deny, args[1:], stdout, stderr)
	case "attest":
		return attest(args[1:], stdout, stderr)
	case "freeze":
		return freezeCommand(false, args[1:], stdout, stderr)
	case "unfreeze":
		return freezeCommand(true, args[1:], stdout, stderr)
	case "report":
		return reportCommand(args[1:], stdout, stderr)
	case "findings":
		return findingsCommand(args[1:], stdout, stderr)
	case "review":
		return reviewCommand(args[1:], stdout, stderr)
	case "top":
		return top(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "kubectl custos: unknown command %q\n%s", args[0], usage)
	return exitUsage
}

func trace(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var vf audit.VerifyFlags
	vf.AddFlags(fs)
	// Flags may come before or after the two arguments.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 2 {
		fmt.Fprintf(stderr, "kubectl custos trace: want AUDIT and JTI, got %d arguments\n%s", len(pos), usage)
		return exitUsage
	}
	opts, err := vf.Options()
	if err != nil {
		fmt.Fprintf(stderr, "kubectl custos trace: %v\n", err)
		return exitUsage
	}
	var records []audit.Record
	opts.OnRecord = func(_ string, _ int, r *audit.Record) {
		if r.Action == audit.ActionTokenExchanged || r.Action == audit.ActionTokenRefused {
			records = append(records, *r)
		}
	}
	if _, err := audit.Verify(pos[0], opts); err != nil {
		var ve *audit.VerifyError
		if errors.As(err, &ve) {
			fmt.Fprintf(stderr, "kubectl custos trace: the audit trail does not verify, so it is not traced: %v\n", ve)
			return exitFailed
		}
		fmt.Fprintf(stderr, "kubectl custos trace: %v\n", err)
		return exitTrouble
	}
	tree, err := sts.Trace(sts.HopsFrom(records), pos[1])
	if err != nil {
		fmt.Fprintf(stderr, "kubectl custos trace: %v\n", err)
		return exitFailed
	}
	fmt.Fprint(stdout, tree)
	return exitOK
}
