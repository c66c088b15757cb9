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

package install

import (
	"context"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/workload"
	"github.com/custos-dev/custos/test/imagetest"
)

// The suite's images: a registry on loopback holding the agents' image,
// signed with a key generated here, which the tenant's boundary trusts. The
// manager runs as a subprocess without a loopback-only guard: every Agent of
// the suite must name this registry, never a made-up one.
var (
	registry *imagetest.Registry
	signer   *imagetest.Signer
	// agentImage is the agents' image by tag; agentDigest its digest.
	agentImage, agentDigest string
)

// The Secret holding the key the boundary trusts, in the release's
// namespace, where tenants cannot write.
const (
	signersSecret = "image-signers"
	signersKey    = "cosign.pub"
)

// startImages starts the registry and pushes the agents' image, signed. The
// caller closes registry.
func startImages() error {
	var err error
	if registry, err = imagetest.StartRegistry(); err != nil {
		return err
	}
	if signer, err = imagetest.NewSigner(); err != nil {
		return err
	}
	agentImage, agentDigest, err = registry.PushSigned("agents/install:1.0.0", signer)
	return err
}

// createSignersSecret stores the signer's public key in the release's
// namespace, which the chart's install created.
func createSignersSecret(g Gomega) {
	g.ExpectWithOffset(1, c.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: signersSecret},
		Data:       map[string][]byte{signersKey: signer.PublicKeyPEM()},
	})).To(Succeed())
}

// trustedImages is the boundary's image policy: images signed with the
// suite's key, from the suite's registry.
func trustedImages() *custosv1alpha1.ImagePolicy {
	return &custosv1alpha1.ImagePolicy{
		Registries: []string{registry.Host() + "/agents/"},
		PublicKeys: []custosv1alpha1.TrustSource{{SecretRef: &custosv1alpha1.ObjectKeyReference{
			Namespace: namespace, Name: signersSecret, Key: signersKey,
		}}},
	}
}

// expectPinned asserts that the agent's Deployment runs the image the suite
// pushed, by its verified digest, never by tag.
func expectPinned(g Gomega, key client.ObjectKey) {
	d := &appsv1.Deployment{}
	g.ExpectWithOffset(1, c.Get(context.Background(), key, d)).To(Succeed())
	var image string
	for _, ctr := range d.Spec.Template.Spec.Containers {
		if ctr.Name == workload.ContainerName {
			image = ctr.Image
		}
	}
	g.ExpectWithOffset(1, image).To(ContainSubstring("@sha256:"), "the agent's container runs a tag")
	g.ExpectWithOffset(1, image).To(Equal(registry.Host() + "/agents/install@" + agentDigest))
}
