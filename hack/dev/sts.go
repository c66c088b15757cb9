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
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// custos-sts as make dev runs it: on 127.0.0.1 over TLS with the run's
// serving certificate, trusting the run's identity provider through the
// run's CA, its signing keys in custos-system, its audit trail signed with
// the manager's key in its own directory.
const (
	stsAuditDirName   = "sts-audit"
	stsIssuerFileName = "sts-issuer"
	stsNamespace      = auditNamespace
)

// stsProcess is custos-sts running as a child process.
type stsProcess struct {
	cmd *exec.Cmd
	// Base is its --issuer-base, https://127.0.0.1:<port>.
	Base string
	// Issuer is the sample tenant's issuer; its token endpoint is
	// Issuer + "/token". It is written in sts-issuer too.
	Issuer  string
	LogPath string
	file    string

	exited chan struct{}
	err    error
}

// startSTS runs bin against kubeconfig and waits until it serves the
// sample tenant's metadata.
func startSTS(ctx context.Context, bin, kubeconfig, devDir, tenant string, certs *loopbackTLS) (*stsProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	auditDir := filepath.Join(devDir, stsAuditDirName)
	if err := os.RemoveAll(auditDir); err != nil {
		return nil, err
	}
	s := &stsProcess{
		Base:    "https://127.0.0.1:" + strconv.Itoa(port),
		LogPath: filepath.Join(devDir, "custos-sts.log"),
		file:    filepath.Join(devDir, stsIssuerFileName),
		exited:  make(chan struct{}),
	}
	s.Issuer = s.Base + "/tenants/" + tenant
	logFile, err := os.Create(s.LogPath)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin,
		"--kubeconfig", kubeconfig,
		"--listen", "127.0.0.1:"+strconv.Itoa(port),
		"--tls-cert-dir", certs.Dir,
		"--namespace", stsNamespace,
		"--issuer-base", s.Base,
		"--trusted-issuers-ca-file", certs.CAFile,
		"--health-probe-bind-address", "0",
		"--metrics-bind-address", "0",
		// Nothing routes to it through a Service: it drains at once.
		"--shutdown-delay=0s",
		"--audit-sink=both",
		"--audit-dir="+auditDir,
		"--audit-signing-key-secret="+auditNamespace+"/"+auditKeySecret,
		"--audit-checkpoint-interval=10s",
	)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	// If our process is killed outright, the kernel stops custos-sts too.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s (run make build): %w", bin, err)
	}
	go func() {
		s.err = s.cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()

	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: certs.Roots}, Proxy: nil}}
	defer client.CloseIdleConnections()
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-s.exited:
			return nil, fmt.Errorf("custos-sts exited before it served: %v; see %s", s.err, s.LogPath)
		case <-deadline.C:
			s.Stop()
			return nil, fmt.Errorf("custos-sts did not serve %s within a minute; see %s", s.Issuer, s.LogPath)
		case <-tick.C:
			resp, err := client.Get(s.Issuer + "/.well-known/oauth-authorization-server")
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, os.WriteFile(s.file, []byte(s.Issuer+"\n"), 0o644)
			}
		}
	}
}

// Stop asks custos-sts to shut down (it closes its audit trail with a
// signed checkpoint) and kills it if it has not within 30 seconds.
func (s *stsProcess) Stop() {
	defer os.Remove(s.file)
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Exited is closed when custos-sts has exited; Err then says how.
func (s *stsProcess) Exited() <-chan struct{} { return s.exited }

// Err is how custos-sts exited, once Exited is closed.
func (s *stsProcess) Err() error { return s.err }

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
