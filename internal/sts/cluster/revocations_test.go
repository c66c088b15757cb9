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

package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestRevokedTokensAndSessions: a session revoked on the tenant's list
// stops every token of it at every hop; a revoked jti stops that token
// only; another tenant's list changes nothing; an entry past its time is
// ignored and dropped; each refusal says who revoked what, when and why.
func TestRevokedTokensAndSessions(t *testing.T) {
	w := newOnCluster(t, "rev")
	ctx, now, provider, tenant, ns, system, issuer, clk, exchange := context.Background(), w.clk.Now(), w.provider, w.tenant, w.ns, w.system, w.issuer, w.clk, w.exchange
	other := fixtures.UniqueTenant("rev")
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "ledger", tenant))
	_, _, invoiceToken := agentWithPod(t, ns, tenant, "invoice",
		&custosv1alpha1.AgentDelegation{Groups: []string{"finance-clerks"}}, fixtures.WithToolsets("ledger"))
	_, _, reportsToken := agentWithPod(t, ns, tenant, "reports",
		&custosv1alpha1.AgentDelegation{Groups: []string{"finance-clerks"}, Agents: []custosv1alpha1.AgentReference{{Name: "invoice"}}},
		fixtures.WithToolsets("ledger"))
	ledger := ToolsetResource(ns, "ledger")
	toReports := "spiffe://cluster.local/ns/" + ns + "/sa/agent-reports"
	person := provider.Token(t, "alice", "custos-sts", now.Add(time.Hour), nil) // jti jti-alice, sid s-alice
	revoke := func(tenant string, e Revocation) {
		t.Helper()
		if err := Revoke(ctx, k8sClient, system, tenant, e, clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(what string, serr *sts.Error, says string) {
		t.Helper()
		if serr == nil || !strings.Contains(serr.Description, says) {
			t.Errorf("%s: %+v, want refused saying %q", what, serr, says)
			return
		}
		if ev := w.last(); ev.Action != audit.ActionTokenRefused || ev.Policy != sts.ReasonSubjectRevoked || ev.Reason != serr.Description {
			t.Errorf("%s: audit record %+v, want token.refused with policy %s", what, ev, sts.ReasonSubjectRevoked)
		}
	}

	hop, serr := exchange(person, invoiceToken, toReports, "")
	if serr != nil {
		t.Fatal(serr)
	}
	hopClaims, err := issuer.Verify(hop.AccessToken, toReports, now)
	if err != nil {
		t.Fatal(err)
	}

	// Another tenant's list names alice's session: nothing changes here.
	revoke(other, Revocation{Kind: RevokeSession, Value: "s-alice", Until: metav1.NewTime(now.Add(time.Hour)), By: "ops", Reason: "elsewhere"})
	if _, serr := exchange(hop.AccessToken, reportsToken, ledger, ""); serr != nil {
		t.Errorf("a session revoked in tenant %s refused an exchange in %s: %v", other, tenant, serr)
	}

	// The hop's jti revoked: that token is refused, the person's is not.
	revoke(tenant, Revocation{Kind: RevokeToken, Value: hopClaims.ID, Until: metav1.NewTime(now.Add(10 * time.Minute)), By: "ops", Reason: "leaked in a log"})
	_, serr = exchange(hop.AccessToken, reportsToken, ledger, "")
	refused("the revoked hop token", serr, "token "+hopClaims.ID+" was revoked at ")
	refused("the revoked hop token", serr, "by ops: leaked in a log")
	if _, serr := exchange(person, invoiceToken, ledger, ""); serr != nil {
		t.Errorf("the person's own token after its child was revoked: %v", serr)
	}

	// A new hop from alice's token, then her session revoked: both her
	// token and every token of the session are refused, at every hop.
	hop2, serr := exchange(person, invoiceToken, toReports, "")
	if serr != nil {
		t.Fatal(serr)
	}
	revoke(tenant, Revocation{Kind: RevokeSession, Value: "s-alice", Until: metav1.NewTime(now.Add(time.Hour)), By: "ops", Reason: "logged out"})
	_, serr = exchange(person, invoiceToken, ledger, "")
	refused("alice's token in a revoked session", serr, "session s-alice was revoked")
	_, serr = exchange(hop2.AccessToken, reportsToken, ledger, "")
	refused("a second-hop token of a revoked session", serr, "by ops: logged out")
	// bob's session is not alice's.
	bob := provider.Token(t, "bob", "custos-sts", now.Add(time.Hour), nil)
	if _, serr := exchange(bob, invoiceToken, ledger, ""); serr != nil {
		t.Errorf("bob, whose session nobody revoked: %v", serr)
	}

	// Past its time an entry no longer counts, and the next write drops it.
	clk.SetTime(now.Add(2 * time.Hour))
	if _, serr := exchange(provider.Token(t, "alice", "custos-sts", clk.Now().Add(time.Hour), nil), invoiceToken, ledger, ""); serr != nil {
		t.Errorf("alice's new token once the revocation ran out: %v", serr)
	}
	revoke(tenant, Revocation{Kind: RevokeSession, Value: "s-bob", Until: metav1.NewTime(clk.Now().Add(time.Hour))})
	cm := &corev1.ConfigMap{}
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: system, Name: RevocationListName(tenant)}, cm); err != nil {
		t.Fatal(err)
	}
	if len(cm.Data) != 1 {
		t.Errorf("the list holds %d entries after the others ran out, want s-bob's alone: %v", len(cm.Data), cm.Data)
	}
}

