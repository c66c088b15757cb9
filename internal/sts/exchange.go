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

package sts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"k8s.io/utils/clock"

	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/tracing"
)

// DefaultTTL is how long an exchanged token lives unless the parent
// expires first.
const DefaultTTL = 5 * time.Minute

// Agent is an agent as the STS sees it when its pod presents its token:
// resolved by the ActorResolver from a live TokenReview and the Agent.
type Agent struct {
	// ID is its SPIFFE ID, the sub of its hop in an act chain.
	ID        string
	Namespace string
	Name      string
	UID       string
	Tenant    string
	// Audiences are the aud values a token exchanged for this agent as the
	// target carries: the subject token of a later hop must carry one.
	Audiences []string
	// Runnable is false while the agent may not act (Suspended, Frozen,
	// Decommissioned, or its image not verified); NotRunnable says why.
	Runnable    bool
	NotRunnable string
	Delegation  Delegation
	// Scopes are the scopes of its Toolsets' tools.
	Scopes []string
	// Gateway is set when the token is custos-gateway's own, not an
	// agent's: the gateway exchanges for the agent acting in the subject
	// token, and never acts itself.
	Gateway bool
	// Via is the gateway that asked, when it exchanged for this agent.
	Via string
}

// Delegation is who may have an agent act for them: which people (the
// subject's sub) or groups, and, after the first hop, which agents (their
// IDs) may pass a person's token on to it; MaxDepth caps the chain
// (DefaultMaxDepth when 0, never over MaxDepth).
type Delegation struct {
	People   []string
	Groups   []string
	Agents   []string
	MaxDepth int
}

// Subject is a verified subject token: its claims (a Custos token of an
// earlier hop, or a person's token from an issuer the tenant trusts,
// mapped onto the same claims) and the person's groups.
type Subject struct {
	Claims *Claims
	Groups []string
}

// Target is where the exchanged token will be used.
type Target struct {
	// Audience is the token's aud.
	Audience string
	// Scopes are what the target offers; the token's scope is within it.
	Scopes []string
	// Kind is what the target is.
	Kind TargetKind
}

// TargetKind is what a token is for.
type TargetKind string

// The kinds of target.
const (
	// TargetToolset: one of the agent's Toolsets, a tool server.
	TargetToolset TargetKind = "Toolset"
	// TargetAgent: another agent that takes calls from this one.
	TargetAgent TargetKind = "Agent"
	// TargetGateway: the tenant's custos-gateway, which calls the
	// agent's Toolsets for it (GatewayAudience).
	TargetGateway TargetKind = "Gateway"
)

// ToolScope is the scope a call of a tool of Toolset toolset needs:
// <toolset>.write for a Write tool, <toolset>.read for a Read one.
func ToolScope(toolset string, write bool) string {
	if write {
		return toolset + ".write"
	}
	return toolset + ".read"
}

// GatewayAudience is the audience of the token an agent exchanges to call
// tenant's custos-gateway: the gateway exchanges it again, for the Toolset
// of each tool called (docs/sts.md, "Who calls whom").
func GatewayAudience(tenant string) string { return "urn:custos:gateway:" + tenant }

// The parts of an exchange that read the cluster or an identity provider.
type (
	// Issuers are the STS's own issuers, one per tenant.
	Issuers interface {
		Issuer(tenant string) (*Issuer, bool)
	}
	// ActorResolver reviews the agent pod's token live (TokenReview, a
	// short cache) and finds its Agent in tenant.
	ActorResolver interface {
		ResolveActor(ctx context.Context, tenant, token string) (*Agent, error)
		// ActingAgent finds the agent with SPIFFE ID id, as it is now: the
		// one acting in a token the gateway exchanges.
		ActingAgent(ctx context.Context, tenant, id string) (*Agent, error)
	}
	// SubjectVerifier verifies a subject token of tenant for an actor: its
	// aud must be one of audiences.
	SubjectVerifier interface {
		VerifySubject(ctx context.Context, tenant, token string, audiences []string) (*Subject, error)
	}
	// TargetResolver finds target among what actor may call: its Toolsets'
	// endpoints and the agents it may delegate to.
	TargetResolver interface {
		ResolveTarget(ctx context.Context, actor *Agent, target string) (*Target, error)
	}
	// Revocations says whether a token of tenant (by jti), a session of
	// tenant's people or an agent (by ID) is revoked, and why.
	Revocations interface {
		Revoked(tenant, jti, session, agentID string) (string, bool)
	}
)

