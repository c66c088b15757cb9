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

package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/boundary"
	"github.com/custos-dev/custos/internal/policy"
	"github.com/custos-dev/custos/internal/toolschema"
	"github.com/custos-dev/custos/test/fixtures"
)

// The admission fuzz targets feed arbitrary bytes, as the object and as the
// old object, through the handlers exactly as SetupWithManager registers
// them (admission.WithValidator over the scheme, validators reading through
// a reader), against a small cluster held by a fake client:
//
//   - finance-agents, labelled acme-finance, covered by the acme-finance
//     DataBoundary of config/samples with two policy checks; the
//     ledger-readonly Toolset and invoice-reconciler Agent of
//     config/samples live there;
//   - payments-agents, labelled acme-payments and team=payments, covered by
//     an acme-payments DataBoundary that selects team=payments and allows no
//     cloud identity, with its own payments-ledger Toolset;
//   - legacy-agents, labelled acme-legacy and team=payments: a namespace
//     labelled before the acme-payments boundary was written, so covered
//     by a boundary of another tenant than its label says. Nothing stops
//     that (the DataBoundary webhook only compiles checks), so admission
//     must cope with it.
//
// Whatever the bytes, a handler answers, never panics, and a refusal
// carries a code and a message. What a handler admits is checked against
// the world: an admitted Agent or Toolset stays within its boundary as the
// controllers judge it (internal/boundary), an admitted Namespace carries
// the tenant of the boundaries covering it, an admitted DataBoundary's
// checks compile.
//
// TestAdmissionHandlersSeeds runs the seeds without -fuzz.

const (
	admTenant       = "acme-finance"
	admOtherTenant  = "acme-payments"
	admOtherNS      = "payments-agents"
	admLegacyTenant = "acme-legacy"
	admLegacyNS     = "legacy-agents"
	admTeamLabel    = "team"
)

var admScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(custosv1alpha1.AddToScheme(s))
	return s
}()

// admChecks are the acme-finance boundary's policy checks, as
// internal/policy's tests write them: the owner team, and the namespace's
// tenant read against the boundary through $payload.
var admChecks = []custosv1alpha1.PolicyCheck{{
	Name:    "owner-team",
	Message: "agents of this boundary must be owned by finance-platform",
	Assert:  runtime.RawExtension{Raw: []byte(`{"agent": {"spec": {"owner": {"team": "finance-platform"}}}}`)},
}, {
	Name:    "tenant-namespace",
	Message: "agents run only in namespaces of the boundary's tenant",
	Assert:  runtime.RawExtension{Raw: []byte(`{"namespace": {"labels": {"custos.dev/tenant": "($payload.boundary.spec.tenant)"}}}`)},
}}

// admSample reads config/samples/file into obj, refusing unknown fields so
// that a sample that drifts from the API fails here.
func admSample[T client.Object](tb testing.TB, file string, obj T) T {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", file))
	if err != nil {
		tb.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		tb.Fatalf("config/samples/%s: %v", file, err)
	}
	return obj
}

func admAgent(tb testing.TB, mutate ...func(*custosv1alpha1.Agent)) *custosv1alpha1.Agent {
	a := admSample(tb, "agent.yaml", &custosv1alpha1.Agent{})
	for _, m := range mutate {
		m(a)
	}
	return a
}

func admToolset(tb testing.TB, mutate ...func(*custosv1alpha1.Toolset)) *custosv1alpha1.Toolset {
	ts := admSample(tb, "toolset.yaml", &custosv1alpha1.Toolset{})
	for _, m := range mutate {
		m(ts)
	}
	return ts
}

func admNamespace(tb testing.TB, mutate ...func(*corev1.Namespace)) *corev1.Namespace {
	ns := admSample(tb, "namespace.yaml", &corev1.Namespace{})
	for _, m := range mutate {
		m(ns)
	}
	return ns
}

func admBoundary(tb testing.TB, mutate ...func(*custosv1alpha1.DataBoundary)) *custosv1alpha1.DataBoundary {
	b := admSample(tb, "databoundary.yaml", &custosv1alpha1.DataBoundary{})
	for _, m := range mutate {
		m(b)
	}
	return b
}

func withChecks(b *custosv1alpha1.DataBoundary) { b.Spec.Checks = admChecks }

// admPaymentsAgent is an Agent of acme-payments that its boundary admits.
func admPaymentsAgent(a *custosv1alpha1.Agent) {
	a.Namespace = admOtherNS
	a.Labels = map[string]string{custosv1alpha1.TenantLabel: admOtherTenant}
	a.Spec.Owner.Team = "payments-platform"
	a.Spec.Identity = nil
	a.Spec.ToolsetRefs = []custosv1alpha1.ToolsetReference{{Name: "payments-ledger"}}
}

// admObjects is the cluster of the fuzz targets.
func admObjects(tb testing.TB) []client.Object {
	paymentsNS := fixtures.Namespace(admOtherNS, map[string]string{custosv1alpha1.TenantLabel: admOtherTenant, admTeamLabel: "payments"})
	legacyNS := fixtures.Namespace(admLegacyNS, map[string]string{custosv1alpha1.TenantLabel: admLegacyTenant, admTeamLabel: "payments"})
	payments := fixtures.DataBoundary(admOtherTenant,
		fixtures.WithSelector(metav1.LabelSelector{MatchLabels: map[string]string{admTeamLabel: "payments"}}),
		fixtures.WithRegions("us-east-1"),
		func(b *custosv1alpha1.DataBoundary) { b.UID, b.Generation = "uid-acme-payments", 1 })
	paymentsLedger := admToolset(tb, func(ts *custosv1alpha1.Toolset) {
		ts.Name, ts.Namespace = "payments-ledger", admOtherNS
		ts.Labels = map[string]string{custosv1alpha1.TenantLabel: admOtherTenant}
		ts.Spec.Endpoint.InCluster.Namespace = admOtherNS
		ts.Spec.Region = "us-east-1"
	})
	return []client.Object{
		admNamespace(tb),
		admBoundary(tb, withChecks, func(b *custosv1alpha1.DataBoundary) {
			b.UID, b.Generation = "uid-acme-finance", 1
		}),
		admToolset(tb),
		admSample(tb, "toolset-payments.yaml", &custosv1alpha1.Toolset{}),
		admAgent(tb),
		paymentsNS, legacyNS, payments, paymentsLedger,
	}
}

