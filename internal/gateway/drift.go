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

package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos-dev/custos/internal/audit"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// ReasonDrifted: the tool server's definition of the tool is not the one
// its Toolset pins (the "rug pull": a server changes a tool after it was
// reviewed). The tool is hidden and refused until the server serves the
// pinned definition again or the Toolset's owner pins the new one.
const ReasonDrifted = "Drifted"

// DefaultDriftEvery is how often a Toolset's server's tools are compared
// with the pinned ones, at most.
const DefaultDriftEvery = time.Minute

// DriftChecks compares what a tool server lists with what its Toolset
// pins: each tool's input and output schema, in canonical JSON. It lists
// the server's tools in the session of a call, with that call's token (the
// gateway holds no token of its own for a tool server), at most every
// Every per Toolset, and again as soon as the Toolset's pins change.
type DriftChecks struct {
	// Every is DefaultDriftEvery when 0.
	Every time.Duration
	Clock clock.PassiveClock
	// Report, when set, is told a Toolset's drifted tools (tool: why;
	// empty when none) each time they change: the Toolset's Drifted
	// condition.
	Report func(ctx context.Context, toolset types.NamespacedName, drifted map[string]string)

	mu    sync.Mutex
	state map[types.NamespacedName]*driftState
	// version counts the changes of any Toolset's drifted tools: what
	// tools/list serves depends on it.
	version atomic.Uint64
}

// Version changes whenever some Toolset's drifted tools do.
func (d *DriftChecks) Version() uint64 {
	if d == nil {
		return 0
	}
	return d.version.Load()
}

type driftState struct {
	pins    string
	checked time.Time
	drifted map[string]string
}

// Drifted says whether tool was found drifted at the last check, and why.
func (d *DriftChecks) Drifted(tool *Tool) (string, bool) {
	if d == nil {
		return "", false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.state[tool.Toolset]
	if !ok || s.pins != tool.pins {
		return "", false
	}
	why, drifted := s.drifted[tool.Spec.Name]
	return why, drifted
}

// due says whether tool's Toolset is to be checked now.
func (d *DriftChecks) due(tool *Tool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.state[tool.Toolset]
	every := d.Every
	if every == 0 {
		every = DefaultDriftEvery
	}
	return !ok || s.pins != tool.pins || d.now().Sub(s.checked) >= every
}

func (d *DriftChecks) now() time.Time {
	if d.Clock == nil {
		return time.Now()
	}
	return d.Clock.Now()
}

// check lists the server's tools in session and compares them with the
// pinned tools of tool's Toolset; it returns why tool drifted, if it did.
// A listing that fails leaves the last result as it was.
func (d *DriftChecks) check(ctx context.Context, session *mcp.ClientSession, tool *Tool) (string, bool, error) {
	listed := map[string]*mcp.Tool{}
	for t, err := range session.Tools(ctx, nil) {
		if err != nil {
			return "", false, err
		}
		listed[t.Name] = t
	}
	drifted := map[string]string{}
	for _, pinned := range tool.siblings {
		if why := driftOf(pinned, listed[pinned.Spec.Name]); why != "" {
			drifted[pinned.Spec.Name] = why
		}
	}
	d.mu.Lock()
	if d.state == nil {
		d.state = map[types.NamespacedName]*driftState{}
	}
	before, had := d.state[tool.Toolset]
	d.state[tool.Toolset] = &driftState{pins: tool.pins, checked: d.now(), drifted: drifted}
	if (had && !maps.Equal(before.drifted, drifted)) || (!had && len(drifted) > 0) {
		d.version.Add(1)
	}
	d.mu.Unlock()
	if d.Report != nil && (!had || !maps.Equal(before.drifted, drifted)) {
		d.Report(ctx, tool.Toolset, drifted)
	}
	why, ok := drifted[tool.Spec.Name]
	return why, ok, nil
}

// driftOf says how the server's definition of a tool differs from the
// pinned one; "" when it does not. Only what the Toolset pins is compared:
// a tool pinned without an output schema may have any.
func driftOf(pinned *Tool, listed *mcp.Tool) string {
	if listed == nil {
		return "its server no longer lists it"
	}
	var changed []string
	if in := rawOf(pinned.Spec.InputSchema); len(in) > 0 && !sameJSON(objectSchema(in), listed.InputSchema) {
		changed = append(changed, "inputSchema")
	}
	if out := rawOf(pinned.Spec.OutputSchema); len(out) > 0 && !sameJSON(out, listed.OutputSchema) {
		changed = append(changed, "outputSchema")
	}
	if len(changed) == 0 {
		return ""
	}
	return "its server's " + strings.Join(changed, " and ") + " differ from the ones its Toolset pins"
}

// sameJSON compares two JSON documents in canonical form (RFC 8785).
func sameJSON(a json.RawMessage, b any) bool {
	var bv any
	switch b := b.(type) {
	case nil:
		return false
	case json.RawMessage:
		if json.Unmarshal(b, &bv) != nil {
			return false
		}
	default:
		raw, err := json.Marshal(b)
		if err != nil || json.Unmarshal(raw, &bv) != nil {
			return false
		}
	}
	var av any
	if json.Unmarshal(a, &av) != nil {
		return false
	}
	ca, err1 := audit.CanonicalValue(av)
	cb, err2 := audit.CanonicalValue(bv)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

// drifted is a refusal of a drifted tool.
func driftRefusal(tool *Tool, why string) *Refusal {
	return &Refusal{Reason: ReasonDrifted,
		Message: fmt.Sprintf("tool %s is not served: %s; it is hidden until the server serves the pinned definition again or the Toolset pins the new one", tool.Name, why)}
}

// pinsOf is a digest of a Toolset's pinned tools, so a change to the
// Toolset makes its server checked again at once.
func pinsOf(tools []*Tool) string {
	names := make([]string, 0, len(tools))
	for _, t := range tools {
		names = append(names, t.Spec.Name+string(rawOf(t.Spec.InputSchema))+string(rawOf(t.Spec.OutputSchema)))
	}
	slices.Sort(names)
	return digest([]byte(strings.Join(names, "\x00")))
}
