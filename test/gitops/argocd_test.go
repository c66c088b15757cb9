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

package gitops

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// healthScriptPath is the Argo CD health check users install.
const healthScriptPath = "docs/argocd/custos-health.lua"

// Argo CD's health status codes (gitops-engine pkg/health).
const (
	healthy     = "Healthy"
	progressing = "Progressing"
	suspended   = "Suspended"
	degraded    = "Degraded"
	missing     = "Missing"
	unknown     = "Unknown"
)

// argoHealth is what Argo CD shows for a resource: its health status and
// message.
type argoHealth struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// argoCDHealth runs script the way Argo CD runs a health check configured
// in argocd-cm (util/lua in argoproj/argo-cd): a fresh state without the
// standard libraries, then only package, base and table opened (Argo CD adds
// a reduced os, which the script must not need); the object as the global
// `obj`, decoded from its unstructured form as Argo CD decodes it; a
// one-second limit; the returned table read through JSON into status and
// message, an unknown status turned into Unknown.
func argoCDHealth(script string, obj map[string]any) (argoHealth, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return argoHealth{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return argoHealth{}, err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return argoHealth{}, fmt.Errorf("expect table output from Lua script, not %s", l.Get(-1).Type())
	}
	data, err := json.Marshal(fromLua(ret))
	if err != nil {
		return argoHealth{}, err
	}
	var h argoHealth
	if err := json.Unmarshal(data, &h); err != nil {
		return argoHealth{}, err
	}
	switch h.Status {
	case healthy, progressing, suspended, degraded, missing, unknown:
		return h, nil
	}
	return argoHealth{Status: unknown, Message: "Lua returned an invalid health status"}, nil
}

// toLua decodes a value of an unstructured object as Argo CD's decodeValue
// does: numbers of every Go type become Lua numbers, json.Number a string,
// anything else nil.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

// fromLua turns the script's result into Go values for JSON, as
// gopher-json does: a table with only array entries is a list, any other a
// map.
func fromLua(v lua.LValue) any {
	switch v := v.(type) {
	case lua.LBool:
		return bool(v)
	case lua.LString:
		return string(v)
	case lua.LNumber:
		return float64(v)
	case *lua.LTable:
		if v.MaxN() > 0 {
			list := make([]any, 0, v.MaxN())
			for i := 1; i <= v.MaxN(); i++ {
				list = append(list, fromLua(v.RawGetInt(i)))
			}
			return list
		}
		m := map[string]any{}
		v.ForEach(func(k, val lua.LValue) { m[k.String()] = fromLua(val) })
		return m
	}
	return nil
}

func nameOf(obj map[string]any) string {
	u := unstructured.Unstructured{Object: obj}
	if u.GetNamespace() == "" {
		return u.GetName()
	}
	return u.GetNamespace() + "/" + u.GetName()
}

