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

package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
)

// Checks a platform team would write for a finance tenant.
var (
	ownerTeam = check("owner-team", "agents of this boundary must be owned by finance-platform",
		`{"agent": {"spec": {"owner": {"team": "finance-platform"}}}}`)
	adminsOnly = check("platform-admins-only", "only platform admins may change agents",
		`{"(contains(request.groups, 'platform-admins'))": true}`)
	officeHours = check("office-hours", "agents are created between 07:00 and 19:00 UTC",
		"{\"(request.operation != 'CREATE' || (time.hour >= `7` && time.hour < `19`))\": true}")
	noWeekends = check("no-weekend-changes", "",
		`{"time": {"(contains(['Saturday', 'Sunday'], weekday))": false}}`)
	classified = check("data-classification", "agents must declare their data classification",
		`{"agent": {"metadata": {"labels": {"custos.dev/data-classification": {}}}}}`)
	knownClassification = check("known-classification", "data classification must be internal or confidential",
		`{"agent": {"metadata": {"labels": {"(contains(['internal', 'confidential'], \"custos.dev/data-classification\"))": true}}}}`)
	ownOrSharedToolsets = check("own-or-shared-toolsets", "agents may use Toolsets of their own namespace or of shared-tools only",
		"{\"agent\": {\"spec\": {\"~.(toolsetRefs || `[]`)\": {\"(namespace == null || namespace == 'shared-tools')\": true}}}}")
	tenantNamespace = check("tenant-namespace", "agents run only in namespaces of the boundary's tenant",
		`{"namespace": {"labels": {"custos.dev/tenant": "($payload.boundary.spec.tenant)"}}}`)
	// purposeTags is not an Agent field: the expression errors on every
	// payload, and the check must deny rather than admit.
	noPIITag = check("no-pii-tag", "agents may not process PII",
		`{"(contains(agent.spec.purposeTags, 'pii'))": false}`)
)

