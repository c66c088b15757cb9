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
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// Payload is what checks see. Field names are the JSON keys the assertions
// use. Agent and Boundary hold JSON-decoded values (objects as
// map[string]any, numbers as float64), as NewPayload builds them: the
// JMESPath functions accept no other number type.
type Payload struct {
	// Agent is the Agent as JSON: apiVersion, kind, metadata (without
	// managedFields) and spec. Status is left out: admission judges what the
	// owner asks for, not what Custos observed.
	Agent map[string]any `json:"agent"`
	// Namespace is the Agent's namespace.
	Namespace NamespaceInfo `json:"namespace"`
	// Boundary is the DataBoundary as JSON, without status and managedFields.
	Boundary map[string]any `json:"boundary"`
	// Request is who asks for what.
	Request RequestInfo `json:"request"`
	// Time is when the request is admitted, in UTC. Checks read the time
	// from here rather than a clock so that a verdict can be replayed.
	Time TimeInfo `json:"time"`
}

// NamespaceInfo is the part of the Agent's namespace checks see.
type NamespaceInfo struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

// RequestInfo is the admission request's user and operation.
type RequestInfo struct {
	User      string   `json:"user"`
	Groups    []string `json:"groups"`
	Operation string   `json:"operation"`
}

// TimeInfo is the time of the admission or of the call, in UTC.
type TimeInfo struct {
	// Now is RFC 3339, such as 2026-03-02T14:05:00Z.
	Now string `json:"now"`
	// Hour is 0-23.
	Hour int `json:"hour"`
	// Weekday is Monday, Tuesday, ...
	Weekday string `json:"weekday"`
}

// NewTimeInfo is now as checks see it, in UTC.
func NewTimeInfo(now time.Time) TimeInfo {
	now = now.UTC()
	return TimeInfo{Now: now.Format(time.RFC3339), Hour: now.Hour(), Weekday: now.Weekday().String()}
}

func (t TimeInfo) value() map[string]any {
	return map[string]any{
		"now":     t.Now,
		"hour":    float64(t.Hour),
		"weekday": t.Weekday,
	}
}

// NewPayload builds the payload for an admission request. agent, ns and b may
// be nil (a request that has no object of that kind); the namespace's name
// then falls back to the Agent's namespace. Labels and groups are never null,
// so that expressions such as contains(request.groups, 'x') evaluate to false
// rather than fail on a missing list.
func NewPayload(agent *custosv1alpha1.Agent, ns *corev1.Namespace, b *custosv1alpha1.DataBoundary, user string, groups []string, operation string, now time.Time) (Payload, error) {
	p := Payload{
		Namespace: NamespaceInfo{Labels: map[string]string{}},
		Request: RequestInfo{
			User:      user,
			Groups:    append([]string{}, groups...),
			Operation: operation,
		},
	}
	p.Time = NewTimeInfo(now)

	if agent != nil {
		m, err := objectJSON(agent)
		if err != nil {
			return Payload{}, fmt.Errorf("encoding Agent %s/%s for policy checks: %w", agent.Namespace, agent.Name, err)
		}
		p.Agent = m
		p.Namespace.Name = agent.Namespace
	}
	if ns != nil {
		p.Namespace.Name = ns.Name
		maps.Copy(p.Namespace.Labels, ns.Labels)
	}
	if b != nil {
		m, err := objectJSON(b)
		if err != nil {
			return Payload{}, fmt.Errorf("encoding DataBoundary %s for policy checks: %w", b.Name, err)
		}
		p.Boundary = m
	}
	return p, nil
}

// objectJSON turns an API object into the map a JSON decoder would make of
// it, so that assertions see exactly what `kubectl get -o json` shows (and
// numbers are float64), without status and managedFields.
func objectJSON(obj any) (map[string]any, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "managedFields")
	}
	return m, nil
}

// value is the payload as the assertion engine walks it: JSON-shaped, built
// by hand rather than through a JSON round trip because it runs on every
// admission and the two maps in it are JSON-shaped already.
func (p Payload) value() map[string]any {
	labels := make(map[string]any, len(p.Namespace.Labels))
	for k, v := range p.Namespace.Labels {
		labels[k] = v
	}
	groups := stringList(p.Request.Groups)
	return map[string]any{
		"agent": jsonObject(p.Agent),
		"namespace": map[string]any{
			"name":   p.Namespace.Name,
			"labels": labels,
		},
		"boundary": jsonObject(p.Boundary),
		"request": map[string]any{
			"user":      p.Request.User,
			"groups":    groups,
			"operation": p.Request.Operation,
		},
		"time": p.Time.value(),
	}
}

// stringList is ss as JSON decodes a list of strings: never null.
func stringList(ss []string) []any {
	out := make([]any, 0, len(ss))
	for _, s := range ss {
		out = append(out, s)
	}
	return out
}

// jsonObject makes a nil map a JSON null: a typed nil map inside an any would
// look like an empty object to the engine, and an absent Agent is not one.
func jsonObject(m map[string]any) any {
	if m == nil {
		return nil
	}
	return m
}
