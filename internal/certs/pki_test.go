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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// t0 is when the unit tests' certificates are first made.
var t0 = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

func testParams() params {
	return params{
		dnsNames:      serviceDNSNames("custos-webhook", "custos-system"),
		caLifetime:    DefaultCALifetime,
		certLifetime:  DefaultCertLifetime,
		refreshBefore: DefaultRefreshBefore,
	}
}

// fresh is a Secret's data as the first replica makes it at t0.
func fresh(t *testing.T, p params) map[string][]byte {
	t.Helper()
	r, err := renew(nil, p, t0)
	if err != nil {
		t.Fatal(err)
	}
	return r.data
}

func mustCA(t *testing.T, now time.Time, lifetime time.Duration) *authority {
	t.Helper()
	ca, err := newCA(now, lifetime)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// caData is ca.crt and ca.key of a CA valid from notBefore to notAfter, as
// someone might seed a Secret by hand.
func caData(t *testing.T, notBefore, notAfter time.Time) map[string][]byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "seeded"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		CACertKey: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		CAKeyKey:  keyPEM,
	}
}

func mustDecodeCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	certs, err := decodeCerts(data)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

// verifyServing checks that the serving certificate of data verifies for
// dnsName against the CA bundle of data at now, as the API server would.
func verifyServing(g Gomega, data map[string][]byte, dnsName string, now time.Time) {
	roots := x509.NewCertPool()
	g.Expect(roots.AppendCertsFromPEM(data[CACertKey])).To(BeTrue())
	leaf, err := decodeCerts(data[corev1.TLSCertKey])
	g.Expect(err).NotTo(HaveOccurred())
	_, err = leaf[0].Verify(x509.VerifyOptions{
		Roots:       roots,
		DNSName:     dnsName,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	g.Expect(err).NotTo(HaveOccurred())
}

func TestServiceDNSNames(t *testing.T) {
	g := NewWithT(t)
	g.Expect(serviceDNSNames("custos-webhook", "custos-system")).To(Equal([]string{
		"custos-webhook.custos-system.svc",
		"custos-webhook.custos-system.svc.cluster.local",
	}))
}

func TestNewCA(t *testing.T) {
	g := NewWithT(t)
	ca := mustCA(t, t0, DefaultCALifetime)

	g.Expect(ca.cert.IsCA).To(BeTrue())
	g.Expect(ca.cert.BasicConstraintsValid).To(BeTrue())
	g.Expect(ca.cert.MaxPathLenZero).To(BeTrue())
	g.Expect(ca.cert.KeyUsage & x509.KeyUsageCertSign).NotTo(BeZero())
	g.Expect(ca.cert.NotBefore).To(Equal(t0.Add(-backdate)))
	g.Expect(ca.cert.NotAfter).To(Equal(t0.Add(DefaultCALifetime)))
	g.Expect(ca.cert.CheckSignatureFrom(ca.cert)).To(Succeed())
	pub, ok := ca.cert.PublicKey.(*ecdsa.PublicKey)
	g.Expect(ok).To(BeTrue(), "an ECDSA key")
	g.Expect(pub.Curve).To(Equal(elliptic.P256()))
	g.Expect(keyMatches(ca.cert, ca.key)).To(BeTrue())
}

func TestIssue(t *testing.T) {
	ca := mustCA(t, t0, 2*DefaultCertLifetime)
	names := serviceDNSNames("svc", "ns")
	tests := []struct {
		name         string
		now          time.Time
		lifetime     time.Duration
		wantNotAfter time.Time
	}{
		{"within the CA's lifetime", t0, DefaultCertLifetime, t0.Add(DefaultCertLifetime)},
		{"cut short at the CA's expiry", t0.Add(DefaultCertLifetime + 24*time.Hour), DefaultCertLifetime, ca.cert.NotAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			leaf, key, err := ca.issue(names, tt.now, tt.lifetime)
			g.Expect(err).NotTo(HaveOccurred())

			g.Expect(leaf.IsCA).To(BeFalse())
			g.Expect(leaf.DNSNames).To(Equal(names))
			g.Expect(leaf.Subject.CommonName).To(Equal(names[0]))
			g.Expect(leaf.ExtKeyUsage).To(Equal([]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}))
			g.Expect(leaf.NotBefore).To(Equal(tt.now.Add(-backdate)))
			g.Expect(leaf.NotAfter).To(Equal(tt.wantNotAfter))
			g.Expect(keyMatches(leaf, key)).To(BeTrue())
			g.Expect(chainsTo(leaf, ca.cert, tt.now)).To(BeEmpty())
		})
	}
}

