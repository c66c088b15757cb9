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
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/boundary"
	"github.com/custos-dev/custos/internal/imageverify"
	"github.com/custos-dev/custos/internal/workload"
)

// ImageOptions configure image verification.
type ImageOptions struct {
	// Verifier resolves and verifies images; its cache is shared by every
	// Agent. Its TTL should be well below ReverifyInterval (the default is
	// half), or a scheduled re-verification is answered from the cache.
	Verifier *imageverify.Verifier

	// ReverifyInterval is how often a running agent's image is resolved and
	// verified again: a tag moved, a signature removed or a key rotated out
	// is noticed within it. A change to the DataBoundary's image policy is
	// acted on at once.
	ReverifyInterval time.Duration

	// PolicyTTL is how long key material read for a DataBoundary is reused
	// before it is read again; the DataBoundary reconciler reads it every
	// PolicyTTL too and re-queues the boundary's agents when it changed.
	PolicyTTL time.Duration
}

func (o *ImageOptions) defaults(c clock.PassiveClock) {
	if o.ReverifyInterval == 0 {
		o.ReverifyInterval = DefaultReverifyInterval
	}
	if o.PolicyTTL == 0 {
		o.PolicyTTL = time.Minute
	}
	if o.Verifier == nil {
		// Half the interval: a scheduled re-check is never answered by a
		// verification cached at the previous one.
		o.Verifier = &imageverify.Verifier{TTL: o.ReverifyInterval / 2, Clock: c, RemoteOptions: []remote.Option{
			// A registry that fails is retried by the reconciler's backoff,
			// without holding a worker for seconds inside one request.
			remote.WithRetryBackoff(remote.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 2}),
			remote.WithUserAgent("custos"),
		}}
	}
}

// verifyTimeout bounds one resolution and verification of an image.
const verifyTimeout = 30 * time.Second

// errNoTrustedSigners: the boundary's image policy names no signer.
var errNoTrustedSigners = errors.New("trusts no image signer: spec.images.publicKeys and spec.images.keyless are empty, so no agent image can run")

// imagePolicyError is key material that is missing or malformed: it names
// the field of the DataBoundary that references it.
type imagePolicyError struct{ errs field.ErrorList }

func (e *imagePolicyError) Error() string { return e.errs.ToAggregate().Error() }

// imagePolicies turns DataBoundaries' image policies into what the verifier
// takes, reading the key material they reference around the cache (Secrets'
// data is never cached, ConfigMaps not at all). What it read is reused for
// PolicyTTL, for every agent of the boundary.
type imagePolicies struct {
	reader client.Reader
	clock  clock.PassiveClock
	ttl    time.Duration

	mu      sync.Mutex
	entries map[string]resolvedPolicy
}

type resolvedPolicy struct {
	uid        types.UID
	generation int64
	at         time.Time
	policy     imageverify.Policy
	hash       string
	err        error
}

func newImagePolicies(reader client.Reader, c clock.PassiveClock, ttl time.Duration) *imagePolicies {
	return &imagePolicies{reader: reader, clock: c, ttl: ttl, entries: map[string]resolvedPolicy{}}
}

// resolve returns b's image policy and its hash. fresh reads the key
// material again whatever was read before. Errors are errNoTrustedSigners,
// an *imagePolicyError, or a failure to read (transient).
func (p *imagePolicies) resolve(ctx context.Context, b *custosv1alpha1.DataBoundary, fresh bool) (imageverify.Policy, string, error) {
	now := p.clock.Now()
	p.mu.Lock()
	e, ok := p.entries[b.Name]
	p.mu.Unlock()
	if ok && !fresh && e.uid == b.UID && e.generation == b.Generation && now.Sub(e.at) < p.ttl &&
		(b.Status.ImagePolicyHash == "" || b.Status.ImagePolicyHash == e.hash || e.err != nil) {
		return e.policy, e.hash, e.err
	}
	pol, err := p.read(ctx, b)
	var hash string
	if err == nil {
		hash = pol.Hash()
	}
	var transient bool
	if err != nil && !errors.Is(err, errNoTrustedSigners) {
		var pe *imagePolicyError
		transient = !errors.As(err, &pe)
	}
	if !transient {
		p.mu.Lock()
		p.entries[b.Name] = resolvedPolicy{uid: b.UID, generation: b.Generation, at: now, policy: pol, hash: hash, err: err}
		p.mu.Unlock()
	}
	return pol, hash, err
}

// forget drops what was read for a boundary that is gone.
func (p *imagePolicies) forget(name string) {
	p.mu.Lock()
	delete(p.entries, name)
	p.mu.Unlock()
}

