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
	"time"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/sts"
)

// Approvals holds the calls ApprovalPolicies match until people approve
// them (approval.Gate).
type Approvals interface {
	Require(ctx context.Context, call approval.Call) (*approval.Requirement, error)
	Await(ctx context.Context, h *approval.Held, req *approval.Requirement) (approval.Outcome, error)
}

// Reasons a call waits for, or was refused by, approval.
const (
	// ReasonApprovalPending: an ApprovalPolicy matched and people have
	// not approved yet; retry the same call once they have.
	ReasonApprovalPending = "ApprovalPending"
	// ReasonApprovalDenied: someone allowed to decide denied the call.
	ReasonApprovalDenied = "ApprovalDenied"
	// ReasonApprovalExpired: nobody approved it in time: a deny.
	ReasonApprovalExpired = "ApprovalExpired"
	// ReasonApprovalUsed: the approval was used by another try of the
	// same call: it runs once.
	ReasonApprovalUsed = "ApprovalUsed"
	// ReasonApprovalUnavailable: the gateway could not read the policies
	// or hold the call; nothing a policy might gate runs then.
	ReasonApprovalUnavailable = "ApprovalUnavailable"
)

// retryAfter is the hint a pending call's answer gives.
const retryAfter = 5 * time.Second

// checkApproval holds a call that ApprovalPolicies match until it is
// approved, and says whether the call may run now; applies is false when
// no policy matches. args are the checked arguments, raw their encoding.
func (s *Server) checkApproval(ctx context.Context, sess *session, tool *Tool, raw []byte, meta *CallMeta, rec *callRecord) (refused *Refusal, applies bool) {
	var plain map[string]any
	if err := json.Unmarshal(raw, &plain); err != nil {
		return &Refusal{Reason: ReasonApprovalUnavailable, Message: fmt.Sprintf("tool %s: the arguments cannot be read for approval: %v", tool.Name, err)}, true
	}
	call := approval.Call{
		Tool: tool.Spec.Name, Access: tool.Spec.Access, Irreversible: tool.Spec.Irreversible,
		Toolset:   custosv1alpha1.ToolsetReference{Name: tool.Toolset.Name, Namespace: tool.Toolset.Namespace},
		Arguments: plain, Person: sess.caller.Subject, Groups: sess.caller.Groups, Agent: sess.agent,
	}
	req, err := s.Approvals.Require(ctx, call)
	if err != nil {
		return &Refusal{Reason: ReasonApprovalUnavailable, Message: fmt.Sprintf("tool %s: whether the call needs approval cannot be told now, so it does not run: %v", tool.Name, err)}, true
	}
	if req == nil {
		return nil, false
	}
	canonical, err := audit.CanonicalValue(plain)
	if err != nil {
		return &Refusal{Reason: ReasonApprovalUnavailable, Message: fmt.Sprintf("tool %s: the arguments cannot be bound to an approval: %v", tool.Name, err)}, true
	}
	held := &approval.Held{
		Call: call, AgentUID: string(sess.agent.UID), Session: sess.caller.Session,
		Chain: sts.DescribeChain(sess.caller.Chain()), CanonicalArguments: canonical, RawArguments: raw, TraceID: rec.traceID,
	}
	if meta != nil && meta.Decision != nil {
		if c, err := meta.Decision.Canonical(); err == nil {
			held.DecisionRecord = string(c)
		}
	}
	out, err := s.Approvals.Await(ctx, held, req)
	if out.Request != nil {
		rec.details["approvalRequest"] = out.Request.Name
	}
	if out.Created {
		s.recordApproval(ctx, audit.ActionApprovalRequested, sess, out.Request, rec.traceID,
			fmt.Sprintf("%s's call of %s for %s waits for %d approval(s) (%s)", sess.caller.ClientID, tool.Name, sess.caller.Subject, req.Quorum, out.Request.Name))
	}
	if err != nil {
		return &Refusal{Reason: ReasonApprovalUnavailable, Message: fmt.Sprintf("tool %s needs approval, and the gateway could not hold it: %v", tool.Name, err)}, true
	}
	ar := out.Request
	ref := ar.Namespace + "/" + ar.Name
	switch {
	case out.Run:
		s.recordApproval(ctx, audit.ActionApprovalConsumed, sess, ar, rec.traceID,
			fmt.Sprintf("%s's approved call of %s ran once (%s, %d approval(s))", sess.caller.ClientID, tool.Name, ar.Name, ar.Status.Approvals))
		return nil, true
	case out.Used:
		return &Refusal{Reason: ReasonApprovalUsed, Detail: ref, Message: fmt.Sprintf(
			"tool %s: approval request %s was already used by another try of this call, which ran once; the same call again needs a new approval", tool.Name, ref)}, true
	}
	switch ar.Status.Phase {
	case custosv1alpha1.ApprovalDenied:
		return &Refusal{Reason: ReasonApprovalDenied, Detail: ref, Message: fmt.Sprintf("tool %s: approval request %s was denied%s", tool.Name, ref, deniedBy(ar))}, true
	case custosv1alpha1.ApprovalExpired, custosv1alpha1.ApprovalApproved:
		// Approved but past its expiry: not consumed, not run.
		return &Refusal{Reason: ReasonApprovalExpired, Detail: ref, Message: fmt.Sprintf(
			"tool %s: approval request %s expired at %s without its quorum, which means deny; retrying the call asks again", tool.Name, ref, ar.Spec.ExpiresAt.UTC().Format(time.RFC3339))}, true
	}
	return &Refusal{Reason: ReasonApprovalPending, Detail: ref, Message: fmt.Sprintf(
		"tool %s waits for approval: approval request %s has %d of %d approval(s) and expires at %s; retry the same call in %s (kubectl custos approve %s -n %s)",
		tool.Name, ref, ar.Status.Approvals, ar.Spec.Quorum, ar.Spec.ExpiresAt.UTC().Format(time.RFC3339), retryAfter, ar.Name, ar.Namespace)}, true
}

func deniedBy(ar *custosv1alpha1.ApprovalRequest) string {
	for _, v := range ar.Status.Decisions {
		if v.Counted && v.Decision == custosv1alpha1.Deny {
			return " by " + v.Approver.Username
		}
	}
	return ""
}

// recordApproval writes an approval step on the audit trail.
func (s *Server) recordApproval(ctx context.Context, action string, sess *session, ar *custosv1alpha1.ApprovalRequest, traceID, reason string) {
	if ar == nil {
		return
	}
	s.record(ctx, audit.Event{
		Action:   action,
		Actor:    audit.Actor{Kind: audit.ActorAgent, Name: sess.caller.ClientID},
		Subject:  audit.Subject{Kind: "ApprovalRequest", Namespace: ar.Namespace, Name: ar.Name, UID: string(ar.UID), Tenant: sess.tenant},
		Decision: audit.DecisionAllow, Policy: "approval", Reason: reason, TraceID: traceID,
		Details: map[string]string{
			"agent": ar.Spec.Agent.Name, "agentUID": ar.Spec.Agent.UID, "tool": ar.Spec.Tool, "toolset": ar.Spec.Toolset.Namespace + "/" + ar.Spec.Toolset.Name,
			"person": ar.Spec.Person, "callDigest": ar.Spec.CallDigest, "quorum": strconv.Itoa(int(ar.Spec.Quorum)),
			"approvals": strconv.Itoa(int(ar.Status.Approvals)), "phase": string(ar.Status.Phase),
		},
	})
}
