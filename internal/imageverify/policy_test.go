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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// TestAllowsImage: the policy's registries mean what the DataBoundary's
// mean at admission (boundary.RegistryAllowed has the full table); an empty
// list allows every registry.
func TestAllowsImage(t *testing.T) {
	g := NewWithT(t)
	cases := []struct {
		patterns []string
		image    string
		want     bool
	}{
		{nil, "ghcr.io/acme/app:1", true},
		{[]string{"ghcr.io/acme"}, "ghcr.io/acme/app:1", true},
		{[]string{"ghcr.io/acme"}, "ghcr.io/acme-evil/app:1", false},
		{[]string{"*.acme.io"}, "reg.acme.io/x/y:1", true},
		{[]string{"*.acme.io"}, "reg.acme.io.evil.com/x:1", false},
		{[]string{"127.0.0.1:5000"}, "127.0.0.1:5001/apps/web:1", false},
	}
	for _, c := range cases {
		g.Expect(Policy{Registries: c.patterns}.AllowsImage(c.image)).To(Equal(c.want), "%v %s", c.patterns, c.image)
	}
}

func TestPolicyHash(t *testing.T) {
	g := NewWithT(t)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keys, err := KeysFromPublicKeys(k1.Public(), k2.Public())
	g.Expect(err).NotTo(HaveOccurred())
	id1 := Identity{Issuer: "https://a", Subject: "x"}
	id2 := Identity{Issuer: "https://b", SubjectRegexp: ".*"}
	p := Policy{Registries: []string{"a.io", "b.io"}, Keys: keys, Keyless: []Identity{id1, id2}, TrustedRoot: []byte("{}")}

	h := p.Hash()
	g.Expect(h).To(MatchRegexp(`^sha256:[0-9a-f]{64}$`))
	g.Expect(p.Hash()).To(Equal(h))

	reordered := Policy{Registries: []string{"b.io", "a.io"}, Keys: [][]byte{keys[1], keys[0]}, Keyless: []Identity{id2, id1}, TrustedRoot: []byte("{}")}
	g.Expect(reordered.Hash()).To(Equal(h))

	// Same key, different PEM formatting (extra text around the block).
	k1PEM, _ := cryptoutils.MarshalPublicKeyToPEM(k1.Public())
	reformatted := p
	reformatted.Keys = [][]byte{append([]byte("\n"), k1PEM...), keys[1]}
	g.Expect(reformatted.Hash()).To(Equal(h))

	for _, changed := range []Policy{
		{Registries: []string{"a.io"}, Keys: keys, Keyless: []Identity{id1, id2}, TrustedRoot: []byte("{}")},
		{Registries: p.Registries, Keys: keys[:1], Keyless: []Identity{id1, id2}, TrustedRoot: []byte("{}")},
		{Registries: p.Registries, Keys: keys, Keyless: []Identity{id1}, TrustedRoot: []byte("{}")},
		{Registries: p.Registries, Keys: keys, Keyless: []Identity{id1, id2}, TrustedRoot: []byte("{ }")},
		{Registries: p.Registries, Keys: keys, Keyless: []Identity{id1, id2}, TrustedRoot: []byte("{}"), RequireTlog: true},
	} {
		g.Expect(changed.Hash()).NotTo(Equal(h))
	}
}

func TestTrustsSigner(t *testing.T) {
	g := NewWithT(t)
	_, pub := newSigner(t)
	_, other := newSigner(t)
	id := keyIDOf(t, pub)
	p := Policy{
		Keys:    [][]byte{pub},
		Keyless: []Identity{{Issuer: "https://issuer.example", SubjectRegexp: `^release@acme\.example$`}},
	}
	g.Expect(p.TrustsSigner(id)).To(BeTrue())
	g.Expect(p.TrustsSigner(keyIDOf(t, other))).To(BeFalse(), "a key rotated out")
	g.Expect(p.TrustsSigner("release@acme.example (https://issuer.example)")).To(BeTrue())
	g.Expect(p.TrustsSigner("x@acme.example,release@acme.example (https://issuer.example)")).To(BeTrue(), "any of the certificate's names")
	g.Expect(p.TrustsSigner("intern@acme.example (https://issuer.example)")).To(BeFalse())
	g.Expect(p.TrustsSigner("release@acme.example (https://evil.example)")).To(BeFalse())
	g.Expect(p.TrustsSigner("")).To(BeFalse())
}

func TestValidateParsesTheTrustedRoot(t *testing.T) {
	_, pub := newSigner(t)
	err := Policy{Keys: [][]byte{pub}, TrustedRoot: []byte(`{"not": "a trusted root"`)}.Validate()
	NewWithT(t).Expect(err).To(MatchError(ContainSubstring("trustedRoot is not a Sigstore trusted_root.json")))
}
