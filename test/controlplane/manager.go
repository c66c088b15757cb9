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
	"context"
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

// Manager is Custos's manager binary running as a child process against a
// local control plane, as make dev and the benchmarks run it.
type Manager struct {
	cmd *exec.Cmd
	// LogPath holds the manager's output.
	LogPath string
	// MetricsAddr serves /metrics.
	MetricsAddr string

	exited chan struct{}
	err    error
}

// StartManager runs the manager binary bin with every listener on loopback,
// serving the webhooks where the control plane expects them (with the
// certificates it made, so the manager does not manage its own), and waits
// until its readiness endpoint answers. args are added to the command line.
func (cp *ControlPlane) StartManager(ctx context.Context, bin, kubeconfig, logPath string, args ...string) (*Manager, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	m := &Manager{LogPath: logPath, MetricsAddr: "127.0.0.1:" + strconv.Itoa(ports[1]), exited: make(chan struct{})}
	probeAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
	m.cmd = exec.Command(bin, append([]string{
		"--kubeconfig", kubeconfig,
		"--metrics-bind-address", m.MetricsAddr,
		// Plain HTTP on loopback: the bench and make dev read it with curl.
		"--metrics-secure=false",
		"--health-probe-bind-address", probeAddr,
		"--webhook-host", cp.Webhook.Host,
		"--webhook-port", strconv.Itoa(cp.Webhook.Port),
		"--webhook-cert-dir", cp.Webhook.CertDir,
		"--webhook-cert-secret=",
	}, args...)...)
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	// If our process is killed outright, the kernel stops the manager too.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := m.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s (run make build): %w", bin, err)
	}
	go func() {
		m.err = m.cmd.Wait()
		logFile.Close()
		close(m.exited)
	}()

	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			m.Stop()
			return nil, ctx.Err()
		case <-m.exited:
			return nil, fmt.Errorf("the manager exited before it was ready: %v; see %s", m.err, logPath)
		case <-deadline.C:
			m.Stop()
			return nil, fmt.Errorf("the manager was not ready within 2 minutes; see %s", logPath)
		case <-tick.C:
			if ready("http://" + probeAddr + "/readyz") {
				return m, nil
			}
		}
	}
}

// Stop asks the manager to shut down gracefully and kills it if it has not
// within 30 seconds.
func (m *Manager) Stop() {
	select {
	case <-m.exited:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}

// Kill kills the manager outright (SIGKILL), as a crash or a node failure
// would, and waits until it has exited.
func (m *Manager) Kill() {
	_ = m.cmd.Process.Kill()
	<-m.exited
}

// Exited is closed when the manager has exited; Err then says how.
func (m *Manager) Exited() <-chan struct{} { return m.exited }

// Err is how the manager exited, once Exited is closed.
func (m *Manager) Err() error { return m.err }

// PID is the manager's process ID.
func (m *Manager) PID() int { return m.cmd.Process.Pid }

func ready(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// freePorts returns n distinct free ports on loopback.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		// Held until all are picked, so that none is picked twice.
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// BuildManager builds the manager binary (cmd/manager of the repository at
// repoRoot) into dir and returns its path: suites that run Custos as it
// ships run this binary, not the reconcilers linked into the test.
func BuildManager(repoRoot, dir string) (string, error) {
	bin := filepath.Join(dir, "manager")
	build := exec.Command("go", "build", "-o", bin, "./cmd/manager")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the manager: %w\n%s", err, out)
	}
	return bin, nil
}
