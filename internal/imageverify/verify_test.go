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
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	corev1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/custos-dev/custos/test/imagetest"
)

// The tests verify images of the suites' signing registry (test/imagetest),
// made private: it refuses requests without credentials, so that what the
// verifier does without them is tested too.

const testUser, testPass = "custos", "s3cret"

// testRegistry is a private imagetest registry and the keychain the
// verifier reads its credentials from, built from a pull Secret as the
// reconciler builds it from an Agent's imagePullSecrets.
type testRegistry struct {
	*imagetest.Registry
	host string
	kc   authn.Keychain
}

func newTestRegistry(t testing.TB) *testRegistry {
	t.Helper()
	opts := []imagetest.RegistryOption{imagetest.WithBasicAuth(testUser, testPass)}
	if os.Getenv("IMAGEVERIFY_TRACE") != "" {
		opts = append(opts, imagetest.WithRequestLog(t.Logf))
	}
	reg, err := imagetest.StartRegistry(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	kc, err := KeychainFromPullSecrets(context.Background(), []corev1.Secret{*reg.PullSecret("", "pull")})
	if err != nil {
		t.Fatal(err)
	}
	return &testRegistry{Registry: reg, host: reg.Host(), kc: kc}
}

// push writes a new image under repoTag and returns its digest reference.
func (tr *testRegistry) push(t testing.TB, repoTag string) name.Digest {
	t.Helper()
	_, digestRef, err := tr.Push(repoTag)
	if err != nil {
		t.Fatal(err)
	}
	d, err := name.NewDigest(digestRef)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// sign attaches s's cosign signature to d, as `cosign sign
// --tlog-upload=false` does.
func (tr *testRegistry) sign(t testing.TB, d name.Digest, s *imagetest.Signer) {
	t.Helper()
	if err := tr.Sign(d.String(), s); err != nil {
		t.Fatal(err)
	}
}

// newSigner generates a key pair in cosign format and returns it with its
// public key (cosign.pub).
func newSigner(t testing.TB) (*imagetest.Signer, []byte) {
	t.Helper()
	s, err := imagetest.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	return s, s.PublicKeyPEM()
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
	signer *imagetest.Signer
	pub    []byte
	policy Policy
}

func newFixture(t *testing.T) *fixture {
	reg := newTestRegistry(t)
	s, pub := newSigner(t)
	return &fixture{reg: reg, signer: s, pub: pub, policy: Policy{Registries: []string{reg.host + "/apps"}, Keys: [][]byte{pub}}}
}

func TestVerifyKeyBased(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newFixture(t)
	signed := f.reg.push(t, "apps/web:v1")
	f.reg.sign(t, signed, f.signer)
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
	_, otherPub := newSigner(t)
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
	f.reg.sign(t, d, f.signer)
	before := f.reg.Requests()

	v := &Verifier{}
	for _, img := range []string{f.reg.host + "/other/web:v1", d.String(), f.reg.host + "/apps-evil/web:v1", "docker.io/library/nginx:1"} {
		_, err := v.Verify(context.Background(), img, f.policy, f.reg.kc)
		g.Expect(reasonOf(g, err)).To(Equal(ReasonRegistryNotAllowed), img)
	}
	g.Expect(f.reg.Requests()).To(Equal(before))
}

func TestVerifyResolveFailedIsNotCached(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newFixture(t)
	v := &Verifier{TTL: time.Hour}

	// Missing tag.
	before := f.reg.Requests()
	_, err := v.Verify(ctx, f.reg.host+"/apps/web:nope", f.policy, f.reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonResolveFailed))
	g.Expect(IsTransient(err)).To(BeTrue())
	afterFirst := f.reg.Requests()
	g.Expect(afterFirst).To(BeNumerically(">", before))
	_, err = v.Verify(ctx, f.reg.host+"/apps/web:nope", f.policy, f.reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonResolveFailed))
	g.Expect(f.reg.Requests()).To(BeNumerically(">", afterFirst))

	// Missing credentials.
	f.reg.push(t, "apps/web:v1")
	_, err = v.Verify(ctx, f.reg.host+"/apps/web:v1", f.policy, nil)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonResolveFailed))

	// Transient failure while fetching signatures of a digest: not cached.
	d := f.reg.push(t, "apps/web:v2")
	f.reg.sign(t, d, f.signer)
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
	f.reg.sign(t, d, f.signer)
	f.reg.push(t, "apps/web:unsigned")
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	v := &Verifier{Clock: clk, TTL: time.Minute}
	img := f.reg.host + "/apps/web:v1"

	sigs0 := f.reg.SignatureFetches()
	res1, err := v.Verify(ctx, img, f.policy, f.reg.kc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.reg.SignatureFetches()).To(Equal(sigs0 + 1))

	// Within TTL: tag re-resolved, no signature fetch.
	clk.SetTime(clk.Now().Add(30 * time.Second))
	heads := f.reg.TagResolves()
	res2, err := v.Verify(ctx, img, f.policy, f.reg.kc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res2).To(Equal(res1))
	g.Expect(f.reg.SignatureFetches()).To(Equal(sigs0 + 1))
	g.Expect(f.reg.TagResolves()).To(Equal(heads + 1))

	// By digest within TTL: no request at all.
	reqs := f.reg.Requests()
	_, err = v.Verify(ctx, d.String(), f.policy, f.reg.kc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.reg.Requests()).To(Equal(reqs))

	// A different policy is a different cache entry.
	p2 := f.policy
	p2.Registries = append([]string{"example.invalid"}, p2.Registries...)
	_, err = v.Verify(ctx, img, p2, f.reg.kc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.reg.SignatureFetches()).To(Equal(sigs0 + 2))

	// The tag is moved to another (unsigned) image: re-resolved, not cached.
	moved := f.reg.push(t, "apps/web:v1")
	_, err = v.Verify(ctx, img, f.policy, f.reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonSignatureMissing))
	var e *Error
	g.Expect(err).To(BeAssignableToTypeOf(e))
	g.Expect(err.(*Error).Digest).To(Equal(moved.String()))
	sigs := f.reg.SignatureFetches()
	_, err = v.Verify(ctx, img, f.policy, f.reg.kc) // permanent failure: cached
	g.Expect(reasonOf(g, err)).To(Equal(ReasonSignatureMissing))
	g.Expect(f.reg.SignatureFetches()).To(Equal(sigs))

	// After TTL: verified again.
	clk.SetTime(clk.Now().Add(2 * time.Minute))
	res3, err := v.Verify(ctx, d.String(), f.policy, f.reg.kc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.reg.SignatureFetches()).To(Equal(sigs + 1))
	g.Expect(res3.VerifiedAt).To(Equal(clk.Now()))
}

