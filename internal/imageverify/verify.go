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

// Package imageverify resolves container image references to digests and
// verifies their cosign signatures offline against a Policy, with a
// per-(digest, policy) result cache.
package imageverify

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	kauth "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
)

// DefaultTTL is used when Verifier.TTL is zero.
const DefaultTTL = 10 * time.Minute

// DefaultMaxEntries is used when Verifier.MaxEntries is zero.
const DefaultMaxEntries = 4096

// Result of a successful verification.
type Result struct {
	// Digest is the verified image as repo@sha256:....
	Digest string
	// Signer is the KeyID ("sha256:...") of the matching policy key, or for
	// keyless "<subject> (<issuer>)" from the signing certificate.
	Signer string
	// VerifiedAt is when the signature was verified (may be earlier than the
	// call when served from cache).
	VerifiedAt time.Time
}

// Verifier verifies images. The zero value is usable; it must not be copied
// after first use. Safe for concurrent use.
type Verifier struct {
	// Clock defaults to the real clock.
	Clock clock.PassiveClock
	// TTL of cached verification outcomes (success, SignatureMissing,
	// UntrustedSigner); transient failures are never cached. Zero means
	// DefaultTTL, negative disables the cache (single-flight still applies).
	TTL time.Duration
	// MaxEntries bounds the cache; zero means DefaultMaxEntries.
	MaxEntries int
	// RemoteOptions are appended to every registry call after the context and
	// the keychain (e.g. remote.WithTransport, remote.WithUserAgent).
	RemoteOptions []remote.Option

	mu    sync.Mutex
	cache map[string]cacheEntry
	group singleflight.Group
}

type cacheEntry struct {
	res     *Result
	err     *Error
	expires time.Time
}

// KeychainFromPullSecrets builds a keychain from image pull secrets already
// read by the caller (kubernetes.io/dockerconfigjson or dockercfg).
func KeychainFromPullSecrets(ctx context.Context, secrets []corev1.Secret) (authn.Keychain, error) {
	return kauth.NewFromPullSecrets(ctx, secrets)
}

func (v *Verifier) now() time.Time {
	if v.Clock != nil {
		return v.Clock.Now()
	}
	return time.Now()
}

func (v *Verifier) ttl() time.Duration {
	if v.TTL == 0 {
		return DefaultTTL
	}
	return v.TTL
}

// Verify checks image against policy using keychain for registry access (nil
// means anonymous). A tag is resolved to a digest on every call; the
// signature verification of (digest, policy) is cached for TTL and
// concurrent calls for the same (digest, policy) share one verification.
// Errors are always *Error.
//
// Note: for a digest reference a cache hit makes no registry request at all,
// so it does not prove that keychain can pull the image (kubelet does).
func (v *Verifier) Verify(ctx context.Context, image string, policy Policy, keychain authn.Keychain) (*Result, error) {
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil, &Error{Reason: ReasonInvalidPolicy, Image: image, Err: fmt.Errorf("invalid image reference: %w", err)}
	}
	if err := policy.Validate(); err != nil {
		return nil, &Error{Reason: ReasonInvalidPolicy, Image: image, Err: err}
	}
	if !policy.AllowsImage(image) {
		return nil, &Error{Reason: ReasonRegistryNotAllowed, Image: image,
			Err: fmt.Errorf("repository %s is not in the allowed registries", ref.Context().Name())}
	}
	if keychain == nil {
		keychain = authn.NewMultiKeychain() // anonymous
	}
	ropts := v.remoteOptions(ctx, keychain)

	digest, ok := ref.(name.Digest)
	if !ok {
		desc, err := remote.Head(ref, ropts...)
		if err != nil {
			// Some registries do not answer HEAD properly; GET is authoritative.
			gd, gerr := remote.Get(ref, ropts...)
			if gerr != nil {
				return nil, &Error{Reason: ReasonResolveFailed, Image: image, Err: gerr}
			}
			digest = ref.Context().Digest(gd.Digest.String())
		} else {
			digest = ref.Context().Digest(desc.Digest.String())
		}
	}

	key := digest.String() + "|" + policy.Hash()
	if res, verr, ok := v.lookup(key); ok {
		return finish(image, res, verr)
	}

	ch := v.group.DoChan(key, func() (any, error) {
		if res, verr, ok := v.lookup(key); ok {
			return cacheEntry{res: res, err: verr}, nil
		}
		// Shared by all waiters: do not let one caller's cancellation fail
		// the others, but keep its values (and a deadline of our own).
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		res, verr := v.verifyDigest(fctx, digest, policy, v.remoteOptions(fctx, keychain))
		if verr == nil || !verr.IsTransient() {
			v.store(key, res, verr)
		}
		return cacheEntry{res: res, err: verr}, nil
	})
	select {
	case <-ctx.Done():
		return nil, &Error{Reason: ReasonResolveFailed, Image: image, Digest: digest.String(), Err: ctx.Err()}
	case r := <-ch:
		e := r.Val.(cacheEntry)
		return finish(image, e.res, e.err)
	}
}

// finish returns copies so callers cannot mutate cached values.
func finish(image string, res *Result, verr *Error) (*Result, error) {
	if verr != nil {
		c := *verr
		c.Image = image
		return nil, &c
	}
	c := *res
	return &c, nil
}