func TestSerialNumbers(t *testing.T) {
	g := NewWithT(t)
	seen := map[string]bool{}
	for range 200 {
		n, err := serialNumber()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(n.Sign()).To(Equal(1))
		g.Expect(n.BitLen()).To(BeNumerically("<=", 128))
		g.Expect(seen).NotTo(HaveKey(n.String()))
		seen[n.String()] = true
	}
	// The certificates carry them.
	a, b := mustCA(t, t0, time.Hour*24), mustCA(t, t0, time.Hour*24)
	g.Expect(a.cert.SerialNumber.Cmp(b.cert.SerialNumber)).NotTo(BeZero())
}

func TestDecodeKey(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := encodeKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	sec1DER, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pem     []byte
		wantErr string
	}{
		{"PKCS#8", pkcs8, ""},
		{"SEC1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1DER}), ""},
		{"PKCS#1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), ""},
		{"not PEM", []byte("hello"), "no PEM private key"},
		{"a certificate", encodeCerts(mustCA(t, t0, time.Hour*24).cert), "unexpected PEM block"},
		{"corrupt", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), "asn1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			key, err := decodeKey(tt.pem)
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(key).NotTo(BeNil())
		})
	}
}

func TestTrustBundle(t *testing.T) {
	signerCA := mustCA(t, t0, DefaultCALifetime)
	signer := signerCA.cert
	old := mustCA(t, t0.Add(-5*365*24*time.Hour), DefaultCALifetime).cert
	expired := mustCA(t, t0.Add(-11*365*24*time.Hour), DefaultCALifetime).cert
	leaf, _, err := signerCA.issue([]string{"x"}, t0, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		previous []*x509.Certificate
		want     []*x509.Certificate
	}{
		{"only the signer", nil, []*x509.Certificate{signer}},
		{"a replaced CA stays until it expires", []*x509.Certificate{old}, []*x509.Certificate{signer, old}},
		{"an expired CA goes", []*x509.Certificate{old, expired}, []*x509.Certificate{signer, old}},
		{"no duplicates", []*x509.Certificate{signer, old, old}, []*x509.Certificate{signer, old}},
		{"no certificate that is not a CA", []*x509.Certificate{leaf, old}, []*x509.Certificate{signer, old}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(trustBundle(signer, tt.previous, t0)).To(Equal(tt.want))
		})
	}
}

