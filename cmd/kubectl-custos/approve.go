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
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

const pendingUsage = `usage:
  kubectl custos pending [-n NAMESPACE | -A] [--as USER [--as-group GROUP]...]

Lists the ApprovalRequests waiting for people (Pending) and those approved
but not yet run (Approved), newest first. NAMESPACE is the kubeconfig
context's namespace by default; -A lists every namespace.
`

const approveUsage = `usage:
  kubectl custos approve REQUEST [-n NAMESPACE] [--comment TEXT] [--wait [--timeout 30s]]
  kubectl custos deny REQUEST [-n NAMESPACE] [--comment TEXT] [--wait [--timeout 30s]]

Shows the call the ApprovalRequest REQUEST holds, then records your decision
on it as an ApprovalDecision in its namespace. Who decided is what the API
server authenticated, stamped by Custos's admission webhook: nothing this
command sends names you. --wait waits until the request is decided
(Approved, Denied, Expired or Consumed) and prints how.
`

// maxGeneratedPrefix keeps a generated name (the prefix and the API
// server's random suffix) within an object name's 253 characters.
const maxGeneratedPrefix = 253 - 5

// generatedPrefix is the generateName of a decision made on name (an
// ApprovalDecision, AgentAttestation, AgentFreeze, AgentUnfreeze,
// FindingReview): <name>-, cut to fit.
func generatedPrefix(name string) string {
	p := name + "-"
	return p[:min(len(p), maxGeneratedPrefix)]
}

// reasonProblem is what is wrong with a required --reason, or "": empty,
// or over 1024 characters. example shows one.
func reasonProblem(reason, example string) string {
	if strings.TrimSpace(reason) == "" {
		return "--reason is required: say why, e.g. --reason " + strconv.Quote(example)
	}
	if n := utf8.RuneCountInString(reason); n > 1024 {
		return fmt.Sprintf("--reason is %d characters long: at most 1024", n)
	}
	return ""
}

// argumentsWidth is how much of a call's arguments pending shows.
const argumentsWidth = 60

// clientFlags are the flags every subcommand that talks to the API server
// takes: where it is and whom to act as.
type clientFlags struct {
	kubeconfig, context, namespace string
	as                             string
	asGroups                       stringList
}

func (f *clientFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "Path to the kubeconfig; KUBECONFIG or ~/.kube/config by default.")
	fs.StringVar(&f.context, "context", "", "The kubeconfig context to use.")
	fs.StringVar(&f.namespace, "namespace", "", "The namespace; the kubeconfig context's by default.")
	fs.StringVar(&f.namespace, "n", "", "Short for --namespace.")
	fs.StringVar(&f.as, "as", "", "The user to impersonate.")
	fs.Var(&f.asGroups, "as-group", "A group to impersonate; repeat for several. Needs --as.")
}

// client connects as the flags say and returns the namespace to use.
func (f *clientFlags) client() (client.Client, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: f.context, Context: clientcmdapi.Context{Namespace: f.namespace}})
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, "", err
	}
	namespace, _, err := loader.Namespace()
	if err != nil {
		return nil, "", err
	}
	if f.as != "" {
		cfg.Impersonate = rest.ImpersonationConfig{UserName: f.as, Groups: f.asGroups}
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(scheme))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", err
	}
	return c, namespace, nil
}

// check returns what is wrong with the flags, if anything.
func (f *clientFlags) check() string {
	if len(f.asGroups) > 0 && f.as == "" {
		return "--as-group needs --as"
	}
	return ""
}

// stringList is a flag that may be repeated.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// parseInterspersed parses args with fs, letting flags come before or
// after the positional arguments, and returns those.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// listProblems is what is wrong with a listing command's arguments: none
// are expected, and -n and -A do not go together.
func listProblems(pos []string, all bool, cf *clientFlags) []string {
	var problems []string
	if len(pos) > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", pos))
	}
	if all && cf.namespace != "" {
		problems = append(problems, "give -n or -A, not both")
	}
	if p := cf.check(); p != "" {
		problems = append(problems, p)
	}
	return problems
}

// listing is what the listing commands (pending, findings, top) share:
// kubectl's connection flags, -n or -A, and their checks.
type listing struct {
	name, usage string
	fs          *flag.FlagSet
	cf          clientFlags
	all         bool
	stderr      io.Writer
}