func (p *imagePolicies) read(ctx context.Context, b *custosv1alpha1.DataBoundary) (imageverify.Policy, error) {
	spec := b.Spec.Images
	if spec == nil || len(spec.PublicKeys) == 0 && len(spec.Keyless) == 0 {
		return imageverify.Policy{}, errNoTrustedSigners
	}
	path := field.NewPath("spec", "images")
	pol := imageverify.Policy{Registries: spec.Registries, RequireTlog: spec.RequireTransparencyLog}
	var errs field.ErrorList
	for i, src := range spec.PublicKeys {
		pem, err := p.material(ctx, path.Child("publicKeys").Index(i), src)
		if err != nil {
			var fe *field.Error
			if !errors.As(err, &fe) {
				return pol, err
			}
			errs = append(errs, fe)
			continue
		}
		pol.Keys = append(pol.Keys, pem)
	}
	for _, id := range spec.Keyless {
		pol.Keyless = append(pol.Keyless, imageverify.Identity{
			Issuer: id.Issuer, IssuerRegexp: id.IssuerRegExp, Subject: id.Subject, SubjectRegexp: id.SubjectRegExp,
		})
	}
	if spec.TrustedRoot != nil {
		data, err := p.material(ctx, path.Child("trustedRoot"), *spec.TrustedRoot)
		var fe *field.Error
		switch {
		case errors.As(err, &fe):
			errs = append(errs, fe)
		case err != nil:
			return pol, err
		default:
			pol.TrustedRoot = data
		}
	}
	if len(errs) == 0 {
		if err := pol.Validate(); err != nil {
			errs = append(errs, field.Invalid(path, "(key material)", err.Error()))
		}
	}
	if len(errs) > 0 {
		return pol, &imagePolicyError{errs: errs}
	}
	return pol, nil
}

// material reads one key of a Secret or ConfigMap. A missing object or key
// is a *field.Error on path; anything else is a failure to read.
func (p *imagePolicies) material(ctx context.Context, path *field.Path, src custosv1alpha1.TrustSource) ([]byte, error) {
	var ref *custosv1alpha1.ObjectKeyReference
	var obj client.Object
	var kind string
	switch {
	case src.SecretRef != nil:
		ref, obj, kind, path = src.SecretRef, &corev1.Secret{}, "Secret", path.Child("secretRef")
	case src.ConfigMapRef != nil:
		ref, obj, kind, path = src.ConfigMapRef, &corev1.ConfigMap{}, "ConfigMap", path.Child("configMapRef")
	default:
		return nil, field.Required(path, "one of secretRef and configMapRef")
	}
	err := p.reader.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, obj)
	if apierrors.IsNotFound(err) {
		return nil, field.NotFound(path, fmt.Sprintf("%s %s/%s", kind, ref.Namespace, ref.Name))
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s %s/%s (%s): %w", kind, ref.Namespace, ref.Name, path, err)
	}
	var data []byte
	switch o := obj.(type) {
	case *corev1.Secret:
		data = o.Data[ref.Key]
	case *corev1.ConfigMap:
		data = o.BinaryData[ref.Key]
		if s, ok := o.Data[ref.Key]; ok {
			data = []byte(s)
		}
	}
	if len(data) == 0 {
		return nil, field.NotFound(path.Child("key"), fmt.Sprintf("key %q in %s %s/%s", ref.Key, kind, ref.Namespace, ref.Name))
	}
	return data, nil
}

// imageCheck is when an agent's image was last checked and against what.
type imageCheck struct {
	reference, policyHash string
	at                    time.Time
}

