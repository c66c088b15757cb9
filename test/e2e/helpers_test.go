//go:build e2e

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

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/test/controlplane"
)

// Bounds of the waits: generous for a loaded CI machine, bounded so that a
// broken journey fails in minutes, not at the test timeout.
const (
	eventually = 2 * time.Minute
	polling    = 250 * time.Millisecond
)

// command runs bin with args (and stdin, when not empty) and returns its
// combined output.
func command(bin, stdin string, env []string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// kubectl runs kubectl as the user of kubeconfig; stdin is a manifest for
// `apply -f -` and the like.
func kubectl(kubeconfig, stdin string, args ...string) (string, error) {
	return command(kubectlBin, stdin, nil, append([]string{"--kubeconfig", kubeconfig}, args...)...)
}

// mustKubectl is kubectl that must succeed.
func mustKubectl(g Gomega, kubeconfig, stdin string, args ...string) string {
	out, err := kubectl(kubeconfig, stdin, args...)
	g.ExpectWithOffset(1, err).NotTo(HaveOccurred(), "kubectl %s:\n%s", strings.Join(args, " "), out)
	return out
}

// helm runs helm against the cluster as the platform team.
func helm(g Gomega, args ...string) string {
	env := []string{
		"HELM_CACHE_HOME=" + filepath.Join(artifacts, "helm", "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(artifacts, "helm", "config"),
		"HELM_DATA_HOME=" + filepath.Join(artifacts, "helm", "data"),
	}
	out, err := command(helmBin, "", env, append([]string{"--kubeconfig", admin}, args...)...)
	g.ExpectWithOffset(1, err).NotTo(HaveOccurred(), "helm %s:\n%s", strings.Join(args, " "), out)
	return out
}

// newClient is a client of the platform team's, reading what the journeys
// check; made anew after the CRDs arrive so that it discovers them.
func newClient(g Gomega) client.Client {
	c, err := client.New(cp.Config, client.Options{Scheme: scheme})
	g.ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return c
}

// condition is the agent's condition of type t, or nil.
func condition(agent *custosv1alpha1.Agent, t string) *metav1.Condition {
	return meta.FindStatusCondition(agent.Status.Conditions, t)
}

// agentPods are the pods of agent name in ns that are not going away.
func agentPods(g Gomega, c client.Client, ns, name string) []corev1.Pod {
	var pods corev1.PodList
	g.ExpectWithOffset(1, c.List(context.Background(), &pods, client.InNamespace(ns),
		client.MatchingLabels{custosv1alpha1.AgentLabel: name})).To(Succeed())
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	return live
}

// startChartManager runs the manager binary with the chart's Deployment's
// arguments, as the chart's ServiceAccount (impersonated), listening where
// the chart's webhook Service sends the API server: its cluster IP, on
// loopback here. This is what a pod of the chart's Deployment would do on a
// real node (kwok's pods of it run nothing).
//
// The manager is stopped when t (the whole journey, not one step) ends.
func startChartManager(t *testing.T, g Gomega, c client.Client, namespace, release string) *controlplane.Manager {
	m, err := cp.StartChartManager(context.Background(), c, namespace, release, managerBin, artifacts)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(m.Stop)
	return m
}

// userKubeconfig writes a kubeconfig of a user of the given groups (no
// permissions but those RBAC grants them) and returns its path.
func userKubeconfig(g Gomega, name string, groups ...string) string {
	cfg, err := cp.AddUser(name, groups...)
	g.ExpectWithOffset(1, err).NotTo(HaveOccurred())
	path := filepath.Join(artifacts, strings.NewReplacer("@", "-at-", ":", "-").Replace(name)+".kubeconfig")
	g.ExpectWithOffset(1, controlplane.WriteKubeconfig(path, cfg)).To(Succeed())
	return path
}

// dumpOnFailure registers a cleanup that, when t failed, writes what a
// person debugging it would look at first into the artifacts directory and
// logs the essentials: the objects of the namespaces (YAML), events, where
// the pods run, and the manager's log.
func dumpOnFailure(t *testing.T, namespaces ...string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dir := filepath.Join(artifacts, "dump-"+strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Logf("dump: %v", err)
			return
		}
		get := func(file string, args ...string) string {
			out, err := kubectl(admin, "", args...)
			if err != nil {
				out = fmt.Sprintf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			if file != "" {
				if werr := os.WriteFile(filepath.Join(dir, file), []byte(out), 0o644); werr != nil {
					t.Logf("dump: %v", werr)
				}
			}
			return out
		}
		get("cluster.yaml", "get", "nodes,databoundaries,validatingwebhookconfigurations,mutatingwebhookconfigurations", "-o", "yaml")
		for _, ns := range namespaces {
			// Secrets by name only: lease tokens stay out of dumps.
			get(ns+".yaml", "get", "-n", ns, "agents,toolsets,deployments,replicasets,pods,serviceaccounts,networkpolicies", "-o", "yaml")
			t.Logf("dump of namespace %s:\n%s\n%s", ns,
				get("", "get", "-n", ns, "agents,deployments,replicasets,pods,serviceaccounts,networkpolicies,secrets", "-o", "wide"),
				get(ns+"-events.txt", "get", "events", "-n", ns, "--sort-by=.lastTimestamp"))
		}
		get("events.txt", "get", "events", "-A", "--sort-by=.lastTimestamp")
		t.Logf("dump: nodes and boundaries:\n%s", get("", "get", "nodes,databoundaries", "-o", "wide", "--show-labels"))
		if log, err := os.ReadFile(filepath.Join(artifacts, "manager.log")); err == nil {
			lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
			if len(lines) > 80 {
				lines = lines[len(lines)-80:]
			}
			t.Logf("dump: the manager's log (last %d lines):\n%s", len(lines), strings.Join(lines, "\n"))
		}
		t.Logf("dump: objects as YAML in %s; the manager's, control plane's and cluster components' logs in %s", dir, artifacts)
	})
}

// metaItems are the items of list.
func metaItems(list client.ObjectList) ([]client.Object, error) {
	objs, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	var out []client.Object
	for _, o := range objs {
		obj, ok := o.(client.Object)
		if !ok {
			return nil, fmt.Errorf("%T is not an object", o)
		}
		out = append(out, obj)
	}
	return out, nil
}

func artifactsPath(name string) string { return filepath.Join(artifacts, name) }

func mustReadFile(g Gomega, path string) string {
	data, err := os.ReadFile(path)
	g.ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return string(data)
}

// mkdir makes the directory name in the artifacts directory.
func mkdir(g Gomega, name string) string {
	dir := filepath.Join(artifacts, name)
	g.ExpectWithOffset(1, os.MkdirAll(dir, 0o755)).To(Succeed())
	return dir
}

// impersonating is the platform team's connection acting as user (in
// groups) through impersonation, as a tenant's own kubeconfig would act,
// and sending userAgent: the API server's audit event of each request
// carries it, which tells one attempt's event from every other.
func impersonating(user string, groups []string, userAgent string) *rest.Config {
	cfg := rest.CopyConfig(cp.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	cfg.UserAgent = userAgent
	return cfg
}

// apiAuditEvent is what the suite reads of an event (audit.k8s.io/v1) of
// the API server's audit log.
type apiAuditEvent struct {
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	RequestURI string `json:"requestURI"`
	Verb       string `json:"verb"`
	User       struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	} `json:"user"`
	ImpersonatedUser *struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	} `json:"impersonatedUser"`
	UserAgent string `json:"userAgent"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *metav1.Status    `json:"responseStatus"`
	Annotations    map[string]string `json:"annotations"`
	StageTimestamp metav1.MicroTime  `json:"stageTimestamp"`
}

// Audit annotations the API server sets on the event of a request it
// refused: the authorizer's decision, and the failures of
// ValidatingAdmissionPolicies bound with the Audit action (a JSON list
// naming each policy and binding).
const (
	authorizationDecisionAnnotation = "authorization.k8s.io/decision"
	policyFailureAnnotation         = "validation.policy.admission.k8s.io/validation_failure"
)

// apiAuditLog reads the API server's audit log (cp.AuditLog()) as it
// grows, keeping the events keep accepts.
type apiAuditLog struct {
	path    string
	keep    func(apiAuditEvent) bool
	offset  int64
	partial []byte
	events  []apiAuditEvent
}

// refresh reads what the API server wrote since the last refresh.
func (l *apiAuditLog) refresh() error {
	if l.path == "" {
		return fmt.Errorf("the API server keeps no audit log: start the control plane with controlplane.Options.AuditLog")
	}
	f, err := os.Open(l.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(l.offset, io.SeekStart); err != nil {
		return err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	l.offset += int64(len(data))
	lines := bytes.Split(append(l.partial, data...), []byte("\n"))
	l.partial = bytes.Clone(lines[len(lines)-1])
	for _, line := range lines[:len(lines)-1] {
		var ev apiAuditEvent
		if json.Unmarshal(line, &ev) == nil && (l.keep == nil || l.keep(ev)) {
			l.events = append(l.events, ev)
		}
	}
	return nil
}

// find is the events read so far that match.
func (l *apiAuditLog) find(match func(apiAuditEvent) bool) []apiAuditEvent {
	var out []apiAuditEvent
	for _, ev := range l.events {
		if match(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// custosAuditRecords are the events of Custos's audit trail in the log of
// a manager running with the chart's default sink (stdout: one JSON line a
// record, among its other output).
func custosAuditRecords(path string) ([]audit.Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	schema := []byte(`"schema":"` + audit.SchemaVersion + `"`)
	var out []audit.Record
	for _, line := range bytes.Split(data, []byte("\n")) {
		if !bytes.Contains(line, schema) {
			continue
		}
		var r audit.Record
		if json.Unmarshal(line, &r) == nil && r.Type == audit.TypeEvent {
			out = append(out, r)
		}
	}
	return out, nil
}
