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

package gitops

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/workload"
	"github.com/custos-dev/custos/test/imagetest"
)

// The suite's images: a registry on loopback holding the sample agent's
// image, signed with a key generated here, which every boundary of the suite
// trusts. The manager runs as a subprocess without a loopback-only guard:
// every Agent of the suite must name this registry, never a made-up one.
var (
	images *imagetest.Trust
	// samplesOverlay is config/samples with the sample image served by
	// the suite's registry (a directory for kubectl's -k).
	samplesOverlay string
)

// startImages starts the registry, pushes the sample image signed and writes
// the samples' overlay into dir. The caller closes images.
func startImages(dir string) error {
	var err error
	if images, err = imagetest.NewSampleTrust(); err != nil {
		return err
	}
	samplesOverlay = filepath.Join(dir, "samples")
	if err := imagetest.WriteSamplesOverlay(samplesOverlay, filepath.Join(repoRoot, "config", "samples"), images.Registry); err != nil {
		return err
	}
	return loopbackOnly(samplesOverlay)
}

// loopbackOnly renders the overlay at dir and fails unless every Agent in it
// runs an image of the suite's registry: the manager would otherwise look
// up the sample's made-up registry, off this machine.
func loopbackOnly(dir string) error {
	out, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		return fmt.Errorf("kubectl kustomize %s: %w", dir, err)
	}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	agents := 0
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			return err
		}
		if u.GetKind() != "Agent" {
			continue
		}
		agents++
		image, _, _ := unstructured.NestedString(u.Object, "spec", "image")
		if !strings.HasPrefix(image, images.Registry.Host()+"/") {
			return fmt.Errorf("the samples' overlay %s runs Agent %s with image %q, not from the registry on loopback (%s)", dir, u.GetName(), image, images.Registry.Host())
		}
	}
	if agents == 0 {
		return fmt.Errorf("the samples' overlay %s holds no Agent", dir)
	}
	return nil
}

// expectPinned asserts that agent's Deployment runs the digest the agent
// verified, from the suite's registry, never a tag.
func expectPinned(g Gomega, agent *custosv1alpha1.Agent) {
	g.ExpectWithOffset(1, agent.Status.Image).NotTo(BeNil(), "Agent %s/%s has no verified image", agent.Namespace, agent.Name)
	d := &appsv1.Deployment{}
	g.ExpectWithOffset(1, k8sClient.Get(context.Background(), client.ObjectKey{Namespace: agent.Namespace, Name: "agent-" + agent.Name}, d)).To(Succeed())
	var image string
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == workload.ContainerName {
			image = c.Image
		}
	}
	g.ExpectWithOffset(1, image).To(ContainSubstring("@sha256:"), "the agent's container runs a tag")
	g.ExpectWithOffset(1, image).To(Equal(images.Registry.Host() + "/agents/invoice-reconciler@" + agent.Status.Image.Digest))
}