// TestRevokeRefusesNonsense: Revoke says what is wrong with what it is
// asked, and writes nothing.
func TestRevokeRefusesNonsense(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	system := fixtures.CreateTenantNamespace(t, k8sClient, fixtures.UniqueTenant("custos-system"))
	for _, tc := range []struct {
		e    Revocation
		says string
	}{
		{Revocation{Kind: "user", Value: "alice", Until: metav1.NewTime(now.Add(time.Hour))}, `kind "user": must be jti (a token) or sid (a session)`},
		{Revocation{Kind: RevokeToken, Until: metav1.NewTime(now.Add(time.Hour))}, "the jti to revoke is empty"},
		{Revocation{Kind: RevokeSession, Value: "s-1", Until: metav1.NewTime(now.Add(-time.Minute))}, "is not in the future"},
	} {
		err := Revoke(ctx, k8sClient, system, "acme", tc.e, now)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Revoke(%+v) = %v, want an error saying %q", tc.e, err, tc.says)
		}
	}
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: system, Name: RevocationListName("acme")}, &corev1.ConfigMap{}); err == nil {
		t.Error("a refused revocation created the list")
	}
}

// TestRevokeConcurrently: writers revoking at once (as two people, or two
// replicas' callers, would) all land: the losers read again and retry.
func TestRevokeConcurrently(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	system := fixtures.CreateTenantNamespace(t, k8sClient, fixtures.UniqueTenant("custos-system"))
	tenant := fixtures.UniqueTenant("rev")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			errs[i] = Revoke(ctx, k8sClient, system, tenant, Revocation{Kind: RevokeToken, Value: fmt.Sprintf("jti-%d", i),
				Until: metav1.NewTime(now.Add(time.Hour))}, now)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	r := &Revocations{Reader: k8sClient, Namespace: system}
	for i := range errs {
		if _, revoked := r.Revoked(tenant, fmt.Sprintf("jti-%d", i), "", ""); !revoked {
			t.Errorf("jti-%d is not revoked after its Revoke returned", i)
		}
	}
}

// failingReader fails every read.
type failingReader struct{ client.Reader }

func (failingReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return errors.New("connection refused")
}

// TestRevocationsFailClosed: a list that cannot be read revokes, with the
// reason; a list that does not exist revokes nothing.
func TestRevocationsFailClosed(t *testing.T) {
	why, revoked := (&Revocations{Reader: failingReader{}, Namespace: "custos-system"}).Revoked("acme", "jti-1", "s-1", "")
	if !revoked || !strings.Contains(why, "the revocation list cannot be read: connection refused") {
		t.Errorf("an unreadable list: %q, %v; want revoked", why, revoked)
	}
	if why, revoked := (&Revocations{Reader: k8sClient, Namespace: "default"}).Revoked("nobody", "jti-1", "s-1", ""); revoked {
		t.Errorf("no list at all revoked: %q", why)
	}
}