// Service is the exchange of custos-sts: every check of RFC 8693's
// request, the actor, the subject, the delegation and the scope, then a
// token of the tenant's issuer, each refusal with its own reason and every
// decision on the audit trail.
type Service struct {
	Issuers     Issuers
	Actors      ActorResolver
	Subjects    SubjectVerifier
	Targets     TargetResolver
	Revocations Revocations
	Audit       audit.Recorder
	Clock       clock.PassiveClock
	// TTL of exchanged tokens; DefaultTTL when 0.
	TTL time.Duration
	// Tracing makes the token endpoint's spans (the global provider when
	// nil); a record carries its span's trace ID.
	Tracing trace.TracerProvider
}

var _ Exchanger = (*Service)(nil)

// StaticIssuers are issuers by tenant that do not change.
type StaticIssuers map[string]*Issuer

// Issuer returns tenant's issuer.
func (s StaticIssuers) Issuer(tenant string) (*Issuer, bool) {
	is, ok := s[tenant]
	return is, ok
}

// Reasons of refusals, on the error's Reason and the audit record.
const (
	ReasonUnknownTenant    = "UnknownTenant"
	ReasonActorMissing     = "ActorMissing"
	ReasonActorInvalid     = "ActorInvalid"
	ReasonActorNotRunnable = "ActorNotRunnable"
	ReasonActorRevoked     = "ActorRevoked"
	ReasonSubjectInvalid   = "SubjectInvalid"
	ReasonSubjectRevoked   = "SubjectRevoked"
	ReasonPersonNotAllowed = "PersonNotAllowed"
	ReasonCallerNotAllowed = "CallerNotAllowed"
	ReasonChainTooDeep     = "ChainTooDeep"
	ReasonActorRepeats     = "ActorRepeats"
	ReasonTargetNotAllowed = "TargetNotAllowed"
	ReasonScopeWidened     = "ScopeWidened"
	ReasonNoScope          = "NoScope"
	ReasonSubjectExpired   = "SubjectExpired"
	ReasonTenantMismatch   = "TenantMismatch"
	// ReasonNotForGateway: the gateway presented a token that is not one
	// of the tenant's issuer for the gateway with an agent acting, or
	// asked for something other than a Toolset of that agent.
	ReasonNotForGateway = "NotForGateway"
)

// Refusal is an exchange refused: the OAuth error the client gets and the
// reason on the record.
type Refusal struct {
	*Error
	Reason string
}

func refuse(status int, code, reason, format string, args ...any) *Refusal {
	return &Refusal{Error: oauthErr(status, code, format, args...), Reason: reason}
}

// Exchange checks req and, when every check passes, returns a token of
// tenant's issuer for the person the subject token names, acted on by the
// agent whose pod's token is the actor token, for the one target.
func (s *Service) Exchange(ctx context.Context, tenant string, req *ExchangeRequest) (*TokenResponse, *Error) {
	resp, claims, actor, subject, r := s.exchange(ctx, tenant, req)
	s.record(ctx, tenant, req, claims, actor, subject, r)
	if r != nil {
		return nil, r.Error
	}
	return resp, nil
}

