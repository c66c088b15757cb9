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

// approvalRequest is a valid ApprovalRequest for tool pay, as
// custos-gateway would make it, with arguments args.
func approvalRequest(ns, name, args string) *custosv1alpha1.ApprovalRequest {
	return &custosv1alpha1.ApprovalRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: custosv1alpha1.ApprovalRequestSpec{
			Agent:              custosv1alpha1.ApprovalAgent{Name: "payments-bot", UID: "3f1c2a9e-0000-4000-8000-000000000001"},
			Toolset:            custosv1alpha1.ToolsetReference{Name: "payments"},
			Tool:               "pay",
			Access:             custosv1alpha1.ToolAccessWrite,
			Irreversible:       true,
			CallDigest:         "sha256:" + strings.Repeat("ab", 32),
			Arguments:          args,
			Person:             "bob@example.com",
			Policies:           []string{"p"},
			Quorum:             1,
			SeparationOfDuties: custosv1alpha1.SeparationOfDuties{},
			ExpiresAt:          metav1.NewTime(time.Now().Add(15 * time.Minute).Truncate(time.Second)),
		},
	}
}

// TestApprove: kubectl custos pending lists the requests waiting for
// people; approve and deny, as a person the API server knows, show the
// call and record an ApprovalDecision that names the request and the
// verdict and nothing of who made it; a request that does not exist or is
// already decided is refused before anything is written.
func TestApprove(t *testing.T) {
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
	ns := fixtures.CreateTenantNamespace(t, c, fixtures.UniqueTenant("finance"))
	empty := fixtures.CreateTenantNamespace(t, c, fixtures.UniqueTenant("quiet"))
	// alice may read the requests and decide on them; bob may not.
	fixtures.Create(t, c, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "approver", Namespace: ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"custos.dev"}, Resources: []string{"approvalrequests"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{"custos.dev"}, Resources: []string{"approvaldecisions"}, Verbs: []string{"create"}},
		}})
	fixtures.Create(t, c, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "approvers", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "approver"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "alice"}}})
	admin := filepath.Join(t.TempDir(), "kubeconfig")
	if err := controlplane.WriteKubeconfig(admin, cp.Config); err != nil {
		t.Fatal(err)
	}
	asAlice := []string{"--kubeconfig", admin, "--as", "alice", "-n", ns}

	setPhase := func(r *custosv1alpha1.ApprovalRequest, phase custosv1alpha1.ApprovalPhase, approvals int32) {
		t.Helper()
		r.Status.Phase, r.Status.Approvals = phase, approvals
		if err := c.Status().Update(ctx, r); err != nil {
			t.Fatalf("setting %s's phase to %s: %v", r.Name, phase, err)
		}
	}
	longArgs := `{"amount":1250,"currency":"EUR","iban":"DE89370400440532013000","reference":"invoice 2026-118"}`
	pay := fixtures.Create(t, c, approvalRequest(ns, "pay-1a2b-1", longArgs))
	setPhase(pay, custosv1alpha1.ApprovalPending, 0)
	consumed := fixtures.Create(t, c, approvalRequest(ns, "pay-0", `{"amount":5}`))
	setPhase(consumed, custosv1alpha1.ApprovalConsumed, 1)
	// No phase yet (the controller has not seen it), and a decision record
	// trying to recolour the approver's terminal.
	fresh := approvalRequest(ns, "pay-2", `{"amount":7}`)
	fresh.Spec.DecisionRecord = "{\"why\":\"\x1b[32mall fine\x1b[0m\"}"
	fixtures.Create(t, c, fresh)

	// pending: the two open requests, not the consumed one.
	var stdout, stderr bytes.Buffer
	if code := run(append([]string{"pending"}, asAlice...), &stdout, &stderr); code != exitOK {
		t.Fatalf("pending: exit %d, stderr %q", code, stderr.String())
	}
	out := stdout.String()
	row := regexp.MustCompile(`(?m)^pay-1a2b-1 +Pending +payments-bot +pay +bob@example\.com +0/1 +in 1[45]m +` +
		regexp.QuoteMeta(longArgs[:57]+"...") + `$`)
	if !strings.HasPrefix(out, "NAME ") || !strings.Contains(out, "APPROVALS") || !row.MatchString(out) {
		t.Errorf("pending: want pay-1a2b-1's row, got\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^pay-2 +Pending +payments-bot +pay `).MatchString(out) || strings.Contains(out, "pay-0") {
		t.Errorf("pending: want pay-2 (no phase yet) and not pay-0 (Consumed), got\n%s", out)
	}
	stdout.Reset()
	if code := run([]string{"pending", "--kubeconfig", admin, "-A"}, &stdout, &stderr); code != exitOK ||
		!strings.HasPrefix(stdout.String(), "NAMESPACE ") || !strings.Contains(stdout.String(), ns+"  pay-1a2b-1 ") {
		t.Errorf("pending -A: exit %d, stdout\n%s\nstderr %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	if code := run([]string{"pending", "--kubeconfig", admin, "-n", empty}, &stdout, &stderr); code != exitOK ||
		stdout.String() != "No approval requests pending in namespace "+empty+".\n" {
		t.Errorf("pending in an empty namespace: exit %d, %q", code, stdout.String())
	}

	decisions := func() []custosv1alpha1.ApprovalDecision {
		t.Helper()
		var list custosv1alpha1.ApprovalDecisionList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		return list.Items
	}

	// approve, as alice.
	stdout.Reset()
	stderr.Reset()
	code := run(append([]string{"approve", "pay-1a2b-1", "--comment", "invoice checked"}, asAlice...), &stdout, &stderr)
	out = stdout.String()
	if code != exitOK || !strings.Contains(out, "approval request "+ns+"/pay-1a2b-1: Pending, 0/1 approvals, expires in 1") ||
		!regexp.MustCompile(`agent: +payments-bot`).MatchString(out) ||
		!regexp.MustCompile(`tool: +pay \(Write, irreversible\) of toolset payments`).MatchString(out) ||
		!regexp.MustCompile(`person: +bob@example\.com`).MatchString(out) || !strings.Contains(out, longArgs) ||
		!regexp.MustCompile(`(?m)^approvaldecision `+regexp.QuoteMeta(ns)+`/pay-1a2b-1-[a-z0-9]+ created: Approve on pay-1a2b-1$`).MatchString(out) {
		t.Fatalf("approve: exit %d, stdout\n%s\nstderr %q", code, out, stderr.String())
	}
	got := decisions()
	if len(got) != 1 {
		t.Fatalf("after approve: %d decisions, want 1", len(got))
	}
	d := got[0]
	if !strings.HasPrefix(d.Name, "pay-1a2b-1-") || d.Spec.Request != "pay-1a2b-1" || d.Spec.Decision != custosv1alpha1.Approve ||
		d.Spec.Comment != "invoice checked" {
		t.Errorf("the decision: %s %+v, want Approve on pay-1a2b-1 with the comment", d.Name, d.Spec)
	}
	// No webhook runs here: whatever approver is stored is what the client sent.
	if d.Spec.Approver.Username != "" || d.Spec.Approver.UID != "" || len(d.Spec.Approver.Groups) != 0 {
		t.Errorf("the client sent an approver: %+v", d.Spec.Approver)
	}

	// deny, as alice; the decision record is shown, escaped.
	stdout.Reset()
	code = run(append([]string{"deny", "pay-2", "--comment", "not this week"}, asAlice...), &stdout, &stderr)
	out = stdout.String()
	if code != exitOK || !strings.Contains(out, "created: Deny on pay-2") ||
		!strings.Contains(out, `{"why":"\u001b[32mall fine\u001b[0m"}`) || strings.Contains(out, "\x1b") {
		t.Errorf("deny: exit %d, stdout %q, stderr %q", code, out, stderr.String())
	}
	var denied *custosv1alpha1.ApprovalDecision
	for _, d := range decisions() {
		if d.Spec.Request == "pay-2" {
			denied = &d
		}
	}
	if denied == nil || denied.Spec.Decision != custosv1alpha1.Deny || denied.Spec.Comment != "not this week" {
		t.Errorf("the denial: %+v", denied)
	}

	// What cannot be decided is refused, naming it, and nothing is written.
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"approve", "nope"}, exitFailed, "approval request nope not found in namespace " + ns},
		{[]string{"approve", "pay-0"}, exitFailed, "approval request pay-0 is Consumed: nothing left to decide"},
		{[]string{"deny", "pay-0"}, exitFailed, "approval request pay-0 is Consumed: nothing left to decide"},
	} {
		stderr.Reset()
		if code := run(append(tc.args, asAlice...), &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("%v: exit %d, stderr %q; want %d saying %q", tc.args, code, stderr.String(), tc.code, tc.says)
		}
	}
	// bob holds no Role: the API server refuses him.
	stderr.Reset()
	if code := run([]string{"approve", "pay-1a2b-1", "--kubeconfig", admin, "--as", "bob", "-n", ns}, &stdout, &stderr); code != exitFailed ||
		!strings.Contains(stderr.String(), "forbidden") {
		t.Errorf("approve as bob: exit %d, stderr %q; want forbidden", code, stderr.String())
	}
	if n := len(decisions()); n != 2 {
		t.Errorf("after the refusals: %d decisions, want 2", n)
	}

	// --wait: until the controller (here, the test) decides the request.
	waitFor := fixtures.Create(t, c, approvalRequest(ns, "pay-3", `{"amount":9}`))
	setPhase(waitFor, custosv1alpha1.ApprovalPending, 0)
	go func() {
		for range 100 {
			var list custosv1alpha1.ApprovalDecisionList
			if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return
			}
			for _, d := range list.Items {
				if d.Spec.Request == "pay-3" {
					r := &custosv1alpha1.ApprovalRequest{}
					if err := c.Get(ctx, client.ObjectKeyFromObject(waitFor), r); err != nil {
						return
					}
					r.Status.Phase, r.Status.Approvals = custosv1alpha1.ApprovalApproved, 1
					_ = c.Status().Update(ctx, r)
					return
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	stdout.Reset()
	stderr.Reset()
	if code := run(append([]string{"approve", "pay-3", "--wait", "--timeout", "20s"}, asAlice...), &stdout, &stderr); code != exitOK ||
		!strings.HasSuffix(stdout.String(), "approval request "+ns+"/pay-3 is Approved (1/1 approvals)\n") {
		t.Errorf("approve --wait: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	// Nobody decides pay-1a2b-1 any more: --wait gives up.
	stderr.Reset()
	if code := run(append([]string{"approve", "pay-1a2b-1", "--wait", "--timeout", "1s"}, asAlice...), &stdout, &stderr); code != exitFailed ||
		!strings.Contains(stderr.String(), "is still Pending (0/1 approvals) after 1s; your decision is recorded") {
		t.Errorf("approve --wait that times out: exit %d, stderr %q", code, stderr.String())
	}

	// Flags that make no sense are refused before anything is sent.
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"approve"}, "want one REQUEST, got 0 arguments"},
		{[]string{"deny", "a", "b"}, "want one REQUEST, got 2 arguments"},
		{[]string{"approve", "a", "--as-group", "g"}, "--as-group needs --as"},
		{[]string{"approve", "a", "--timeout", "0s"}, "--timeout 0s: must be positive"},
		{[]string{"approve", "a", "--comment", strings.Repeat("x", 1025)}, "--comment is 1025 characters long"},
		{[]string{"pending", "-A", "-n", "x"}, "give -n or -A, not both"},
		{[]string{"pending", "extra"}, "unexpected arguments"},
	} {
		stderr.Reset()
		args := append(tc.args, "--kubeconfig", filepath.Join(t.TempDir(), "none"))
		if code := run(args, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("%v: exit %d, stderr %q; want usage saying %q", tc.args, code, stderr.String(), tc.says)
		}
	}
}
