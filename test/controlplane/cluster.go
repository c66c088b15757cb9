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

package controlplane

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// KwokEnv is the variable naming the kwok binary, as hack/kwok.sh prints
// it; StartCluster uses it when ClusterOptions.KwokBin is empty.
const KwokEnv = "KWOK"

const (
	// RegionLabel and ZoneLabel are the well-known topology labels the fake
	// nodes carry, which the scheduler matches the agents' region affinity
	// against.
	RegionLabel = "topology.kubernetes.io/region"
	ZoneLabel   = "topology.kubernetes.io/zone"
	// HostnameLabel is the node's name, as a kubelet would label it.
	HostnameLabel = "kubernetes.io/hostname"

	// KwokNodeAnnotation marks the nodes kwok fakes (and only those:
	// kwok runs with --manage-nodes-with-annotation-selector).
	KwokNodeAnnotation = "kwok.x-k8s.io/node"
	kwokNodeValue      = "fake"

	// kwokNodeIP is the address every fake node reports, and podCIDR the
	// range kwok gives pods their IPs from: both on loopback, so that
	// nothing (kubectl logs, say) ever dials an address off this machine.
	kwokNodeIP = "127.0.0.2"
	podCIDR    = "127.1.0.0/16"
)

// Node is a fake node of the cluster, in a region and a zone.
type Node struct{ Name, Region, Zone string }

// DefaultNodes are three nodes, one in each of eu-west-1, eu-central-1 and
// us-east-1, in the zone <region>a.
func DefaultNodes() []Node {
	var nodes []Node
	for _, region := range []string{"eu-west-1", "eu-central-1", "us-east-1"} {
		nodes = append(nodes, Node{Name: "kwok-" + region, Region: region, Zone: region + "a"})
	}
	return nodes
}

// ClusterOptions says which nodes the cluster has and where kwok and the
// logs are.
type ClusterOptions struct {
	// Nodes are the fake nodes; DefaultNodes when empty.
	Nodes []Node

	// KwokBin is the kwok binary (hack/kwok.sh builds it); $KWOK when empty.
	KwokBin string

	// KwokStages are the kwok Stage files kwok is started with; when empty,
	// every *.yaml of the stages directory beside KwokBin (where
	// hack/kwok.sh puts them).
	KwokStages []string

	// LogDir receives kube-controller-manager.log, kube-scheduler.log and
	// kwok.log. When empty they go to a directory of their own that Stop
	// removes.
	LogDir string
}

// Cluster is a control plane made a whole cluster: kube-controller-manager
// (Deployments roll out, garbage is collected, namespaces are deleted),
// kube-scheduler and kwok, which fakes nodes and the pods on them.
type Cluster struct {
	// Nodes are the cluster's fake nodes, all Ready and untainted once
	// StartCluster returns.
	Nodes []Node

	// LogDir holds the components' logs.
	LogDir string

	components []*component
	dir        string // kubeconfigs, CA, serving certificates; the logs by default
}

// component is one of the cluster's processes.
type component struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error
}

