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

package boundary

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestRegistryAllowed(t *testing.T) {
	agents := []string{"registry.acme.example/agents/"}
	tests := []struct {
		name       string
		registries []string
		image      string
		want       bool
	}{
		{"a tag under a prefix ending with /", agents, "registry.acme.example/agents/x:1.0", true},
		{"a tag under a prefix without /", []string{"registry.acme.example/agents"}, "registry.acme.example/agents/x:1.0", true},
		{"no tag", agents, "registry.acme.example/agents/x", true},
		{"a nested repository", agents, "registry.acme.example/agents/team/x:1", true},
		{"a digest", agents, "registry.acme.example/agents/x@" + digest, true},
		{"a tag and a digest", agents, "registry.acme.example/agents/x:1.0@" + digest, true},

		// The prefix ends at a path boundary.
		{"a longer path component", []string{"registry.acme.example/agent"}, "registry.acme.example/agents/x", false},
		{"a longer path component, with /", []string{"registry.acme.example/agent/"}, "registry.acme.example/agents/x", false},
		{"a longer host", []string{"registry.acme.example"}, "registry.acme.example.evil.example/agents/x", false},
		{"the host alone", []string{"registry.acme.example"}, "registry.acme.example/agents/x:1", true},
		{"the repository itself", []string{"registry.acme.example/agents/x"}, "registry.acme.example/agents/x:1", true},
		{"the repository itself is not under it", agents, "registry.acme.example/agents:1", false},
		{"a sibling", agents, "registry.acme.example/other/x:1", false},
		{"a prefix must start at the beginning", []string{"agents/"}, "registry.acme.example/agents/x:1", false},
		{"an empty entry allows nothing", []string{""}, "registry.acme.example/agents/x:1", false},
		{"a / entry allows nothing", []string{"/"}, "registry.acme.example/agents/x:1", false},
		{"any of several", []string{"ghcr.io/acme/", "registry.acme.example/agents/"}, "registry.acme.example/agents/x:1", true},
		{"no registries", nil, "registry.acme.example/agents/x:1", false},

		// Ports are not tags.
		{"a registry with a port", []string{"localhost:5000/"}, "localhost:5000/x:1", true},
		{"a registry with a port, no tag", []string{"localhost:5000"}, "localhost:5000/x", true},
		{"a registry with a port and a digest", []string{"localhost:5000/agents"}, "localhost:5000/agents/x@" + digest, true},
		{"another port", []string{"localhost:5000/"}, "localhost:5001/x:1", false},
		{"the host without the port", []string{"localhost"}, "localhost:5000/x:1", false},
		{"an IPv6 registry with a port", []string{"[2001:db8::1]:5000/agents/"}, "[2001:db8::1]:5000/agents/x:1", true},
		// "localhost:5000" is repository localhost, tag 5000, which a runtime
		// pulls from Docker Hub: not the registry the entry names.
		{"a registry whose name is a tag", []string{"localhost"}, "localhost:5000", false},
		{"a single-label first component is a Docker Hub account", []string{"registry/agents"}, "registry/agents/app:v1", false},
		{"a Docker Hub short name", []string{"acme/"}, "acme/app:1", false},
		{"Docker Hub, written out", []string{"docker.io/acme/"}, "docker.io/acme/app:1", true},

		// Globs match the repository, stars crossing '/'.
		{"a glob over the path", []string{"registry.acme.example/*"}, "registry.acme.example/agents/x:1", true},
		{"a glob with several stars", []string{"registry.acme.example/*/agents/*"}, "registry.acme.example/finance/agents/x@" + digest, true},
		{"a glob with several stars refuses", []string{"registry.acme.example/*/agents/*"}, "registry.acme.example/finance/tools/x:1", false},
		{"a glob over the host", []string{"*.acme.example/agents/*"}, "eu.registry.acme.example/agents/x:1", true},
		{"a glob does not see the tag", []string{"registry.acme.example/agents/x:1*"}, "registry.acme.example/agents/x:1.0", false},
		{"a glob does not see the digest", []string{"registry.acme.example/agents/x@*"}, "registry.acme.example/agents/x@" + digest, false},
		{"* allows every well-formed image", []string{"*"}, "ghcr.io/x/y:z", true},
		// A star in the host never reaches into the path.
		{"a host glob does not match a deeper path", []string{"*.acme.example/agents/*"}, "evil.example/x.acme.example/agents/y", false},
		{"a host glob matches its hosts", []string{"*.acme.example/agents/*"}, "eu.acme.example/agents/y:1", true},
		{"a host-only glob allows every repository of its hosts", []string{"*.acme.example"}, "eu.acme.example/team/agents/y:1", true},
		{"a host-only glob refuses other hosts", []string{"*.acme.example"}, "acme.example.evil.example/y:1", false},

		// References that do not parse are never allowed.
		{"an empty image", []string{"*"}, "", false},
		{"a tag that is not a tag", []string{"*"}, "registry.acme.example/agents/x:1/2", false},
		{"a digest without algorithm", []string{"*"}, "registry.acme.example/agents/x@" + digest[len("sha256:"):], false},
		{"a second @", []string{"registry.acme.example/agents/"}, "registry.acme.example/agents/x@evil.example/y", false},
		{"a path with ..", agents, "registry.acme.example/agents/../evil/x:1", false},
		{"an empty path component", agents, "registry.acme.example/agents//x:1", false},
		{"an upper-case path", agents, "registry.acme.example/agents/X:1", false},
		{"spaces", agents, "registry.acme.example/agents/x :1", false},
		{"an empty tag", agents, "registry.acme.example/agents/x:", false},
		{"a port that is not a number", []string{"*"}, "localhost:http/x:1", false},
		{"a scheme", []string{"*"}, "https://registry.acme.example/agents/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(RegistryAllowed(tt.registries, tt.image)).To(Equal(tt.want))
		})
	}
}

