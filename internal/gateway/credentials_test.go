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
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/test/tooldoubles"
)

// leaseValue is the material of the ledger's gateway-only credential.
const leaseValue = "lease-material-7f3a9c"

// fakeCredentials are the leases custos-gateway reads, by credential.
type fakeCredentials struct {
	mu      sync.Mutex
	leases  map[string]string
	expires time.Time
}

func (f *fakeCredentials) Lease(_ context.Context, agent *custosv1alpha1.Agent, credential string) (string, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.leases[agent.Namespace+"/"+agent.Name+"/"+credential]
	if !ok {
		return "", time.Time{}, errors.New("lease Secret custos-credentials/agent-x: not found")
	}
	return v, f.expires, nil
}

// TestGatewayCredentials: an agent's gateway-only credential for the
// ledger is set, as its header, on the calls to the ledger's server, and
// is nowhere on the record or the spans; for another Toolset it is not
// set on the ledger's calls; a lease that is missing or expired refuses
// the call (CredentialUnavailable) before the tool server.
func TestGatewayCredentials(t *testing.T) {
	w := newWorld(t)
	creds := &fakeCredentials{leases: map[string]string{"finance/invoice/ledger-key": leaseValue}, expires: w.now.Add(time.Hour)}
	w.server.Credentials = creds
	// The ledger again, keeping the header the credential is set in.
	ledger := tooldoubles.New(t, tooldoubles.Options{Tools: honestTools(pinnedLedger()), RecordHeader: "X-Ledger-Key",
		Verify: func(tok string) (any, error) { return w.keys.issuers["acme"].Verify(tok, ledgerResource, w.now) }})
	w.ledger = ledger
	w.server.Upstream.(*MCPUpstream).Client = resolving(ledger.Addr)

	setCredential := func(toolset string) {
		w.mu.Lock()
		defer w.mu.Unlock()
		a := w.agents[invoiceAgent].DeepCopy()
		a.Spec.Credentials = []custosv1alpha1.CredentialSpec{{Name: "ledger-key",
			KubernetesToken: &custosv1alpha1.KubernetesTokenCredential{Audience: "ledger"},
			Gateway:         &custosv1alpha1.GatewayCredential{Toolset: toolset, Header: "X-Ledger-Key"}}}
		w.agents[invoiceAgent] = a
	}
	lastRecord := func() audit.Event {
		t.Helper()
		e, ok := w.lastEvent()
		if !ok {
			t.Fatal("no record")
		}
		raw, _ := json.Marshal(e)
		if strings.Contains(string(raw), leaseValue) {
			t.Errorf("the lease is on the record: %s", raw)
		}
		for _, sp := range w.spans.Ended() {
			if strings.Contains(fmt.Sprint(sp.Attributes(), sp.Events()), leaseValue) {
				t.Errorf("the lease is on span %s", sp.Name())
			}
		}
		return e
	}

	// For the ledger: set on its calls.
	setCredential("ledger")
	got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil)
	if got.result == nil || got.result.IsError {
		t.Fatalf("get_invoice: %s", got.body)
	}
	if h := ledger.Headers(); !slices.Equal(h, []string{leaseValue}) {
		t.Errorf("the ledger got X-Ledger-Key %q, want the lease", h)
	}
	if e := lastRecord(); e.Action != audit.ActionToolCalled ||
		e.Details["checks"] != "caller=pass agent=pass tool=pass rate=pass decision=pass input=pass credential=pass drift=pass upstream=pass output=pass" {
		t.Errorf("the record: %+v", e)
	}

	// For another Toolset: not set on the ledger's calls, no check.
	setCredential("crm")
	got = w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil)
	if got.result == nil || got.result.IsError {
		t.Fatalf("get_invoice: %s", got.body)
	}
	if h := ledger.Headers(); !slices.Equal(h, []string{leaseValue, ""}) {
		t.Errorf("the ledger got X-Ledger-Key %q, want it the first time only", h)
	}
	if e := lastRecord(); strings.Contains(e.Details["checks"], "credential") {
		t.Errorf("checks %q: a credential for another Toolset was checked", e.Details["checks"])
	}

	// Missing, then expired: refused before the tool server.
	setCredential("ledger")
	for _, tc := range []struct {
		name   string
		change func()
	}{
		{"missing", func() { creds.mu.Lock(); delete(creds.leases, "finance/invoice/ledger-key"); creds.mu.Unlock() }},
		{"expired", func() {
			creds.mu.Lock()
			creds.leases["finance/invoice/ledger-key"], creds.expires = leaseValue, w.now.Add(-time.Second)
			creds.mu.Unlock()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.change()
			calls := ledger.Calls()
			got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil)
			if got.result == nil || !got.result.IsError || !strings.Contains(got.text(), "ledger-key") {
				t.Errorf("the caller got %s, want a refusal naming the credential", got.body)
			}
			if ledger.Calls() != calls {
				t.Errorf("the tool server was called")
			}
			e := lastRecord()
			if e.Action != audit.ActionToolRefused || e.Policy != ReasonCredentialUnavailable ||
				!strings.HasSuffix(e.Details["checks"], " credential=fail") {
				t.Errorf("the record: %s %s, checks %q", e.Action, e.Policy, e.Details["checks"])
			}
		})
	}
}

// TestCallHeadersUnderTheGatewaysOwn: a call's headers never replace the
// gateway's own (its token above all), and only the call's requests get
// them.
func TestCallHeadersUnderTheGatewaysOwn(t *testing.T) {
	var seen []http.Header
	rt := headersOf{next: bearer{token: "toolset-token", next: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = append(seen, r.Header.Clone())
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})}}
	h := http.Header{}
	h.Set("X-Ledger-Key", leaseValue)
	h.Set("Authorization", "Bearer "+leaseValue)
	h.Set("Traceparent", leaseValue)
	for _, ctx := range []context.Context{withCallHeaders(context.Background(), h), context.Background()} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://ledger.invalid/mcp", http.NoBody)
		if _, err := rt.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
	}
	if got := seen[0]; got.Get("X-Ledger-Key") != leaseValue || got.Get("Authorization") != "Bearer toolset-token" || got.Get("Traceparent") != "" {
		t.Errorf("the call's request: %v", got)
	}
	if got := seen[1]; got.Get("X-Ledger-Key") != "" {
		t.Errorf("another call's request got the credential: %v", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