// admHandlers are the four handlers as the manager serves them, but letting
// a panic through: the served Webhook turns one into a 500 refusal, which
// fails closed but would hide it from the fuzzer.
type admHandlers struct {
	agent, toolset, namespace, boundary *admission.Webhook
}

func newAdmHandlers(cache, live client.Reader) admHandlers {
	c := &reader{cache: cache, live: live}
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, time.March, 2, 10, 0, 0, 0, time.UTC))
	return admHandlers{
		agent:     admission.WithValidator[*custosv1alpha1.Agent](admScheme, &AgentValidator{Client: c, Clock: clk}).WithRecoverPanic(false),
		toolset:   admission.WithValidator[*custosv1alpha1.Toolset](admScheme, &ToolsetValidator{Client: c}).WithRecoverPanic(false),
		namespace: admission.WithValidator[*corev1.Namespace](admScheme, &NamespaceValidator{Client: c}).WithRecoverPanic(false),
		boundary:  admission.WithValidator[*custosv1alpha1.DataBoundary](admScheme, &DataBoundaryValidator{}).WithRecoverPanic(false),
	}
}

// admWorld is the fake cluster and the handlers reading it.
type admWorld struct {
	store client.Reader
	admHandlers
}

func newAdmWorld(tb testing.TB) *admWorld {
	c := fake.NewClientBuilder().WithScheme(admScheme).WithObjects(admObjects(tb)...).Build()
	return &admWorld{store: c, admHandlers: newAdmHandlers(c, c)}
}

// admKind is what the API server says about the resource under review.
type admKind struct {
	gvk metav1.GroupVersionKind
	gvr metav1.GroupVersionResource
}

func custosKind(kind, resource string) admKind {
	gv := custosv1alpha1.GroupVersion
	return admKind{
		gvk: metav1.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: kind},
		gvr: metav1.GroupVersionResource{Group: gv.Group, Version: gv.Version, Resource: resource},
	}
}

var (
	admAgentKind     = custosKind("Agent", "agents")
	admToolsetKind   = custosKind("Toolset", "toolsets")
	admBoundaryKind  = custosKind("DataBoundary", "databoundaries")
	admNamespaceKind = admKind{
		gvk: metav1.GroupVersionKind{Version: "v1", Kind: "Namespace"},
		gvr: metav1.GroupVersionResource{Version: "v1", Resource: "namespaces"},
	}
)

// admOps are the operations the fuzzer picks among.
var admOps = []admissionv1.Operation{admissionv1.Create, admissionv1.Update, admissionv1.Delete}

func admOp(op uint8) admissionv1.Operation { return admOps[int(op)%len(admOps)] }

func admOpIndex(op admissionv1.Operation) uint8 {
	return uint8(slices.Index(admOps, op))
}

// admRequest is the AdmissionReview request the API server would send: the
// object for CREATE, object and old object for UPDATE, and for DELETE the
// object being deleted as the old object.
func admRequest(k admKind, op admissionv1.Operation, obj, old []byte) admission.Request {
	gvk, gvr := k.gvk, k.gvr
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:             "0d8f1c2e-fuzz",
			Kind:            gvk,
			Resource:        gvr,
			RequestKind:     &gvk,
			RequestResource: &gvr,
			Operation:       op,
			UserInfo: authenticationv1.UserInfo{
				Username: "alice@acme.example",
				Groups:   []string{"system:authenticated", "finance-developers"},
			},
		},
	}
	r := review.Request
	switch op {
	case admissionv1.Create:
		r.Object.Raw = obj
	case admissionv1.Update:
		r.Object.Raw, r.OldObject.Raw = obj, old
	case admissionv1.Delete:
		r.OldObject.Raw = obj
	}
	// The API server names the object in the request; the handlers do not
	// read it, so a best effort will do.
	var meta struct {
		Metadata struct{ Name, Namespace string } `json:"metadata"`
	}
	if json.Unmarshal(obj, &meta) == nil {
		r.Name, r.Namespace = meta.Metadata.Name, meta.Metadata.Namespace
	}
	return admission.Request{AdmissionRequest: *r}
}

// admTimeout is how long one admission may take under the fuzzer.
const admTimeout = 10 * time.Second

// admHandle serves req and checks what every answer must be.
func admHandle(t *testing.T, wh *admission.Webhook, req admission.Request) admission.Response {
	t.Helper()
	// The API server gives up after the webhooks' timeoutSeconds (5) and
	// refuses the request: a handler that takes longer is as broken as one
	// that panics, and the fuzzer would otherwise wait on it for ever.
	// Panicking from another goroutine kills the worker, so the fuzzer
	// keeps the input it was running.
	watchdog := time.AfterFunc(admTimeout, func() {
		panic(fmt.Sprintf("%s took more than %s on\nobject: %q\nold object: %q",
			req.Operation, admTimeout, req.Object.Raw, req.OldObject.Raw))
	})
	defer watchdog.Stop()
	resp := wh.Handle(context.Background(), req)
	if resp.UID != req.UID {
		t.Fatalf("response UID %q, want %q", resp.UID, req.UID)
	}
	r := resp.Result
	if r == nil {
		t.Fatalf("response without a result: %+v", resp)
	}
	if strings.HasPrefix(r.Message, "panic:") {
		t.Fatalf("the handler panicked: %s", r.Message)
	}
	if len(resp.Patches) > 0 || resp.Patch != nil {
		t.Fatalf("a validating handler patched: %+v", resp.Patches)
	}
	if resp.Allowed {
		if r.Code != http.StatusOK {
			t.Fatalf("allowed with code %d: %+v", r.Code, r)
		}
	} else {
		if r.Message == "" {
			t.Fatalf("denied without a message: %+v", r)
		}
		if r.Code < 400 || r.Code > 599 {
			t.Fatalf("denied with code %d: %s", r.Code, r.Message)
		}
		if r.Reason == metav1.StatusReasonInvalid && (r.Details == nil || len(r.Details.Causes) == 0) {
			t.Fatalf("denied as Invalid without causes: %s", r.Message)
		}
	}
	if _, err := json.Marshal(admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}); err != nil {
		t.Fatalf("the response does not encode: %v", err)
	}
	return resp
}

// admDecoder decodes as the handlers do.
var admDecoder = admission.NewDecoder(admScheme)

