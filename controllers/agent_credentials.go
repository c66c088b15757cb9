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

package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/identity"
	"github.com/custos-dev/custos/internal/lease"
	"github.com/custos-dev/custos/internal/workload"
)

// LeaseOptions configure the agents' credential leases.
type LeaseOptions struct {
	// Backends issue leases, by backend name (lease.BackendKubernetesToken,
	// …). A credential whose backend is missing stalls its agent.
	Backends map[string]lease.Backend

	// RenewPercent is the share of a lease's life after which it is
	// renewed (default 67, at most 90), less a jitter of up to a tenth of
	// its life, so that leases issued together do not renew together.
	RenewPercent int

	// MaxTTL caps the TTL of every lease, whatever its credential asks for
	// (default 1h). AWS STS sessions and Entra ID access tokens cannot be
	// revoked once issued: deleting their Secret stops their use by the
	// agent's pods, not their validity. A Kubernetes token dies with its
	// Secret, but a copy may meanwhile have been exchanged for a cloud
	// credential that does not (admission refuses the clouds' well-known
	// token-exchange audiences, yet a cloud can be told to trust any).
	MaxTTL time.Duration

	// GatewayNamespace is where the leases of gateway-only credentials
	// (spec.credentials[].gateway) are kept: a namespace only the manager
	// and custos-gateway read. Empty: an agent asking for one gets
	// CredentialsIssued False (GatewayNotConfigured) and no such lease.
	GatewayNamespace string
}

func (o *LeaseOptions) defaults() {
	if o.RenewPercent <= 0 {
		o.RenewPercent = DefaultRenewPercent
	}
	if o.RenewPercent > 90 {
		o.RenewPercent = 90
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = DefaultMaxLeaseTTL
	}
}

// Annotations on a lease Secret: what the lease is, never what it holds.
const (
	leaseIssuedAtAnnotation  = "custos.dev/issued-at"
	leaseExpiresAtAnnotation = custosv1alpha1.LeaseExpiresAtAnnotation
	leaseBackendAnnotation   = "custos.dev/backend"
	// leaseSpecAnnotation is a digest of the credential's spec the lease
	// was issued for: a changed audience or TTL means a new lease.
	leaseSpecAnnotation = "custos.dev/credential-hash"
)

// leaseSecretName names the Secret of an agent's credential.
func leaseSecretName(agent, credential string) string {
	return identity.LeaseSecretName(agent, credential)
}

// leaseLocation is the namespace and name of the Secret of an agent's
// credential c: the agent's namespace, or, for a gateway-only credential,
// the namespace where leases are kept for custos-gateway ("" when there is
// none).
func (r *AgentReconciler) leaseLocation(agent *custosv1alpha1.Agent, c custosv1alpha1.CredentialSpec) (namespace, name string) {
	if c.Gateway != nil {
		return r.Leases.GatewayNamespace, identity.GatewayLeaseSecretName(agent.Namespace, agent.Name, c.Name)
	}
	return agent.Namespace, leaseSecretName(agent.Name, c.Name)
}

// leaseSecrets lists the lease Secrets an agent holds (their metadata,
// from the cache: the material is never cached), in its namespace and in
// the one of gateway-only credentials.
func (r *AgentReconciler) leaseSecrets(ctx context.Context, agent *custosv1alpha1.Agent) ([]metav1.PartialObjectMetadata, error) {
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	if err := r.Client.List(ctx, &list, client.InNamespace(agent.Namespace), childrenOf(agent)); err != nil {
		return nil, err
	}
	items := list.Items
	if ns := r.Leases.GatewayNamespace; ns != "" && ns != agent.Namespace {
		var gw metav1.PartialObjectMetadataList
		gw.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
		sel := childrenOf(agent)
		sel[custosv1alpha1.AgentNamespaceLabel] = agent.Namespace
		if err := r.Client.List(ctx, &gw, client.InNamespace(ns), sel); err != nil {
			return nil, err
		}
		items = append(items, gw.Items...)
	}
	return items, nil
}

