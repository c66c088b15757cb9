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
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/custos-dev/custos/test/imagetest"
)

// images is the suite's trust: a registry on loopback holding the agents'
// image (agents/install:1.0.0), signed with a key made here, whose public half
// the tenant's boundary trusts in a Secret of the manager's namespace. The
// manager runs as a subprocess without a loopback-only guard: every Agent
// of the suite names this registry, never a made-up one.
var images *imagetest.Trust

// expectPinned asserts that the Deployment key runs the suite's image by its
// verified digest, never by tag.
func expectPinned(g Gomega, key client.ObjectKey) {
	d := &appsv1.Deployment{}
	g.ExpectWithOffset(1, c.Get(context.Background(), key, d)).To(Succeed())
	g.ExpectWithOffset(1, d.Spec.Template.Spec.Containers[0].Image).To(Equal(images.Pinned()))
}