// TestArgoCDHealthEdgeCases covers what the live objects of the other tests
// do not reach: objects no Custos has touched, statuses written by hand or
// by an older Custos, and condition combinations Custos does not write
// today but kstatus allows.
func TestArgoCDHealthEdgeCases(t *testing.T) {
	script := healthScript
	cond := func(typ, st, reason, msg string) map[string]any {
		return map[string]any{"type": typ, "status": st, "reason": reason, "message": msg, "lastTransitionTime": "2026-01-01T00:00:00Z"}
	}
	object := func(kind string, generation int64, status map[string]any) map[string]any {
		o := map[string]any{
			"apiVersion": "custos.dev/v1alpha1",
			"kind":       kind,
			"metadata":   map[string]any{"name": "x", "namespace": "y", "generation": generation},
			"spec":       map[string]any{},
		}
		if status != nil {
			o["status"] = status
		}
		return o
	}
	cases := []struct {
		name    string
		obj     map[string]any
		want    string
		message string
	}{
		{
			name: "no status at all (Custos not installed or not running)",
			obj:  object("Agent", 1, nil), want: progressing, message: "Waiting for Custos to observe the Agent",
		},
		{
			name: "a status without observedGeneration",
			obj: object("Toolset", 1, map[string]any{"conditions": []any{
				cond("Ready", "True", "Succeeded", "left by hand"),
			}}),
			want: progressing, message: "Waiting for Custos to observe the Toolset",
		},
		{
			name: "observedGeneration -1, the default of a new object",
			obj:  object("DataBoundary", 1, map[string]any{"observedGeneration": int64(-1)}),
			want: progressing, message: "Waiting for Custos to observe the DataBoundary",
		},
		{
			name: "observedGeneration not a number",
			obj:  object("Agent", 1, map[string]any{"observedGeneration": "1"}),
			want: progressing, message: "Waiting for Custos",
		},
		{
			name: "a generation behind, however Ready it was",
			obj: object("Agent", 3, map[string]any{"observedGeneration": int64(2), "conditions": []any{
				cond("Ready", "True", "Succeeded", "ran generation 2"),
			}}),
			want: progressing, message: "Waiting for Custos to observe generation 3 (observed 2)",
		},
		{
			name: "observed, without conditions",
			obj:  object("Toolset", 1, map[string]any{"observedGeneration": int64(1)}),
			want: progressing, message: "Waiting for Custos to report Ready",
		},
		{
			name: "observed, with an empty condition list",
			obj:  object("Toolset", 1, map[string]any{"observedGeneration": int64(1), "conditions": []any{}}),
			want: progressing, message: "Waiting for Custos to report Ready",
		},
		{
			name: "conditions that are not a list",
			obj:  object("Toolset", 1, map[string]any{"observedGeneration": int64(1), "conditions": "Ready"}),
			want: progressing, message: "Waiting for Custos to report Ready",
		},
		{
			name: "Stalled and Reconciling both True: the worse wins",
			obj: object("Agent", 1, map[string]any{"observedGeneration": int64(1), "conditions": []any{
				cond("Reconciling", "True", "Progressing", "rolling"),
				cond("Stalled", "True", "BoundaryViolation", "spec.image: Forbidden"),
			}}),
			want: degraded, message: "spec.image: Forbidden",
		},
		{
			name: "Stalled other than True is not a stall",
			obj: object("Agent", 1, map[string]any{"observedGeneration": int64(1), "conditions": []any{
				cond("Stalled", "False", "Succeeded", ""),
				cond("Ready", "True", "Succeeded", "runs"),
			}}),
			want: healthy, message: "runs",
		},
		{
			name: "Ready True while Reconciling (a boundary retrying a transient error): in progress, as kstatus says",
			obj: object("DataBoundary", 2, map[string]any{"observedGeneration": int64(2), "conditions": []any{
				cond("Ready", "True", "Succeeded", "covers 1 namespace"),
				cond("Reconciling", "True", "Progressing", "Retrying: connection refused"),
			}}),
			want: progressing, message: "Retrying: connection refused",
		},
		{
			name: "Ready Unknown",
			obj: object("Agent", 1, map[string]any{"observedGeneration": int64(1), "conditions": []any{
				cond("Ready", "Unknown", "Progressing", "checking"),
			}}),
			want: progressing, message: "checking",
		},
		{
			name: "Ready False without a message says its reason",
			obj: object("Agent", 1, map[string]any{"observedGeneration": int64(1), "conditions": []any{
				map[string]any{"type": "Ready", "status": "False", "reason": "DependencyNotFound"},
			}}),
			want: progressing, message: "Ready: DependencyNotFound",
		},
		{
			name: "expired",
			obj: object("Agent", 4, map[string]any{"observedGeneration": int64(4), "conditions": []any{
				cond("Ready", "True", "Expired", "Expired at 2026-01-01T00:00:00Z"),
			}}),
			want: suspended, message: "Expired at",
		},
		{
			name: "review overdue: suspended until an owner attests it",
			obj: object("Agent", 2, map[string]any{"observedGeneration": int64(2), "conditions": []any{
				cond("Reconciling", "False", "Succeeded", ""),
				cond("Ready", "True", "ReviewOverdue", "Owner review overdue since 2026-01-01T00:00:00Z: suspended, scaled to zero and deny-all until an owner attests it (kubectl custos attest x -n y)"),
			}}),
			want: suspended, message: "Owner review overdue since 2026-01-01T00:00:00Z: suspended, scaled to zero and deny-all until an owner attests it (kubectl custos attest x -n y)",
		},
		{
			name: "review overdue, without a message: the script says what to do",
			obj: object("Agent", 1, map[string]any{"observedGeneration": int64(1), "conditions": []any{
				map[string]any{"type": "Ready", "status": "True", "reason": "ReviewOverdue"},
			}}),
			want: suspended, message: "Owner review overdue: suspended until an owner attests the agent (kubectl custos attest)",
		},
		{
			name: "review overdue but Stalled: the stall wins, as for any suspension",
			obj: object("Agent", 1, map[string]any{"observedGeneration": int64(1), "conditions": []any{
				cond("Stalled", "True", "BoundaryViolation", "spec.image: Forbidden"),
				cond("Ready", "True", "ReviewOverdue", "Owner review overdue"),
			}}),
			want: degraded, message: "spec.image: Forbidden",
		},
		{
			name: "review overdue on a generation not yet observed: waiting, as for any status",
			obj: object("Agent", 3, map[string]any{"observedGeneration": int64(2), "conditions": []any{
				cond("Ready", "True", "ReviewOverdue", "Owner review overdue"),
			}}),
			want: progressing, message: "Waiting for Custos to observe generation 3 (observed 2)",
		},
		{
			name: "frozen: contained, waiting for a person to lift the freeze",
			obj: object("Agent", 2, map[string]any{"observedGeneration": int64(2), "conditions": []any{
				cond("Ready", "True", "Frozen", "Frozen by AgentFreeze x-abcde: every lease revoked, scaled to zero and deny-all"),
			}}),
			want: degraded, message: "Frozen by AgentFreeze x-abcde",
		},
		{
			name: "Ready False with reason ReviewOverdue is not a suspension",
			obj: object("Agent", 1, map[string]any{"observedGeneration": int64(1), "conditions": []any{
				cond("Ready", "False", "ReviewOverdue", "scaling down"),
			}}),
			want: progressing, message: "scaling down",
		},
		{
			name: "a status written with a float observedGeneration (JSON decoded without types)",
			obj: object("Agent", 2, map[string]any{"observedGeneration": float64(2), "conditions": []any{
				cond("Ready", "True", "Decommissioned", "Decommissioned: every lease revoked"),
			}}),
			want: healthy, message: "Decommissioned",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			h, err := argoCDHealth(script, tc.obj)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(h.Status).To(Equal(tc.want), "message %q", h.Message)
			g.Expect(h.Message).To(ContainSubstring(tc.message))
		})
	}
}