func TestVerifyConcurrentCallsShareOneVerification(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	d := f.reg.push(t, "apps/web:v1")
	f.reg.sign(t, d, f.signer)
	v := &Verifier{}
	sigs0 := f.reg.SignatureFetches()

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
	g.Expect(f.reg.SignatureFetches()).To(Equal(sigs0 + 1))
}

func TestVerifyRefusesCopiedSignature(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newFixture(t)
	signed := f.reg.push(t, "apps/web:v1")
	f.reg.sign(t, signed, f.signer)
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
	before := f.reg.Requests()
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
	g.Expect(f.reg.Requests()).To(Equal(before))
}

// ---- keyless: a private CA (imagetest's offline Fulcio) in a trusted_root.json ----

// newCA is a CA standing in for Fulcio and a trusted_root.json trusting it.
func newCA(t *testing.T) (*imagetest.CA, []byte) {
	t.Helper()
	ca, err := imagetest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	root, err := ca.TrustedRoot()
	if err != nil {
		t.Fatal(err)
	}
	return ca, root
}

func TestVerifyKeyless(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	reg := newTestRegistry(t)
	d := reg.push(t, "apps/api:v1")
	ca, trJSON := newCA(t)
	leaf, err := ca.Signer("https://issuer.example", "dev@example.com")
	g.Expect(err).NotTo(HaveOccurred())
	reg.sign(t, d, leaf)
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

	_, otherRoot := newCA(t)
	untrustedCA := p
	untrustedCA.TrustedRoot = otherRoot
	_, err = v.Verify(ctx, d.String(), untrustedCA, reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonUntrustedSigner))

	// A key-only policy does not accept a certificate signature.
	_, pub := newSigner(t)
	_, err = v.Verify(ctx, d.String(), Policy{Keys: [][]byte{pub}}, reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonUntrustedSigner))

	// RequireTlog: the signature has no Rekor bundle.
	tl := p
	tl.RequireTlog = true
	_, err = v.Verify(ctx, d.String(), tl, reg.kc)
	g.Expect(reasonOf(g, err)).To(Equal(ReasonUntrustedSigner))
}
