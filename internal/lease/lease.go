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

// Package lease issues an agent's short-lived credentials. Each backend
// turns one credential of an Agent into a Lease: the material, in the form
// its consumers already read, and when it was issued and expires. Every
// backend starts from the agent's own identity, a token of its
// ServiceAccount; none holds a long-lived key.
//
// The Agent reconciler stores a Lease in a Secret of the agent's, records it
// in status.leases (never the material) and on the audit trail, renews it at
// a share of its TTL with jitter, and deletes the Secret to revoke it.
package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// Backend names, as status.leases[].backend reports them.
const (
	BackendKubernetesToken = "kubernetesToken"
	BackendAWSSTS          = "awsSTS"
	BackendAzureToken      = "azureToken"
)

// Request asks a backend for one lease of one agent.
type Request struct {
	// Namespace, Agent and AgentUID name the agent.
	Namespace string
	Agent     string
	AgentUID  types.UID
	// Tenant and Owner attribute the lease (session names, audit).
	Tenant string
	Owner  string
	// ServiceAccount is the agent's own ServiceAccount, whose tokens the
	// backends present.
	ServiceAccount string
	// Identity holds the agent's cloud bindings (role ARN, client ID).
	Identity custosv1alpha1.IdentityBindings
	// Credential is the spec of the credential to issue.
	Credential custosv1alpha1.CredentialSpec
	// TTL is how long the lease should live, already capped by policy.
	TTL time.Duration
	// Secret is the Secret the material will be stored in; Kubernetes
	// tokens are bound to it, so deleting it invalidates them.
	Secret BoundObject
}

// BoundObject is an object a ServiceAccount token is bound to.
type BoundObject struct {
	Kind string
	Name string
	UID  types.UID
}

// Lease is one issued credential.
type Lease struct {
	// Data is the material, by Secret key. Never log, record or report it.
	Data map[string][]byte
	// IssuedAt and ExpiresAt bound the lease's life.
	IssuedAt  time.Time
	ExpiresAt time.Time
	// Attributes describe the lease without its material (audience, role,
	// session name, scope): what the audit trail and events may say.
	Attributes map[string]string
}

// Backend issues leases of one kind.
type Backend interface {
	// Name is the backend's name (BackendKubernetesToken, …).
	Name() string
	// Issue issues a lease. A *RefusedError means the backend refused and
	// asking again soon will not help; any other error is transient.
	Issue(ctx context.Context, req Request) (*Lease, error)
}

// RefusedError is a backend's refusal: access denied, an audience or scope
// it does not accept, a missing binding. Retrying soon will not help.
type RefusedError struct {
	Backend string
	// Reason is short and CamelCase, such as AccessDenied.
	Reason  string
	Message string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s refused: %s: %s", e.Backend, e.Reason, e.Message)
}

// IsRefused reports whether err is (or wraps) a RefusedError.
func IsRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// BackendFor names the backend of a credential.
func BackendFor(c custosv1alpha1.CredentialSpec) string {
	switch {
	case c.KubernetesToken != nil:
		return BackendKubernetesToken
	case c.AWSSTS != nil:
		return BackendAWSSTS
	case c.AzureToken != nil:
		return BackendAzureToken
	}
	return ""
}

// TokenSource issues tokens of a ServiceAccount (the TokenRequest API).
type TokenSource interface {
	// ServiceAccountToken returns a token of namespace/serviceAccount for
	// audiences, living ttl (the API may shorten or lengthen it: the
	// returned expiry is the truth), bound to bound when it is not nil.
	ServiceAccountToken(ctx context.Context, namespace, serviceAccount string, audiences []string, ttl time.Duration, bound *BoundObject) (token string, expiresAt time.Time, err error)
}

// nowFrom is c's time, or the real time when c is nil.
func nowFrom(c clock.PassiveClock) time.Time {
	if c == nil {
		return time.Now()
	}
	return c.Now()
}
