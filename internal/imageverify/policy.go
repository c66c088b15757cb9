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
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/custos-dev/custos/internal/boundary"
)

// Identity is a keyless (Fulcio certificate) signer identity. For each of
// issuer and subject, the exact value or the regexp must be set.
type Identity struct {
	// Issuer is the exact OIDC issuer URL recorded in the certificate.
	Issuer string `json:"issuer,omitempty"`
	// Subject is the exact certificate subject (SAN: e-mail, URI, ...).
	Subject string `json:"subject,omitempty"`
	// SubjectRegexp is a Go regexp the subject must match (unanchored, as in cosign).
	SubjectRegexp string `json:"subjectRegexp,omitempty"`
	// IssuerRegexp is a Go regexp the issuer must match (unanchored, as in cosign).
	IssuerRegexp string `json:"issuerRegexp,omitempty"`
}

// Policy says which images may be used and who must have signed them.
// An image is accepted if one signature verifies against any of Keys, or
// (keyless) chains to TrustedRoot with a certificate matching any of Keyless.
type Policy struct {
	// Registries restricts the image repositories. Each entry is a repository
	// prefix on path-segment boundaries ("ghcr.io/acme" matches
	// "ghcr.io/acme/app" but not "ghcr.io/acme-evil/app") or a glob as in
	// path.Match, where "*" does not cross "/" ("*.acme.io",
	// "ghcr.io/acme/*"); a glob is matched against every segment prefix too.
	// "docker.io" is treated as "index.docker.io". Empty means any registry.
	Registries []string `json:"registries,omitempty"`
	// Keys are PEM "PUBLIC KEY" blocks (cosign.pub format).
	Keys [][]byte `json:"keys,omitempty"`
	// Keyless identities; requires TrustedRoot.
	Keyless []Identity `json:"keyless,omitempty"`
	// TrustedRoot is a Sigstore trusted_root.json (Fulcio CAs, Rekor and CT
	// log keys, TSAs). Nothing is fetched from the network: no TUF, no Rekor
	// lookups. If it holds CT logs, keyless certificates must carry an SCT.
	TrustedRoot []byte `json:"trustedRoot,omitempty"`
	// RequireTlog requires every accepted signature to carry a Rekor bundle
	// verified offline against TrustedRoot's transparency-log keys (needs
	// TrustedRoot). Without it, keyless signatures verify only while the
	// short-lived certificate is valid (or with a trusted timestamp).
	RequireTlog bool `json:"requireTlog,omitempty"`
}

