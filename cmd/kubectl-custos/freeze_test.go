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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestFreezeAndUnfreeze: kubectl custos freeze makes a Manual AgentFreeze
// of the agent with the reason and nothing of who froze it; unfreeze shows
// each freeze that holds the agent and lifts it with the verdict and
// reason, refuses a verdict it does not know before anything is sent, and
// says when nothing holds the agent.
func TestFreezeAndUnfreeze(t *testing.T) {
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
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := controlplane.WriteKubeconfig(kubeconfig, cp.Config); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--kubeconfig", kubeconfig, "-n", ns}
	agent := fixtures.Create(t, c, fixtures.Agent(ns, "payments-bot", tenant))
	freezes := func() []custosv1alpha1.AgentFreeze {
		var list custosv1alpha1.AgentFreezeList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	unfreezes := func() []custosv1alpha1.AgentUnfreeze {
		var list custosv1alpha1.AgentUnfreezeList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		return list.Items
	}

	var stdout, stderr bytes.Buffer
	code := run(append([]string{"unfreeze", "payments-bot", "--verdict", "false-positive", "--reason", "batch"}, flags...), &stdout, &stderr)
	if code != exitFailed || !strings.Contains(stderr.String(), "agent "+ns+"/payments-bot is not frozen") {
		t.Errorf("unfreeze of an agent not frozen: exit %d, stderr %q", code, stderr.String())
	}

	stdout.Reset()
	stderr.Reset()
	code = run(append([]string{"freeze", "payments-bot", "--reason", "paying an unknown IBAN"}, flags...), &stdout, &stderr)
	want := regexp.MustCompile(`(?m)^agentfreeze ` + regexp.QuoteMeta(ns) + `/payments-bot-[a-z0-9]+ created: payments-bot frozen; lift it with kubectl custos unfreeze payments-bot -n ` + regexp.QuoteMeta(ns) + `$`)
	if code != exitOK || !want.MatchString(stdout.String()) {
		t.Errorf("freeze: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	got := freezes()
	if len(got) != 1 {
		t.Fatalf("after freeze: %d freezes, want 1", len(got))
	}
	f := got[0]
	// No webhook runs here: what is stored is what the client sent.
	if f.Spec.Agent != "payments-bot" || f.Spec.Trigger != custosv1alpha1.FreezeManual || f.Spec.Reason != "paying an unknown IBAN" ||
		f.Spec.AgentUID != "" || f.Spec.FrozenBy.Username != "" {
		t.Errorf("the freeze: %+v, want a Manual one of payments-bot with the reason and no author", f.Spec)
	}

	// As admission would have stamped it, and a trip beside it.
	f.Spec.AgentUID, f.Spec.FrozenBy = string(agent.UID), custosv1alpha1.Approver{Username: "olga"}
	if err := c.Delete(ctx, &f); err != nil {
		t.Fatal(err)
	}
	f.ObjectMeta = metav1.ObjectMeta{Namespace: ns, Name: "payments-bot-manual"}
	fixtures.Create(t, c, &f)
	fixtures.Create(t, c, &custosv1alpha1.AgentFreeze{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payments-bot-cap"},
		Spec: custosv1alpha1.AgentFreezeSpec{Agent: "payments-bot", AgentUID: string(agent.UID), Trigger: custosv1alpha1.FreezeCap,
			Signal: "records", Reason: "records per day over the cap", Observed: ptr.To[int64](50001), Limit: ptr.To[int64](50000),
			Evidence: &custosv1alpha1.FreezeEvidence{AuditLogID: "custos-gateway-0", Sequences: []int64{812}},
			FrozenBy: custosv1alpha1.Approver{Username: "system:serviceaccount:custos-system:custos-gateway"}}})

	stdout.Reset()
	stderr.Reset()
	code = run(append([]string{"unfreeze", "payments-bot", "--verdict", "maybe", "--reason", "batch"}, flags...), &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), `--verdict "maybe": want false-positive or confirmed-misuse`) || len(unfreezes()) != 0 {
		t.Errorf("an unknown verdict: exit %d, stderr %q, %d unfreezes", code, stderr.String(), len(unfreezes()))
	}

	stdout.Reset()
	stderr.Reset()
	code = run(append([]string{"unfreeze", "payments-bot", "--verdict", "confirmed-misuse", "--reason", "IBAN blocked, key rotated"}, flags...), &stdout, &stderr)
	out := stdout.String()
	for _, want := range []string{
		"agentfreeze " + ns + "/payments-bot-cap: Cap by system:serviceaccount:custos-system:custos-gateway",
		"  reason: records per day over the cap",
		"  records: observed 50001, limit 50000",
		"  evidence: audit log custos-gateway-0, records [812]",
		"agentfreeze " + ns + "/payments-bot-manual: Manual by olga",
		"payments-bot-cap lifted (ConfirmedMisuse)",
		"payments-bot-manual lifted (ConfirmedMisuse)",
	} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("unfreeze: exit %d, want %q in stdout\n%s\nstderr %q", code, want, out, stderr.String())
		}
	}
	lifted := map[string]bool{}
	for _, u := range unfreezes() {
		if u.Spec.Verdict != custosv1alpha1.ConfirmedMisuse || u.Spec.Reason != "IBAN blocked, key rotated" || u.Spec.UnfrozenBy.Username != "" {
			t.Errorf("an unfreeze: %+v", u.Spec)
		}
		lifted[u.Spec.Freeze] = true
	}
	if len(lifted) != 2 || !lifted["payments-bot-cap"] || !lifted["payments-bot-manual"] {
		t.Errorf("lifted %v, want both freezes", lifted)
	}
}
