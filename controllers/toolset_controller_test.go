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

package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/toolschema"
	"github.com/custos-dev/custos/test/fixtures"
)

// How long a test waits for the reconcilers to report, and how often it looks.
const (
	statusTimeout = 20 * time.Second
	statusPoll    = 100 * time.Millisecond
)

// testTool is a tool with JSON Schemas written as JSON; "" is no schema.
func testTool(name string, access custosv1alpha1.ToolAccess, inputSchema, outputSchema string) custosv1alpha1.Tool {
	t := custosv1alpha1.Tool{Name: name, Access: access}
	if inputSchema != "" {
		t.InputSchema = &runtime.RawExtension{Raw: []byte(inputSchema)}
	}
	if outputSchema != "" {
		t.OutputSchema = &runtime.RawExtension{Raw: []byte(outputSchema)}
	}
	return t
}

// createTestToolset creates a Toolset with tools in a namespace of the test's
// own; see newTestToolset.
func createTestToolset(t *testing.T, tools ...custosv1alpha1.Tool) *custosv1alpha1.Toolset {
	t.Helper()
	ts := newTestToolset(t, tools...)
	if err := k8sClient.Create(context.Background(), ts); err != nil {
		t.Fatalf("creating a Toolset: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ts) })
	return ts
}

// newTestToolset builds, without creating it, a Toolset with tools in a
// namespace of the test's own, for a tenant of its own. The tenant's
// DataBoundary covers the namespace, which is also where the Toolset's
// in-cluster endpoint is, so admission lets the Toolset in. It waits until
// the boundary is Ready: admission reads the manager's cache, and a Ready
// status says that cache has the boundary and the namespace.
func newTestToolset(t *testing.T, tools ...custosv1alpha1.Tool) *custosv1alpha1.Toolset {
	t.Helper()
	tenant := fixtures.UniqueTenant("tools")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	expectBoundaryReady(NewWithT(t), createBoundary(t, tenant, "eu-west-1"), []string{ns}, 0)
	return fixtures.Toolset(ns, "ledger-", tenant, fixtures.WithTools(tools...))
}

func getToolset(g Gomega, ts *custosv1alpha1.Toolset) *custosv1alpha1.Toolset {
	got := &custosv1alpha1.Toolset{}
	g.Expect(k8sClient.Get(context.Background(), keyOf(ts), got)).To(Succeed())
	return got
}

// haveCondition matches a condition list holding a condition of the type
// with the status and reason, whose message contains every substring.
func haveCondition(conditionType string, st metav1.ConditionStatus, reason string, msgSubstrings ...string) types.GomegaMatcher {
	matchers := []types.GomegaMatcher{HaveField("Type", conditionType), HaveField("Status", st), HaveField("Reason", reason)}
	for _, s := range msgSubstrings {
		matchers = append(matchers, HaveField("Message", ContainSubstring(s)))
	}
	return ContainElement(And(matchers...))
}

// noCondition matches a condition list without a condition of the type, as
// kstatus wants Reconciling and Stalled when they are not True.
func noCondition(conditionType string) types.GomegaMatcher {
	return Not(ContainElement(HaveField("Type", conditionType)))
}

// eventsRegarding lists the events.k8s.io Events recorded about obj. Events
// about a cluster-scoped object are recorded in the default namespace.
func eventsRegarding(g Gomega, obj client.Object) []eventsv1.Event {
	ns := obj.GetNamespace()
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	var list eventsv1.EventList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	var found []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.UID == obj.GetUID() {
			found = append(found, e)
		}
	}
	return found
}

// haveEvent matches an Event list holding an Event of the type and reason
// whose note contains every substring.
func haveEvent(eventType, reason string, noteSubstrings ...string) types.GomegaMatcher {
	matchers := []types.GomegaMatcher{HaveField("Type", eventType), HaveField("Reason", reason)}
	for _, s := range noteSubstrings {
		matchers = append(matchers, HaveField("Note", ContainSubstring(s)))
	}
	return ContainElement(And(matchers...))
}

// expectedDigest is the digest Custos must report for the tools.
func expectedDigest(g Gomega, tools []custosv1alpha1.Tool) string {
	res, err := toolschema.Compile(tools)
	g.Expect(err).NotTo(HaveOccurred())
	return res.SchemaDigest
}

func TestToolsetReadOnlyIsReady(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ts := createTestToolset(t,
		testTool("get_invoice", custosv1alpha1.ToolAccessRead,
			`{"type": "object", "properties": {"invoiceNumber": {"type": "string", "pattern": "^INV-[0-9]+$"}}, "required": ["invoiceNumber"]}`,
			`{"type": "object", "properties": {"amount": {"type": "number", "minimum": 0}}}`),
		testTool("list_invoices", custosv1alpha1.ToolAccessRead, `{"type": "object"}`, ""),
		testTool("ping", custosv1alpha1.ToolAccessRead, "", ""),
	)

	var digest string
	g.Eventually(func(g Gomega) {
		got := getToolset(g, ts)
		g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason, "3 tools", "ReadOnly"))
		g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.SchemasValidCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason))
		g.Expect(got.Status.Conditions).To(noCondition(custosv1alpha1.StalledCondition))
		g.Expect(got.Status.Conditions).To(noCondition(custosv1alpha1.ReconcilingCondition))
		g.Expect(got.Status.Conditions).To(HaveEach(HaveField("ObservedGeneration", got.Generation)))
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(got.Status.Tools).To(Equal(int32(3)))
		g.Expect(got.Status.Access).To(Equal(custosv1alpha1.ToolsetReadOnly))
		g.Expect(got.Status.SchemaDigest).To(MatchRegexp(`^sha256:[0-9a-f]{64}$`))
		g.Expect(got.Status.SchemaDigest).To(Equal(expectedDigest(g, got.Spec.Tools)))
		g.Expect(kstatusOf(g, got)).To(Equal(status.CurrentStatus))
		digest = got.Status.SchemaDigest
	}).WithTimeout(statusTimeout).WithPolling(statusPoll).Should(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(eventsRegarding(g, ts)).To(haveEvent(corev1.EventTypeNormal, custosv1alpha1.SucceededReason, "3 tools"))
	}).WithTimeout(statusTimeout).WithPolling(statusPoll).Should(Succeed())

	// A changed schema shows as a new digest, in a new generation.
	got := getToolset(g, ts)
	patch := client.MergeFrom(got.DeepCopy())
	got.Spec.Tools[0].OutputSchema = &runtime.RawExtension{Raw: []byte(`{"type": "object", "properties": {"amount": {"type": "integer"}}}`)}
	g.Expect(k8sClient.Patch(context.Background(), got, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getToolset(g, ts)
		g.Expect(got.Generation).To(Equal(int64(2)))
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(got.Status.SchemaDigest).NotTo(Equal(digest))
		g.Expect(got.Status.SchemaDigest).To(Equal(expectedDigest(g, got.Spec.Tools)))
		g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason))
		g.Expect(kstatusOf(g, got)).To(Equal(status.CurrentStatus))
	}).WithTimeout(statusTimeout).WithPolling(statusPoll).Should(Succeed())
}

