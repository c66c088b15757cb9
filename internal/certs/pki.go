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

package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Keys of the Secret besides corev1.TLSCertKey and corev1.TLSPrivateKeyKey.
const (
	// CACertKey holds the CAs the webhook configurations trust, in PEM: the
	// CA that signs the serving certificate first, then the CAs it replaced
	// that have not expired yet.
	CACertKey = "ca.crt"

	// CAKeyKey holds the private key of the first CA of CACertKey.
	CAKeyKey = "ca.key"
)

// backdate is how long before its issue a certificate becomes valid, so that
// an API server or replica whose clock lags the issuer's accepts it at once.
const backdate = time.Hour

// maxSerial bounds serial numbers to 128 random bits: RFC 5280 allows 20
// octets, and 128 bits make a collision between the certificates of every
// rotation of every installation negligible.
var maxSerial = new(big.Int).Lsh(big.NewInt(1), 128)

// params is what the certificates must look like.
type params struct {
	dnsNames      []string
	caLifetime    time.Duration
	certLifetime  time.Duration
	refreshBefore float64
}

// serviceDNSNames are the names a Service is reached by in the cluster. The
// API server calls a webhook's service at the first; the second is for
// clients that qualify names fully.
func serviceDNSNames(service, namespace string) []string {
	return []string{
		service + "." + namespace + ".svc",
		service + "." + namespace + ".svc.cluster.local",
	}
}

// authority is a CA that signs serving certificates.
type authority struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, maxSerial)
	if err != nil {
		return nil, err
	}
	// RFC 5280 wants serials positive; zero is as likely as any other draw.
	if n.Sign() == 0 {
		n.SetInt64(1)
	}
	return n, nil
}

// newCA makes a self-signed CA valid for lifetime from now. ECDSA P-256:
// small, fast, and accepted by every API server's TLS stack.
func newCA(now time.Time, lifetime time.Duration) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// The time in the name tells one generation from the next in
		// openssl output and in an API server's TLS errors.
		Subject:               pkix.Name{CommonName: fmt.Sprintf("custos-webhook-ca@%d", now.Unix())},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// It signs serving certificates only, never another CA.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("signing the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key}, nil
}

