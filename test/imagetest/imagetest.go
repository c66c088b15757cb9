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

// Package imagetest serves an in-process OCI registry on loopback holding
// images signed with cosign, the way `cosign sign --key` (without a
// transparency-log upload) signs them. The envtest suites, `make dev`, the
// benchmarks and the end-to-end suite use it so that every Agent runs a
// verified image, as in production, without any network.
package imagetest

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
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// Registry is an in-memory OCI registry on 127.0.0.1. go-containerregistry
// speaks plain HTTP to loopback registries, so no TLS is needed.
type Registry struct {
	srv  *httptest.Server
	host string
	down atomic.Bool
	// auth, when set, is the only credential the registry accepts
	// (WithBasicAuth); logf sees every request (WithRequestLog).
	auth *authn.Basic
	logf func(format string, args ...any)

	requests atomic.Int64 // every request
	sigGets  atomic.Int64 // served GETs of .../manifests/sha256-<hex>.sig
	tagHeads atomic.Int64 // served HEADs of .../manifests/<tag>
}

// RegistryOption changes how a registry serves.
type RegistryOption func(*Registry)

// WithBasicAuth makes the registry a private one: it answers a request
// without these credentials with 401 and a Basic challenge, as registries
// do. Push and Sign send them; a reader gets them from PullSecret.
func WithBasicAuth(user, password string) RegistryOption {
	return func(r *Registry) { r.auth = &authn.Basic{Username: user, Password: password} }
}

// WithRequestLog calls logf (t.Logf, say) with every request's method and
// path and whether it carried credentials: what a client asked for, when a
// test of it fails.
func WithRequestLog(logf func(format string, args ...any)) RegistryOption {
	return func(r *Registry) { r.logf = logf }
}

// StartRegistry starts a registry on a free port of 127.0.0.1.
func StartRegistry(opts ...RegistryOption) (*Registry, error) {
	return StartRegistryAt("127.0.0.1:0", opts...)
}

// StartRegistryAt starts a registry listening on addr, which must be a
// loopback address (make dev uses a fixed port so its samples can name it).
func StartRegistryAt(addr string, opts ...RegistryOption) (*Registry, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("registry address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("registry address %q: must be a loopback IP address", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	r := &Registry{}
	for _, opt := range opts {
		opt(r)
	}
	// The registry logs every request; nil would panic, so discard.
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = &httptest.Server{
		Listener: l,
		Config:   &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { r.serve(reg, w, req) })},
	}
	r.srv.Start()
	r.host = l.Addr().String()
	return r, nil
}