// reconcileCredentials issues, renews and revokes the agent's leases
// (CredentialsIssued): one Secret per credential while the agent is active
// and its identity bound; none otherwise. status.leases is the ledger.
func (r *AgentReconciler) reconcileCredentials(ctx context.Context, s *agentScope) stepResult {
	agent := s.agent
	now := r.Clock.Now()
	held, err := r.leaseSecrets(ctx, agent)
	if err != nil {
		return failed(err)
	}
	// wanted: where each credential's lease belongs, by credential.
	wanted := map[string]types.NamespacedName{}
	if s.active() && s.identityBound {
		for _, c := range agent.Spec.Credentials {
			ns, name := r.leaseLocation(agent, c)
			if ns != "" && roleInForce(agent, c) {
				wanted[c.Name] = types.NamespacedName{Namespace: ns, Name: name}
			}
		}
	}
	secrets := map[string]*metav1.PartialObjectMetadata{}
	// outstanding: leases revoked here that their source cannot revoke,
	// still valid there until they expire.
	outstanding := slices.DeleteFunc(slices.Clone(agent.Status.OutstandingLeases), func(o custosv1alpha1.OutstandingLease) bool {
		return !now.Before(o.ExpiresAt.Time)
	})
	for i := range held {
		sec := &held[i]
		if at, ok := wanted[sec.Labels[custosv1alpha1.CredentialLabel]]; ok && sec.Namespace == at.Namespace && sec.Name == at.Name {
			secrets[sec.Labels[custosv1alpha1.CredentialLabel]] = sec
			continue
		}
		deleted, err := r.revokeLease(ctx, agent, sec, revokeWhy(s, sec))
		if err != nil {
			// Those already revoked stay on the record.
			agent.Status.OutstandingLeases = outstanding
			return failed(err)
		}
		if o, ok := outstandingOf(sec, now); ok && deleted && !slices.ContainsFunc(outstanding, func(had custosv1alpha1.OutstandingLease) bool {
			return had.Name == o.Name && had.Backend == o.Backend && had.ExpiresAt.Equal(&o.ExpiresAt)
		}) {
			outstanding = append(outstanding, o)
		}
	}
	if len(outstanding) > 64 {
		outstanding = outstanding[len(outstanding)-64:]
	}
	agent.Status.OutstandingLeases = outstanding
	// Looked at again when the first of them expires, to take it off.
	var expiry time.Time
	for _, o := range outstanding {
		expiry = earliest(expiry, o.ExpiresAt.Time)
	}

	if len(wanted) == 0 && !(s.active() && s.identityBound && len(agent.Spec.Credentials) > 0) {
		agent.Status.Leases = nil
		msg := "No credentials requested"
		if len(agent.Spec.Credentials) > 0 {
			msg = "Every lease revoked: the agent is not active"
		}
		if len(outstanding) > 0 {
			msg += fmt.Sprintf("; %d cannot be revoked at their source and stay valid there until %s (status.outstandingLeases)",
				len(outstanding), latestExpiry(outstanding).UTC().Format(time.RFC3339))
		}
		s.observe(custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason, "%s", msg)
		return stepResult{requeueAt: expiry}
	}

	ledger := make([]custosv1alpha1.LeaseStatus, 0, len(agent.Spec.Credentials))
	var errs []error
	var refused *lease.RefusedError
	var unconfigured, conflicts, noGateway, awaiting []string
	// renewAt is when the next lease is due for renewal (or an
	// outstanding lease expires).
	renewAt := expiry
	for _, c := range agent.Spec.Credentials {
		entry := custosv1alpha1.LeaseStatus{Name: c.Name}
		for _, old := range agent.Status.Leases {
			if old.Name == c.Name {
				entry = old
			}
		}
		backendName := lease.BackendFor(c)
		backend := r.Leases.Backends[backendName]
		at, ok := wanted[c.Name]
		if !ok && !roleInForce(agent, c) {
			// Its cloud role waits for approval (reconcileChanges).
			awaiting = append(awaiting, c.Name)
			ledger = append(ledger, custosv1alpha1.LeaseStatus{Name: c.Name})
			continue
		}
		if !ok {
			// Gateway-only, and nowhere to keep it from the agent.
			noGateway = append(noGateway, c.Name)
			ledger = append(ledger, custosv1alpha1.LeaseStatus{Name: c.Name})
			continue
		}
		if secrets[c.Name] == nil {
			taken, err := r.leaseNameTaken(ctx, agent, at, c.Gateway != nil)
			if err != nil {
				errs = append(errs, fmt.Errorf("credential %s: %w", c.Name, err))
				ledger = append(ledger, entry)
				continue
			}
			if taken {
				conflicts = append(conflicts, leaseShown(at, c))
				ledger = append(ledger, custosv1alpha1.LeaseStatus{Name: c.Name})
				continue
			}
		}
		switch {
		case backend == nil:
			unconfigured = append(unconfigured, fmt.Sprintf("%s (%s)", c.Name, backendName))
		case leaseDue(secrets[c.Name], entry, c, now):
			if err := r.issueLease(ctx, s, c, backend, secrets[c.Name], &entry, now); errors.Is(err, errNameTaken) {
				conflicts = append(conflicts, leaseShown(at, c))
			} else if err != nil {
				errs = append(errs, fmt.Errorf("credential %s: %w", c.Name, err))
				if re := (*lease.RefusedError)(nil); errors.As(err, &re) && refused == nil {
					refused = re
				}
			}
		}
		if entry.RenewAt != nil {
			renewAt = earliest(renewAt, entry.RenewAt.Time)
		}
		ledger = append(ledger, entry)
	}
	agent.Status.Leases = ledger

	switch {
	case len(conflicts) > 0:
		s.observe(custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason,
			"Secret %s exists and was not made by Custos for this agent; no lease is written into it: remove it",
			strings.Join(conflicts, ", "))
		return stepResult{requeueAt: renewAt, err: errors.Join(errs...)}
	case len(awaiting) > 0:
		s.observe(custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionFalse, custosv1alpha1.ApprovalRequiredReason,
			"Credential %s is not issued: its cloud role is not in force until the change that adds it is approved (%s)",
			strings.Join(awaiting, ", "), s.conditionMessage(custosv1alpha1.ChangesApprovedCondition))
		return stepResult{requeueAt: renewAt, err: errors.Join(errs...)}
	case len(noGateway) > 0:
		s.observe(custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionFalse, custosv1alpha1.GatewayNotConfiguredReason,
			"Credential %s is gateway-only, but this manager keeps no credentials for custos-gateway: its lease is not issued (set the manager's --gateway-credentials-namespace, or the chart's gateway.enabled)",
			strings.Join(noGateway, ", "))
		return stepResult{requeueAt: renewAt, err: errors.Join(errs...)}
	case len(unconfigured) > 0:
		s.observe(custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionFalse, custosv1alpha1.LeaseBackendNotConfiguredReason,
			"This manager issues no leases of credential %s; configure the backend (see the manager's --aws-sts-* and --azure-* flags)",
			strings.Join(unconfigured, ", "))
		return stepResult{requeueAt: renewAt}
	case refused != nil:
		s.observe(custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionFalse, refused.Reason,
			"%v; retried with backoff", errors.Join(errs...))
	case len(errs) > 0:
		s.observe(custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionFalse, custosv1alpha1.LeaseBackendUnavailableReason,
			"%v; retried with backoff, a lease still valid is kept until it expires", errors.Join(errs...))
	default:
		kept := 0
		for _, c := range agent.Spec.Credentials {
			if c.Gateway != nil {
				kept++
			}
		}
		msg := fmt.Sprintf("%d lease(s) current, mounted from %s", len(ledger)-kept, workload.LeasesDir)
		if kept > 0 {
			msg += fmt.Sprintf("; %d kept for custos-gateway alone (gateway-only)", kept)
		}
		s.observe(custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason, "%s", msg)
	}
	return stepResult{requeueAt: renewAt, err: errors.Join(errs...)}
}