func TestEvaluate(t *testing.T) {
	const deny = `spec: Forbidden: DataBoundary "acme-finance" check `
	tests := []struct {
		name    string
		checks  []custosv1alpha1.PolicyCheck
		request request
		want    []string
	}{{
		name:    "owner team is finance-platform",
		checks:  []custosv1alpha1.PolicyCheck{ownerTeam},
		request: newRequest(),
	}, {
		name:    "owner team is another team",
		checks:  []custosv1alpha1.PolicyCheck{ownerTeam},
		request: newRequest(withAgent(withOwnerTeam("payments"))),
		want: []string{deny + `"owner-team" failed: agents of this boundary must be owned by finance-platform: ` +
			`agent.spec.owner.team: Invalid value: "payments": Expected value: "finance-platform"`},
	}, {
		name:    "requester is a platform admin",
		checks:  []custosv1alpha1.PolicyCheck{adminsOnly},
		request: newRequest(),
	}, {
		name:    "requester is not a platform admin",
		checks:  []custosv1alpha1.PolicyCheck{adminsOnly},
		request: newRequest(withGroups("system:authenticated", "finance-developers")),
		want: []string{deny + `"platform-admins-only" failed: only platform admins may change agents: ` +
			`(contains(request.groups, 'platform-admins')): Invalid value: false: Expected value: true`},
	}, {
		name:    "requester has no groups",
		checks:  []custosv1alpha1.PolicyCheck{adminsOnly},
		request: newRequest(withGroups()),
		want: []string{deny + `"platform-admins-only" failed: only platform admins may change agents: ` +
			`(contains(request.groups, 'platform-admins')): Invalid value: false: Expected value: true`},
	}, {
		name:    "created at 07:00, the first office hour",
		checks:  []custosv1alpha1.PolicyCheck{officeHours},
		request: newRequest(at(monday10.Add(-3 * time.Hour))),
	}, {
		name:    "created at 19:00, after office hours",
		checks:  []custosv1alpha1.PolicyCheck{officeHours},
		request: newRequest(at(monday10.Add(9 * time.Hour))),
		want: []string{deny + `"office-hours" failed: agents are created between 07:00 and 19:00 UTC: ` +
			"(request.operation != 'CREATE' || (time.hour >= `7` && time.hour < `19`)): Invalid value: false: Expected value: true"},
	}, {
		name:    "office hours are UTC, whatever the requester's zone",
		checks:  []custosv1alpha1.PolicyCheck{officeHours},
		request: newRequest(at(time.Date(2026, time.March, 2, 23, 30, 0, 0, time.FixedZone("AEDT", 11*3600)))),
	}, {
		name:    "updated out of hours: only creation is restricted",
		checks:  []custosv1alpha1.PolicyCheck{officeHours},
		request: newRequest(withOperation("UPDATE"), at(monday10.Add(12*time.Hour))),
	}, {
		name:    "changed on a Sunday",
		checks:  []custosv1alpha1.PolicyCheck{noWeekends},
		request: newRequest(at(monday10.Add(-24 * time.Hour))),
		want: []string{deny + `"no-weekend-changes" failed: ` +
			`time.(contains(['Saturday', 'Sunday'], weekday)): Invalid value: true: Expected value: false`},
	}, {
		name:    "carries the data-classification label",
		checks:  []custosv1alpha1.PolicyCheck{classified, knownClassification},
		request: newRequest(),
	}, {
		name:    "lacks the data-classification label",
		checks:  []custosv1alpha1.PolicyCheck{classified, knownClassification},
		request: newRequest(withAgent(withoutLabel("custos.dev/data-classification"))),
		want: []string{
			deny + `"data-classification" failed: agents must declare their data classification: ` +
				`agent.metadata.labels.custos.dev/data-classification: Required value: field not found in the input object`,
			deny + `"known-classification" failed: data classification must be internal or confidential: ` +
				`agent.metadata.labels.(contains(['internal', 'confidential'], "custos.dev/data-classification")): Invalid value: false: Expected value: true`,
		},
	}, {
		name:    "has no labels at all",
		checks:  []custosv1alpha1.PolicyCheck{classified},
		request: newRequest(withAgent(func(a *custosv1alpha1.Agent) { a.Labels = nil })),
		want: []string{deny + `"data-classification" failed: agents must declare their data classification: ` +
			`agent.metadata.labels: Required value: field not found in the input object`},
	}, {
		name:    "an unknown data classification",
		checks:  []custosv1alpha1.PolicyCheck{classified, knownClassification},
		request: newRequest(withAgent(withLabel("custos.dev/data-classification", "public"))),
		want: []string{deny + `"known-classification" failed: data classification must be internal or confidential: ` +
			`agent.metadata.labels.(contains(['internal', 'confidential'], "custos.dev/data-classification")): Invalid value: false: Expected value: true`},
	}, {
		name:    "a literal leaf is compared as written, parentheses and all",
		checks:  []custosv1alpha1.PolicyCheck{check("beta-purpose", "", `{"agent": {"spec": {"purpose": "(beta) reconciles invoices"}}}`)},
		request: newRequest(withAgent(func(a *custosv1alpha1.Agent) { a.Spec.Purpose = "(beta) reconciles invoices" })),
	}, {
		name:    "an escaped key is looked up as a field name",
		checks:  []custosv1alpha1.PolicyCheck{check("legacy", "", `{"agent": {"metadata": {"labels": {"\\(legacy)\\": "true"}}}}`)},
		request: newRequest(withAgent(withLabel("(legacy)", "true"))),
	}, {
		name:    "every Toolset is its own or shared",
		checks:  []custosv1alpha1.PolicyCheck{ownOrSharedToolsets},
		request: newRequest(),
	}, {
		name:    "no Toolsets at all",
		checks:  []custosv1alpha1.PolicyCheck{ownOrSharedToolsets},
		request: newRequest(withAgent(fixtures.WithToolsetRefs())),
	}, {
		name:   "a Toolset of another namespace",
		checks: []custosv1alpha1.PolicyCheck{ownOrSharedToolsets},
		request: newRequest(withAgent(fixtures.WithToolsetRefs(
			custosv1alpha1.ToolsetReference{Name: "ledger"},
			custosv1alpha1.ToolsetReference{Name: "payroll", Namespace: "acme-hr"},
		))),
		want: []string{deny + `"own-or-shared-toolsets" failed: agents may use Toolsets of their own namespace or of shared-tools only: ` +
			"agent.spec.~.(toolsetRefs || `[]`)[1].(namespace == null || namespace == 'shared-tools'): Invalid value: false: Expected value: true"},
	}, {
		name:    "namespace of the boundary's tenant",
		checks:  []custosv1alpha1.PolicyCheck{tenantNamespace},
		request: newRequest(),
	}, {
		name:    "namespace of another tenant",
		checks:  []custosv1alpha1.PolicyCheck{tenantNamespace},
		request: newRequest(inNamespaceOf("globex")),
		want: []string{deny + `"tenant-namespace" failed: agents run only in namespaces of the boundary's tenant: ` +
			`namespace.labels.custos.dev/tenant: Invalid value: "globex": Expected value: "acme"`},
	}, {
		name:    "an expression that errors fails closed",
		checks:  []custosv1alpha1.PolicyCheck{noPIITag},
		request: newRequest(),
		want: []string{deny + `"no-pii-tag" failed: agents may not process PII: cannot be evaluated: ` +
			`(contains(agent.spec.purposeTags, 'pii')): Internal error: invalid type for: <nil>, expected: []functions.JpType{"array", "string"}`},
	}, {
		name:    "every failed check is reported, in check order",
		checks:  []custosv1alpha1.PolicyCheck{officeHours, ownerTeam, adminsOnly, classified},
		request: newRequest(withAgent(withOwnerTeam("payments")), withGroups("finance-developers"), at(monday10.Add(12*time.Hour))),
		want: []string{
			deny + `"office-hours" failed: agents are created between 07:00 and 19:00 UTC: ` +
				"(request.operation != 'CREATE' || (time.hour >= `7` && time.hour < `19`)): Invalid value: false: Expected value: true",
			deny + `"owner-team" failed: agents of this boundary must be owned by finance-platform: ` +
				`agent.spec.owner.team: Invalid value: "payments": Expected value: "finance-platform"`,
			deny + `"platform-admins-only" failed: only platform admins may change agents: ` +
				`(contains(request.groups, 'platform-admins')): Invalid value: false: Expected value: true`,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			set, errs := Compile(tt.checks)
			g.Expect(errs).To(BeEmpty())
			b := newBoundary(tt.checks...)
			p, err := tt.request.payload(b)
			g.Expect(err).NotTo(HaveOccurred())

			got := set.Evaluate(context.Background(), p, b.Name, field.NewPath("spec"))
			g.Expect(errorStrings(got)).To(Equal(tt.want))
			for _, e := range got {
				g.Expect(e.Type).To(Equal(field.ErrorTypeForbidden))
			}
		})
	}
}

