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

// Command dev is `make dev`: it starts a local cluster (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, and kwok faking
// three nodes in three regions, all on loopback), installs Custos's API, runs
// the manager against it, serves the sample image from a registry on
// loopback, runs an identity provider with the sample tenant's people
// (mockoidc), custos-sts, the sample Toolset's tool server (the ledger of
// test/tooldoubles) and custos-gateway in front of it, all on loopback over
// TLS, applies config/samples (its DataBoundary trusting that provider) and
// keeps everything running until it is interrupted (SIGINT or SIGTERM), then
// stops everything it started.
//
// `custos-dev login PERSON` logs one of the provider's people in with
// authorization code + PKCE, without a browser, and prints their token;
// `custos-dev decode` prints a token's claims; `custos-dev call TOOL ARGS`
// calls a tool through the gateway as the sample agent, for the person
// whose token it reads. `custos-dev bench-freeze` (make bench-freeze)
// starts the same with two gateway replicas and times the freeze path
// (benchfreeze.go).
//
// Contract other tooling relies on: once the manager, custos-sts and
// custos-gateway are ready and the samples are applied, the kubeconfig is
// written to .dev/kubeconfig and the line "custos dev: ready" is printed;
// .dev/idp.json then says where the identity provider is (and its client),
// .dev/sts-issuer is the sample tenant's issuer at custos-sts,
// .dev/gateway-url its MCP endpoint at custos-gateway and .dev/tls/ca.crt
// is the CA they all serve a certificate of.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/imagetest"
)

