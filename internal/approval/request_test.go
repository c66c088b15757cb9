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
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
)

// held is a call as custos-gateway holds it: arguments decoded from raw
// JSON and canonicalized.
func held(t *testing.T, raw string) *Held {
	t.Helper()
	args := jsonArgs(t, raw)
	canonical, err := audit.CanonicalValue(args)
	if err != nil {
		t.Fatal(err)
	}
	return &Held{
		Call: Call{
			Tool: "pay", Access: custosv1alpha1.ToolAccessWrite, Irreversible: true,
			Toolset:   custosv1alpha1.ToolsetReference{Name: "payments", Namespace: "finance"},
			Arguments: args, Person: "alice", Groups: []string{"staff"},
			Agent: testAgent(map[string]string{custosv1alpha1.TenantLabel: "acme"}),
		},
		AgentUID: "agent-uid", Session: "session-1", Chain: "alice -> bot",
		CanonicalArguments: canonical, TraceID: "trace-1",
	}
}

var digestPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func TestDigest(t *testing.T) {
	base := held(t, `{"amount": 1500, "payee": {"iban": "FR76", "name": "Bob"}, "memo": "rent"}`)
	d := base.Digest()
	if !digestPattern.MatchString(d) {
		t.Fatalf("digest %q is not sha256:<64 hex>", d)
	}
	if again := held(t, `{"memo": "rent", "payee": {"name": "Bob", "iban": "FR76"}, "amount": 1500.0}`).Digest(); again != d {
		t.Errorf("the same call with its members in another order has digest %s; want %s", again, d)
	}
	// What is not the call does not change it: a retry has another trace.
	same := held(t, `{"amount": 1500, "payee": {"iban": "FR76", "name": "Bob"}, "memo": "rent"}`)
	same.TraceID, same.Chain, same.DecisionRecord, same.Groups = "trace-2", "alice -> other", `{"why":"x"}`, nil
	if same.Digest() != d {
		t.Error("the trace, chain, decision record or groups changed the digest")
	}
	for name, change := range map[string]func(h *Held){
		"agent UID":         func(h *Held) { h.AgentUID = "agent-uid-2" },
		"toolset name":      func(h *Held) { h.Toolset.Name = "payments2" },
		"toolset namespace": func(h *Held) { h.Toolset.Namespace = "finance2" },
		"tool":              func(h *Held) { h.Tool = "refund" },
		"person":            func(h *Held) { h.Person = "bob" },
		"session":           func(h *Held) { h.Session = "session-2" },
		"amount": func(h *Held) {
			*h = *held(t, `{"amount": 1501, "payee": {"iban": "FR76", "name": "Bob"}, "memo": "rent"}`)
		},
		"nested argument": func(h *Held) {
			*h = *held(t, `{"amount": 1500, "payee": {"iban": "DE89", "name": "Bob"}, "memo": "rent"}`)
		},
		"extra argument": func(h *Held) {
			*h = *held(t, `{"amount": 1500, "payee": {"iban": "FR76", "name": "Bob"}, "memo": "rent", "x": null}`)
		},
		"argument type": func(h *Held) {
			*h = *held(t, `{"amount": "1500", "payee": {"iban": "FR76", "name": "Bob"}, "memo": "rent"}`)
		},
	} {
		h := held(t, `{"amount": 1500, "payee": {"iban": "FR76", "name": "Bob"}, "memo": "rent"}`)
		change(h)
		if h.Digest() == d {
			t.Errorf("another %s, the same digest", name)
		}
	}
	// No arguments is not another call's arguments.
	none := held(t, `{}`)
	none.CanonicalArguments = nil
	if none.Digest() == d {
		t.Error("no arguments, the same digest as some")
	}
}

func TestDigestLabelAndRequestName(t *testing.T) {
	d := held(t, `{"a": 1}`).Digest()
	l := DigestLabel(d)
	if len(l) != 40 || !strings.HasPrefix(d, "sha256:"+l) {
		t.Errorf("DigestLabel(%s) = %q; want its first 40 hex digits", d, l)
	}
	if errs := validation.IsValidLabelValue(l); len(errs) != 0 {
		t.Errorf("DigestLabel is not a label value: %v", errs)
	}
	n1 := RequestName("bot", d, 1)
	if n1 != RequestName("bot", d, 1) {
		t.Error("RequestName is not stable")
	}
	if n1 != "bot-"+l[:16]+"-1" {
		t.Errorf("RequestName = %q; want bot-<16 hex>-1", n1)
	}
	if RequestName("bot", d, 2) == n1 || RequestName("bot2", d, 1) == n1 || RequestName("bot", held(t, `{"a": 2}`).Digest(), 1) == n1 {
		t.Error("RequestName is the same for another n, agent or digest")
	}
	long := strings.Repeat("a", 198) + "-." + strings.Repeat("b", 53) // 253 characters
	for _, n := range []int{1, 99, 1 << 30} {
		name := RequestName(long, d, n)
		if len(name) > 253 {
			t.Errorf("RequestName of a 253-character agent, n=%d: %d characters; want at most 253", n, len(name))
		}
		if errs := validation.IsDNS1123Subdomain(name); len(errs) != 0 {
			t.Errorf("RequestName %q is not a valid object name: %v", name, errs)
		}
		if sequence(name) != n {
			t.Errorf("sequence(%q) = %d; want %d", name, sequence(name), n)
		}
	}
	// An agent name ending in digits does not confuse the sequence.
	if got := sequence(RequestName("bot-7", d, 3)); got != 3 {
		t.Errorf("sequence of bot-7's third request = %d", got)
	}
}

