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
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"
)

// Registry is an in-memory OCI registry on 127.0.0.1. go-containerregistry
// speaks plain HTTP to loopback registries, so no TLS is needed.
type Registry struct {
	srv      *httptest.Server
	host     string
	down     atomic.Bool
	requests atomic.Int64
}

// StartRegistry starts a registry on a free port of 127.0.0.1.
func StartRegistry() (*Registry, error) {
	return StartRegistryAt("127.0.0.1:0")
}

// StartRegistryAt starts a registry listening on addr, which must be a
// loopback address (make dev uses a fixed port so its samples can name it).
func StartRegistryAt(addr string) (*Registry, error) {
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
	// The registry logs every request; nil would panic, so discard.
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = &httptest.Server{
		Listener: l,
		Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			r.requests.Add(1)
			if r.down.Load() {
				http.Error(w, "registry unavailable (imagetest)", http.StatusServiceUnavailable)
				return
			}
			reg.ServeHTTP(w, req)
		})},
	}
	r.srv.Start()
	r.host = l.Addr().String()
	return r, nil
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
	if err := remote.Write(tag, img); err != nil {
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
	sig, err := static.NewSignature(payload, base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		return err
	}
	se, err := ociremote.SignedEntity(d)
	if err != nil {
		return fmt.Errorf("reading %s: %w", d, err)
	}
	if se, err = mutate.AttachSignatureToEntity(se, sig); err != nil {
		return err
	}
	if err := ociremote.WriteSignatures(d.Context(), se); err != nil {
		return fmt.Errorf("writing the signature of %s: %w", d, err)
	}
	return nil
}

// Signer is a cosign key pair (ECDSA P-256), generated fresh.
type Signer struct {
	sv     signature.SignerVerifier
	public []byte
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