// admDecode decodes raw as the handlers do.
func admDecode(t *testing.T, raw []byte, into runtime.Object) {
	t.Helper()
	if err := admDecoder.DecodeRaw(runtime.RawExtension{Raw: raw}, into); err != nil {
		t.Fatalf("admitted an object that does not decode: %v", err)
	}
}

// boundaryOf reads a namespace of the world and the one boundary covering
// it, or nil.
func (w *admWorld) boundaryOf(t *testing.T, namespace string) (*corev1.Namespace, *custosv1alpha1.DataBoundary) {
	t.Helper()
	ns := w.getNamespace(namespace)
	if ns == nil {
		return nil, nil
	}
	var list custosv1alpha1.DataBoundaryList
	if err := w.store.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	b, err := boundary.Select(list.Items, ns)
	if err != nil {
		return ns, nil
	}
	return ns, b
}

// admFail reports an admitted object that should have been refused.
func admFail(t *testing.T, kind string, why []string, req admission.Request) {
	t.Helper()
	if len(why) == 0 {
		return
	}
	t.Fatalf("%s %s admitted, but:\n  %s\nobject: %s\nold object: %s",
		req.Operation, kind, strings.Join(why, "\n  "), req.Object.Raw, req.OldObject.Raw)
}

func admErrs(errs field.ErrorList) string { return errs.ToAggregate().Error() }

// namespace reads a namespace of the world, or nil.
func (w *admWorld) getNamespace(name string) *corev1.Namespace {
	ns := &corev1.Namespace{}
	if err := w.store.Get(context.Background(), types.NamespacedName{Name: name}, ns); err != nil {
		return nil
	}
	return ns
}

// endpointNS is the namespace of ts's in-cluster endpoint, as the handlers
// read it: nil without one, or when it does not exist.
func (w *admWorld) endpointNS(ts *custosv1alpha1.Toolset) *corev1.Namespace {
	if ts.Spec.Endpoint.InCluster == nil {
		return nil
	}
	return w.getNamespace(ts.Spec.Endpoint.InCluster.Namespace)
}

// checkAgentAdmitted: an admitted Agent stays within the boundary of its
// namespace, as the Agent reconciler judges it, and within the
// acme-finance boundary's rules as they are written in the samples.
func (w *admWorld) checkAgentAdmitted(t *testing.T, req admission.Request, resp admission.Response) {
	t.Helper()
	if req.Operation == admissionv1.Delete {
		return
	}
	agent := &custosv1alpha1.Agent{}
	admDecode(t, req.Object.Raw, agent)
	var why []string
	if req.Operation == admissionv1.Update {
		old := &custosv1alpha1.Agent{}
		admDecode(t, req.OldObject.Raw, old)
		if old.Spec.Lifecycle.State == custosv1alpha1.LifecycleDecommissioned && agent.Spec.Lifecycle.State != custosv1alpha1.LifecycleDecommissioned {
			why = append(why, "a decommissioned agent came back as "+string(agent.Spec.Lifecycle.State))
		}
		if !agent.DeletionTimestamp.IsZero() || onlyWithdraws(old, agent) {
			admFail(t, "Agent", why, req)
			return
		}
		if was := old.Labels[custosv1alpha1.TenantLabel]; was != "" && was != agent.Labels[custosv1alpha1.TenantLabel] {
			why = append(why, fmt.Sprintf("the tenant label moved from %q to %q", was, agent.Labels[custosv1alpha1.TenantLabel]))
		}
	}
	if agent.Spec.Owner.Team == "" || agent.Spec.Owner.Contact == "" || agent.Spec.Purpose == "" {
		why = append(why, "owner or purpose missing")
	}
	ns, b := w.boundaryOf(t, agent.Namespace)
	if b == nil {
		why = append(why, fmt.Sprintf("namespace %q is not covered by exactly one boundary", agent.Namespace))
		admFail(t, "Agent", why, req)
		return
	}
	tenant := agent.Labels[custosv1alpha1.TenantLabel]
	if tenant == "" || tenant != ns.Labels[custosv1alpha1.TenantLabel] || tenant != b.Spec.Tenant {
		why = append(why, fmt.Sprintf("tenant label %q, namespace %s of tenant %q, covered by DataBoundary %q of tenant %q",
			tenant, ns.Name, ns.Labels[custosv1alpha1.TenantLabel], b.Name, b.Spec.Tenant))
	}
	if errs := boundary.CheckAgent(b, ns, agent); len(errs) > 0 {
		why = append(why, "boundary.CheckAgent refuses it: "+admErrs(errs))
	}
	if b.Name == admTenant {
		if agent.Spec.Owner.Team != "finance-platform" {
			why = append(why, "check owner-team: owner team "+agent.Spec.Owner.Team)
		}
		if !strings.HasPrefix(agent.Spec.Image, "registry.acme.example/agents/") {
			why = append(why, "image "+agent.Spec.Image)
		}
		if id := agent.Spec.Identity; id != nil {
			if id.Azure != nil {
				why = append(why, "an Azure identity, which the boundary does not allow")
			}
			if id.AWS != nil && !strings.HasPrefix(id.AWS.RoleARN, "arn:aws:iam::111122223333:role/acme-finance-") {
				why = append(why, "AWS role "+id.AWS.RoleARN)
			}
			if id.GCP != nil && !strings.HasSuffix(id.GCP.ServiceAccount, "@acme-finance.iam.gserviceaccount.com") {
				why = append(why, "GCP service account "+id.GCP.ServiceAccount)
			}
		}
	} else if id := agent.Spec.Identity; id != nil && (id.AWS != nil || id.Azure != nil || id.GCP != nil) {
		why = append(why, fmt.Sprintf("a cloud identity, which DataBoundary %q does not allow", b.Name))
	}
	for i, ref := range agent.Spec.ToolsetRefs {
		key := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
		if key.Namespace == "" {
			key.Namespace = agent.Namespace
		}
		ts := &custosv1alpha1.Toolset{}
		if err := w.store.Get(context.Background(), key, ts); err != nil {
			if !slices.ContainsFunc(resp.Warnings, func(s string) bool { return strings.Contains(s, key.String()) }) {
				why = append(why, fmt.Sprintf("toolsetRefs[%d]: Toolset %s is missing and no warning says so", i, key))
			}
			continue
		}
		if owner := ts.Labels[custosv1alpha1.TenantLabel]; owner != tenant {
			why = append(why, fmt.Sprintf("toolsetRefs[%d]: Toolset %s of tenant %q", i, key, owner))
		}
		if errs := boundary.CheckToolset(b, ts, w.endpointNS(ts)); len(errs) > 0 {
			why = append(why, fmt.Sprintf("toolsetRefs[%d]: boundary.CheckToolset refuses %s: %s", i, key, admErrs(errs)))
		}
	}
	admFail(t, "Agent", why, req)
}

