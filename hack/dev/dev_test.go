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
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/custos-dev/custos/internal/audit"

	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/otlptest"
)

// TestDevReadyAndCleanShutdown walks `make dev` as tooling uses it: wait for
// the ready line, use .dev/kubeconfig to list the samples, log alice in at
// the identity provider with PKCE and exchange her token for the sample
// agent at custos-sts, call a tool through custos-gateway as the agent for
// her (once allowed, once refused for bad input), send SIGTERM, and find no
// process of it left.
func TestDevReadyAndCleanShutdown(t *testing.T) {
	g := NewWithT(t)
	assets := os.Getenv(controlplane.AssetsEnv)
	g.Expect(assets).NotTo(BeEmpty(), "run through make test, which builds the control plane")
	root, err := filepath.Abs("../..")
	g.Expect(err).NotTo(HaveOccurred())

	began := time.Now()
	bin := t.TempDir()
	builds := map[string]string{"manager": "./cmd/manager", "custos-sts": "./cmd/custos-sts", "custos-gateway": "./cmd/custos-gateway", "custos-dev": "./hack/dev",
		"kubectl-custos": "./cmd/kubectl-custos"}
	built := make(chan string, len(builds))
	for name, pkg := range builds {
		go func() {
			build := exec.Command("go", "build", "-o", filepath.Join(bin, name), pkg)
			build.Dir = root
			if out, err := build.CombinedOutput(); err != nil {
				built <- fmt.Sprintf("building %s: %v: %s", pkg, err, out)
				return
			}
			built <- ""
		}()
	}
	for range builds {
		g.Expect(<-built).To(BeEmpty())
	}
	t.Logf("built in %s", time.Since(began).Round(100*time.Millisecond))
	began = time.Now()

	// Every process dev starts carries this directory on its command line
	// (the kubeconfig, etcd's data and the API server's certificates live
	// under it), so leftovers can be found even among other tests' servers.
	marker := t.TempDir()
	state := filepath.Join(marker, "state")
	dev := exec.Command(filepath.Join(bin, "custos-dev"),
		"--repo-root", root, "--state-dir", state, "--manager", filepath.Join(bin, "manager"), "--sts", filepath.Join(bin, "custos-sts"),
		"--gateway", filepath.Join(bin, "custos-gateway"))
	dev.Env = append(os.Environ(), "TMPDIR="+marker)
	stdout, err := dev.StdoutPipe()
	g.Expect(err).NotTo(HaveOccurred())
	dev.Stderr = os.Stderr
	g.Expect(dev.Start()).To(Succeed())
	t.Cleanup(func() { _ = dev.Process.Kill() })

	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var output []string
	timeout := time.After(3 * time.Minute)
waitReady:
	for {
		select {
		case line, ok := <-lines:
			g.Expect(ok).To(BeTrue(), "dev exited before it was ready:\n%s", strings.Join(output, "\n"))
			output = append(output, line)
			if line == readyLine {
				t.Logf("ready in %s", time.Since(began).Round(100*time.Millisecond))
				break waitReady
			}
		case <-timeout:
			t.Fatalf("no %q within 3 minutes:\n%s", readyLine, strings.Join(output, "\n"))
		}
	}
	go func() {
		for range lines { // keep the pipe drained
		}
	}()

	kubeconfig := filepath.Join(state, "kubeconfig")
	g.Expect(kubeconfig).To(BeAnExistingFile())
	out, err := exec.Command(filepath.Join(assets, "kubectl"), "--kubeconfig", kubeconfig,
		"get", "custos", "--all-namespaces", "--no-headers", "-o", "name").CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	// The samples, and the sample agent's report of this month once the
	// manager has made it.
	objects := slices.DeleteFunc(strings.Fields(string(out)), func(o string) bool {
		return regexp.MustCompile(`^agentreport\.custos\.dev/invoice-reconciler-[0-9]{6}-[0-9a-f]{8}$`).MatchString(o)
	})
	g.Expect(objects).To(ConsistOf(
		"agent.custos.dev/invoice-reconciler",
		"toolset.custos.dev/ledger-readonly",
		"toolset.custos.dev/ledger-payments",
		"databoundary.custos.dev/acme-finance",
		"approvalpolicy.custos.dev/payments",
	))
	// The sample agent's lease: its token is in its Secret, and nowhere
	// in what the manager logs or records.
	var token string
	g.Eventually(func(g Gomega) {
		out, err := exec.Command(filepath.Join(assets, "kubectl"), "--kubeconfig", kubeconfig, "get", "secret",
			"-n", "finance-agents", "agent-invoice-reconciler.ledger-api", "-o", "jsonpath={.data.token}").CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), "%s", out)
		raw, err := base64.StdEncoding.DecodeString(string(out))
		g.Expect(err).NotTo(HaveOccurred())
		token = string(raw)
		g.Expect(token).NotTo(BeEmpty())
	}).WithTimeout(time.Minute).Should(Succeed())

	// The sample agent runs its image by the digest that was verified
	// against the key made for this run.
	g.Eventually(func(g Gomega) {
		out, err := exec.Command(filepath.Join(assets, "kubectl"), "--kubeconfig", kubeconfig, "get", "agent",
			"-n", "finance-agents", "invoice-reconciler", "-o",
			`jsonpath={.status.conditions[?(@.type=="ImageVerified")].reason} {.status.image.digest}`).CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), "%s", out)
		g.Expect(string(out)).To(MatchRegexp(`^Verified sha256:[0-9a-f]{64}$`))
		out, err = exec.Command(filepath.Join(assets, "kubectl"), "--kubeconfig", kubeconfig, "get", "deployment",
			"-n", "finance-agents", "agent-invoice-reconciler", "-o", "jsonpath={.spec.template.spec.containers[0].image}").CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), "%s", out)
		g.Expect(string(out)).To(MatchRegexp(`^127\.0\.0\.1:[0-9]+/agents/invoice-reconciler@sha256:[0-9a-f]{64}$`))
	}).WithTimeout(time.Minute).Should(Succeed())

	// On make dev's cluster the sample agent really runs: Ready, its pod
	// scheduled onto a node of one of its boundary's regions.
	out, err = exec.Command(filepath.Join(assets, "kubectl"), "--kubeconfig", kubeconfig, "wait", "--timeout=90s",
		"-n", "finance-agents", "--for=condition=Ready", "agent/invoice-reconciler").CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	out, err = exec.Command(filepath.Join(assets, "kubectl"), "--kubeconfig", kubeconfig, "get", "pods", "-n", "finance-agents",
		"-l", "custos.dev/agent=invoice-reconciler", "-o", "jsonpath={.items[*].spec.nodeName}").CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	nodes := strings.Fields(string(out))
	g.Expect(nodes).To(HaveLen(1))
	out, err = exec.Command(filepath.Join(assets, "kubectl"), "--kubeconfig", kubeconfig, "get", "node", nodes[0],
		"-o", `jsonpath={.metadata.labels.topology\.kubernetes\.io/region}`).CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	g.Expect(string(out)).To(BeElementOf("eu-west-1", "eu-central-1"))

	// A person acts through the sample agent: alice logs in, and her token
	// is exchanged for one the agent uses on her behalf.
	aliceToken, bobToken, exchanged := personThroughAgent(t, g, bin, assets, kubeconfig, state)
	// The agent calls a tool for her through the gateway.
	calls := toolCallsThroughGateway(t, g, bin, state, aliceToken)
	// A payment waits for two approvers, runs once, and the next needs
	// approving again.
	payments := paymentApproved(t, g, bin, kubeconfig, state, aliceToken)
	// The evaluator reads the gateway's trail: the payment, made with no
	// decision record, opens Findings, which people review.
	findingsReviewed(t, g, bin, assets, kubeconfig, payments)
	// An Agent change adding a cloud role waits for two approvers, not
	// its owner, as the README's tour shows.
	agentChangeApproved(t, g, bin, assets, kubeconfig)
	// The breaker learns it from what the gateway reports.
	breakerLearns(g, bin, assets, kubeconfig)
	// Frozen by its owner, contained, and lifted by a risk owner, not by
	// the owner.
	frozeAt := time.Now()
	agentFrozen(t, g, bin, assets, kubeconfig, state, aliceToken)
	// Its month so far: the report proposes to narrow it to the tools it
	// called; applied, it still calls them; its owner signs it off.
	reportNarrowed(t, g, bin, assets, kubeconfig, state, aliceToken)

	running := processesMentioning(marker)
	for _, name := range []string{"/etcd ", "/kube-apiserver ", "/kube-controller-manager ", "/kube-scheduler ", "/kwok ", "/manager ", "/custos-sts ", "/custos-gateway "} {
		g.Expect(running).To(ContainElement(ContainSubstring(name)), "the marker must find %s while it runs", name)
	}

	g.Expect(dev.Process.Signal(syscall.SIGTERM)).To(Succeed())
	began = time.Now()
	done := make(chan error, 1)
	go func() { done <- dev.Wait() }()
	select {
	case err := <-done:
		t.Logf("stopped in %s", time.Since(began).Round(100*time.Millisecond))
		g.Expect(err).NotTo(HaveOccurred(), "dev must exit 0 on SIGTERM")
	case <-time.After(time.Minute):
		t.Fatal("dev did not exit within a minute of SIGTERM")
	}
	g.Expect(processesMentioning(marker)).To(BeEmpty(), "processes left behind after SIGTERM")
	g.Expect(kubeconfig).NotTo(BeAnExistingFile(), "a kubeconfig of a stopped server must not be left")
	for _, name := range []string{idpFileName, stsIssuerFileName, gatewayURLFileName, gatewayTokenFileName, otlpEndpointFileName, tracesURLFileName} {
		g.Expect(filepath.Join(state, name)).NotTo(BeAnExistingFile(), "%s of a stopped server must not be left", name)
	}

	// The manager closed its audit trail on the way out: the whole trail
	// verifies against the run's public key, up to a final checkpoint, and
	// tells the sample agent's identity binding.
	pem, err := os.ReadFile(filepath.Join(state, auditPublicKeyName))
	g.Expect(err).NotTo(HaveOccurred())
	key, err := audit.ParsePublicKeyPEM(pem)
	g.Expect(err).NotTo(HaveOccurred())
	var actions []string
	report, err := audit.Verify(filepath.Join(state, auditDirName), audit.VerifyOptions{
		Key: key,
		OnRecord: func(_ string, _ int, r *audit.Record) {
			if r.Subject != nil && r.Subject.Name == "invoice-reconciler" {
				actions = append(actions, r.Action)
			}
		},
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(report.Checkpoints).To(BeNumerically(">", 0))
	g.Expect(actions).To(ContainElements(audit.ActionIdentityBound, audit.ActionLeaseIssued, audit.ActionAgentReviewed))

	// The manager's log (its audit records on stdout included) and the
	// audit store never hold the token.
	g.Expect(filepath.Join(state, "manager.log")).To(BeAnExistingFile())
	for _, path := range []string{filepath.Join(state, "manager.log"), filepath.Join(state, auditDirName)} {
		g.Expect(containsInTree(path, token[len(token)-32:])).To(BeFalse(), "the lease's token leaked into %s", path)
	}

	// custos-sts closed its trail too, signed with the same key: alice's
	// exchanges (for the Toolset; for the gateway, twice, by the agent; for
	// the Toolset by the gateway, once, for the call it let through) and
	// bob's refusal are on it, and none of the tokens.
	var stsActions []string
	stsTraces := map[string][]string{}
	report, err = audit.Verify(filepath.Join(state, stsAuditDirName), audit.VerifyOptions{
		Key: key,
		OnRecord: func(_ string, _ int, r *audit.Record) {
			if r.Type != audit.TypeEvent {
				return
			}
			if !r.Time.Before(frozeAt) {
				// The freeze's walk: its refusals are checked there.
				return
			}
			stsTraces[r.TraceID] = append(stsTraces[r.TraceID], r.Details["target"]+" "+r.Details["gateway"])
			if !slices.Contains(payments.traces, r.TraceID) {
				stsActions = append(stsActions, r.Action+" "+r.Details["person"]+" "+r.Details["target"]+" "+r.Details["gateway"])
			}
		},
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(report.Checkpoints).To(BeNumerically(">", 0))
	const ledger, gatewayID = "urn:custos:toolset:finance-agents:ledger-readonly", "spiffe://cluster.local/ns/custos-system/sa/custos-gateway"
	g.Expect(stsActions).To(ConsistOf(
		audit.ActionTokenExchanged+" alice "+ledger+" ",
		audit.ActionTokenRefused+" bob "+ledger+" ",
		audit.ActionTokenExchanged+" alice urn:custos:gateway:acme-finance ",
		audit.ActionTokenExchanged+" alice urn:custos:gateway:acme-finance ",
		audit.ActionTokenExchanged+" alice "+ledger+" "+gatewayID,
	))
	// custos-sts's records are in the calls' traces: the agent's exchange
	// for the gateway in both, the gateway's for the Toolset in the
	// allowed one's alone.
	g.Expect(stsTraces[calls.allowed]).To(ConsistOf("urn:custos:gateway:acme-finance ", ledger+" "+gatewayID))
	g.Expect(stsTraces[calls.refused]).To(ConsistOf("urn:custos:gateway:acme-finance "))
	// The payments: only the one that ran got a token for its Toolset.
	for _, trace := range payments.traces {
		want := []string{"urn:custos:gateway:acme-finance "}
		if trace == payments.ran {
			want = append(want, "urn:custos:toolset:finance-agents:ledger-payments "+gatewayID)
		}
		g.Expect(stsTraces[trace]).To(ConsistOf(want), "payment %s", trace)
	}
	for _, tok := range []string{aliceToken, bobToken, exchanged} {
		for _, path := range []string{filepath.Join(state, "custos-sts.log"), filepath.Join(state, stsAuditDirName)} {
			g.Expect(containsInTree(path, tok[len(tok)-32:])).To(BeFalse(), "a token leaked into %s", path)
		}
	}

	// custos-gateway closed its trail, signed with the same key: each call
	// is on it under the trace ID the caller sent, the allowed one with
	// every check passed, the refused one with the rule it broke.
	byTrace := map[string]*audit.Record{}
	paid := map[string][]string{}
	report, err = audit.Verify(filepath.Join(state, gatewayAuditDirName), audit.VerifyOptions{
		Key: key,
		OnRecord: func(_ string, _ int, r *audit.Record) {
			switch {
			case r.Type != audit.TypeEvent, !r.Time.Before(frozeAt):
			case slices.Contains(payments.traces, r.TraceID):
				paid[r.TraceID] = append(paid[r.TraceID], r.Action+" "+r.Policy+" "+r.Details["checks"])
			default:
				byTrace[r.TraceID] = r
			}
		},
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(report.Checkpoints).To(BeNumerically(">", 0))
	g.Expect(byTrace).To(HaveLen(2), "the gateway recorded more than the two calls: %v", byTrace)
	allowed, refused := byTrace[calls.allowed], byTrace[calls.refused]
	g.Expect(allowed).NotTo(BeNil(), "no record of trace %s", calls.allowed)
	g.Expect(refused).NotTo(BeNil(), "no record of trace %s", calls.refused)
	for _, r := range []*audit.Record{allowed, refused} {
		g.Expect(r.Subject.Namespace + "/" + r.Subject.Name).To(Equal(sampleAgent))
		g.Expect(r.Actor.Name).To(Equal("spiffe://cluster.local/ns/finance-agents/sa/agent-invoice-reconciler"))
		g.Expect(r.Details).To(HaveKeyWithValue("person", "alice"))
		g.Expect(r.Details).To(HaveKeyWithValue("tool", sampleCallTool))
		g.Expect(r.Details).To(HaveKeyWithValue("toolset", "finance-agents/ledger-readonly"))
	}
	// The payments: held (the request made), run once its approvers
	// approved (the approval consumed), held again (a new request).
	const heldChecks = "caller=pass agent=pass tool=pass rate=pass decision=pass input=pass approval=fail"
	g.Expect(paid[payments.traces[0]]).To(Equal([]string{
		audit.ActionApprovalRequested + " approval ",
		audit.ActionToolRefused + " ApprovalPending " + heldChecks,
	}))
	g.Expect(paid[payments.ran]).To(Equal([]string{
		audit.ActionApprovalConsumed + " approval ",
		audit.ActionToolCalled + " gateway caller=pass agent=pass tool=pass rate=pass decision=pass input=pass approval=pass drift=pass upstream=pass output=pass",
	}))
	g.Expect(paid[payments.traces[2]]).To(Equal(paid[payments.traces[0]]))
	g.Expect(allowed.Action).To(Equal(audit.ActionToolCalled))
	g.Expect(allowed.Decision).To(Equal(audit.DecisionAllow))
	g.Expect(allowed.Details).To(HaveKeyWithValue("outcome", "ok"))
	// The record as written to disk, through the trail's redaction: every
	// check and its result, none mistaken for a credential.
	g.Expect(allowed.Details["checks"]).To(Equal("caller=pass agent=pass tool=pass rate=pass decision=pass input=pass drift=pass upstream=pass output=pass"))
	g.Expect(allowed.Redacted).To(BeEmpty())
	g.Expect(refused.Action).To(Equal(audit.ActionToolRefused))
	g.Expect(refused.Decision).To(Equal(audit.DecisionDeny))
	g.Expect(refused.Policy).To(Equal("InvalidInput"))
	g.Expect(refused.Reason).To(Equal(calls.refusal))
	g.Expect(refused.Details["checks"]).To(Equal("caller=pass agent=pass tool=pass rate=pass decision=pass input=fail"))
	for _, tok := range []string{aliceToken, calls.gatewayToken} {
		for _, path := range []string{filepath.Join(state, "custos-gateway.log"), filepath.Join(state, gatewayAuditDirName), filepath.Join(state, ledgerLogName)} {
			g.Expect(containsInTree(path, tok[len(tok)-32:])).To(BeFalse(), "a token leaked into %s", path)
		}
	}
}

// gatewayCalls are the trace IDs of toolCallsThroughGateway's calls, the
// refusal's words, and the gateway's own ServiceAccount token.
type gatewayCalls struct {
	allowed, refused, refusal, gatewayToken string
}

// toolCallsThroughGateway is the tour's tool calls on make dev: the
// sample agent calls the sample Toolset's get_invoice for alice through
// custos-gateway (the call command, as the tour runs it) and gets the
// invoice, which the tool server answered to a token for its Toolset
// alone; a call with an invoice number the pinned schema does not allow
// is refused, naming the argument and the rule.
func toolCallsThroughGateway(t *testing.T, g Gomega, bin, state, alice string) gatewayCalls {
	t.Helper()
	start := time.Now()
	call := func(arguments string) (stdout, stderr, traceID string, err error) {
		cmd := exec.Command(filepath.Join(bin, "custos-dev"), "call", "--state-dir", state, sampleCallTool, arguments)
		cmd.Stdin = strings.NewReader(alice)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err = cmd.Run()
		m := regexp.MustCompile(`trace ID ([0-9a-f]{32})\n`).FindStringSubmatch(errOut.String())
		g.Expect(m).To(HaveLen(2), "custos-dev call prints no trace ID: %s", errOut.String())
		return out.String(), errOut.String(), m[1], err
	}
	out, errOut, allowed, err := call(sampleCallArguments)
	g.Expect(err).NotTo(HaveOccurred(), "custos-dev call: %s%s", out, errOut)
	g.Expect(errOut).To(MatchRegexp(`alice's token and pod finance-agents/agent-invoice-reconciler-[a-z0-9-]+'s exchanged at custos-sts for one for urn:custos:gateway:acme-finance \(scope (ledger-readonly.read ledger-payments.write|ledger-payments.write ledger-readonly.read)\)`))
	var invoice map[string]any
	g.Expect(json.Unmarshal([]byte(out), &invoice)).To(Succeed(), "%s", out)
	g.Expect(invoice).To(Equal(map[string]any{"invoiceNumber": "INV-000001", "supplier": "Acme Paper GmbH", "amount": 120.5, "currency": "EUR"}))

	const refusal = `tool ledger-readonly.get_invoice: argument /invoiceNumber: 'INV-42' does not match pattern '^INV-[0-9]{6}$' (its Toolset's inputSchema)`
	out, errOut, refused, err := call(`{"invoiceNumber":"INV-42"}`)
	g.Expect(err).To(HaveOccurred(), "a call with bad input must fail: %s", out)
	g.Expect(strings.TrimSpace(out)).To(Equal(refusal))
	g.Expect(errOut).To(ContainSubstring("an error result (isError): the gateway refused the call, or the tool failed"))

	// The tool server took tokens for its Toolset, alice's with the agent
	// acting, and nothing else; it saw none for the refused call.
	log, err := os.ReadFile(filepath.Join(state, ledgerLogName))
	g.Expect(err).NotTo(HaveOccurred())
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	g.Expect(lines).NotTo(BeEmpty())
	for _, line := range lines {
		if strings.Contains(line, " called ") {
			continue
		}
		g.Expect(line).To(Or(
			ContainSubstring(" took a token for urn:custos:toolset:finance-agents:ledger-readonly: "+
				"spiffe://cluster.local/ns/finance-agents/sa/agent-invoice-reconciler for alice, scope \"ledger-readonly.read\""),
			ContainSubstring(" took a token for urn:custos:toolset:finance-agents:ledger-payments: "+
				"spiffe://cluster.local/ns/finance-agents/sa/agent-invoice-reconciler for alice, scope \"ledger-payments.write\"")))
	}
	// One trace from the agent to the tool server, read back from make
	// dev's OTLP receiver: the agent's span; custos-sts's exchange for the
	// gateway under it; the gateway's call span under it, and under that
	// the call upstream, the gateway's exchange for the Toolset and
	// custos-sts's span of it; the tool server got the upstream span as
	// its parent. The refused call's trace stops at the gateway.
	base, err := readStateFile(state, tracesURLFileName)
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spans, err := waitForTrace(ctx, base, allowed)
	g.Expect(err).NotTo(HaveOccurred())
	byName := map[string]otlptest.Span{}
	for _, sp := range spans {
		g.Expect(sp.TraceID).To(Equal(allowed))
		byName[sp.Service+": "+sp.Name] = sp
	}
	agentSpan := byName["agent "+sampleAgent+": agent calls "+sampleCallTool]
	callSpan := byName["custos-gateway: tools/call "+sampleCallTool]
	upstream := byName["custos-gateway: upstream tools/call get_invoice"]
	gwExchange := byName["custos-gateway: token exchange"]
	g.Expect(slices.Sorted(maps.Keys(byName))).To(ConsistOf(
		"agent "+sampleAgent+": agent calls "+sampleCallTool, "custos-sts: token exchange",
		"custos-gateway: tools/call "+sampleCallTool, "custos-gateway: upstream tools/call get_invoice", "custos-gateway: token exchange"))
	g.Expect(spans).To(HaveLen(6), "two custos-sts exchanges and four spans of the others: %+v", spans)
	g.Expect(agentSpan.ParentSpanID).To(BeEmpty())
	g.Expect(callSpan.ParentSpanID).To(Equal(agentSpan.SpanID))
	g.Expect(upstream.ParentSpanID).To(Equal(callSpan.SpanID))
	g.Expect(gwExchange.ParentSpanID).To(Equal(upstream.SpanID))
	var stsParents []string
	for _, sp := range spans {
		if sp.Service == "custos-sts" {
			stsParents = append(stsParents, sp.ParentSpanID)
		}
	}
	g.Expect(stsParents).To(ConsistOf(agentSpan.SpanID, gwExchange.SpanID))
	g.Expect(string(log)).To(ContainSubstring("called get_invoice, traceparent 00-" + allowed + "-" + upstream.SpanID + "-01"))
	spans, err = waitForTrace(ctx, base, refused)
	g.Expect(err).NotTo(HaveOccurred())
	var refusedCall *otlptest.Span
	for i, sp := range spans {
		g.Expect(sp.Name).NotTo(ContainSubstring("upstream"), "the refused call went upstream")
		if sp.Service == "custos-gateway" {
			refusedCall = &spans[i]
		}
	}
	g.Expect(refusedCall).NotTo(BeNil(), "no gateway span in the refused call's trace: %+v", spans)
	g.Expect(refusedCall.Error).To(BeTrue())
	g.Expect(refusedCall.Attributes).To(HaveKeyWithValue("custos.reason", "InvalidInput"))
	g.Expect(errOut).To(ContainSubstring(`custos-gateway: tools/call ` + sampleCallTool + ` (server,`))

	gatewayToken, err := os.ReadFile(filepath.Join(state, gatewayTokenFileName))
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("the calls through the gateway took %s", time.Since(start).Round(time.Millisecond))
	return gatewayCalls{allowed: allowed, refused: refused, refusal: refusal, gatewayToken: string(gatewayToken)}
}

// personThroughAgent is the tour's delegation on make dev: alice logs in at
// the identity provider with authorization code + PKCE (the login command,
// as the tour runs it), a code redeemed with another verifier is refused,
// and custos-sts exchanges alice's token and the sample agent pod's for a
// token for the agent's Toolset, with alice as its subject and the agent
// as its actor; bob, whom the agent may not act for, is refused. It
// returns the people's tokens and the exchanged one.
func personThroughAgent(t *testing.T, g Gomega, bin, assets, kubeconfig, state string) (alice, bob, exchanged string) {
	t.Helper()
	start := time.Now()
	login := exec.Command(filepath.Join(bin, "custos-dev"), "login", "--state-dir", state, "alice")
	var stderr strings.Builder
	login.Stderr = &stderr
	out, err := login.Output()
	g.Expect(err).NotTo(HaveOccurred(), "custos-dev login alice: %s", stderr.String())
	g.Expect(stderr.String()).To(ContainSubstring("alice logged in at https://127.0.0.1:"))
	alice = strings.TrimSpace(string(out))
	var person struct {
		Iss    string   `json:"iss"`
		Sub    string   `json:"sub"`
		Aud    []string `json:"aud"`
		Groups []string `json:"groups"`
		Scope  string   `json:"scope"`
	}
	g.Expect(decodeJWT(alice, &person)).To(Succeed())
	idp, err := readIdPClient(state)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(person.Iss).To(Equal(idp.Issuer))
	g.Expect(person.Iss).To(HavePrefix("https://127.0.0.1:"))
	g.Expect(person.Sub).To(Equal("alice"))
	g.Expect(person.Aud).To(ConsistOf(idpClientID))
	g.Expect(person.Groups).To(ConsistOf("finance-clerks"))
	g.Expect(strings.Fields(person.Scope)).To(ConsistOf("ledger-readonly.read", "ledger-payments.write"))

	// PKCE holds: a code redeemed with another verifier (one stolen from
	// the redirect) gets no token, and a request without a challenge gets
	// no code.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = pkceLogin(ctx, idp, loginRequest{Person: "alice", Scope: defaultLoginScope, Verifier: randomString(32)})
	g.Expect(err).To(MatchError(And(ContainSubstring("invalid_grant"), ContainSubstring("code verifier"))))
	pem, err := os.ReadFile(filepath.Join(state, tlsDirName, caFileName))
	g.Expect(err).NotTo(HaveOccurred())
	roots := x509.NewCertPool()
	g.Expect(roots.AppendCertsFromPEM(pem)).To(BeTrue())
	https := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer https.CloseIdleConnections()
	resp, err := https.Get(idp.Issuer + "/authorize?" + url.Values{"client_id": {idp.ClientID}, "response_type": {"code"}, "scope": {"openid"},
		"state": {"s"}, "login_hint": {"alice"}, "redirect_uri": {"http://127.0.0.1:9/callback"}}.Encode())
	g.Expect(err).NotTo(HaveOccurred())
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusBadRequest), "%s", body)
	g.Expect(string(body)).To(ContainSubstring("PKCE is required"))
	bobTokens, err := pkceLogin(ctx, idp, loginRequest{Person: "bob", Scope: defaultLoginScope})
	g.Expect(err).NotTo(HaveOccurred())
	bob = bobTokens.IDToken

	// The actor token is the agent pod's, as the tour mints it.
	out, err = exec.Command(filepath.Join(assets, "kubectl"), "--kubeconfig", kubeconfig, "get", "pods", "-n", "finance-agents",
		"-l", "custos.dev/agent=invoice-reconciler", "-o", "jsonpath={.items[0].metadata.name}").CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	out, err = exec.Command(filepath.Join(assets, "kubectl"), "--kubeconfig", kubeconfig, "create", "token", "agent-invoice-reconciler",
		"-n", "finance-agents", "--audience", "custos-sts", "--bound-object-kind", "Pod", "--bound-object-name", string(out)).Output()
	g.Expect(err).NotTo(HaveOccurred())
	actor := strings.TrimSpace(string(out))

	issuer, err := os.ReadFile(filepath.Join(state, stsIssuerFileName))
	g.Expect(err).NotTo(HaveOccurred())
	sts := strings.TrimSpace(string(issuer))
	g.Expect(sts).To(MatchRegexp(`^https://127\.0\.0\.1:[0-9]+/tenants/acme-finance$`))
	exchange := func(subject string) (int, map[string]any) {
		resp, err := https.PostForm(sts+"/token", url.Values{
			"grant_type":    {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token": {subject}, "subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"},
			"actor_token": {actor}, "actor_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
			"resource": {"urn:custos:toolset:finance-agents:ledger-readonly"},
		})
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		var body map[string]any
		g.Expect(json.NewDecoder(resp.Body).Decode(&body)).To(Succeed())
		return resp.StatusCode, body
	}
	status, body2 := exchange(alice)
	g.Expect(status).To(Equal(http.StatusOK), "%v", body2)
	exchanged, _ = body2["access_token"].(string)
	var claims struct {
		Iss     string   `json:"iss"`
		Sub     string   `json:"sub"`
		Aud     string   `json:"aud"`
		Scope   string   `json:"scope"`
		Groups  []string `json:"groups"`
		OrigIss string   `json:"custos_orig_iss"`
		Act     struct {
			Sub string `json:"sub"`
		} `json:"act"`
	}
	g.Expect(decodeJWT(exchanged, &claims)).To(Succeed())
	g.Expect(claims.Iss).To(Equal(sts))
	g.Expect(claims.Sub).To(Equal("alice"))
	g.Expect(claims.Act.Sub).To(Equal("spiffe://cluster.local/ns/finance-agents/sa/agent-invoice-reconciler"))
	g.Expect(claims.Aud).To(Equal("urn:custos:toolset:finance-agents:ledger-readonly"))
	g.Expect(claims.Scope).To(Equal("ledger-readonly.read"))
	g.Expect(claims.Groups).To(ConsistOf("finance-clerks"))
	g.Expect(claims.OrigIss).To(Equal(idp.Issuer))

	status, body2 = exchange(bob)
	g.Expect(status).To(Equal(http.StatusBadRequest), "%v", body2)
	g.Expect(body2["error_description"]).To(ContainSubstring("may not act for bob"))
	t.Logf("logins, the refused verifier and the exchanges took %s", time.Since(start).Round(time.Millisecond))
	return alice, bob, exchanged
}

// containsInTree reports whether the file at path, or any file under it,
// contains s.
func containsInTree(path, s string) bool {
	found := false
	_ = filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if data, err := os.ReadFile(p); err == nil && strings.Contains(string(data), s) {
			found = true
		}
		return nil
	})
	return found
}

// processesMentioning lists the command lines of running processes that
// contain s.
func processesMentioning(s string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if c := strings.ReplaceAll(string(cmdline), "\x00", " "); strings.Contains(c, s) {
			found = append(found, e.Name()+": "+c)
		}
	}
	return found
}

// paymentApproved: the sample agent's payment for alice is held
// (ApprovalPending, naming its request), alice cannot approve it herself,
// two approvers (make dev's carol and dave, through the plugin) approve it,
// the retried call runs once (the ledger sees one payment), and the same
// payment again waits for a new approval.
func paymentApproved(t *testing.T, g Gomega, bin, kubeconfig, state, alice string) (p payments) {
	t.Helper()
	const payment = `{"invoice":"INV-000001","amount":120.5}`
	pay := func() (string, error) {
		cmd := exec.Command(filepath.Join(bin, "custos-dev"), "call", "--state-dir", state, "ledger-payments.pay", payment)
		cmd.Stdin = strings.NewReader(alice)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		m := regexp.MustCompile(`trace ID ([0-9a-f]{32})\n`).FindStringSubmatch(errOut.String())
		g.Expect(m).To(HaveLen(2), "custos-dev call prints no trace ID: %s", errOut.String())
		p.traces = append(p.traces, m[1])
		return out.String(), err
	}
	held := regexp.MustCompile(`tool ledger-payments.pay waits for approval: approval request finance-agents/(invoice-reconciler-[0-9a-f]{16}-([0-9]+)) has 0 of 2 approval\(s\)`)
	out, err := pay()
	g.Expect(err).To(HaveOccurred(), "a payment must wait for its approvers: %s", out)
	m := held.FindStringSubmatch(out)
	g.Expect(m).To(HaveLen(3), "%s", out)
	request := m[1]
	g.Expect(m[2]).To(Equal("1"))

	plugin := func(args ...string) (string, error) {
		out, err := exec.Command(filepath.Join(bin, "kubectl-custos"), append(args, "--kubeconfig", kubeconfig, "-n", "finance-agents")...).CombinedOutput()
		return string(out), err
	}
	out, err = plugin("pending")
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	g.Expect(out).To(ContainSubstring(request))
	// The person the agent acts for may not approve her own payment.
	out, err = plugin("approve", request, "--as", "alice", "--comment", "mine")
	g.Expect(err).To(HaveOccurred(), "%s", out)
	g.Expect(out).To(ContainSubstring("alice is the person the agent acts for: nobody approves their own request (separationOfDuties.excludePerson) [SeparationOfDuties.Person]"))
	out, err = plugin("approve", request, "--as", "carol", "--comment", "matches PO 4711")
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	g.Expect(out).To(ContainSubstring("(as carol)"))
	out, err = plugin("approve", request, "--as", "dave", "--comment", "second pair of eyes", "--wait")
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	g.Expect(out).To(ContainSubstring("is Approved (2/2 approvals)"))

	out, err = pay()
	g.Expect(err).NotTo(HaveOccurred(), "the approved payment: %s", out)
	g.Expect(out).To(MatchRegexp(`"paymentId": ?"PAY-[0-9]{6}"`))
	// Once: the same payment again is a new request.
	out, err = pay()
	g.Expect(err).To(HaveOccurred(), "%s", out)
	m = held.FindStringSubmatch(out)
	g.Expect(m).To(HaveLen(3), "%s", out)
	g.Expect(m[2]).To(Equal("2"))
	log, err := os.ReadFile(filepath.Join(state, ledgerLogName))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.Count(string(log), "called pay,")).To(Equal(1), "%s", log)
	p.ran = p.traces[1]
	return p
}

