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
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"k8s.io/apimachinery/pkg/types"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	freezes "github.com/custos-dev/custos/internal/breaker"
	"github.com/custos-dev/custos/internal/sts"
)

// Reasons a request is refused before any tool is looked at.
const (
	// ReasonInvalidToken: no token, or not one of the tenant's custos-sts
	// for its gateway with an agent acting.
	ReasonInvalidToken = "InvalidToken"
	// ReasonRevoked: the token or its session was revoked, or an agent of
	// its chain may not act now.
	ReasonRevoked = "Revoked"
	// ReasonAgentInactive: the acting agent may not act now (suspended,
	// frozen, decommissioned, its image not verified, another tenant's).
	ReasonAgentInactive = "AgentInactive"
)

// call checks one tools/call on the way in, makes it, checks the answer
// on the way out, and records it, allowed or refused. The caller gets
// the refusal's message as a tool error; the record says which check
// refused and why.
func (s *Server) call(ctx context.Context, sess *session, params *mcp.CallToolParamsRaw) *mcp.CallToolResult {
	// The call's span is the caller's trace's (the record carries its
	// trace ID), refused or not.
	ctx, span := s.startSpan(remoteParent(ctx, params.Meta, nil), "tools/call "+params.Name,
		attribute.String(attrMCPMethod, "tools/call"), attribute.String(attrTool, params.Name),
		attribute.String(attrTenant, sess.tenant), attribute.String(attrAgent, sess.caller.ClientID))
	rec := newCallRecord(s.now(), sess.tenant, sess.caller, sess.agent)
	rec.traceID = traceIDOf(span)
	if rec.traceID == "" {
		// Tracing off: the call still has one ID, on its records and its
		// metrics' exemplar.
		rec.traceID = newTraceID()
	}
	rec.tool = params.Name
	rec.check("caller", true)
	rec.check("agent", true)
	res, refused := s.checkAndCall(ctx, sess, params, rec)
	action := audit.ActionToolCalled
	reason := ""
	if refused != nil {
		action, res, reason = audit.ActionToolRefused, toolError(refused.Message), refused.Reason
	}
	end := s.now()
	s.record(ctx, rec.event(action, refused, end))
	var agent types.NamespacedName
	if sess.agent != nil {
		agent = types.NamespacedName{Namespace: sess.agent.Namespace, Name: sess.agent.Name}
	}
	if refused == nil {
		s.Usage.Add(agent, rec.records, end)
	}
	if s.Metrics != nil {
		records, bytes := rec.records, rec.bytes
		if refused != nil {
			// Withheld: nothing was served.
			records, bytes = 0, 0
		}
		s.Metrics.observe(agent, params.Name, reason, records, bytes, end.Sub(rec.start), rec.traceID)
	}
	endSpan(span, rec, refused)
	return res
}

