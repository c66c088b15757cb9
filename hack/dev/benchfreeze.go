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
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/breaker"
	"github.com/custos-dev/custos/internal/lease"
)

// The bench-freeze command (make bench-freeze): make dev's whole local
// cluster, with two custos-gateway replicas, and the sample agent tripped
// again and again with the object the breaker makes (an AgentFreeze of
// trigger Trend; made here by the kubeconfig's admin, so the breaker's
// detection and tick are not timed). Each trial times, from the moment the
// freeze is created, what the freeze path promises:
//
//   - every gateway replica refusing the agent's calls, made on an MCP
//     session with a token the STS issued before the trip: only the
//     gateway's 403 saying the agent may not act counts, any other
//     failure fails the trial;
//   - custos-sts refusing its exchanges (the person's token and the
//     agent pod's, as the agent exchanges them);
//   - its revocable lease (the sample's kubernetesToken, bound to the
//     lease Secret) revoked at its source: the Secret it is bound to gone,
//     and the API server's TokenReview no longer authenticating it. The
//     bench has the token authenticated just before each trip, as an
//     agent at work has it: the worst case, since the API server keeps a
//     successful authentication for 10 s (kube-apiserver's token cache,
//     which no flag changes);
//   - the deny-all NetworkPolicy in force, the Deployment at 0 replicas
//     (spec and status), no pod of it left, and the Agent Frozen.
//
// Then a risk owner (rita) lifts the freeze, as a person would, and the
// next trial waits until the agent runs again with a new lease. The
// figures are the API server's and the components' own, on one machine,
// with every probe polling back to back: p99 is the nearest rank, which
// is the slowest trial when there are fewer than 100.

// freezeGoals are the goals (p99), by what they time.
var freezeGoals = map[string]time.Duration{
	probeGateways: 2 * time.Second,
	probeSTS:      2 * time.Second,
	probeRevoked:  5 * time.Second,
	probeLease:    5 * time.Second,
	probeNetwork:  30 * time.Second,
	probeReplicas: 30 * time.Second,
}

// What each trial times, in the order they are printed.
const (
	probeGateways = "every gateway replica refuses its calls"
	probeSTS      = "custos-sts refuses its exchanges"
	probeRevoked  = "its lease revoked at the source (Secret gone)"
	probeLease    = "its lease's token refused (TokenReview)"
	probeNetwork  = "deny-all NetworkPolicy in force"
	probeReplicas = "Deployment at 0 replicas"
	probeNoPod    = "no pod of it left"
	probePhase    = "Agent Frozen (status)"
)

func benchFreezeMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench-freeze", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("repo-root", ".", "Root of the Custos repository.")
	manager := fs.String("manager", "bin/manager", "The manager binary (make build).")
	stsBin := fs.String("sts", "bin/custos-sts", "The custos-sts binary (make build).")
	gatewayBin := fs.String("gateway", "bin/custos-gateway", "The custos-gateway binary (make build).")
	stateDir := fs.String("state-dir", "bin/bench-freeze", "Directory for the kubeconfig and the logs (not make dev's: both can run).")
	trials := fs.Int("trials", 20, "Trips to time.")
	gateways := fs.Int("gateways", 2, "custos-gateway replicas.")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || *trials < 1 || *gateways < 1 {
		fs.Usage()
		return 2
	}
	if err := dieWithParent(); err != nil {
		fmt.Fprintf(stderr, "custos-dev bench-freeze: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	opts := devOptions{
		Gateways: *gateways,
		// The probes call back to back: the gateways' rate limits would
		// refuse them before the freeze does.
		GatewayArgs: []string{"--rate-per-agent=0", "--rate-per-tool=0"},
		Then: func(ctx context.Context, env *devEnv) error {
			b, err := newFreezeBench(env)
			if err != nil {
				return err
			}
			return b.run(ctx, *trials, stdout)
		},
	}
	if err := run(ctx, *root, *stateDir, *manager, *stsBin, *gatewayBin, opts); err != nil {
		fmt.Fprintf(stderr, "custos-dev bench-freeze: %v\n", err)
		return 1
	}
	return 0
}

