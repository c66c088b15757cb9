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

package controllers

import (
	"context"

	. "github.com/onsi/gomega"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/imageverify"
	"github.com/custos-dev/custos/test/imagetest"
)

// The suite's images: an in-process registry on loopback, the platform
// team's signing key, and the image the test agents run, signed with it.
var (
	testRegistry *imagetest.Registry
	testSigner   *imagetest.Signer
	// testImage is the agents' image by tag; testImageDigest its digest.
	testImage, testImageDigest string
)

// The Secret holding the signing key the test boundaries trust, where a
// platform team keeps it: in a namespace tenants cannot write to.
const (
	trustNamespace = "custos-trust"
	signersSecret  = "image-signers"
	signersKey     = imagetest.SecretKey
)

func startImages(ctx context.Context) (func(), error) {
	trust, err := imagetest.NewTrust("agents/invoice-reconciler:1.4.2", trustNamespace, signersSecret)
	if err != nil {
		return nil, err
	}
	testRegistry, testSigner, testImage, testImageDigest = trust.Registry, trust.Signer, trust.Image, trust.Digest
	if err := trust.Apply(ctx, k8sClient); err != nil {
		trust.Close()
		return nil, err
	}
	return trust.Close, nil
}

// trustedImages is the image policy of the test boundaries: images signed
// with the suite's key, from any registry.
func trustedImages() *custosv1alpha1.ImagePolicy {
	return &custosv1alpha1.ImagePolicy{
		PublicKeys: []custosv1alpha1.TrustSource{{SecretRef: &custosv1alpha1.ObjectKeyReference{
			Namespace: trustNamespace, Name: signersSecret, Key: signersKey,
		}}},
	}
}

// testPinned is testImage as the agents' pods run it: by its verified digest.
func testPinned() string {
	return testRegistry.Host() + "/agents/invoice-reconciler@" + testImageDigest
}

// testSignerKeyID is how status.image.signer names the suite's key.
func testSignerKeyID(g Gomega) string {
	k, err := cryptoutils.UnmarshalPEMToPublicKey(testSigner.PublicKeyPEM())
	g.Expect(err).NotTo(HaveOccurred())
	id, err := imageverify.KeyID(k)
	g.Expect(err).NotTo(HaveOccurred())
	return id
}