// newListing registers a listing command's flags; what names what it lists
// (for --all-namespaces' help). The command adds its own to l.fs.
func newListing(name, usage, what string, stderr io.Writer) *listing {
	l := &listing{name: name, usage: usage, fs: flag.NewFlagSet(name, flag.ContinueOnError), stderr: stderr}
	l.fs.SetOutput(stderr)
	l.fs.Usage = func() { fmt.Fprint(stderr, usage) }
	l.cf.add(l.fs)
	l.fs.BoolVar(&l.all, "all-namespaces", false, "List "+what+" of every namespace.")
	l.fs.BoolVar(&l.all, "A", false, "Short for --all-namespaces.")
	return l
}

// connect parses args, checks them (with the command's own problems, from
// check) and connects: the client and the namespace listed ("" with -A),
// or the exit code when it cannot.
func (l *listing) connect(args []string, check func() []string) (client.Client, string, int, bool) {
	pos, err := parseInterspersed(l.fs, args)
	if err != nil {
		return nil, "", exitUsage, false
	}
	problems := listProblems(pos, l.all, &l.cf)
	if check != nil {
		problems = append(problems, check()...)
	}
	if len(problems) > 0 {
		fmt.Fprintf(l.stderr, "kubectl custos %s: %s\n%s", l.name, strings.Join(problems, "; "), l.usage)
		return nil, "", exitUsage, false
	}
	c, namespace, err := l.cf.client()
	if err != nil {
		fmt.Fprintf(l.stderr, "kubectl custos %s: %v\n", l.name, err)
		return nil, "", exitTrouble, false
	}
	if l.all {
		namespace = ""
	}
	return c, namespace, 0, true
}

// in lists namespace, or every namespace when it is "".
func in(namespace string) []client.ListOption {
	if namespace == "" {
		return nil
	}
	return []client.ListOption{client.InNamespace(namespace)}
}

// pending is kubectl custos pending.
func pending(args []string, stdout, stderr io.Writer) int {
	l := newListing("pending", pendingUsage, "the requests", stderr)
	c, namespace, code, ok := l.connect(args, nil)
	if !ok {
		return code
	}
	all := namespace == ""
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var list custosv1alpha1.ApprovalRequestList
	if err := c.List(ctx, &list, in(namespace)...); err != nil {
		fmt.Fprintf(stderr, "kubectl custos pending: %v\n", err)
		return apiExit(err)
	}
	var open []custosv1alpha1.ApprovalRequest
	for _, r := range list.Items {
		switch r.Status.Phase {
		case "", custosv1alpha1.ApprovalPending, custosv1alpha1.ApprovalApproved:
			open = append(open, r)
		}
	}
	if len(open) == 0 {
		if all {
			fmt.Fprintln(stdout, "No approval requests pending.")
		} else {
			fmt.Fprintf(stdout, "No approval requests pending in namespace %s.\n", namespace)
		}
		return exitOK
	}
	sort.SliceStable(open, func(i, j int) bool {
		ti, tj := open[i].CreationTimestamp.Time, open[j].CreationTimestamp.Time
		if !ti.Equal(tj) {
			return ti.After(tj)
		}
		if open[i].Namespace != open[j].Namespace {
			return open[i].Namespace < open[j].Namespace
		}
		return open[i].Name < open[j].Name
	})
	now := time.Now()
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	header := "NAME\tPHASE\tAGENT\tTOOL\tPERSON\tAPPROVALS\tEXPIRES\tARGUMENTS"
	if all {
		header = "NAMESPACE\t" + header
	}
	fmt.Fprintln(w, header)
	for _, r := range open {
		tool, person, args := r.Spec.Tool, r.Spec.Person, r.Spec.Arguments
		if c := r.Spec.Change; c != nil {
			// An Agent change: what its generation adds.
			tool, person, args = fmt.Sprintf("(generation %d)", c.Generation), "-", c.Describe()
		}
		row := []string{r.Name, string(phaseOf(&r)), r.Spec.Agent.Name, tool, person,
			fmt.Sprintf("%d/%d", r.Status.Approvals, r.Spec.Quorum), relative(r.Spec.ExpiresAt.Time, now),
			truncate(cell(args), argumentsWidth)}
		if all {
			row = append([]string{r.Namespace}, row...)
		}
		for i := range row {
			row[i] = cell(row[i])
		}
		fmt.Fprintln(w, strings.Join(row, "\t"))
	}
	_ = w.Flush()
	return exitOK
}