func (r *Registry) serve(reg http.Handler, w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	user, password, authed := req.BasicAuth()
	if r.logf != nil {
		r.logf("imagetest registry: %s %s (credentials: %v)", req.Method, req.URL.Path, authed)
	}
	if r.down.Load() {
		http.Error(w, "registry unavailable (imagetest)", http.StatusServiceUnavailable)
		return
	}
	if r.auth != nil && (!authed || user != r.auth.Username || password != r.auth.Password) {
		w.Header().Set("WWW-Authenticate", `Basic realm="imagetest"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	_, manifest, isManifest := strings.Cut(req.URL.Path, "/manifests/")
	switch {
	case !isManifest:
	case req.Method == http.MethodGet && strings.HasPrefix(manifest, "sha256-") && strings.HasSuffix(manifest, ".sig"):
		r.sigGets.Add(1)
	case req.Method == http.MethodHead && !strings.HasPrefix(manifest, "sha256"):
		r.tagHeads.Add(1)
	}
	reg.ServeHTTP(w, req)
}

// Host is the registry's host:port, the first part of its image references.
func (r *Registry) Host() string { return r.host }

// Close stops the registry.
func (r *Registry) Close() { r.srv.Close() }

// SetUnavailable makes every request fail with 503 Service Unavailable (true)
// or be served again (false): a registry outage.
func (r *Registry) SetUnavailable(down bool) { r.down.Store(down) }

// Requests is the number of requests the registry has received.
func (r *Registry) Requests() int64 { return r.requests.Load() }

// SignatureFetches is the number of cosign signature manifests
// (.../manifests/sha256-<hex>.sig) the registry has served: one per
// signature check a verifier made.
func (r *Registry) SignatureFetches() int64 { return r.sigGets.Load() }

// TagResolves is the number of HEAD requests for a manifest by tag the
// registry has served: one per tag a client resolved to a digest.
func (r *Registry) TagResolves() int64 { return r.tagHeads.Load() }

// PullSecret is a kubernetes.io/dockerconfigjson Secret holding the
// registry's credentials (WithBasicAuth; none otherwise), as an Agent's
// imagePullSecrets name one.
func (r *Registry) PullSecret(namespace, name string) *corev1.Secret {
	auths := map[string]any{}
	if r.auth != nil {
		auths[r.host] = map[string]string{"username": r.auth.Username, "password": r.auth.Password}
	}
	cfg, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: cfg},
	}
}

// remoteOptions authenticate the registry's own writes. They name a
// keychain, not an authenticator, because cosign's default options already
// name one and go-containerregistry refuses both.
func (r *Registry) remoteOptions() []remote.Option {
	if r.auth == nil {
		return nil
	}
	return []remote.Option{remote.WithAuthFromKeychain(ownKeychain{r.auth})}
}

// ownKeychain hands out the registry's credentials, for its own writes.
type ownKeychain struct{ auth authn.Authenticator }

func (k ownKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// Push writes a new random image (unique content, so a unique digest) under
// repoTag ("agents/app:1.0") and returns its reference by tag
// (Host()/repoTag) and by digest (Host()/agents/app@sha256:...).
func (r *Registry) Push(repoTag string) (ref, digestRef string, err error) {
	tag, err := name.NewTag(r.host + "/" + repoTag)
	if err != nil {
		return "", "", err
	}
	img, err := random.Image(256, 1)
	if err != nil {
		return "", "", err
	}
	if err := remote.Write(tag, img, r.remoteOptions()...); err != nil {
		return "", "", fmt.Errorf("pushing %s: %w", tag, err)
	}
	h, err := img.Digest()
	if err != nil {
		return "", "", err
	}
	return tag.String(), tag.Context().Digest(h.String()).String(), nil
}

// PushSigned pushes a new image under repoTag and signs its digest with s.
// It returns the reference by tag and the digest ("sha256:...").
func (r *Registry) PushSigned(repoTag string, s *Signer) (ref, digest string, err error) {
	ref, digestRef, err := r.Push(repoTag)
	if err != nil {
		return "", "", err
	}
	if err := r.Sign(digestRef, s); err != nil {
		return "", "", err
	}
	_, digest, _ = strings.Cut(digestRef, "@")
	return ref, digest, nil
}

// Sign attaches a cosign signature by s to the image digestRef
// (repo@sha256:...), as `cosign sign --key --tlog-upload=false` does.
func (r *Registry) Sign(digestRef string, s *Signer) error {
	d, err := name.NewDigest(digestRef)
	if err != nil {
		return err
	}
	payload, err := (&sigpayload.Cosign{Image: d}).MarshalJSON()
	if err != nil {
		return err
	}
	raw, err := s.sv.SignMessage(bytes.NewReader(payload))
	if err != nil {
		return err
	}
	var opts []static.Option
	if s.cert != nil {
		opts = append(opts, static.WithCertChain(s.cert, s.chain))
	}
	sig, err := static.NewSignature(payload, base64.StdEncoding.EncodeToString(raw), opts...)
	if err != nil {
		return err
	}
	ro := ociremote.WithMoreRemoteOptions(r.remoteOptions()...)
	se, err := ociremote.SignedEntity(d, ro)
	if err != nil {
		return fmt.Errorf("reading %s: %w", d, err)
	}
	if se, err = mutate.AttachSignatureToEntity(se, sig); err != nil {
		return err
	}
	if err := ociremote.WriteSignatures(d.Context(), se, ro); err != nil {
		return fmt.Errorf("writing the signature of %s: %w", d, err)
	}
	return nil
}

// Signer is a cosign key pair (ECDSA P-256), generated fresh; a keyless
// signer (CA.Signer) also carries its certificate and the CA's.
type Signer struct {
	sv          signature.SignerVerifier
	public      []byte
	cert, chain []byte
}

// NewSigner generates a key pair as `cosign generate-key-pair` does.
func NewSigner() (*Signer, error) {
	// The private key is encrypted with a throw-away password: it never
	// leaves this process.
	const pw = "imagetest"
	kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return []byte(pw), nil })
	if err != nil {
		return nil, err
	}
	sv, err := cosign.LoadPrivateKey(kb.PrivateBytes, []byte(pw), nil)
	if err != nil {
		return nil, err
	}
	return &Signer{sv: sv, public: kb.PublicBytes}, nil
}

// PublicKeyPEM is the public key in cosign.pub format (a PEM PUBLIC KEY block).
func (s *Signer) PublicKeyPEM() []byte { return bytes.Clone(s.public) }

// The sample agent's image and the Secret the sample DataBoundary trusts
// (config/samples).
const (
	SampleAgent         = "invoice-reconciler"
	SampleImage         = "registry.acme.example/agents/invoice-reconciler"
	SampleImageTag      = "1.4.2"
	SampleBoundary      = "acme-finance"
	SampleKeyNamespace  = "custos-system"
	SampleKeySecret     = "acme-finance-image-signers"
	sampleRepositoryTag = "agents/invoice-reconciler:" + SampleImageTag
)

// NewSampleTrust is the Trust config/samples expects: the sample agent's
// image, signed, and its public key for the Secret the sample DataBoundary
// names. Apply the samples through WriteSamplesOverlay.
func NewSampleTrust() (*Trust, error) {
	return NewTrust(sampleRepositoryTag, SampleKeyNamespace, SampleKeySecret)
}

// WriteSamplesOverlay writes into dir a kustomization that is samplesDir
// (config/samples) with the sample agent's image served by r instead of
// the sample's registry, which the sample DataBoundary also allows. kubectl
// apply -k dir then runs the samples verified, on loopback only.
func WriteSamplesOverlay(dir, samplesDir string, r *Registry) error {
	abs, err := filepath.Abs(samplesDir)
	if err != nil {
		return err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	rel, err := filepath.Rel(dir, abs)
	if err != nil {
		return err
	}
	kustomization := fmt.Sprintf(`# Written by Custos's test tooling: config/samples with the sample image
# served by a registry on loopback.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
sortOptions:
  order: fifo
patches:
  - target: {kind: Agent, name: %s}
    patch: |-
      - op: test
        path: /spec/image
        value: %s:%s
      - op: replace
        path: /spec/image
        value: %s/%s
  - target: {kind: DataBoundary, name: %s}
    patch: |-
      - op: add
        path: /spec/images/registries/-
        value: %s/agents/
`, filepath.ToSlash(rel), SampleAgent, SampleImage, SampleImageTag, r.Host(), sampleRepositoryTag, SampleBoundary, r.Host())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644)
}

// LoopbackOnly is an http.RoundTripper for registry clients in tests: a
// request to anything but a loopback IP address fails before any name is
// looked up, so a test image with a made-up registry never leaves the
// machine.
func LoopbackOnly() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("imagetest: refusing to dial %s: only loopback registries are reachable in tests", addr)
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	return t
}

// CA stands in for Fulcio, offline: a certificate authority that issues
// code-signing certificates naming an OIDC issuer and subject, as keyless
// signing does.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// NewCA makes a CA valid from an hour ago for two days.
func NewCA() (*CA, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imagetest fulcio"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pemBytes, err := cryptoutils.MarshalCertificateToPEM(c)
	if err != nil {
		return nil, err
	}
	return &CA{cert: c, key: k, pem: pemBytes}, nil
}

// TrustedRoot is a Sigstore trusted_root.json trusting this CA (and no
// transparency log), for a DataBoundary's spec.images.trustedRoot.
func (ca *CA) TrustedRoot() ([]byte, error) {
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01,
		[]root.CertificateAuthority{&root.FulcioCertificateAuthority{Root: ca.cert, ValidityPeriodStart: ca.cert.NotBefore, URI: "https://fulcio.invalid"}},
		nil, nil, nil)
	if err != nil {
		return nil, err
	}
	return tr.MarshalJSON()
}

// Fulcio's certificate extensions for the OIDC issuer (v1 raw, v2 DER UTF8String).
var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// Signer issues a certificate for subject (an e-mail address) from issuer
// and returns a signer that signs with it, as `cosign sign` keyless does.
// The certificate is valid for a day (Fulcio's last ten minutes; this CA is
// generous so that tests need no transparency log).
func (ca *CA) Signer(issuer, subject string) (*Signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	iss, err := asn1.MarshalWithParams(issuer, "utf8")
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), EmailAddresses: []string{subject},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: []pkix.Extension{{Id: oidIssuerV1, Value: []byte(issuer)}, {Id: oidIssuerV2, Value: iss}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	certPEM, err := cryptoutils.MarshalCertificateToPEM(c)
	if err != nil {
		return nil, err
	}
	sv, err := signature.LoadECDSASignerVerifier(k, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Signer{sv: sv, public: pub, cert: certPEM, chain: bytes.Clone(ca.pem)}, nil
}

// Trust is what a suite needs to run agents verified, as a platform team
// sets it up: a registry on loopback, a signing key, an agent image pushed
// and signed with it, and the Secret holding the public key that a
// DataBoundary's image policy names.
type Trust struct {
	Registry *Registry
	Signer   *Signer
	// Image is the agent image by tag; Digest its digest (sha256:…).
	Image, Digest string
	// SecretNamespace and SecretName hold the public key, under SecretKey.
	SecretNamespace, SecretName string
	repository                  string
}

// SecretKey is the key of the public key in Trust's Secret.
const SecretKey = "cosign.pub"

// NewTrust starts a registry and pushes repoTag ("agents/app:1.0") signed
// with a new key whose public half is to live in Secret
// secretNamespace/secretName (see Secret). Close stops the registry.
func NewTrust(repoTag, secretNamespace, secretName string) (*Trust, error) {
	reg, err := StartRegistry()
	if err != nil {
		return nil, err
	}
	t := &Trust{Registry: reg, SecretNamespace: secretNamespace, SecretName: secretName}
	if t.Signer, err = NewSigner(); err == nil {
		t.Image, t.Digest, err = reg.PushSigned(repoTag, t.Signer)
	}
	if err != nil {
		reg.Close()
		return nil, err
	}
	t.repository, _, _ = strings.Cut(repoTag, ":")
	return t, nil
}

// Close stops the registry.
func (t *Trust) Close() { t.Registry.Close() }

// Secret is the Secret to create with the signer's public key.
func (t *Trust) Secret() *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.SecretNamespace, Name: t.SecretName},
		Data:       map[string][]byte{SecretKey: t.Signer.PublicKeyPEM()},
	}
}

// Apply creates, as the platform team would, the Secret with the signer's
// public key, and its namespace unless it exists.
func (t *Trust) Apply(ctx context.Context, c client.Client) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: t.SecretNamespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", t.SecretNamespace, err)
	}
	if err := c.Create(ctx, t.Secret()); err != nil {
		return fmt.Errorf("creating the image signers' Secret %s/%s: %w", t.SecretNamespace, t.SecretName, err)
	}
	return nil
}

// Policy is a DataBoundary image policy trusting the signer, for images of
// the registry's agents/ repositories.
func (t *Trust) Policy() *custosv1alpha1.ImagePolicy {
	return &custosv1alpha1.ImagePolicy{
		Registries: []string{t.Registry.Host() + "/agents/"},
		PublicKeys: []custosv1alpha1.TrustSource{{SecretRef: &custosv1alpha1.ObjectKeyReference{
			Namespace: t.SecretNamespace, Name: t.SecretName, Key: SecretKey,
		}}},
	}
}

// Pinned is Image as the agent's pods run it: by its verified digest.
func (t *Trust) Pinned() string {
	return t.Registry.Host() + "/" + t.repository + "@" + t.Digest
}
