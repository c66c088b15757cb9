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

// Package cluster is what custos-sts reads from the cluster: it resolves an
// actor token (the agent pod's ServiceAccount token) to the Agent it runs
// as, through a live TokenReview and the Agent as it is now.
package cluster

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/identity"
	"github.com/custos-dev/custos/internal/sts"
)

// DefaultReviewTTL is how long a TokenReview's answer is kept: a deleted
// pod's token stops working within it.
const DefaultReviewTTL = 5 * time.Second

// The extra fields a pod-bound ServiceAccount token's review carries.
const (
	podNameExtra = "authentication.kubernetes.io/pod-name"
	podUIDExtra  = "authentication.kubernetes.io/pod-uid"
)

// Actors resolves actor tokens. The token is reviewed by the API server
// (TokenReview: signature, expiry, audience, and that the pod it is bound
// to exists), the answer kept for TTL. The pod and the Agent are read each
// time: a deleted or terminating pod's token stops acting as soon as the
// reader sees it (the API server itself goes on authenticating a deleted
// pod's token for up to 10 s, its cache of authenticated tokens), and a
// suspended or frozen agent stops at once.
type Actors struct {
	// Client creates TokenReviews.
	Client client.Client
	// Reader reads Agents (the STS's cache).
	Reader client.Reader
	// TrustDomain is the SPIFFE trust domain of the agents' IDs.
	TrustDomain string
	// Audience is the audience an actor token must carry: the STS's own.
	Audience string
	// TTL of a review's answer; DefaultReviewTTL when 0.
	TTL   time.Duration
	Clock clock.PassiveClock
	// Gateway is custos-gateway's ServiceAccount: its pods' tokens are the
	// gateway's (sts.Agent.Gateway), not an agent's. None when empty.
	Gateway types.NamespacedName

	mu      sync.Mutex
	reviews map[[sha256.Size]byte]review
}

var _ sts.ActorResolver = (*Actors)(nil)

// review is who a token is, as the API server said at reviewed.
type review struct {
	namespace, serviceAccount string
	pod                       types.NamespacedName
	podUID                    types.UID
	reviewed                  time.Time
}

// ResolveActor returns the Agent whose pod presented token, as it is now.
func (a *Actors) ResolveActor(ctx context.Context, tenant, token string) (*sts.Agent, error) {
	who, err := a.review(ctx, token)
	if err != nil {
		return nil, err
	}
	gateway := a.Gateway.Name != "" && (types.NamespacedName{Namespace: who.namespace, Name: who.serviceAccount}) == a.Gateway
	name, ok := strings.CutPrefix(who.serviceAccount, identity.ChildPrefix)
	if !gateway && (!ok || name == "") {
		return nil, fmt.Errorf("ServiceAccount %s/%s is no agent's", who.namespace, who.serviceAccount)
	}
	pod := &metav1.PartialObjectMetadata{}
	pod.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	if err := a.Reader.Get(ctx, who.pod, pod, client.UnsafeDisableDeepCopy); apierrors.IsNotFound(err) || (err == nil && pod.UID != who.podUID) {
		return nil, fmt.Errorf("the pod it is bound to, %s, is gone", who.pod)
	} else if err != nil {
		return nil, fmt.Errorf("reading pod %s: %w", who.pod, err)
	}
	if !pod.DeletionTimestamp.IsZero() {
		return nil, fmt.Errorf("the pod it is bound to, %s, is terminating", who.pod)
	}
	if gateway {
		return &sts.Agent{ID: identity.SPIFFEID(a.TrustDomain, who.namespace, who.serviceAccount), Namespace: who.namespace,
			Name: who.serviceAccount, Gateway: true, Runnable: true}, nil
	}
	return a.agent(ctx, types.NamespacedName{Namespace: who.namespace, Name: name})
}

// ActingAgent returns the agent with SPIFFE ID id, as it is now.
func (a *Actors) ActingAgent(ctx context.Context, _, id string) (*sts.Agent, error) {
	key, ok := (&Targets{TrustDomain: a.TrustDomain}).agentOf(id)
	if !ok {
		return nil, fmt.Errorf("it is no agent of trust domain %s", a.TrustDomain)
	}
	return a.agent(ctx, key)
}

// agent is the Agent key as the exchange sees it, with its Toolsets' scopes.
func (a *Actors) agent(ctx context.Context, key types.NamespacedName) (*sts.Agent, error) {
	agent, err := getAgent(ctx, a.Reader, key)
	if err != nil {
		return nil, fmt.Errorf("its Agent %s: %w", key, err)
	}
	v := a.view(ctx, agent)
	sets, err := toolsets(ctx, a.Reader, agent)
	if err != nil {
		return nil, err
	}
	v.Scopes = scopesOf(sets)
	return v, nil
}

