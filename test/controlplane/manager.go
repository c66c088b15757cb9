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
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// Manager is Custos's manager binary running as a child process against a
// local control plane, as make dev and the benchmarks run it.
type Manager struct {
	*Process
	// MetricsAddr serves /metrics.
	MetricsAddr string
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
	m := &Manager{MetricsAddr: "127.0.0.1:" + strconv.Itoa(ports[1])}
	probeAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
	m.Process, err = StartProcess(bin, append([]string{
		"--kubeconfig", kubeconfig,
		"--metrics-bind-address", m.MetricsAddr,
		// Plain HTTP on loopback: the bench and make dev read it with curl.
		"--metrics-secure=false",
		"--health-probe-bind-address", probeAddr,
		"--webhook-host", cp.Webhook.Host,
		"--webhook-port", strconv.Itoa(cp.Webhook.Port),
		"--webhook-cert-dir", cp.Webhook.CertDir,
		"--webhook-cert-secret=",
	}, args...), logPath)
	if err != nil {
		return nil, err
	}
	if err := m.WaitReady(ctx, "the manager", 2*time.Minute, 200*time.Millisecond, func() bool {
		return ready("http://" + probeAddr + "/readyz")
	}); err != nil {
		return nil, err
	}
	return m, nil
}

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