// inside203 is an independent reading of the acme-finance egress rule:
// only networks inside 203.0.113.0/24, IPv4-mapped ones as IPv4.
func inside203(cidr string) bool {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return false
	}
	addr, bits := p.Addr(), p.Bits()
	if addr.Is4In6() {
		addr, bits = addr.Unmap(), bits-96
	}
	return addr.Is4() && bits >= 24 && netip.MustParsePrefix("203.0.113.0/24").Contains(addr)
}

// checkToolsetAdmitted: an admitted Toolset compiles, belongs to the tenant
// of its namespace and boundary, and stays inside that boundary.
func (w *admWorld) checkToolsetAdmitted(t *testing.T, req admission.Request) {
	t.Helper()
	if req.Operation == admissionv1.Delete {
		return
	}
	ts := &custosv1alpha1.Toolset{}
	admDecode(t, req.Object.Raw, ts)
	var why []string
	if req.Operation == admissionv1.Update {
		if !ts.DeletionTimestamp.IsZero() {
			return
		}
		old := &custosv1alpha1.Toolset{}
		admDecode(t, req.OldObject.Raw, old)
		if was := old.Labels[custosv1alpha1.TenantLabel]; was != "" && was != ts.Labels[custosv1alpha1.TenantLabel] {
			why = append(why, fmt.Sprintf("the tenant label moved from %q to %q", was, ts.Labels[custosv1alpha1.TenantLabel]))
		}
	}
	if _, err := toolschema.Compile(ts.Spec.Tools); err != nil {
		why = append(why, "its tools do not compile: "+err.Error())
	}
	ns, b := w.boundaryOf(t, ts.Namespace)
	if b == nil {
		why = append(why, fmt.Sprintf("namespace %q is not covered by exactly one boundary", ts.Namespace))
		admFail(t, "Toolset", why, req)
		return
	}
	tenant := ts.Labels[custosv1alpha1.TenantLabel]
	if tenant == "" || tenant != ns.Labels[custosv1alpha1.TenantLabel] || tenant != b.Spec.Tenant {
		why = append(why, fmt.Sprintf("tenant label %q, namespace %s of tenant %q, covered by DataBoundary %q of tenant %q",
			tenant, ns.Name, ns.Labels[custosv1alpha1.TenantLabel], b.Name, b.Spec.Tenant))
	}
	if r := ts.Spec.Region; r != "" && !slices.Contains(b.Spec.Regions, r) {
		why = append(why, "region "+r)
	}
	endpointNS := w.endpointNS(ts)
	if ts.Spec.Endpoint.InCluster != nil {
		// The world's boundaries list no egress namespaces: the endpoint's
		// namespace must exist and be covered by the Toolset's boundary.
		if covered, err := boundary.Covers(b, endpointNS); endpointNS == nil || err != nil || !covered {
			why = append(why, fmt.Sprintf("in-cluster endpoint in namespace %q, outside DataBoundary %q", ts.Spec.Endpoint.InCluster.Namespace, b.Name))
		}
	}
	if ext := ts.Spec.Endpoint.External; ext != nil {
		for _, cidr := range ext.CIDRs {
			if b.Name != admTenant || !inside203(cidr) {
				why = append(why, fmt.Sprintf("external network %q outside DataBoundary %q", cidr, b.Name))
			}
		}
	}
	if errs := boundary.CheckToolset(b, ts, endpointNS); len(errs) > 0 {
		why = append(why, "boundary.CheckToolset refuses it: "+admErrs(errs))
	}
	admFail(t, "Toolset", why, req)
}

// checkNamespaceAdmitted: an admitted namespace carries the tenant of every
// boundary covering it, and keeps its tenant while Agents live in it.
func (w *admWorld) checkNamespaceAdmitted(t *testing.T, req admission.Request) {
	t.Helper()
	if req.Operation == admissionv1.Delete {
		return
	}
	ns := &corev1.Namespace{}
	admDecode(t, req.Object.Raw, ns)
	var why []string
	tenant := ns.Labels[custosv1alpha1.TenantLabel]
	if req.Operation == admissionv1.Update {
		if !ns.DeletionTimestamp.IsZero() {
			return
		}
		old := &corev1.Namespace{}
		admDecode(t, req.OldObject.Raw, old)
		var agents custosv1alpha1.AgentList
		if err := w.store.List(context.Background(), &agents, client.InNamespace(ns.Name)); err != nil {
			t.Fatal(err)
		}
		if was := old.Labels[custosv1alpha1.TenantLabel]; was != tenant && len(agents.Items) > 0 {
			why = append(why, fmt.Sprintf("the tenant label moved from %q to %q under %d Agents", was, tenant, len(agents.Items)))
		}
	}
	if ns.Labels[admTeamLabel] == "payments" && tenant != admOtherTenant {
		why = append(why, fmt.Sprintf("covered by DataBoundary %q but labelled %q", admOtherTenant, tenant))
	}
	admFail(t, "Namespace", why, req)
}

// checkBoundaryAdmitted: an admitted DataBoundary's checks have distinct
// names and non-empty object assertions, and compile.
func checkBoundaryAdmitted(t *testing.T, req admission.Request) {
	t.Helper()
	if req.Operation == admissionv1.Delete {
		return
	}
	b := &custosv1alpha1.DataBoundary{}
	admDecode(t, req.Object.Raw, b)
	if req.Operation == admissionv1.Update && !b.DeletionTimestamp.IsZero() {
		return
	}
	var why []string
	seen := map[string]bool{}
	for i, c := range b.Spec.Checks {
		if seen[c.Name] {
			why = append(why, fmt.Sprintf("checks[%d]: duplicate name %q", i, c.Name))
		}
		seen[c.Name] = true
		var tree map[string]any
		if err := json.Unmarshal(c.Assert.Raw, &tree); err != nil || len(tree) == 0 {
			why = append(why, fmt.Sprintf("checks[%d]: assertion %s is not a non-empty object", i, c.Assert.Raw))
		}
	}
	if _, errs := policy.Compile(b.Spec.Checks); len(errs) > 0 {
		why = append(why, "its checks do not compile: "+admErrs(errs))
	}
	admFail(t, "DataBoundary", why, req)
}