// TestRenew walks the rotation decision through time and through what a
// Secret may hold: each case starts from the data the first replica made at
// t0, changes it, and judges it when the fake clock has moved by step.
func TestRenew(t *testing.T) {
	p := testParams()
	base := fresh(t, p)
	other := fresh(t, p) // Another installation: another CA.
	baseCA := mustDecodeCerts(t, base[CACertKey])[0]
	baseLeaf := mustDecodeCerts(t, base[corev1.TLSCertKey])[0]
	leafDue := refreshAt(baseLeaf, p.refreshBefore).Sub(t0)
	caDue := refreshAt(baseCA, p.refreshBefore).Sub(t0)
	expiredCA := mustCA(t, t0.Add(-DefaultCALifetime-24*time.Hour), DefaultCALifetime)
	// Seeded by hand without backdating: not due for renewal, yet any
	// serving certificate it signed would be.
	shortCA := caData(t, t0.Add(-10*time.Minute), t0.Add(20*time.Minute))

	with := func(changes map[string][]byte) map[string][]byte {
		d := maps.Clone(base)
		for k, v := range changes {
			if v == nil {
				delete(d, k)
			} else {
				d[k] = v
			}
		}
		return d
	}

	tests := []struct {
		name string
		data map[string][]byte
		step time.Duration
		// names, when set, replace the service's DNS names.
		names []string

		wantCA     string // substring of the reason the CA is replaced; "" keeps it
		wantCert   string // substring of the reason the serving certificate is reissued; "" keeps it
		wantChange bool
		// wantBundle is how many CAs the bundle holds afterwards.
		wantBundle int
	}{
		{name: "fresh", data: base, wantBundle: 1},
		{name: "just before the serving certificate is due", data: base, step: leafDue - time.Second, wantBundle: 1},
		{name: "serving certificate due", data: base, step: leafDue, wantCert: "due for renewal", wantChange: true, wantBundle: 1},
		{name: "serving certificate expired", data: base, step: 2 * DefaultCertLifetime, wantCert: "due for renewal", wantChange: true, wantBundle: 1},
		{name: "CA due", data: base, step: caDue, wantCA: "the CA expires", wantCert: "its CA was replaced", wantChange: true, wantBundle: 2},
		{name: "CA expired", data: base, step: DefaultCALifetime + time.Hour, wantCA: "the CA expires", wantCert: "its CA was replaced", wantChange: true, wantBundle: 1},
		{name: "CA not valid yet", data: base, step: -2 * backdate, wantCA: "not valid until", wantCert: "its CA was replaced", wantChange: true, wantBundle: 2},
		{name: "service renamed", data: base, names: serviceDNSNames("renamed", "custos-system"), wantCert: "names", wantChange: true, wantBundle: 1},
		{name: "serving certificate from another CA", data: with(map[string][]byte{corev1.TLSCertKey: other[corev1.TLSCertKey], corev1.TLSPrivateKeyKey: other[corev1.TLSPrivateKeyKey]}), wantCert: "does not verify", wantChange: true, wantBundle: 1},
		{name: "serving key of another certificate", data: with(map[string][]byte{corev1.TLSPrivateKeyKey: other[corev1.TLSPrivateKeyKey]}), wantCert: "is not the key of", wantChange: true, wantBundle: 1},
		{name: "no serving key", data: with(map[string][]byte{corev1.TLSPrivateKeyKey: nil}), wantCert: "there is no tls.key", wantChange: true, wantBundle: 1},
		{name: "serving certificate garbled", data: with(map[string][]byte{corev1.TLSCertKey: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}), wantCert: "does not decode", wantChange: true, wantBundle: 1},
		{name: "CA key of another CA", data: with(map[string][]byte{CAKeyKey: other[CAKeyKey]}), wantCA: "is not the key of", wantCert: "its CA was replaced", wantChange: true, wantBundle: 2},
		{name: "no CA key", data: with(map[string][]byte{CAKeyKey: nil}), wantCA: "there is no ca.key", wantCert: "its CA was replaced", wantChange: true, wantBundle: 2},
		{name: "CA that is not a CA", data: with(map[string][]byte{CACertKey: base[corev1.TLSCertKey], CAKeyKey: base[corev1.TLSPrivateKeyKey]}), wantCA: "not a CA", wantCert: "its CA was replaced", wantChange: true, wantBundle: 1},
		{name: "CA too close to expiry to sign", data: with(shortCA), wantCA: "too soon to sign", wantCert: "its CA was replaced", wantChange: true, wantBundle: 2},
		{name: "empty", data: nil, wantCA: "there is no ca.crt", wantCert: "its CA was replaced", wantChange: true, wantBundle: 1},
		{name: "garbage", data: map[string][]byte{CACertKey: []byte("x"), CAKeyKey: []byte("y"), corev1.TLSCertKey: []byte("z"), corev1.TLSPrivateKeyKey: []byte("w")}, wantCA: "does not decode", wantCert: "its CA was replaced", wantChange: true, wantBundle: 1},
		{name: "expired CA left in the bundle", data: with(map[string][]byte{CACertKey: append(append([]byte{}, base[CACertKey]...), encodeCerts(expiredCA.cert)...)}), wantChange: true, wantBundle: 1},
		{name: "keys it does not own are kept", data: with(map[string][]byte{"extra": []byte("kept"), CAKeyKey: nil}), wantCA: "there is no ca.key", wantCert: "its CA was replaced", wantChange: true, wantBundle: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			clk := clocktesting.NewFakeClock(t0)
			clk.Step(tt.step)
			p := testParams()
			if tt.names != nil {
				p.dnsNames = tt.names
			}

			r, err := renew(tt.data, p, clk.Now())
			g.Expect(err).NotTo(HaveOccurred())

			if tt.wantCA == "" {
				g.Expect(r.caReason).To(BeEmpty())
			} else {
				g.Expect(r.caReason).To(ContainSubstring(tt.wantCA))
			}
			if tt.wantCert == "" {
				g.Expect(r.certReason).To(BeEmpty())
			} else {
				g.Expect(r.certReason).To(ContainSubstring(tt.wantCert))
			}
			if !tt.wantChange {
				g.Expect(r.data).To(BeNil())
				return
			}
			g.Expect(r.data).NotTo(BeNil())
			out := r.data

			bundle := mustDecodeCerts(t, out[CACertKey])
			g.Expect(bundle).To(HaveLen(tt.wantBundle))
			if tt.wantCA != "" {
				g.Expect(bundle[0].Equal(baseCA)).To(BeFalse(), "a new CA signs")
			}
			if tt.wantCA == "" && tt.wantCert == "" {
				g.Expect(out[corev1.TLSCertKey]).To(Equal(tt.data[corev1.TLSCertKey]), "the serving certificate is kept")
			}
			for k, v := range tt.data {
				if k != CACertKey && k != CAKeyKey && k != corev1.TLSCertKey && k != corev1.TLSPrivateKeyKey {
					g.Expect(out).To(HaveKeyWithValue(k, v))
				}
			}
			for _, name := range p.dnsNames {
				verifyServing(g, out, name, clk.Now())
			}
			// What renew makes, it accepts.
			again, err := renew(out, p, clk.Now())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(again).To(Equal(renewal{}))
		})
	}
}