// decide is kubectl custos approve (verdict Approve) and deny (Deny).
func decide(verdict custosv1alpha1.ApprovalVerdict, args []string, stdout, stderr io.Writer) int {
	command := strings.ToLower(string(verdict))
	prefix := "kubectl custos " + command
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, approveUsage) }
	var cf clientFlags
	cf.add(fs)
	comment := fs.String("comment", "", "Why, for the record (at most 1024 characters).")
	wait := fs.Bool("wait", false, "Wait until the request is decided and print how.")
	timeout := fs.Duration("timeout", 30*time.Second, "How long --wait waits.")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	var problems []string
	if len(pos) != 1 {
		problems = append(problems, fmt.Sprintf("want one REQUEST, got %d arguments", len(pos)))
	}
	if n := utf8.RuneCountInString(*comment); n > 1024 {
		problems = append(problems, fmt.Sprintf("--comment is %d characters long: at most 1024", n))
	}
	if *timeout <= 0 {
		problems = append(problems, fmt.Sprintf("--timeout %s: must be positive", *timeout))
	}
	if p := cf.check(); p != "" {
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "%s: %s\n%s", prefix, strings.Join(problems, "; "), approveUsage)
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

	req := &custosv1alpha1.ApprovalRequest{}
	if code, ok := getNamed(ctx, c, req, "approval request", namespace, name, prefix, stderr); !ok {
		return code
	}
	if phase := phaseOf(req); phase.Terminal() {
		fmt.Fprintf(stderr, "%s: approval request %s is %s: nothing left to decide\n", prefix, name, phase)
		return exitFailed
	}
	describeRequest(stdout, req, time.Now())

	prefixName := generatedPrefix(name)
	// No spec.approver: Custos's admission webhook stamps it from the API
	// server's authentication of this request, whatever a client writes.
	decision := &custosv1alpha1.ApprovalDecision{}
	decision.Namespace = namespace
	decision.GenerateName = prefixName
	decision.Spec = custosv1alpha1.ApprovalDecisionSpec{Request: name, Decision: verdict, Comment: *comment}
	if err := c.Create(ctx, decision); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prefix, err)
		return apiExit(err)
	}
	as := ""
	if u := decision.Spec.Approver.Username; u != "" {
		as = " (as " + cell(u) + ")"
	}
	fmt.Fprintf(stdout, "approvaldecision %s/%s created: %s on %s%s\n", namespace, decision.Name, verdict, name, as)
	if !*wait {
		return exitOK
	}

	wctx, wcancel := context.WithTimeout(context.Background(), *timeout)
	defer wcancel()
	decided, err := waitDecided(wctx, c, client.ObjectKeyFromObject(req))
	if err != nil {
		if decided != nil {
			fmt.Fprintf(stderr, "%s: approval request %s/%s is still %s (%d/%d approvals) after %s; your decision is recorded\n",
				prefix, namespace, name, phaseOf(decided), decided.Status.Approvals, decided.Spec.Quorum, *timeout)
		} else {
			fmt.Fprintf(stderr, "%s: waiting for approval request %s/%s: %v; your decision is recorded\n", prefix, namespace, name, err)
		}
		return exitFailed
	}
	fmt.Fprintf(stdout, "approval request %s/%s is %s (%d/%d approvals)\n",
		namespace, name, decided.Status.Phase, decided.Status.Approvals, decided.Spec.Quorum)
	return exitOK
}

// waitDecided polls the request until it leaves Pending or ctx ends; on
// the end of ctx it returns the request as last read, if it was.
func waitDecided(ctx context.Context, c client.Client, key client.ObjectKey) (*custosv1alpha1.ApprovalRequest, error) {
	var last *custosv1alpha1.ApprovalRequest
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		r := &custosv1alpha1.ApprovalRequest{}
		err := c.Get(ctx, key, r)
		switch {
		case err == nil:
			last = r
			if phaseOf(r) != custosv1alpha1.ApprovalPending {
				return r, nil
			}
		case apierrors.IsNotFound(err):
			return nil, errors.New("it was deleted")
		case apiExit(err) == exitFailed && ctx.Err() == nil:
			return nil, err // the API server said no: asking again will not help
		}
		// Otherwise it could not be asked (or ctx is ending): try again.
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-tick.C:
		}
	}
}