// leaseNameTaken reports whether a Secret at exists that Custos did not
// make for this agent: Custos writes no lease into a Secret it would have
// to take over. The agent's own leases are in the cache; this reads the
// API server, once per lease not yet issued. A gateway-only lease has no
// owner reference (it is in another namespace): its labels say whose it is.
func (r *AgentReconciler) leaseNameTaken(ctx context.Context, agent *custosv1alpha1.Agent, at types.NamespacedName, gateway bool) (bool, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err := r.APIReader.Get(ctx, at, m)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if gateway {
		return !gatewayLeaseOf(m, agent), nil
	}
	return !madeForAgent(m, agent), nil
}

// leaseShown names the Secret at of credential c for a person: its name
// in the agent's namespace, namespace/name elsewhere (gateway-only).
func leaseShown(at types.NamespacedName, c custosv1alpha1.CredentialSpec) string {
	if c.Gateway != nil {
		return at.String()
	}
	return at.Name
}

// gatewayLeaseOf: obj is a gateway-only lease Custos made for agent.
func gatewayLeaseOf(obj client.Object, agent *custosv1alpha1.Agent) bool {
	l := obj.GetLabels()
	return l[custosv1alpha1.ManagedByLabel] == custosv1alpha1.ManagedByValue &&
		l[custosv1alpha1.AgentUIDLabel] == string(agent.UID) &&
		l[custosv1alpha1.AgentNamespaceLabel] == agent.Namespace
}

