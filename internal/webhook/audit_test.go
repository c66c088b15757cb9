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
	"context"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/custos-dev/custos/internal/audit"
)

// recording keeps the events it is given.
type recording struct{ events []audit.Event }

func (r *recording) Record(_ context.Context, e audit.Event) { r.events = append(r.events, e) }

func TestAuditedRecordsDenialsOnly(t *testing.T) {
	g := NewWithT(t)
	deny := admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		causes := field.ErrorList{}
		for i := range 10 {
			causes = append(causes, field.Forbidden(field.NewPath("spec", "regions").Index(i), "outside residency"))
		}
		// As admission.WithValidator answers an API status error.
		st := apierrors.NewInvalid(agentKind, "rogue", causes).Status()
		return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &st}}
	})
	allow := admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Allowed("")
	})
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "req-1",
		Kind:      metav1.GroupVersionKind{Group: "custos.dev", Version: "v1alpha1", Kind: "Agent"},
		Resource:  metav1.GroupVersionResource{Group: "custos.dev", Version: "v1alpha1", Resource: "agents"},
		Namespace: "finance",
		Operation: admissionv1.Create,
		UserInfo:  authenticationv1.UserInfo{Username: "alice@acme.example", UID: "u-1", Groups: []string{"owners"}},
		Object: runtime.RawExtension{Raw: []byte(`{"metadata":{"name":"rogue","uid":"a-1",` +
			`"labels":{"custos.dev/tenant":"acme"}}}`)},
	}}

	rec := &recording{}
	g.Expect(audited(allow, rec).Handle(context.Background(), req).Allowed).To(BeTrue())
	g.Expect(rec.events).To(BeEmpty(), "allowed requests are not denials")

	resp := audited(deny, rec).Handle(context.Background(), req)
	g.Expect(resp.Allowed).To(BeFalse(), "the answer is passed through unchanged")
	g.Expect(rec.events).To(HaveLen(1))
	e := rec.events[0]
	g.Expect(e.Action).To(Equal(audit.ActionAdmissionDenied))
	g.Expect(e.Decision).To(Equal(audit.DecisionDeny))
	g.Expect(e.Actor).To(Equal(audit.Actor{Kind: audit.ActorUser, Name: "alice@acme.example", UID: "u-1", Groups: []string{"owners"}}))
	g.Expect(e.Subject).To(Equal(audit.Subject{Kind: "Agent", Namespace: "finance", Name: "rogue", UID: "a-1", Tenant: "acme"}))
	g.Expect(e.TraceID).To(Equal("req-1"))
	g.Expect(e.Policy).To(Equal("spec.regions[0]: FieldValueForbidden"))
	g.Expect(e.Reason).To(ContainSubstring("outside residency"))
	g.Expect(e.Details).To(HaveKeyWithValue("operation", "CREATE"))
	g.Expect(e.Details).To(HaveKeyWithValue("causes", "10"), "how many causes there were")
	g.Expect(e.Details).To(HaveKeyWithValue(fmt.Sprintf("cause.%d", maxAuditCauses-1), fmt.Sprintf("spec.regions[%d]: FieldValueForbidden", maxAuditCauses-1)))
	g.Expect(e.Details).NotTo(HaveKey(fmt.Sprintf("cause.%d", maxAuditCauses)), "only the first causes are listed")
	g.Expect(testutil.ToFloat64(deniesTotal.WithLabelValues("Agent", "spec.regions: FieldValueForbidden"))).To(Equal(1.0))
}

func TestRuleLabel(t *testing.T) {
	for rule, want := range map[string]string{
		"spec.regions[3]: FieldValueForbidden":                          "spec.regions: FieldValueForbidden",
		"metadata.labels[custos.dev/tenant]: FieldValueRequired":        "metadata.labels: FieldValueRequired",
		"spec.containers[0].securityContext[x[1]]: FieldValueForbidden": "spec.containers.securityContext: FieldValueForbidden",
		"": "unknown",
	} {
		if got := ruleLabel(rule); got != want {
			t.Errorf("ruleLabel(%q) = %q, want %q", rule, got, want)
		}
	}
}

func TestActorKind(t *testing.T) {
	for user, want := range map[string]string{
		"alice@acme.example": audit.ActorUser,
		"system:serviceaccount:kube-system:replicaset-controller": audit.ActorController,
		"system:serviceaccount:finance:agent-reconciler":          audit.ActorAgent,
	} {
		if got := actorKind(user); got != want {
			t.Errorf("actorKind(%q) = %q, want %q", user, got, want)
		}
	}
}
