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

package main

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/custos-dev/custos/internal/netpol"
)

// TestPeerFlags: the flags that locate custos-gateway's and custos-sts's
// pods are all or nothing, and never select a whole namespace.
func TestPeerFlags(t *testing.T) {
	g := NewWithT(t)
	p, err := peerFlags("gateway", "", "", 8443)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(p).To(BeNil(), "no namespace: not configured")

	p, err = peerFlags("gateway", "custos-system", "app.kubernetes.io/component=gateway, app.kubernetes.io/name=custos", 8443)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(p).To(Equal(&netpol.InClusterPeer{
		Namespace:   "custos-system",
		PodSelector: map[string]string{"app.kubernetes.io/component": "gateway", "app.kubernetes.io/name": "custos"},
		Port:        8443,
	}))

	for _, tc := range []struct {
		namespace, labels string
		port              int
		want              string
	}{
		{"", "app=gateway", 8443, "--gateway-pod-labels needs --gateway-namespace"},
		{"custos-system", "", 8443, "--gateway-namespace needs --gateway-pod-labels"},
		{"Custos_System", "app=gateway", 8443, "is not a namespace name"},
		{"custos-system", "app", 8443, "want key=value"},
		{"custos-system", "app=gate way", 8443, "want key=value"},
		{"custos-system", "app=gateway", 0, "is not a port"},
		{"custos-system", "app=gateway", 65536, "is not a port"},
	} {
		_, err := peerFlags("gateway", tc.namespace, tc.labels, tc.port)
		g.Expect(err).To(MatchError(ContainSubstring(tc.want)), "%+v", tc)
	}
}