// freezeBench trips the sample agent on env.
type freezeBench struct {
	env       *devEnv
	admin     client.Client
	riskOwner client.Client
	cs        kubernetes.Interface
	https     *http.Client
	idp       idpClient
	tenant    string
	ns, name  string
}

func newFreezeBench(env *devEnv) (*freezeBench, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := custosv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	admin, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	// The risk owner lifts each freeze through the kubeconfig's
	// impersonation, as kubectl custos unfreeze --as rita does.
	as := rest.CopyConfig(cfg)
	as.Impersonate = rest.ImpersonationConfig{UserName: devRiskOwners[0]}
	riskOwner, err := client.New(as, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	https, err := caClient(filepath.Join(env.StateDir, tlsDirName, caFileName))
	if err != nil {
		return nil, err
	}
	idp, err := readIdPClient(env.StateDir)
	if err != nil {
		return nil, err
	}
	_, tenant, _ := strings.Cut(env.STS.Issuer, "/tenants/")
	ns, name, _ := strings.Cut(sampleAgent, "/")
	return &freezeBench{env: env, admin: admin, riskOwner: riskOwner, cs: cs, https: https, idp: idp, tenant: tenant, ns: ns, name: name}, nil
}

// trialResult is what one trial timed, since the freeze was created;
// refusals are the first refusal each probe saw, to show what refused.
type trialResult struct {
	took     map[string]time.Duration
	refusals map[string]string
}

func (b *freezeBench) run(ctx context.Context, trials int, out io.Writer) error {
	say("bench-freeze: %d trips of %s with %d custos-gateway replicas", trials, sampleAgent, len(b.env.Gateways))
	var results []trialResult
	for i := range trials {
		r, err := b.trial(ctx, i+1)
		if err != nil {
			return fmt.Errorf("trial %d: %w", i+1, err)
		}
		say("bench-freeze: trial %d: %s", i+1, describeTrial(r))
		results = append(results, r)
	}
	printFreezeReport(out, results, len(b.env.Gateways))
	return nil
}

func describeTrial(r trialResult) string {
	var parts []string
	for _, p := range freezeProbes() {
		parts = append(parts, fmt.Sprintf("%s %s", p, r.took[p].Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

// freezeProbes are what a trial times, in order.
func freezeProbes() []string {
	return []string{probeGateways, probeSTS, probeRevoked, probeLease, probeNetwork, probeReplicas, probeNoPod, probePhase}
}

// trial waits for the agent to run, takes what it holds (a gateway token,
// an MCP session on each replica, its lease), trips it, times the probes
// and lifts the freeze.
func (b *freezeBench) trial(ctx context.Context, n int) (trialResult, error) {
	leaseSecret, leaseToken, err := b.waitRunning(ctx)
	if err != nil {
		return trialResult{}, err
	}
	login, err := pkceLogin(ctx, b.idp, loginRequest{Person: "alice", Scope: defaultLoginScope})
	if err != nil {
		return trialResult{}, err
	}
	actor, _, err := agentPodToken(ctx, b.env.Kubeconfig, b.ns, b.name)
	if err != nil {
		return trialResult{}, err
	}
	form := gatewayExchange(login.IDToken, actor, b.tenant)
	token, err := exchange(ctx, b.https, b.env.STS.Issuer+"/token", form)
	if err != nil {
		return trialResult{}, err
	}
	var sessions []*mcp.ClientSession
	defer func() {
		for _, s := range sessions {
			_ = s.Close()
		}
	}()
	for i, endpoint := range b.env.Gateways {
		s, err := connectGateway(ctx, endpoint, token, b.https.Transport)
		if err != nil {
			return trialResult{}, fmt.Errorf("connecting to %s: %w", gatewayReplicaName(i), err)
		}
		sessions = append(sessions, s)
		if why, refused := b.call(ctx, s); refused {
			return trialResult{}, fmt.Errorf("%s refused the agent's call before the trip: %s", gatewayReplicaName(i), why)
		}
	}
	if ok, err := b.authenticates(ctx, leaseToken); err != nil || !ok {
		return trialResult{}, fmt.Errorf("the agent's lease does not authenticate before the trip (%v)", err)
	}

	// The trip, as the breaker makes it.
	observed, baseline := int64(600), int64(100)
	freeze := &custosv1alpha1.AgentFreeze{
		ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, GenerateName: breaker.GenerateName(b.name, custosv1alpha1.FreezeTrend)},
		Spec: custosv1alpha1.AgentFreezeSpec{Agent: b.name, Trigger: custosv1alpha1.FreezeTrend, Signal: breaker.SignalRecords,
			Reason:   fmt.Sprintf("custos-dev bench-freeze, trial %d: a trip made as the breaker makes one", n),
			Observed: &observed, Baseline: &baseline},
	}
	tripped := time.Now()
	if err := b.admin.Create(ctx, freeze); err != nil {
		return trialResult{}, fmt.Errorf("tripping: %w", err)
	}

	res := trialResult{took: map[string]time.Duration{}, refusals: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	probe := func(name string, every time.Duration, done func(ctx context.Context) (string, bool, error)) {
		wg.Go(func() {
			took, why, err := pollUntil(ctx, tripped, time.Minute, every, done)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				return
			}
			if cur, ok := res.took[name]; !ok || took > cur {
				res.took[name] = took
			}
			if why != "" {
				res.refusals[name] = why
			}
		})
	}
	for i, s := range sessions {
		probe(probeGateways, 0, func(ctx context.Context) (string, bool, error) {
			if why, refused := b.call(ctx, s); !refused {
				return "", false, nil
			} else if !strings.Contains(why, "Forbidden") {
				// Not the gateway's refusal of the agent (a replica gone, a
				// timeout, a tool server's failure): not what is timed.
				return "", false, fmt.Errorf("%s: %s", gatewayReplicaName(i), why)
			}
			// The MCP client says only "Forbidden": what the gateway
			// said, as a plain request with the token shows it.
			why, err := b.refusal(ctx, b.env.Gateways[i], token)
			if err != nil {
				return "", false, err
			}
			return why, strings.HasPrefix(why, "403 ") && strings.Contains(why, "may not act"), nil
		})
	}
	probe(probeSTS, 0, func(ctx context.Context) (string, bool, error) {
		_, err := exchange(ctx, b.https, b.env.STS.Issuer+"/token", form)
		if err == nil {
			return "", false, nil
		}
		// The freeze's refusal, not any error of custos-sts's.
		if strings.Contains(err.Error(), "may not act: it is frozen by AgentFreeze "+freeze.Name) {
			return err.Error(), true, nil
		}
		return "", false, err
	})
	probe(probeRevoked, 0, func(ctx context.Context) (string, bool, error) {
		err := b.admin.Get(ctx, client.ObjectKey{Namespace: b.ns, Name: leaseSecret}, &corev1.Secret{})
		return "", apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	probe(probeLease, 0, func(ctx context.Context) (string, bool, error) {
		ok, err := b.authenticates(ctx, leaseToken)
		return "", !ok, err
	})
	probe(probeNetwork, 20*time.Millisecond, b.denyAll)
	probe(probeReplicas, 20*time.Millisecond, b.scaledToZero)
	probe(probeNoPod, 20*time.Millisecond, b.noPod)
	probe(probePhase, 20*time.Millisecond, func(ctx context.Context) (string, bool, error) {
		a := &custosv1alpha1.Agent{}
		if err := b.admin.Get(ctx, client.ObjectKey{Namespace: b.ns, Name: b.name}, a); err != nil {
			return "", false, err
		}
		l := a.Status.Lifecycle
		return "", l != nil && l.Phase == custosv1alpha1.AgentPhaseFrozen && l.Freeze == freeze.Name, nil
	})
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return res, err
	}

	// A person lifts it.
	unfreeze := &custosv1alpha1.AgentUnfreeze{
		ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, GenerateName: freeze.Name + "-"},
		Spec: custosv1alpha1.AgentUnfreezeSpec{Freeze: freeze.Name, Verdict: custosv1alpha1.FalsePositive,
			Reason: fmt.Sprintf("custos-dev bench-freeze, trial %d: lifted for the next", n)},
	}
	if err := b.riskOwner.Create(ctx, unfreeze); err != nil {
		return res, fmt.Errorf("lifting %s as %s: %w", freeze.Name, devRiskOwners[0], err)
	}
	return res, nil
}

// pollUntil calls done every interval (back to back when 0) until it
// says so, and returns how long after since that was, and what done said.
func pollUntil(ctx context.Context, since time.Time, timeout, every time.Duration,
	done func(ctx context.Context) (string, bool, error)) (time.Duration, string, error) {
	deadline := since.Add(timeout)
	var last error
	for {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		why, ok, err := done(callCtx)
		cancel()
		if ok && err == nil {
			return time.Since(since), why, nil
		}
		last = err
		if time.Now().After(deadline) {
			return 0, "", fmt.Errorf("not within %s (last error: %v)", timeout, last)
		}
		select {
		case <-ctx.Done():
			return 0, "", ctx.Err()
		case <-time.After(every):
		}
	}
}

// call makes the sample's read-only call on s: refused is true when the
// gateway refused it (an error or an error result), with why.
func (b *freezeBench) call(ctx context.Context, s *mcp.ClientSession) (why string, refused bool) {
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: sampleCallTool, Arguments: json.RawMessage(sampleCallArguments)})
	if err != nil {
		return err.Error(), true
	}
	if res.IsError {
		var texts []string
		for _, c := range res.Content {
			if t, ok := c.(*mcp.TextContent); ok {
				texts = append(texts, t.Text)
			}
		}
		return strings.Join(texts, " "), true
	}
	return "", false
}

// refusal is what endpoint answers a request with token, refused.
func (b *freezeBench) refusal(ctx context.Context, endpoint, token string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := b.https.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body))), nil
}