// issue makes a serving certificate for dnsNames, valid for lifetime from
// now but never beyond the CA: a chain is rejected once its CA expires.
func (ca *authority) issue(dnsNames []string, now time.Time, lifetime time.Duration) (*x509.Certificate, crypto.Signer, error) {
	if len(dnsNames) == 0 {
		return nil, nil, errors.New("a serving certificate needs at least one DNS name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(lifetime)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: dnsNames[0]},
		DNSNames:              slices.Clone(dnsNames),
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing the serving certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func encodeCerts(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// decodeCerts decodes every PEM block of data, which must all be
// certificates, and at least one.
func decodeCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}

// decodeKey decodes a PEM private key in any encoding Go's TLS stack loads,
// so that a Secret seeded by hand (openssl writes SEC1 or PKCS#1) is
// accepted as well as one this package wrote.
func decodeKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", key)
	}
	return signer, nil
}

// secretState is a Secret's data decoded as far as it goes.
type secretState struct {
	// trusted are the certificates of ca.crt; caCert is the first of them,
	// the one that signs.
	trusted []*x509.Certificate
	caCert  *x509.Certificate
	caKey   crypto.Signer
	// caErr says why ca.crt or ca.key did not decode.
	caErr error

	leaf    *x509.Certificate
	leafKey crypto.Signer
	// leafErr says why tls.crt or tls.key did not decode.
	leafErr error
}

func decodeSecret(data map[string][]byte) *secretState {
	s := &secretState{}
	switch {
	case len(data[CACertKey]) == 0:
		s.caErr = errors.New("there is no " + CACertKey)
	case len(data[CAKeyKey]) == 0:
		s.caErr = errors.New("there is no " + CAKeyKey)
	}
	if len(data[CACertKey]) > 0 {
		if certs, err := decodeCerts(data[CACertKey]); err != nil {
			s.caErr = fmt.Errorf("%s does not decode: %w", CACertKey, err)
		} else {
			s.trusted, s.caCert = certs, certs[0]
		}
	}
	if s.caErr == nil {
		if key, err := decodeKey(data[CAKeyKey]); err != nil {
			s.caErr = fmt.Errorf("%s does not decode: %w", CAKeyKey, err)
		} else {
			s.caKey = key
		}
	}

	switch {
	case len(data[corev1.TLSCertKey]) == 0:
		s.leafErr = errors.New("there is no " + corev1.TLSCertKey)
	case len(data[corev1.TLSPrivateKeyKey]) == 0:
		s.leafErr = errors.New("there is no " + corev1.TLSPrivateKeyKey)
	}
	if s.leafErr == nil {
		if certs, err := decodeCerts(data[corev1.TLSCertKey]); err != nil {
			s.leafErr = fmt.Errorf("%s does not decode: %w", corev1.TLSCertKey, err)
		} else if key, err := decodeKey(data[corev1.TLSPrivateKeyKey]); err != nil {
			s.leafErr = fmt.Errorf("%s does not decode: %w", corev1.TLSPrivateKeyKey, err)
		} else {
			s.leaf, s.leafKey = certs[0], key
		}
	}
	return s
}

// A policy says why something in the Secret must be replaced, or "" when it
// may stay. Policies run in order and the first reason wins, so that each
// may assume what the ones before it checked.
type policy func(s *secretState, p params, now time.Time) string

// caPolicies decide whether the CA is replaced.
var caPolicies = []policy{
	func(s *secretState, _ params, _ time.Time) string {
		if s.caErr != nil {
			return s.caErr.Error()
		}
		return ""
	},
	func(s *secretState, _ params, _ time.Time) string {
		if !keyMatches(s.caCert, s.caKey) {
			return CAKeyKey + " is not the key of the first certificate of " + CACertKey
		}
		return ""
	},
	func(s *secretState, _ params, _ time.Time) string {
		if !s.caCert.BasicConstraintsValid || !s.caCert.IsCA || s.caCert.KeyUsage&x509.KeyUsageCertSign == 0 {
			return "the first certificate of " + CACertKey + " is not a CA that may sign certificates"
		}
		return ""
	},
	func(s *secretState, _ params, now time.Time) string {
		// Only a clock behind the issuer's by more than the backdating sees
		// this; the CA that replica makes is valid for the others too, so
		// replicas do not take turns.
		if now.Before(s.caCert.NotBefore) {
			return "the CA is not valid until " + s.caCert.NotBefore.UTC().Format(time.RFC3339)
		}
		return ""
	},
	func(s *secretState, p params, now time.Time) string {
		return lifetimeLeft("the CA", s.caCert, p.refreshBefore, now)
	},
	func(s *secretState, p params, now time.Time) string {
		// A serving certificate cannot outlive its CA. One cut so short that
		// it would be due at once would be reissued every round; a CA this
		// package made never gets here (see Rotator.params), one seeded by
		// hand might.
		leafNotAfter := now.Add(p.certLifetime)
		if leafNotAfter.After(s.caCert.NotAfter) {
			leafNotAfter = s.caCert.NotAfter
		}
		lifetime := leafNotAfter.Sub(now.Add(-backdate))
		if leafNotAfter.Sub(now) <= time.Duration(p.refreshBefore*float64(lifetime)) {
			return "the CA expires at " + s.caCert.NotAfter.UTC().Format(time.RFC3339) + ", too soon to sign a serving certificate"
		}
		return ""
	},
}

// certPolicies decide whether the serving certificate is reissued by a CA
// that passed caPolicies.
var certPolicies = []policy{
	func(s *secretState, _ params, _ time.Time) string {
		if s.leafErr != nil {
			return s.leafErr.Error()
		}
		return ""
	},
	func(s *secretState, _ params, _ time.Time) string {
		if !keyMatches(s.leaf, s.leafKey) {
			return corev1.TLSPrivateKeyKey + " is not the key of " + corev1.TLSCertKey
		}
		return ""
	},
	func(s *secretState, p params, _ time.Time) string {
		if !slices.Equal(slices.Sorted(slices.Values(s.leaf.DNSNames)), slices.Sorted(slices.Values(p.dnsNames))) {
			return fmt.Sprintf("the serving certificate names %v, not %v", s.leaf.DNSNames, p.dnsNames)
		}
		return ""
	},
	func(s *secretState, p params, now time.Time) string {
		return lifetimeLeft("the serving certificate", s.leaf, p.refreshBefore, now)
	},
	func(s *secretState, _ params, now time.Time) string {
		return chainsTo(s.leaf, s.caCert, now)
	},
}

// keyMatches tells whether key is the private key of cert.
func keyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(key.Public())
}

