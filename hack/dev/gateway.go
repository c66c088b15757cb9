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
	"crypto"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/gateway"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/internal/sts/cluster"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/tooldoubles"
)

// custos-gateway as make dev runs it, with the sample Toolset's tool
// server behind it. The tool server (test/tooldoubles' ledger) runs in
// this process on 127.0.0.1 over TLS, with a certificate of the run's CA
// for the name the gateway calls it by, the sample Toolset's Service; the
// gateway dials that name on loopback (--resolve). The tool server takes
// only a token of the sample tenant's issuer for its Toolset, verified
// with custos-sts's published keys, as a real one would.
//
// The gateway exchanges the tokens agents give it at custos-sts with its
// pod's ServiceAccount token as the actor token (docs/sts.md, "Who calls
// whom"): make dev makes that ServiceAccount and a pod bound to it (kwok
// runs it; the gateway itself is this process's child), and keeps a token
// of it, bound to the pod, in a file the gateway reads for every exchange.
const (
	gatewayAuditDirName  = "gateway-audit"
	gatewayURLFileName   = "gateway-url"
	gatewayTokenFileName = "gateway-token"
	gatewayName          = "custos-gateway"
	gatewayNamespace     = auditNamespace
	ledgerLogName        = "ledger.log"
	sampleToolsetFile    = "toolset.yaml"
)

// gatewayServiceAccount is what custos-sts's --gateway-service-account
// names.
var gatewayServiceAccount = gatewayNamespace + "/" + gatewayName

// sampleToolset is config/samples' Toolsets, served by one tool server:
// where the gateway calls it (EndpointURL) and the audiences of the tokens
// for them.
type sampleToolset struct {
	// HostPort is the in-cluster host:port the gateway dials.
	HostPort string
	Host     string
	// Resources are the Toolsets' audiences at custos-sts.
	Resources []string
}

// sampleToolsetFiles are the sample Toolsets the ledger serves: the
// read-only one and the payments.
var sampleToolsetFiles = []string{sampleToolsetFile, "toolset-payments.yaml"}

func readSampleToolset(root string) (*sampleToolset, error) {
	out := &sampleToolset{}
	for _, name := range sampleToolsetFiles {
		data, err := os.ReadFile(filepath.Join(root, "config", "samples", name))
		if err != nil {
			return nil, err
		}
		ts := &custosv1alpha1.Toolset{}
		if err := yaml.UnmarshalStrict(data, ts); err != nil {
			return nil, fmt.Errorf("config/samples/%s: %w", name, err)
		}
		endpoint, err := gateway.EndpointURL(ts)
		if err != nil {
			return nil, err
		}
		u, err := url.Parse(endpoint)
		if err != nil {
			return nil, err
		}
		if u.Scheme != "https" {
			return nil, fmt.Errorf("config/samples/%s: the sample tool server is served over https, not %s", name, u.Scheme)
		}
		if out.HostPort != "" && out.HostPort != u.Host {
			return nil, fmt.Errorf("config/samples/%s: its endpoint %s is not the ledger's, %s", name, u.Host, out.HostPort)
		}
		out.HostPort, out.Host = u.Host, u.Hostname()
		out.Resources = append(out.Resources, cluster.ToolsetResource(ts.Namespace, ts.Name))
	}
	return out, nil
}

