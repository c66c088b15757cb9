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
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Limits of the actor chain.
const (
	// DefaultMaxDepth is how many agent hops a chain may hold unless the
	// Agent says otherwise.
	DefaultMaxDepth = 2
	// MaxDepth is the most any Agent may allow.
	MaxDepth = 4
)

// Claims are a Custos access token's claims (RFC 9068, RFC 8693 §4).
type Claims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	// Expiry, IssuedAt and NotBefore are seconds since the epoch.
	Expiry    int64  `json:"exp"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	ID        string `json:"jti"`
	// ClientID is the agent acting last: the outermost actor's subject.
	ClientID string `json:"client_id"`
	// Scope is space-separated (RFC 6749 §3.3).
	Scope string `json:"scope,omitempty"`
	// Act is the actor chain, the newest actor outermost.
	Act *Actor `json:"act,omitempty"`
	// Session is the person's session the chain started in.
	Session string `json:"sid,omitempty"`
	// Groups are the person's groups as their trusted issuer said at the
	// first hop (RFC 9068 §2.2.3.1); later hops check delegation by them.
	Groups []string `json:"groups,omitempty"`

	// Tenant is the DataBoundary tenant whose issuer signed the token.
	Tenant string `json:"custos_tenant"`
	// OriginalIssuer and OriginalSubject name the person as the identity
	// provider that first authenticated them did.
	OriginalIssuer  string `json:"custos_orig_iss,omitempty"`
	OriginalSubject string `json:"custos_orig_sub,omitempty"`
	// Parent is the jti of the token this one was exchanged from, so that
	// the audit trail can rebuild the delegation tree.
	Parent string `json:"custos_parent_jti,omitempty"`
}

// Actor is one hop of an actor chain (RFC 8693 §4.1): who acts, and in
// Act, who acted before it. Only the outermost actor is the current one;
// the nested ones are informational, and no policy may rest on them
// alone, so the STS checks the whole chain at every exchange.
type Actor struct {
	Subject string `json:"sub"`
	Issuer  string `json:"iss,omitempty"`
	Act     *Actor `json:"act,omitempty"`
}

// Chain lists the actors of c, newest first. Every Actor value is a copy
// without its Act.
func (c *Claims) Chain() []Actor {
	var out []Actor
	for a := c.Act; a != nil; a = a.Act {
		out = append(out, Actor{Subject: a.Subject, Issuer: a.Issuer})
	}
	return out
}

// Depth is how many actors the chain holds.
func (c *Claims) Depth() int { return len(c.Chain()) }

// Delegate returns the actor chain of a token acted on by actor after c:
// actor outermost, c's chain nested in it. c is not changed.
func (c *Claims) Delegate(actor Actor) *Actor {
	out := &Actor{Subject: actor.Subject, Issuer: actor.Issuer}
	tail := out
	for a := c.Act; a != nil; a = a.Act {
		tail.Act = &Actor{Subject: a.Subject, Issuer: a.Issuer}
		tail = tail.Act
	}
	return out
}

// Errors of CheckChain.
var (
	ErrChainTooDeep = errors.New("the actor chain is longer than allowed")
	ErrActorRepeats = errors.New("an actor appears twice in the chain")
)

// EffectiveMaxDepth is the chain depth a delegation's maxDepth allows:
// DefaultMaxDepth for 0, never over MaxDepth.
func EffectiveMaxDepth(maxDepth int) int {
	switch {
	case maxDepth <= 0:
		return DefaultMaxDepth
	case maxDepth > MaxDepth:
		return MaxDepth
	}
	return maxDepth
}

// CheckChain checks a chain that actor would extend: no more than
// maxDepth actors once extended, and actor not in it already (a loop, or
// an agent relaying to itself through another). maxDepth is capped at
// MaxDepth; 0 means DefaultMaxDepth.
func (c *Claims) CheckChain(actor Actor, maxDepth int) error {
	maxDepth = EffectiveMaxDepth(maxDepth)
	chain := c.Chain()
	if slices.ContainsFunc(chain, func(a Actor) bool { return a.Subject == actor.Subject }) {
		return fmt.Errorf("%w: %s already acted in it (%s)", ErrActorRepeats, actor.Subject, DescribeChain(chain))
	}
	if len(chain)+1 > maxDepth {
		return fmt.Errorf("%w: %s would be hop %d of at most %d (%s)", ErrChainTooDeep, actor.Subject, len(chain)+1, maxDepth, DescribeChain(chain))
	}
	return nil
}

// DescribeChain names the actors of a chain, newest first, for records and errors.
func DescribeChain(chain []Actor) string {
	if len(chain) == 0 {
		return "no actor yet"
	}
	names := make([]string, len(chain))
	for i, a := range chain {
		names[i] = a.Subject
	}
	return "newest first: " + strings.Join(names, " <- ")
}

// Scopes splits a space-separated scope.
func Scopes(scope string) []string { return strings.Fields(scope) }

// NarrowScope is the scope a token exchanged with these limits gets: the
// requested scopes (all of the subject's when none is requested) that the
// subject token holds and every limit allows. It returns the scopes
// explicitly asked for that are not granted too; an exchange asking for
// any of those is refused (invalid_scope): a scope only ever narrows.
func NarrowScope(subject, requested string, limits ...[]string) (granted, refused []string) {
	want, explicit := Scopes(requested), true
	if len(want) == 0 {
		want, explicit = Scopes(subject), false
	}
	have := Scopes(subject)
	for _, s := range want {
		ok := slices.Contains(have, s)
		for _, l := range limits {
			ok = ok && slices.Contains(l, s)
		}
		if ok {
			if !slices.Contains(granted, s) {
				granted = append(granted, s)
			}
		} else if explicit && !slices.Contains(refused, s) {
			refused = append(refused, s)
		}
	}
	return granted, refused
}

// Lifetime is how long an exchanged token lives: ttl, but never past the
// parent's expiry.
func Lifetime(now time.Time, ttl time.Duration, parentExpiry int64) (time.Time, error) {
	exp := now.Add(ttl)
	if parent := time.Unix(parentExpiry, 0); parent.Before(exp) {
		exp = parent
	}
	if !exp.After(now) {
		return time.Time{}, errors.New("the subject token has expired")
	}
	return exp, nil
}
