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
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/custos-dev/custos/internal/sts/cluster"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestRevoke: kubectl custos revoke, as a person bound to the chart's
// revoker Role, puts a session on the tenant's list with their name as
// the API server gives it; someone without the Role is refused by the API
// server and nothing is written; bad flags are refused before anything is
// sent.
func TestRevoke(t *testing.T) {
	ctx := context.Background()
	cp, err := controlplane.Start(ctx, controlplane.Options{RepoRoot: "../.."})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Stop() }()
	c, err := client.New(cp.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ns := fixtures.CreateTenantNamespace(t, c, fixtures.UniqueTenant("custos-system"))
	// The chart's custos-sts-revoker Role (charts/custos/templates/sts.yaml), bound to oncall.
	fixtures.Create(t, c, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "custos-sts-revoker", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "create", "update"}}}})
	fixtures.Create(t, c, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "oncall", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "custos-sts-revoker"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "oncall"}}})
	kubeconfig := func(user string, groups ...string) string {
		cfg, err := cp.AddUser(user, groups...)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "kubeconfig")
		if err := controlplane.WriteKubeconfig(path, cfg); err != nil {
			t.Fatal(err)
		}
		return path
	}
	list := types.NamespacedName{Namespace: ns, Name: cluster.RevocationListName("acme")}

	var stdout, stderr bytes.Buffer
	code := run([]string{"revoke", "--kubeconfig", kubeconfig("ola", "oncall"), "-n", ns, "--tenant", "acme",
		"--session", "s-alice", "--reason", "laptop stolen", "--for", "2h"}, &stdout, &stderr)
	if code != exitOK || !strings.Contains(stdout.String(), "revoked session s-alice (every token of it) of tenant acme until ") ||
		!strings.Contains(stdout.String(), "by ola: laptop stolen") {
		t.Fatalf("revoke as oncall: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, list, cm); err != nil {
		t.Fatal(err)
	}
	if len(cm.Data) != 1 {
		t.Fatalf("the list: %v, want s-alice alone", cm.Data)
	}
	for _, raw := range cm.Data {
		var e cluster.Revocation
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind != cluster.RevokeSession || e.Value != "s-alice" || e.By != "ola" || e.Reason != "laptop stolen" ||
			e.Until.Sub(e.At.Time) < 2*time.Hour-time.Second || e.Until.Sub(e.At.Time) > 2*time.Hour+time.Second {
			t.Errorf("the entry: %+v, want s-alice revoked by ola for 2h", e)
		}
	}
	// The STS refuses that session from now on.
	if why, revoked := (&cluster.Revocations{Reader: c, Namespace: ns}).Revoked("acme", "", "s-alice", ""); !revoked ||
		!strings.Contains(why, "by ola: laptop stolen") {
		t.Errorf("custos-sts's view of s-alice: %q, %v", why, revoked)
	}

	// What is revoked, listed for the on-call people.
	ola := kubeconfig("ola", "oncall")
	stdout.Reset()
	if code := run([]string{"revoke", "--kubeconfig", ola, "-n", ns, "--tenant", "acme", "--list"}, &stdout, &stderr); code != exitOK ||
		!strings.HasPrefix(stdout.String(), "KIND ") || !strings.Contains(stdout.String(), "session  s-alice") ||
		!strings.Contains(stdout.String(), "ola  laptop stolen") {
		t.Errorf("--list: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	if code := run([]string{"revoke", "--kubeconfig", ola, "-n", ns, "--tenant", "globex", "--list"}, &stdout, &stderr); code != exitOK ||
		stdout.String() != "nothing is revoked in tenant globex\n" {
		t.Errorf("--list of a tenant with no list: exit %d, %q", code, stdout.String())
	}

	// tina holds no revoker Role: the API server says no, nothing changes.
	stdout.Reset()
	stderr.Reset()
	code = run([]string{"revoke", "--kubeconfig", kubeconfig("tina", "developers"), "-n", ns, "--tenant", "acme",
		"--jti", "jti-1", "--reason", "because"}, &stdout, &stderr)
	if code != exitFailed || !strings.Contains(stderr.String(), "forbidden") {
		t.Errorf("revoke as tina: exit %d, stderr %q; want refused as forbidden", code, stderr.String())
	}
	if err := c.Get(ctx, list, cm); err != nil || len(cm.Data) != 1 {
		t.Errorf("the list after tina's attempt: %v, %v", cm.Data, err)
	}

	// Flags that make no sense are refused before anything is sent.
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--tenant", "acme", "--reason", "x"}, "give exactly one of --session and --jti"},
		{[]string{"--tenant", "acme", "--session", "s", "--jti", "j", "--reason", "x"}, "give exactly one of --session and --jti"},
		{[]string{"--tenant", "acme", "--session", "s"}, "--reason is required"},
		{[]string{"--session", "s", "--reason", "x"}, "--tenant is required"},
		{[]string{"--tenant", "acme", "--session", "s", "--reason", "x", "--for", "-1h"}, "--for -1h0m0s: must be positive"},
		{[]string{"--tenant", "acme", "--list", "--session", "s"}, "--list takes no --session, --jti or --reason"},
	} {
		stderr.Reset()
		args := append([]string{"revoke", "--kubeconfig", filepath.Join(t.TempDir(), "none")}, tc.args...)
		if code := run(args, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("%v: exit %d, stderr %q; want usage saying %q", tc.args, code, stderr.String(), tc.says)
		}
	}
}