func (s *Service) exchange(ctx context.Context, tenant string, req *ExchangeRequest) (*TokenResponse, *Claims, *Agent, *Subject, *Refusal) {
	bad := func(reason, format string, args ...any) *Refusal {
		return refuse(http.StatusBadRequest, CodeInvalidRequest, reason, format, args...)
	}
	is, ok := s.Issuers.Issuer(tenant)
	if !ok {
		return nil, nil, nil, nil, bad(ReasonUnknownTenant, "no issuer for tenant %q", tenant)
	}
	if req.ActorToken == "" {
		return nil, nil, nil, nil, bad(ReasonActorMissing, "actor_token is required: the STS exchanges tokens for agents, and the agent's pod token says which")
	}
	// The actor: a live pod of an Agent of this tenant that may act now.
	actor, err := s.Actors.ResolveActor(ctx, tenant, req.ActorToken)
	if err != nil {
		return nil, nil, nil, nil, bad(ReasonActorInvalid, "actor_token: %v", err)
	}
	if actor.Gateway {
		return s.exchangeForGateway(ctx, tenant, is, req, actor)
	}
	if actor.Tenant != tenant {
		return nil, nil, actor, nil, bad(ReasonTenantMismatch, "actor_token: agent %s/%s is of tenant %q, not %q", actor.Namespace, actor.Name, actor.Tenant, tenant)
	}
	if !actor.Runnable {
		return nil, nil, actor, nil, bad(ReasonActorNotRunnable, "actor_token: agent %s/%s may not act: %s", actor.Namespace, actor.Name, actor.NotRunnable)
	}
	if why, revoked := s.Revocations.Revoked(tenant, "", "", actor.ID); revoked {
		return nil, nil, actor, nil, bad(ReasonActorRevoked, "actor_token: agent %s/%s is revoked: %s", actor.Namespace, actor.Name, why)
	}
	// The subject: a token for this very agent.
	subject, err := s.Subjects.VerifySubject(ctx, tenant, req.SubjectToken, actor.Audiences)
	if err != nil {
		return nil, nil, actor, nil, bad(ReasonSubjectInvalid, "subject_token: %v", err)
	}
	sc := subject.Claims
	if sc.Tenant != "" && sc.Tenant != tenant {
		return nil, nil, actor, subject, bad(ReasonTenantMismatch, "subject_token: of tenant %q, not %q", sc.Tenant, tenant)
	}
	if r := s.revoked(tenant, sc); r != nil {
		return nil, nil, actor, subject, r
	}
	// The delegation: this person, through this caller, to this agent.
	d := actor.Delegation
	if !slices.Contains(d.People, sc.Subject) && !slices.ContainsFunc(subject.Groups, func(g string) bool { return slices.Contains(d.Groups, g) }) {
		return nil, nil, actor, subject, bad(ReasonPersonNotAllowed, "agent %s/%s may not act for %s: neither they nor their groups are in its delegation", actor.Namespace, actor.Name, sc.Subject)
	}
	if sc.Act != nil && !slices.Contains(d.Agents, sc.Act.Subject) {
		return nil, nil, actor, subject, bad(ReasonCallerNotAllowed, "agent %s/%s may not be called by %s: it is not in its delegation's agents", actor.Namespace, actor.Name, sc.Act.Subject)
	}
	if err := sc.CheckChain(Actor{Subject: actor.ID}, d.MaxDepth); err != nil {
		reason := ReasonChainTooDeep
		if errors.Is(err, ErrActorRepeats) {
			reason = ReasonActorRepeats
		}
		return nil, nil, actor, subject, bad(reason, "%v", err)
	}
	// The target and the scope, which only narrows.
	target, err := s.Targets.ResolveTarget(ctx, actor, req.Target())
	if err != nil {
		return nil, nil, actor, subject, refuse(http.StatusBadRequest, CodeInvalidTarget, ReasonTargetNotAllowed, "%v", err)
	}
	granted, refused := NarrowScope(sc.Scope, req.Scope, actor.Scopes, target.Scopes)
	if len(refused) > 0 {
		return nil, nil, actor, subject, refuse(http.StatusBadRequest, CodeInvalidScope, ReasonScopeWidened,
			"scope %s is not within what %s holds, agent %s/%s's Toolsets and %s allow together", strings.Join(refused, " "), sc.Subject, actor.Namespace, actor.Name, target.Audience)
	}
	if len(granted) == 0 {
		return nil, nil, actor, subject, refuse(http.StatusBadRequest, CodeInvalidScope, ReasonNoScope,
			"no scope of %s is also one agent %s/%s's Toolsets and %s allow", sc.Subject, actor.Namespace, actor.Name, target.Audience)
	}
	resp, claims, r := s.issue(is, subject, target, granted, sc.Delegate(Actor{Subject: actor.ID}))
	return resp, claims, actor, subject, r
}

