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

package audit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
)

// Checkpoint signature algorithms.
const (
	// AlgorithmEd25519 is a pure Ed25519 signature over SignedPayload.
	AlgorithmEd25519 = "ed25519"
	// AlgorithmECDSAP256 is an ASN.1 ECDSA P-256 signature over the
	// SHA-256 of SignedPayload: what cosign makes with its default keys,
	// so `cosign verify-blob --key pub.pem` accepts it too.
	AlgorithmECDSAP256 = "ecdsa-p256-sha256"
)

// Signer signs checkpoints.
type Signer interface {
	// KeyID identifies the public key: see KeyID.
	KeyID() string
	// Algorithm is AlgorithmEd25519 or AlgorithmECDSAP256.
	Algorithm() string
	// Sign signs a checkpoint's SignedPayload.
	Sign(payload []byte) ([]byte, error)
}

// KeyID is the identifier of a public key in checkpoints: the first 16 hex
// digits of the SHA-256 of its PKIX (SubjectPublicKeyInfo) DER encoding.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8]), nil
}

// NewSigner returns a Signer for an Ed25519 or ECDSA P-256 private key,
// such as one ParsePrivateKeyPEM returns or a KMS-backed crypto.Signer.
func NewSigner(key crypto.Signer) (Signer, error) {
	alg := ""
	switch pub := key.Public().(type) {
	case ed25519.PublicKey:
		alg = AlgorithmEd25519
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("audit signing key: ECDSA curve %s is not supported, only P-256", pub.Curve.Params().Name)
		}
		alg = AlgorithmECDSAP256
	default:
		return nil, fmt.Errorf("audit signing key: %T is not supported, only Ed25519 and ECDSA P-256", pub)
	}
	id, err := KeyID(key.Public())
	if err != nil {
		return nil, err
	}
	return &keySigner{key: key, alg: alg, id: id}, nil
}

type keySigner struct {
	key     crypto.Signer
	alg, id string
}

func (s *keySigner) KeyID() string     { return s.id }
func (s *keySigner) Algorithm() string { return s.alg }

func (s *keySigner) Sign(payload []byte) ([]byte, error) {
	if s.alg == AlgorithmEd25519 {
		return s.key.Sign(rand.Reader, payload, crypto.Hash(0))
	}
	digest := sha256.Sum256(payload)
	return s.key.Sign(rand.Reader, digest[:], crypto.SHA256)
}

// SignedPayload is what a checkpoint's signature signs: the RFC 8785
// canonical JSON of the object
//
//	{"alg":…,"final":true|false,"head":…,"keyID":…,"root":…,"schema":…,"seq":…,"size":…,"time":…}
//
// built from the checkpoint and its record (schema, seq and time are the
// record's). The signature itself is not part of it.
func SignedPayload(r *Record) []byte {
	c := r.Checkpoint
	o := object{}
	o.member("alg")
	o.b = appendCanonicalString(o.b, c.Algorithm)
	o.member("final")
	o.b = strconv.AppendBool(o.b, c.Final)
	o.member("head")
	o.b = appendCanonicalString(o.b, c.Head)
	o.member("keyID")
	o.b = appendCanonicalString(o.b, c.KeyID)
	o.member("root")
	o.b = appendCanonicalString(o.b, c.Root)
	o.member("schema")
	o.b = appendCanonicalString(o.b, r.Schema)
	o.member("seq")
	o.b = strconv.AppendUint(o.b, r.Seq, 10)
	o.member("size")
	o.b = strconv.AppendUint(o.b, c.Size, 10)
	o.member("time")
	o.b = appendCanonicalString(o.b, formatTime(r.Time))
	return o.end()
}

// verifySignature checks a checkpoint record's signature with pub.
func verifySignature(pub crypto.PublicKey, r *Record) error {
	c := r.Checkpoint
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil {
		return fmt.Errorf("signature is not base64: %v", err)
	}
	payload := SignedPayload(r)
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if c.Algorithm != AlgorithmEd25519 {
			return fmt.Errorf("algorithm %q does not match the Ed25519 verifying key", c.Algorithm)
		}
		if !ed25519.Verify(k, payload, sig) {
			return errors.New("Ed25519 signature does not verify")
		}
	case *ecdsa.PublicKey:
		if c.Algorithm != AlgorithmECDSAP256 {
			return fmt.Errorf("algorithm %q does not match the ECDSA verifying key", c.Algorithm)
		}
		digest := sha256.Sum256(payload)
		if !ecdsa.VerifyASN1(k, digest[:], sig) {
			return errors.New("ECDSA signature does not verify")
		}
	default:
		return fmt.Errorf("verifying key type %T is not supported", pub)
	}
	return nil
}

// GenerateKey returns a new Ed25519 key pair as PEM: the private key as
// PKCS#8 ("PRIVATE KEY"), the public key as PKIX ("PUBLIC KEY").
func GenerateKey() (privatePEM, publicPEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	return marshalKeyPair(priv, pub)
}

func marshalKeyPair(priv crypto.PrivateKey, pub crypto.PublicKey) (privatePEM, publicPEM []byte, err error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), nil
}

// ParsePrivateKeyPEM reads an Ed25519 or ECDSA P-256 private key: PKCS#8
// PEM ("PRIVATE KEY"), SEC 1 PEM ("EC PRIVATE KEY"), or a cosign key file
// ("ENCRYPTED SIGSTORE PRIVATE KEY" or "ENCRYPTED COSIGN PRIVATE KEY")
// decrypted with password.
func ParsePrivateKeyPEM(data, password []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("audit signing key: no PEM block found")
	}
	der := block.Bytes
	switch block.Type {
	case "PRIVATE KEY":
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("audit signing key: %v", err)
		}
		return k, nil
	case "ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY":
		var err error
		if der, err = decryptCosignKey(block.Bytes, password); err != nil {
			return nil, fmt.Errorf("audit signing key: %v", err)
		}
	default:
		return nil, fmt.Errorf("audit signing key: PEM block %q is not a private key", block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %v", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("audit signing key: %T cannot sign", k)
	}
	return s, nil
}

// ParsePublicKeyPEM reads an Ed25519 or ECDSA P-256 public key in PKIX PEM
// ("PUBLIC KEY"), as keygen and cosign write them.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("public key: no PEM block found")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("public key: PEM block %q is not a PUBLIC KEY", block.Type)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %v", err)
	}
	switch pub := k.(type) {
	case ed25519.PublicKey:
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("public key: ECDSA curve %s is not supported, only P-256", pub.Curve.Params().Name)
		}
	default:
		return nil, fmt.Errorf("public key: %T is not supported, only Ed25519 and ECDSA P-256", k)
	}
	return k, nil
}

func encodeSignature(sig []byte) string { return base64.StdEncoding.EncodeToString(sig) }