const readyLine = "custos dev: ready"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "login":
			os.Exit(loginMain(os.Args[2:], os.Stdout, os.Stderr))
		case "decode":
			os.Exit(decodeMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		case "call":
			os.Exit(callMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		case "bench-freeze":
			os.Exit(benchFreezeMain(os.Args[2:], os.Stdout, os.Stderr))
		case "bench-evaluate":
			os.Exit(benchEvaluateMain(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	root := flag.String("repo-root", ".", "Root of the Custos repository.")
	manager := flag.String("manager", "bin/manager", "The manager binary (make build).")
	stsBin := flag.String("sts", "bin/custos-sts", "The custos-sts binary (make build).")
	gatewayBin := flag.String("gateway", "bin/custos-gateway", "The custos-gateway binary (make build).")
	stateDir := flag.String("state-dir", ".dev", "Directory for the kubeconfig and the logs.")
	flag.Parse()

	// make forwards SIGTERM to us, but not every way of stopping make does;
	// when our parent goes, we go too, and take everything with us.
	if err := dieWithParent(); err != nil {
		fmt.Fprintf(os.Stderr, "custos dev: %v\n", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if err := run(ctx, *root, *stateDir, *manager, *stsBin, *gatewayBin, devOptions{}); err != nil {
		fmt.Fprintf(os.Stderr, "custos dev: %v\n", err)
		os.Exit(1)
	}
}

// devOptions change what run starts and what it does once ready.
type devOptions struct {
	// Gateways is how many custos-gateway replicas run; 1 when 0.
	Gateways int
	// GatewayArgs are more flags for every replica.
	GatewayArgs []string
	// Then, when set, runs once everything is ready, instead of waiting
	// for an interrupt; run stops everything when it returns.
	Then func(ctx context.Context, env *devEnv) error
}

// devEnv is what run started, for Then.
type devEnv struct {
	StateDir   string
	Kubeconfig string
	STS        *stsProcess
	// Gateways are the replicas' MCP endpoints of the sample tenant.
	Gateways []string
}

func run(ctx context.Context, root, devDir, managerBin, stsBin, gatewayBin string, opts devOptions) error {
	kubeconfig := filepath.Join(devDir, "kubeconfig")
	if err := os.MkdirAll(devDir, 0o700); err != nil {
		return err
	}
	// A kubeconfig left by an earlier run points at a server that is gone;
	// tooling waiting for the file must not pick it up.
	if err := os.Remove(kubeconfig); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	kubectl := filepath.Join(os.Getenv(controlplane.AssetsEnv), "kubectl")

	cpLog, err := os.Create(filepath.Join(devDir, "controlplane.log"))
	if err != nil {
		return err
	}
	defer cpLog.Close()

	start := time.Now()
	say("starting etcd and kube-apiserver (logs: %s)", cpLog.Name())
	// Service cluster IPs on loopback: with a controller manager running,
	// Services are real, and nothing may point off this machine.
	cp, err := controlplane.Start(ctx, controlplane.Options{RepoRoot: root, Output: cpLog, Webhooks: true, ServiceCIDR: serviceCIDR})
	if err != nil {
		return err
	}
	defer func() {
		say("stopping the control plane")
		if stopErr := cp.Stop(); stopErr != nil {
			say("stopping the control plane: %v", stopErr)
		}
		_ = os.Remove(kubeconfig)
	}()
	say("starting kube-controller-manager, kube-scheduler and kwok with nodes in %s (logs: %s)", regionsOf(controlplane.DefaultNodes()), devDir)
	cluster, err := cp.StartCluster(ctx, controlplane.ClusterOptions{LogDir: devDir})
	if err != nil {
		return err
	}
	defer func() {
		say("stopping the cluster")
		if stopErr := cluster.Stop(); stopErr != nil {
			say("stopping the cluster: %v", stopErr)
		}
	}()

	// Until the manager is ready the kubeconfig lives under another name, so
	// that .dev/kubeconfig appearing means "ready".
	bootKubeconfig := filepath.Join(devDir, "kubeconfig.starting")
	if err := os.WriteFile(bootKubeconfig, cp.Kubeconfig, 0o600); err != nil {
		return err
	}
	defer os.Remove(bootKubeconfig)

	auditArgs, err := setUpAudit(ctx, cp, devDir)
	if err != nil {
		return err
	}
	breakerArgs, err := setUpBreaker(ctx, cp)
	if err != nil {
		return err
	}
	breakerArgs = append(breakerArgs, evaluatorArgs(devDir, max(1, opts.Gateways))...)
	say("starting the manager (%s)", managerBin)
	mgr, err := cp.StartManager(ctx, managerBin, bootKubeconfig, filepath.Join(devDir, "manager.log"), append(auditArgs, breakerArgs...)...)
	if err != nil {
		return err
	}
	defer func() {
		say("stopping the manager")
		mgr.Stop()
	}()

	samples, closeRegistry, err := setUpImages(ctx, cp, root, devDir)
	if err != nil {
		return err
	}
	defer closeRegistry()

	certs, err := writeLoopbackTLS(devDir)
	if err != nil {
		return err
	}
	idp, err := startIdP(devDir, certs)
	if err != nil {
		return err
	}
	defer func() {
		say("stopping the identity provider")
		idp.Stop()
	}()
	say("serving an identity provider at %s with %s, over TLS (CA: %s)", idp.Issuer, describePeople(), certs.CAFile)
	if err := writeTrustOverlay(samples, idp.Issuer); err != nil {
		return err
	}
	say("applying config/samples, with the sample image from the local registry and %s trusting the identity provider (%s)", imagetest.SampleBoundary, samples)
	// Admission reads DataBoundaries from the manager's cache: an Agent
	// applied a moment after its boundary can be refused until the cache
	// has it, so the apply is repeated (it is idempotent), as GitOps would.
	for attempt := 1; ; attempt++ {
		err := runKubectl(ctx, kubectl, bootKubeconfig, "apply", "-k", samples)
		if err == nil {
			break
		}
		if attempt == 5 || ctx.Err() != nil {
			return err
		}
		say("applying again in a second")
		time.Sleep(time.Second)
	}
	say("letting %s approve finance-agents' payments (the chart's approver role): kubectl custos approve REQUEST -n finance-agents --as %s",
		strings.Join(devApprovers, ", "), devApprovers[0])
	if err := grantTenantRole(ctx, kubectl, bootKubeconfig, root, devDir, "approver", devApprovers); err != nil {
		return err
	}
	say("making %s finance-agents' risk owner (the chart's risk-owner role): kubectl custos unfreeze AGENT -n finance-agents --as %s ...",
		strings.Join(devRiskOwners, ", "), devRiskOwners[0])
	if err := grantTenantRole(ctx, kubectl, bootKubeconfig, root, devDir, "risk-owner", devRiskOwners); err != nil {
		return err
	}
	if err := runKubectl(ctx, kubectl, bootKubeconfig, "get", "custos", "--all-namespaces"); err != nil {
		return err
	}
	traces, err := startTraces(devDir)
	if err != nil {
		return err
	}
	defer traces.Stop()
	// The servers send their spans within 200 ms rather than the SDK's
	// 5 s: the tour reads a call's trace back right after it.
	if err := os.Setenv("OTEL_BSP_SCHEDULE_DELAY", "200"); err != nil {
		return err
	}
	say("collecting traces over OTLP/gRPC at %s (read back at %s/traces/<trace ID>)", traces.Endpoint(), traces.URL)
	say("starting custos-sts (%s; logs: %s)", stsBin, filepath.Join(devDir, "custos-sts.log"))
	stsProc, err := startSTS(ctx, stsBin, bootKubeconfig, devDir, imagetest.SampleBoundary, certs, traces.Args()...)
	if err != nil {
		return err
	}
	defer func() {
		say("stopping custos-sts")
		stsProc.Stop()
	}()

	// The sample Toolset's tool server, and the gateway in front of it.
	toolset, err := readSampleToolset(root)
	if err != nil {
		return err
	}
	ledger, err := startLedger(devDir, stsProc.Issuer, toolset, certs)
	if err != nil {
		return err
	}
	defer func() {
		say("stopping the ledger tool server")
		ledger.Close()
	}()
	say("serving the sample Toolset's tools (the ledger's) at %s over TLS, as %s (tokens it takes: %s)",
		ledger.Addr, toolset.HostPort, filepath.Join(devDir, ledgerLogName))
	tokenFile, stopIdentity, err := startGatewayIdentity(ctx, cp, devDir)
	if err != nil {
		return err
	}
	defer stopIdentity()
	var gateways []*gatewayProcess
	defer func() {
		for _, gw := range gateways {
			say("stopping %s", gw.Name)
			gw.Stop()
		}
	}()
	for replica := range max(1, opts.Gateways) {
		name := gatewayReplicaName(replica)
		say("starting %s (%s; logs: %s), as ServiceAccount %s, calling %s at %s",
			name, gatewayBin, filepath.Join(devDir, name+".log"), gatewayServiceAccount, toolset.HostPort, ledger.Addr)
		gw, err := startGateway(ctx, gatewayBin, bootKubeconfig, devDir, replica, imagetest.SampleBoundary, tokenFile, stsProc, toolset, ledger.Addr, certs,
			append(traces.Args(), opts.GatewayArgs...)...)
		if err != nil {
			return err
		}
		gateways = append(gateways, gw)
	}
	gw := gateways[0]
	if err := os.Rename(bootKubeconfig, kubeconfig); err != nil {
		return err
	}

	abs, _ := filepath.Abs(kubeconfig)
	say("up in %s; manager logs: %s", time.Since(start).Round(100*time.Millisecond), mgr.LogPath)
	say("kubeconfig: %s", abs)
	say("try: kubectl --kubeconfig %s get custos -A", abs)
	say("audit trail: %s; check it with: make build-audit && bin/custos-audit verify --allow-open --key %s %s",
		filepath.Join(devDir, auditDirName), filepath.Join(devDir, auditPublicKeyName), filepath.Join(devDir, auditDirName))
	login, call := os.Args[0]+" login", os.Args[0]+" call"
	if filepath.Clean(devDir) != ".dev" {
		login += " --state-dir " + devDir
		call += " --state-dir " + devDir
	}
	say("identity provider: %s; log in with authorization code + PKCE: %s alice", idp.Issuer, login)
	say("custos-sts: %s/token (issuer of %s, also in %s; audit trail: %s)", stsProc.Issuer, imagetest.SampleBoundary,
		filepath.Join(devDir, stsIssuerFileName), filepath.Join(devDir, stsAuditDirName))
	say("custos-gateway: %s (MCP endpoint of %s, also in %s; audit trail: %s)", gw.MCP, imagetest.SampleBoundary,
		filepath.Join(devDir, gatewayURLFileName), filepath.Join(devDir, gatewayAuditDirName))
	say("call a tool as the sample agent for alice: %s alice | %s %s '%s'", login, call, sampleCallTool, sampleCallArguments)
	say("all serve a certificate of a CA made for this run: curl --cacert %s", certs.CAFile)
	fmt.Println(readyLine)

	exited := make(chan *gatewayProcess, len(gateways))
	for _, g := range gateways {
		go func() {
			<-g.Exited()
			exited <- g
		}()
	}
	// unexpected is what ends the run besides an interrupt: a process
	// that exits.
	unexpected := func(done <-chan struct{}) error {
		select {
		case <-done:
			return nil
		case <-mgr.Exited():
			return fmt.Errorf("the manager exited unexpectedly: %v; see %s", mgr.Err(), mgr.LogPath)
		case <-stsProc.Exited():
			return fmt.Errorf("custos-sts exited unexpectedly: %v; see %s", stsProc.Err(), stsProc.LogPath)
		case gw := <-exited:
			return fmt.Errorf("%s exited unexpectedly: %v; see %s", gw.Name, gw.Err(), gw.LogPath)
		}
	}
	if opts.Then != nil {
		env := &devEnv{StateDir: devDir, Kubeconfig: kubeconfig, STS: stsProc}
		for _, g := range gateways {
			env.Gateways = append(env.Gateways, g.MCP)
		}
		// Then stops, and fails, as soon as a process exits.
		thenCtx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		go func() {
			if err := unexpected(thenCtx.Done()); err != nil {
				cancel(err)
			}
		}()
		err := opts.Then(thenCtx, env)
		if cause := context.Cause(thenCtx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
		return err
	}
	if err := unexpected(ctx.Done()); err != nil {
		return err
	}
	say("interrupted, shutting down")
	return nil
}

func runKubectl(ctx context.Context, kubectl, kubeconfig string, args ...string) error {
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kubectl %v: %w", args, err)
	}
	return nil
}

// dieWithParent asks the kernel to send us SIGTERM when our parent exits.
func dieWithParent() error {
	ppid := os.Getppid()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_PDEATHSIG): %w", errno)
	}
	if os.Getppid() != ppid {
		return errors.New("the parent process exited while starting")
	}
	return nil
}

func say(format string, args ...any) {
	fmt.Printf("custos dev: "+format+"\n", args...)
}

// The audit trail of make dev: a signed segment store in the state
// directory, as a production install keeps it on a volume.
const (
	auditDirName       = "audit"
	auditPublicKeyName = "audit-public.pem"
	auditNamespace     = "custos-system"
	auditKeySecret     = "custos-audit-signing-key"
	// gatewayCredentialsNamespace is the manager's and the gateway's
	// (the chart's <release>-gateway-credentials): the leases of
	// gateway-only credentials, the caps' ledger and the replicas' usage
	// reports, which the manager's breaker reads.
	gatewayCredentialsNamespace = "custos-gateway-credentials"
)

// setUpAudit makes a fresh signing key for this run's audit trail, stores
// its private half in a Secret the manager reads and its public half next
// to the trail for custos-audit verify, and returns the manager's flags.
// The control plane is new on every run, and so is the trail.
func setUpAudit(ctx context.Context, cp *controlplane.ControlPlane, devDir string) ([]string, error) {
	dir := filepath.Join(devDir, auditDirName)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	private, public, err := audit.GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(devDir, auditPublicKeyName), public, 0o644); err != nil {
		return nil, err
	}
	c, err := client.New(cp.Config, client.Options{})
	if err != nil {
		return nil, err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: auditNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	if err := c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: auditKeySecret, Namespace: auditNamespace},
		Data:       map[string][]byte{audit.SigningKeyDataKey: private},
	}); err != nil {
		return nil, err
	}
	return []string{
		"--audit-sink=both",
		"--audit-dir=" + dir,
		"--audit-signing-key-secret=" + auditNamespace + "/" + auditKeySecret,
		"--audit-checkpoint-interval=10s",
	}, nil
}