// reconcileImage resolves spec.image to a digest and verifies its signatures
// against the DataBoundary's signers (ImageVerified). status.image keeps the
// one digest the agent's pods may run: a verified digest keeps running while
// the registry cannot be reached or a tag moves to something that does not
// verify, and is dropped, blocking new pods, once it does not verify itself.
func (r *AgentReconciler) reconcileImage(ctx context.Context, s *agentScope) stepResult {
	agent := s.agent
	if s.boundary() == nil {
		s.observe(custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.BoundaryNotFoundReason,
			"No DataBoundary to take trusted image signers from")
		return stepResult{}
	}
	// Whatever this check ends in, even an outage, an agent without a
	// verified image whose boundary says Suspend stays suspended.
	defer r.applyImageFailureAction(s)
	before := imageDecision{condition: findCondition(agent, custosv1alpha1.ImageVerifiedCondition)}
	if st := agent.Status.Image; st != nil {
		before.digest = st.Digest
	}
	if before.condition != nil {
		before.condition = before.condition.DeepCopy()
	}

	pol, hash, err := r.imagePolicies.resolve(ctx, s.boundary(), false)
	var pe *imagePolicyError
	switch {
	case errors.Is(err, errNoTrustedSigners):
		r.imageUnverifiable(ctx, s, before, custosv1alpha1.NoTrustedSignersReason, fmt.Sprintf("DataBoundary %q %s", s.boundary().Name, err))
		return stepResult{}
	case errors.As(err, &pe):
		r.imageUnverifiable(ctx, s, before, custosv1alpha1.InvalidImagePolicyReason, fmt.Sprintf("DataBoundary %q: %s", s.boundary().Name, err))
		return stepResult{}
	case err != nil:
		s.observe(custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason,
			"Reading the image policy of DataBoundary %q: %v", s.boundary().Name, err)
		return failed(err)
	}

	now := r.Clock.Now()
	if next, due := r.imageCheckDue(agent, hash, now); !due {
		return stepResult{requeueAt: next}
	}
	// A digest verified under another policy is judged against this one
	// offline first: a signer rotated out is not trusted while the registry
	// cannot be reached.
	if st := agent.Status.Image; st != nil && st.Digest != "" && st.PolicyHash != hash && !pol.TrustsSigner(st.Signer) {
		agent.Status.Image = nil
	}

	keychain, err := r.pullKeychain(ctx, agent)
	if err != nil {
		s.observe(custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.ResolveFailedReason,
			"%v; retrying%s", err, stillRunning(agent))
		return failed(err)
	}
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	res, verr := r.Images.Verifier.Verify(ctx, agent.Spec.Image, pol, keychain)
	imageVerifications.WithLabelValues(verificationResult(verr)).Inc()
	if verr == nil {
		return stepResult{requeueAt: r.imageVerified(ctx, s, res, hash, now)}
	}
	if imageverify.IsTransient(verr) {
		s.observe(custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.ResolveFailedReason,
			"%v; retrying with backoff%s", verr, stillRunning(agent))
		return failed(verr)
	}

	// spec.image does not verify. The digest running now may still: a tag
	// moved to an unsigned image must not stop what was verified.
	reason := imageReason(verr)
	msg := fmt.Sprintf("%s: %v", imageProblem(reason), verr)
	if st := agent.Status.Image; st != nil && st.Digest != "" {
		running := workload.VerifiedImage(agent)
		if _, failedDigest, _ := strings.Cut(resolvedDigest(verr), "@"); failedDigest != st.Digest {
			// Verified as the repository was written, which is how the
			// boundary's registries are matched.
			repo, ok := boundary.Repository(runningReference(agent))
			if !ok {
				repo = runningReference(agent) // Verify says what is wrong with it
			}
			res, rerr := r.Images.Verifier.Verify(ctx, repo+"@"+st.Digest, pol, keychain)
			imageVerifications.WithLabelValues(verificationResult(rerr)).Inc()
			switch {
			case rerr == nil:
				st.VerifiedAt = &metav1.Time{Time: res.VerifiedAt}
				st.PolicyHash = hash
				r.imageChecks.Store(agent.UID, imageCheck{reference: agent.Spec.Image, policyHash: hash, at: now})
				s.observe(custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, reason,
					"%s. New pods keep running the verified %s", msg, running)
				r.auditImageDecision(ctx, agent, before, audit.DecisionDeny, reason, verr.Error(), hash)
				return stepResult{requeueAt: now.Add(r.Images.ReverifyInterval)}
			case imageverify.IsTransient(rerr):
				s.observe(custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.ResolveFailedReason,
					"%v; retrying with backoff%s", rerr, stillRunning(agent))
				return failed(rerr)
			}
		}
		// The running digest itself no longer verifies: no new pod may run it.
		agent.Status.Image = nil
		msg += fmt.Sprintf(". The digest running before, %s, no longer verifies either: no new pod runs it", running)
	}
	r.imageChecks.Store(agent.UID, imageCheck{reference: agent.Spec.Image, policyHash: hash, at: now})
	s.observe(custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, reason, "%s", msg)
	r.auditImageDecision(ctx, agent, before, audit.DecisionDeny, reason, msg, hash)
	return stepResult{requeueAt: now.Add(r.Images.ReverifyInterval)}
}

// runningReference is the reference the verified digest was resolved from.
func runningReference(agent *custosv1alpha1.Agent) string {
	if st := agent.Status.Image; st != nil && st.Reference != "" {
		return st.Reference
	}
	return agent.Spec.Image
}

