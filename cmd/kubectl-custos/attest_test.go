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
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestAttest: kubectl custos attest, as an owner the API server knows,
// shows the agent and where its review stands and records an
// AgentAttestation that names the agent and carries the comment and
// nothing of who attested; an agent that does not exist is refused,
// naming it, and an attestation without a comment is refused before
// anything is sent.
func TestAttest(t *testing.T) {
	ctx := context.Background()
	cp, err := controlplane.Start(ctx, controlplane.Options{RepoRoot: "../.."})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Stop() }()
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(scheme))
	c, err := client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	tenant := fixtures.UniqueTenant("finance")
	ns := fixtures.CreateTenantNamespace(t, c, tenant)
	// alice may read the agents and attest them; bob may not.
	fixtures.Create(t, c, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "owner", Namespace: ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"custos.dev"}, Resources: []string{"agents"}, Verbs: []string{"get"}},
			{APIGroups: []string{"custos.dev"}, Resources: []string{"agentattestations"}, Verbs: []string{"create"}},
		}})
	fixtures.Create(t, c, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "owners", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "owner"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "alice"}}})
	admin := filepath.Join(t.TempDir(), "kubeconfig")
	if err := controlplane.WriteKubeconfig(admin, cp.Config); err != nil {
		t.Fatal(err)
	}
	asAlice := []string{"--kubeconfig", admin, "--as", "alice", "-n", ns}

	// An agent whose review is overdue, as the controller would report it.
	agent := fixtures.Agent(ns, "payments-bot", tenant,
		fixtures.WithToolsetRefs(custosv1alpha1.ToolsetReference{Name: "payments"}, custosv1alpha1.ToolsetReference{Name: "ledger", Namespace: "shared"}))
	agent.Spec.Review = &custosv1alpha1.AgentReview{EveryDays: 90}
	agent = fixtures.Create(t, c, agent)
	now := time.Now().Truncate(time.Second)
	last, due := metav1.NewTime(now.Add(-92*24*time.Hour)), metav1.NewTime(now.Add(-2*24*time.Hour))
	agent.Status.ObservedGeneration = agent.Generation
	agent.Status.Lifecycle = &custosv1alpha1.LifecycleStatus{Phase: custosv1alpha1.AgentPhaseSuspended}
	agent.Status.Conditions = []metav1.Condition{{Type: custosv1alpha1.ReadyCondition, Status: metav1.ConditionTrue,
		Reason: custosv1alpha1.ReviewOverdueReason, Message: "Owner review overdue", LastTransitionTime: metav1.NewTime(now)}}
	agent.Status.Review = &custosv1alpha1.ReviewStatus{LastAttestedAt: &last, AttestedBy: "carol", Attestation: "payments-bot-x1y2z", DueAt: &due}
	if err := c.Status().Update(ctx, agent); err != nil {
		t.Fatalf("setting the agent's status: %v", err)
	}
	// An agent never attested, without spec.review.
	fixtures.Create(t, c, fixtures.Agent(ns, "reporter", tenant))

	attestations := func() []custosv1alpha1.AgentAttestation {
		t.Helper()
		var list custosv1alpha1.AgentAttestationList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		return list.Items
	}

	// attest, as alice.
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"attest", "payments-bot", "--comment", "purpose and toolsets still right"}, asAlice...), &stdout, &stderr)
	out := stdout.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^agent ` + regexp.QuoteMeta(ns) + `/payments-bot: Suspended \(ReviewOverdue\)$`),
		regexp.MustCompile(`owner: +` + regexp.QuoteMeta(fixtures.OwnerTeam+" ("+fixtures.OwnerContact+")")),
		regexp.MustCompile(`purpose: +` + regexp.QuoteMeta(fixtures.Purpose)),
		regexp.MustCompile(`toolsets: +payments, shared/ledger`),
		regexp.MustCompile(`review: +every 90 days`),
		regexp.MustCompile(`last attested: +` + regexp.QuoteMeta(last.UTC().Format(time.RFC3339)) +
			` \(92d ago\) by carol, agentattestation payments-bot-x1y2z`),
		regexp.MustCompile(`due: +` + regexp.QuoteMeta(due.UTC().Format(time.RFC3339)) + ` \(2d ago\)`),
		regexp.MustCompile(`(?m)^agentattestation ` + regexp.QuoteMeta(ns) + `/payments-bot-[a-z0-9]+ created: payments-bot attested$`),
	} {
		if code != exitOK || !want.MatchString(out) {
			t.Errorf("attest: exit %d, want %s in stdout\n%s\nstderr %q", code, want, out, stderr.String())
		}
	}
	got := attestations()
	if len(got) != 1 {
		t.Fatalf("after attest: %d attestations, want 1", len(got))
	}
	a := got[0]
	if !strings.HasPrefix(a.Name, "payments-bot-") || a.Spec.Agent != "payments-bot" || a.Spec.Comment != "purpose and toolsets still right" {
		t.Errorf("the attestation: %s %+v, want one of payments-bot with the comment", a.Name, a.Spec)
	}
	// No webhook runs here: whatever attester and agent UID are stored are
	// what the client sent.
	if a.Spec.AgentUID != "" || a.Spec.Attester.Username != "" || a.Spec.Attester.UID != "" || len(a.Spec.Attester.Groups) != 0 {
		t.Errorf("the client sent an agent UID or an attester: %+v", a.Spec)
	}

	// An agent never attested and not under review.
	stdout.Reset()
	stderr.Reset()
	code = run(append([]string{"attest", "reporter", "--comment", "checked"}, asAlice...), &stdout, &stderr)
	out = stdout.String()
	if code != exitOK || !regexp.MustCompile(`(?m)^agent `+regexp.QuoteMeta(ns)+`/reporter: not observed yet$`).MatchString(out) ||
		!regexp.MustCompile(`toolsets: +\(none\)`).MatchString(out) ||
		!regexp.MustCompile(`review: +not required \(no spec\.review\)`).MatchString(out) ||
		!regexp.MustCompile(`last attested: +never`).MatchString(out) || strings.Contains(out, "due:") ||
		!strings.Contains(out, "created: reporter attested\n") {
		t.Errorf("attest reporter: exit %d, stdout\n%s\nstderr %q", code, out, stderr.String())
	}

	// An agent that does not exist is refused, naming it; bob holds no
	// Role: the API server refuses him. Nothing is written.
	for _, tc := range []struct {
		args []string
		says string
	}{
		{append([]string{"attest", "nope", "--comment", "checked"}, asAlice...), "agent nope not found in namespace " + ns},
		{[]string{"attest", "payments-bot", "--comment", "checked", "--kubeconfig", admin, "--as", "bob", "-n", ns}, "forbidden"},
	} {
		stderr.Reset()
		if code := run(tc.args, &stdout, &stderr); code != exitFailed || !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("%v: exit %d, stderr %q; want %d saying %q", tc.args, code, stderr.String(), exitFailed, tc.says)
		}
	}
	if n := len(attestations()); n != 2 {
		t.Errorf("after the refusals: %d attestations, want 2", n)
	}

	// Flags that make no sense are refused before anything is sent: with
	// the real kubeconfig, an empty comment writes nothing.
	for _, tc := range []struct {
		args []string
		says string
	}{
		{append([]string{"attest", "payments-bot"}, asAlice...), "--comment is required: say what you reviewed"},
		{append([]string{"attest", "payments-bot", "--comment", "  "}, asAlice...), "--comment is required"},
		{[]string{"attest", "--comment", "x"}, "want one AGENT, got 0 arguments"},
		{[]string{"attest", "a", "b", "--comment", "x"}, "want one AGENT, got 2 arguments"},
		{[]string{"attest", "a", "--comment", "x", "--as-group", "g"}, "--as-group needs --as"},
		{[]string{"attest", "a", "--comment", strings.Repeat("x", 1025)}, "--comment is 1025 characters long"},
	} {
		stderr.Reset()
		args := tc.args
		if !strings.Contains(strings.Join(args, " "), "--kubeconfig") {
			args = append(args, "--kubeconfig", filepath.Join(t.TempDir(), "none"))
		}
		if code := run(args, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("%v: exit %d, stderr %q; want usage saying %q", tc.args, code, stderr.String(), tc.says)
		}
	}
	if n := len(attestations()); n != 2 {
		t.Errorf("after the refused flags: %d attestations, want 2", n)
	}
}