// admCase is one request with a known verdict. obj and old are API objects,
// or []byte sent as they are.
type admCase struct {
	name    string
	op      admissionv1.Operation
	obj     any
	old     any
	allowed bool
	// want is in the refusal's message, or in a warning when allowed.
	want string
	// code is the refusal's code, when it matters.
	code int32
}

func admBytes(tb testing.TB, v any) []byte {
	tb.Helper()
	switch v := v.(type) {
	case nil:
		return nil
	case []byte:
		return v
	}
	data, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func (c admCase) bytes(tb testing.TB) (obj, old []byte) {
	return admBytes(tb, c.obj), admBytes(tb, c.old)
}

func admAgentCases(tb testing.TB) []admCase {
	sample := admAgent(tb)
	tenant := func(t string) func(*custosv1alpha1.Agent) {
		return func(a *custosv1alpha1.Agent) { a.Labels = map[string]string{custosv1alpha1.TenantLabel: t} }
	}
	state := func(s custosv1alpha1.LifecycleState) func(*custosv1alpha1.Agent) {
		return func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = s }
	}
	return []admCase{{
		name: "the sample", op: admissionv1.Create, obj: sample, allowed: true,
	}, {
		name: "the sample, unchanged", op: admissionv1.Update, obj: sample, old: sample, allowed: true,
	}, {
		name: "a new image tag", op: admissionv1.Update, old: sample, allowed: true,
		obj: admAgent(tb, func(a *custosv1alpha1.Agent) { a.Spec.Image = "registry.acme.example/agents/invoice-reconciler:1.5.0" }),
	}, {
		name: "suspended", op: admissionv1.Update, old: sample, obj: admAgent(tb, state(custosv1alpha1.LifecycleSuspended)), allowed: true,
	}, {
		name: "deleted", op: admissionv1.Delete, obj: sample, allowed: true,
	}, {
		name: "a Toolset not created yet", op: admissionv1.Create, allowed: true, want: "does not exist yet",
		obj: admAgent(tb, func(a *custosv1alpha1.Agent) {
			a.Spec.ToolsetRefs = append(a.Spec.ToolsetRefs, custosv1alpha1.ToolsetReference{Name: "ledger-writer"})
		}),
	}, {
		name: "an agent of acme-payments", op: admissionv1.Create, obj: admAgent(tb, admPaymentsAgent), allowed: true,
	}, {
		name: "a GCP service account and an image by digest", op: admissionv1.Create, allowed: true,
		obj: admAgent(tb, func(a *custosv1alpha1.Agent) {
			a.Spec.Identity.GCP = &custosv1alpha1.GCPIdentity{ServiceAccount: "reconciler@acme-finance.iam.gserviceaccount.com"}
			a.Spec.Image = "registry.acme.example/agents/invoice-reconciler@sha256:" + strings.Repeat("0a", 32)
		}),
	}, {
		name: "labelled for the first time", op: admissionv1.Update, obj: sample, allowed: true,
		old: admAgent(tb, func(a *custosv1alpha1.Agent) { a.Labels = nil }),
	}, {
		name: "the tenant label of another tenant", op: admissionv1.Create, obj: admAgent(tb, tenant(admOtherTenant)),
		want: `"acme-payments" is not the tenant of namespace finance-agents`, code: http.StatusUnprocessableEntity,
	}, {
		name: "no tenant label", op: admissionv1.Create, obj: admAgent(tb, func(a *custosv1alpha1.Agent) { a.Labels = nil }),
		want: "every Agent belongs to a tenant",
	}, {
		name: "a role outside the boundary", op: admissionv1.Create,
		obj: admAgent(tb, func(a *custosv1alpha1.Agent) {
			a.Spec.Identity.AWS.RoleARN = "arn:aws:iam::111122223333:role/acme-payments-ledger"
		}),
		want: "spec.identity.aws.roleARN: Forbidden",
	}, {
		name: "a role of another account", op: admissionv1.Create,
		obj: admAgent(tb, func(a *custosv1alpha1.Agent) {
			a.Spec.Identity.AWS.RoleARN = "arn:aws:iam::444455556666:role/acme-finance-invoice-reconciler"
		}),
		want: "spec.identity.aws.roleARN: Forbidden",
	}, {
		name: "an Azure identity the boundary does not list", op: admissionv1.Create,
		obj: admAgent(tb, func(a *custosv1alpha1.Agent) {
			a.Spec.Identity.Azure = &custosv1alpha1.AzureIdentity{ClientID: "00000000-0000-0000-0000-000000000001", TenantID: "t"}
		}),
		want: "spec.identity.azure.clientID: Forbidden",
	}, {
		name: "an image climbing out of the registry path", op: admissionv1.Create,
		obj:  admAgent(tb, func(a *custosv1alpha1.Agent) { a.Spec.Image = "registry.acme.example/agents/../evil/x:1" }),
		want: "spec.image: Forbidden",
	}, {
		name: "an image from another registry", op: admissionv1.Create,
		obj:  admAgent(tb, func(a *custosv1alpha1.Agent) { a.Spec.Image = "docker.io/library/nginx:1.27" }),
		want: "spec.image: Forbidden",
	}, {
		name: "a Toolset of another tenant", op: admissionv1.Create,
		obj: admAgent(tb, func(a *custosv1alpha1.Agent) {
			a.Spec.ToolsetRefs = []custosv1alpha1.ToolsetReference{{Name: "payments-ledger", Namespace: admOtherNS}}
		}),
		want: `belongs to tenant "acme-payments", not "acme-finance"`,
	}, {
		name: "an owner the policy check refuses", op: admissionv1.Create,
		obj:  admAgent(tb, func(a *custosv1alpha1.Agent) { a.Spec.Owner.Team = "payments-platform" }),
		want: `check "owner-team" failed`,
	}, {
		name: "no purpose", op: admissionv1.Create,
		obj:  admAgent(tb, func(a *custosv1alpha1.Agent) { a.Spec.Purpose = "" }),
		want: "spec.purpose: Required",
	}, {
		name: "in a namespace of another tenant", op: admissionv1.Create,
		obj:  admAgent(tb, func(a *custosv1alpha1.Agent) { a.Namespace = admOtherNS }),
		want: `"acme-finance" is not the tenant of namespace payments-agents`,
	}, {
		name: "in a namespace that does not exist", op: admissionv1.Create,
		obj:  admAgent(tb, func(a *custosv1alpha1.Agent) { a.Namespace = "nowhere" }),
		want: "reading namespace nowhere", code: http.StatusInternalServerError,
	}, {
		name: "labelled as its namespace, not as the boundary covering it", op: admissionv1.Create,
		obj: admAgent(tb, admPaymentsAgent, tenant(admLegacyTenant), func(a *custosv1alpha1.Agent) {
			a.Namespace, a.Spec.ToolsetRefs = admLegacyNS, nil
		}),
		want: `"acme-legacy" is not the tenant of DataBoundary "acme-payments"`,
	}, {
		name: "moved to another tenant", op: admissionv1.Update, old: sample, obj: admAgent(tb, tenant(admOtherTenant)),
		want: "the tenant label is immutable",
	}, {
		name: "decommissioned, then active again", op: admissionv1.Update,
		old: admAgent(tb, state(custosv1alpha1.LifecycleDecommissioned)), obj: sample,
		want: "Decommissioned is final",
	}, {
		name: "malformed JSON", op: admissionv1.Create, obj: []byte(`{"metadata":`), code: http.StatusBadRequest,
	}, {
		name: "another kind", op: admissionv1.Create, obj: admToolset(tb), code: http.StatusBadRequest,
	}, {
		name: "an old object that does not decode", op: admissionv1.Update, obj: sample, old: []byte(`[]`), code: http.StatusBadRequest,
	}, {
		name: "no object", op: admissionv1.Create, want: "there is no content to decode", code: http.StatusBadRequest,
	}}
}

