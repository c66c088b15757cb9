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
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/custos-dev/custos/test/controlplane"
)

// custos-sts as make dev runs it: on 127.0.0.1 over TLS with the run's
// serving certificate, trusting the run's identity provider through the
// run's CA, its signing keys in custos-system, its audit trail signed with
// the manager's key in its own directory, taking the tokens agents were
// given for the gateway from custos-gateway's ServiceAccount alone.
const (
	stsAuditDirName   = "sts-audit"
	stsIssuerFileName = "sts-issuer"
	stsNamespace      = auditNamespace
)

// stsProcess is custos-sts running as a child process.
type stsProcess struct {
	*controlplane.Process
	// Base is its --issuer-base, https://127.0.0.1:<port>.
	Base string
	// Issuer is the sample tenant's issuer; its token endpoint is
	// Issuer + "/token". It is written in sts-issuer too.
	Issuer string
	file   string
}

// startSTS runs bin against kubeconfig and waits until it serves the
// sample tenant's metadata.
func startSTS(ctx context.Context, bin, kubeconfig, devDir, tenant string, certs *loopbackTLS, extra ...string) (*stsProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	auditDir := filepath.Join(devDir, stsAuditDirName)
	if err := os.RemoveAll(auditDir); err != nil {
		return nil, err
	}
	s := &stsProcess{Base: "https://127.0.0.1:" + strconv.Itoa(port), file: filepath.Join(devDir, stsIssuerFileName)}
	s.Issuer = s.Base + "/tenants/" + tenant
	s.Process, err = controlplane.StartProcess(bin, append([]string{
		"--kubeconfig", kubeconfig,
		"--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--tls-cert-dir", certs.Dir,
		"--namespace", stsNamespace,
		"--issuer-base", s.Base,
		"--trusted-issuers-ca-file", certs.CAFile,
		"--gateway-service-account", gatewayServiceAccount,
		"--health-probe-bind-address", "0",
		"--metrics-bind-address", "0",
		// Nothing routes to it through a Service: it drains at once.
		"--shutdown-delay=0s",
		"--audit-sink=both",
		"--audit-dir=" + auditDir,
		"--audit-signing-key-secret=" + auditNamespace + "/" + auditKeySecret,
		"--audit-checkpoint-interval=10s",
	}, extra...), filepath.Join(devDir, "custos-sts.log"))
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: certs.Roots}, Proxy: nil}}
	defer client.CloseIdleConnections()
	if err := s.WaitReady(ctx, "custos-sts", time.Minute, 100*time.Millisecond, func() bool {
		resp, err := client.Get(s.Issuer + "/.well-known/oauth-authorization-server")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); err != nil {
		return nil, err
	}
	return s, os.WriteFile(s.file, []byte(s.Issuer+"\n"), 0o644)
}

// Stop asks custos-sts to shut down (it closes its audit trail with a
// signed checkpoint) and kills it if it has not within 30 seconds.
func (s *stsProcess) Stop() {
	defer os.Remove(s.file)
	s.Process.Stop()
}

// freePort is a port on 127.0.0.1 free a moment ago. custos-sts must know
// its own URL before it listens (the tenants' issuers are under it).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
