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
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"
	corev1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

const testUser, testPass = "custos", "s3cret"

// testRegistry is an in-memory OCI registry on 127.0.0.1 behind basic auth
// that counts requests.
type testRegistry struct {
	host     string
	kc       authn.Keychain
	srv      *httptest.Server
	requests atomic.Int64 // all requests
	sigGets  atomic.Int64 // authorised GETs of .../manifests/sha256-<hex>.sig
	tagHeads atomic.Int64 // authorised HEADs of .../manifests/<tag>
}

func newTestRegistry(t testing.TB) *testRegistry {
	t.Helper()
	tr := &testRegistry{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.requests.Add(1)
		if os.Getenv("IMAGEVERIFY_TRACE") != "" {
			_, _, authed := r.BasicAuth()
			t.Logf("%s %s auth=%v", r.Method, r.URL.Path, authed)
		}
		if u, p, ok := r.BasicAuth(); !ok || u != testUser || p != testPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/sha256-") && strings.HasSuffix(r.URL.Path, ".sig") {
			tr.sigGets.Add(1)
		}
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") && !strings.Contains(r.URL.Path, "/manifests/sha256") {
			tr.tagHeads.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(tr.srv.Close)
	u, err := url.Parse(tr.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	tr.host = u.Host // 127.0.0.1:PORT: go-containerregistry uses plain http for loopback

	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{tr.host: map[string]string{"username": testUser, "password": testPass}}})
	kc, err := KeychainFromPullSecrets(context.Background(), []corev1.Secret{{
		Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: cfg},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tr.kc = kc
	return tr
}

// push writes a random image under repo:tag and returns its digest reference.
func (tr *testRegistry) push(t testing.TB, repoTag string) name.Digest {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(tr.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithAuthFromKeychain(tr.kc)); err != nil {
		t.Fatal(err)
	}
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return tag.Context().Digest(h.String())
}

// sign attaches a cosign simple-signing signature to d, as
// `cosign sign --tlog-upload=false` does. certPEM/chainPEM are optional.
func (tr *testRegistry) sign(t testing.TB, d name.Digest, s signature.Signer, certPEM, chainPEM []byte) {
	t.Helper()
	payload, err := (&sigpayload.Cosign{Image: d}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.SignMessage(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	var opts []static.Option
	if certPEM != nil {
		opts = append(opts, static.WithCertChain(certPEM, chainPEM))
	}
	sig, err := static.NewSignature(payload, base64.StdEncoding.EncodeToString(raw), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ro := ociremote.WithRemoteOptions(remote.WithAuthFromKeychain(tr.kc))
	se, err := ociremote.SignedEntity(d, ro)
	if err != nil {
		t.Fatal(err)
	}
	if se, err = mutate.AttachSignatureToEntity(se, sig); err != nil {
		t.Fatal(err)
	}
	if err := ociremote.WriteSignatures(d.Context(), se, ro); err != nil {
		t.Fatal(err)
	}
}

// genKey generates a key pair in cosign format (encrypted cosign.key + cosign.pub).
func genKey(t testing.TB) (signature.SignerVerifier, []byte) {
	t.Helper()
	pw := func(bool) ([]byte, error) { return []byte("pw"), nil }
	kb, err := cosign.GenerateKeyPair(pw)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := cosign.LoadPrivateKey(kb.PrivateBytes, []byte("pw"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return sv, kb.PublicBytes
}

func keyIDOf(t *testing.T, pubPEM []byte) string {
	t.Helper()
	k, err := cryptoutils.UnmarshalPEMToPublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	id, err := KeyID(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func reasonOf(g *WithT, err error) string {
	g.Expect(err).To(HaveOccurred())
	var e *Error
	g.Expect(err).To(BeAssignableToTypeOf(e))
	return ReasonOf(err)
}

type fixture struct {
	reg    *testRegistry
	sv     signature.SignerVerifier
	pub    []byte
	policy Policy
}

func newFixture(t *testing.T) *fixture {
	reg := newTestRegistry(t)
	sv, pub := genKey(t)
	return &fixture{reg: reg, sv: sv, pub: pub, policy: Policy{Registries: []string{reg.host + "/apps"}, Keys: [][]byte{pub}}}
}

func TestVerifyKeyBased(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newFixture(t)
	signed := f.reg.push(t, "apps/web:v1")
	f.reg.sign(t, signed, f.sv, nil, nil)
	f.reg.push(t, "apps/web:unsigned")
	v := &Verifier{}

	res, err := v.Verify(ctx, f.reg.host+"/apps/web:v1", f.policy, f.reg.kc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Digest).To(Equal(signed.String()))
	g.Expect(res.Digest).To(MatchRegexp(`^127\.0\.0\.1:\d+/apps/web@sha256:[0-9a-f]{64}$`))
	g.Expect(res.Signer).To(Equal(keyIDOf(t, f.pub)))
	g.Expect(res.VerifiedAt).NotTo(BeZero())

	// By digest too.
	res, err = v.Verify(ctx, signed.String(), f.policy, f.reg.kc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Digest).To(Equal(signed.String()))

	// Second key in the policy that does not match is fine.
	_, otherPub := genKey(t)
	two := f.policy
	two.Keys = [][]byte{otherPub, f.pub}
	res, err = v.Verify(ctx, f.reg.host+"/apps/web:v1", two, f.reg.kc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Signer).To(Equal(keyIDOf(t, f.pub)))

	// Wrong key.
	wrong := f.policy
	wrong.Keys = [][]byte{otherPub}
	_, err = v.Verify(ctx, f.reg.host+"/apps/web:v1", wrong, f.reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonUntrustedSigner))
	g.Expect(IsTransient(err)).To(BeFalse())

	// Unsigned.
	_, err = v.Verify(ctx, f.reg.host+"/apps/web:unsigned", f.policy, f.reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonSignatureMissing))
	g.Expect(IsTransient(err)).To(BeFalse())
}

func TestVerifyRegistryNotAllowedMakesNoRequest(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	d := f.reg.push(t, "other/web:v1")
	f.reg.sign(t, d, f.sv, nil, nil)
	before := f.reg.requests.Load()

	v := &Verifier{}
	for _, img := range []string{f.reg.host + "/other/web:v1", d.String(), f.reg.host + "/apps-evil/web:v1", "docker.io/library/nginx:1"} {
		_, err := v.Verify(context.Background(), img, f.policy, f.reg.kc)
		g.Expect(reasonOf(g, err)).To(Equal(ReasonRegistryNotAllowed), img)
	}
	g.Expect(f.reg.requests.Load()).To(Equal(before))
}

func TestVerifyResolveFailedIsNotCached(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newFixture(t)
	v := &Verifier{TTL: time.Hour}

	// Missing tag.
	before := f.reg.requests.Load()
	_, err := v.Verify(ctx, f.reg.host+"/apps/web:nope", f.policy, f.reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonResolveFailed))
	g.Expect(IsTransient(err)).To(BeTrue())
	afterFirst := f.reg.requests.Load()
	g.Expect(afterFirst).To(BeNumerically(">", before))
	_, err = v.Verify(ctx, f.reg.host+"/apps/web:nope", f.policy, f.reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonResolveFailed))
	g.Expect(f.reg.requests.Load()).To(BeNumerically(">", afterFirst))

	// Missing credentials.
	f.reg.push(t, "apps/web:v1")
	_, err = v.Verify(ctx, f.reg.host+"/apps/web:v1", f.policy, nil)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonResolveFailed))

	// Transient failure while fetching signatures of a digest: not cached.
	d := f.reg.push(t, "apps/web:v2")
	f.reg.sign(t, d, f.sv, nil, nil)
	_, err = v.Verify(ctx, d.String(), f.policy, authn.NewMultiKeychain())
	g.Expect(reasonOf(g, err)).To(Equal(ReasonResolveFailed))
	_, err = v.Verify(ctx, d.String(), f.policy, f.reg.kc)
	g.Expect(err).NotTo(HaveOccurred())

	// Unreachable registry (closed listener on 127.0.0.1).
	dead := httptest.NewServer(http.NotFoundHandler())
	deadHost := strings.TrimPrefix(dead.URL, "http://")
	dead.Close()
	p := f.policy
	p.Registries = nil
	_, err = v.Verify(ctx, deadHost+"/apps/web:v1", p, f.reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonResolveFailed))
	_, err = v.Verify(ctx, deadHost+"/apps/web@"+d.DigestStr(), p, f.reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonResolveFailed))

	v.mu.Lock()
	defer v.mu.Unlock()
	g.Expect(v.cache).To(HaveLen(1)) // only the successful verification
}