func admToolsetCases(tb testing.TB) []admCase {
	sample := admToolset(tb)
	return []admCase{{
		name: "the sample", op: admissionv1.Create, obj: sample, allowed: true,
	}, {
		name: "a new description", op: admissionv1.Update, old: sample, allowed: true,
		obj: admToolset(tb, func(ts *custosv1alpha1.Toolset) { ts.Spec.Description = "Ledger lookups." }),
	}, {
		name: "deleted", op: admissionv1.Delete, obj: sample, allowed: true,
	}, {
		name: "an external endpoint inside the egress rule", op: admissionv1.Create, allowed: true,
		obj: admToolset(tb, func(ts *custosv1alpha1.Toolset) {
			ts.Spec.Endpoint = custosv1alpha1.ToolEndpoint{External: &custosv1alpha1.ExternalEndpoint{
				Host: "ledger.acme.example", CIDRs: []string{"203.0.113.16/28"}, Port: 443}}
		}),
	}, {
		name: "an IPv4-mapped network inside the egress rule", op: admissionv1.Create, allowed: true,
		obj: admToolset(tb, func(ts *custosv1alpha1.Toolset) {
			ts.Spec.Endpoint = custosv1alpha1.ToolEndpoint{External: &custosv1alpha1.ExternalEndpoint{
				Host: "ledger.acme.example", CIDRs: []string{"::ffff:203.0.113.0/120"}}}
		}),
	}, {
		name: "a Toolset of acme-payments", op: admissionv1.Create, allowed: true,
		obj: admToolset(tb, func(ts *custosv1alpha1.Toolset) {
			ts.Name, ts.Namespace = "payments-tools", admOtherNS
			ts.Labels = map[string]string{custosv1alpha1.TenantLabel: admOtherTenant}
			ts.Spec.Endpoint.InCluster.Namespace = admOtherNS
			ts.Spec.Region = "us-east-1"
		}),
	}, {
		name: "the tenant label of another tenant", op: admissionv1.Create,
		obj: admToolset(tb, func(ts *custosv1alpha1.Toolset) {
			ts.Labels = map[string]string{custosv1alpha1.TenantLabel: admOtherTenant}
		}),
		want: `"acme-payments" is not the tenant of namespace finance-agents`,
	}, {
		name: "labelled as its namespace, not as the boundary covering it", op: admissionv1.Create,
		obj: admToolset(tb, func(ts *custosv1alpha1.Toolset) {
			ts.Namespace = admLegacyNS
			ts.Labels = map[string]string{custosv1alpha1.TenantLabel: admLegacyTenant}
			ts.Spec.Endpoint.InCluster.Namespace = admLegacyNS
			ts.Spec.Region = "us-east-1"
		}),
		want: `"acme-legacy" is not the tenant of DataBoundary "acme-payments"`,
	}, {
		name: "a region outside the boundary", op: admissionv1.Create,
		obj:  admToolset(tb, func(ts *custosv1alpha1.Toolset) { ts.Spec.Region = "us-east-1" }),
		want: "spec.region: Forbidden",
	}, {
		name: "an endpoint in another tenant's namespace", op: admissionv1.Create,
		obj:  admToolset(tb, func(ts *custosv1alpha1.Toolset) { ts.Spec.Endpoint.InCluster.Namespace = admOtherNS }),
		want: "spec.endpoint.inCluster.namespace: Forbidden",
	}, {
		name: "an external network outside the egress rule", op: admissionv1.Create,
		obj: admToolset(tb, func(ts *custosv1alpha1.Toolset) {
			ts.Spec.Endpoint = custosv1alpha1.ToolEndpoint{External: &custosv1alpha1.ExternalEndpoint{
				Host: "ledger.example", CIDRs: []string{"198.51.100.0/24"}}}
		}),
		want: "spec.endpoint.external.cidrs[0]: Forbidden",
	}, {
		name: "an external network wider than the egress rule", op: admissionv1.Create,
		obj: admToolset(tb, func(ts *custosv1alpha1.Toolset) {
			ts.Spec.Endpoint = custosv1alpha1.ToolEndpoint{External: &custosv1alpha1.ExternalEndpoint{
				Host: "ledger.acme.example", CIDRs: []string{"203.0.113.0/24", "::ffff:203.0.112.0/119"}}}
		}),
		want: "spec.endpoint.external.cidrs[1]: Forbidden",
	}, {
		name: "a schema that does not compile", op: admissionv1.Create,
		obj: admToolset(tb, func(ts *custosv1alpha1.Toolset) {
			ts.Spec.Tools[0].InputSchema = &runtime.RawExtension{Raw: []byte(`{"type": 12}`)}
		}),
		want: "spec.tools[0].inputSchema: Invalid value",
	}, {
		name: "moved to another tenant", op: admissionv1.Update, old: sample,
		obj: admToolset(tb, func(ts *custosv1alpha1.Toolset) {
			ts.Labels = map[string]string{custosv1alpha1.TenantLabel: admOtherTenant}
		}),
		want: "the tenant label is immutable",
	}, {
		name: "malformed JSON", op: admissionv1.Update, obj: []byte(`{"spec":{"tools":[{]}}`), old: sample, code: http.StatusBadRequest,
	}}
}

