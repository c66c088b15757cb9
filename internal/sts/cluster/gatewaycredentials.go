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
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/identity"
)

// GatewayCredentials reads the leases of agents' gateway-only credentials
// (gateway.Credentials) from the namespace where the manager keeps them
// for custos-gateway (its --gateway-credentials-namespace). Reader should
// be a cache of that namespace's Secrets alone.
type GatewayCredentials struct {
	Reader    client.Reader
	Namespace string
}

// Lease implements gateway.Credentials: the token of the lease Secret of
// agent's credential, made for this very agent (its UID). Errors name the
// Secret, never its content.
func (g *GatewayCredentials) Lease(ctx context.Context, agent *custosv1alpha1.Agent, credential string) (string, time.Time, error) {
	name := identity.GatewayLeaseSecretName(agent.Namespace, agent.Name, credential)
	sec := &corev1.Secret{}
	if err := g.Reader.Get(ctx, types.NamespacedName{Namespace: g.Namespace, Name: name}, sec); err != nil {
		return "", time.Time{}, fmt.Errorf("lease Secret %s/%s: %w", g.Namespace, name, err)
	}
	l := sec.Labels
	if string(sec.Type) != custosv1alpha1.LeaseSecretType || l[custosv1alpha1.ManagedByLabel] != custosv1alpha1.ManagedByValue ||
		l[custosv1alpha1.AgentUIDLabel] != string(agent.UID) || l[custosv1alpha1.AgentNamespaceLabel] != agent.Namespace ||
		l[custosv1alpha1.CredentialLabel] != credential {
		return "", time.Time{}, fmt.Errorf("lease Secret %s/%s was not issued by Custos for agent %s/%s", g.Namespace, name, agent.Namespace, agent.Name)
	}
	expires, err := time.Parse(time.RFC3339, sec.Annotations[custosv1alpha1.LeaseExpiresAtAnnotation])
	if err != nil {
		return "", time.Time{}, fmt.Errorf("lease Secret %s/%s has no expiry", g.Namespace, name)
	}
	return string(sec.Data[custosv1alpha1.LeaseTokenKey]), expires, nil
}