// revokeWhy says why a held lease goes.
func revokeWhy(s *agentScope, sec *metav1.PartialObjectMetadata) string {
	switch {
	case s.suspendReason == custosv1alpha1.ExpiredReason:
		return "the agent expired"
	case s.suspendReason == custosv1alpha1.FrozenReason:
		return "the agent is frozen (AgentFreeze " + s.agent.Status.Lifecycle.Freeze + ")"
	case s.suspendReason != "":
		return "the agent is suspended"
	case !s.compliant:
		return "the agent is outside its DataBoundary"
	case !s.identityBound:
		return "the agent's identity is not bound"
	}
	return fmt.Sprintf("credential %q was removed from spec.credentials", sec.Labels[custosv1alpha1.CredentialLabel])
}

// leaseDue: the credential has no current lease, or it is time to renew.
func leaseDue(secret *metav1.PartialObjectMetadata, entry custosv1alpha1.LeaseStatus, c custosv1alpha1.CredentialSpec, now time.Time) bool {
	return secret == nil || entry.RenewAt == nil || entry.ExpiresAt == nil ||
		!now.Before(entry.RenewAt.Time) ||
		secret.Annotations[leaseSpecAnnotation] != credentialHash(c) ||
		entry.Backend != lease.BackendFor(c)
}

