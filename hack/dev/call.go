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
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/custos-dev/custos/internal/identity"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/internal/tracing"
	"github.com/custos-dev/custos/test/otlptest"
)

// The call command: `custos-dev call TOOL ARGUMENTS < TOKEN` does what the
// sample agent does to call a tool for a person (docs/sts.md, "Who calls
// whom", steps 1 and 2): it exchanges the person's token, with its pod's
// ServiceAccount token as the actor token, at custos-sts for a token for
// the tenant's gateway, and calls the tool through custos-gateway with it
// (MCP tools/call, a W3C traceparent in _meta). The gateway does the rest:
// it checks the call, exchanges the token for one for the Toolset alone
// and calls the tool server with that.

// The sample agent, and the call make dev suggests.
const (
	sampleAgent         = "finance-agents/invoice-reconciler"
	sampleCallTool      = "ledger-readonly.get_invoice"
	sampleCallArguments = `{"invoiceNumber":"INV-000001"}`
)

func callMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", ".dev", "make dev's state directory, which holds kubeconfig, "+stsIssuerFileName+" and "+gatewayURLFileName+".")
	agent := fs.String("agent", sampleAgent, "The agent that calls, as namespace/name: a token of its pod is the actor token.")
	showTrace := fs.Bool("trace", true, "Read the call's trace back from make dev's trace receiver and print it.")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s call [flags] TOOL [ARGUMENTS] < PERSON-TOKEN\n\n"+
			"Calls TOOL (<toolset>.<tool>) with ARGUMENTS (a JSON object) through make dev's custos-gateway, as the agent, for the\n"+
			"person whose token (custos-dev login) is on standard input, and prints the result.\n\n", filepath.Base(os.Args[0]))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ns, name, ok := strings.Cut(*agent, "/")
	if fs.NArg() < 1 || fs.NArg() > 2 || !ok {
		fs.Usage()
		return 2
	}
	arguments := json.RawMessage("{}")
	if fs.NArg() == 2 {
		arguments = json.RawMessage(fs.Arg(1))
	}
	if err := json.Unmarshal(arguments, new(map[string]any)); err != nil {
		fmt.Fprintf(stderr, "custos-dev call: ARGUMENTS is not a JSON object: %v\n", err)
		return 2
	}
	in, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
	if err != nil {
		fmt.Fprintf(stderr, "custos-dev call: %v\n", err)
		return 1
	}
	person := strings.TrimSpace(string(in))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, traceID, err := call(ctx, *stateDir, ns, name, person, fs.Arg(0), arguments, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "custos-dev call: %v\n", err)
		return 1
	}
	if *showTrace {
		if err := printTrace(ctx, *stateDir, traceID, stderr); err != nil {
			fmt.Fprintf(stderr, "custos-dev call: reading the trace back: %v\n", err)
		}
	}
	if res.StructuredContent != nil {
		out, _ := json.MarshalIndent(res.StructuredContent, "", "  ")
		fmt.Fprintln(stdout, string(out))
	} else {
		for _, c := range res.Content {
			if text, ok := c.(*mcp.TextContent); ok {
				fmt.Fprintln(stdout, text.Text)
			}
		}
	}
	if res.IsError {
		fmt.Fprintln(stderr, "custos-dev call: an error result (isError): the gateway refused the call, or the tool failed")
		return 1
	}
	return 0
}

// call makes the call, saying on log what it does.
func call(ctx context.Context, stateDir, ns, name, person, tool string, arguments json.RawMessage, log io.Writer) (_ *mcp.CallToolResult, traceID string, err error) {
	issuer, err := readStateFile(stateDir, stsIssuerFileName)
	if err != nil {
		return nil, "", err
	}
	endpoint, err := readStateFile(stateDir, gatewayURLFileName)
	if err != nil {
		return nil, "", err
	}
	_, tenant, _ := strings.Cut(issuer, "/tenants/")
	https, err := caClient(filepath.Join(stateDir, tlsDirName, caFileName))
	if err != nil {
		return nil, "", err
	}
	// The agent's side of the trace: its span is the root, and its trace
	// context goes to custos-sts in a header and to the gateway in the
	// call's _meta. Its spans go to make dev's receiver, when it runs.
	otlp, _ := readStateFile(stateDir, otlpEndpointFileName)
	stopTracing, err := tracing.Setup(ctx, "agent "+ns+"/"+name, tracing.Options{Endpoint: otlp, Insecure: true})
	if err != nil {
		return nil, "", err
	}
	defer func() {
		if err := stopTracing(context.WithoutCancel(ctx)); err != nil {
			fmt.Fprintf(log, "custos-dev call: sending the agent's span: %v\n", err)
		}
	}()
	ctx, span := otel.Tracer("custos.dev/dev").Start(ctx, "agent calls "+tool, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	traceID = span.SpanContext().TraceID().String()
	https = &http.Client{Timeout: https.Timeout, Transport: tracing.Transport(https.Transport)}
	res, err := callTraced(ctx, https, issuer, endpoint, tenant, stateDir, ns, name, person, tool, arguments, traceID, log)
	return res, traceID, err
}

func callTraced(ctx context.Context, https *http.Client, issuer, endpoint, tenant, stateDir, ns, name, person, tool string, arguments json.RawMessage,
	traceID string, log io.Writer) (*mcp.CallToolResult, error) {

	// 1. The agent's token for the gateway: the person's token, and the
	// agent pod's ServiceAccount token as the actor token, at custos-sts.
	actor, pod, err := agentPodToken(ctx, filepath.Join(stateDir, "kubeconfig"), ns, name)
	if err != nil {
		return nil, err
	}
	token, err := exchange(ctx, https, issuer+"/token", gatewayExchange(person, actor, tenant))
	if err != nil {
		return nil, err
	}
	var claims sts.Claims
	if err := decodeJWT(token, &claims); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "custos-dev call: %s's token and pod %s/%s's exchanged at custos-sts for one for %s (scope %s)\n",
		claims.Subject, ns, pod, claims.Audience, claims.Scope)

	// 2. The call, with that token, through the gateway; the trace ID is
	// the call's in the gateway's audit record.
	meta := mcp.Meta{}
	tracing.ToMeta(ctx, meta)
	fmt.Fprintf(log, "custos-dev call: %s at %s, trace ID %s\n", tool, endpoint, traceID)
	session, err := connectGateway(ctx, endpoint, token, https.Transport)
	if err != nil {
		return nil, fmt.Errorf("connecting to the gateway: %w", err)
	}
	defer session.Close()
	return session.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: arguments, Meta: meta})
}