func admNamespaceCases(tb testing.TB) []admCase {
	sample := admNamespace(tb)
	labelled := func(name string, labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		}
	}
	return []admCase{{
		name: "the sample", op: admissionv1.Create, obj: sample, allowed: true,
	}, {
		name: "another label", op: admissionv1.Update, old: sample, allowed: true,
		obj: admNamespace(tb, func(ns *corev1.Namespace) { ns.Labels["cost-center"] = "4711" }),
	}, {
		name: "deleted", op: admissionv1.Delete, obj: sample, allowed: true,
	}, {
		name: "a new namespace of acme-payments", op: admissionv1.Create, allowed: true,
		obj: labelled("payments-batch", map[string]string{custosv1alpha1.TenantLabel: admOtherTenant, admTeamLabel: "payments"}),
	}, {
		name: "a namespace without Agents handed to another tenant", op: admissionv1.Update, allowed: true,
		old: labelled(admOtherNS, map[string]string{custosv1alpha1.TenantLabel: admOtherTenant, admTeamLabel: "payments"}),
		obj: labelled(admOtherNS, map[string]string{custosv1alpha1.TenantLabel: admTenant}),
	}, {
		name: "relabelled under its Agents", op: admissionv1.Update, old: sample,
		obj:  admNamespace(tb, func(ns *corev1.Namespace) { ns.Labels[custosv1alpha1.TenantLabel] = admOtherTenant }),
		want: "the tenant label cannot change while Agents live in the namespace",
	}, {
		name: "unlabelled under its Agents", op: admissionv1.Update, old: sample,
		obj:  admNamespace(tb, func(ns *corev1.Namespace) { ns.Labels = nil }),
		want: "the tenant label cannot change while Agents live in the namespace",
	}, {
		name: "covered by a boundary of another tenant", op: admissionv1.Create,
		obj:  labelled("payments-batch", map[string]string{custosv1alpha1.TenantLabel: admTenant, admTeamLabel: "payments"}),
		want: `covered by DataBoundary "acme-payments", so it must carry custos.dev/tenant=acme-payments`,
	}, {
		name: "malformed JSON", op: admissionv1.Create, obj: []byte(`{"metadata":{"labels":{"custos.dev/tenant":1}}}`), code: http.StatusBadRequest,
	}}
}

func admBoundaryCases(tb testing.TB) []admCase {
	sample := admBoundary(tb)
	withCheck := func(name, assert string) func(*custosv1alpha1.DataBoundary) {
		return func(b *custosv1alpha1.DataBoundary) {
			b.Spec.Checks = append(b.Spec.Checks, custosv1alpha1.PolicyCheck{Name: name, Assert: runtime.RawExtension{Raw: []byte(assert)}})
		}
	}
	return []admCase{{
		name: "the sample", op: admissionv1.Create, obj: sample, allowed: true,
	}, {
		name: "the sample with checks", op: admissionv1.Create, obj: admBoundary(tb, withChecks), allowed: true,
	}, {
		name: "checks added", op: admissionv1.Update, old: sample, obj: admBoundary(tb, withChecks), allowed: true,
	}, {
		name: "deleted", op: admissionv1.Delete, obj: sample, allowed: true,
	}, {
		name: "an assertion that is a list", op: admissionv1.Create,
		obj:  admBoundary(tb, withCheck("owner", `[{"agent": {}}]`)),
		want: `spec.checks[0].assert: Invalid value: check "owner": must be an object`,
	}, {
		name: "an empty assertion", op: admissionv1.Create,
		obj:  admBoundary(tb, withCheck("owner", `{}`)),
		want: "must not be empty",
	}, {
		name: "a JMESPath syntax error", op: admissionv1.Create,
		obj:  admBoundary(tb, withCheck("admins", `{"(contains(request.groups, 'platform-admins')": true}`)),
		want: "invalid JMESPath expression",
	}, {
		name: "a duplicate name", op: admissionv1.Update, old: sample,
		obj:  admBoundary(tb, withChecks, withCheck("owner-team", `{"agent": {}}`)),
		want: `spec.checks[2].name: Duplicate value: "owner-team"`,
	}, {
		name: "malformed JSON", op: admissionv1.Create, obj: []byte(`{"spec":{"checks":[{"assert":}]}}`), code: http.StatusBadRequest,
	}}
}

// admTarget is one handler with its seeds and what its admissions must
// satisfy.
type admTarget struct {
	kind     admKind
	handler  func(*admWorld) *admission.Webhook
	cases    func(testing.TB) []admCase
	admitted func(w *admWorld, t *testing.T, req admission.Request, resp admission.Response)
}

var (
	admAgentTarget = admTarget{
		kind: admAgentKind, cases: admAgentCases,
		handler: func(w *admWorld) *admission.Webhook { return w.agent },
		admitted: func(w *admWorld, t *testing.T, req admission.Request, resp admission.Response) {
			w.checkAgentAdmitted(t, req, resp)
		},
	}
	admToolsetTarget = admTarget{
		kind: admToolsetKind, cases: admToolsetCases,
		handler: func(w *admWorld) *admission.Webhook { return w.toolset },
		admitted: func(w *admWorld, t *testing.T, req admission.Request, _ admission.Response) {
			w.checkToolsetAdmitted(t, req)
		},
	}
	admNamespaceTarget = admTarget{
		kind: admNamespaceKind, cases: admNamespaceCases,
		handler: func(w *admWorld) *admission.Webhook { return w.namespace },
		admitted: func(w *admWorld, t *testing.T, req admission.Request, _ admission.Response) {
			w.checkNamespaceAdmitted(t, req)
		},
	}
	admBoundaryTarget = admTarget{
		kind: admBoundaryKind, cases: admBoundaryCases,
		handler: func(w *admWorld) *admission.Webhook { return w.boundary },
		admitted: func(_ *admWorld, t *testing.T, req admission.Request, _ admission.Response) {
			checkBoundaryAdmitted(t, req)
		},
	}
)

