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
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/custos-dev/custos/internal/audit"

	"github.com/custos-dev/custos/test/controlplane"
)

// TestDevReadyAndCleanShutdown walks `make dev` as tooling uses it: wait for
// the ready line, use .dev/kubeconfig to list the samples, send SIGTERM, and
// find no process of it left.
func TestDevReadyAndCleanShutdown(t *testing.T) {
	g := NewWithT(t)
	assets := os.Getenv(controlplane.AssetsEnv)
	g.Expect(assets).NotTo(BeEmpty(), "run through make test, which builds the control plane")
	root, err := filepath.Abs("../..")
	g.Expect(err).NotTo(HaveOccurred())

	bin := t.TempDir()
	for name, pkg := range map[string]string{"manager": "./cmd/manager", "custos-dev": "./hack/dev"} {
		build := exec.Command("go", "build", "-o", filepath.Join(bin, name), pkg)
		build.Dir = root
		out, err := build.CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), "building %s: %s", pkg, out)
	}

	// Every process dev starts carries this directory on its command line
	// (the kubeconfig, etcd's data and the API server's certificates live
	// under it), so leftovers can be found even among other tests' servers.
	marker := t.TempDir()
	state := filepath.Join(marker, "state")
	dev := exec.Command(filepath.Join(bin, "custos-dev"),
		"--repo-root", root, "--state-dir", state, "--manager", filepath.Join(bin, "manager"))
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
	g.Expect(strings.Fields(string(out))).To(ConsistOf(
		"agent.custos.dev/invoice-reconciler",
		"toolset.custos.dev/ledger-readonly",
		"databoundary.custos.dev/acme-finance",
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

	running := processesMentioning(marker)
	for _, name := range []string{"/etcd ", "/kube-apiserver ", "/kube-controller-manager ", "/kube-scheduler ", "/kwok ", "/manager "} {
		g.Expect(running).To(ContainElement(ContainSubstring(name)), "the marker must find %s while it runs", name)
	}

	g.Expect(dev.Process.Signal(syscall.SIGTERM)).To(Succeed())
	done := make(chan error, 1)
	go func() { done <- dev.Wait() }()
	select {
	case err := <-done:
		g.Expect(err).NotTo(HaveOccurred(), "dev must exit 0 on SIGTERM")
	case <-time.After(time.Minute):
		t.Fatal("dev did not exit within a minute of SIGTERM")
	}
	g.Expect(processesMentioning(marker)).To(BeEmpty(), "processes left behind after SIGTERM")
	g.Expect(kubeconfig).NotTo(BeAnExistingFile(), "a kubeconfig of a stopped server must not be left")

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
	g.Expect(actions).To(ContainElements(audit.ActionIdentityBound, audit.ActionLeaseIssued))

	// The manager's log (its audit records on stdout included) and the
	// audit store never hold the token.
	g.Expect(filepath.Join(state, "manager.log")).To(BeAnExistingFile())
	for _, path := range []string{filepath.Join(state, "manager.log"), filepath.Join(state, auditDirName)} {
		g.Expect(containsInTree(path, token[len(token)-32:])).To(BeFalse(), "the lease's token leaked into %s", path)
	}
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