func TestToolsetWithAWriteToolIsReadWrite(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ts := createTestToolset(t,
		testTool("get_invoice", custosv1alpha1.ToolAccessRead, `{"type": "object"}`, ""),
		testTool("pay_invoice", custosv1alpha1.ToolAccessWrite,
			`{"type": "object", "properties": {"invoiceNumber": {"type": "string"}, "amount": {"type": "number", "exclusiveMinimum": 0}}}`, ""),
	)
	g.Eventually(func(g Gomega) {
		got := getToolset(g, ts)
		g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason, "2 tools", "ReadWrite"))
		g.Expect(got.Status.Access).To(Equal(custosv1alpha1.ToolsetReadWrite))
		g.Expect(got.Status.Tools).To(Equal(int32(2)))
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(kstatusOf(g, got)).To(Equal(status.CurrentStatus))
	}).WithTimeout(statusTimeout).WithPolling(statusPoll).Should(Succeed())
}

// An invalid tool schema is refused at admission, on creation and on
// update, saying where the schema is wrong; a Toolset already stored keeps
// its Ready status. How the reconciler reports a schema that does not
// compile anyway is TestSetToolsetStatus's.
func TestToolsetWithAnInvalidSchemaIsRefused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		inputSchema string
		wantPointer string
		wantMsg     string
	}{
		{
			name:        "type is not a type name",
			inputSchema: `{"type": "object", "properties": {"amount": {"type": 12}}}`,
			wantPointer: `"/properties/amount/type"`,
			wantMsg:     "value must be one of",
		},
		{
			name:        "minimum is not a number",
			inputSchema: `{"type": "object", "properties": {"amount": {"type": "number", "minimum": "x"}}}`,
			wantPointer: `"/properties/amount/minimum"`,
			wantMsg:     "got string, want number",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			ctx := context.Background()
			tools := []custosv1alpha1.Tool{
				testTool("get_invoice", custosv1alpha1.ToolAccessRead, `{"type": "object"}`, ""),
				testTool("pay_invoice", custosv1alpha1.ToolAccessWrite, tc.inputSchema, ""),
			}
			// What is wrong, and where, is in the refusal.
			const wantField = "spec.tools[1].inputSchema"
			wantInMessage := []string{`tool "pay_invoice"`, wantField, tc.wantPointer, tc.wantMsg}

			ts := newTestToolset(t, tools...)
			err := k8sClient.Create(ctx, ts)
			if err == nil {
				t.Cleanup(func() { _ = k8sClient.Delete(ctx, ts) })
			}
			expectInvalidField(g, err, wantField, wantInMessage...)

			// An edit that breaks a schema of a Ready Toolset is refused
			// too, and the Toolset stays as it was.
			ok := ts.DeepCopy()
			ok.Spec.Tools[1].InputSchema = &runtime.RawExtension{Raw: []byte(`{"type": "object", "properties": {"amount": {"type": "number", "minimum": 0}}}`)}
			g.Expect(k8sClient.Create(ctx, ok)).To(Succeed())
			t.Cleanup(func() { _ = k8sClient.Delete(ctx, ok) })
			var ready *custosv1alpha1.Toolset
			g.Eventually(func(g Gomega) {
				ready = getToolset(g, ok)
				g.Expect(ready.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason))
				g.Expect(ready.Status.ObservedGeneration).To(Equal(ready.Generation))
			}).WithTimeout(statusTimeout).WithPolling(statusPoll).Should(Succeed())
			broken := ready.DeepCopy()
			broken.Spec.Tools[1].InputSchema = &runtime.RawExtension{Raw: []byte(tc.inputSchema)}
			expectInvalidField(g, k8sClient.Patch(ctx, broken, client.MergeFrom(ready)), wantField, wantInMessage...)

			got := getToolset(g, ok)
			g.Expect(got.Generation).To(Equal(int64(1)))
			g.Expect(got.Status.SchemaDigest).To(Equal(ready.Status.SchemaDigest))
			g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason))
			g.Expect(got.Status.Conditions).To(noCondition(custosv1alpha1.StalledCondition))
			g.Expect(kstatusOf(g, got)).To(Equal(status.CurrentStatus))
		})
	}
}

