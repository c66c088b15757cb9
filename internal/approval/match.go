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

// Package approval decides which tool calls wait for people, binds a held
// call to its ApprovalRequest, says who may decide it, and counts their
// decisions. custos-gateway holds and consumes; the manager's admission
// webhook and ApprovalRequest reconciler judge and count.
package approval

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// Call is what a policy's match sees of one tool call.
type Call struct {
	Tool         string
	Access       custosv1alpha1.ToolAccess
	Irreversible bool
	Toolset      custosv1alpha1.ToolsetReference
	// Arguments as checked, bound ones included.
	Arguments map[string]any
	Person    string
	Groups    []string
	Agent     *custosv1alpha1.Agent
}

// Requirement is what the matched policies ask of a call, the strictest
// of each.
type Requirement struct {
	Policies           []string
	Quorum             int32
	SeparationOfDuties custosv1alpha1.SeparationOfDuties
	Timeout            time.Duration
	// Errors are the policies whose expression failed on the call: they
	// match (an approval is asked rather than skipped).
	Errors []string
}

// DefaultTimeout is a policy's timeout when it has none.
const DefaultTimeout = 15 * time.Minute

// Matcher evaluates policies' matches, keeping each expression compiled
// per policy generation.
type Matcher struct {
	mu       sync.Mutex
	programs map[string]compiled
}

type compiled struct {
	generation int64
	prg        cel.Program
}

// Require says what approval call needs under policies (those of the
// agent's namespace): nil when none matches.
func (m *Matcher) Require(policies []custosv1alpha1.ApprovalPolicy, call Call) *Requirement {
	var req *Requirement
	for i := range policies {
		p := &policies[i]
		if !Selects(p, call.Agent) {
			continue
		}
		matched, err := m.matches(p, call)
		if err != nil {
			if req == nil {
				req = &Requirement{}
			}
			req.Errors = append(req.Errors, fmt.Sprintf("%s: %v", p.Name, err))
			matched = true
		}
		if !matched {
			continue
		}
		if req == nil {
			req = &Requirement{}
		}
		req.add(p)
	}
	if req != nil {
		slices.Sort(req.Policies)
	}
	return req
}

// Selects says whether p governs agent: its agentSelector matches the
// agent's labels (every agent when it has none).
func Selects(p *custosv1alpha1.ApprovalPolicy, agent *custosv1alpha1.Agent) bool {
	if p.Spec.AgentSelector == nil || agent == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(p.Spec.AgentSelector)
	if err != nil {
		// A selector that cannot be read selects everything: a policy
		// never fails open.
		return true
	}
	return sel.Matches(labels.Set(agent.Labels))
}

// add folds p into r: the largest quorum, the shortest timeout, every
// exclusion any policy asks for.
func (r *Requirement) add(p *custosv1alpha1.ApprovalPolicy) {
	r.Policies = append(r.Policies, p.Name)
	q := p.Spec.Quorum
	if q < 1 {
		q = 1
	}
	r.Quorum = max(r.Quorum, q)
	t := DefaultTimeout
	if p.Spec.Timeout != nil {
		t = p.Spec.Timeout.Duration
	}
	if t <= 0 {
		t = DefaultTimeout
	}
	if r.Timeout == 0 || t < r.Timeout {
		r.Timeout = t
	}
	sod := &r.SeparationOfDuties
	sod.ExcludePerson = strictest(sod.ExcludePerson, p.Spec.SeparationOfDuties.Person(), len(r.Policies) == 1)
	sod.ExcludeOwners = strictest(sod.ExcludeOwners, p.Spec.SeparationOfDuties.Owners(), len(r.Policies) == 1)
	sod.ExcludeServiceAccounts = strictest(sod.ExcludeServiceAccounts, p.Spec.SeparationOfDuties.ServiceAccounts(), len(r.Policies) == 1)
}

func strictest(cur *bool, next, first bool) *bool {
	v := next
	if !first && cur != nil {
		v = *cur || next
	}
	return &v
}

func (m *Matcher) matches(p *custosv1alpha1.ApprovalPolicy, call Call) (bool, error) {
	match := p.Spec.Match
	if match.MatchesIrreversible() && call.Irreversible {
		return true, nil
	}
	if match.Write && call.Access == custosv1alpha1.ToolAccessWrite {
		return true, nil
	}
	if match.Expression == "" {
		return false, nil
	}
	prg, err := m.program(p)
	if err != nil {
		return false, err
	}
	out, _, err := prg.Eval(activation(call))
	if err != nil {
		return false, fmt.Errorf("spec.match.expression: %w", err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("spec.match.expression returned %v, not a bool", out.Type())
	}
	return b, nil
}

func (m *Matcher) program(p *custosv1alpha1.ApprovalPolicy) (cel.Program, error) {
	key := string(p.UID)
	if key == "" {
		key = p.Namespace + "/" + p.Name
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.programs[key]; ok && c.generation == p.Generation {
		return c.prg, nil
	}
	prg, err := Compile(p.Spec.Match.Expression)
	if err != nil {
		return nil, err
	}
	if m.programs == nil {
		m.programs = map[string]compiled{}
	}
	m.programs[key] = compiled{generation: p.Generation, prg: prg}
	return prg, nil
}

// costLimit bounds one evaluation (CEL's cost units; a comparison is 1).
const costLimit = 100000

var env = func() *cel.Env {
	e, err := cel.NewEnv(
		cel.Variable("tool", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("toolset", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("arguments", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("person", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("agent", cel.MapType(cel.StringType, cel.DynType)),
		cel.CrossTypeNumericComparisons(true),
	)
	if err != nil {
		panic(err)
	}
	return e
}()

// Compile checks a match expression (admission calls it, so that a
// policy that cannot run is refused naming spec.match.expression).
func Compile(expr string) (cel.Program, error) {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, fmt.Errorf("the expression returns %v, not a bool", t)
	}
	return env.Program(ast, cel.CostLimit(costLimit), cel.InterruptCheckFrequency(100))
}

func activation(call Call) map[string]any {
	args := call.Arguments
	if args == nil {
		args = map[string]any{}
	}
	groups := call.Groups
	if groups == nil {
		groups = []string{}
	}
	agent := map[string]any{"name": "", "namespace": "", "labels": map[string]string{}}
	if call.Agent != nil {
		l := call.Agent.Labels
		if l == nil {
			l = map[string]string{}
		}
		agent = map[string]any{"name": call.Agent.Name, "namespace": call.Agent.Namespace, "labels": l}
	}
	return map[string]any{
		"tool":      map[string]any{"name": call.Tool, "access": string(call.Access), "irreversible": call.Irreversible},
		"toolset":   map[string]string{"name": call.Toolset.Name, "namespace": call.Toolset.Namespace},
		"arguments": args,
		"person":    map[string]any{"subject": call.Person, "groups": groups},
		"agent":     agent,
	}
}