// setUpBreaker makes the namespace where the gateway replicas share the
// caps' ledger and report what each agent takes, and returns the
// manager's flags: its breaker reads the reports there, and keeps its
// state in custos-system for the next leader. It learns each agent for 7
// days before it may freeze one: kubectl custos top -A shows it learning.
func setUpBreaker(ctx context.Context, cp *controlplane.ControlPlane) ([]string, error) {
	c, err := client.New(cp.Config, client.Options{})
	if err != nil {
		return nil, err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: gatewayCredentialsNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	return []string{
		"--gateway-credentials-namespace=" + gatewayCredentialsNamespace,
		"--leader-election-namespace=" + auditNamespace,
	}, nil
}

// evaluatorArgs have the manager's evaluator follow the audit trails of
// custos-sts and of each gateway replica (the manager's own it follows by
// itself): the directories they write, which each starts afresh (a new
// chain under the same name, which the evaluator reads from its start).
func evaluatorArgs(devDir string, gateways int) []string {
	args := []string{"--evaluate-trail=custos-sts/dev-0=" + filepath.Join(devDir, stsAuditDirName)}
	for n := range gateways {
		dir := filepath.Join(devDir, gatewayAuditDirName)
		if n > 0 {
			dir += "-" + strconv.Itoa(n)
		}
		args = append(args, "--evaluate-trail=custos-gateway/dev-"+strconv.Itoa(n)+"="+dir)
	}
	return args
}

// The sample image's signing key, next to the state it belongs to.
const imagePublicKeyName = "image-signer.pub"

// setUpImages serves the sample agent's image from a registry on loopback,
// signed at start-up with a key generated for this run, stores the public
// key in the Secret the sample DataBoundary trusts, and writes the overlay
// of config/samples that uses this registry (into samples/image, under the
// overlay writeTrustOverlay writes). It returns the samples' directory.
// Verification is as in production: the sample agent runs the digest it
// was verified at, and an image signed with another key does not run.
func setUpImages(ctx context.Context, cp *controlplane.ControlPlane, root, devDir string) (string, func(), error) {
	trust, err := imagetest.NewSampleTrust()
	if err != nil {
		return "", nil, err
	}
	say("serving the sample image %s on loopback, signed with a key made for this run (public key: %s)",
		trust.Image, filepath.Join(devDir, imagePublicKeyName))
	err = os.WriteFile(filepath.Join(devDir, imagePublicKeyName), trust.Signer.PublicKeyPEM(), 0o644)
	var c client.Client
	if err == nil {
		c, err = client.New(cp.Config, client.Options{})
	}
	if err == nil {
		err = trust.Apply(ctx, c)
	}
	overlay := filepath.Join(devDir, "samples")
	if err == nil {
		err = os.RemoveAll(overlay)
	}
	if err == nil {
		err = imagetest.WriteSamplesOverlay(filepath.Join(overlay, "image"), filepath.Join(root, "config", "samples"), trust.Registry)
	}
	if err != nil {
		trust.Close()
		return "", nil, err
	}
	return overlay, trust.Close, nil
}

// serviceCIDR is where make dev's Service cluster IPs come from: loopback.
const serviceCIDR = "127.96.0.0/16"

// regionsOf lists the regions of nodes, in order, once each.
func regionsOf(nodes []controlplane.Node) string {
	var regions []string
	for _, n := range nodes {
		if !slices.Contains(regions, n.Region) {
			regions = append(regions, n.Region)
		}
	}
	return strings.Join(regions, ", ")
}

// writeTrustOverlay writes into dir the kustomization make dev applies:
// the image overlay in dir/image, with the sample DataBoundary trusting
// the identity provider at issuer for tokens of its client.
func writeTrustOverlay(dir, issuer string) error {
	kustomization := fmt.Sprintf(`# Written by make dev: config/samples with the sample image served on
# loopback (image/), and the sample DataBoundary trusting make dev's
# identity provider.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - image
sortOptions:
  order: fifo
patches:
  - target: {kind: DataBoundary, name: %s}
    patch: |-
      - op: add
        path: /spec/trustedIssuers
        value:
          - issuer: %s
            audiences: [%s]
`, imagetest.SampleBoundary, issuer, idpClientID)
	return os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644)
}