// imageVerified records a verified image in the status, and returns when
// it is checked next.
func (r *AgentReconciler) imageVerified(ctx context.Context, s *agentScope, res *imageverify.Result, hash string, now time.Time) time.Time {
	agent := s.agent
	_, digest, _ := strings.Cut(res.Digest, "@")
	prev := agent.Status.Image
	wasVerified := isTrue(agent, custosv1alpha1.ImageVerifiedCondition)
	agent.Status.Image = &custosv1alpha1.ImageStatus{
		Reference:  agent.Spec.Image,
		Digest:     digest,
		Signer:     truncate(res.Signer, maxSignerLength),
		VerifiedAt: &metav1.Time{Time: res.VerifiedAt},
		PolicyHash: hash,
	}
	r.imageChecks.Store(agent.UID, imageCheck{reference: agent.Spec.Image, policyHash: hash, at: now})
	next := res.VerifiedAt.Add(r.Images.ReverifyInterval)
	if !next.After(now) {
		next = now.Add(r.Images.ReverifyInterval)
	}
	s.observe(custosv1alpha1.ImageVerifiedCondition, metav1.ConditionTrue, custosv1alpha1.VerifiedReason,
		"%s verified, signed by %s", res.Digest, res.Signer)
	if !wasVerified || prev == nil || prev.Digest != digest || prev.Signer != res.Signer || prev.PolicyHash != hash {
		r.auditImage(ctx, agent, audit.DecisionAllow, custosv1alpha1.VerifiedReason, "verified "+res.Digest+", signed by "+res.Signer, hash)
	}
	return next
}

// imageUnverifiable: nothing can verify under the boundary's policy as it
// stands; what ran before is not trusted either.
func (r *AgentReconciler) imageUnverifiable(ctx context.Context, s *agentScope, before imageDecision, reason, msg string) {
	dropped := s.agent.Status.Image != nil && s.agent.Status.Image.Digest != ""
	s.agent.Status.Image = nil
	if dropped {
		msg += "; the digest verified before no longer runs in new pods"
	}
	s.observe(custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, reason, "%s", msg)
	r.auditImageDecision(ctx, s.agent, before, audit.DecisionDeny, reason, msg, "")
}

// applyImageFailureAction suspends an agent without a verified image when
// its boundary says so.
func (r *AgentReconciler) applyImageFailureAction(s *agentScope) {
	if s.boundary() == nil || s.agent.Status.Image != nil && s.agent.Status.Image.Digest != "" {
		return
	}
	if p := s.boundary().Spec.Images; p != nil && p.OnVerificationFailure == custosv1alpha1.ImageFailureSuspend && s.suspendReason == "" {
		s.suspendReason = custosv1alpha1.ImageNotVerifiedReason
	}
}

// imageCheckDue reports whether spec.image must be resolved and verified
// now, and otherwise when it next is: when it changed, when the policy
// changed, and every ReverifyInterval. A transient failure is not recorded
// as a check, so it is retried with the reconciler's backoff.
func (r *AgentReconciler) imageCheckDue(agent *custosv1alpha1.Agent, hash string, now time.Time) (time.Time, bool) {
	// Only a decision stands until the next check: Verified, or a refusal
	// that needs a person. Anything else (no boundary yet, a policy that
	// could not be read, an outage) is looked at again at once.
	switch c := findCondition(agent, custosv1alpha1.ImageVerifiedCondition); {
	case c == nil:
		return time.Time{}, true
	case c.Status == metav1.ConditionTrue:
	case c.Reason == custosv1alpha1.SignatureMissingReason, c.Reason == custosv1alpha1.UntrustedSignerReason,
		c.Reason == custosv1alpha1.RegistryNotAllowedReason, c.Reason == custosv1alpha1.InvalidImagePolicyReason:
		// (A policy that cannot be read never gets here: it is reported
		// before; this InvalidImagePolicy is spec.image's own.)
	default:
		return time.Time{}, true
	}
	var last imageCheck
	if v, ok := r.imageChecks.Load(agent.UID); ok {
		last = v.(imageCheck)
	} else if st := agent.Status.Image; st != nil && st.VerifiedAt != nil && isTrue(agent, custosv1alpha1.ImageVerifiedCondition) {
		// After a restart: the status says when it last verified.
		last = imageCheck{reference: st.Reference, policyHash: st.PolicyHash, at: st.VerifiedAt.Time}
	} else {
		return time.Time{}, true
	}
	next := last.at.Add(r.Images.ReverifyInterval)
	if last.reference != agent.Spec.Image || last.policyHash != hash || !now.Before(next) {
		return time.Time{}, true
	}
	return next, false
}

