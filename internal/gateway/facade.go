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

// Package gateway is custos-gateway's view of what an agent may call: the
// facade of its Toolsets' tools (docs/sts.md and issue 18), named
// <toolset>.<tool>, with the Toolset's pinned descriptions and schemas,
// cut to the scope of the caller's token; and the checks a call passes on
// the way in. The MCP server that serves it is built on this.
package gateway

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/internal/toolschema"
)

// ToolName is how an agent calls tool of Toolset toolset: <toolset>.<tool>.
func ToolName(toolset, tool string) string { return toolset + "." + tool }

// Tool is one tool of a facade.
type Tool struct {
	// Name is <toolset>.<tool>.
	Name    string
	Toolset types.NamespacedName
	// Spec is the tool as its Toolset pins it: description, schemas,
	// access, irreversible. What the upstream says of itself is not served.
	Spec custosv1alpha1.Tool
	// Scope is the scope a call needs (sts.ToolScope).
	Scope   string
	Schemas toolschema.Schemas
	// Endpoint is the URL of the Toolset's MCP server (EndpointURL).
	Endpoint string
	// siblings are the Toolset's tools, itself included, and pins their
	// digest: what a drift check compares its server's tools with.
	siblings []*Tool
	pins     string
}

// Facade is what one agent may call through the gateway under one token:
// the tools of its Toolsets whose scope the token holds.
type Facade struct {
	tools  map[string]*Tool
	hidden map[string]*Tool // the agent's, outside the token's scope
}