func (v *Verifier) remoteOptions(ctx context.Context, kc authn.Keychain) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
	return append(opts, v.RemoteOptions...)
}

func (v *Verifier) lookup(key string) (*Result, *Error, bool) {
	if v.ttl() < 0 {
		return nil, nil, false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.cache[key]
	if !ok {
		return nil, nil, false
	}
	if !v.now().Before(e.expires) {
		delete(v.cache, key)
		return nil, nil, false
	}
	return e.res, e.err, true
}

func (v *Verifier) store(key string, res *Result, verr *Error) {
	ttl := v.ttl()
	if ttl < 0 {
		return
	}
	max := v.MaxEntries
	if max <= 0 {
		max = DefaultMaxEntries
	}
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cache == nil {
		v.cache = map[string]cacheEntry{}
	}
	if len(v.cache) >= max {
		for k, e := range v.cache {
			if !now.Before(e.expires) {
				delete(v.cache, k)
			}
		}
		for k := range v.cache { // still full: drop arbitrary entries
			if len(v.cache) < max {
				break
			}
			delete(v.cache, k)
		}
	}
	v.cache[key] = cacheEntry{res: res, err: verr, expires: now.Add(ttl)}
}

// Purge empties the cache (e.g. when trust material is rotated).
func (v *Verifier) Purge() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.cache = nil
}

// verifyDigest runs cosign verification: each key in turn, then keyless.
func (v *Verifier) verifyDigest(ctx context.Context, digest name.Digest, p Policy, ropts []remote.Option) (*Result, *Error) {
	fail := func(reason string, err error) (*Result, *Error) {
		return nil, &Error{Reason: reason, Digest: digest.String(), Err: err}
	}
	var trusted *root.TrustedRoot
	if len(p.TrustedRoot) > 0 {
		tr, err := root.NewTrustedRootFromJSON(p.TrustedRoot)
		if err != nil {
			return fail(ReasonInvalidPolicy, fmt.Errorf("trusted root: %w", err))
		}
		trusted = tr
	}
	base := func() *cosign.CheckOpts {
		co := &cosign.CheckOpts{
			// Binds the signed payload to this digest: refuses signatures copied
			// from another image. cosign does not set it by default.
			ClaimVerifier:      cosign.SimpleClaimVerifier,
			IgnoreTlog:         !p.RequireTlog,
			Offline:            true,
			IgnoreSCT:          true,
			RegistryClientOpts: []ociremote.Option{ociremote.WithRemoteOptions(ropts...)},
		}
		return co
	}

	var untrusted []error
	for _, k := range p.Keys {
		pub, err := cryptoutils.UnmarshalPEMToPublicKey(k)
		if err != nil {
			return fail(ReasonInvalidPolicy, err)
		}
		sv, err := signature.LoadVerifier(pub, crypto.SHA256)
		if err != nil {
			return fail(ReasonInvalidPolicy, err)
		}
		co := base()
		co.SigVerifier = sv
		if p.RequireTlog {
			co.TrustedMaterial = trusted
		}
		_, _, err = cosign.VerifyImageSignatures(ctx, digest, co)
		if err == nil {
			id, _ := KeyID(pub)
			return &Result{Digest: digest.String(), Signer: id, VerifiedAt: v.now()}, nil
		}
		if reason := classify(err); reason != ReasonUntrustedSigner {
			// No signatures at all, or transient: other keys cannot do better.
			return fail(reason, err)
		}
		untrusted = append(untrusted, err)
	}

	if len(p.Keyless) > 0 {
		co := base()
		co.TrustedMaterial = trusted
		co.IgnoreSCT = len(trusted.CTLogs()) == 0
		for _, id := range p.Keyless {
			co.Identities = append(co.Identities, cosign.Identity{
				Issuer: id.Issuer, Subject: id.Subject, IssuerRegExp: id.IssuerRegexp, SubjectRegExp: id.SubjectRegexp,
			})
		}
		sigs, _, err := cosign.VerifyImageSignatures(ctx, digest, co)
		if err == nil {
			return &Result{Digest: digest.String(), Signer: certSigner(sigs), VerifiedAt: v.now()}, nil
		}
		if reason := classify(err); reason != ReasonUntrustedSigner {
			return fail(reason, err)
		}
		untrusted = append(untrusted, err)
	}
	return fail(ReasonUntrustedSigner, errors.Join(untrusted...))
}

func classify(err error) string {
	var nsf *cosign.ErrNoSignaturesFound
	var nms *cosign.ErrNoMatchingSignatures
	switch {
	case errors.As(err, &nsf):
		return ReasonSignatureMissing
	case errors.As(err, &nms):
		return ReasonUntrustedSigner
	default:
		return ReasonResolveFailed
	}
}

// certSigner describes the first verified keyless signature.
func certSigner(sigs []oci.Signature) string {
	for _, s := range sigs {
		c, err := s.Cert()
		if err != nil || c == nil {
			continue
		}
		subj := strings.Join(cryptoutils.GetSubjectAlternateNames(c), ",")
		if iss := (&cosign.CertExtensions{Cert: c}).GetIssuer(); iss != "" {
			return subj + " (" + iss + ")"
		}
		return subj
	}
	return ""
}
