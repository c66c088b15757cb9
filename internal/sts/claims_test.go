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
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestActNestingMatchesRFC8693: a chain built hop by hop serializes as the
// example of RFC 8693 §4.1, the newest actor outermost.
func TestActNestingMatchesRFC8693(t *testing.T) {
	// The person's token, then the backend acting for them, then the web
	// application acting after the backend.
	c := &Claims{Subject: "user@example.com"}
	c.Act = c.Delegate(Actor{Subject: "backend.example.com"})
	c.Act = c.Delegate(Actor{Subject: "consumer.example.com-web-application"})
	got, err := json.Marshal(struct {
		Sub string `json:"sub"`
		Act *Actor `json:"act"`
	}{c.Subject, c.Act})
	if err != nil {
		t.Fatal(err)
	}
	const rfc = `{"sub":"user@example.com","act":{"sub":"consumer.example.com-web-application","act":{"sub":"backend.example.com"}}}`
	if string(got) != rfc {
		t.Errorf("act nesting:\n got %s\nwant %s (RFC 8693 §4.1)", got, rfc)
	}
	if chain := c.Chain(); len(chain) != 2 || chain[0].Subject != "consumer.example.com-web-application" {
		t.Errorf("Chain() = %+v, want the newest actor first", chain)
	}
	// Delegate copies: the parent's chain is not changed by its child's.
	parent := &Claims{Subject: "user@example.com", Act: &Actor{Subject: "a"}}
	child := parent.Delegate(Actor{Subject: "b"})
	child.Act.Subject = "changed"
	if parent.Act.Subject != "a" {
		t.Error("Delegate shares the parent's chain")
	}
}

func TestCheckChain(t *testing.T) {
	chain := func(actors ...string) *Claims {
		c := &Claims{Subject: "alice"}
		for _, a := range actors {
			c.Act = c.Delegate(Actor{Subject: a})
		}
		return c
	}
	cases := []struct {
		name     string
		claims   *Claims
		actor    string
		maxDepth int
		want     error
	}{
		{"a person's token, first agent", chain(), "invoice", 0, nil},
		{"second hop within the default", chain("invoice"), "ledger", 0, nil},
		{"third hop over the default of 2", chain("invoice", "ledger"), "payments", 0, ErrChainTooDeep},
		{"third hop allowed by the agent", chain("invoice", "ledger"), "payments", 3, nil},
		{"an agent asking for more than the hard limit gets the limit", chain("a", "b", "c", "d"), "e", 10, ErrChainTooDeep},
		{"four hops at the hard limit", chain("a", "b", "c"), "d", 10, nil},
		{"an actor twice: a loop", chain("invoice", "ledger"), "invoice", 4, ErrActorRepeats},
		{"an agent relaying to itself", chain("invoice"), "invoice", 4, ErrActorRepeats},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.claims.CheckChain(Actor{Subject: tc.actor}, tc.maxDepth)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("CheckChain = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNarrowScope(t *testing.T) {
	cases := []struct {
		name, subject, requested string
		limits                   [][]string
		granted, refused         []string
	}{
		{"nothing requested: the subject's scopes the limits allow", "ledger.read ledger.write crm.read", "",
			[][]string{{"ledger.read", "ledger.write"}, {"ledger.read"}}, []string{"ledger.read"}, nil},
		{"a narrower request", "ledger.read ledger.write", "ledger.read", [][]string{{"ledger.read", "ledger.write"}},
			[]string{"ledger.read"}, nil},
		{"asking for what the person lacks widens: refused", "ledger.read", "ledger.read ledger.write",
			[][]string{{"ledger.read", "ledger.write"}}, []string{"ledger.read"}, []string{"ledger.write"}},
		{"asking for what the actor's Toolsets lack: refused", "ledger.read ledger.write", "ledger.write",
			[][]string{{"ledger.read"}}, nil, []string{"ledger.write"}},
		{"nothing in common: nothing granted", "crm.read", "", [][]string{{"ledger.read"}}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			granted, refused := NarrowScope(tc.subject, tc.requested, tc.limits...)
			if !slices.Equal(granted, tc.granted) || !slices.Equal(refused, tc.refused) {
				t.Errorf("NarrowScope = %v, %v; want %v, %v", granted, refused, tc.granted, tc.refused)
			}
		})
	}
}

func TestLifetimeNeverOutlivesTheParent(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	if exp, err := Lifetime(now, 5*time.Minute, now.Add(time.Hour).Unix()); err != nil || !exp.Equal(now.Add(5*time.Minute)) {
		t.Errorf("Lifetime = %s, %v; want the TTL", exp, err)
	}
	if exp, err := Lifetime(now, 5*time.Minute, now.Add(time.Minute).Unix()); err != nil || !exp.Equal(now.Add(time.Minute)) {
		t.Errorf("Lifetime = %s, %v; want the parent's expiry", exp, err)
	}
	if _, err := Lifetime(now, 5*time.Minute, now.Unix()); err == nil {
		t.Error("Lifetime of an expired parent did not fail")
	}
}