// NewFacade builds the facade of toolsets (an agent's) for a token with
// scopes. A Toolset whose schemas do not compile, or whose name another
// Toolset of the agent already has, gives no tool, and an error says why:
// it is not Ready then, and nothing of it may be called.
func NewFacade(toolsets []custosv1alpha1.Toolset, scopes []string) (*Facade, []error) {
	f := &Facade{tools: map[string]*Tool{}, hidden: map[string]*Tool{}}
	var errs []error
	seen := map[string]types.NamespacedName{}
	for i := range toolsets {
		ts := &toolsets[i]
		key := types.NamespacedName{Namespace: ts.Namespace, Name: ts.Name}
		if other, ok := seen[ts.Name]; ok {
			errs = append(errs, fmt.Errorf("Toolset %s: its tools would be named as those of Toolset %s (<toolset>.<tool>); neither is served twice, %s is left out", key, other, key))
			continue
		}
		seen[ts.Name] = key
		endpoint, err := EndpointURL(ts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tools := make([]*Tool, 0, len(ts.Spec.Tools))
		var bad error
		for j, spec := range ts.Spec.Tools {
			schemas, err := toolschema.CompileTool(spec, j)
			if err != nil {
				bad = fmt.Errorf("Toolset %s: %w", key, err)
				break
			}
			tools = append(tools, &Tool{Name: ToolName(ts.Name, spec.Name), Toolset: key, Spec: spec,
				Scope: sts.ToolScope(ts.Name, spec.Access == custosv1alpha1.ToolAccessWrite), Schemas: schemas, Endpoint: endpoint})
		}
		if bad != nil {
			errs = append(errs, bad)
			continue
		}
		pins := pinsOf(tools)
		for _, t := range tools {
			t.siblings, t.pins = tools, pins
		}
		for _, t := range tools {
			if slices.Contains(scopes, t.Scope) {
				f.tools[t.Name] = t
			} else {
				f.hidden[t.Name] = t
			}
		}
	}
	return f, errs
}

// List is what tools/list answers: the facade's tools, by name.
func (f *Facade) List() []*Tool {
	out := make([]*Tool, 0, len(f.tools))
	for _, t := range f.tools {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *Tool) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Reasons a call is refused on the way in, on the audit record.
const (
	// ReasonUnknownTool: no Toolset of the agent has it.
	ReasonUnknownTool = "UnknownTool"
	// ReasonOutOfScope: the agent's tool, but the token's scope does not
	// reach it (the person may not, or the agent asked for less).
	ReasonOutOfScope = "OutOfScope"
	// ReasonInvalidInput: the arguments break the tool's input schema.
	ReasonInvalidInput = "InvalidInput"
)

// Refusal is a call refused: Message is what the caller is told, Reason
// and Detail what the record says. An unknown tool and one outside the
// token's scope read the same to the caller, so that calls cannot map
// what exists; the record tells them apart.
type Refusal struct {
	Reason  string
	Message string
	Detail  string
}

func (r *Refusal) Error() string { return r.Message }

// Check finds the tool name and checks args (the call's arguments, a JSON
// object, or empty for none) against its input schema: Lookup, then
// CheckInput.
func (f *Facade) Check(name string, args json.RawMessage) (*Tool, *Refusal) {
	t, refused := f.Lookup(name)
	if refused != nil {
		return nil, refused
	}
	_, refused = t.CheckInput(args)
	return t, refused
}

// Lookup finds the tool name among those the token may call.
func (f *Facade) Lookup(name string) (*Tool, *Refusal) {
	t, ok := f.tools[name]
	if !ok {
		notHere := fmt.Sprintf("no tool %q here: tools/list says what this token may call", name)
		if h, hidden := f.hidden[name]; hidden {
			return nil, &Refusal{Reason: ReasonOutOfScope, Message: notHere,
				Detail: fmt.Sprintf("tool %s needs scope %s, which the token does not hold", name, h.Scope)}
		}
		return nil, &Refusal{Reason: ReasonUnknownTool, Message: notHere, Detail: fmt.Sprintf("no Toolset of the agent has a tool %s", name)}
	}
	return t, nil
}

// DecodeArgs reads a call's arguments: a JSON object, or empty for none.
func (t *Tool) DecodeArgs(args json.RawMessage) (map[string]any, *Refusal) {
	if len(args) == 0 {
		args = json.RawMessage(`{}`)
	}
	value, err := toolschema.DecodeValue(args)
	if err != nil {
		return nil, &Refusal{Reason: ReasonInvalidInput, Message: fmt.Sprintf("tool %s: the arguments are not JSON: %v", t.Name, err)}
	}
	obj, ok := value.(map[string]any)
	if !ok {
		return nil, &Refusal{Reason: ReasonInvalidInput, Message: fmt.Sprintf("tool %s: the arguments must be a JSON object", t.Name)}
	}
	// JSON has no bound on numbers, but MCP servers read them as 64-bit
	// floats: one beyond that range would pass an open schema here and
	// be refused by the tool server, which is not the server's failure.
	if where, n, ok := outOfRange(obj, ""); ok {
		return nil, &Refusal{Reason: ReasonInvalidInput,
			Message: fmt.Sprintf("tool %s: argument %s: number %.40s is beyond what a 64-bit float holds (MCP servers read numbers as such)", t.Name, where, n)}
	}
	return obj, nil
}

// outOfRange finds a number in v beyond a 64-bit float's range, and
// where it is (a JSON pointer).
func outOfRange(v any, at string) (string, string, bool) {
	switch v := v.(type) {
	case json.Number:
		if _, err := strconv.ParseFloat(string(v), 64); err != nil {
			return at, string(v), true
		}
	case map[string]any:
		for k, e := range v {
			if where, n, ok := outOfRange(e, at+"/"+strings.NewReplacer("~", "~0", "/", "~1").Replace(k)); ok {
				return where, n, true
			}
		}
	case []any:
		for i, e := range v {
			if where, n, ok := outOfRange(e, at+"/"+strconv.Itoa(i)); ok {
				return where, n, true
			}
		}
	}
	return "", "", false
}

// CheckInput decodes args and checks them against the tool's input schema.
func (t *Tool) CheckInput(args json.RawMessage) (map[string]any, *Refusal) {
	obj, refused := t.DecodeArgs(args)
	if refused != nil {
		return nil, refused
	}
	return obj, t.Validate(obj)
}

// Validate checks decoded arguments against the tool's input schema,
// naming the field and the rule.
func (t *Tool) Validate(args map[string]any) *Refusal {
	if verr := toolschema.Validate(t.Schemas.Input, args); verr != nil {
		where := "arguments"
		if verr.Pointer != "" {
			where = "argument " + verr.Pointer
		}
		return &Refusal{Reason: ReasonInvalidInput, Message: fmt.Sprintf("tool %s: %s: %s (its Toolset's inputSchema)", t.Name, where, verr.Message)}
	}
	return nil
}

// ReasonSpoofedArgument: an argument the Toolset binds to the caller's
// token was sent with another value.
const ReasonSpoofedArgument = "SpoofedArgument"

// Bind sets the arguments the tool binds to claims of the caller's token
// (spec.tools[].bind). An argument sent with the token's value stays; one
// sent with another value is refused, since an agent naming someone else
// than the person it acts for is what a reviewer must see; one not sent
// is added.
func (t *Tool) Bind(args map[string]any, c *sts.Claims) *Refusal {
	for _, b := range t.Spec.Bind {
		want := claimValue(c, b.Claim)
		if want == "" {
			return &Refusal{Reason: ReasonInvalidInput, Message: fmt.Sprintf("tool %s: argument %s is bound to the token's %s, which this token does not carry", t.Name, b.Argument, b.Claim)}
		}
		if got, sent := args[b.Argument]; sent && got != any(want) {
			return &Refusal{Reason: ReasonSpoofedArgument,
				Message: fmt.Sprintf("tool %s: argument %s is set from the token (%s), not by the caller: it must be left out or be the token's", t.Name, b.Argument, b.Claim),
				Detail:  fmt.Sprintf("argument %s sent with a value other than the token's %s", b.Argument, b.Claim)}
		}
		args[b.Argument] = want
	}
	return nil
}

func claimValue(c *sts.Claims, claim custosv1alpha1.BoundClaim) string {
	switch claim {
	case custosv1alpha1.BoundClaimPerson:
		return c.Subject
	case custosv1alpha1.BoundClaimPersonAtIssuer:
		return c.OriginalSubject
	case custosv1alpha1.BoundClaimSession:
		return c.Session
	case custosv1alpha1.BoundClaimTenant:
		return c.Tenant
	case custosv1alpha1.BoundClaimAgent:
		return c.ClientID
	}
	return ""
}