func (s *Server) checkAndCall(ctx context.Context, sess *session, params *mcp.CallToolParamsRaw, rec *callRecord) (*mcp.CallToolResult, *Refusal) {
	tool, refused := sess.facade.Lookup(params.Name)
	if !rec.check("tool", refused == nil) {
		return nil, refused
	}
	rec.toolset = tool.Toolset.String()
	// What the call can do, for whoever reads the trail alone (the
	// evaluators): a Write tool, and whether it is irreversible.
	rec.details["access"] = string(tool.Spec.Access)
	if tool.Spec.Irreversible {
		rec.details["irreversible"] = "true"
	}
	// A tool found drifted is refused here until its server is due to be
	// checked again (MCPUpstream.Drift), in the call's own session.
	if why, drifted := s.Drift.Drifted(tool); drifted && !s.Drift.due(tool) {
		rec.check("drift", false)
		return nil, driftRefusal(tool, why)
	}
	if s.Limits != nil {
		if refused := s.Limits.Allow(sess.caller.ClientID, tool.Name); !rec.check("rate", refused == nil) {
			return nil, refused
		}
	}
	meta, refused := ParseMeta(params.Meta)
	if refused == nil {
		rec.details["decisionDigest"] = meta.DecisionDigest
		recordDecision(rec.details, meta.Decision)
		refused = meta.Require(decisionRequired(sess.agent, tool), tool.Name)
	}
	if !rec.check("decision", refused == nil) {
		return nil, refused
	}
	args, refused := tool.DecodeArgs(params.Arguments)
	if refused == nil {
		refused = tool.Bind(args, sess.caller)
		if len(tool.Spec.Bind) > 0 && !rec.check("bind", refused == nil) {
			return nil, refused
		}
	}
	if refused == nil {
		refused = tool.Validate(args)
	}
	if !rec.check("input", refused == nil) {
		return nil, refused
	}
	if refused, applies := s.checkPolicy(ctx, sess, tool, args); applies && !rec.check("policy", refused == nil) {
		return nil, refused
	}
	// What goes upstream is what was checked: the arguments re-encoded,
	// bound ones included; their digest is on the record, never they.
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, &Refusal{Reason: ReasonInvalidInput, Message: fmt.Sprintf("tool %s: the arguments cannot be encoded: %v", tool.Name, err)}
	}
	rec.details["argumentsDigest"] = digest(raw)
	// A call an ApprovalPolicy matches waits for people here, after every
	// check of the call itself and before anything is sent.
	if s.Approvals != nil {
		if refused, applies := s.checkApproval(ctx, sess, tool, raw, meta, rec); applies && !rec.check("approval", refused == nil) {
			return nil, refused
		}
	}
	// The agent's caps: the call that would cross one is not made.
	if s.Caps != nil {
		if refused, applies := s.takeCall(ctx, sess, tool, rec); applies && !rec.check("caps", refused == nil) {
			return nil, refused
		}
	}
	// The agent's gateway-only credentials for this Toolset, set on this
	// call's requests to its server and on no other's.
	headers, refused := s.credentialHeaders(ctx, sess.agent, tool.Toolset, tool.Name)
	if (headers != nil || refused != nil) && !rec.check("credential", refused == nil) {
		return nil, refused
	}
	res, refused := s.Upstream.Call(withCallHeaders(ctx, headers), sess.caller, sess.token, tool, raw)
	if refused != nil {
		rec.check(upstreamCheck(refused.Reason), false)
		return nil, refused
	}
	if s.Drift != nil {
		rec.check("drift", true)
	}
	rec.check("upstream", true)
	rec.check("output", true)
	if res.IsError {
		rec.details["outcome"] = "toolError"
	}
	if s.Caps != nil || s.Metrics != nil || s.Usage != nil {
		rec.records, rec.bytes = measure(tool, res)
		// On the record: the evaluator's volume rubric reads them.
		rec.details["records"] = strconv.FormatInt(rec.records, 10)
		rec.details["bytes"] = strconv.FormatInt(rec.bytes, 10)
	}
	// The result that would cross a cap is withheld.
	if s.Caps != nil {
		if refused, applies := s.takeResult(ctx, sess, tool, res, rec); applies && !rec.check("caps.result", refused == nil) {
			return nil, refused
		}
	}
	return res, nil
}

// decisionRequired says whether the agent must give a decision record for
// a call of tool (spec.requireDecisionRecord).
func decisionRequired(agent *custosv1alpha1.Agent, tool *Tool) bool {
	switch agent.Spec.RequireDecisionRecord {
	case custosv1alpha1.DecisionRecordWrite:
		return tool.Spec.Access == custosv1alpha1.ToolAccessWrite
	case custosv1alpha1.DecisionRecordIrreversible:
		return tool.Spec.Irreversible
	}
	return false
}

// upstreamCheck names the check an upstream refusal failed.
func upstreamCheck(reason string) string {
	switch reason {
	case ReasonInvalidOutput:
		return "output"
	case ReasonDrifted:
		return "drift"
	}
	return "upstream"
}

// maxRecordedIntentTool is the most of a decision record's intent tool the
// record keeps.
const maxRecordedIntentTool = 256

