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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/custos-dev/custos/internal/audit"
)

// The world of the confused-deputy table: tenant acme with an identity
// provider and four agents, and tenant globex with one.
const (
	idpURL   = "https://idp.acme.example"
	personAu = "custos-sts" // the audience of the people's tokens
	ledger   = "https://ledger.acme.example/mcp"
	crm      = "https://crm.acme.example/mcp"
	bank     = "https://bank.acme.example/mcp"
)

func agentID(ns, name string) string { return "spiffe://cluster.local/ns/" + ns + "/sa/agent-" + name }

type world struct {
	now      time.Time
	svc      *Service
	idp      *Issuer
	issuers  map[string]*Issuer
	agents   map[string]*Agent // by actor token
	revoked  map[string]string
	recorded *recorder
}

type recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorder) Record(_ context.Context, e audit.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) last() audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[len(r.events)-1]
}

// gatewayID is custos-gateway's ServiceAccount, as its pod's token says.
const gatewayID = "spiffe://cluster.local/ns/custos-system/sa/custos-gateway"

func (w *world) ResolveActor(_ context.Context, _, token string) (*Agent, error) {
	if token == "pod-gateway" {
		return &Agent{ID: gatewayID, Namespace: "custos-system", Name: "custos-gateway", Gateway: true, Runnable: true}, nil
	}
	if a, ok := w.agents[token]; ok {
		c := *a
		return &c, nil
	}
	return nil, errors.New("the API server does not authenticate it (TokenReview): the pod is gone or the token is not a pod's")
}

func (w *world) ActingAgent(_ context.Context, _, id string) (*Agent, error) {
	for _, a := range w.agents {
		if a.ID == id {
			c := *a
			return &c, nil
		}
	}
	return nil, fmt.Errorf("no agent %s", id)
}

var groups = map[string][]string{
	"alice": {"finance-clerks", "finance-admins"},
	"bob":   {"finance-clerks"},
	"carol": {"sales"},
}

func (w *world) VerifySubject(_ context.Context, tenant, token string, audiences []string) (*Subject, error) {
	// The tenant trusts its identity provider and its own STS issuer; a
	// token goes to the issuer whose key signed it, as a verifier picking
	// the trusted issuer by iss and kid would.
	var last error = errors.New("no audience")
	for _, is := range []*Issuer{w.idp, w.issuers[tenant]} {
		for _, aud := range audiences {
			c, err := is.Verify(token, aud, w.now)
			if err == nil {
				if is == w.idp {
					c.Tenant = "" // a person's token names no tenant: the trusted issuer's mapping would set it
				}
				return &Subject{Claims: c, Groups: groups[c.Subject]}, nil
			}
			last = err
			var ve *VerifyError
			if errors.As(err, &ve) && ve.Reason != ReasonUnknownKey && ve.Reason != ReasonWrongIssuer && ve.Reason != ReasonWrongAud {
				return nil, err // this issuer's token, and wrong
			}
		}
	}
	return nil, last
}

// targets: what each agent may call, and the scopes there.
var targets = map[string]map[string]Target{
	agentID("finance", "invoice"): {
		ledger: {Audience: ledger, Scopes: []string{"ledger.read", "ledger.write"}},
		agentID("finance", "payments"): {Audience: agentID("finance", "payments"),
			Scopes: []string{"ledger.read", "ledger.write", "payments.execute"}},
	},
	agentID("finance", "payments"): {
		bank:                          {Audience: bank, Scopes: []string{"payments.execute"}},
		agentID("finance", "invoice"): {Audience: agentID("finance", "invoice"), Scopes: []string{"ledger.read"}},
		agentID("finance", "settle"):  {Audience: agentID("finance", "settle"), Scopes: []string{"payments.execute"}},
	},
	agentID("sales", "crm"): {
		crm:                            {Audience: crm, Scopes: []string{"crm.read"}},
		agentID("finance", "payments"): {Audience: agentID("finance", "payments"), Scopes: []string{"payments.execute"}},
	},
}