// KeysFromPublicKeys encodes public keys as PEM for Policy.Keys.
func KeysFromPublicKeys(keys ...crypto.PublicKey) ([][]byte, error) {
	out := make([][]byte, 0, len(keys))
	for _, k := range keys {
		b, err := cryptoutils.MarshalPublicKeyToPEM(k)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// Hash returns a stable digest of the policy, suitable for cache keys and
// status fields. Order of Registries, Keys and Keyless does not matter; keys
// are compared by their DER encoding, not by PEM formatting.
func (p Policy) Hash() string {
	n := struct {
		Registries  []string   `json:"r"`
		Keys        []string   `json:"k"`
		Keyless     []Identity `json:"i"`
		TrustedRoot string     `json:"t"`
		RequireTlog bool       `json:"l"`
	}{RequireTlog: p.RequireTlog}
	for _, r := range p.Registries {
		n.Registries = append(n.Registries, strings.TrimSpace(r))
	}
	slices.Sort(n.Registries)
	n.Registries = slices.Compact(n.Registries)
	for _, k := range p.Keys {
		n.Keys = append(n.Keys, keyFingerprint(k))
	}
	slices.Sort(n.Keys)
	n.Keys = slices.Compact(n.Keys)
	n.Keyless = slices.Clone(p.Keyless)
	slices.SortFunc(n.Keyless, func(a, b Identity) int {
		return strings.Compare(a.Issuer+"\x00"+a.Subject+"\x00"+a.IssuerRegexp+"\x00"+a.SubjectRegexp,
			b.Issuer+"\x00"+b.Subject+"\x00"+b.IssuerRegexp+"\x00"+b.SubjectRegexp)
	})
	n.Keyless = slices.Compact(n.Keyless)
	if len(p.TrustedRoot) > 0 {
		s := sha256.Sum256(p.TrustedRoot)
		n.TrustedRoot = hex.EncodeToString(s[:])
	}
	b, _ := json.Marshal(n) // cannot fail: strings and bools only
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// keyFingerprint is "sha256:<hex of PKIX DER>" or, for unparsable input,
// a digest of the raw bytes (Validate rejects those anyway).
func keyFingerprint(pemBytes []byte) string {
	if k, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes); err == nil {
		if id, err := KeyID(k); err == nil {
			return id
		}
	}
	s := sha256.Sum256(pemBytes)
	return "raw:" + hex.EncodeToString(s[:])
}

// KeyID identifies a public key: "sha256:" + hex SHA-256 of its PKIX DER
// encoding (same as `openssl pkey -pubin -outform DER | sha256sum`).
func KeyID(k crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(s[:]), nil
}

// Validate checks the policy without any network access.
func (p Policy) Validate() error {
	var errs []error
	if len(p.Keys) == 0 && len(p.Keyless) == 0 {
		errs = append(errs, errors.New("policy needs at least one key or keyless identity"))
	}
	for i, r := range p.Registries {
		if strings.TrimSpace(r) == "" {
			errs = append(errs, fmt.Errorf("registries[%d]: empty", i))
		}
	}
	for i, k := range p.Keys {
		if _, err := cryptoutils.UnmarshalPEMToPublicKey(k); err != nil {
			errs = append(errs, fmt.Errorf("keys[%d]: %w", i, err))
		}
	}
	for i, id := range p.Keyless {
		if id.Issuer == "" && id.IssuerRegexp == "" {
			errs = append(errs, fmt.Errorf("keyless[%d]: issuer or issuerRegexp required", i))
		}
		if id.Subject == "" && id.SubjectRegexp == "" {
			errs = append(errs, fmt.Errorf("keyless[%d]: subject or subjectRegexp required", i))
		}
		for _, re := range []string{id.IssuerRegexp, id.SubjectRegexp} {
			if re == "" {
				continue
			}
			if _, err := regexp.Compile(re); err != nil {
				errs = append(errs, fmt.Errorf("keyless[%d]: %w", i, err))
			}
		}
	}
	if len(p.Keyless) > 0 && len(p.TrustedRoot) == 0 {
		errs = append(errs, errors.New("keyless identities need a trustedRoot"))
	}
	if p.RequireTlog && len(p.TrustedRoot) == 0 {
		errs = append(errs, errors.New("requireTlog needs a trustedRoot with transparency log keys"))
	}
	if len(p.TrustedRoot) > 0 {
		if _, err := root.NewTrustedRootFromJSON(p.TrustedRoot); err != nil {
			errs = append(errs, fmt.Errorf("trustedRoot is not a Sigstore trusted_root.json: %w", err))
		}
	}
	return errors.Join(errs...)
}

// TrustsSigner reports, offline, whether signer (as Result.Signer names it:
// a key's KeyID, or "<subject> (<issuer>)" of a keyless certificate) is
// still one of the policy's signers. It is how a digest verified under an
// earlier policy is judged while the registry cannot be reached: a signer
// rotated out of the policy is not trusted a moment longer.
func (p Policy) TrustsSigner(signer string) bool {
	for _, k := range p.Keys {
		if keyFingerprint(k) == signer {
			return true
		}
	}
	open := strings.LastIndex(signer, " (")
	if open < 0 || !strings.HasSuffix(signer, ")") {
		return false
	}
	subjects, issuer := strings.Split(signer[:open], ","), signer[open+2:len(signer)-1]
	for _, id := range p.Keyless {
		if !matches(id.Issuer, id.IssuerRegexp, issuer) {
			continue
		}
		for _, subject := range subjects {
			if matches(id.Subject, id.SubjectRegexp, subject) {
				return true
			}
		}
	}
	return false
}

// matches: value equals exact, or matches the (unanchored) expression.
func matches(exact, expr, value string) bool {
	if exact != "" {
		return value == exact
	}
	re, err := regexp.Compile(expr)
	return err == nil && re.MatchString(value)
}

// AllowsImage reports whether image may come from the policy's registries,
// by the same rules as the DataBoundary's registry list at admission
// (boundary.RegistryAllowed); an empty list allows every registry.
func (p Policy) AllowsImage(image string) bool {
	return len(p.Registries) == 0 || boundary.RegistryAllowed(p.Registries, image)
}

// PinnedReference is reference's repository with digest ("sha256:…"):
// the exact image a pod runs once reference was resolved and verified. The
// repository is written as go-containerregistry names it (docker.io images
// as index.docker.io/…), so the operator and the pod guard agree on one
// spelling; an unparsable reference gives "".
func PinnedReference(reference, digest string) string {
	ref, err := name.ParseReference(reference)
	if err != nil {
		return ""
	}
	return ref.Context().Name() + "@" + digest
}