// authenticates: the API server's TokenReview takes token for the
// sample's lease audience.
func (b *freezeBench) authenticates(ctx context.Context, token string) (bool, error) {
	tr, err := b.cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{sampleLeaseAudience}},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return tr.Status.Authenticated, nil
}

// The sample's revocable lease: config/samples/agent.yaml's ledger-api
// credential, a kubernetesToken for that audience.
const (
	sampleLease         = "ledger-api"
	sampleLeaseAudience = "ledger-api"
)

// waitRunning waits until the agent is Active and Ready, a pod of it is
// Running and its lease is issued, and returns the lease's Secret and
// token.
func (b *freezeBench) waitRunning(ctx context.Context) (secretName, token string, err error) {
	var last string
	_, _, err = pollUntil(ctx, time.Now(), 2*time.Minute, 100*time.Millisecond, func(ctx context.Context) (string, bool, error) {
		a := &custosv1alpha1.Agent{}
		if err := b.admin.Get(ctx, client.ObjectKey{Namespace: b.ns, Name: b.name}, a); err != nil {
			return "", false, err
		}
		if l := a.Status.Lifecycle; l == nil || l.Phase != custosv1alpha1.AgentPhaseActive || !meta.IsStatusConditionTrue(a.Status.Conditions, custosv1alpha1.ReadyCondition) {
			last = "not Active and Ready"
			return "", false, nil
		}
		i := slices.IndexFunc(a.Status.Leases, func(l custosv1alpha1.LeaseStatus) bool { return l.Name == sampleLease })
		if i < 0 || a.Status.Leases[i].SecretName == "" {
			last = "no lease " + sampleLease
			return "", false, nil
		}
		secret := &corev1.Secret{}
		if err := b.admin.Get(ctx, client.ObjectKey{Namespace: b.ns, Name: a.Status.Leases[i].SecretName}, secret); err != nil {
			last = err.Error()
			return "", false, client.IgnoreNotFound(err)
		}
		var pods corev1.PodList
		if err := b.admin.List(ctx, &pods, client.InNamespace(b.ns), client.MatchingLabels{custosv1alpha1.AgentLabel: b.name}); err != nil {
			return "", false, err
		}
		running := slices.ContainsFunc(pods.Items, func(p corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil })
		if !running {
			last = "no pod running"
			return "", false, nil
		}
		secretName, token = secret.Name, string(secret.Data[lease.TokenKey])
		return "", token != "", nil
	})
	if err != nil {
		return "", "", fmt.Errorf("waiting for %s to run (%s): %w", sampleAgent, last, err)
	}
	return secretName, token, nil
}

