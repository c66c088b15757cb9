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
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jmespath-community/go-jmespath/pkg/binding"
	"github.com/kyverno/kyverno-json/pkg/engine/assert"
	"github.com/kyverno/kyverno-json/pkg/engine/template"
	"k8s.io/apimachinery/pkg/util/validation/field"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

const (
	// maxFailuresShown bounds the failures one denial lists: a ~. check over
	// a long list could otherwise produce a denial longer than the request.
	maxFailuresShown = 10
	// maxFailureLen bounds one failure, which quotes the value it saw.
	maxFailureLen = 512
)

// Set is a DataBoundary's checks, compiled. It is immutable and safe for
// concurrent use, so the webhook and custos-gateway may cache it per
// DataBoundary generation.
type Set struct {
	checks []compiledCheck
}

type compiledCheck struct {
	name      string
	message   string
	assertion assert.Assertion
}

// Len is the number of checks in the set.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.checks)
}

// Compile compiles a DataBoundary's admission checks, spec.checks: CompileAt
// at that path.
func Compile(checks []custosv1alpha1.PolicyCheck) (*Set, field.ErrorList) {
	return CompileAt(field.NewPath("spec", "checks"), checks)
}

// CompileAt parses every check's assertion tree once. (The engine of this
// kyverno-json version keeps no compiled form of the JMESPath expressions in
// a tree: it parses them again on every evaluation. Compile parses them here
// only to refuse broken ones early.) An assertion tree must
// be a non-empty JSON object, and every JMESPath expression in it must parse
// and call only functions checks may use: a check that could never pass
// would deny every request of the tenant, so it is refused when the
// DataBoundary is written. Errors name the check, at path (spec.checks or
// spec.callChecks); the set is nil when there are any.
func CompileAt(path *field.Path, checks []custosv1alpha1.PolicyCheck) (*Set, field.ErrorList) {
	var errs field.ErrorList
	set := &Set{checks: make([]compiledCheck, 0, len(checks))}
	seen := make(map[string]bool, len(checks))
	for i, c := range checks {
		at := path.Index(i)
		if seen[c.Name] {
			errs = append(errs, field.Duplicate(at.Child("name"), c.Name))
		}
		seen[c.Name] = true

		tree, err := decodeTree(c)
		if err != nil {
			errs = append(errs, field.Invalid(at.Child("assert"), field.OmitValueType{}, fmt.Sprintf("check %q: %v", c.Name, err)))
			continue
		}
		if problems := validateTree(tree, nil); len(problems) > 0 {
			errs = append(errs, field.Invalid(at.Child("assert"), field.OmitValueType{}, fmt.Sprintf("check %q: %s", c.Name, strings.Join(problems, "; "))))
			continue
		}
		set.checks = append(set.checks, compiledCheck{
			name:      c.Name,
			message:   c.Message,
			assertion: assert.Parse(context.Background(), tree),
		})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return set, nil
}

// decodeTree decodes a check's assertion tree as JSON, as the API server
// stores it, so that its numbers are float64 like the payload's.
func decodeTree(c custosv1alpha1.PolicyCheck) (map[string]any, error) {
	raw := c.Assert.Raw
	if len(raw) == 0 && c.Assert.Object != nil {
		var err error
		if raw, err = json.Marshal(c.Assert.Object); err != nil {
			return nil, fmt.Errorf("cannot encode the assertion tree: %w", err)
		}
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		return nil, fmt.Errorf("not a JSON assertion tree: %w", err)
	}
	m, ok := tree.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("must be an object, such as {agent: {spec: {owner: {team: finance-platform}}}}")
	}
	if len(m) == 0 {
		// An empty tree asserts only that the payload exists: it always
		// passes, which is never what its author meant.
		return nil, fmt.Errorf("must not be empty: an empty assertion always passes")
	}
	return m, nil
}

// Evaluate runs every check against an admission payload and returns one
// field.Forbidden at `at` per failed check, in check order: the Failures of
// Check, as admission reports them.
func (s *Set) Evaluate(ctx context.Context, p Payload, boundaryName string, at *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, f := range s.Check(ctx, p, boundaryName) {
		errs = append(errs, field.Forbidden(at, f.Message))
	}
	return errs
}

// Input is what checks run against: an admission Payload or a CallPayload.
type Input interface {
	value() map[string]any
}

// Failure is a check that failed: its name, and the denial that says so,
// DataBoundary "<b>" check "<name>" failed: <message>: <failures>.
type Failure struct {
	Check   string
	Message string
}

// Check runs every check against in and returns the failed ones, in check
// order. A check that cannot be evaluated (an expression that errors on this
// payload, a cancelled context) counts as failed, with its error in the
// message: whoever asks fails closed.
func (s *Set) Check(ctx context.Context, in Input, boundaryName string) []Failure {
	if s.Len() == 0 {
		return nil
	}
	value := in.value()
	// $payload lets an expression deep in the tree reach the rest of the
	// payload, as kyverno-json binds it for its own policies.
	bindings := binding.NewBindings().Register("$payload", binding.NewBinding(value))

	var out []Failure
	for _, c := range s.checks {
		failures, err := c.run(ctx, value, bindings)
		if err == nil && len(failures) == 0 {
			continue
		}
		out = append(out, Failure{Check: c.name, Message: c.denial(boundaryName, failures, err)})
	}
	return out
}

// run evaluates one check. The engine walks the tree's maps in Go's random
// order, so failures are sorted to keep denials stable from one request to
// the next.
func (c compiledCheck) run(ctx context.Context, value any, bindings binding.Bindings) (failures []string, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// A panic in the engine on some payload must deny this request, not
	// take the webhook down and not admit it.
	defer func() {
		if r := recover(); r != nil {
			failures, err = nil, fmt.Errorf("evaluation panicked: %v", r)
		}
	}()
	fieldErrs, err := assert.Assert(ctx, nil, c.assertion, value, bindings, template.WithFunctionCaller(functionCaller))
	if err != nil {
		return nil, err
	}
	for _, e := range fieldErrs {
		failures = append(failures, e.Error())
	}
	slices.Sort(failures)
	return failures, nil
}

// denial is the message of a failed check:
// DataBoundary "<b>" check "<name>" failed: <message>: <failures>.
func (c compiledCheck) denial(boundaryName string, failures []string, err error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "DataBoundary %q check %q failed", boundaryName, c.name)
	if c.message != "" {
		fmt.Fprintf(&b, ": %s", c.message)
	}
	if err != nil {
		fmt.Fprintf(&b, ": cannot be evaluated: %s", truncate(err.Error()))
		return b.String()
	}
	for i, f := range failures {
		if i == maxFailuresShown {
			fmt.Fprintf(&b, "; and %d more", len(failures)-i)
			break
		}
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		b.WriteString(sep)
		b.WriteString(truncate(f))
	}
	return b.String()
}

func truncate(s string) string {
	if len(s) <= maxFailureLen {
		return s
	}
	// Cut on a rune boundary so the message stays valid UTF-8.
	cut := maxFailureLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
