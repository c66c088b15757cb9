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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestGatewayCredentials: the gateway takes a lease only from the Secret
// Custos issued for this very agent (its UID and namespace), with its
// expiry; a Secret of the same name made by anyone else, or for an
// earlier agent of that name, is no lease.
func TestGatewayCredentials(t *testing.T) {
	agent := fixtures.Agent("finance", "invoice", "acme")
	agent.UID = types.UID("uid-1")
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	lease := func(name string, labels map[string]string) *corev1.Secret {
		l := map[string]string{
			custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue, custosv1alpha1.AgentLabel: "invoice",
			custosv1alpha1.AgentUIDLabel: "uid-1", custosv1alpha1.AgentNamespaceLabel: "finance", custosv1alpha1.CredentialLabel: "ledger-key",
		}
		for k, v := range labels {
			l[k] = v
		}
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "custos-credentials", Name: name, Labels: l,
			Annotations: map[string]string{custosv1alpha1.LeaseExpiresAtAnnotation: expires.Format(time.RFC3339)}},
			Type: custosv1alpha1.LeaseSecretType, Data: map[string][]byte{custosv1alpha1.LeaseTokenKey: []byte("the-lease")}}
	}
	c := fake.NewClientBuilder().WithObjects(
		lease("agent-finance.invoice.ledger-key", nil),
		lease("agent-finance.invoice.earlier", map[string]string{custosv1alpha1.AgentUIDLabel: "uid-0", custosv1alpha1.CredentialLabel: "earlier"}),
		lease("agent-finance.invoice.planted", map[string]string{custosv1alpha1.ManagedByLabel: "someone", custosv1alpha1.CredentialLabel: "planted"}),
	).Build()
	g := &GatewayCredentials{Reader: c, Namespace: "custos-credentials"}

	value, at, err := g.Lease(context.Background(), agent, "ledger-key")
	if err != nil || value != "the-lease" || !at.Equal(expires) {
		t.Errorf("ledger-key: %q, %v, %v; want the lease, expiring at %v", value, at, err, expires)
	}
	for _, cred := range []string{"earlier", "planted", "missing"} {
		if value, _, err := g.Lease(context.Background(), agent, cred); err == nil || value != "" {
			t.Errorf("%s: %q, %v; want no lease", cred, value, err)
		}
	}
}