// connectGateway opens an MCP session at the gateway's endpoint with the
// agent's token for it, as the agent does.
func connectGateway(ctx context.Context, endpoint, token string, transport http.RoundTripper) (*mcp.ClientSession, error) {
	return mcp.NewClient(&mcp.Implementation{Name: "custos-dev", Version: "v0.0.0"}, nil).Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: endpoint, HTTPClient: &http.Client{Transport: bearer{token, transport}},
		DisableStandaloneSSE: true, MaxRetries: -1,
	}, nil)
}

// agentPodToken is a ServiceAccount token of a pod of agent ns/name, for
// custos-sts and bound to the pod, as the pod's projected token is; and
// the pod's name. Only Custos, or a cluster admin as make dev's kubeconfig
// is, may mint one.
func agentPodToken(ctx context.Context, kubeconfig, ns, name string) (token, pod string, err error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return "", "", err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", "", err
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "custos.dev/agent=" + name})
	if err != nil {
		return "", "", err
	}
	if len(pods.Items) == 0 {
		return "", "", fmt.Errorf("agent %s/%s has no pod", ns, name)
	}
	p := pods.Items[0]
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, identity.ServiceAccountName(name), &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences: []string{"custos-sts"}, ExpirationSeconds: new(int64(600)),
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", "", err
	}
	return tr.Status.Token, p.Name, nil
}

// gatewayExchange is the agent's exchange of a person's ID token, with
// its pod's token as the actor token, for a token for tenant's gateway.
func gatewayExchange(person, actor, tenant string) url.Values {
	return url.Values{
		"grant_type":    {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token": {person}, "subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"},
		"actor_token": {actor}, "actor_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
		"resource": {sts.GatewayAudience(tenant)},
	}
}

// exchange posts an RFC 8693 token exchange and returns the access token.
func exchange(ctx context.Context, c *http.Client, endpoint string, form url.Values) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return "", fmt.Errorf("custos-sts: %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return "", fmt.Errorf("custos-sts refused the exchange: %s: %s", body.Error, body.Description)
	}
	return body.AccessToken, nil
}

// bearer presents a bearer token on every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// caClient is an HTTP client trusting the CA in caFile alone.
func caClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no certificate", caFile)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}, Proxy: nil}}, nil
}

// readStateFile reads one line make dev wrote into stateDir.
func readStateFile(stateDir, name string) (string, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, name))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s is not there: is make dev running (and is this the repository's root)?", filepath.Join(stateDir, name))
	}
	return strings.TrimSpace(string(data)), err
}

// printTrace reads the call's trace back from make dev's receiver (the
// servers send their spans within a moment) and prints it as a tree.
func printTrace(ctx context.Context, stateDir, traceID string, out io.Writer) error {
	base, err := readStateFile(stateDir, tracesURLFileName)
	if err != nil {
		return err
	}
	spans, err := waitForTrace(ctx, base, traceID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "custos-dev call: trace %s, as make dev's receiver got it (%s/traces/%s):\n", traceID, base, traceID)
	children := map[string][]otlptest.Span{}
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.SpanID] = true
	}
	var roots []otlptest.Span
	for _, s := range spans {
		if s.ParentSpanID == "" || !ids[s.ParentSpanID] {
			roots = append(roots, s)
		} else {
			children[s.ParentSpanID] = append(children[s.ParentSpanID], s)
		}
	}
	var walk func(s otlptest.Span, depth int)
	walk = func(s otlptest.Span, depth int) {
		line := fmt.Sprintf("%s%s: %s (%s, %.1f ms)", strings.Repeat("  ", depth+1), s.Service, s.Name, strings.ToLower(s.Kind),
			float64(s.EndNanos-s.StartNanos)/1e6)
		for _, k := range []string{"custos.reason", "custos.checks"} {
			if v := s.Attributes[k]; v != "" {
				line += fmt.Sprintf(" %s=%q", k, v)
			}
		}
		if s.Error {
			line += " ERROR"
		}
		fmt.Fprintln(out, line)
		for _, c := range children[s.SpanID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return nil
}

// waitForTrace polls for traceID's spans until the gateway's call span is
// in and no more come for half a second, or 10 s have passed.
func waitForTrace(ctx context.Context, base, traceID string) ([]otlptest.Span, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	var last []otlptest.Span
	stable := 0
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/traces/"+traceID, nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		var spans []otlptest.Span
		err = json.NewDecoder(resp.Body).Decode(&spans)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		called := slices.ContainsFunc(spans, func(s otlptest.Span) bool {
			return s.Service == "custos-gateway" && strings.HasPrefix(s.Name, "tools/call ")
		})
		if called && len(spans) == len(last) {
			stable++
		} else {
			stable = 0
		}
		last = spans
		if stable >= 2 || time.Now().After(deadline) {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return last, nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}