// expectInvalidField checks that err is the API server's Invalid error with
// a cause on field whose message contains every substring: what kubectl
// prints as "field: Invalid value: ...".
func expectInvalidField(g Gomega, err error, field string, msgSubstrings ...string) {
	g.Expect(err).To(HaveOccurred(), "the API server accepted an invalid object")
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want reason Invalid, got %v", err)
	var st apierrors.APIStatus
	g.Expect(errors.As(err, &st)).To(BeTrue(), "not an API status error: %v", err)
	details := st.Status().Details
	g.Expect(details).NotTo(BeNil(), "no causes in %v", err)
	matchers := []types.GomegaMatcher{HaveField("Field", field)}
	for _, s := range msgSubstrings {
		matchers = append(matchers, HaveField("Message", ContainSubstring(s)))
	}
	g.Expect(details.Causes).To(ContainElement(And(matchers...)), "error: %v", err)
}

func TestSetToolsetStatus(t *testing.T) {
	_, invalid := toolschema.Compile([]custosv1alpha1.Tool{testTool("pay", custosv1alpha1.ToolAccessWrite, `{"type": 12}`, "")})
	cases := []struct {
		name       string
		before     []metav1.Condition
		res        toolschema.Result
		err        error
		wantReady  metav1.ConditionStatus
		wantReason string
		wantDigest string
	}{
		{
			name:      "valid schemas on a new Toolset",
			res:       toolschema.Result{Tools: 1, Access: custosv1alpha1.ToolsetReadOnly, SchemaDigest: "sha256:0"},
			wantReady: metav1.ConditionTrue, wantReason: custosv1alpha1.SucceededReason, wantDigest: "sha256:0",
		},
		{
			name: "valid schemas on a stalled Toolset that was reconciling",
			before: []metav1.Condition{
				{Type: custosv1alpha1.StalledCondition, Status: metav1.ConditionTrue, Reason: custosv1alpha1.SchemaInvalidReason},
				{Type: custosv1alpha1.ReconcilingCondition, Status: metav1.ConditionTrue, Reason: custosv1alpha1.ProgressingReason},
			},
			res:       toolschema.Result{Tools: 1, Access: custosv1alpha1.ToolsetReadOnly, SchemaDigest: "sha256:1"},
			wantReady: metav1.ConditionTrue, wantReason: custosv1alpha1.SucceededReason, wantDigest: "sha256:1",
		},
		{
			name:      "an invalid schema",
			before:    []metav1.Condition{{Type: custosv1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: custosv1alpha1.SucceededReason}},
			res:       toolschema.Result{Tools: 1, Access: custosv1alpha1.ToolsetReadWrite},
			err:       invalid,
			wantReady: metav1.ConditionFalse, wantReason: custosv1alpha1.SchemaInvalidReason,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ts := &custosv1alpha1.Toolset{
				ObjectMeta: metav1.ObjectMeta{Generation: 3},
				Spec:       custosv1alpha1.ToolsetSpec{Tools: make([]custosv1alpha1.Tool, tc.res.Tools)},
				Status:     custosv1alpha1.ToolsetStatus{ObservedGeneration: 2, SchemaDigest: "sha256:old", Conditions: tc.before},
			}
			setToolsetStatus(ts, tc.res, tc.err)

			g.Expect(ts.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, tc.wantReady, tc.wantReason))
			g.Expect(ts.Status.Conditions).To(haveCondition(custosv1alpha1.SchemasValidCondition, tc.wantReady, tc.wantReason))
			g.Expect(ts.Status.Conditions).To(noCondition(custosv1alpha1.ReconcilingCondition))
			g.Expect(ts.Status.Conditions).To(HaveEach(HaveField("ObservedGeneration", int64(3))))
			if tc.err != nil {
				g.Expect(ts.Status.Conditions).To(haveCondition(custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.SchemaInvalidReason, `"/type"`))
			} else {
				g.Expect(ts.Status.Conditions).To(noCondition(custosv1alpha1.StalledCondition))
			}
			g.Expect(ts.Status.ObservedGeneration).To(Equal(int64(3)))
			g.Expect(ts.Status.SchemaDigest).To(Equal(tc.wantDigest))
			g.Expect(ts.Status.Tools).To(Equal(int32(tc.res.Tools)))
			g.Expect(ts.Status.Access).To(Equal(tc.res.Access))
		})
	}
}

func TestClipMessage(t *testing.T) {
	cases := []struct {
		msg  string
		max  int
		want string
	}{
		{msg: "short", max: 10, want: "short"},
		{msg: "exactly10!", max: 10, want: "exactly10!"},
		{msg: "a bit too long", max: 10, want: "a bit t…"},
		// "é" is two bytes: the cut backs up rather than split it.
		{msg: "aaaaaééé", max: 9, want: "aaaaa…"},
	}
	for _, tc := range cases {
		g := NewWithT(t)
		got := clipMessage(tc.msg, tc.max)
		g.Expect(got).To(Equal(tc.want))
		g.Expect(len(got)).To(BeNumerically("<=", tc.max))
	}
}
