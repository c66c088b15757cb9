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
	"testing"
	"time"

	"github.com/go-logr/logr"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestTenantIssuers: an issuer for each tenant that trusts an identity
// provider, the same on every replica, gone when the tenant trusts none.
func TestTenantIssuers(t *testing.T) {
	ctx := context.Background()
	ns := fixtures.CreateTenantNamespace(t, k8sClient, fixtures.UniqueTenant("sts-system"))
	trusting, silent := fixtures.UniqueTenant("sts"), fixtures.UniqueTenant("sts")
	b := fixtures.Create(t, k8sClient, fixtures.DataBoundary(trusting, func(b *custosv1alpha1.DataBoundary) {
		b.Spec.TrustedIssuers = []custosv1alpha1.TrustedIssuer{{Issuer: "https://idp.acme.example", Audiences: []string{"custos-sts"}}}
	}))
	fixtures.Create(t, k8sClient, fixtures.DataBoundary(silent))
	clk := clocktesting.NewFakePassiveClock(time.Now())
	replica := func() *TenantIssuers {
		return &TenantIssuers{Reader: k8sClient, Keys: &KeyStore{Client: k8sClient, Namespace: ns, Clock: clk},
			Base: "https://custos-sts.custos-system.svc", Clock: clk, Log: logr.Discard()}
	}
	a, c := replica(), replica()
	for _, r := range []*TenantIssuers{a, c} {
		if err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ia, ok := a.Issuer(trusting)
	if !ok || ia.URL != "https://custos-sts.custos-system.svc/tenants/"+trusting {
		t.Fatalf("the trusting tenant's issuer: %+v, %v", ia, ok)
	}
	ic, _ := c.Issuer(trusting)
	if kids(ia.Keys)[0] != kids(ic.Keys)[0] {
		t.Errorf("two replicas sign with %v and %v", kids(ia.Keys), kids(ic.Keys))
	}
	if _, ok := a.Issuer(silent); ok {
		t.Error("an issuer for a tenant that trusts no identity provider")
	}
	// The tenant stops trusting any provider: its issuer goes.
	cur := &custosv1alpha1.DataBoundary{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(b), cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.TrustedIssuers = nil
	if err := k8sClient.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Issuer(trusting); ok {
		t.Error("the issuer stayed after its tenant stopped trusting any identity provider")
	}
}
