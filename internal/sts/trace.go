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
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/custos-dev/custos/internal/audit"
)

// Hop is one exchange decision as the audit trail keeps it: a token
// exchanged (JTI set) or refused, from the token Parent.
type Hop struct {
	Time    time.Time
	JTI     string
	Parent  string
	Actor   string
	Person  string
	Target  string
	Scope   string
	Refused bool
	// Reason is why it was refused (the reason and the description).
	Reason string
}

// HopsFrom picks custos-sts's decisions out of audit records.
func HopsFrom(records []audit.Record) []Hop {
	var out []Hop
	for _, r := range records {
		if r.Action != audit.ActionTokenExchanged && r.Action != audit.ActionTokenRefused {
			continue
		}
		d := r.Details
		h := Hop{Time: r.Time, JTI: d["jti"], Parent: d["parentJTI"], Actor: d["actor"], Person: d["person"],
			Target: d["target"], Scope: d["scope"], Refused: r.Action == audit.ActionTokenRefused}
		if h.Refused {
			h.Reason = r.Policy + ": " + r.Reason
		}
		out = append(out, h)
	}
	return out
}

// Trace draws the delegation tree through jti: the chain of exchanges
// from the person's token down to the token jti, then everything
// exchanged from it and below, refusals included, oldest first.
func Trace(hops []Hop, jti string) (string, error) {
	byJTI := map[string]Hop{}
	children := map[string][]Hop{}
	for _, h := range hops {
		if h.JTI != "" {
			byJTI[h.JTI] = h
		}
		children[h.Parent] = append(children[h.Parent], h)
	}
	for p := range children {
		slices.SortStableFunc(children[p], func(a, b Hop) int { return a.Time.Compare(b.Time) })
	}
	self, ok := byJTI[jti]
	if !ok {
		if len(children[jti]) == 0 {
			return "", fmt.Errorf("no exchange of or from token %s on the audit trail", jti)
		}
		// jti is a person's token from their identity provider: the root.
		var b strings.Builder
		fmt.Fprintf(&b, "token %s (not issued by custos-sts: a person's token)\n", jti)
		descend(&b, children, jti, "", map[string]bool{})
		return b.String(), nil
	}
	// The ancestors, root first.
	chain := []Hop{self}
	seen := map[string]bool{jti: true}
	for p := self.Parent; ; {
		h, ok := byJTI[p]
		if !ok || seen[p] {
			break
		}
		seen[p] = true
		chain = append([]Hop{h}, chain...)
		p = h.Parent
	}
	var b strings.Builder
	fmt.Fprintf(&b, "person %s, token %s\n", chain[0].Person, chain[0].Parent)
	indent := ""
	for i, h := range chain {
		fmt.Fprintf(&b, "%s└─ %s", indent, describeHop(h))
		if i == len(chain)-1 {
			b.WriteString("   ◀ " + jti)
		}
		b.WriteString("\n")
		indent += "   "
	}
	descend(&b, children, jti, indent, map[string]bool{jti: true})
	return b.String(), nil
}

// descend draws what was exchanged from parent, and below.
func descend(b *strings.Builder, children map[string][]Hop, parent, indent string, seen map[string]bool) {
	for _, h := range children[parent] {
		fmt.Fprintf(b, "%s└─ %s\n", indent, describeHop(h))
		if h.JTI != "" && !seen[h.JTI] {
			seen[h.JTI] = true
			descend(b, children, h.JTI, indent+"   ", seen)
		}
	}
}

func describeHop(h Hop) string {
	at := h.Time.UTC().Format(time.RFC3339)
	if h.Refused {
		return fmt.Sprintf("%s refused  %s → %s: %s", at, h.Actor, h.Target, h.Reason)
	}
	return fmt.Sprintf("%s exchanged %s: %s → %s, scope %q", at, h.JTI, h.Actor, h.Target, h.Scope)
}
