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

package sts

import (
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TokenType is the JWT "typ" of a Custos access token (RFC 9068 §2.1).
const TokenType = "at+jwt"

// skew is how far in the future a token's nbf may be, for clocks of
// replicas that differ a little. Expiry has no leeway.
const skew = 5 * time.Second

// Issuer mints and verifies one tenant's tokens: its own issuer URL and its
// own key set, so that a token of one tenant never verifies as another's.
type Issuer struct {
	// URL is the iss of its tokens.
	URL string
	// Tenant is the DataBoundary tenant it issues for.
	Tenant string
	Keys   *KeySet
}

// Mint signs c with the issuer's current key. It sets iss, the tenant,
// client_id (the outermost actor) and a new jti; exp must be set, and one
// audience.
func (is *Issuer) Mint(c Claims) (string, error) {
	if c.Audience == "" || c.Expiry == 0 || c.Subject == "" {
		return "", errors.New("a token needs a subject, one audience and an expiry")
	}
	c.Issuer, c.Tenant = is.URL, is.Tenant
	if c.Act != nil {
		c.ClientID = c.Act.Subject
	}
	if c.ID == "" {
		c.ID = NewID()
	}
	k := is.Keys.current()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: Algorithm, Key: jose.JSONWebKey{Key: k.signer, KeyID: k.id}},
		(&jose.SignerOptions{}).WithType(TokenType))
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// NewID is a new jti: 128 random bits, hex.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// VerifyError says why a token did not verify; Reason is one of the
// Reason constants, for the audit record and the error's description.
type VerifyError struct {
	Reason string
	Detail string
}

func (e *VerifyError) Error() string { return e.Reason + ": " + e.Detail }

// Reasons of VerifyError.
const (
	ReasonMalformed   = "Malformed"
	ReasonWrongType   = "WrongType"
	ReasonUnknownKey  = "UnknownKey"
	ReasonBadSig      = "BadSignature"
	ReasonWrongIssuer = "WrongIssuer"
	ReasonWrongAud    = "WrongAudience"
	ReasonExpired     = "Expired"
	ReasonNotYetValid = "NotYetValid"
)

func verifyErr(reason, format string, args ...any) error {
	return &VerifyError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Verify checks token as a token of this issuer for audience at now:
// compact JWS, typ at+jwt, ES256 by a live key of the issuer, iss, aud
// (exactly audience), exp after now and nbf not after now (give or take a
// few seconds of skew). It returns the claims.
func (is *Issuer) Verify(token, audience string, now time.Time) (*Claims, error) {
	return Verify(is.Keys, is.URL, token, audience, now)
}

// PublicKeys are an issuer's live public keys by kid: its KeySet, or its
// JWKS as a verifier that holds no signing key reads it.
type PublicKeys interface {
	PublicKey(kid string) (crypto.PublicKey, bool)
}

// Verify checks token as Issuer.Verify does, as a token of issuer, whose
// live keys are keys.
func Verify(keys PublicKeys, issuer, token, audience string, now time.Time) (*Claims, error) {
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{Algorithm})
	if err != nil {
		return nil, verifyErr(ReasonMalformed, "%v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, verifyErr(ReasonMalformed, "%d signatures, want 1", len(jws.Signatures))
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != TokenType && typ != "application/"+TokenType {
		return nil, verifyErr(ReasonWrongType, "typ %q, want %q", typ, TokenType)
	}
	pub, ok := keys.PublicKey(h.KeyID)
	if !ok {
		return nil, verifyErr(ReasonUnknownKey, "kid %q: %v of %s", h.KeyID, errNoKey, issuer)
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return nil, verifyErr(ReasonBadSig, "%v", err)
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, verifyErr(ReasonMalformed, "claims: %v", err)
	}
	switch {
	case c.Issuer != issuer:
		return nil, verifyErr(ReasonWrongIssuer, "iss %q, want %q", c.Issuer, issuer)
	case c.Audience != audience:
		return nil, verifyErr(ReasonWrongAud, "aud %q, want %q", c.Audience, audience)
	case !now.Before(time.Unix(c.Expiry, 0)):
		return nil, verifyErr(ReasonExpired, "expired at %s", time.Unix(c.Expiry, 0).UTC().Format(time.RFC3339))
	case c.NotBefore != 0 && now.Add(skew).Before(time.Unix(c.NotBefore, 0)):
		return nil, verifyErr(ReasonNotYetValid, "not valid before %s", time.Unix(c.NotBefore, 0).UTC().Format(time.RFC3339))
	}
	return &c, nil
}