func (w *world) ResolveTarget(_ context.Context, actor *Agent, target string) (*Target, error) {
	if target == GatewayAudience(actor.Tenant) {
		return &Target{Audience: target, Scopes: actor.Scopes, Kind: TargetGateway}, nil
	}
	if t, ok := targets[actor.ID][target]; ok {
		t.Kind = TargetToolset
		if strings.HasPrefix(target, "spiffe://") {
			t.Kind = TargetAgent
		}
		return &t, nil
	}
	return nil, fmt.Errorf("%s is none of agent %s/%s's Toolsets or agents it may call", target, actor.Namespace, actor.Name)
}

func (w *world) Revoked(_, jti, session, agent string) (string, bool) {
	for _, k := range []string{jti, session, agent} {
		if why, ok := w.revoked[k]; ok && k != "" {
			return why, true
		}
	}
	return "", false
}

func newWorld(t *testing.T) *world {
	t.Helper()
	now := time.Unix(1_800_000_000, 0)
	w := &world{now: now, issuers: map[string]*Issuer{}, revoked: map[string]string{}, recorded: &recorder{}}
	w.idp = newIssuer(t, "idp", now)
	w.idp.URL = idpURL
	for _, tenant := range []string{"acme", "globex"} {
		w.issuers[tenant] = newIssuer(t, tenant, now)
	}
	agent := func(ns, name, tenant string, scopes []string, d Delegation) *Agent {
		id := agentID(ns, name)
		return &Agent{ID: id, Namespace: ns, Name: name, UID: "uid-" + name, Tenant: tenant, Audiences: []string{personAu, id},
			Runnable: true, Delegation: d, Scopes: scopes}
	}
	w.agents = map[string]*Agent{
		"pod-invoice": agent("finance", "invoice", "acme", []string{"ledger.read", "payments.execute"},
			Delegation{People: []string{"alice", "bob"}, Agents: []string{agentID("finance", "payments")}, MaxDepth: 4}),
		"pod-payments": agent("finance", "payments", "acme", []string{"ledger.read", "payments.execute"},
			Delegation{Groups: []string{"finance-admins"}, Agents: []string{agentID("finance", "invoice"), agentID("sales", "crm")}}),
		"pod-settle": agent("finance", "settle", "acme", []string{"payments.execute"},
			Delegation{Groups: []string{"finance-admins"}, Agents: []string{agentID("finance", "payments")}}),
		"pod-crm": agent("sales", "crm", "acme", []string{"crm.read", "payments.execute"},
			Delegation{People: []string{"alice", "bob", "carol"}}),
		"pod-globex": agent("ops", "globex", "globex", []string{"ledger.read"}, Delegation{People: []string{"alice"}}),
	}
	w.svc = &Service{Issuers: StaticIssuers(w.issuers), Actors: w, Subjects: w, Targets: w, Revocations: w,
		Audit: w.recorded, Clock: clocktesting.NewFakePassiveClock(now)}
	return w
}