// agentChangeApproved applies an ApprovalPolicy that holds Agent changes,
// gives the sample agent another AWS role, and walks the README's tour:
// the role in force stays until carol and dave approve; the owner (make
// dev's admin) may not.
func agentChangeApproved(t *testing.T, g Gomega, bin, assets, kubeconfig string) {
	t.Helper()
	kubectl := func(stdin string, args ...string) string {
		cmd := exec.Command(filepath.Join(assets, "kubectl"), append([]string{"--kubeconfig", kubeconfig, "-n", "finance-agents"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), "kubectl %v: %s", args, out)
		return string(out)
	}
	kubectl(`apiVersion: custos.dev/v1alpha1
kind: ApprovalPolicy
metadata: {name: agent-changes, namespace: finance-agents}
spec: {agentChanges: true, match: {irreversible: false}, quorum: 2, timeout: 24h}
`, "apply", "-f", "-")
	const before, after = "arn:aws:iam::111122223333:role/acme-finance-invoice-reconciler", "arn:aws:iam::111122223333:role/acme-finance-payments"
	kubectl("", "patch", "agent", "invoice-reconciler", "--type", "merge", "-p", `{"spec":{"identity":{"aws":{"roleARN":"`+after+`"}}}}`)
	var request string
	g.Eventually(func(g Gomega) {
		out := kubectl("", "get", "agent", "invoice-reconciler", "-o",
			`jsonpath={.status.conditions[?(@.type=="ChangesApproved")].reason} {.status.granted.identity.aws.roleARN} {.status.conditions[?(@.type=="ChangesApproved")].message}`)
		m := regexp.MustCompile(`^ApprovalRequired (\S+) .*ApprovalRequest (invoice-reconciler-g2-[0-9a-f]{8}) is approved \(0 of 2`).FindStringSubmatch(out)
		g.Expect(m).To(HaveLen(3), "%s", out)
		g.Expect(m[1]).To(Equal(before), "the role in force until approved")
		request = m[2]
	}).WithTimeout(30 * time.Second).Should(Succeed())
	plugin := func(args ...string) (string, error) {
		out, err := exec.Command(filepath.Join(bin, "kubectl-custos"), append(args, "--kubeconfig", kubeconfig, "-n", "finance-agents")...).CombinedOutput()
		return string(out), err
	}
	out, err := plugin("pending")
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	g.Expect(out).To(MatchRegexp(request + `\s+Pending\s+invoice-reconciler\s+\(generation 2\)`))
	out, err = plugin("approve", request, "--comment", "my own change")
	g.Expect(err).To(HaveOccurred(), "%s", out)
	g.Expect(out).To(ContainSubstring("[SeparationOfDuties.Owner]"))
	out, err = plugin("approve", request, "--as", "carol")
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	out, err = plugin("approve", request, "--as", "dave", "--wait")
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	g.Eventually(func(g Gomega) {
		out := kubectl("", "get", "agent", "invoice-reconciler", "-o",
			`jsonpath={.status.conditions[?(@.type=="ChangesApproved")].reason} {.status.granted.identity.aws.roleARN} {.status.granted.approvalRequest}`)
		g.Expect(out).To(Equal("Succeeded " + after + " " + request))
		g.Expect(kubectl("", "get", "approvalrequest", request, "-o", "jsonpath={.status.phase}")).To(Equal("Consumed"))
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// breakerLearns: the gateway reports what the sample agent took, and
// kubectl custos top shows the manager's breaker learning it (its first 7
// days are observed), as the README's tour does.
func breakerLearns(g Gomega, bin, assets, kubeconfig string) {
	g.Eventually(func(g Gomega) {
		out, err := exec.Command(filepath.Join(assets, "kubectl"), "--kubeconfig", kubeconfig, "get", "configmap", "-n", gatewayCredentialsNamespace,
			"custos-usage-"+gatewayName, "-o", "jsonpath={.data}").CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), "%s", out)
		g.Expect(string(out)).To(ContainSubstring(`"finance-agents.invoice-reconciler":`))
	}).WithTimeout(45 * time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) {
		out, err := exec.Command(filepath.Join(bin, "kubectl-custos"), "top", "-A", "--kubeconfig", kubeconfig).CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), "%s", out)
		g.Expect(string(out)).To(MatchRegexp(`(?m)^finance-agents +invoice-reconciler +[0-9]+ +[0-9]+ +[0-9.]+/8 +Medium, Observe \(first days\) +Active, learning until `))
	}).WithTimeout(45 * time.Second).Should(Succeed())
}