func TestVerifyCache(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newFixture(t)
	d := f.reg.push(t, "apps/web:v1")
	f.reg.sign(t, d, f.sv, nil, nil)
	f.reg.push(t, "apps/web:unsigned")
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	v := &Verifier{Clock: clk, TTL: time.Minute}
	img := f.reg.host + "/apps/web:v1"

	sigs0 := f.reg.sigGets.Load()
	res1, err := v.Verify(ctx, img, f.policy, f.reg.kc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.reg.sigGets.Load()).To(Equal(sigs0 + 1))

	// Within TTL: tag re-resolved, no signature fetch.
	clk.SetTime(clk.Now().Add(30 * time.Second))
	heads := f.reg.tagHeads.Load()
	res2, err := v.Verify(ctx, img, f.policy, f.reg.kc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res2).To(Equal(res1))
	g.Expect(f.reg.sigGets.Load()).To(Equal(sigs0 + 1))
	g.Expect(f.reg.tagHeads.Load()).To(Equal(heads + 1))

	// By digest within TTL: no request at all.
	reqs := f.reg.requests.Load()
	_, err = v.Verify(ctx, d.String(), f.policy, f.reg.kc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.reg.requests.Load()).To(Equal(reqs))

	// A different policy is a different cache entry.
	p2 := f.policy
	p2.Registries = append([]string{"example.invalid"}, p2.Registries...)
	_, err = v.Verify(ctx, img, p2, f.reg.kc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.reg.sigGets.Load()).To(Equal(sigs0 + 2))

	// The tag is moved to another (unsigned) image: re-resolved, not cached.
	moved := f.reg.push(t, "apps/web:v1")
	_, err = v.Verify(ctx, img, f.policy, f.reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonSignatureMissing))
	var e *Error
	g.Expect(err).To(BeAssignableToTypeOf(e))
	g.Expect(err.(*Error).Digest).To(Equal(moved.String()))
	sigs := f.reg.sigGets.Load()
	_, err = v.Verify(ctx, img, f.policy, f.reg.kc) // permanent failure: cached
	g.Expect(reasonOf(g, err)).To(Equal(ReasonSignatureMissing))
	g.Expect(f.reg.sigGets.Load()).To(Equal(sigs))

	// After TTL: verified again.
	clk.SetTime(clk.Now().Add(2 * time.Minute))
	res3, err := v.Verify(ctx, d.String(), f.policy, f.reg.kc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.reg.sigGets.Load()).To(Equal(sigs + 1))
	g.Expect(res3.VerifiedAt).To(Equal(clk.Now()))
}

