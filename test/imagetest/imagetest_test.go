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

package imagetest_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-dev/custos/internal/imageverify"
	"github.com/custos-dev/custos/test/imagetest"
)

// TestSignedImageVerifies: what the registry serves verifies with the
// signer's public key and with no other, and an outage is a transient
// failure.
func TestSignedImageVerifies(t *testing.T) {
	reg, err := imagetest.StartRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	s, err := imagetest.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	ref, digest, err := reg.PushSigned("agents/app:1.0", s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ref, reg.Host()+"/agents/app:") || !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("PushSigned = %q, %q", ref, digest)
	}
	v := &imageverify.Verifier{TTL: -1}
	res, err := v.Verify(context.Background(), ref, imageverify.Policy{Keys: [][]byte{s.PublicKeyPEM()}}, nil)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if want := reg.Host() + "/agents/app@" + digest; res.Digest != want {
		t.Fatalf("digest %q, want %q", res.Digest, want)
	}
	other, err := imagetest.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), ref, imageverify.Policy{Keys: [][]byte{other.PublicKeyPEM()}}, nil)
	if got := imageverify.ReasonOf(err); got != imageverify.ReasonUntrustedSigner {
		t.Fatalf("another key: reason %q (%v), want UntrustedSigner", got, err)
	}
	reg.SetUnavailable(true)
	_, err = v.Verify(context.Background(), ref, imageverify.Policy{Keys: [][]byte{s.PublicKeyPEM()}}, nil)
	if got := imageverify.ReasonOf(err); got != imageverify.ReasonResolveFailed {
		t.Fatalf("outage: reason %q (%v), want ResolveFailed", got, err)
	}
	if _, err := imagetest.StartRegistryAt("192.0.2.1:0"); err == nil {
		t.Fatal("a registry on a non-loopback address was started")
	}
}

// TestSamplesOverlay: the overlay renders from a relative directory too (make
// dev writes it into .dev/samples), and points the sample agent and its
// boundary at the registry.
func TestSamplesOverlay(t *testing.T) {
	reg, err := imagetest.StartRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	if err := imagetest.WriteSamplesOverlay(filepath.Join("state", "samples"), filepath.Join(root, "config", "samples"), reg); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join("state", "samples", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"value: " + reg.Host() + "/agents/invoice-reconciler:1.4.2", "value: " + reg.Host() + "/agents/", "config/samples"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("the overlay lacks %q:\n%s", want, data)
		}
	}
	if strings.Contains(string(data), "\n  - /") {
		t.Errorf("the overlay names config/samples by an absolute path:\n%s", data)
	}
}