// agentFrozen walks the README's freeze: the owner (make dev's admin)
// freezes the sample agent; its calls are refused at once, and it is held
// Frozen with no pod and deny-all; the owner may not lift the freeze; rita,
// the risk owner, lifts it with a verdict, and the agent calls again.
func agentFrozen(t *testing.T, g Gomega, bin, assets, kubeconfig, state, alice string) {
	t.Helper()
	kubectl := func(args ...string) string {
		out, err := exec.Command(filepath.Join(assets, "kubectl"), append([]string{"--kubeconfig", kubeconfig, "-n", "finance-agents"}, args...)...).CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), "kubectl %v: %s", args, out)
		return string(out)
	}
	plugin := func(args ...string) (string, error) {
		out, err := exec.Command(filepath.Join(bin, "kubectl-custos"), append(args, "--kubeconfig", kubeconfig, "-n", "finance-agents")...).CombinedOutput()
		return string(out), err
	}
	call := func() (string, error) {
		cmd := exec.Command(filepath.Join(bin, "custos-dev"), "call", "--state-dir", state, sampleCallTool, sampleCallArguments)
		cmd.Stdin = strings.NewReader(alice)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := plugin("freeze", "invoice-reconciler", "--reason", "paying an IBAN nobody knows")
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	m := regexp.MustCompile(`agentfreeze finance-agents/(invoice-reconciler-[a-z0-9]+) created: invoice-reconciler frozen`).FindStringSubmatch(out)
	g.Expect(m).To(HaveLen(2), "%s", out)
	freeze := m[1]
	// Refused from the moment the freeze exists; then no pod runs as it.
	out, err = call()
	g.Expect(err).To(HaveOccurred(), "a frozen agent's call: %s", out)
	// Whichever comes first: the freeze itself, or its pod going (the
	// call's token is the pod's, which the freeze takes away: no pod, a
	// terminating one, its token invalidated).
	g.Expect(out).To(MatchRegexp(`frozen by AgentFreeze ` + freeze + `|custos-sts refused the exchange|has no pod|pods "agent-invoice-reconciler-[a-z0-9-]+" not found`))
	g.Eventually(func(g Gomega) {
		out := kubectl("get", "agent", "invoice-reconciler", "-o", "jsonpath={.status.lifecycle.phase} {.status.lifecycle.freeze} {.status.conditions[?(@.type==\"Ready\")].reason}")
		g.Expect(out).To(Equal("Frozen " + freeze + " Frozen"))
		g.Expect(kubectl("get", "deployment", "agent-invoice-reconciler", "-o", "jsonpath={.spec.replicas}")).To(Equal("0"))
		g.Expect(kubectl("get", "networkpolicy", "agent-invoice-reconciler", "-o", "jsonpath={.spec.egress}")).To(BeEmpty())
	}).WithTimeout(60 * time.Second).WithPolling(time.Second).Should(Succeed())

	out, err = plugin("unfreeze", "invoice-reconciler", "--verdict", "false-positive", "--reason", "my own agent")
	g.Expect(err).To(HaveOccurred(), "the owner lifts the freeze: %s", out)
	g.Expect(out).To(ContainSubstring("SeparationOfDuties.Owner"))
	out, err = plugin("unfreeze", "invoice-reconciler", "--as", "rita", "--verdict", "false-positive", "--reason", "month-end batch, expected")
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	g.Expect(out).To(ContainSubstring(freeze + " lifted (FalsePositive)"))
	g.Eventually(func(g Gomega) {
		g.Expect(kubectl("get", "agentfreeze", freeze, "-o", "jsonpath={.status.phase} {.status.liftedBy.username} {.status.verdict}")).
			To(Equal("Lifted rita FalsePositive"))
		g.Expect(kubectl("get", "agent", "invoice-reconciler", "-o", "jsonpath={.status.lifecycle.phase}")).To(Equal("Active"))
		out, err := call()
		g.Expect(err).NotTo(HaveOccurred(), "the agent's call once the freeze is lifted: %s", out)
	}).WithTimeout(90 * time.Second).WithPolling(2 * time.Second).Should(Succeed())
}