func TestVerifyConcurrentCallsShareOneVerification(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	d := f.reg.push(t, "apps/web:v1")
	f.reg.sign(t, d, f.sv, nil, nil)
	v := &Verifier{}
	sigs0 := f.reg.sigGets.Load()

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			res, err := v.Verify(context.Background(), f.reg.host+"/apps/web:v1", f.policy, f.reg.kc)
			if err == nil && res.Digest != d.String() {
				err = &Error{Reason: "WrongDigest", Digest: res.Digest}
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(f.reg.sigGets.Load()).To(Equal(sigs0 + 1))
}

func TestVerifyRefusesCopiedSignature(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newFixture(t)
	signed := f.reg.push(t, "apps/web:v1")
	f.reg.sign(t, signed, f.sv, nil, nil)
	victim := f.reg.push(t, "apps/web:v2")

	// Copy v1's signature manifest to v2's signature tag.
	ro := remote.WithAuthFromKeychain(f.reg.kc)
	st1, err := ociremote.SignatureTag(signed)
	g.Expect(err).NotTo(HaveOccurred())
	st2, err := ociremote.SignatureTag(victim)
	g.Expect(err).NotTo(HaveOccurred())
	img, err := remote.Image(st1, ro)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(remote.Write(st2, img, ro)).To(Succeed())

	_, err = (&Verifier{}).Verify(ctx, f.reg.host+"/apps/web:v2", f.policy, f.reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonUntrustedSigner))
	g.Expect(err.Error()).To(ContainSubstring("digest in claim"))
}