// recordDecision puts on the call's record what an evaluator compares of
// its decision record with the call itself, and never its text (goal,
// reasoning, alternatives: the agent's words, which may name people): the
// stated confidence, and the intent's tool and the digest of its arguments
// (as argumentsDigest is the call's, so that equal arguments have equal
// digests when none is bound from the token).
func recordDecision(details map[string]string, d *DecisionRecord) {
	if d == nil {
		return
	}
	if d.Confidence != nil {
		details["decision.confidence"] = strconv.FormatFloat(*d.Confidence, 'g', -1, 64)
	}
	if d.Intent == nil {
		return
	}
	if t := d.Intent.Tool; t != "" {
		// Bounded only by the _meta's size: a name this long is no tool's.
		if len(t) > maxRecordedIntentTool {
			t = strings.ToValidUTF8(t[:maxRecordedIntentTool], "") + "…"
		}
		details["decision.intentTool"] = t
	}
	if len(d.Intent.Arguments) > 0 {
		if raw, err := json.Marshal(d.Intent.Arguments); err == nil {
			details["decision.intentArgumentsDigest"] = digest(raw)
		}
	}
}

// digest is the sha256 of canonical JSON (RFC 8785, as decision records'
// digests), so the same arguments in another member order have the same
// digest.
func digest(raw []byte) string {
	var v any
	if err := json.Unmarshal(raw, &v); err == nil {
		if c, err := audit.CanonicalValue(v); err == nil {
			raw = c
		}
	}
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// callRecord gathers what a call's audit record says as the call goes.
type callRecord struct {
	start   time.Time
	tenant  string
	caller  *sts.Claims
	agent   *custosv1alpha1.Agent
	tool    string
	toolset string
	traceID string
	checks  []string
	details map[string]string
	// records and bytes the result served (measure), when counted.
	records, bytes int64
	// limits are the agent's caps in force, once read (Caps.limits).
	limits *freezes.Limits
}

func newCallRecord(start time.Time, tenant string, caller *sts.Claims, agent *custosv1alpha1.Agent) *callRecord {
	return &callRecord{start: start, tenant: tenant, caller: caller, agent: agent, details: map[string]string{}}
}

// check notes a check's result and returns it.
func (r *callRecord) check(name string, passed bool) bool {
	result := "pass"
	if !passed {
		result = "fail"
	}
	r.checks = append(r.checks, name+"="+result)
	return passed
}

// checksString is the checks so far, as the record says them.
func (r *callRecord) checksString() string { return strings.Join(r.checks, " ") }

// event is the call's audit record.
func (r *callRecord) event(action string, refused *Refusal, end time.Time) audit.Event {
	e := audit.Event{Action: action, Subject: audit.Subject{Kind: "Agent", Tenant: r.tenant}, Details: r.details, TraceID: r.traceID}
	if e.TraceID == "" {
		e.TraceID = newTraceID()
	}
	if r.caller != nil {
		e.Actor = audit.Actor{Kind: audit.ActorAgent, Name: r.caller.ClientID}
		r.details["person"] = r.caller.Subject
		r.details["jti"] = r.caller.ID
		r.details["session"] = r.caller.Session
		r.details["chain"] = sts.DescribeChain(r.caller.Chain())
		r.details["scope"] = r.caller.Scope
	}
	if r.agent != nil {
		e.Subject.Namespace, e.Subject.Name, e.Subject.UID = r.agent.Namespace, r.agent.Name, string(r.agent.UID)
	}
	r.details["tool"] = r.tool
	r.details["toolset"] = r.toolset
	r.details["checks"] = r.checksString()
	r.details["latencyMicros"] = strconv.FormatInt(end.Sub(r.start).Microseconds(), 10)
	if refused != nil {
		e.Decision, e.Policy, e.Reason = audit.DecisionDeny, refused.Reason, refused.Message
		if refused.Detail != "" {
			r.details["detail"] = refused.Detail
		}
		r.details["outcome"] = "refused"
	} else {
		e.Decision, e.Policy = audit.DecisionAllow, "gateway"
		e.Reason = fmt.Sprintf("%s called %s for %s", r.caller.ClientID, r.tool, r.caller.Subject)
		if r.details["outcome"] == "" {
			r.details["outcome"] = "ok"
		}
	}
	for k, v := range r.details {
		if v == "" {
			delete(r.details, k)
		}
	}
	return e
}

func newTraceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