// reportNarrowed: the sample agent's AgentReport of this month counts its
// calls and recommends narrowing it to the tools it called (it never
// called list_ledger_entries), as a patch; applied by its owner (make
// dev's admin), the agent still calls get_invoice through the gateway and
// no longer list_ledger_entries; the owner signs the report off, as
// themselves.
func reportNarrowed(t *testing.T, g Gomega, bin, assets, kubeconfig, state, alice string) {
	t.Helper()
	plugin := func(args ...string) (string, error) {
		out, err := exec.Command(filepath.Join(bin, "kubectl-custos"), append(args, "--kubeconfig", kubeconfig, "-n", "finance-agents")...).CombinedOutput()
		return string(out), err
	}
	period := time.Now().UTC().Format("2006-01")
	var patch string
	g.Eventually(func(g Gomega) {
		out, err := plugin("report", "invoice-reconciler", "--period", period)
		g.Expect(err).NotTo(HaveOccurred(), "%s", out)
		g.Expect(out).To(MatchRegexp(`calls: +[1-9][0-9]* \(`))
		g.Expect(out).To(MatchRegexp(`recommendation: +Narrow: it called [0-9]+ of the [0-9]+ tools it holds in ` + period + ` so far; not .*ledger-readonly\.list_ledger_entries`))
		m := regexp.MustCompile(`patch: +kubectl patch agent invoice-reconciler -n finance-agents --type merge -p '(.*)'`).FindStringSubmatch(out)
		g.Expect(m).To(HaveLen(2), "%s", out)
		patch = m[1]
	}).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed())
	g.Expect(patch).To(ContainSubstring(`{"name":"ledger-readonly","tools":["get_invoice"]}`))
	out, err := exec.Command(filepath.Join(assets, "kubectl"), "--kubeconfig", kubeconfig, "-n", "finance-agents",
		"patch", "agent", "invoice-reconciler", "--type", "merge", "-p", patch).CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	call := func(tool, args string) (string, error) {
		cmd := exec.Command(filepath.Join(bin, "custos-dev"), "call", "--state-dir", state, tool, args)
		cmd.Stdin = strings.NewReader(alice)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	g.Eventually(func(g Gomega) {
		out, err := call("ledger-readonly.list_ledger_entries", "{}")
		g.Expect(err).To(HaveOccurred(), "narrowed: %s", out)
		g.Expect(out).To(ContainSubstring(`custos.reason="UnknownTool"`))
	}).WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Succeed())
	out2, err := call(sampleCallTool, sampleCallArguments)
	g.Expect(err).NotTo(HaveOccurred(), "the agent's call of a tool it kept: %s", out2)

	out, err = exec.Command(filepath.Join(bin, "kubectl-custos"), "attest", "invoice-reconciler", "--kubeconfig", kubeconfig, "-n", "finance-agents",
		"--report", period, "--comment", "narrowed to what it uses").CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	g.Expect(string(out)).To(MatchRegexp(`agentreport invoice-reconciler-` + strings.ReplaceAll(period, "-", "") + `-[0-9a-f]{8} signed off \(as admin\)`))
	g.Eventually(func(g Gomega) {
		out, err := plugin("report", "invoice-reconciler", "--period", period)
		g.Expect(err).NotTo(HaveOccurred(), "%s", out)
		g.Expect(out).To(MatchRegexp(`signed off: +by admin .*: narrowed to what it uses`))
	}).WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Succeed())
}