// admMinimizeTime is how long the fuzzer minimizes an input unless
// -fuzzminimizetime says otherwise.
const admMinimizeTime = "2s"

// admShortMinimization shortens minimization when -fuzzminimizetime is not
// given. Go minimizes every input that finds new coverage, not only
// crashers, for up to a minute by default, and stops fuzzing meanwhile: with
// objects of a kilobyte that takes the whole of a 30 s run
// (FuzzAgentAdmission ran 27 inputs in 30 s). The flag is read when f.Fuzz
// starts the workers, so setting it here takes effect.
func admShortMinimization(f *testing.F) {
	const name = "test.fuzzminimizetime"
	given := false
	flag.Visit(func(fl *flag.Flag) { given = given || fl.Name == name })
	if fuzz := flag.Lookup("test.fuzz"); given || fuzz == nil || fuzz.Value.String() == "" || flag.Lookup(name) == nil {
		return
	}
	if err := flag.Set(name, admMinimizeTime); err != nil {
		f.Fatal(err)
	}
}

// fuzz seeds f with the target's cases and fuzzes the operation, the
// object and the old object.
func (at admTarget) fuzz(f *testing.F) {
	for _, c := range at.cases(f) {
		obj, old := c.bytes(f)
		f.Add(admOpIndex(c.op), obj, old)
	}
	admShortMinimization(f)
	w := newAdmWorld(f)
	wh := at.handler(w)
	f.Fuzz(func(t *testing.T, op uint8, obj, old []byte) {
		req := admRequest(at.kind, admOp(op), obj, old)
		resp := admHandle(t, wh, req)
		if resp.Allowed {
			at.admitted(w, t, req, resp)
		}
	})
}

func FuzzAgentAdmission(f *testing.F)        { admAgentTarget.fuzz(f) }
func FuzzToolsetAdmission(f *testing.F)      { admToolsetTarget.fuzz(f) }
func FuzzNamespaceAdmission(f *testing.F)    { admNamespaceTarget.fuzz(f) }
func FuzzDataBoundaryAdmission(f *testing.F) { admBoundaryTarget.fuzz(f) }

// TestAdmissionHandlersSeeds checks the fuzz seeds' verdicts without
// -fuzz: the samples are admitted, the obvious violations refused.
func TestAdmissionHandlersSeeds(t *testing.T) {
	w := newAdmWorld(t)
	for name, at := range map[string]admTarget{
		"Agent": admAgentTarget, "Toolset": admToolsetTarget,
		"Namespace": admNamespaceTarget, "DataBoundary": admBoundaryTarget,
	} {
		for _, c := range at.cases(t) {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				obj, old := c.bytes(t)
				req := admRequest(at.kind, c.op, obj, old)
				resp := admHandle(t, at.handler(w), req)
				if resp.Allowed != c.allowed {
					t.Fatalf("allowed = %t, want %t: %s", resp.Allowed, c.allowed, resp.Result.Message)
				}
				if resp.Allowed {
					at.admitted(w, t, req, resp)
					if c.want != "" && !slices.ContainsFunc(resp.Warnings, func(s string) bool { return strings.Contains(s, c.want) }) {
						t.Errorf("warnings %q, want one containing %q", resp.Warnings, c.want)
					}
					return
				}
				if !strings.Contains(resp.Result.Message, c.want) {
					t.Errorf("message %q, want it to contain %q", resp.Result.Message, c.want)
				}
				if c.code != 0 && resp.Result.Code != c.code {
					t.Errorf("code %d, want %d: %s", resp.Result.Code, c.code, resp.Result.Message)
				}
			})
		}
	}
}

// TestAdmissionServedOverHTTP sends the samples as the API server does, an
// AdmissionReview over HTTP, and reads the verdict back.
func TestAdmissionServedOverHTTP(t *testing.T) {
	w := newAdmWorld(t)
	for _, tc := range []struct {
		kind    admKind
		handler *admission.Webhook
		obj     client.Object
	}{
		{admAgentKind, w.agent, admAgent(t)},
		{admToolsetKind, w.toolset, admToolset(t)},
		{admNamespaceKind, w.namespace, admNamespace(t)},
		{admBoundaryKind, w.boundary, admBoundary(t, withChecks)},
	} {
		req := admRequest(tc.kind, admissionv1.Create, admBytes(t, tc.obj), nil)
		body, err := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
			Request:  &req.AdmissionRequest,
		})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		httpReq := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
		httpReq.Header.Set("Content-Type", "application/json")
		tc.handler.ServeHTTP(rec, httpReq)
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &review); err != nil || review.Response == nil {
			t.Fatalf("%s: status %d, body %s: %v", tc.kind.gvk.Kind, rec.Code, rec.Body, err)
		}
		if !review.Response.Allowed || review.Response.UID != req.UID {
			t.Errorf("%s: the sample was not admitted: %+v", tc.kind.gvk.Kind, review.Response)
		}
	}
}

// TestAgentAdmissionReadsAroundTheCache: objects applied together reach the
// webhook before the cache knows them; the API server's answer is used.
func TestAgentAdmissionReadsAroundTheCache(t *testing.T) {
	live := fake.NewClientBuilder().WithScheme(admScheme).WithObjects(admObjects(t)...).Build()
	empty := fake.NewClientBuilder().WithScheme(admScheme).Build()
	h := newAdmHandlers(empty, live)
	obj := admBytes(t, admAgent(t))
	for _, tc := range []struct {
		wh   *admission.Webhook
		kind admKind
		obj  []byte
	}{
		{h.agent, admAgentKind, obj},
		{h.toolset, admToolsetKind, admBytes(t, admToolset(t))},
	} {
		resp := admHandle(t, tc.wh, admRequest(tc.kind, admissionv1.Create, tc.obj, nil))
		if !resp.Allowed || len(resp.Warnings) > 0 {
			t.Errorf("%s: allowed = %t, warnings %q: %s", tc.kind.gvk.Kind, resp.Allowed, resp.Warnings, resp.Result.Message)
		}
	}
}