// person mints a person's token from the tenant's identity provider.
func (w *world) person(t *testing.T, sub, scope string, change ...func(*Claims)) string {
	t.Helper()
	c := Claims{Subject: sub, Audience: personAu, Scope: scope, Session: "session-" + sub, ID: "idp-" + sub,
		Expiry: w.now.Add(time.Hour).Unix(), IssuedAt: w.now.Unix()}
	for _, f := range change {
		f(&c)
	}
	tok, err := w.idp.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// exchange is one exchange at tenant acme (unless tenant is given).
func (w *world) exchange(subject, actor, target, scope string) (*TokenResponse, *Error) {
	return w.exchangeAt("acme", subject, actor, target, scope)
}

func (w *world) exchangeAt(tenant, subject, actor, target, scope string) (*TokenResponse, *Error) {
	req := &ExchangeRequest{SubjectToken: subject, SubjectTokenType: TokenTypeAccessToken, Scope: scope,
		ActorToken: actor, ActorTokenType: TokenTypeJWT, Resources: []string{target}, RequestedTokenType: TokenTypeAccessToken}
	return w.svc.Exchange(context.Background(), tenant, req)
}

// hop exchanges and fails the test when refused.
func (w *world) hop(t *testing.T, subject, actor, target, scope string) string {
	t.Helper()
	return w.hopAt(t, "acme", subject, actor, target, scope)
}

func (w *world) hopAt(t *testing.T, tenant, subject, actor, target, scope string) string {
	t.Helper()
	resp, err := w.exchangeAt(tenant, subject, actor, target, scope)
	if err != nil {
		t.Fatalf("hop by %s to %s refused: %v", actor, target, err)
	}
	return resp.AccessToken
}

func TestExchangeAllowed(t *testing.T) {
	w := newWorld(t)
	alice := w.person(t, "alice", "ledger.read ledger.write payments.execute")
	// Hop 1: alice's token, the invoice agent, for the ledger, read only.
	resp, err := w.exchange(alice, "pod-invoice", ledger, "ledger.read")
	if err != nil {
		t.Fatal(err)
	}
	c, verr := w.issuers["acme"].Verify(resp.AccessToken, ledger, w.now)
	if verr != nil {
		t.Fatal(verr)
	}
	if c.Subject != "alice" || c.ClientID != agentID("finance", "invoice") || c.Scope != "ledger.read" || c.Parent != "idp-alice" ||
		c.OriginalIssuer != idpURL || c.Session != "session-alice" || resp.ExpiresIn != int64(DefaultTTL.Seconds()) {
		t.Errorf("hop 1 token: %+v, response %+v", c, resp)
	}
	ev := w.recorded.last()
	if ev.Action != audit.ActionTokenExchanged || ev.Details["jti"] != c.ID || ev.Details["parentJTI"] != "idp-alice" ||
		ev.Details["depth"] != "1" || ev.Details["maxDepth"] == "" {
		t.Errorf("hop 1 record: %+v, want its depth 1 and the delegation's maxDepth", ev)
	}
	// Hop 2: invoice passes alice's token on to payments, which acts at the
	// bank; the chain nests, newest outermost, and never outlives hop 1.
	toPayments := w.hop(t, alice, "pod-invoice", agentID("finance", "payments"), "payments.execute")
	resp, err = w.exchange(toPayments, "pod-payments", bank, "")
	if err != nil {
		t.Fatal(err)
	}
	c2, verr := w.issuers["acme"].Verify(resp.AccessToken, bank, w.now)
	if verr != nil {
		t.Fatal(verr)
	}
	// At the most its delegation allows (2 by default), and the record
	// says so, for the evaluators.
	if ev := w.recorded.last(); ev.Details["depth"] != "2" || ev.Details["maxDepth"] != strconv.Itoa(EffectiveMaxDepth(w.agents["pod-payments"].Delegation.MaxDepth)) {
		t.Errorf("hop 2 record: %+v, want depth 2 and the delegation's maxDepth", ev.Details)
	}
	chain := c2.Chain()
	if len(chain) != 2 || chain[0].Subject != agentID("finance", "payments") || chain[1].Subject != agentID("finance", "invoice") {
		t.Errorf("hop 2 chain: %+v", chain)
	}
	parent, _ := w.issuers["acme"].Verify(toPayments, agentID("finance", "payments"), w.now)
	if c2.Expiry > parent.Expiry || c2.Parent != parent.ID || c2.OriginalSubject != "alice" || c2.OriginalIssuer != idpURL {
		t.Errorf("hop 2 token %+v outlives or forgets its parent %+v", c2, parent)
	}
}

// TestGatewayExchange: the agent exchanges alice's token for the tenant's
// gateway (T1), the gateway exchanges T1 for the ledger (T2): T2 is
// alice's, with the agent (not the gateway) acting, the chain no deeper,
// the scope within T1's and the ledger's, never outliving T1; the record
// names the agent and the gateway that asked.
func TestGatewayExchange(t *testing.T) {
	w := newWorld(t)
	alice := w.person(t, "alice", "ledger.read ledger.write payments.execute crm.read")
	toGateway := w.hop(t, alice, "pod-invoice", GatewayAudience("acme"), "")
	t1, verr := w.issuers["acme"].Verify(toGateway, GatewayAudience("acme"), w.now)
	if verr != nil {
		t.Fatal(verr)
	}
	// The agent's Toolsets' scopes bound T1: crm.read and ledger.write are alice's, not invoice's.
	if t1.Scope != "ledger.read payments.execute" || t1.ClientID != agentID("finance", "invoice") || t1.Depth() != 1 {
		t.Errorf("T1: %+v", t1)
	}
	resp, err := w.exchange(toGateway, "pod-gateway", ledger, "")
	if err != nil {
		t.Fatal(err)
	}
	t2, verr := w.issuers["acme"].Verify(resp.AccessToken, ledger, w.now)
	if verr != nil {
		t.Fatal(verr)
	}
	if t2.Subject != "alice" || t2.ClientID != agentID("finance", "invoice") || t2.Depth() != 1 || t2.Act.Subject != agentID("finance", "invoice") ||
		t2.Scope != "ledger.read" || t2.Parent != t1.ID || t2.Expiry > t1.Expiry || t2.Session != "session-alice" || t2.OriginalSubject != "alice" {
		t.Errorf("T2: %+v, want alice's with invoice acting, scope ledger.read, child of T1 %s", t2, t1.ID)
	}
	ev := w.recorded.last()
	if ev.Action != audit.ActionTokenExchanged || ev.Subject.Name != "invoice" || ev.Details["gateway"] != gatewayID ||
		ev.Details["jti"] != t2.ID || ev.Details["parentJTI"] != t1.ID {
		t.Errorf("the record: %+v", ev)
	}
	// T2 is for the ledger alone: the gateway cannot use it elsewhere.
	if _, verr := w.issuers["acme"].Verify(resp.AccessToken, bank, w.now); verr == nil {
		t.Error("T2 verified at the bank")
	}
}

var looksLikeJWT = regexp.MustCompile(`[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}`)

// TestConfusedDeputy: every way to use an agent as a deputy it may not be
// is refused, each with its own reason, code and audit record.
func TestConfusedDeputy(t *testing.T) {
	type attempt struct {
		tenant, subject, actor, target, scope string
	}
	cases := []struct {
		name   string
		setup  func(t *testing.T, w *world) attempt
		code   string
		reason string
		says   string
	}{{
		name: "no actor token", code: CodeInvalidRequest, reason: ReasonActorMissing, says: "actor_token is required",
		setup: func(t *testing.T, w *world) attempt {
			return attempt{subject: w.person(t, "alice", "ledger.read"), target: ledger}
		},
	}, {
		name: "an actor token the API server does not know: the pod is gone", code: CodeInvalidRequest, reason: ReasonActorInvalid, says: "TokenReview",
		setup: func(t *testing.T, w *world) attempt {
			return attempt{subject: w.person(t, "alice", "ledger.read"), actor: "pod-deleted", target: ledger}
		},
	}, {
		name: "a suspended actor", code: CodeInvalidRequest, reason: ReasonActorNotRunnable, says: "Suspended",
		setup: func(t *testing.T, w *world) attempt {
			w.agents["pod-invoice"].Runnable, w.agents["pod-invoice"].NotRunnable = false, "it is Suspended"
			return attempt{subject: w.person(t, "alice", "ledger.read"), actor: "pod-invoice", target: ledger}
		},
	}, {
		name: "a frozen actor", code: CodeInvalidRequest, reason: ReasonActorNotRunnable, says: "Frozen",
		setup: func(t *testing.T, w *world) attempt {
			w.agents["pod-invoice"].Runnable, w.agents["pod-invoice"].NotRunnable = false, "the breaker Frozen it"
			return attempt{subject: w.person(t, "alice", "ledger.read"), actor: "pod-invoice", target: ledger}
		},
	}, {
		name: "an actor whose image does not verify", code: CodeInvalidRequest, reason: ReasonActorNotRunnable, says: "image",
		setup: func(t *testing.T, w *world) attempt {
			w.agents["pod-invoice"].Runnable, w.agents["pod-invoice"].NotRunnable = false, "its image is not verified"
			return attempt{subject: w.person(t, "alice", "ledger.read"), actor: "pod-invoice", target: ledger}
		},
	}, {
		name: "a decommissioned actor on the deny list", code: CodeInvalidRequest, reason: ReasonActorRevoked, says: "decommissioned",
		setup: func(t *testing.T, w *world) attempt {
			w.revoked[agentID("finance", "invoice")] = "decommissioned"
			return attempt{subject: w.person(t, "alice", "ledger.read"), actor: "pod-invoice", target: ledger}
		},
	}, {
		name: "an actor of another tenant", code: CodeInvalidRequest, reason: ReasonTenantMismatch, says: `tenant "globex"`,
		setup: func(t *testing.T, w *world) attempt {
			return attempt{subject: w.person(t, "alice", "ledger.read"), actor: "pod-globex", target: ledger}
		},
	}, {
		name: "a tenant the STS has no issuer for", code: CodeInvalidRequest, reason: ReasonUnknownTenant, says: "no issuer",
		setup: func(t *testing.T, w *world) attempt {
			return attempt{tenant: "initech", subject: w.person(t, "alice", "ledger.read"), actor: "pod-invoice", target: ledger}
		},
	}, {
		name: "an issuer of another tenant", code: CodeInvalidRequest, reason: ReasonSubjectInvalid, says: "UnknownKey",
		setup: func(t *testing.T, w *world) attempt {
			tok, err := w.issuers["globex"].Mint(Claims{Subject: "alice", Audience: personAu, Scope: "ledger.read", Expiry: w.now.Add(time.Hour).Unix()})
			if err != nil {
				t.Fatal(err)
			}
			return attempt{subject: tok, actor: "pod-invoice", target: ledger}
		},
	}, {
		name: "an expired subject token", code: CodeInvalidRequest, reason: ReasonSubjectInvalid, says: "Expired",
		setup: func(t *testing.T, w *world) attempt {
			tok := w.person(t, "alice", "ledger.read", func(c *Claims) { c.Expiry = w.now.Unix() })
			return attempt{subject: tok, actor: "pod-invoice", target: ledger}
		},
	}, {
		name: "agent X's pod presenting a token issued for agent Y", code: CodeInvalidRequest, reason: ReasonSubjectInvalid, says: "WrongAudience",
		setup: func(t *testing.T, w *world) attempt {
			toPayments := w.hop(t, w.person(t, "alice", "payments.execute"), "pod-invoice", agentID("finance", "payments"), "")
			return attempt{subject: toPayments, actor: "pod-settle", target: bank}
		},
	}, {
		name: "a token replayed at another upstream as a subject token", code: CodeInvalidRequest, reason: ReasonSubjectInvalid, says: "WrongAudience",
		setup: func(t *testing.T, w *world) attempt {
			forLedger := w.hop(t, w.person(t, "alice", "ledger.read"), "pod-invoice", ledger, "")
			return attempt{subject: forLedger, actor: "pod-crm", target: crm}
		},
	}, {
		name: "a revoked parent token", code: CodeInvalidRequest, reason: ReasonSubjectRevoked, says: "revoked by its owner",
		setup: func(t *testing.T, w *world) attempt {
			w.revoked["idp-alice"] = "revoked by its owner"
			return attempt{subject: w.person(t, "alice", "ledger.read"), actor: "pod-invoice", target: ledger}
		},
	}, {
		name: "a revoked session", code: CodeInvalidRequest, reason: ReasonSubjectRevoked, says: "logged out",
		setup: func(t *testing.T, w *world) attempt {
			w.revoked["session-alice"] = "logged out"
			return attempt{subject: w.person(t, "alice", "ledger.read"), actor: "pod-invoice", target: ledger}
		},
	}, {
		name: "a chain through an agent suspended since", code: CodeInvalidRequest, reason: ReasonActorRevoked, says: "its chain holds",
		setup: func(t *testing.T, w *world) attempt {
			toPayments := w.hop(t, w.person(t, "alice", "payments.execute"), "pod-invoice", agentID("finance", "payments"), "")
			w.revoked[agentID("finance", "invoice")] = "suspended"
			return attempt{subject: toPayments, actor: "pod-payments", target: bank}
		},
	}, {
		name: "a person the agent may not act for", code: CodeInvalidRequest, reason: ReasonPersonNotAllowed, says: "may not act for carol",
		setup: func(t *testing.T, w *world) attempt {
			return attempt{subject: w.person(t, "carol", "ledger.read"), actor: "pod-invoice", target: ledger}
		},
	}, {
		name: "a low-privilege agent relaying to the finance agent for a user without finance rights", code: CodeInvalidRequest,
		reason: ReasonPersonNotAllowed, says: "may not act for bob",
		setup: func(t *testing.T, w *world) attempt {
			toPayments := w.hop(t, w.person(t, "bob", "payments.execute"), "pod-invoice", agentID("finance", "payments"), "")
			return attempt{subject: toPayments, actor: "pod-payments", target: bank}
		},
	}, {
		name: "a caller the agent does not take calls from", code: CodeInvalidRequest, reason: ReasonCallerNotAllowed, says: "may not be called by",
		setup: func(t *testing.T, w *world) attempt {
			w.agents["pod-payments"].Delegation.Agents = []string{agentID("finance", "invoice")}
			toPayments := w.hop(t, w.person(t, "alice", "payments.execute"), "pod-crm", agentID("finance", "payments"), "")
			return attempt{subject: toPayments, actor: "pod-payments", target: bank}
		},
	}, {
		name: "a chain deeper than the agent allows", code: CodeInvalidRequest, reason: ReasonChainTooDeep, says: "hop 3 of at most 2",
		setup: func(t *testing.T, w *world) attempt {
			toPayments := w.hop(t, w.person(t, "alice", "payments.execute"), "pod-invoice", agentID("finance", "payments"), "")
			toSettle := w.hop(t, toPayments, "pod-payments", agentID("finance", "settle"), "")
			return attempt{subject: toSettle, actor: "pod-settle", target: bank}
		},
	}, {
		name: "an actor twice in the chain", code: CodeInvalidRequest, reason: ReasonActorRepeats, says: "already acted",
		setup: func(t *testing.T, w *world) attempt {
			toPayments := w.hop(t, w.person(t, "alice", "ledger.read payments.execute"), "pod-invoice", agentID("finance", "payments"), "")
			backToInvoice := w.hop(t, toPayments, "pod-payments", agentID("finance", "invoice"), "")
			return attempt{subject: backToInvoice, actor: "pod-invoice", target: ledger}
		},
	}, {
		name: "a scope the person does not hold", code: CodeInvalidScope, reason: ReasonScopeWidened, says: "ledger.write",
		setup: func(t *testing.T, w *world) attempt {
			return attempt{subject: w.person(t, "alice", "ledger.read"), actor: "pod-invoice", target: ledger, scope: "ledger.read ledger.write"}
		},
	}, {
		name: "a scope the agent's Toolsets do not hold", code: CodeInvalidScope, reason: ReasonScopeWidened, says: "ledger.write",
		setup: func(t *testing.T, w *world) attempt {
			return attempt{subject: w.person(t, "alice", "ledger.read ledger.write"), actor: "pod-invoice", target: ledger, scope: "ledger.write"}
		},
	}, {
		name: "a scope the target does not offer", code: CodeInvalidScope, reason: ReasonScopeWidened, says: "ledger.read",
		setup: func(t *testing.T, w *world) attempt {
			return attempt{subject: w.person(t, "alice", "ledger.read payments.execute"), actor: "pod-payments", target: bank, scope: "ledger.read"}
		},
	}, {
		name: "a later hop asking for more than its parent", code: CodeInvalidScope, reason: ReasonScopeWidened, says: "ledger.read",
		setup: func(t *testing.T, w *world) attempt {
			toPayments := w.hop(t, w.person(t, "alice", "ledger.read payments.execute"), "pod-invoice", agentID("finance", "payments"), "payments.execute")
			return attempt{subject: toPayments, actor: "pod-payments", target: agentID("finance", "invoice"), scope: "ledger.read"}
		},
	}, {
		name: "nothing in common between the person and the target", code: CodeInvalidScope, reason: ReasonNoScope, says: "no scope",
		setup: func(t *testing.T, w *world) attempt {
			return attempt{subject: w.person(t, "alice", "crm.read"), actor: "pod-invoice", target: ledger}
		},
	}, {
		name: "an audience outside the agent's Toolsets", code: CodeInvalidTarget, reason: ReasonTargetNotAllowed, says: "none of agent finance/invoice's Toolsets",
		setup: func(t *testing.T, w *world) attempt {
			return attempt{subject: w.person(t, "alice", "crm.read"), actor: "pod-invoice", target: crm}
		},
	}, {
		// The gateway (docs/sts.md, "Who calls whom"): it exchanges only the
		// token an agent was given for it, for that agent's Toolsets, within
		// that token's scope.
		name: "the gateway with a person's own token", code: CodeInvalidRequest, reason: ReasonSubjectInvalid, says: "the gateway exchanges only tokens for urn:custos:gateway:acme",
		setup: func(t *testing.T, w *world) attempt {
			return attempt{subject: w.person(t, "alice", "ledger.read"), actor: "pod-gateway", target: ledger}
		},
	}, {
		name: "the gateway with a person's token made out to the gateway", code: CodeInvalidRequest, reason: ReasonNotForGateway, says: "with no agent acting",
		setup: func(t *testing.T, w *world) attempt {
			return attempt{subject: w.person(t, "alice", "ledger.read", func(c *Claims) { c.Audience = GatewayAudience("acme") }),
				actor: "pod-gateway", target: ledger}
		},
	}, {
		name: "the gateway with a token an agent was given for a tool server", code: CodeInvalidRequest, reason: ReasonSubjectInvalid, says: "WrongAudience",
		setup: func(t *testing.T, w *world) attempt {
			return attempt{subject: w.hop(t, w.person(t, "alice", "ledger.read"), "pod-invoice", ledger, ""), actor: "pod-gateway", target: ledger}
		},
	}, {
		name: "the gateway asking for a Toolset that is not the acting agent's", code: CodeInvalidTarget, reason: ReasonTargetNotAllowed, says: "none of agent finance/invoice's Toolsets",
		setup: func(t *testing.T, w *world) attempt {
			return attempt{subject: w.hop(t, w.person(t, "alice", "ledger.read crm.read"), "pod-invoice", GatewayAudience("acme"), ""), actor: "pod-gateway", target: crm}
		},
	}, {
		name: "the gateway asking for another agent", code: CodeInvalidTarget, reason: ReasonNotForGateway, says: "for a Toolset of agent finance/invoice only",
		setup: func(t *testing.T, w *world) attempt {
			return attempt{subject: w.hop(t, w.person(t, "alice", "ledger.read payments.execute"), "pod-invoice", GatewayAudience("acme"), ""),
				actor: "pod-gateway", target: agentID("finance", "payments")}
		},
	}, {
		name: "the gateway widening the agent's token", code: CodeInvalidScope, reason: ReasonScopeWidened, says: "ledger.write",
		setup: func(t *testing.T, w *world) attempt {
			return attempt{subject: w.hop(t, w.person(t, "alice", "ledger.read ledger.write"), "pod-invoice", GatewayAudience("acme"), "ledger.read"),
				actor: "pod-gateway", target: ledger, scope: "ledger.write"}
		},
	}, {
		name: "the gateway for an agent suspended since", code: CodeInvalidRequest, reason: ReasonActorNotRunnable, says: "Suspended",
		setup: func(t *testing.T, w *world) attempt {
			toGateway := w.hop(t, w.person(t, "alice", "ledger.read"), "pod-invoice", GatewayAudience("acme"), "")
			w.agents["pod-invoice"].Runnable, w.agents["pod-invoice"].NotRunnable = false, "it is Suspended"
			return attempt{subject: toGateway, actor: "pod-gateway", target: ledger}
		},
	}, {
		name: "the gateway with a token of a session logged out since", code: CodeInvalidRequest, reason: ReasonSubjectRevoked, says: "logged out",
		setup: func(t *testing.T, w *world) attempt {
			toGateway := w.hop(t, w.person(t, "alice", "ledger.read"), "pod-invoice", GatewayAudience("acme"), "")
			w.revoked["session-alice"] = "logged out"
			return attempt{subject: toGateway, actor: "pod-gateway", target: ledger}
		},
	}, {
		name: "the gateway with another tenant's token for its gateway", code: CodeInvalidRequest, reason: ReasonSubjectInvalid, says: "UnknownKey",
		setup: func(t *testing.T, w *world) attempt {
			toGateway := w.hopAt(t, "globex", w.person(t, "alice", "ledger.read"), "pod-globex", GatewayAudience("globex"), "")
			return attempt{subject: toGateway, actor: "pod-gateway", target: ledger}
		},
	}, {
		name: "an agent presenting its token for the gateway itself, to skip the gateway", code: CodeInvalidRequest, reason: ReasonSubjectInvalid, says: "WrongAudience",
		setup: func(t *testing.T, w *world) attempt {
			toGateway := w.hop(t, w.person(t, "alice", "ledger.read"), "pod-invoice", GatewayAudience("acme"), "")
			return attempt{subject: toGateway, actor: "pod-invoice", target: ledger}
		},
	}, {
		name: "a forged subject token", code: CodeInvalidRequest, reason: ReasonSubjectInvalid, says: "BadSignature",
		setup: func(t *testing.T, w *world) attempt {
			tok := w.person(t, "bob", "ledger.read")
			parts := strings.Split(tok, ".")
			alice := strings.Split(w.person(t, "alice", "ledger.read ledger.write"), ".")
			return attempt{subject: parts[0] + "." + alice[1] + "." + parts[2], actor: "pod-invoice", target: ledger}
		},
	}}
	if len(cases) < 25 {
		t.Fatalf("%d cases; the issue asks for at least 25", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			a := tc.setup(t, w)
			if a.tenant == "" {
				a.tenant = "acme"
			}
			before := len(w.recorded.events)
			resp, err := w.exchangeAt(a.tenant, a.subject, a.actor, a.target, a.scope)
			if err == nil {
				t.Fatalf("exchanged: %+v", resp)
			}
			if err.Code != tc.code || err.Status != http.StatusBadRequest || !strings.Contains(err.Description, tc.says) {
				t.Errorf("refused with %d %s %q, want 400 %s saying %q", err.Status, err.Code, err.Description, tc.code, tc.says)
			}
			if len(w.recorded.events) != before+1 {
				t.Fatalf("%d audit records for one refusal", len(w.recorded.events)-before)
			}
			ev := w.recorded.last()
			if ev.Action != audit.ActionTokenRefused || ev.Decision != audit.DecisionDeny || ev.Policy != tc.reason || ev.Reason != err.Description {
				t.Errorf("audit record %+v, want token.refused with policy %s", ev, tc.reason)
			}
			for k, v := range ev.Details {
				if looksLikeJWT.MatchString(v) {
					t.Errorf("the record holds what looks like a token in %s", k)
				}
			}
		})
	}
}