// denyAll: the agent's NetworkPolicy selects its pods and lets nothing in
// or out.
func (b *freezeBench) denyAll(ctx context.Context) (string, bool, error) {
	var list networkingv1.NetworkPolicyList
	if err := b.admin.List(ctx, &list, client.InNamespace(b.ns), client.MatchingLabels{custosv1alpha1.AgentLabel: b.name}); err != nil {
		return "", false, err
	}
	for _, np := range list.Items {
		types := np.Spec.PolicyTypes
		if np.Spec.PodSelector.MatchLabels[custosv1alpha1.AgentLabel] == b.name && len(np.Spec.Ingress) == 0 && len(np.Spec.Egress) == 0 &&
			slices.Contains(types, networkingv1.PolicyTypeIngress) && slices.Contains(types, networkingv1.PolicyTypeEgress) {
			return np.Name, true, nil
		}
	}
	return "", false, nil
}

// scaledToZero: the agent's Deployment asks for no replica and has none.
func (b *freezeBench) scaledToZero(ctx context.Context) (string, bool, error) {
	var list appsv1.DeploymentList
	if err := b.admin.List(ctx, &list, client.InNamespace(b.ns), client.MatchingLabels{custosv1alpha1.AgentLabel: b.name}); err != nil {
		return "", false, err
	}
	if len(list.Items) == 0 {
		return "", false, fmt.Errorf("%s has no Deployment", sampleAgent)
	}
	for _, d := range list.Items {
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 0 || d.Status.Replicas != 0 {
			return "", false, nil
		}
	}
	return "", true, nil
}