// TestRenewKeepsOldCATrusted follows a CA rotation: a replica still serving
// the certificate the old CA signed keeps verifying against the new bundle
// until the old CA expires, when the bundle drops it.
func TestRenewKeepsOldCATrusted(t *testing.T) {
	g := NewWithT(t)
	p := testParams()
	clk := clocktesting.NewFakeClock(t0)
	data := fresh(t, p)
	oldCA := mustDecodeCerts(t, data[CACertKey])[0]

	// Just before the CA is due, the serving certificate is renewed by the
	// old CA; a lagging replica keeps serving it.
	clk.SetTime(refreshAt(oldCA, p.refreshBefore).Add(-time.Hour))
	r, err := renew(data, p, clk.Now())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.caReason).To(BeEmpty())
	g.Expect(r.certReason).NotTo(BeEmpty())
	lagging := r.data

	clk.Step(2 * time.Hour)
	r, err = renew(lagging, p, clk.Now())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.caReason).To(ContainSubstring("the CA expires"))
	rotated := r.data
	bundle := mustDecodeCerts(t, rotated[CACertKey])
	g.Expect(bundle).To(HaveLen(2))
	g.Expect(bundle[1].Equal(oldCA)).To(BeTrue(), "the old CA is still trusted")

	// The lagging replica's certificate verifies against the new bundle.
	stale := maps.Clone(rotated)
	stale[corev1.TLSCertKey] = lagging[corev1.TLSCertKey]
	verifyServing(g, stale, p.dnsNames[0], clk.Now())
	verifyServing(g, rotated, p.dnsNames[0], clk.Now())

	// Once the old CA has expired, it leaves the bundle.
	clk.SetTime(oldCA.NotAfter.Add(time.Second))
	r, err = renew(rotated, p, clk.Now())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.caReason).To(BeEmpty())
	g.Expect(mustDecodeCerts(t, r.data[CACertKey])).To(HaveLen(1))
	g.Expect(mustDecodeCerts(t, r.data[CACertKey])[0].Equal(bundle[0])).To(BeTrue())
}