// startLedger serves the ledger tools on 127.0.0.1 over TLS, as the sample
// Toolsets' server, taking tokens of issuer for those Toolsets alone. Every
// token it takes or refuses is a line of ledger.log.
func startLedger(devDir, issuer string, ts *sampleToolset, certs *loopbackTLS) (*tooldoubles.Server, error) {
	cert, err := certs.serverCert(ts.Host)
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(devDir, ledgerLogName))
	if err != nil {
		return nil, err
	}
	keys := &jwksKeys{url: issuer + "/jwks", client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: certs.Roots}, Proxy: nil}}}
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(logFile, time.Now().UTC().Format(time.RFC3339Nano)+" "+format+"\n", args...)
	}
	s, err := tooldoubles.Serve("127.0.0.1:0", tooldoubles.Options{
		Tools: tooldoubles.Ledger(), TLS: true, Certificate: &cert,
		// The trace goes on here: what a tool server that traces would
		// take its parent span from.
		OnCall: func(tool, traceparent string) { logf("called %s, traceparent %s", tool, traceparent) },
		Verify: func(token string) (any, error) {
			var c *sts.Claims
			var err error
			for _, resource := range ts.Resources {
				if c, err = sts.Verify(keys, issuer, token, resource, time.Now()); err == nil {
					break
				}
			}
			if err != nil {
				logf("refused a token: %v", err)
				return nil, err
			}
			logf("took a token for %s: %s for %s, scope %q, jti %s (exchanged from %s)", c.Audience, c.ClientID, c.Subject, c.Scope, c.ID, c.Parent)
			return c, nil
		},
	})
	if err != nil {
		logFile.Close()
		return nil, err
	}
	return s, nil
}

// jwksKeys are a custos-sts issuer's published keys, fetched again when a
// token names one it does not know (custos-sts rotated), at most every 10 s.
type jwksKeys struct {
	url    string
	client *http.Client

	mu      sync.Mutex
	set     jose.JSONWebKeySet
	fetched time.Time
}

func (k *jwksKeys) PublicKey(kid string) (crypto.PublicKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if pub, ok := publicKey(k.set, kid); ok || time.Since(k.fetched) < 10*time.Second {
		return pub, ok
	}
	k.fetched = time.Now()
	resp, err := k.client.Get(k.url)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set) != nil {
		return nil, false
	}
	k.set = set
	return publicKey(k.set, kid)
}

func publicKey(set jose.JSONWebKeySet, kid string) (crypto.PublicKey, bool) {
	for _, key := range set.Key(kid) {
		if key.Valid() && key.IsPublic() {
			return key.Key, true
		}
	}
	return nil, false
}

// startGatewayIdentity makes the gateway's ServiceAccount and a pod of
// it, writes a token of it for custos-sts, bound to the pod, into
// gateway-token, and renews it until stopped. It returns the file, and
// what stops the renewals and removes it.
func startGatewayIdentity(ctx context.Context, cp *controlplane.ControlPlane, devDir string) (string, func(), error) {
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return "", nil, err
	}
	labels := map[string]string{"app.kubernetes.io/name": gatewayName}
	if _, err := cs.CoreV1().ServiceAccounts(gatewayNamespace).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: gatewayName, Namespace: gatewayNamespace, Labels: labels},
	}, metav1.CreateOptions{}); err != nil {
		return "", nil, err
	}
	pod, err := cs.CoreV1().Pods(gatewayNamespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: gatewayName, Namespace: gatewayNamespace, Labels: labels},
		Spec: corev1.PodSpec{ServiceAccountName: gatewayName, Containers: []corev1.Container{{
			Name: "gateway", Image: "custos-gateway:dev",
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", nil, err
	}
	file := filepath.Join(devDir, gatewayTokenFileName)
	mint := func() (time.Duration, error) {
		tr, err := cs.CoreV1().ServiceAccounts(gatewayNamespace).CreateToken(ctx, gatewayName, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{
				Audiences: []string{"custos-sts"}, ExpirationSeconds: new(int64(3600)),
				BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return 0, err
		}
		tmp := file + ".new"
		if err := os.WriteFile(tmp, []byte(tr.Status.Token), 0o600); err != nil {
			return 0, err
		}
		return time.Until(tr.Status.ExpirationTimestamp.Time), os.Rename(tmp, file)
	}
	ctx, cancel := context.WithCancel(ctx)
	lifetime, err := mint()
	if err != nil {
		cancel()
		return "", nil, fmt.Errorf("a token for %s: %w", gatewayServiceAccount, err)
	}
	// As the kubelet renews a projected token: at 80 % of its life.
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(lifetime * 4 / 5):
			}
			next, err := mint()
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				say("renewing the token of %s: %v; again in 10s", gatewayServiceAccount, err)
				next = 10 * time.Second * 5 / 4
			}
			lifetime = next
		}
	}()
	return file, func() {
		cancel()
		<-renewed
		_ = os.Remove(file)
	}, nil
}