// refreshAt is when a certificate is due for replacement: when less than
// refreshBefore of its lifetime is left.
func refreshAt(c *x509.Certificate, refreshBefore float64) time.Time {
	lifetime := c.NotAfter.Sub(c.NotBefore)
	return c.NotAfter.Add(-time.Duration(refreshBefore * float64(lifetime)))
}

func lifetimeLeft(what string, c *x509.Certificate, refreshBefore float64, now time.Time) string {
	if at := refreshAt(c, refreshBefore); !now.Before(at) {
		return fmt.Sprintf("%s expires at %s and was due for renewal at %s", what, c.NotAfter.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	return ""
}

// chainsTo says why leaf is not a server certificate signed by ca, or "".
func chainsTo(leaf, ca *x509.Certificate, now time.Time) string {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	// Verified at now, so a certificate not valid yet (issued by a replica
	// whose clock is ahead by more than the backdating) is reissued too; the
	// one reissued is valid for the replica ahead, so replicas do not take
	// turns.
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Sprintf("the serving certificate does not verify against the CA: %v", err)
	}
	return ""
}

func firstReason(policies []policy, s *secretState, p params, now time.Time) string {
	for _, check := range policies {
		if why := check(s, p, now); why != "" {
			return why
		}
	}
	return ""
}

// trustBundle is the CAs the webhook configurations trust: signer first,
// then the CAs of previous that are still valid at now. Keeping a replaced CA
// until it expires lets replicas that still serve a certificate it signed
// keep working until they pick up the new one.
func trustBundle(signer *x509.Certificate, previous []*x509.Certificate, now time.Time) []*x509.Certificate {
	bundle := []*x509.Certificate{signer}
	for _, c := range previous {
		if !c.IsCA || now.After(c.NotAfter) || slices.ContainsFunc(bundle, c.Equal) {
			continue
		}
		bundle = append(bundle, c)
	}
	return bundle
}

// renewal is what renew decided.
type renewal struct {
	// data is the Secret's new data; nil when the Secret is fine as it is.
	data map[string][]byte
	// caReason says why the CA was replaced; empty when it was kept.
	caReason string
	// certReason says why the serving certificate was reissued; empty when
	// it was kept.
	certReason string
}

// renew decides, from the Secret's data alone, whether the CA or the serving
// certificate must be replaced at now and makes the replacements. Keys of
// data it does not own are kept.
func renew(data map[string][]byte, p params, now time.Time) (renewal, error) {
	s := decodeSecret(data)
	var r renewal
	ca := &authority{cert: s.caCert, key: s.caKey}
	previous := s.trusted
	if len(previous) > 0 {
		previous = previous[1:]
	}
	out := maps.Clone(data)
	if out == nil {
		out = map[string][]byte{}
	}

	if r.caReason = firstReason(caPolicies, s, p, now); r.caReason != "" {
		var err error
		if ca, err = newCA(now, p.caLifetime); err != nil {
			return renewal{}, err
		}
		caKey, err := encodeKey(ca.key)
		if err != nil {
			return renewal{}, err
		}
		out[CAKeyKey] = caKey
		// Every CA the Secret trusted stays trusted until it expires, the
		// one replaced included.
		previous = s.trusted
		r.certReason = "its CA was replaced"
	} else {
		r.certReason = firstReason(certPolicies, s, p, now)
	}

	if r.certReason != "" {
		leaf, key, err := ca.issue(p.dnsNames, now, p.certLifetime)
		if err != nil {
			return renewal{}, err
		}
		keyPEM, err := encodeKey(key)
		if err != nil {
			return renewal{}, err
		}
		out[corev1.TLSCertKey], out[corev1.TLSPrivateKeyKey] = encodeCerts(leaf), keyPEM
	}

	// Rewritten on every renewal and whenever a trusted CA expired, so the
	// bundle never carries a CA that can no longer sign anything valid.
	out[CACertKey] = encodeCerts(trustBundle(ca.cert, previous, now)...)
	if r.caReason == "" && r.certReason == "" && bytes.Equal(out[CACertKey], data[CACertKey]) {
		return renewal{}, nil
	}
	r.data = out
	return r, nil
}
