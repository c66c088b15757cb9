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

package lease

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// TokenKey is the Secret key of a bearer token lease (kubernetesToken,
// azureToken): a file a client reads its token from.
const TokenKey = custosv1alpha1.LeaseTokenKey

// tokenRequests is a TokenSource on the API server's TokenRequest API.
type tokenRequests struct {
	cs kubernetes.Interface
}

// NewTokenSource issues ServiceAccount tokens through cs.
func NewTokenSource(cs kubernetes.Interface) TokenSource {
	return tokenRequests{cs: cs}
}

func (t tokenRequests) ServiceAccountToken(ctx context.Context, namespace, serviceAccount string, audiences []string, ttl time.Duration, bound *BoundObject) (string, time.Time, error) {
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         audiences,
		ExpirationSeconds: new(int64(ttl / time.Second)),
	}}
	if bound != nil {
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{
			Kind: bound.Kind, APIVersion: "v1", Name: bound.Name, UID: bound.UID,
		}
	}
	got, err := t.cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, serviceAccount, req, metav1.CreateOptions{})
	if err != nil {
		return "", time.Time{}, err
	}
	return got.Status.Token, got.Status.ExpirationTimestamp.Time, nil
}

// KubernetesToken issues bound ServiceAccount tokens of the agent's own
// ServiceAccount for the credential's audience, bound to the lease Secret:
// deleting the Secret invalidates the token at once.
type KubernetesToken struct {
	Tokens TokenSource
	Clock  clock.PassiveClock
}

// Name implements Backend.
func (k *KubernetesToken) Name() string { return BackendKubernetesToken }

// Issue implements Backend.
func (k *KubernetesToken) Issue(ctx context.Context, req Request) (*Lease, error) {
	spec := req.Credential.KubernetesToken
	if spec == nil {
		return nil, fmt.Errorf("credential %s is not a kubernetesToken credential", req.Credential.Name)
	}
	now := nowFrom(k.Clock)
	// A lease kept outside the agent's namespace (gateway-only) cannot be
	// bound to its Secret: a bound object is in the ServiceAccount's
	// namespace. Its token is bound to the ServiceAccount alone.
	var bound *BoundObject
	if req.Secret.Name != "" {
		bound = &req.Secret
	}
	token, expires, err := k.Tokens.ServiceAccountToken(ctx, req.Namespace, req.ServiceAccount, []string{spec.Audience}, req.TTL, bound)
	switch {
	case apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
		return nil, &RefusedError{Backend: BackendKubernetesToken, Reason: "TokenRequestRefused", Message: err.Error()}
	case err != nil:
		return nil, fmt.Errorf("requesting a token of ServiceAccount %s/%s: %w", req.Namespace, req.ServiceAccount, err)
	}
	return &Lease{
		Data:       map[string][]byte{TokenKey: []byte(token)},
		IssuedAt:   now,
		ExpiresAt:  expires,
		Attributes: map[string]string{"audience": spec.Audience, "serviceAccount": req.ServiceAccount},
	}, nil
}