// noPod: no pod of the agent is left, not even terminating.
func (b *freezeBench) noPod(ctx context.Context) (string, bool, error) {
	var pods corev1.PodList
	if err := b.admin.List(ctx, &pods, client.InNamespace(b.ns), client.MatchingLabels{custosv1alpha1.AgentLabel: b.name}); err != nil {
		return "", false, err
	}
	return "", len(pods.Items) == 0, nil
}

// percentile is the nearest-rank p-th percentile of ds (sorted here).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// printFreezeReport prints each probe's p50, p99 and max over the trials,
// against its goal, and one refusal of each kind as it was seen.
func printFreezeReport(out io.Writer, results []trialResult, gateways int) {
	fmt.Fprintf(out, "\nfreeze path: %d trips, %d custos-gateway replicas, on make dev's kwok cluster; time from the AgentFreeze's creation\n",
		len(results), gateways)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "\tp50\tp99\tmax\tgoal (p99)\t")
	for _, p := range freezeProbes() {
		var ds []time.Duration
		for _, r := range results {
			ds = append(ds, r.took[p])
		}
		goal, verdict := "-", ""
		if g, ok := freezeGoals[p]; ok {
			goal = "≤ " + g.String()
			verdict = "met"
			if percentile(ds, 99) > g {
				verdict = "MISSED"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s %s\t\n", p, ms(percentile(ds, 50)), ms(percentile(ds, 99)), ms(percentile(ds, 100)), goal, verdict)
	}
	w.Flush()
	if len(results) < 100 {
		fmt.Fprintf(out, "(p99 is the nearest rank: with %d trials, the slowest)\n", len(results))
	}
	fmt.Fprintln(out, "The lease's token was authenticated just before each trip, as an agent at work has it; the API server keeps a successful\n"+
		"authentication for 10 s (kube-apiserver's token cache, which no flag changes), so TokenReview takes the token until then.")
	last := results[len(results)-1]
	for _, p := range []string{probeGateways, probeSTS} {
		if why := last.refusals[p]; why != "" {
			fmt.Fprintf(out, "%s, as seen: %s\n", p, why)
		}
	}
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}
