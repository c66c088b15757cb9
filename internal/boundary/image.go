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
	"net/netip"
	"strings"
)

// RegistryAllowed reports whether image, a reference such as
// registry.acme.example/agents/x:1.0 or registry.acme.example/agents/x@sha256:…,
// comes from one of registries.
//
// Each entry is matched against the image's repository, the reference without
// its tag and digest:
//   - an entry containing '*' is a glob (see MatchGlob), matched in two
//     parts: the registry host before the first '/' against the image's
//     host, and the rest against the image's path. A star in the host part
//     thus never reaches into the path ("*.acme.example/agents/*" does not
//     match "evil.example/x.acme.example/agents/y"); stars in the path part
//     cross '/'. An entry without '/' allows every repository of the hosts
//     it matches;
//   - any other entry is a prefix that must end at a path boundary, so that
//     "registry.acme.example/agent" does not allow
//     "registry.acme.example/agents/x". Without a trailing '/' the entry also
//     allows the repository it names; with one, only what lies under it.
//
// A reference that does not parse is never allowed: what Custos cannot split
// into repository, tag and digest, it cannot tell the origin of. Nor is one
// that does not name its registry the way container runtimes recognise one
// (a first component with a '.' or a ':', or localhost): a runtime pulls
// "registry/agents/app" and "nginx" from Docker Hub, whatever an entry
// "registry/agents" meant. Short Docker Hub names are not expanded, so a
// boundary listing docker.io/library/ refuses "nginx"; refusing is the safe
// side of that ambiguity.
func RegistryAllowed(registries []string, image string) bool {
	repo, ok := Repository(image)
	if !ok || !namesRegistry(repo) {
		return false
	}
	for _, entry := range registries {
		if strings.Contains(entry, "*") {
			if matchRegistryGlob(entry, repo) {
				return true
			}
			continue
		}
		// An empty or all-slash entry allows nothing: a repository never
		// starts with '/'.
		prefix := strings.TrimRight(entry, "/")
		if strings.HasPrefix(repo, prefix+"/") || (repo == prefix && !strings.HasSuffix(entry, "/")) {
			return true
		}
	}
	return false
}

// namesRegistry: repo's first component is a registry host to a container
// runtime (the distribution reference rule), not a Docker Hub account.
func namesRegistry(repo string) bool {
	first, _, more := strings.Cut(repo, "/")
	return more && (strings.ContainsAny(first, ".:[") || first == "localhost")
}

// matchRegistryGlob matches a glob entry host part to host part and path
// part to path part, so that the host can never be matched by a star that
// consumed a '/'.
func matchRegistryGlob(entry, repo string) bool {
	entryHost, entryPath, entryHasPath := strings.Cut(entry, "/")
	repoHost, repoPath, _ := strings.Cut(repo, "/")
	if !MatchGlob(entryHost, repoHost) {
		return false
	}
	return !entryHasPath || MatchGlob(entryPath, repoPath)
}

// Repository returns image without its tag and digest, spelled as written
// (which is how registry allow-lists match it), and whether image is a
// well-formed reference. It follows the distribution reference grammar
// closely enough that a reference it accepts cannot be split differently by a
// runtime: the digest follows the first '@', a tag is a ':' after the last '/'
// (a ':' before it is a registry port), and no component may be empty, "." or
// "..", which a prefix could otherwise be smuggled past.
func Repository(image string) (string, bool) {
	name, digest, hasDigest := strings.Cut(image, "@")
	if hasDigest && !validDigest(digest) {
		return "", false
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		if !validTag(name[i+1:]) {
			return "", false
		}
		name = name[:i]
	}
	if !validName(name) {
		return "", false
	}
	return name, true
}

// validName accepts [host[:port]/]path. As in the reference grammar, the
// first component is a host only when more follow; a lone component is a
// path, which keeps repository idempotent.
func validName(name string) bool {
	components := strings.Split(name, "/")
	start := 0
	if len(components) > 1 && validHost(components[0]) {
		start = 1
	}
	for _, c := range components[start:] {
		if !validPathComponent(c) {
			return false
		}
	}
	return true
}

func validHost(host string) bool {
	if bracketed, ok := strings.CutPrefix(host, "["); ok {
		addr, rest, ok := strings.Cut(bracketed, "]")
		if !ok {
			return false
		}
		ip, err := netip.ParseAddr(addr)
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return false
		}
		if rest == "" {
			return true
		}
		port, ok := strings.CutPrefix(rest, ":")
		return ok && validPort(port)
	}
	hostname, port, hasPort := strings.Cut(host, ":")
	if hasPort && !validPort(port) {
		return false
	}
	if hostname == "" || !isAlnum(hostname[0]) || !isAlnum(hostname[len(hostname)-1]) {
		return false
	}
	for i := 0; i < len(hostname); i++ {
		if c := hostname[i]; !isAlnum(c) && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func validPort(port string) bool {
	if port == "" || len(port) > 5 {
		return false
	}
	for i := 0; i < len(port); i++ {
		if !isDigit(port[i]) {
			return false
		}
	}
	return true
}

// validPathComponent accepts lowercase alphanumerics joined by '.', '_' and
// '-', which rules out "", "." and "..".
func validPathComponent(c string) bool {
	if c == "" || !isLowerAlnum(c[0]) || !isLowerAlnum(c[len(c)-1]) {
		return false
	}
	for i := 0; i < len(c); i++ {
		if b := c[i]; !isLowerAlnum(b) && b != '.' && b != '_' && b != '-' {
			return false
		}
	}
	return true
}

func validTag(tag string) bool {
	if tag == "" || len(tag) > 128 || tag[0] == '.' || tag[0] == '-' {
		return false
	}
	for i := 0; i < len(tag); i++ {
		if c := tag[i]; !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// validDigest accepts algorithm:encoded, such as sha256:<64 hex>, without
// insisting on a known algorithm: the digest is verified later, against the
// registry; here it only has to be unambiguous.
func validDigest(digest string) bool {
	algorithm, encoded, ok := strings.Cut(digest, ":")
	if !ok || algorithm == "" || encoded == "" || !isLowerAlnum(algorithm[0]) || !isLowerAlnum(algorithm[len(algorithm)-1]) {
		return false
	}
	for i := 0; i < len(algorithm); i++ {
		if c := algorithm[i]; !isLowerAlnum(c) && c != '+' && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	for i := 0; i < len(encoded); i++ {
		if c := encoded[i]; !isAlnum(c) && c != '=' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool      { return '0' <= c && c <= '9' }
func isLowerAlnum(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'z' }
func isAlnum(c byte) bool      { return isLowerAlnum(c) || 'A' <= c && c <= 'Z' }
