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
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// FuzzCompileEvaluate feeds arbitrary JSON as an assertion tree and as a
// payload. Whatever the input, Compile and Evaluate must not panic (the
// engine's panics are recovered, so a recovered one fails the test too),
// and a compiled check must yield at most one Forbidden error that names it.
func FuzzCompileEvaluate(f *testing.F) {
	for _, c := range []custosv1alpha1.PolicyCheck{ownerTeam, adminsOnly, officeHours, noWeekends, classified, knownClassification, ownOrSharedToolsets, tenantNamespace, noPIITag} {
		p, err := newRequest().payload(newBoundary(c))
		if err != nil {
			f.Fatal(err)
		}
		payload, err := json.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c.Assert.Raw, payload)
	}
	f.Add([]byte(`{"~.agent": {"~i.spec->s": ["($s)", 1.5, null, {}]}}`), []byte(`{"agent": {"spec": [1, "x", {"a": []}]}}`))
	f.Add([]byte(`{"(sort_by(agent, &@))": [], "\\(x)\\": "(@)"}`), []byte(`{"agent": {"a": null}, "time": {"hour": 25}}`))
	f.Add([]byte(`{"a": "(x)"}`), []byte(`{}`))

	f.Fuzz(func(t *testing.T, tree, payload []byte) {
		set, errs := Compile([]custosv1alpha1.PolicyCheck{{Name: "fuzz", Assert: runtime.RawExtension{Raw: tree}}})
		if len(errs) > 0 {
			if set != nil {
				t.Fatalf("Compile returned a set and errors %v", errs)
			}
			return
		}
		var p Payload
		if err := json.Unmarshal(payload, &p); err != nil {
			return
		}
		got := set.Evaluate(context.Background(), p, "fuzz", field.NewPath("spec"))
		if len(got) > 1 {
			t.Fatalf("one check, %d errors: %v", len(got), got)
		}
		for _, e := range got {
			if e.Type != field.ErrorTypeForbidden || e.Field != "spec" {
				t.Fatalf("not a Forbidden error at spec: %v", e)
			}
			if !strings.HasPrefix(e.Detail, `DataBoundary "fuzz" check "fuzz" failed`) {
				t.Fatalf("the denial does not name the check: %v", e)
			}
			if strings.Contains(e.Detail, "evaluation panicked") {
				t.Fatalf("the engine panicked on tree %s, payload %s: %v", tree, payload, e)
			}
		}
	})
}