// describeRequest prints the call being decided on.
func describeRequest(w io.Writer, r *custosv1alpha1.ApprovalRequest, now time.Time) {
	s := r.Spec
	toolset := s.Toolset.Name
	if s.Toolset.Namespace != "" {
		toolset = s.Toolset.Namespace + "/" + toolset
	}
	tool := s.Tool
	var marks []string
	if s.Access != "" {
		marks = append(marks, string(s.Access))
	}
	if s.Irreversible {
		marks = append(marks, "irreversible")
	}
	if len(marks) > 0 {
		tool += " (" + strings.Join(marks, ", ") + ")"
	}
	fmt.Fprintf(w, "approval request %s/%s: %s, %d/%d approvals, expires %s\n", r.Namespace, r.Name,
		phaseOf(r), r.Status.Approvals, s.Quorum, relative(s.ExpiresAt.Time, now))
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(tw, "  %s:\t%s\n", k, v) }
	line("agent", cell(s.Agent.Name))
	if c := s.Change; c != nil {
		line("change", fmt.Sprintf("generation %d adds %s", c.Generation, cell(c.Describe())))
		if c.InForce > 0 {
			line("in force", fmt.Sprintf("generation %d, until this is approved", c.InForce))
		}
		_ = tw.Flush()
		return
	}
	line("tool", cell(tool)+" of toolset "+cell(toolset))
	line("person", cell(s.Person))
	if s.Chain != "" {
		line("chain", cell(s.Chain))
	}
	args := s.Arguments
	if args == "" {
		args = "(none)"
	}
	line("arguments", cell(args))
	if s.DecisionRecord != "" {
		line("decision record", cell(s.DecisionRecord))
	}
	_ = tw.Flush()
}

// phaseOf is the request's phase, Pending until the controller set one.
func phaseOf(r *custosv1alpha1.ApprovalRequest) custosv1alpha1.ApprovalPhase {
	if r.Status.Phase == "" {
		return custosv1alpha1.ApprovalPending
	}
	return r.Status.Phase
}

// relative says when t is from now: "in 14m", "3m ago".
func relative(t, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	d := t.Sub(now).Round(time.Second)
	switch {
	case d > 0:
		return "in " + humanDuration(d)
	case d < 0:
		return humanDuration(-d) + " ago"
	}
	return "now"
}

// humanDuration is d to the largest two units, as kubectl's ages.
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		m, s := int(d/time.Minute), int(d%time.Minute/time.Second)
		if s == 0 || m >= 10 {
			return fmt.Sprintf("%dm", m)
		}
		return fmt.Sprintf("%dm%ds", m, s)
	case d < 24*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
	days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, h)
}

// truncate cuts s to at most n characters, marking the cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := []rune(s)
	return string(runes[:n-3]) + "..."
}

// cell makes s safe to print to a terminal: the agent's arguments and
// decision record come from the agent and its callers, and must not move
// the cursor, recolour the screen, reorder text or break the table. Every
// rune that is not printable is written as a \u escape.
func cell(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// apiExit is the exit code for an error from the API server: it said no
// (exitFailed), or it could not be asked (exitTrouble).
func apiExit(err error) int {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return exitFailed
	}
	return exitTrouble
}

// getNamed reads obj, the kind named namespace/name, saying on stderr why
// not (not found, or the API server's error) and with which exit code.
func getNamed(ctx context.Context, c client.Client, obj client.Object, kind, namespace, name, prefix string, stderr io.Writer) (int, bool) {
	err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj)
	switch {
	case err == nil:
		return 0, true
	case apierrors.IsNotFound(err):
		fmt.Fprintf(stderr, "%s: %s %s not found in namespace %s\n", prefix, kind, name, namespace)
	default:
		fmt.Fprintf(stderr, "%s: reading %s %s/%s: %v\n", prefix, kind, namespace, name, err)
	}
	return apiExit(err), false
}
