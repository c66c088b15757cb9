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
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// CallPayload is what a DataBoundary's callChecks see of one tool call at
// custos-gateway. Field names are the JSON keys the assertions use. Agent
// and Arguments hold JSON-decoded values (objects as map[string]any,
// numbers as float64), as NewCallPayload builds them.
type CallPayload struct {
	// Agent is the acting Agent as JSON: apiVersion, kind, metadata
	// (without managedFields) and spec, as in the admission payload.
	Agent map[string]any `json:"agent"`
	// Person is the person the agent acts for, as the token names them.
	Person PersonInfo `json:"person"`
	// Chain is the token's actor chain, the acting agent first.
	Chain []ActorInfo `json:"chain"`
	// Tool is the tool called, as its Toolset pins it.
	Tool ToolInfo `json:"tool"`
	// Arguments are the call's arguments as they would go upstream (bound
	// arguments filled from the token), after the input schema passed them.
	Arguments map[string]any `json:"arguments"`
	// Recent is what the agent did lately, at this gateway replica.
	Recent RecentInfo `json:"recent"`
	// Time is when the call is checked, in UTC.
	Time TimeInfo `json:"time"`
}

// PersonInfo is the person a call is made for.
type PersonInfo struct {
	// Sub is the token's subject, the person.
	Sub string `json:"sub"`
	// Issuer is the identity provider that authenticated them.
	Issuer string `json:"issuer"`
	// Groups are their groups as that provider said.
	Groups []string `json:"groups"`
}

// ActorInfo is one agent of an actor chain.
type ActorInfo struct {
	// Sub is the agent's SPIFFE ID.
	Sub string `json:"sub"`
}

// ToolInfo is the tool called.
type ToolInfo struct {
	// Name is <toolset>.<tool>, as the agent calls it.
	Name string `json:"name"`
	// Toolset and Namespace name its Toolset.
	Toolset   string `json:"toolset"`
	Namespace string `json:"namespace"`
	// Access is Read or Write.
	Access string `json:"access"`
	// Irreversible is the tool's spec.tools[].irreversible.
	Irreversible bool `json:"irreversible"`
	// Classification is the Toolset's spec.dataClassification.
	Classification string `json:"classification"`
	// Region is the Toolset's spec.region; empty when it names none.
	Region string `json:"region"`
}

// RecentInfo is what the acting agent did lately, as one gateway replica
// counted it (docs/gateway.md): a check reading it limits what one replica
// lets through, not the cluster.
type RecentInfo struct {
	// Calls are the agent's tool calls, allowed or refused, in the last
	// minute, this one not included.
	Calls int `json:"calls"`
	// Refused are those of its calls refused in the last hour.
	Refused int `json:"refused"`
}

// NewCallPayload builds the payload of one tool call. agent may be nil (no
// Agent then: null). arguments are the call's arguments as decoded JSON (a
// json.Number is read as float64, as the JMESPath functions require; a
// number too large for one is refused); they are copied, so that nothing a
// check does reaches what goes upstream. Groups, the chain and the
// arguments are never null.
func NewCallPayload(agent *custosv1alpha1.Agent, person PersonInfo, chain []ActorInfo, tool ToolInfo,
	arguments map[string]any, recent RecentInfo, now time.Time) (CallPayload, error) {
	p := CallPayload{
		Person:    PersonInfo{Sub: person.Sub, Issuer: person.Issuer, Groups: append([]string{}, person.Groups...)},
		Chain:     append([]ActorInfo{}, chain...),
		Tool:      tool,
		Arguments: map[string]any{},
		Recent:    recent,
		Time:      NewTimeInfo(now),
	}
	if agent != nil {
		m, err := objectJSON(agent)
		if err != nil {
			return CallPayload{}, fmt.Errorf("encoding Agent %s/%s for policy checks: %w", agent.Namespace, agent.Name, err)
		}
		p.Agent = m
	}
	for k, v := range arguments {
		jv, err := jsonValue(v)
		if err != nil {
			return CallPayload{}, fmt.Errorf("argument %s: %w", k, err)
		}
		p.Arguments[k] = jv
	}
	return p, nil
}

func (p CallPayload) value() map[string]any {
	chain := make([]any, 0, len(p.Chain))
	for _, a := range p.Chain {
		chain = append(chain, map[string]any{"sub": a.Sub})
	}
	args := p.Arguments
	if args == nil {
		args = map[string]any{}
	}
	return map[string]any{
		"agent": jsonObject(p.Agent),
		"person": map[string]any{
			"sub":    p.Person.Sub,
			"issuer": p.Person.Issuer,
			"groups": stringList(p.Person.Groups),
		},
		"chain": chain,
		"tool": map[string]any{
			"name":           p.Tool.Name,
			"toolset":        p.Tool.Toolset,
			"namespace":      p.Tool.Namespace,
			"access":         p.Tool.Access,
			"irreversible":   p.Tool.Irreversible,
			"classification": p.Tool.Classification,
			"region":         p.Tool.Region,
		},
		"arguments": args,
		"recent": map[string]any{
			"calls":   float64(p.Recent.Calls),
			"refused": float64(p.Recent.Refused),
		},
		"time": p.Time.value(),
	}
}

// jsonValue copies v into the shape encoding/json decodes into any:
// map[string]any, []any, string, float64, bool, nil.
func jsonValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, bool, float64:
		return x, nil
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, fmt.Errorf("the number %s cannot be compared by checks: %w", x, err)
		}
		return f, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	}
	// Anything else (an int, a typed slice) goes through JSON.
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	return out, nil
}
