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

package imageverify

import (
	"errors"
	"fmt"
)

// Reasons reported by Verify. They are meant to be used verbatim as
// condition reasons by the operator.
const (
	// ReasonRegistryNotAllowed: the image repository does not match
	// Policy.Registries. Decided before any network call. Permanent.
	ReasonRegistryNotAllowed = "RegistryNotAllowed"
	// ReasonSignatureMissing: the image digest has no cosign signature
	// (cosign.ErrNoSignaturesFound). Permanent for the cache TTL.
	ReasonSignatureMissing = "SignatureMissing"
	// ReasonUntrustedSigner: signatures exist but none verifies against the
	// policy's keys / identities / trusted root, or a signature is bound to
	// another digest (cosign.ErrNoMatchingSignatures). Permanent for the cache TTL.
	ReasonUntrustedSigner = "UntrustedSigner"
	// ReasonResolveFailed: the tag could not be resolved or the registry could
	// not be read (network, auth, not found, 5xx, context cancelled, ...).
	// Transient: never cached, the caller should requeue.
	ReasonResolveFailed = "ResolveFailed"
	// ReasonInvalidPolicy: the policy or the image reference is malformed
	// (bad PEM, bad regexp, bad trusted root, no key and no identity, ...).
	// Permanent until the spec changes.
	ReasonInvalidPolicy = "InvalidPolicy"
)

// Error is the only error type returned by Verifier.Verify.
type Error struct {
	// Reason is one of the Reason* constants.
	Reason string
	// Image is the reference passed to Verify.
	Image string
	// Digest is repo@sha256:... when the tag was resolved, else empty.
	Digest string
	// Err is the underlying cause (a cosign / go-containerregistry error).
	Err error
}

func (e *Error) Error() string {
	ref := e.Image
	if e.Digest != "" {
		ref = e.Digest
	}
	if e.Err == nil {
		return fmt.Sprintf("%s: %s", e.Reason, ref)
	}
	return fmt.Sprintf("%s: %s: %v", e.Reason, ref, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// IsTransient reports whether the failure may go away by itself and the
// operation should be retried (only ResolveFailed).
func (e *Error) IsTransient() bool { return e.Reason == ReasonResolveFailed }

// ReasonOf returns the Reason of an *Error in err's chain, or "" if none.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// IsTransient reports whether err is a transient *Error. Errors that are not
// *Error are considered transient.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.IsTransient()
	}
	return true
}