func TestRepository(t *testing.T) {
	tests := []struct {
		image, want string
		ok          bool
	}{
		{"registry.acme.example/agents/x:1.0", "registry.acme.example/agents/x", true},
		{"registry.acme.example/agents/x@" + digest, "registry.acme.example/agents/x", true},
		{"registry.acme.example/agents/x:1.0@" + digest, "registry.acme.example/agents/x", true},
		{"localhost:5000/x:1", "localhost:5000/x", true},
		{"localhost:5000/x", "localhost:5000/x", true},
		{"localhost:5000", "localhost", true},
		{"[::1]:5000/x:1", "[::1]:5000/x", true},
		{"[::1]/x", "[::1]/x", true},
		{"nginx", "nginx", true},
		{"nginx:1.27", "nginx", true},
		{"library/nginx:1.27", "library/nginx", true},
		{"Registry.ACME.example/agents/x", "Registry.ACME.example/agents/x", true},
		{"a.b-c_d__e/f", "a.b-c_d__e/f", true},

		{"", "", false},
		{"[::1]", "", false},
		{"[::1]:5000", "", false},
		{"[fe80::1%eth0]/x", "", false},
		{"[10.0.0.1]/x", "", false},
		{"[::1/x", "", false},
		{"[::1]x/y", "", false},
		{"Nginx", "", false},
		{"/x", "", false},
		{"x/", "", false},
		{"x/./y", "", false},
		{"-x/y", "", false},
		{"host:/x", "", false},
		{"host:123456/x", "", false},
		{"x:-1", "", false},
		{"x:.1", "", false},
		{"x:" + strings.Repeat("a", 129), "", false},
		{"x:" + strings.Repeat("a", 128), "x", true},
		{"x@sha256", "", false},
		{"x@:abc", "", false},
		{"x@sha256:", "", false},
		{"x@SHA256:abc", "", false},
		{"x@sha256:ab/c", "", false},
		{"x@sha256:abc@sha256:abc", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			g := NewWithT(t)
			got, ok := Repository(tt.image)
			g.Expect(ok).To(Equal(tt.ok))
			g.Expect(got).To(Equal(tt.want))
		})
	}
}