// revoked refuses a subject token that is revoked, of a session that is,
// or with a revoked agent anywhere in its chain.
func (s *Service) revoked(tenant string, sc *Claims) *Refusal {
	if why, revoked := s.Revocations.Revoked(tenant, sc.ID, sc.Session, ""); revoked {
		return refuse(http.StatusBadRequest, CodeInvalidRequest, ReasonSubjectRevoked, "subject_token: %s", why)
	}
	for _, a := range sc.Chain() {
		if why, revoked := s.Revocations.Revoked(tenant, "", "", a.Subject); revoked {
			return refuse(http.StatusBadRequest, CodeInvalidRequest, ReasonActorRevoked, "subject_token: its chain holds %s, which is revoked: %s", a.Subject, why)
		}
	}
	return nil
}

// issue mints the token for subject's person at target with scope granted
// and the actor chain act (its outermost actor is the client_id); it never
// outlives the subject token.
func (s *Service) issue(is *Issuer, subject *Subject, target *Target, granted []string, act *Actor) (*TokenResponse, *Claims, *Refusal) {
	sc := subject.Claims
	now := s.Clock.Now()
	ttl := s.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	exp, err := Lifetime(now, ttl, sc.Expiry)
	if err != nil {
		return nil, nil, refuse(http.StatusBadRequest, CodeInvalidRequest, ReasonSubjectExpired, "subject_token: %v", err)
	}
	origIss, origSub := sc.OriginalIssuer, sc.OriginalSubject
	if origIss == "" {
		origIss, origSub = sc.Issuer, sc.Subject
	}
	claims := Claims{
		Subject: sc.Subject, Audience: target.Audience, Scope: strings.Join(granted, " "),
		Expiry: exp.Unix(), IssuedAt: now.Unix(), NotBefore: now.Unix(),
		Act: act, Session: sc.Session, Groups: subject.Groups,
		OriginalIssuer: origIss, OriginalSubject: origSub, Parent: sc.ID, ID: NewID(),
	}
	token, err := is.Mint(claims)
	if err != nil {
		return nil, nil, &Refusal{Error: oauthErr(http.StatusInternalServerError, "server_error", "minting the token: %v", err), Reason: "MintFailed"}
	}
	claims.Issuer, claims.Tenant, claims.ClientID = is.URL, is.Tenant, act.Subject
	return &TokenResponse{
		AccessToken: token, IssuedTokenType: TokenTypeAccessToken, TokenType: "Bearer",
		ExpiresIn: int64(exp.Sub(now).Seconds()), Scope: claims.Scope,
	}, &claims, nil
}

// exchangeForGateway is step 3 of docs/sts.md's "Who calls whom": the
// gateway, whose pod's token is the actor token, exchanges the token an
// agent was given for the gateway (step 1) for one Toolset of that agent.
// The gateway is not an actor: the new token's chain and client_id are the
// subject token's, its scope the subject token's narrowed to the Toolset.
func (s *Service) exchangeForGateway(ctx context.Context, tenant string, is *Issuer, req *ExchangeRequest, gw *Agent) (*TokenResponse, *Claims, *Agent, *Subject, *Refusal) {
	notForGateway := func(format string, args ...any) *Refusal {
		return refuse(http.StatusBadRequest, CodeInvalidRequest, ReasonNotForGateway, format, args...)
	}
	subject, err := s.Subjects.VerifySubject(ctx, tenant, req.SubjectToken, []string{GatewayAudience(tenant)})
	if err != nil {
		return nil, nil, gw, nil, refuse(http.StatusBadRequest, CodeInvalidRequest, ReasonSubjectInvalid,
			"subject_token: %v (the gateway exchanges only tokens for %s)", err, GatewayAudience(tenant))
	}
	sc := subject.Claims
	if sc.Issuer != is.URL || sc.Act == nil {
		acting := "no agent"
		if sc.Act != nil {
			acting = sc.Act.Subject
		}
		return nil, nil, gw, subject, notForGateway("subject_token: the gateway exchanges only tokens tenant %s's issuer gave an agent for the gateway; this one is of %s, with %s acting", tenant, sc.Issuer, acting)
	}
	// The agent acting, as it is now.
	actor, err := s.Actors.ActingAgent(ctx, tenant, sc.Act.Subject)
	if err != nil {
		return nil, nil, gw, subject, refuse(http.StatusBadRequest, CodeInvalidRequest, ReasonActorInvalid, "subject_token: its actor %s: %v", sc.Act.Subject, err)
	}
	actor.Via = gw.ID
	switch {
	case actor.Tenant != tenant:
		return nil, nil, actor, subject, refuse(http.StatusBadRequest, CodeInvalidRequest, ReasonTenantMismatch, "subject_token: agent %s/%s is of tenant %q, not %q", actor.Namespace, actor.Name, actor.Tenant, tenant)
	case !actor.Runnable:
		return nil, nil, actor, subject, refuse(http.StatusBadRequest, CodeInvalidRequest, ReasonActorNotRunnable, "subject_token: agent %s/%s may not act: %s", actor.Namespace, actor.Name, actor.NotRunnable)
	}
	if r := s.revoked(tenant, sc); r != nil {
		return nil, nil, actor, subject, r
	}
	target, err := s.Targets.ResolveTarget(ctx, actor, req.Target())
	if err != nil {
		return nil, nil, actor, subject, refuse(http.StatusBadRequest, CodeInvalidTarget, ReasonTargetNotAllowed, "%v", err)
	}
	if target.Kind != TargetToolset {
		return nil, nil, actor, subject, refuse(http.StatusBadRequest, CodeInvalidTarget, ReasonNotForGateway,
			"the gateway exchanges for a Toolset of agent %s/%s only; %s is %s", actor.Namespace, actor.Name, req.Target(), strings.ToLower(string(target.Kind))+" "+target.Audience)
	}
	granted, refused := NarrowScope(sc.Scope, req.Scope, target.Scopes)
	if len(refused) > 0 {
		return nil, nil, actor, subject, refuse(http.StatusBadRequest, CodeInvalidScope, ReasonScopeWidened,
			"scope %s is not within what the token for the gateway holds and %s allows", strings.Join(refused, " "), target.Audience)
	}
	if len(granted) == 0 {
		return nil, nil, actor, subject, refuse(http.StatusBadRequest, CodeInvalidScope, ReasonNoScope,
			"no scope of the token for the gateway is one %s allows", target.Audience)
	}
	// The chain as it was: the gateway enforces, it does not act.
	resp, claims, r := s.issue(is, subject, target, granted, sc.Act)
	return resp, claims, actor, subject, r
}

