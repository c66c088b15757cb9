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
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kwait "k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	freezes "github.com/custos-dev/custos/internal/breaker"
)

// Reasons a call is refused on account of the agent's caps.
const (
	// ReasonCapExceeded: the call, or its result, would have crossed one
	// of the agent's caps (a tool's maxRecords, or the DataBoundary's or
	// Agent's per minute or per day); the result is withheld and the
	// agent frozen.
	ReasonCapExceeded = "CapExceeded"
	// ReasonCapsUnavailable: the agent's caps could not be counted (the
	// ledger could not be reached); the call is not made, or its result
	// not served, uncounted.
	ReasonCapsUnavailable = "CapsUnavailable"
)

// Freezer makes the AgentFreeze a crossed cap trips.
type Freezer interface {
	Freeze(ctx context.Context, f *custosv1alpha1.AgentFreeze) error
}

// ClientFreezer creates AgentFreezes through the API server as the
// gateway's ServiceAccount (which the chart grants verb trip on agents).
type ClientFreezer struct {
	Client client.Client
	// Reader, when set, is the cache the gateway reads freezes from:
	// Freeze returns once the freeze is there (for up to 2 s), so that
	// this replica's next call of the agent is refused by it.
	Reader client.Reader
}

// Freeze implements Freezer.
func (c ClientFreezer) Freeze(ctx context.Context, f *custosv1alpha1.AgentFreeze) error {
	if err := c.Client.Create(ctx, f); err != nil {
		return err
	}
	if c.Reader != nil {
		// Made: not seeing it in the cache yet is no failure (the API
		// server has it, and every replica's cache will).
		_ = kwait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 2*time.Second, true, func(ctx context.Context) (bool, error) {
			return c.Reader.Get(ctx, client.ObjectKeyFromObject(f), &custosv1alpha1.AgentFreeze{}) == nil, nil
		})
	}
	return nil
}

// Caps enforces the agents' caps on the call path: the calls, records
// and bytes each agent takes in a minute and a day (the lowest of its
// tenant's DataBoundaries' spec.caps and its own), across replicas and
// restarts (freezes.Meter over a shared Ledger), and a tool's maxRecords
// per call. The call or result that would cross a cap is withheld
// (CapExceeded), recorded (cap.exceeded) and the agent frozen.
type Caps struct {
	Meter *freezes.Meter
	// Boundaries gives the tenant's DataBoundaries (their caps).
	Boundaries Boundaries
	// Freezer makes the freeze; none is made when nil (the refusal
	// stands all the same).
	Freezer Freezer
	// AuditLogID names this replica's audit trail in a freeze's evidence.
	AuditLogID string
}

// limits are the caps in force for sess's agent, read once per call
// (the call and its result are counted against the same).
func (c *Caps) limits(ctx context.Context, sess *session, rec *callRecord) (freezes.Limits, error) {
	if rec.limits != nil {
		return *rec.limits, nil
	}
	boundaries, err := c.Boundaries.Boundaries(ctx, sess.tenant)
	if err != nil {
		return freezes.Limits{}, err
	}
	bs := make([]*custosv1alpha1.DataBoundary, 0, len(boundaries))
	for i := range boundaries {
		bs = append(bs, &boundaries[i])
	}
	l := freezes.LimitsOf(sess.agent, bs...)
	rec.limits = &l
	return l, nil
}

// takeCall counts a call about to be made against the agent's caps; it
// says whether any cap applies to the agent (the record's check "caps").
func (s *Server) takeCall(ctx context.Context, sess *session, tool *Tool, rec *callRecord) (*Refusal, bool) {
	limits, err := s.Caps.limits(ctx, sess, rec)
	if err != nil {
		return capsUnavailable(tool, "the call", err), true
	}
	if limits.None() {
		return nil, false
	}
	return s.takeCaps(ctx, sess, tool, rec, limits, freezes.Usage{Calls: 1}, "the call"), true
}

// takeResult counts a result about to be served: the tool's maxRecords,
// then the agent's caps on records and bytes; it says whether any applies
// (the record's check "caps.result").
func (s *Server) takeResult(ctx context.Context, sess *session, tool *Tool, res *mcp.CallToolResult, rec *callRecord) (*Refusal, bool) {
	limits, err := s.Caps.limits(ctx, sess, rec)
	if err != nil {
		return capsUnavailable(tool, "its result", err), true
	}
	max := tool.Spec.MaxRecords
	if limits.None() && max == nil {
		return nil, false
	}
	records, bytes := rec.records, rec.bytes
	if max != nil && records > *max {
		return s.capExceeded(ctx, sess, tool, rec, &freezes.Exceeded{Signal: freezes.SignalRecords, Limit: *max, Observed: records}, "its result"), true
	}
	return s.takeCaps(ctx, sess, tool, rec, limits, freezes.Usage{Records: records, Bytes: bytes}, "its result"), true
}

func (s *Server) takeCaps(ctx context.Context, sess *session, tool *Tool, rec *callRecord, limits freezes.Limits, n freezes.Usage, what string) *Refusal {
	exceeded, err := s.Caps.Meter.Take(ctx, freezes.Key{Namespace: sess.agent.Namespace, Name: sess.agent.Name}, limits, n)
	if err != nil {
		return capsUnavailable(tool, what, err)
	}
	if exceeded != nil {
		return s.capExceeded(ctx, sess, tool, rec, exceeded, what)
	}
	return nil
}