func TestVerifyInvalidPolicy(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	before := f.reg.requests.Load()
	for _, p := range []Policy{
		{},
		{Keys: [][]byte{[]byte("not a key")}},
		{Keyless: []Identity{{Issuer: "https://issuer.example", Subject: "a@example.com"}}}, // no trusted root
		{Keyless: []Identity{{Issuer: "https://issuer.example"}}, TrustedRoot: []byte("{}")},
		{Keyless: []Identity{{Issuer: "x", SubjectRegexp: "("}}, TrustedRoot: []byte("{}")},
		{Keys: [][]byte{f.pub}, RequireTlog: true},
	} {
		_, err := (&Verifier{}).Verify(context.Background(), f.reg.host+"/apps/web:v1", p, f.reg.kc)
		g.Expect(reasonOf(g, err)).To(Equal(ReasonInvalidPolicy), "%+v", p)
		g.Expect(IsTransient(err)).To(BeFalse())
	}
	_, err := (&Verifier{}).Verify(context.Background(), "UPPER/case:v1", f.policy, f.reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonInvalidPolicy))
	g.Expect(f.reg.requests.Load()).To(Equal(before))
}

// ---- keyless: private CA in a trusted_root.json, offline ----

var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-fulcio"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01,
		[]root.CertificateAuthority{&root.FulcioCertificateAuthority{Root: c, ValidityPeriodStart: c.NotBefore, URI: "https://fulcio.invalid"}},
		nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	trJSON, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return c, k, trJSON
}

func newLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, email, issuer string) (certPEM []byte, sv signature.SignerVerifier) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss, _ := asn1.MarshalWithParams(issuer, "utf8")
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), EmailAddresses: []string{email},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(10 * time.Minute),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: []pkix.Extension{{Id: oidIssuerV1, Value: []byte(issuer)}, {Id: oidIssuerV2, Value: iss}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	certPEM, _ = cryptoutils.MarshalCertificateToPEM(c)
	sv, err = signature.LoadECDSASignerVerifier(k, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, sv
}

func TestVerifyKeyless(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	reg := newTestRegistry(t)
	d := reg.push(t, "apps/api:v1")
	ca, caKey, trJSON := newCA(t)
	leafPEM, sv := newLeaf(t, ca, caKey, "dev@example.com", "https://issuer.example")
	caPEM, _ := cryptoutils.MarshalCertificateToPEM(ca)
	reg.sign(t, d, sv, leafPEM, caPEM)
	v := &Verifier{}

	p := Policy{
		Keyless:     []Identity{{Issuer: "https://issuer.example", Subject: "dev@example.com"}},
		TrustedRoot: trJSON,
	}
	res, err := v.Verify(ctx, d.String(), p, reg.kc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Signer).To(Equal("dev@example.com (https://issuer.example)"))

	re := p
	re.Keyless = []Identity{{IssuerRegexp: `^https://issuer\.example$`, SubjectRegexp: `@example\.com$`}}
	_, err = v.Verify(ctx, d.String(), re, reg.kc)
	g.Expect(err).NotTo(HaveOccurred())

	wrongSubject := p
	wrongSubject.Keyless = []Identity{{Issuer: "https://issuer.example", Subject: "mallory@example.com"}}
	_, err = v.Verify(ctx, d.String(), wrongSubject, reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonUntrustedSigner))

	_, _, otherRoot := newCA(t)
	untrustedCA := p
	untrustedCA.TrustedRoot = otherRoot
	_, err = v.Verify(ctx, d.String(), untrustedCA, reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonUntrustedSigner))

	// A key-only policy does not accept a certificate signature.
	_, pub := genKey(t)
	_, err = v.Verify(ctx, d.String(), Policy{Keys: [][]byte{pub}}, reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonUntrustedSigner))

	// RequireTlog: the signature has no Rekor bundle.
	tl := p
	tl.RequireTlog = true
	_, err = v.Verify(ctx, d.String(), tl, reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonUntrustedSigner))
}