// pullKeychain is the registry credentials of spec.runtime.imagePullSecrets,
// read around the cache; nil (anonymous) without any.
func (r *AgentReconciler) pullKeychain(ctx context.Context, agent *custosv1alpha1.Agent) (authn.Keychain, error) {
	refs := agent.Spec.Runtime.ImagePullSecrets
	if len(refs) == 0 {
		return nil, nil
	}
	secrets := make([]corev1.Secret, 0, len(refs))
	for i, ref := range refs {
		var sec corev1.Secret
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: agent.Namespace, Name: ref.Name}, &sec); err != nil {
			return nil, fmt.Errorf("spec.runtime.imagePullSecrets[%d]: reading Secret %s/%s: %w", i, agent.Namespace, ref.Name, err)
		}
		secrets = append(secrets, sec)
	}
	kc, err := imageverify.KeychainFromPullSecrets(ctx, secrets)
	if err != nil {
		return nil, fmt.Errorf("spec.runtime.imagePullSecrets: %w", err)
	}
	return kc, nil
}

// resolvedDigest is repository@digest of a failed verification, when the
// reference was resolved.
func resolvedDigest(err error) string {
	var e *imageverify.Error
	if errors.As(err, &e) {
		return e.Digest
	}
	return ""
}

func stillRunning(agent *custosv1alpha1.Agent) string {
	if img := workload.VerifiedImage(agent); img != "" {
		return "; pods keep running the verified " + img
	}
	return ""
}

// imageReason maps a permanent verification failure to its condition reason.
func imageReason(err error) string {
	switch imageverify.ReasonOf(err) {
	case imageverify.ReasonSignatureMissing:
		return custosv1alpha1.SignatureMissingReason
	case imageverify.ReasonUntrustedSigner:
		return custosv1alpha1.UntrustedSignerReason
	case imageverify.ReasonRegistryNotAllowed:
		return custosv1alpha1.RegistryNotAllowedReason
	case imageverify.ReasonResolveFailed:
		return custosv1alpha1.ResolveFailedReason
	default:
		return custosv1alpha1.InvalidImagePolicyReason
	}
}

// imageProblem says in words what a reason means to the agent's owner.
func imageProblem(reason string) string {
	switch reason {
	case custosv1alpha1.SignatureMissingReason:
		return "spec.image has no signature: sign it with a key the DataBoundary trusts"
	case custosv1alpha1.UntrustedSignerReason:
		return "spec.image is not signed by a signer the DataBoundary trusts"
	case custosv1alpha1.RegistryNotAllowedReason:
		return "spec.image comes from a registry the DataBoundary does not allow"
	default:
		return "spec.image cannot be verified"
	}
}

// verificationResult labels custos_image_verifications_total.
func verificationResult(err error) string {
	if err == nil {
		return custosv1alpha1.VerifiedReason
	}
	return imageReason(err)
}

// imageDecision is what ImageVerified and status.image said before a check.
type imageDecision struct {
	condition *metav1.Condition
	digest    string
}

// auditImageDecision records a verification decision about the agent's
// image when it is news: a new reason or a change of the digest that runs.
// A refusal that stands is not recorded again at every re-check.
func (r *AgentReconciler) auditImageDecision(ctx context.Context, agent *custosv1alpha1.Agent, before imageDecision, decision, reason, msg, policyHash string) {
	digest := ""
	if st := agent.Status.Image; st != nil {
		digest = st.Digest
	}
	if before.condition != nil && before.condition.Reason == reason && before.digest == digest {
		return
	}
	r.auditImage(ctx, agent, decision, reason, msg, policyHash)
}

// auditImage records a verification decision about the agent's image.
func (r *AgentReconciler) auditImage(ctx context.Context, agent *custosv1alpha1.Agent, decision, reason, msg, policyHash string) {
	details := map[string]string{"image": agent.Spec.Image, "policyHash": policyHash}
	if st := agent.Status.Image; st != nil && st.Digest != "" {
		details["digest"] = st.Digest
		details["signer"] = st.Signer
	}
	auditByController(ctx, r.Audit, audit.Event{
		Subject:  subjectOf(agent, "Agent"),
		Action:   audit.ActionImageVerified,
		Decision: decision,
		Reason:   msg,
		Policy:   "DataBoundary.spec.images",
		Details:  withReason(details, reason),
	})
}

// maxSignerLength is status.image.signer's MaxLength.
const maxSignerLength = 1024

// truncate shortens s to at most n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-len("…")] + "…"
}

func withReason(details map[string]string, reason string) map[string]string {
	details["reason"] = reason
	return details
}
