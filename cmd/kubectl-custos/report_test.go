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
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/evaluate"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestReport: kubectl custos report shows an agent's AgentReport of last
// month as the manager wrote it (counts, score and formula, the
// recommendation with the kubectl patch that does it, who must sign it
// off and how); attest --report shows it again and names it in the
// attestation; a month that is not one is refused before anything is
// sent, and a report that is not there is named.
func TestReport(t *testing.T) {
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
	fixtures.Create(t, c, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "owner", Namespace: ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"custos.dev"}, Resources: []string{"agents", "agentreports"}, Verbs: []string{"get"}},
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
	agent := fixtures.Create(t, c, fixtures.Agent(ns, "reconciler", tenant, fixtures.WithToolsets("ledger", "crm")))

	now := time.Now()
	last := lastMonth(now)
	name := evaluate.ReportName("reconciler", string(agent.UID), last)
	rep := fixtures.Create(t, c, &custosv1alpha1.AgentReport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: custosv1alpha1.AgentReportSpec{Agent: "reconciler", AgentUID: string(agent.UID), Period: last}})
	asOf := metav1.NewTime(now.Add(-time.Hour).Truncate(time.Second))
	patch := `{"spec":{"toolsetRefs":[{"name":"ledger","tools":["get_invoice"]},{"name":"crm","tools":["find_contact"]}]}}`
	rep.Status = custosv1alpha1.AgentReportStatus{AsOf: &asOf, Calls: 100, Succeeded: 97, SuccessPercent: ptr.To[int32](97),
		Refusals: []custosv1alpha1.ReportCount{{Kind: "UnknownTool", Count: 2}},
		Tools:    []custosv1alpha1.ToolUse{{Toolset: ns + "/ledger", Tool: "get_invoice", Calls: 90, Errors: 1}, {Toolset: ns + "/crm", Tool: "find_contact", Calls: 8}},
		Score:    ptr.To[int32](97), Formula: "100 × 97/100 calls succeeded − 10 × 0 Findings confirmed − 25 × 0 freezes confirmed as misuse − 5 × 0 approvals denied = 97 (0 to 100)",
		Recommendation: custosv1alpha1.RecommendNarrow, Reason: "it called 2 of the 5 tools it holds in " + last + "; not ledger.list_invoices", Patch: patch}
	signedAt := metav1.NewTime(now.Add(-2 * time.Hour).Truncate(time.Second))
	rep.Status.SignOffs = []custosv1alpha1.ReportSignOff{{Attestation: "reconciler-x1", AttestationUID: "u-1", By: custosv1alpha1.Approver{Username: "carol"},
		At: signedAt, Comment: "looked at it", Signed: custosv1alpha1.ReportSnapshot{Calls: 90, Recommendation: custosv1alpha1.RecommendKeep}}}
	if err := c.Status().Update(ctx, rep); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	code := run(append([]string{"report", "reconciler"}, asAlice...), &stdout, &stderr)
	out := stdout.String()
	for _, want := range []string{
		`(?m)^agentreport ` + ns + `/` + name + `: Agent reconciler, ` + last + ` \(as of ` + regexp.QuoteMeta(asOf.UTC().Format(time.RFC3339)) + `\)$`,
		`calls: +100 \(97 succeeded, 97%\)`,
		`refusals: +UnknownTool 2`,
		`tools called: +` + ns + `/ledger get_invoice 90 \(1 errors\), ` + ns + `/crm find_contact 8`,
		`approvals: +none`,
		`score: +97: 100 × 97/100 calls succeeded`,
		`recommendation: +Narrow: it called 2 of the 5 tools`,
		`patch: +kubectl patch agent reconciler -n ` + ns + ` --type merge -p '` + regexp.QuoteMeta(patch) + `'`,
		`signed off: +by carol ` + regexp.QuoteMeta(signedAt.UTC().Format(time.RFC3339)) + ` \(2h ago\), agentattestation reconciler-x1, as Keep: looked at it`,
	} {
		if code != exitOK || !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("report: exit %d, want %s in stdout\n%s\nstderr %q", code, want, out, stderr.String())
		}
	}

	// attest --report shows it and names it.
	stdout.Reset()
	stderr.Reset()
	code = run(append([]string{"attest", "reconciler", "--report", last, "--comment", "narrow it"}, asAlice...), &stdout, &stderr)
	out = stdout.String()
	if code != exitOK || !strings.Contains(out, "agentreport "+ns+"/"+name+": Agent reconciler") ||
		!regexp.MustCompile(`created: reconciler attested, agentreport `+name+` signed off\n`).MatchString(out) {
		t.Errorf("attest --report: exit %d, stdout\n%s\nstderr %q", code, out, stderr.String())
	}
	var list custosv1alpha1.AgentAttestationList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil || len(list.Items) != 1 || list.Items[0].Spec.Report != name {
		t.Errorf("the attestation: %+v, %v; want one naming report %s", list.Items, err, name)
	}

	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{append([]string{"report", "reconciler", "--period", "2026-13"}, asAlice...), exitUsage, `--period "2026-13" is not a month: want YYYY-MM`},
		{append([]string{"attest", "reconciler", "--report", "December", "--comment", "x"}, asAlice...), exitUsage, `--report "December" is not a month`},
		{append([]string{"report", "reconciler", "--period", "1999-01"}, asAlice...), exitFailed,
			"agentreport " + evaluate.ReportName("reconciler", string(agent.UID), "1999-01") + " not found in namespace " + ns},
		{append([]string{"attest", "reconciler", "--report", "1999-01", "--comment", "x"}, asAlice...), exitFailed, "agentreport reconciler-199901-"},
		{append([]string{"report", "ghost"}, asAlice...), exitFailed, "agent ghost not found in namespace " + ns},
		{[]string{"report"}, exitUsage, "want one AGENT, got 0 arguments"},
	} {
		stderr.Reset()
		if code := run(tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("%v: exit %d, stderr %q; want %d saying %q", tc.args, code, stderr.String(), tc.code, tc.says)
		}
	}
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil || len(list.Items) != 1 {
		t.Errorf("after the refusals: %d attestations, %v; want 1", len(list.Items), err)
	}
}