// record writes the decision: token.exchanged with the new jti and the
// parent's, or token.refused with the reason. It never writes a token.
func (s *Service) record(ctx context.Context, tenant string, req *ExchangeRequest, claims *Claims, actor *Agent, subject *Subject, r *Refusal) {
	e := audit.Event{
		Actor:   audit.Actor{Kind: audit.ActorController, Name: "custos-sts"},
		Subject: audit.Subject{Kind: "Agent", Tenant: tenant},
		Details: map[string]string{"target": req.Target()},
		TraceID: tracing.TraceID(ctx),
	}
	if actor != nil {
		e.Subject.Namespace, e.Subject.Name, e.Subject.UID = actor.Namespace, actor.Name, actor.UID
		e.Details["actor"] = actor.ID
		if actor.Via != "" {
			e.Details["gateway"] = actor.Via
		}
		if actor.Gateway {
			e.Subject.Kind = "Gateway"
		}
	}
	if subject != nil {
		e.Details["person"] = subject.Claims.Subject
		e.Details["parentJTI"] = subject.Claims.ID
		e.Details["chain"] = DescribeChain(subject.Claims.Chain())
	}
	if r != nil {
		e.Action, e.Decision, e.Reason, e.Policy = audit.ActionTokenRefused, audit.DecisionDeny, r.Description, r.Reason
		e.Details["error"] = r.Code
	} else {
		e.Action, e.Decision, e.Policy = audit.ActionTokenExchanged, audit.DecisionAllow, "delegation"
		e.Reason = fmt.Sprintf("Exchanged for %s acting for %s at %s, scope %s, until %s", claims.ClientID, claims.Subject,
			claims.Audience, claims.Scope, time.Unix(claims.Expiry, 0).UTC().Format(time.RFC3339))
		e.Details["jti"], e.Details["scope"] = claims.ID, claims.Scope
		// How deep the chain is against what the agent's delegation
		// allows, for the evaluators (a gateway's exchange extends none).
		e.Details["depth"] = strconv.Itoa(claims.Depth())
		if actor != nil && !actor.Gateway {
			e.Details["maxDepth"] = strconv.Itoa(EffectiveMaxDepth(actor.Delegation.MaxDepth))
		}
	}
	s.Audit.Record(ctx, e)
}