func errorStrings(errs field.ErrorList) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func TestCompile(t *testing.T) {
	tests := []struct {
		name   string
		checks []custosv1alpha1.PolicyCheck
		want   []string
	}{{
		name:   "no checks",
		checks: nil,
	}, {
		name:   "the example checks",
		checks: []custosv1alpha1.PolicyCheck{ownerTeam, adminsOnly, officeHours, noWeekends, classified, knownClassification, ownOrSharedToolsets, tenantNamespace, noPIITag},
	}, {
		name:   "an escaped field name that starts with a parenthesis",
		checks: []custosv1alpha1.PolicyCheck{check("legacy", "", `{"agent": {"metadata": {"annotations": {"\\(legacy)\\": {}}}}}`)},
	}, {
		name:   "a literal leaf that starts with a parenthesis",
		checks: []custosv1alpha1.PolicyCheck{check("purpose", "", `{"agent": {"spec": {"purpose": "(beta) reconciles invoices"}}}`)},
	}, {
		name: "a JMESPath syntax error",
		checks: []custosv1alpha1.PolicyCheck{
			ownerTeam,
			check("admins", "", `{"(contains(request.groups, 'platform-admins')": true}`),
		},
		want: []string{`spec.checks[1].assert: Invalid value: check "admins": ` +
			`(contains(request.groups, 'platform-admins'): invalid JMESPath expression: SyntaxError: Incomplete expression`},
	}, {
		name:   "an expression not wholly in parentheses is a field that never exists",
		checks: []custosv1alpha1.PolicyCheck{check("create-only", "", `{"(request.operation) == 'CREATE'": true}`)},
		want: []string{`spec.checks[0].assert: Invalid value: check "create-only": ` +
			`(request.operation) == 'CREATE': starts with ( but does not end with ): write an expression as (expression), or escape a field name as \name\`},
	}, {
		name:   "a function called with too few arguments",
		checks: []custosv1alpha1.PolicyCheck{check("admins", "", `{"(contains(request.groups, ))": true}`)},
		want: []string{`spec.checks[0].assert: Invalid value: check "admins": ` +
			`(contains(request.groups, )): function contains called with 1 arguments, it takes 2`},
	}, {
		name:   "an unknown function",
		checks: []custosv1alpha1.PolicyCheck{check("owner", "", `{"agent": {"spec": {"owner": {"team": "(downcase(@))"}}}}`)},
		want: []string{`spec.checks[0].assert: Invalid value: check "owner": ` +
			`agent.spec.owner.team: "(downcase(@))": unknown function downcase`},
	}, {
		name:   "a function that reads the clock",
		checks: []custosv1alpha1.PolicyCheck{check("office-hours", "", `{"(time_now_utc() < '2026-12-31T00:00:00Z')": true}`)},
		want: []string{`spec.checks[0].assert: Invalid value: check "office-hours": ` +
			`(time_now_utc() < '2026-12-31T00:00:00Z'): function time_now_utc is not available to checks: it reads the clock: use time.now from the payload`},
	}, {
		name:   "foreach and binding on the right-hand side",
		checks: []custosv1alpha1.PolicyCheck{check("toolsets", "", `{"agent": {"spec": {"toolsetRefs": "~.(name)->names"}}}`)},
		want: []string{`spec.checks[0].assert: Invalid value: check "toolsets": ` +
			`agent.spec.toolsetRefs: "~.(name)->names": ~ (foreach) is only allowed in keys; ` +
			`agent.spec.toolsetRefs: "~.(name)->names": -> (binding) is only allowed in keys`},
	}, {
		name:   "another expression language",
		checks: []custosv1alpha1.PolicyCheck{check("owner", "", `{"(cel:object.spec.owner.team == 'x')": true}`)},
		want: []string{`spec.checks[0].assert: Invalid value: check "owner": ` +
			`(cel:object.spec.owner.team == 'x'): unknown expression language "cel": only JMESPath, written (expression), is supported`},
	}, {
		name:   "an assertion that is a list",
		checks: []custosv1alpha1.PolicyCheck{check("owner", "", `[{"agent": {}}]`)},
		want: []string{`spec.checks[0].assert: Invalid value: check "owner": ` +
			`must be an object, such as {agent: {spec: {owner: {team: finance-platform}}}}`},
	}, {
		name:   "an empty assertion",
		checks: []custosv1alpha1.PolicyCheck{check("owner", "", `{}`)},
		want:   []string{`spec.checks[0].assert: Invalid value: check "owner": must not be empty: an empty assertion always passes`},
	}, {
		name:   "no assertion",
		checks: []custosv1alpha1.PolicyCheck{{Name: "owner"}},
		want:   []string{`spec.checks[0].assert: Invalid value: check "owner": not a JSON assertion tree: unexpected end of JSON input`},
	}, {
		name:   "a duplicate name",
		checks: []custosv1alpha1.PolicyCheck{ownerTeam, adminsOnly, ownerTeam},
		want:   []string{`spec.checks[2].name: Duplicate value: "owner-team"`},
	}, {
		name: "every problem of every check",
		checks: []custosv1alpha1.PolicyCheck{
			check("first", "", `{"b": "(nope(@))", "a": {"(length(@) >)": true}}`),
			ownerTeam,
			check("third", "", `"finance-platform"`),
		},
		want: []string{
			`spec.checks[0].assert: Invalid value: check "first": ` +
				`a.(length(@) >): invalid JMESPath expression: SyntaxError: Incomplete expression; b: "(nope(@))": unknown function nope`,
			`spec.checks[2].assert: Invalid value: check "third": must be an object, such as {agent: {spec: {owner: {team: finance-platform}}}}`,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			set, errs := Compile(tt.checks)
			g.Expect(errorStrings(errs)).To(Equal(tt.want))
			if tt.want != nil {
				g.Expect(set).To(BeNil())
				return
			}
			g.Expect(set.Len()).To(Equal(len(tt.checks)))
		})
	}
}

func TestCompileObject(t *testing.T) {
	g := NewWithT(t)
	// A check built in Go rather than decoded from the API server carries
	// its tree as an Object.
	c := custosv1alpha1.PolicyCheck{Name: "owner-team", Assert: runtime.RawExtension{Object: &unstructured.Unstructured{Object: map[string]any{
		"agent": map[string]any{"spec": map[string]any{"owner": map[string]any{"team": "finance-platform"}}},
	}}}}
	set, errs := Compile([]custosv1alpha1.PolicyCheck{c})
	g.Expect(errs).To(BeEmpty())
	p, err := newRequest(withAgent(withOwnerTeam("payments"))).payload(newBoundary(c))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(errorStrings(set.Evaluate(context.Background(), p, "acme-finance", field.NewPath("spec")))).To(ConsistOf(
		`spec: Forbidden: DataBoundary "acme-finance" check "owner-team" failed: agent.spec.owner.team: Invalid value: "payments": Expected value: "finance-platform"`))
}

func TestEvaluateIsStable(t *testing.T) {
	g := NewWithT(t)
	// One check with many failures in sibling keys: the engine visits them
	// in Go's random map order.
	c := check("owner", "", `{"agent": {"spec": {"owner": {"team": "a", "contact": "b"}, "purpose": "c", "image": "d"}, "metadata": {"name": "e"}}}`)
	set, errs := Compile([]custosv1alpha1.PolicyCheck{c})
	g.Expect(errs).To(BeEmpty())
	p, err := newRequest().payload(newBoundary(c))
	g.Expect(err).NotTo(HaveOccurred())

	first := errorStrings(set.Evaluate(context.Background(), p, "acme-finance", field.NewPath("spec")))
	g.Expect(first).To(HaveLen(1))
	g.Expect(strings.Count(first[0], "Invalid value")).To(Equal(5))
	for range 50 {
		g.Expect(errorStrings(set.Evaluate(context.Background(), p, "acme-finance", field.NewPath("spec")))).To(Equal(first))
	}
}

func TestEvaluateBoundsTheMessage(t *testing.T) {
	g := NewWithT(t)
	var refs []custosv1alpha1.ToolsetReference
	for range maxFailuresShown + 2 {
		refs = append(refs, custosv1alpha1.ToolsetReference{Name: "payroll", Namespace: "acme-hr"})
	}
	set, errs := Compile([]custosv1alpha1.PolicyCheck{ownOrSharedToolsets})
	g.Expect(errs).To(BeEmpty())
	p, err := newRequest(withAgent(fixtures.WithToolsetRefs(refs...))).payload(newBoundary(ownOrSharedToolsets))
	g.Expect(err).NotTo(HaveOccurred())

	got := errorStrings(set.Evaluate(context.Background(), p, "acme-finance", field.NewPath("spec")))
	g.Expect(got).To(HaveLen(1))
	g.Expect(strings.Count(got[0], "Invalid value")).To(Equal(maxFailuresShown))
	g.Expect(got[0]).To(HaveSuffix("; and 2 more"))

	g.Expect(truncate(strings.Repeat("é", maxFailureLen))).To(Equal(strings.Repeat("é", maxFailureLen/2) + "…"))
}

func TestEvaluateConcurrently(t *testing.T) {
	g := NewWithT(t)
	// The webhook shares one Set, and may share one payload, between
	// concurrent requests; run with -race.
	checks := []custosv1alpha1.PolicyCheck{ownerTeam, adminsOnly, ownOrSharedToolsets,
		check("sorted", "", `{"(sort_by(agent.spec.toolsetRefs, &name)[0].name)": "fx-rates"}`)}
	set, errs := Compile(checks)
	g.Expect(errs).To(BeEmpty())
	p, err := newRequest(withGroups("finance-developers")).payload(newBoundary(checks...))
	g.Expect(err).NotTo(HaveOccurred())

	results := make(chan []string)
	for range 8 {
		go func() {
			results <- errorStrings(set.Evaluate(context.Background(), p, "acme-finance", field.NewPath("spec")))
		}()
	}
	for range 8 {
		g.Expect(<-results).To(Equal([]string{`spec: Forbidden: DataBoundary "acme-finance" check "platform-admins-only" failed: ` +
			`only platform admins may change agents: (contains(request.groups, 'platform-admins')): Invalid value: false: Expected value: true`}))
	}
}

func TestEvaluateFailsClosedOnCancel(t *testing.T) {
	g := NewWithT(t)
	set, errs := Compile([]custosv1alpha1.PolicyCheck{ownerTeam})
	g.Expect(errs).To(BeEmpty())
	p, err := newRequest().payload(newBoundary(ownerTeam))
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g.Expect(errorStrings(set.Evaluate(ctx, p, "acme-finance", field.NewPath("spec")))).To(Equal([]string{
		`spec: Forbidden: DataBoundary "acme-finance" check "owner-team" failed: agents of this boundary must be owned by finance-platform: cannot be evaluated: context canceled`,
	}))
}

func TestEvaluateWithoutChecks(t *testing.T) {
	g := NewWithT(t)
	var nilSet *Set
	g.Expect(nilSet.Evaluate(context.Background(), Payload{}, "acme-finance", field.NewPath("spec"))).To(BeEmpty())
	set, errs := Compile(nil)
	g.Expect(errs).To(BeEmpty())
	g.Expect(set.Evaluate(context.Background(), Payload{}, "acme-finance", field.NewPath("spec"))).To(BeEmpty())
}

func TestEvaluateLeavesThePayloadAlone(t *testing.T) {
	g := NewWithT(t)
	// sort_by sorts its argument in place in the JMESPath library.
	sorted := check("sorted", "", `{"(sort_by(agent.spec.toolsetRefs, &name)[0].name)": "fx-rates"}`)
	unsorted := check("unsorted", "", `{"agent": {"spec": {"toolsetRefs": [{"name": "ledger"}, {"name": "fx-rates", "namespace": "shared-tools"}]}}}`)
	set, errs := Compile([]custosv1alpha1.PolicyCheck{sorted, unsorted})
	g.Expect(errs).To(BeEmpty())
	p, err := newRequest().payload(newBoundary(sorted))
	g.Expect(err).NotTo(HaveOccurred())
	before, err := newRequest().payload(newBoundary(sorted))
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(set.Evaluate(context.Background(), p, "acme-finance", field.NewPath("spec"))).To(BeEmpty())
	g.Expect(p).To(Equal(before))
}

func TestNewPayload(t *testing.T) {
	g := NewWithT(t)
	b := newBoundary(ownerTeam)
	p, err := NewPayload(newAgent(), newNamespace("acme"), b, "alice@acme.example", []string{"platform-admins"}, "CREATE",
		time.Date(2026, time.March, 2, 23, 30, 0, 0, time.FixedZone("AEDT", 11*3600)))
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(p.Agent).To(HaveKeyWithValue("kind", "Agent"))
	g.Expect(p.Agent).NotTo(HaveKey("status"))
	g.Expect(p.Agent["metadata"]).To(HaveKeyWithValue("name", "invoice-reconciler"))
	g.Expect(p.Agent["metadata"]).NotTo(HaveKey("managedFields"))
	// Numbers are float64, as JMESPath functions require.
	g.Expect(p.Agent["spec"]).To(HaveKeyWithValue("runtime", HaveKeyWithValue("replicas", float64(2))))
	g.Expect(p.Boundary).To(HaveKeyWithValue("spec", HaveKeyWithValue("tenant", "acme")))
	g.Expect(p.Boundary).NotTo(HaveKey("status"))
	g.Expect(p.Namespace).To(Equal(NamespaceInfo{Name: "acme-finance", Labels: map[string]string{
		custosv1alpha1.TenantLabel: "acme", "kubernetes.io/metadata.name": "acme-finance",
	}}))
	g.Expect(p.Request).To(Equal(RequestInfo{User: "alice@acme.example", Groups: []string{"platform-admins"}, Operation: "CREATE"}))
	g.Expect(p.Time).To(Equal(TimeInfo{Now: "2026-03-02T12:30:00Z", Hour: 12, Weekday: "Monday"}))

	// Without objects the payload is still complete: lists and maps are
	// empty, never null, and the namespace name comes from the Agent.
	p, err = NewPayload(newAgent(), nil, nil, "system:serviceaccount:flux-system:kustomize-controller", nil, "DELETE", monday10)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(p.Namespace).To(Equal(NamespaceInfo{Name: "acme-finance", Labels: map[string]string{}}))
	g.Expect(p.Request.Groups).To(Equal([]string{}))
	g.Expect(p.Boundary).To(BeNil())
	g.Expect(p.value()).To(HaveKeyWithValue("boundary", BeNil()))
}

// BenchmarkEvaluate is the cost one admission request pays for a boundary
// with three checks.
func BenchmarkEvaluate(b *testing.B) {
	checks := []custosv1alpha1.PolicyCheck{ownerTeam, adminsOnly, officeHours}
	set, errs := Compile(checks)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	for _, bc := range []struct {
		name    string
		request request
		denied  int
	}{
		{"admitted", newRequest(), 0},
		{"denied", newRequest(withAgent(withOwnerTeam("payments")), withGroups("finance-developers"), at(monday10.Add(12*time.Hour))), 3},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p, err := bc.request.payload(newBoundary(checks...))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if got := set.Evaluate(context.Background(), p, "acme-finance", field.NewPath("spec")); len(got) != bc.denied {
					b.Fatalf("got %d denials, want %d: %v", len(got), bc.denied, got)
				}
			}
		})
	}
}