// describePeople says who the identity provider's people are.
func describePeople() string {
	var out []string
	for _, n := range peopleNames() {
		out = append(out, fmt.Sprintf("%s (%s)", n, strings.Join(people[n].Groups, ", ")))
	}
	return "people " + strings.Join(out, " and ")
}

// devApprovers are the people make dev lets approve the sample agent's
// payments (the chart's approver role, bound in finance-agents): two, as the
// sample ApprovalPolicy's quorum, and alice, whom separation of duties
// refuses on the requests of the calls made for her. They act through the
// kubeconfig's impersonation: kubectl custos approve REQUEST --as carol.
var devApprovers = []string{"carol", "dave", "alice"}

// devRiskOwners are the people make dev makes the samples' risk owners
// (the chart's risk-owner role, bound in finance-agents): they lift a
// freeze of the sample agent, which its owner (make dev's admin) may not:
// kubectl custos unfreeze AGENT --as rita.
var devRiskOwners = []string{"rita"}

// grantTenantRole binds the chart's tenant role role
// (charts/custos/files/tenantroles/<role>.yaml, as the ClusterRole
// custos-<role>) to users in the samples' namespace.
func grantTenantRole(ctx context.Context, kubectl, kubeconfig, root, devDir, role string, users []string) error {
	rules, err := os.ReadFile(filepath.Join(root, "charts", "custos", "files", "tenantroles", role+".yaml"))
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: custos-%s\n%s", role, rules)
	fmt.Fprintf(&b, "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: %ss\n  namespace: finance-agents\n"+
		"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: custos-%s}\nsubjects:\n", role, role)
	for _, who := range users {
		fmt.Fprintf(&b, "  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: %s}\n", who)
	}
	file := filepath.Join(devDir, role+"s.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return runKubectl(ctx, kubectl, kubeconfig, "apply", "-f", file)
}
