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
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// TestDataBoundaryCallChecks: a DataBoundary's callChecks are compiled when
// it is written, as its checks are: one that does not compile is refused,
// on create and on update, naming spec.callChecks[i] and the check; valid
// ones are admitted.
func TestDataBoundaryCallChecks(t *testing.T) {
	h := newAdmHandlers(nil, nil)
	callCheck := func(name, assert string) custosv1alpha1.PolicyCheck {
		return custosv1alpha1.PolicyCheck{Name: name, Assert: runtime.RawExtension{Raw: []byte(assert)}}
	}
	amountCap := callCheck("amount-cap", "{\"arguments\": {\"(amount > `1000`)\": false}}")
	withCallChecks := func(checks ...custosv1alpha1.PolicyCheck) func(*custosv1alpha1.DataBoundary) {
		return func(b *custosv1alpha1.DataBoundary) { b.Spec.CallChecks = checks }
	}
	valid := admBoundary(t, withChecks, withCallChecks(amountCap,
		callCheck("office-hours", `{"time": {"(hour >= `+"`8`"+` && hour < `+"`18`"+`)": true}}`)))

	for _, tc := range []struct {
		name    string
		op      admissionv1.Operation
		obj     *custosv1alpha1.DataBoundary
		allowed bool
		says    []string
	}{
		{name: "valid callChecks", op: admissionv1.Create, obj: valid, allowed: true},
		{name: "a callCheck that reads the clock", op: admissionv1.Create,
			obj:  admBoundary(t, withCallChecks(amountCap, callCheck("late", `{"(time_now_utc())": "x"}`))),
			says: []string{`spec.callChecks[1].assert`, `check "late"`, "function time_now_utc is not available to checks"}},
		{name: "a callCheck that is not JMESPath, on update", op: admissionv1.Update,
			obj:  admBoundary(t, withCallChecks(callCheck("broken", `{"arguments": {"(amount >": 1}}`))),
			says: []string{`spec.callChecks[0].assert`, `check "broken"`}},
		{name: "a PII pattern that is not RE2, and one that matches nothing at all", op: admissionv1.Create,
			obj: admBoundary(t, func(b *custosv1alpha1.DataBoundary) {
				b.Spec.PII = &custosv1alpha1.PIIPolicy{Patterns: []custosv1alpha1.PIIPattern{
					{Name: "ok", Regex: `EMP-\d{6}`}, {Name: "lookahead", Regex: `(?=x)\d+`}, {Name: "empty", Regex: `x?`}}}
			}),
			says: []string{`spec.pii.patterns[1].regex`, "not an RE2 regular expression", `spec.pii.patterns[2].regex`, "matches the empty string"}},
		{name: "an empty callCheck", op: admissionv1.Create,
			obj:  admBoundary(t, withCallChecks(callCheck("empty", `{}`))),
			says: []string{`spec.callChecks[0].assert`, "must not be empty"}},
		{name: "two callChecks of one name", op: admissionv1.Create,
			obj:  admBoundary(t, withCallChecks(amountCap, amountCap)),
			says: []string{`spec.callChecks[1].name`, "Duplicate value"}},
		{name: "a broken check and a broken callCheck: both named", op: admissionv1.Create,
			obj: admBoundary(t, func(b *custosv1alpha1.DataBoundary) {
				b.Spec.Checks = []custosv1alpha1.PolicyCheck{callCheck("broken", `[]`)}
			}, withCallChecks(callCheck("broken", `[]`))),
			says: []string{`spec.checks[0].assert`, `spec.callChecks[0].assert`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := admBytes(t, tc.obj)
			var old []byte
			if tc.op == admissionv1.Update {
				old = admBytes(t, valid)
			}
			resp := h.boundary.Handle(context.Background(), admRequest(admBoundaryKind, tc.op, obj, old))
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed %v, want %v: %+v", resp.Allowed, tc.allowed, resp.Result)
			}
			if tc.allowed {
				return
			}
			for _, want := range tc.says {
				if !strings.Contains(resp.Result.Message, want) {
					t.Errorf("refused with %q, want it to say %q", resp.Result.Message, want)
				}
			}
		})
	}
}