// StartCluster starts kube-controller-manager and kube-scheduler (from the
// control plane's binary directory; hack/controlplane.sh
// kube-controller-manager kube-scheduler builds them) and kwok against the
// control plane, creates the fake nodes and waits until they are Ready and
// untainted and every component is healthy. Every component listens on
// 127.0.0.1 only, and the nodes and pods get addresses on loopback.
//
// The control plane must have been started with a ServiceCIDR on loopback:
// with controllers running, Services are real, and their cluster IPs must
// be on this machine.
func (cp *ControlPlane) StartCluster(ctx context.Context, opts ClusterOptions) (_ *Cluster, err error) {
	if r, err := netip.ParsePrefix(cp.serviceCIDR); err != nil || !r.Addr().IsLoopback() || r.Bits() < 8 {
		return nil, fmt.Errorf("the control plane's Service range is %q: start it with Options.ServiceCIDR on loopback (127.96.0.0/16, say) to run a cluster on it", cp.serviceCIDR)
	}
	nodes := opts.Nodes
	if len(nodes) == 0 {
		nodes = DefaultNodes()
	}
	for _, n := range nodes {
		if n.Name == "" || n.Region == "" || n.Zone == "" {
			return nil, fmt.Errorf("node %+v: a node needs a name, a region and a zone", n)
		}
	}
	kwokBin := opts.KwokBin
	if kwokBin == "" {
		kwokBin = os.Getenv(KwokEnv)
	}
	if kwokBin == "" {
		return nil, fmt.Errorf("no kwok binary: set ClusterOptions.KwokBin or %s to the path hack/kwok.sh prints", KwokEnv)
	}
	if _, err := os.Stat(kwokBin); err != nil {
		return nil, fmt.Errorf("kwok: %w (hack/kwok.sh builds it)", err)
	}
	stages := opts.KwokStages
	if len(stages) == 0 {
		dir := filepath.Join(filepath.Dir(kwokBin), "stages")
		if stages, err = filepath.Glob(filepath.Join(dir, "*.yaml")); err != nil {
			return nil, err
		}
		if len(stages) == 0 {
			return nil, fmt.Errorf("no kwok stages in %s: hack/kwok.sh puts them there, or set ClusterOptions.KwokStages", dir)
		}
	}
	bins := map[string]string{}
	for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
		bins[name] = filepath.Join(cp.assets, name)
		if _, err := os.Stat(bins[name]); err != nil {
			return nil, fmt.Errorf("%s has no %s: run hack/controlplane.sh kube-controller-manager kube-scheduler to build it: %w", cp.assets, name, err)
		}
	}
	apiServer := cp.env.ControlPlane.GetAPIServer()
	saKey := filepath.Join(apiServer.CertDir, "sa-signer.key")
	if _, err := os.Stat(saKey); err != nil {
		return nil, fmt.Errorf("the API server's service account signing key: %w", err)
	}

	c := &Cluster{Nodes: nodes, LogDir: opts.LogDir}
	if c.dir, err = os.MkdirTemp("", "custos-cluster-"); err != nil {
		return nil, err
	}
	defer func() {
		if err == nil {
			return
		}
		if opts.LogDir == "" {
			// Keep the logs the error points at.
			err = errors.Join(err, c.stopComponents())
		} else {
			err = errors.Join(err, c.Stop())
		}
	}()
	if c.LogDir == "" {
		c.LogDir = filepath.Join(c.dir, "logs")
	}
	if err := os.MkdirAll(c.LogDir, 0o755); err != nil {
		return nil, err
	}
	// The CA of the API server's serving certificate: the controller
	// manager publishes it (kube-root-ca.crt) and puts it into tokens.
	rootCA := filepath.Join(c.dir, "ca.crt")
	if err := os.WriteFile(rootCA, cp.Config.CAData, 0o600); err != nil {
		return nil, err
	}
	kubeconfig := func(user string) (string, error) {
		u, err := cp.env.AddUser(envtest.User{Name: user, Groups: []string{"system:masters"}}, cp.Config)
		if err != nil {
			return "", fmt.Errorf("a user for %s: %w", user, err)
		}
		kc, err := u.KubeConfig()
		if err != nil {
			return "", err
		}
		path := filepath.Join(c.dir, strings.TrimPrefix(user, "system:")+".kubeconfig")
		return path, os.WriteFile(path, kc, 0o600)
	}
	kcmConfig, err := kubeconfig("system:kube-controller-manager")
	if err != nil {
		return nil, err
	}
	if err := c.startServing(ctx, "kube-controller-manager", bins["kube-controller-manager"], func(port string) []string {
		return []string{
			"--kubeconfig=" + kcmConfig,
			"--authentication-kubeconfig=" + kcmConfig,
			"--authorization-kubeconfig=" + kcmConfig,
			// Callers of its endpoints are never front-proxied: without
			// this it keeps asking for the API server's request-header
			// CA, which envtest's API server does not have.
			"--authentication-skip-lookup=true",
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port=" + port,
			"--cert-dir=" + filepath.Join(c.dir, "kube-controller-manager"),
			// Tokens it signs (legacy token Secrets) verify with the key
			// the API server was given; the CA it publishes is the API
			// server's.
			"--service-account-private-key-file=" + saKey,
			"--root-ca-file=" + rootCA,
			"--service-cluster-ip-range=" + cp.serviceCIDR,
			"--cluster-cidr=" + podCIDR,
			"--allocate-node-cidrs=false",
			// Every controller but those that publish pod IPs as Service
			// endpoints: the API refuses loopback endpoint addresses, so
			// they would only fail, and nothing here routes to a
			// Service's pods.
			"--controllers=*,-endpoints-controller,-endpointslice-controller",
			"--v=2",
		}
	}); err != nil {
		return nil, err
	}

	schedConfig, err := kubeconfig("system:kube-scheduler")
	if err != nil {
		return nil, err
	}
	if err := c.startServing(ctx, "kube-scheduler", bins["kube-scheduler"], func(port string) []string {
		return []string{
			"--kubeconfig=" + schedConfig,
			"--authentication-kubeconfig=" + schedConfig,
			"--authorization-kubeconfig=" + schedConfig,
			"--authentication-skip-lookup=true",
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port=" + port,
			"--cert-dir=" + filepath.Join(c.dir, "kube-scheduler"),
			"--v=2",
		}
	}); err != nil {
		return nil, err
	}

	kwokConfig, err := kubeconfig("system:kwok")
	if err != nil {
		return nil, err
	}
	kwokArgs := []string{
		"--kubeconfig=" + kwokConfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + KwokNodeAnnotation + "=" + kwokNodeValue,
		"--node-ip=" + kwokNodeIP,
		"--cidr=" + podCIDR,
		// Renews the nodes' Leases, which the node lifecycle controller
		// takes as their heartbeat, as a kubelet does.
		"--node-lease-duration-seconds=40",
		// No --server-address and no --node-port: kwok serves nothing.
	}
	for _, s := range stages {
		kwokArgs = append(kwokArgs, "--config="+s)
	}
	if _, err := c.start("kwok", kwokBin, false, kwokArgs...); err != nil {
		return nil, err
	}

	if err := c.createNodes(ctx, cp); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, cp); err != nil {
		return nil, err
	}
	return c, nil
}

