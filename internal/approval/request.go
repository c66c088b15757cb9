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

package approval

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
)

// Held is one call as custos-gateway holds it for approval.
type Held struct {
	Call
	// AgentUID binds the request to this Agent, not a successor of the
	// same name.
	AgentUID string
	// Session is the person's session; Chain the actors, described.
	Session string
	Chain   string
	// CanonicalArguments are the arguments' RFC 8785 form (what the
	// approvers are shown and the digest covers), and RawArguments what
	// goes to the tool server (the digest covers it too: numbers a
	// 64-bit float cannot tell apart are two calls).
	CanonicalArguments []byte
	RawArguments       []byte
	// DecisionRecord is the agent's decision record as canonical JSON,
	// or empty.
	DecisionRecord string
	TraceID        string
}

// Digest is the call's digest: sha256 over the canonical JSON of the
// agent's UID, the Toolset, the tool, the arguments, the person and the
// session. A retry of the same call has the same digest; any other call,
// even the same arguments for another person or session, has another.
func (h *Held) Digest() string {
	var args any = map[string]any{}
	if len(h.CanonicalArguments) > 0 {
		args = string(h.CanonicalArguments)
	}
	doc := map[string]any{
		"agentUID":  h.AgentUID,
		"toolset":   h.Toolset.Namespace + "/" + h.Toolset.Name,
		"tool":      h.Tool,
		"arguments": args,
		"person":    h.Person,
		"session":   h.Session,
	}
	if len(h.RawArguments) > 0 {
		sum := sha256.Sum256(h.RawArguments)
		doc["raw"] = hex.EncodeToString(sum[:])
	}
	c, err := audit.CanonicalValue(doc)
	if err != nil {
		// Strings only: cannot fail.
		panic(err)
	}
	sum := sha256.Sum256(c)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// DigestLabel is the label value custos-gateway finds a call's requests
// by: the digest's first 40 hex digits.
func DigestLabel(digest string) string {
	h := strings.TrimPrefix(digest, "sha256:")
	if len(h) > 40 {
		h = h[:40]
	}
	return h
}

// RequestName is the name of the n-th request (from 1) of a call: the
// agent's name, 16 hex digits of the digest and n. The same call retried
// finds the same name, and two gateways holding it at once create one
// request between them.
func RequestName(agent, digest string, n int) string {
	if len(agent) > 200 {
		agent = strings.TrimRight(agent[:200], "-.")
	}
	return fmt.Sprintf("%s-%s-%d", agent, DigestLabel(digest)[:16], n)
}

// maxArguments bounds the arguments a request shows its approvers.
const maxArguments = 4096

// Request is the ApprovalRequest for h under req, the n-th for its
// digest, created at now.
func Request(h *Held, req *Requirement, n int, now time.Time) *custosv1alpha1.ApprovalRequest {
	digest := h.Digest()
	a := h.Agent
	return &custosv1alpha1.ApprovalRequest{
		ObjectMeta: requestMeta(a, RequestName(a.Name, digest, n), digest),
		Spec: custosv1alpha1.ApprovalRequestSpec{
			Agent:              custosv1alpha1.ApprovalAgent{Name: a.Name, UID: h.AgentUID},
			Toolset:            h.Toolset,
			Tool:               h.Tool,
			Access:             h.Access,
			Irreversible:       h.Irreversible,
			CallDigest:         digest,
			ArgumentsDigest:    argumentsDigest(h.CanonicalArguments),
			Arguments:          shownArguments(h.Arguments),
			Person:             h.Person,
			Session:            h.Session,
			Chain:              h.Chain,
			DecisionRecord:     h.DecisionRecord,
			Policies:           req.Policies,
			Quorum:             req.Quorum,
			SeparationOfDuties: req.SeparationOfDuties,
			ExpiresAt:          metav1.NewTime(now.Add(req.Timeout).Truncate(time.Second)),
			TraceID:            h.TraceID,
		},
	}
}

// requestMeta is the metadata of agent's request name for digest:
// labelled with the agent, its UID, the digest and its tenant, and owned
// by the Agent (gone with it, never blocking its deletion).
func requestMeta(agent *custosv1alpha1.Agent, name, digest string) metav1.ObjectMeta {
	m := metav1.ObjectMeta{
		Name:      name,
		Namespace: agent.Namespace,
		Labels: map[string]string{
			custosv1alpha1.AgentLabel:      agent.Name,
			custosv1alpha1.AgentUIDLabel:   string(agent.UID),
			custosv1alpha1.CallDigestLabel: DigestLabel(digest),
			custosv1alpha1.ManagedByLabel:  custosv1alpha1.ManagedByValue,
		},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: custosv1alpha1.GroupVersion.String(), Kind: "Agent", Name: agent.Name, UID: agent.UID}},
	}
	if t := agent.Labels[custosv1alpha1.TenantLabel]; t != "" {
		m.Labels[custosv1alpha1.TenantLabel] = t
	}
	return m
}

func argumentsDigest(canonical []byte) string {
	if len(canonical) == 0 {
		canonical = []byte("{}")
	}
	sum := sha256.Sum256(canonical)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// shownArguments is what approvers see: the arguments with secrets
// redacted, as canonical JSON, cut at maxArguments.
func shownArguments(args map[string]any) string {
	if args == nil {
		args = map[string]any{}
	}
	c, err := audit.CanonicalValue(audit.RedactValue(args))
	if err != nil {
		return fmt.Sprintf("(the arguments cannot be shown: %v)", err)
	}
	s := string(c)
	if len(s) > maxArguments {
		s = strings.ToValidUTF8(s[:maxArguments], "") + "…(cut)"
	}
	return s
}