func capsUnavailable(tool *Tool, what string, err error) *Refusal {
	return &Refusal{Reason: ReasonCapsUnavailable,
		Message: fmt.Sprintf("tool %s: the agent's caps cannot be counted now, so %s is not served uncounted: %v", tool.Name, what, err)}
}

// capExceeded records the crossing, freezes the agent, and refuses.
func (s *Server) capExceeded(ctx context.Context, sess *session, tool *Tool, rec *callRecord, e *freezes.Exceeded, what string) *Refusal {
	window := string(e.Window)
	if window == "" {
		window = "call"
	}
	details := map[string]string{
		"tool": tool.Name, "toolset": tool.Toolset.String(), "signal": e.Signal, "window": window,
		"limit": strconv.FormatInt(e.Limit, 10), "observed": strconv.FormatInt(e.Observed, 10),
	}
	ev := audit.Event{Action: audit.ActionCapExceeded,
		Actor:    audit.Actor{Kind: audit.ActorAgent, Name: sess.caller.ClientID},
		Subject:  audit.Subject{Kind: "Agent", Namespace: sess.agent.Namespace, Name: sess.agent.Name, UID: string(sess.agent.UID), Tenant: sess.tenant},
		Decision: audit.DecisionDeny, Policy: "caps", TraceID: rec.traceID, Details: details,
		Reason: fmt.Sprintf("Agent %s/%s: %s withheld: %s", sess.agent.Namespace, sess.agent.Name, what, e.Describe())}
	var seqs []int64
	if seq, ok := s.recordSeq(ctx, ev); ok {
		seqs = []int64{int64(seq)}
	}
	freeze := &custosv1alpha1.AgentFreeze{
		ObjectMeta: metav1.ObjectMeta{Namespace: sess.agent.Namespace, GenerateName: freezes.GenerateName(sess.agent.Name, custosv1alpha1.FreezeCap)},
		Spec: custosv1alpha1.AgentFreezeSpec{Agent: sess.agent.Name, Trigger: custosv1alpha1.FreezeCap,
			Signal: e.Signal, Reason: e.Describe(), Observed: &e.Observed, Limit: &e.Limit,
			Evidence: &custosv1alpha1.FreezeEvidence{AuditLogID: s.Caps.AuditLogID, Sequences: seqs, TraceIDs: []string{rec.traceID}}},
	}
	frozen := "and the agent is frozen until a person lifts it (kubectl custos unfreeze " + sess.agent.Name + " -n " + sess.agent.Namespace + ")"
	if s.Caps.Freezer != nil {
		// The agent hanging up does not stop its freeze.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := s.Caps.Freezer.Freeze(fctx, freeze); err != nil {
			frozen = "and freezing the agent failed (" + err.Error() + "); the cap still refuses"
		} else {
			rec.details["freeze"] = freeze.Name
		}
	}
	for k, v := range details {
		if k != "tool" && k != "toolset" {
			rec.details["cap."+k] = v
		}
	}
	return &Refusal{Reason: ReasonCapExceeded,
		Message: fmt.Sprintf("tool %s: %s is withheld: %s, %s", tool.Name, what, e.Describe(), frozen)}
}

// recordSeq records e and says where in this replica's trail it went,
// when the trail can tell.
func (s *Server) recordSeq(ctx context.Context, e audit.Event) (uint64, bool) {
	if seq, ok := s.Audit.(audit.Sequencer); ok {
		return seq.RecordSeq(ctx, e)
	}
	s.record(ctx, e)
	return 0, false
}

// measure is what a result takes: its records (the length of the array
// at the tool's recordsPath in its structured result, or in each text
// block that is JSON, added up; without a recordsPath, the length of a
// result that is an array; else 1) and its bytes (the text served).
func measure(tool *Tool, res *mcp.CallToolResult) (records, bytes int64) {
	var texts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			bytes += int64(len(t.Text))
			texts = append(texts, t.Text)
		}
	}
	if res.IsError {
		return 1, bytes
	}
	if res.StructuredContent != nil {
		raw, isRaw := res.StructuredContent.(json.RawMessage)
		if !isRaw {
			// The SDK decoded it: an object, by MCP's rules.
			if n, ok := recordsIn(res.StructuredContent, tool.Spec.RecordsPath); ok {
				return n, bytes
			}
			return 1, bytes
		}
		texts = []string{string(raw)}
	}
	counted := false
	for _, text := range texts {
		if tool.Spec.RecordsPath == "" && !strings.HasPrefix(strings.TrimSpace(text), "[") {
			// Not a list, and nothing says where one is.
			continue
		}
		var doc any
		if json.Unmarshal([]byte(text), &doc) != nil {
			continue
		}
		if n, ok := recordsIn(doc, tool.Spec.RecordsPath); ok {
			records += n
			counted = true
		}
	}
	if !counted {
		return 1, bytes
	}
	return records, bytes
}

// recordsIn is the length of the array at path in doc.
func recordsIn(doc any, path string) (int64, bool) {
	list, ok := pointer(doc, path).([]any)
	return int64(len(list)), ok
}

// pointer is the value at JSON Pointer p (RFC 6901) in doc, or nil.
func pointer(doc any, p string) any {
	if p == "" {
		return doc
	}
	for _, token := range strings.Split(p[1:], "/") {
		token = strings.ReplaceAll(strings.ReplaceAll(token, "~1", "/"), "~0", "~")
		switch v := doc.(type) {
		case map[string]any:
			doc = v[token]
		case []any:
			i, err := strconv.Atoi(token)
			if err != nil || i < 0 || i >= len(v) {
				return nil
			}
			doc = v[i]
		default:
			return nil
		}
	}
	return doc
}