// startServing starts a component that serves /healthz on a port of
// 127.0.0.1 given to args, and waits until it is healthy. A port picked
// free can be taken by another process before the component binds it (test
// suites run side by side); the component is then started again on another.
func (c *Cluster) startServing(ctx context.Context, name, bin string, args func(port string) []string) error {
	// The components serve self-signed certificates on loopback; only
	// their health is asked for.
	probe := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a health probe on 127.0.0.1
	}}
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(1)
		if err != nil {
			return err
		}
		port := strconv.Itoa(ports[0])
		comp, err := c.start(name, bin, attempt > 1, args(port)...)
		if err != nil {
			return err
		}
		var waiting string
		err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			select {
			case <-comp.exited:
				return false, fmt.Errorf("%s exited: %v\n%s", name, comp.err, tail(comp.logPath, 20))
			default:
			}
			resp, err := probe.Get("https://127.0.0.1:" + port + "/healthz")
			if err != nil {
				waiting = err.Error()
				return false, nil
			}
			resp.Body.Close()
			waiting = resp.Status
			return resp.StatusCode == http.StatusOK, nil
		})
		if err == nil {
			return nil
		}
		select {
		case <-comp.exited:
			c.components = c.components[:len(c.components)-1]
			if attempt < 3 && strings.Contains(tail(comp.logPath, 20), "address already in use") {
				continue
			}
		default:
		}
		if waiting != "" {
			err = fmt.Errorf("%w (its /healthz: %s)", err, waiting)
		}
		return fmt.Errorf("starting %s: %w; its log: %s", name, err, comp.logPath)
	}
}

// start starts one component, its output to <LogDir>/<name>.log (added
// to what is there when again).
func (c *Cluster) start(name, bin string, again bool, args ...string) (*component, error) {
	logPath := filepath.Join(c.LogDir, name+".log")
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if again {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	logFile, err := os.OpenFile(logPath, flags, 0o644)
	if err != nil {
		return nil, err
	}
	comp := &component{name: name, logPath: logPath, exited: make(chan struct{})}
	comp.cmd = exec.Command(bin, args...)
	comp.cmd.Stdout, comp.cmd.Stderr = logFile, logFile
	// If our process is killed outright, the kernel stops the component too.
	comp.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := comp.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		comp.err = comp.cmd.Wait()
		logFile.Close()
		close(comp.exited)
	}()
	c.components = append(c.components, comp)
	return comp, nil
}

// createNodes creates the fake nodes kwok takes over: labelled with their
// region, zone and hostname, without taints.
func (c *Cluster) createNodes(ctx context.Context, cp *ControlPlane) error {
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return err
	}
	for _, n := range c.Nodes {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name: n.Name,
			Labels: map[string]string{
				RegionLabel:          n.Region,
				ZoneLabel:            n.Zone,
				HostnameLabel:        n.Name,
				"kubernetes.io/os":   "linux",
				"kubernetes.io/arch": "amd64",
			},
			Annotations: map[string]string{KwokNodeAnnotation: kwokNodeValue},
		}}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating node %s: %w", n.Name, err)
		}
	}
	return nil
}