// payments are the trace IDs of paymentApproved's calls, and the one that
// ran.
// findingsReviewed: within a minute of the payment that ran (irreversible,
// with no decision record, so no stated confidence), the evaluator has
// opened its Findings from the gateway's trail, citing the call's record
// and trace; the owner (make dev's admin) may not dismiss one, a risk
// owner (rita) may, as herself.
func findingsReviewed(t *testing.T, g Gomega, bin, assets, kubeconfig string, p payments) {
	t.Helper()
	plugin := func(args ...string) (string, error) {
		out, err := exec.Command(filepath.Join(bin, "kubectl-custos"), append(args, "--kubeconfig", kubeconfig, "-n", "finance-agents")...).CombinedOutput()
		return string(out), err
	}
	name := "invoice-reconciler-low-confidence-" + time.Now().UTC().Format("20060102")
	g.Eventually(func(g Gomega) {
		out, err := plugin("findings")
		g.Expect(err).NotTo(HaveOccurred(), "%s", out)
		g.Expect(out).To(MatchRegexp(`(?m)^` + name + `\s+invoice-reconciler\s+low-confidence\s+High\s+100\s+1\s+-\s+Open\s`))
		g.Expect(out).To(ContainSubstring("invoice-reconciler-no-decision-record-"))
	}).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed())
	out, err := exec.Command(filepath.Join(assets, "kubectl"), "--kubeconfig", kubeconfig, "get", "finding", "-n", "finance-agents", name,
		"-o", "jsonpath={.status.evidence[0].auditLogID} {.status.evidence[0].traceIDs[0]}").CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	g.Expect(string(out)).To(MatchRegexp(`^custos-gateway/dev-0@[0-9a-f]{12} ` + p.ran + `$`))

	said, err := plugin("review", name, "--verdict", "dismissed", "--reason", "approved by carol and dave")
	g.Expect(err).To(HaveOccurred(), "%s", said)
	g.Expect(said).To(ContainSubstring("SeparationOfDuties.Owner"))
	said, err = plugin("review", name, "--as", "rita", "--verdict", "dismissed", "--reason", "approved by carol and dave")
	g.Expect(err).NotTo(HaveOccurred(), "%s", said)
	g.Expect(said).To(ContainSubstring("Dismissed (as rita)"))
	g.Eventually(func(g Gomega) {
		out, err := plugin("findings")
		g.Expect(err).NotTo(HaveOccurred(), "%s", out)
		g.Expect(out).NotTo(ContainSubstring(name))
	}).WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Succeed())
}

type payments struct {
	traces []string
	ran    string
}