// TestArgoCDHealthOfApprovals covers the approval kinds beyond what
// TestApprovalStatusForGitOps writes: statuses partly written, by hand or
// by an older Custos, and values of the wrong type. An ApprovalRequest's
// health is its phase, whatever its conditions or generation say.
func TestArgoCDHealthOfApprovals(t *testing.T) {
	request := func(spec, status map[string]any) map[string]any {
		o := map[string]any{
			"apiVersion": "custos.dev/v1alpha1",
			"kind":       "ApprovalRequest",
			"metadata":   map[string]any{"name": "payer-0123456789abcdef-1", "namespace": "y", "generation": int64(1)},
		}
		if spec != nil {
			o["spec"] = spec
		}
		if status != nil {
			o["status"] = status
		}
		return o
	}
	spec := map[string]any{"quorum": int64(3), "expiresAt": "2030-01-01T00:00:00Z"}
	vote := func(user, decision string, counted bool) map[string]any {
		return map[string]any{"name": user, "approver": map[string]any{"username": user}, "decision": decision, "counted": counted}
	}
	cases := []struct {
		name    string
		obj     map[string]any
		want    string
		message string
	}{
		{
			name: "an ApprovalPolicy, which has no status",
			obj: map[string]any{"apiVersion": "custos.dev/v1alpha1", "kind": "ApprovalPolicy",
				"metadata": map[string]any{"name": "p", "namespace": "y", "generation": int64(4)}, "spec": map[string]any{"quorum": int64(2)}},
			want: healthy, message: "ApprovalPolicy stored",
		},
		{
			name: "an ApprovalDecision, which has no status",
			obj: map[string]any{"apiVersion": "custos.dev/v1alpha1", "kind": "ApprovalDecision",
				"metadata": map[string]any{"name": "d", "namespace": "y"}, "spec": map[string]any{"request": "r", "decision": "Deny"}},
			want: healthy, message: "ApprovalDecision stored",
		},
		{
			name: "an AgentFreeze that holds its agent",
			obj: map[string]any{"apiVersion": "custos.dev/v1alpha1", "kind": "AgentFreeze",
				"metadata": map[string]any{"name": "x-abcde", "namespace": "y"},
				"spec":     map[string]any{"agent": "payments-bot", "trigger": "Cap", "reason": "records per day over the cap"},
				"status":   map[string]any{"phase": "Active"}},
			want: degraded, message: "Holds Agent payments-bot Frozen (Cap): records per day over the cap",
		},
		{
			name: "an AgentFreeze not recorded yet holds too",
			obj: map[string]any{"apiVersion": "custos.dev/v1alpha1", "kind": "AgentFreeze",
				"metadata": map[string]any{"name": "x-abcde", "namespace": "y"},
				"spec":     map[string]any{"agent": "payments-bot", "trigger": "Manual", "reason": "r"}},
			want: degraded, message: "Holds Agent payments-bot Frozen (Manual)",
		},
		{
			name: "an AgentFreeze lifted",
			obj: map[string]any{"apiVersion": "custos.dev/v1alpha1", "kind": "AgentFreeze",
				"metadata": map[string]any{"name": "x-abcde", "namespace": "y"},
				"spec":     map[string]any{"agent": "payments-bot", "trigger": "Cap", "reason": "r"},
				"status":   map[string]any{"phase": "Lifted", "unfreeze": "x-fghij", "verdict": "FalsePositive"}},
			want: healthy, message: "Lifted by x-fghij (FalsePositive)",
		},
		{
			name: "an AgentUnfreeze, which has no status",
			obj: map[string]any{"apiVersion": "custos.dev/v1alpha1", "kind": "AgentUnfreeze",
				"metadata": map[string]any{"name": "x-fghij", "namespace": "y"},
				"spec":     map[string]any{"freeze": "x-abcde", "verdict": "FalsePositive", "reason": "batch"}},
			want: healthy, message: "AgentUnfreeze stored",
		},
		{
			name: "an AgentAttestation, which has no status",
			obj: map[string]any{"apiVersion": "custos.dev/v1alpha1", "kind": "AgentAttestation",
				"metadata": map[string]any{"name": "payments-bot-x1y2z", "namespace": "y", "generation": int64(1)},
				"spec": map[string]any{"agent": "payments-bot", "comment": "checked", "agentUID": "u",
					"attester": map[string]any{"username": "alice@example.com"}}},
			want: healthy, message: "AgentAttestation stored",
		},
		{
			name: "an AgentAttestation, whatever a status written by hand says",
			obj: map[string]any{"apiVersion": "custos.dev/v1alpha1", "kind": "AgentAttestation",
				"metadata": map[string]any{"name": "a", "namespace": "y", "generation": int64(2)},
				"spec":     map[string]any{"agent": "payments-bot"},
				"status": map[string]any{"observedGeneration": int64(1), "conditions": []any{
					map[string]any{"type": "Stalled", "status": "True", "reason": "InvalidSpec"},
				}}},
			want: healthy, message: "AgentAttestation stored",
		},
		{
			name: "a request without a status",
			obj:  request(spec, nil), want: progressing, message: "Waiting for Custos to observe the ApprovalRequest",
		},
		{
			name: "a request with a phase it does not know",
			obj:  request(spec, map[string]any{"phase": "Escalated"}), want: progressing, message: "Waiting for Custos to observe the ApprovalRequest",
		},
		{
			name: "Pending, nothing counted yet",
			obj:  request(spec, map[string]any{"phase": "Pending"}), want: progressing, message: "Waiting for 0 of 3 approvals, until 2030-01-01T00:00:00Z",
		},
		{
			name: "Pending, whatever Ready says",
			obj: request(spec, map[string]any{"phase": "Pending", "approvals": int64(2), "conditions": []any{
				map[string]any{"type": "Ready", "status": "True", "reason": "Approved"},
			}}),
			want: progressing, message: "Waiting for 2 of 3 approvals",
		},
		{
			name: "Pending, without a spec (quorum 1, its default)",
			obj:  request(nil, map[string]any{"phase": "Pending"}), want: progressing, message: "Waiting for 0 of 1 approvals",
		},
		{
			name: "Pending, with counts of the wrong type",
			obj:  request(map[string]any{"quorum": "3", "expiresAt": int64(5)}, map[string]any{"phase": "Pending", "approvals": "2"}),
			want: progressing, message: "Waiting for 0 of 1 approvals",
		},
		{
			name: "Approved: ready to run once",
			obj:  request(spec, map[string]any{"phase": "Approved", "approvals": float64(3)}), want: healthy, message: "Approved with 3 of 3 approvals",
		},
		{
			name: "Consumed, without consumedAt",
			obj:  request(spec, map[string]any{"phase": "Consumed", "approvals": int64(3)}), want: healthy, message: "Consumed: the approved call ran",
		},
		{
			name: "Denied: the counted veto is named, not a refused one",
			obj: request(spec, map[string]any{"phase": "Denied", "approvals": int64(1), "decisions": []any{
				vote("paula@example.com", "Deny", false), vote("ann@example.com", "Approve", true), vote("dora@example.com", "Deny", true),
			}}),
			want: degraded, message: "Denied by dora@example.com (1 of 3 approvals)",
		},
		{
			name: "Denied, without decisions",
			obj:  request(spec, map[string]any{"phase": "Denied", "decisions": "dora"}), want: degraded, message: "Denied (0 of 3 approvals): the call does not run",
		},
		{
			name: "Expired",
			obj:  request(spec, map[string]any{"phase": "Expired", "approvals": int64(2)}), want: degraded, message: "Expired at 2030-01-01T00:00:00Z with 2 of 3 approvals",
		},
		{
			name: "Expired, whatever Ready's reason (the Agent's Suspended reason Expired is not this)",
			obj: request(nil, map[string]any{"phase": "Expired", "conditions": []any{
				map[string]any{"type": "Ready", "status": "True", "reason": "Expired"},
			}}),
			want: degraded, message: "Expired with 0 of 1 approvals",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			h, err := argoCDHealth(healthScript, tc.obj)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(h.Status).To(Equal(tc.want), "message %q", h.Message)
			g.Expect(h.Message).To(ContainSubstring(tc.message))
		})
	}
}