func TestParams(t *testing.T) {
	valid := func() *Rotator {
		return &Rotator{
			Client:           fake.NewClientBuilder().Build(),
			Namespace:        "custos-system",
			SecretName:       "custos-webhook-tls",
			ServiceName:      "custos-webhook",
			ServiceNamespace: "custos-system",
			CertDir:          "/tmp/certs",
		}
	}
	tests := []struct {
		name    string
		change  func(*Rotator)
		wantErr string
	}{
		{"defaults", func(*Rotator) {}, ""},
		{"no secret name", func(r *Rotator) { r.SecretName = "" }, "no SecretName"},
		{"no cert dir", func(r *Rotator) { r.CertDir = "" }, "no CertDir"},
		{"no client", func(r *Rotator) { r.Client = nil }, "no Client"},
		{"refresh at expiry", func(r *Rotator) { r.RefreshBefore = 1 }, "not between 0 and 1"},
		{"negative refresh", func(r *Rotator) { r.RefreshBefore = -0.5 }, "not between 0 and 1"},
		{"serving certificate too short", func(r *Rotator) { r.CertLifetime = 20 * time.Minute }, "CertLifetime 20m0s is too short"},
		{"CA too short", func(r *Rotator) { r.CALifetime = 20 * time.Minute }, "CALifetime 20m0s is too short"},
		{"short but long enough", func(r *Rotator) { r.CertLifetime, r.CALifetime = 2*time.Hour, 4*time.Hour }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := valid()
			tt.change(r)
			p, err := r.params()
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.dnsNames).To(Equal(serviceDNSNames("custos-webhook", "custos-system")))
			g.Expect(p.refreshBefore).To(BeNumerically(">", 0))
			// With any valid settings, what renew makes is not due at once.
			data, err := renew(nil, p, t0)
			g.Expect(err).NotTo(HaveOccurred())
			again, err := renew(data.data, p, t0)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(again.data).To(BeNil())
		})
	}
}

func TestWriteFiles(t *testing.T) {
	g := NewWithT(t)
	dir := filepath.Join(t.TempDir(), "certs")
	data := fresh(t, testParams())

	g.Expect(writeFiles(dir, data)).To(Succeed())
	for _, f := range []struct {
		name string
		perm os.FileMode
	}{{corev1.TLSCertKey, 0o644}, {corev1.TLSPrivateKeyKey, 0o600}} {
		got, err := os.ReadFile(filepath.Join(dir, f.name))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got).To(Equal(data[f.name]))
		info, err := os.Stat(filepath.Join(dir, f.name))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(info.Mode().Perm()).To(Equal(f.perm))
	}
	entries, err := os.ReadDir(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(entries).To(HaveLen(2), "no temporary file is left behind")

	// Unchanged content is not rewritten: the file is the same one.
	before, err := os.Stat(filepath.Join(dir, corev1.TLSCertKey))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(writeFiles(dir, data)).To(Succeed())
	after, err := os.Stat(filepath.Join(dir, corev1.TLSCertKey))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.SameFile(before, after)).To(BeTrue())

	// New content replaces the file rather than writing into it.
	next := fresh(t, testParams())
	g.Expect(writeFiles(dir, next)).To(Succeed())
	after, err = os.Stat(filepath.Join(dir, corev1.TLSCertKey))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.SameFile(before, after)).To(BeFalse())
	got, err := os.ReadFile(filepath.Join(dir, corev1.TLSCertKey))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(next[corev1.TLSCertKey]))
}