func credentialHash(c custosv1alpha1.CredentialSpec) string {
	data, _ := json.Marshal(c)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// issueLease issues (or renews) one lease, stores it in its Secret and
// records it in entry and on the audit trail.
func (r *AgentReconciler) issueLease(ctx context.Context, s *agentScope, c custosv1alpha1.CredentialSpec, backend lease.Backend,
	secret *metav1.PartialObjectMetadata, entry *custosv1alpha1.LeaseStatus, now time.Time) error {
	agent := s.agent
	ns, name := r.leaseLocation(agent, c)
	renewal := secret != nil && entry.IssuedAt != nil
	bound := lease.BoundObject{Kind: "Secret", Name: name}
	switch {
	case c.Gateway != nil:
		// A token is bound to an object of its ServiceAccount's
		// namespace: a gateway-only lease's is bound to nothing more.
		bound = lease.BoundObject{}
	case secret != nil:
		bound.UID = secret.UID
	case backend.Name() == lease.BackendKubernetesToken:
		// The token is bound to its Secret, which must exist first.
		uid, err := r.applyLeaseSecret(ctx, agent, c, ns, name, nil, nil)
		if err != nil {
			return err
		}
		bound.UID = uid
	}
	ttl := c.TTL.Duration
	if ttl > r.Leases.MaxTTL {
		ttl = r.Leases.MaxTTL
	}
	l, err := backend.Issue(ctx, lease.Request{
		Namespace:      agent.Namespace,
		Agent:          agent.Name,
		AgentUID:       agent.UID,
		Tenant:         agent.Labels[custosv1alpha1.TenantLabel],
		Owner:          agent.Spec.Owner.Team,
		ServiceAccount: agent.Status.Identity.ServiceAccount,
		Identity:       ptr.Deref(agent.GrantedIdentity(), custosv1alpha1.IdentityBindings{}),
		Credential:     c,
		TTL:            ttl,
		Secret:         bound,
	})
	leaseOps.WithLabelValues(backend.Name(), leaseOp(renewal), leaseResult(err)).Inc()
	if err != nil {
		entry.LastError = clipMessage(err.Error(), 1024)
		entry.Backend = backend.Name()
		// A lease still valid is kept until it expires, then it goes.
		if secret != nil && (entry.ExpiresAt == nil || !now.Before(entry.ExpiresAt.Time)) {
			if _, rerr := r.revokeLease(ctx, agent, secret, "it expired and could not be renewed"); rerr != nil {
				return errors.Join(err, rerr)
			}
			entry.IssuedAt, entry.ExpiresAt, entry.RenewAt = nil, nil, nil
		}
		return err
	}
	// The ledger keeps time by the reconciler's clock, which decides when
	// to renew: the lease's life as the backend reported it, from now.
	l.ExpiresAt = now.Add(l.ExpiresAt.Sub(l.IssuedAt))
	l.IssuedAt = now
	storedUID, err := r.applyLeaseSecret(ctx, agent, c, ns, name, l, map[string]string{
		leaseIssuedAtAnnotation:  l.IssuedAt.UTC().Format(time.RFC3339),
		leaseExpiresAtAnnotation: l.ExpiresAt.UTC().Format(time.RFC3339),
	})
	if err != nil {
		return err
	}
	renewAt := renewTime(l.IssuedAt, l.ExpiresAt, r.Leases.RenewPercent, string(storedUID)+"/"+l.IssuedAt.String())
	*entry = custosv1alpha1.LeaseStatus{
		Name:       c.Name,
		Backend:    backend.Name(),
		SecretName: name,
		IssuedAt:   &metav1.Time{Time: l.IssuedAt},
		ExpiresAt:  &metav1.Time{Time: l.ExpiresAt},
		RenewAt:    &metav1.Time{Time: renewAt},
	}
	action := audit.ActionLeaseIssued
	if renewal {
		action = audit.ActionLeaseRenewed
	}
	details := map[string]string{
		"credentialName": c.Name, "backend": backend.Name(), "secretName": name, "secretNamespace": ns,
		"expiresAt": l.ExpiresAt.UTC().Format(time.RFC3339), "ttl": l.ExpiresAt.Sub(l.IssuedAt).Round(time.Second).String(),
	}
	for k, v := range l.Attributes {
		details["lease."+k] = v
	}
	auditByController(ctx, r.Audit, audit.Event{
		Subject:  subjectOf(agent, "Agent"),
		Action:   action,
		Decision: audit.DecisionAllow,
		Reason:   fmt.Sprintf("Lease of credential %s from %s, valid until %s", c.Name, backend.Name(), l.ExpiresAt.UTC().Format(time.RFC3339)),
		Policy:   "spec.credentials",
		Details:  details,
	})
	return nil
}

// applyLeaseSecret writes an agent's lease Secret: its labels, owner and
// annotations, and the lease's material when l is not nil. A gateway-only
// lease, in another namespace, has no owner: its labels name its agent.
func (r *AgentReconciler) applyLeaseSecret(ctx context.Context, agent *custosv1alpha1.Agent, c custosv1alpha1.CredentialSpec,
	ns, name string, l *lease.Lease, annotations map[string]string) (types.UID, error) {
	labels := childLabels(agent)
	labels[custosv1alpha1.CredentialLabel] = c.Name
	if c.Gateway != nil {
		labels[custosv1alpha1.AgentNamespaceLabel] = agent.Namespace
	}
	ann := map[string]string{
		leaseBackendAnnotation: lease.BackendFor(c),
		leaseSpecAnnotation:    credentialHash(c),
	}
	for k, v := range annotations {
		ann[k] = v
	}
	ac := corev1ac.Secret(name, ns).
		WithType(custosv1alpha1.LeaseSecretType).
		WithLabels(labels).
		WithAnnotations(ann)
	if c.Gateway == nil {
		ac.WithOwnerReferences(ownerReference(agent))
	}
	if l != nil {
		ac.WithData(l.Data)
	}
	if err := r.Client.Apply(ctx, ac, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		if isAdoptionRefused(err) {
			return "", fmt.Errorf("writing lease Secret %s: %w", name, errNameTaken)
		}
		return "", fmt.Errorf("writing lease Secret %s: %w", name, err)
	}
	// The answer holds the material too: only the UID is kept.
	return ptr.Deref(ac.UID, ""), nil
}

// outstandingOf is a revoked lease Secret's lease when its source cannot
// revoke it (every backend but Kubernetes tokens, which die with the
// Secret they are bound to) and it has not expired.
func outstandingOf(sec *metav1.PartialObjectMetadata, now time.Time) (custosv1alpha1.OutstandingLease, bool) {
	backend := sec.Annotations[leaseBackendAnnotation]
	expires, err := time.Parse(time.RFC3339, sec.Annotations[leaseExpiresAtAnnotation])
	if backend == "" || backend == lease.BackendKubernetesToken || err != nil || !now.Before(expires) {
		return custosv1alpha1.OutstandingLease{}, false
	}
	return custosv1alpha1.OutstandingLease{Name: sec.Labels[custosv1alpha1.CredentialLabel], Backend: backend,
		RevokedAt: metav1.NewTime(now), ExpiresAt: metav1.NewTime(expires)}, true
}

func latestExpiry(out []custosv1alpha1.OutstandingLease) time.Time {
	var t time.Time
	for _, o := range out {
		if o.ExpiresAt.After(t) {
			t = o.ExpiresAt.Time
		}
	}
	return t
}

// revokeLease deletes a lease Secret, which invalidates the Kubernetes
// tokens bound to it and takes the material away from the agent's pods,
// and records the revocation. deleted is false when the Secret was gone
// already (or replaced).
func (r *AgentReconciler) revokeLease(ctx context.Context, agent *custosv1alpha1.Agent, sec *metav1.PartialObjectMetadata, why string) (deleted bool, err error) {
	obj := &corev1.Secret{}
	obj.Name, obj.Namespace = sec.Name, sec.Namespace
	uid := sec.UID
	err = r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("revoking lease Secret %s: %w", sec.Name, err)
	}
	backend := sec.Annotations[leaseBackendAnnotation]
	leaseOps.WithLabelValues(backend, "revoke", "ok").Inc()
	auditByController(ctx, r.Audit, audit.Event{
		Subject:  subjectOf(agent, "Agent"),
		Action:   audit.ActionLeaseRevoked,
		Decision: audit.DecisionInfo,
		Reason:   fmt.Sprintf("Lease of credential %s revoked: %s", sec.Labels[custosv1alpha1.CredentialLabel], why),
		Policy:   "spec.credentials",
		Details:  revokedDetails(sec, backend),
	})
	return true, nil
}