// TestArgoCDHealthNeedsOnlyObj: Argo CD gives a custom health check the
// object and nothing else. The script must not reach for the string library
// (not opened for argocd-cm scripts), globals of its own, or anything but
// obj; a script that does fails here as it would in Argo CD.
func TestArgoCDHealthNeedsOnlyObj(t *testing.T) {
	g := NewWithT(t)
	script := healthScript
	obj := map[string]any{"apiVersion": "custos.dev/v1alpha1", "kind": "Agent", "metadata": map[string]any{"generation": int64(1)}}

	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	g.Expect(l.CallByParam(lua.P{Fn: l.NewFunction(lua.OpenBase), NRet: 0, Protect: true}, lua.LString(lua.BaseLibName))).To(Succeed())
	g.Expect(l.GetGlobal("string")).To(Equal(lua.LNil), "the test state must lack the string library")
	l.SetGlobal("obj", toLua(l, obj))
	before := map[string]bool{}
	l.G.Global.ForEach(func(k, _ lua.LValue) { before[k.String()] = true })
	g.Expect(l.DoString(script)).To(Succeed(), "the script needs more than base and obj")
	var added []string
	l.G.Global.ForEach(func(k, _ lua.LValue) {
		if !before[k.String()] {
			added = append(added, k.String())
		}
	})
	g.Expect(added).To(BeEmpty(), "the script sets globals; keep everything local")

	// A script that used the string library would fail in Argo CD: the
	// runner must catch that too.
	_, err := argoCDHealth(`return {status = string.upper("healthy")}`, obj)
	g.Expect(err).To(HaveOccurred())
	h, err := argoCDHealth(`return {status = "Fine"}`, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(h.Status).To(Equal(unknown), "Argo CD turns an unknown status into Unknown")
}

// TestArgoCDConfigMapInDocsIsTheScript: docs/gitops.md inlines the health
// check in an argocd-cm ConfigMap for each kind; each copy must be the
// script of docs/argocd, byte for byte, so that what users paste is what
// these tests check.
func TestArgoCDConfigMapInDocsIsTheScript(t *testing.T) {
	g := NewWithT(t)
	script := healthScript
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "gitops.md"))
	g.Expect(err).NotTo(HaveOccurred())

	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	var cm map[string]any
	for _, b := range blocks {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(b[1]), &obj); err != nil {
			continue
		}
		if obj["kind"] == "ConfigMap" && nameOf(obj) == "argocd/argocd-cm" {
			g.Expect(cm).To(BeNil(), "docs/gitops.md shows argocd-cm more than once")
			cm = obj
		}
	}
	g.Expect(cm).NotTo(BeNil(), "docs/gitops.md shows no argocd-cm ConfigMap in a yaml block")
	data, ok := cm["data"].(map[string]any)
	g.Expect(ok).To(BeTrue())
	for _, kind := range []string{"Agent", "Toolset", "DataBoundary", "ApprovalRequest", "ApprovalPolicy", "ApprovalDecision", "AgentAttestation", "AgentFreeze", "AgentUnfreeze"} {
		key := "resource.customizations.health.custos.dev_" + kind
		g.Expect(data).To(HaveKey(key))
		g.Expect(data[key]).To(Equal(script), "%s in docs/gitops.md differs from %s", key, healthScriptPath)
	}
	for key := range data {
		g.Expect(strings.HasPrefix(key, "resource.customizations.health.")).To(BeTrue(), "unexpected key %s", key)
	}
}

// TestArgoCDScriptInTheChartREADMEIsTheScript: the chart's README shows the
// health check a user copies; it must be the tested one.
func TestArgoCDScriptInTheChartREADMEIsTheScript(t *testing.T) {
	g := NewWithT(t)
	script, err := os.ReadFile(filepath.Join(repoRoot, healthScriptPath))
	g.Expect(err).NotTo(HaveOccurred())
	readme, err := os.ReadFile(filepath.Join(repoRoot, "charts", "custos", "README.md"))
	g.Expect(err).NotTo(HaveOccurred())
	_, rest, found := strings.Cut(string(readme), "```lua\n")
	g.Expect(found).To(BeTrue(), "charts/custos/README.md has no lua block")
	block, _, found := strings.Cut(rest, "```")
	g.Expect(found).To(BeTrue())
	g.Expect(block).To(Equal(string(script)), "the lua block in charts/custos/README.md differs from %s", healthScriptPath)
}