// review asks the API server who token is, or remembers its answer.
func (a *Actors) review(ctx context.Context, token string) (review, error) {
	now := a.Clock.Now()
	ttl := a.TTL
	if ttl == 0 {
		ttl = DefaultReviewTTL
	}
	key := sha256.Sum256([]byte(token))
	a.mu.Lock()
	if r, ok := a.reviews[key]; ok && now.Sub(r.reviewed) < ttl {
		a.mu.Unlock()
		return r, nil
	}
	a.mu.Unlock()

	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{a.Audience}}}
	if err := a.Client.Create(ctx, tr); err != nil {
		return review{}, fmt.Errorf("TokenReview: %w", err)
	}
	st := tr.Status
	if !st.Authenticated {
		why := st.Error
		if why == "" {
			why = "not authenticated"
		}
		return review{}, fmt.Errorf("the API server does not authenticate it (TokenReview): %s", why)
	}
	ns, sa, ok := serviceAccountOf(st.User.Username)
	if !ok {
		return review{}, fmt.Errorf("it is %s's, not a ServiceAccount's", st.User.Username)
	}
	podName, podUID := st.User.Extra[podNameExtra], st.User.Extra[podUIDExtra]
	if len(podName) != 1 || len(podUID) != 1 {
		return review{}, errors.New("it is not bound to a pod: an actor token is the agent pod's own projected token")
	}
	r := review{namespace: ns, serviceAccount: sa, pod: types.NamespacedName{Namespace: ns, Name: podName[0]},
		podUID: types.UID(podUID[0]), reviewed: now}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reviews == nil {
		a.reviews = map[[sha256.Size]byte]review{}
	}
	for k, old := range a.reviews {
		if now.Sub(old.reviewed) >= ttl {
			delete(a.reviews, k)
		}
	}
	a.reviews[key] = r
	return r, nil
}

// getAgent reads an Agent. What the STS reads it never changes, so reads
// from the cache share its objects instead of copying them.
func getAgent(ctx context.Context, r client.Reader, key types.NamespacedName) (*custosv1alpha1.Agent, error) {
	agent := &custosv1alpha1.Agent{}
	if err := r.Get(ctx, key, agent, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	return agent, nil
}

// serviceAccountOf splits "system:serviceaccount:<ns>:<name>".
func serviceAccountOf(username string) (ns, name string, ok bool) {
	rest, ok := strings.CutPrefix(username, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	ns, name, ok = strings.Cut(rest, ":")
	return ns, name, ok && ns != "" && name != ""
}

// view is agent as the exchange sees it.
func (a *Actors) view(ctx context.Context, agent *custosv1alpha1.Agent) *sts.Agent {
	id := identity.SPIFFEID(a.TrustDomain, agent.Namespace, identity.ServiceAccountName(agent.Name))
	v := &sts.Agent{
		ID: id, Namespace: agent.Namespace, Name: agent.Name, UID: string(agent.UID),
		Tenant: agent.Labels[custosv1alpha1.TenantLabel], Audiences: []string{id},
	}
	v.Runnable, v.NotRunnable = runnable(ctx, a.Reader, agent)
	if d := agent.Spec.Delegation; d != nil {
		v.Delegation = sts.Delegation{People: d.People, Groups: d.Groups, MaxDepth: int(d.MaxDepth)}
		for _, ref := range d.Agents {
			key := ref.Key(agent.Namespace)
			v.Delegation.Agents = append(v.Delegation.Agents, identity.SPIFFEID(a.TrustDomain, key.Namespace, identity.ServiceAccountName(key.Name)))
		}
	}
	return v
}

// runnable: the agent may act now. Its owner asks for Active, Custos has
// onboarded it and not suspended, frozen or decommissioned it, its image
// verifies, and no AgentFreeze holds it: a freeze is refused here the
// moment it exists, before the manager has moved the agent to Frozen.
func runnable(ctx context.Context, r client.Reader, agent *custosv1alpha1.Agent) (bool, string) {
	if ok, why := phaseRunnable(agent); !ok {
		return false, why
	}
	var freezes custosv1alpha1.AgentFreezeList
	if err := r.List(ctx, &freezes, client.InNamespace(agent.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return false, "its AgentFreezes cannot be read: " + err.Error()
	}
	for i := range freezes.Items {
		if f := &freezes.Items[i]; f.Holds(agent) {
			return false, fmt.Sprintf("it is frozen by AgentFreeze %s (%s)", f.Name, f.Spec.Trigger)
		}
	}
	return true, ""
}

// phaseRunnable: what the Agent alone says of whether it may act.
func phaseRunnable(agent *custosv1alpha1.Agent) (bool, string) {
	if s := agent.Spec.Lifecycle.State; s != custosv1alpha1.LifecycleActive {
		return false, fmt.Sprintf("spec.lifecycle.state is %s", s)
	}
	if !agent.DeletionTimestamp.IsZero() {
		return false, "it is being deleted"
	}
	var phase custosv1alpha1.AgentPhase
	if lc := agent.Status.Lifecycle; lc != nil {
		phase = lc.Phase
	}
	if phase != custosv1alpha1.AgentPhaseActive {
		if phase == "" {
			phase = custosv1alpha1.AgentPhasePending
		}
		return false, fmt.Sprintf("it is %s, not Active", phase)
	}
	if !meta.IsStatusConditionTrue(agent.Status.Conditions, custosv1alpha1.ImageVerifiedCondition) {
		return false, "its image is not verified"
	}
	return true, ""
}