// gatewayProcess is custos-gateway running as a child process.
type gatewayProcess struct {
	*controlplane.Process
	// Name is the replica's: custos-gateway, custos-gateway-1, ...
	Name string
	// MCP is the sample tenant's endpoint, <base>/tenants/<tenant>/mcp.
	// It is written in gateway-url too.
	MCP  string
	file string
}

// gatewayReplicaName names replica n of make dev's gateway: its log is
// <name>.log. The first is custos-gateway; the others (make
// bench-freeze runs two) custos-gateway-1, ...
func gatewayReplicaName(n int) string {
	if n == 0 {
		return gatewayName
	}
	return gatewayName + "-" + strconv.Itoa(n)
}

// startGateway runs replica n of bin against kubeconfig, verifying tokens
// with custos-sts's keys, exchanging them with the token in tokenFile,
// and calling the sample Toolset's server at ledgerAddr, and waits until
// it serves. Each replica keeps its own audit trail (gateway-audit,
// gateway-audit-1, ...); the first's endpoint is written in gateway-url.
func startGateway(ctx context.Context, bin, kubeconfig, devDir string, n int, tenant, tokenFile string, stsProc *stsProcess,
	ts *sampleToolset, ledgerAddr string, certs *loopbackTLS, extra ...string) (*gatewayProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	name := gatewayReplicaName(n)
	auditDir := filepath.Join(devDir, gatewayAuditDirName)
	if n > 0 {
		auditDir += "-" + strconv.Itoa(n)
	}
	if err := os.RemoveAll(auditDir); err != nil {
		return nil, err
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	g := &gatewayProcess{Name: name, MCP: "https://" + listen + "/tenants/" + tenant + "/mcp"}
	if n == 0 {
		g.file = filepath.Join(devDir, gatewayURLFileName)
	}
	g.Process, err = controlplane.StartProcessWithEnv(bin, append([]string{
		"--kubeconfig", kubeconfig,
		"--listen", listen,
		"--tls-cert-dir", certs.Dir,
		"--issuer-base", stsProc.Base,
		"--sts-ca-file", certs.CAFile,
		"--sts-namespace", stsNamespace,
		// Where the replicas share the caps' ledger and report what each
		// agent takes for the manager's breaker (ConfigMap
		// custos-usage-<replica>), as the chart has them.
		"--credentials-namespace", gatewayCredentialsNamespace,
		"--actor-token-file", tokenFile,
		"--upstream-ca-file", certs.CAFile,
		"--resolve", ts.HostPort + "=" + ledgerAddr,
		// A payment waits 2 s for its approvers before the agent is told
		// to retry: the tour's calls answer quickly.
		"--approval-hold=2s",
		"--health-probe-bind-address", "0",
		"--metrics-bind-address", "0",
		"--shutdown-delay=0s",
		"--audit-sink=both",
		"--audit-dir=" + auditDir,
		"--audit-signing-key-secret=" + auditNamespace + "/" + auditKeySecret,
		"--audit-checkpoint-interval=10s",
	}, extra...), []string{"POD_NAME=" + name}, filepath.Join(devDir, name+".log"))
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: certs.Roots}, Proxy: nil}}
	defer client.CloseIdleConnections()
	// Serving (it serves once its cache has synced): a path it does not
	// serve is not found. A request to the endpoint would be on the record.
	if err := g.WaitReady(ctx, name, time.Minute, 100*time.Millisecond, func() bool {
		resp, err := client.Get("https://" + listen + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNotFound
	}); err != nil {
		return nil, err
	}
	if g.file == "" {
		return g, nil
	}
	return g, os.WriteFile(g.file, []byte(g.MCP+"\n"), 0o644)
}

// Stop asks custos-gateway to shut down (it closes its audit trail with
// a signed checkpoint) and kills it if it has not within 30 seconds.
func (g *gatewayProcess) Stop() {
	if g.file != "" {
		defer os.Remove(g.file)
	}
	g.Process.Stop()
}