// revokedDetails are a revocation's audit details; a lease its source
// cannot revoke says until when it stays valid there.
func revokedDetails(sec *metav1.PartialObjectMetadata, backend string) map[string]string {
	d := map[string]string{"credentialName": sec.Labels[custosv1alpha1.CredentialLabel], "backend": backend, "secretName": sec.Name, "secretNamespace": sec.Namespace}
	if backend != lease.BackendKubernetesToken {
		if at := sec.Annotations[leaseExpiresAtAnnotation]; at != "" {
			d["validAtSourceUntil"] = at
		}
	}
	return d
}

// renewTime is when a lease issued at issued and expiring at expires is
// renewed: at percent of its life, less a jitter of up to a tenth of its
// life drawn from seed (stable for a lease, spread across leases), so that
// leases issued together renew apart.
func renewTime(issued, expires time.Time, percent int, seed string) time.Time {
	life := expires.Sub(issued)
	sum := sha256.Sum256([]byte(seed))
	frac := float64(binary.BigEndian.Uint64(sum[:8])>>11) / float64(1<<53)
	jitter := time.Duration(frac * float64(life) / 10)
	return issued.Add(life * time.Duration(percent) / 100).Add(-jitter)
}

func leaseOp(renewal bool) string {
	if renewal {
		return "renew"
	}
	return "issue"
}

func leaseResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case lease.IsRefused(err):
		return "refused"
	}
	return "error"
}

// leaseMounts lists an agent's lease Secrets as the workload mounts them,
// in the order of spec.credentials; gateway-only credentials are never
// mounted.
func leaseMounts(agent *custosv1alpha1.Agent) []workload.MountedLease {
	var out []workload.MountedLease
	for _, c := range agent.Spec.Credentials {
		if c.Gateway != nil {
			continue
		}
		out = append(out, workload.MountedLease{Name: c.Name, Secret: leaseSecretName(agent.Name, c.Name)})
	}
	return out
}