func testRequirement() *Requirement {
	r := &Requirement{}
	p := policy("pay-over-1000", nil)
	p.Spec.Quorum = 2
	p.Spec.Timeout = &metav1.Duration{Duration: 10 * time.Minute}
	r.add(&p)
	return r
}

func TestRequest(t *testing.T) {
	h := held(t, `{"amount": 1500, "password": "hunter2hunter2", "header": "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345", "note": "ok"}`)
	now := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	req := testRequirement()
	ar := Request(h, req, 1, now)
	d := h.Digest()
	if ar.Name != RequestName("bot", d, 1) || ar.Namespace != "ns" {
		t.Errorf("request %s/%s; want ns/%s", ar.Namespace, ar.Name, RequestName("bot", d, 1))
	}
	for k, v := range map[string]string{
		custosv1alpha1.CallDigestLabel: DigestLabel(d),
		custosv1alpha1.AgentLabel:      "bot",
		custosv1alpha1.AgentUIDLabel:   "agent-uid",
		custosv1alpha1.ManagedByLabel:  custosv1alpha1.ManagedByValue,
		custosv1alpha1.TenantLabel:     "acme",
	} {
		if ar.Labels[k] != v {
			t.Errorf("label %s = %q; want %q", k, ar.Labels[k], v)
		}
	}
	if len(ar.OwnerReferences) != 1 || ar.OwnerReferences[0].Kind != "Agent" || ar.OwnerReferences[0].UID != "agent-uid" {
		t.Errorf("owner references %+v; want the Agent", ar.OwnerReferences)
	}
	s := ar.Spec
	if s.CallDigest != d || !digestPattern.MatchString(s.ArgumentsDigest) || s.Tool != "pay" || s.Person != "alice" || s.Session != "session-1" ||
		s.Agent.UID != "agent-uid" || s.Toolset.Name != "payments" || s.Quorum != 2 || s.TraceID != "trace-1" || len(s.Policies) != 1 {
		t.Errorf("spec %+v", s)
	}
	if want := now.Add(10 * time.Minute).Truncate(time.Second); !s.ExpiresAt.Time.Equal(want) {
		t.Errorf("expiresAt %s; want %s", s.ExpiresAt.Time, want)
	}
	for _, secret := range []string{"hunter2hunter2", "abcdefghijklmnopqrstuvwxyz012345"} {
		if strings.Contains(s.Arguments, secret) {
			t.Errorf("spec.arguments shows the secret %q: %s", secret, s.Arguments)
		}
	}
	if !strings.Contains(s.Arguments, audit.Redacted) || !strings.Contains(s.Arguments, `"amount":1500`) || !strings.Contains(s.Arguments, `"note":"ok"`) {
		t.Errorf("spec.arguments = %s; want the secrets redacted and the rest shown", s.Arguments)
	}
	// The digest covers the arguments as called, not as shown.
	if s.ArgumentsDigest != argumentsDigest(h.CanonicalArguments) {
		t.Error("argumentsDigest is not over the canonical arguments")
	}

	long := held(t, `{"text": "`+strings.Repeat("lorem ipsum dolor ", 1000)+`"}`)
	shown := Request(long, req, 1, now).Spec.Arguments
	if !strings.HasSuffix(shown, "…(cut)") || len(shown) > maxArguments+len("…(cut)") {
		t.Errorf("long arguments shown as %d bytes ending %q; want them cut at %d", len(shown), shown[max(0, len(shown)-20):], maxArguments)
	}
	if n := len([]rune(shown)); n > 4200 {
		t.Errorf("cut arguments are %d characters; the CRD allows 4200", n)
	}
	// A cut through a multi-byte character leaves valid UTF-8.
	multi := held(t, `{"text": "`+strings.Repeat("é", 3000)+`"}`)
	if shown := Request(multi, req, 1, now).Spec.Arguments; !strings.HasSuffix(shown, "…(cut)") || strings.ContainsRune(shown, '\uFFFD') {
		t.Errorf("cut multi-byte arguments: %q", shown[max(0, len(shown)-20):])
	}
}

// A secret under a secret-named key is a secret whatever its JSON type:
// approvers read spec.arguments.
func TestRequestRedactsSecretsOfAnyType(t *testing.T) {
	for _, raw := range []string{
		`{"password": ["hunter2hunter2"]}`,
		`{"password": {"value": "hunter2hunter2"}}`,
		`{"apiKey": 73914428817734}`,
	} {
		shown := Request(held(t, raw), testRequirement(), 1, t0).Spec.Arguments
		if strings.Contains(shown, "hunter2hunter2") || strings.Contains(shown, "73914428817734") {
			t.Errorf("%s is shown to approvers as %s", raw, shown)
		}
	}
}