// waitReady waits until every node is Ready and untainted (the API server
// taints a new node not-ready until the node lifecycle controller sees it
// Ready), failing early when a component exits.
func (c *Cluster) waitReady(ctx context.Context, cp *ControlPlane) error {
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return err
	}
	var waiting string
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, comp := range c.components {
			select {
			case <-comp.exited:
				return false, fmt.Errorf("%s exited: %v\n%s", comp.name, comp.err, tail(comp.logPath, 20))
			default:
			}
		}
		for _, n := range c.Nodes {
			node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				waiting = fmt.Sprintf("node %s: %v", n.Name, err)
				return false, nil
			}
			if !nodeReady(node) {
				waiting = fmt.Sprintf("node %s to be Ready", n.Name)
				return false, nil
			}
			if len(node.Spec.Taints) > 0 {
				waiting = fmt.Sprintf("node %s to lose its taints %v", n.Name, node.Spec.Taints)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		if waiting != "" {
			err = fmt.Errorf("%w; waiting for %s (logs in %s)", err, waiting, c.LogDir)
		}
		return fmt.Errorf("starting the cluster: %w", err)
	}
	return nil
}

func nodeReady(node *corev1.Node) bool {
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// tail is the last n lines of the file at path, for an error message.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Stop stops kwok, the scheduler and the controller manager (gracefully,
// killing what has not stopped within 30 seconds) and removes their files;
// the logs too unless ClusterOptions.LogDir was given. The nodes stay,
// NotReady in time, with the control plane.
func (c *Cluster) Stop() error {
	err := c.stopComponents()
	if c.dir != "" {
		err = errors.Join(err, os.RemoveAll(c.dir))
		c.dir = ""
	}
	return err
}

// stopComponents stops the components, the last started first. One that
// had exited before is an error.
func (c *Cluster) stopComponents() error {
	var errs []error
	for i := len(c.components) - 1; i >= 0; i-- {
		comp := c.components[i]
		select {
		case <-comp.exited:
			// It was not asked to go.
			errs = append(errs, fmt.Errorf("%s had exited: %v; see %s", comp.name, comp.err, comp.logPath))
			continue
		default:
		}
		_ = comp.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-comp.exited:
		case <-time.After(30 * time.Second):
			_ = comp.cmd.Process.Kill()
			<-comp.exited
		}
	}
	c.components = nil
	return errors.Join(errs...)
}

// AuditPolicy is the API server's audit policy when it keeps an audit log
// (see configureAudit): at Metadata level, every write (create, update,
// patch, delete) and every way into a pod (exec, attach, port-forward,
// proxy), once its response is complete; not the heartbeats and events the
// cluster's components write all the time. An event of a refused request
// names who asked, what, the response code and message and, for a
// ValidatingAdmissionPolicy bound with the Audit action, the policy
// (annotation validation.policy.admission.k8s.io/validation_failure); one
// RBAC refused carries authorization.k8s.io/decision=forbid.
const AuditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    resources:
      - group: coordination.k8s.io
        resources: [leases]
      - group: ""
        resources: [events, nodes, nodes/status]
      - group: events.k8s.io
        resources: [events]
  - level: Metadata
    resources:
      - group: ""
        resources: [pods/exec, pods/attach, pods/portforward, pods/proxy]
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
`

// auditLogFlag is the API server's flag naming its audit log.
const auditLogFlag = "audit-log-path"

// configureAudit makes the API server, before it starts, keep an audit log
// at logPath under AuditPolicy (written beside it, as logPath.policy.yaml):
// JSON lines, one per request the policy logs, written before the response
// is sent (blocking mode), never rotated.
func configureAudit(apiServer *envtest.APIServer, logPath string) error {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	policy := logPath + ".policy.yaml"
	if err := os.WriteFile(policy, []byte(AuditPolicy), 0o644); err != nil {
		return err
	}
	apiServer.Configure().
		Set("audit-policy-file", policy).
		Set(auditLogFlag, logPath).
		Set("audit-log-format", "json").
		Set("audit-log-mode", "blocking").
		Set("audit-log-maxsize", "0")
	return nil
}

// AuditLog is the path of the API server's audit log (JSON lines of
// audit.k8s.io/v1 Events, under AuditPolicy), or "" when it keeps none
// (Options.AuditLog unset).
func (cp *ControlPlane) AuditLog() string {
	if v := cp.env.ControlPlane.GetAPIServer().Configure().Get(auditLogFlag).Get(nil); len(v) > 0 {
		return v[0]
	}
	return ""
}
