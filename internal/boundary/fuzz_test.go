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
	"testing"
)

// globReference is MatchGlob written the obvious way, by dynamic programming
// over every (pattern, subject) prefix pair, to check the two-pointer
// algorithm against.
func globReference(pattern, s string) bool {
	// match[j] says whether pattern[:i] matches s[:j], for the current i.
	match := make([]bool, len(s)+1)
	match[0] = true
	for i := 0; i < len(pattern); i++ {
		next := make([]bool, len(s)+1)
		if pattern[i] == '*' {
			next[0] = match[0]
			for j := 1; j <= len(s); j++ {
				next[j] = match[j] || next[j-1]
			}
		} else {
			for j := 1; j <= len(s); j++ {
				next[j] = match[j-1] && pattern[i] == s[j-1]
			}
		}
		match = next
	}
	return match[len(s)]
}

func FuzzMatchGlob(f *testing.F) {
	for _, seed := range [][2]string{
		{"", ""},
		{"*", ""},
		{"a*b*c", "aXbYc"},
		{"*ab*ab*", "xabyab"},
		{"arn:aws:iam::111122223333:role/acme-*", "arn:aws:iam::111122223333:role/acme-x"},
		{"*@acme.iam.gserviceaccount.com", "a@b@acme.iam.gserviceaccount.com"},
		{"**a**", "bab"},
		{"a*", "*"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		got := MatchGlob(pattern, s)
		if want := globReference(pattern, s); got != want {
			t.Fatalf("MatchGlob(%q, %q) = %v, the reference says %v", pattern, s, got, want)
		}
		if !MatchGlob("*", s) {
			t.Fatalf("* does not match %q", s)
		}
		if !strings.Contains(pattern, "*") && got != (pattern == s) {
			t.Fatalf("MatchGlob(%q, %q) = %v for a pattern without stars", pattern, s, got)
		}
		if !strings.Contains(s, "*") {
			if !MatchGlob(s, s) {
				t.Fatalf("%q does not match itself", s)
			}
			if !MatchGlob("*"+s+"*", pattern+s+pattern) {
				t.Fatalf("*%s* does not match %q", s, pattern+s+pattern)
			}
		}
	})
}

// canonicalDigest has the shape of a real digest, so that appending it to a
// well-formed repository gives a well-formed reference.
const canonicalDigest = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func FuzzRegistryAllowed(f *testing.F) {
	for _, seed := range [][2]string{
		{"registry.acme.example/agents/", "registry.acme.example/agents/x:1.0"},
		{"registry.acme.example/agent", "registry.acme.example/agents/x"},
		{"localhost:5000", "localhost:5000/x:1"},
		{"localhost", "localhost:5000"},
		{"[::1]:5000/", "[::1]:5000/x" + canonicalDigest},
		{"*.acme.example/*", "eu.acme.example/a/b:c"},
		{"", "x"},
		{"/", "a/b"},
		{"x", "x@y@z"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, entry, image string) {
		got := RegistryAllowed([]string{entry}, image)
		repo, ok := Repository(image)
		if !ok {
			if got || RegistryAllowed([]string{"*"}, image) {
				t.Fatalf("malformed %q is allowed", image)
			}
			return
		}
		if !namesRegistry(repo) {
			// Pulled from Docker Hub by a runtime whatever it looks like:
			// no entry allows it.
			if got || RegistryAllowed([]string{"*"}, image) {
				t.Fatalf("%q, which names no registry, is allowed", image)
			}
		} else if !RegistryAllowed([]string{"*"}, image) {
			t.Fatalf("* does not allow well-formed %q", image)
		}
		if again, ok := Repository(repo); !ok || again != repo {
			t.Fatalf("Repository(%q) = %q, %v; not idempotent", repo, again, ok)
		}
		// The tag and the digest never change the answer: only the
		// repository says where the image comes from.
		for _, variant := range []string{repo, repo + ":v1", repo + canonicalDigest, repo + ":v1" + canonicalDigest} {
			if RegistryAllowed([]string{entry}, variant) != got {
				t.Fatalf("entry %q: %q and %q differ", entry, image, variant)
			}
		}
		if namesRegistry(repo) && !RegistryAllowed([]string{repo}, image) {
			t.Fatalf("repository %q does not allow its own image %q", repo, image)
		}
		if got && !strings.Contains(entry, "*") {
			prefix := strings.TrimRight(entry, "/")
			if prefix == "" || (repo != prefix && !strings.HasPrefix(repo, prefix+"/")) {
				t.Fatalf("entry %q allows %q outside it", entry, image)
			}
		}
	})
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	b := a.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(b)
	return last
}

func FuzzCIDRWithin(f *testing.F) {
	for _, seed := range [][2]string{
		{"203.0.113.0/24", "203.0.113.0/24"},
		{"203.0.113.128/25", "203.0.113.0/24"},
		{"10.0.0.0/8", "::/0"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"2001:db8:1::/48", "2001:db8::/32"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"x", "y"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, cidr, allowed string) {
		got := CIDRWithin(cidr, []string{allowed})
		inner, innerErr := netip.ParsePrefix(cidr)
		outer, outerErr := netip.ParsePrefix(allowed)
		if innerErr != nil || outerErr != nil {
			if got {
				t.Fatalf("CIDRWithin(%q, %q) with an unparseable side", cidr, allowed)
			}
			return
		}
		if !CIDRWithin(cidr, []string{cidr}) {
			t.Fatalf("%q is not within itself", cidr)
		}
		if got && CIDRWithin(allowed, []string{cidr}) {
			a, _ := parseCIDR(cidr)
			b, _ := parseCIDR(allowed)
			if a != b {
				t.Fatalf("%q and %q are within each other but are different networks", cidr, allowed)
			}
		}
		// Family: IPv4 and IPv4-mapped networks are IPv4 and never within
		// genuine IPv6 ones, and the other way round.
		isV4 := func(p netip.Prefix) bool {
			p = p.Masked()
			return p.Addr().Is4() || (p.Addr().Is4In6() && p.Bits() >= 96)
		}
		if got && isV4(inner) != isV4(outer) {
			t.Fatalf("CIDRWithin(%q, %q) across address families", cidr, allowed)
		}
		if CIDRWithin(cidr, []string{"0.0.0.0/0"}) != isV4(inner) {
			t.Fatalf("0.0.0.0/0 and %q disagree", cidr)
		}
		if got {
			in, _ := parseCIDR(cidr)
			out, _ := parseCIDR(allowed)
			if !out.Contains(in.Addr()) || !out.Contains(lastAddr(in)) {
				t.Fatalf("%q is within %q but its first or last address is not", cidr, allowed)
			}
		}
		// Adding entries never takes an allowance away.
		if got && !CIDRWithin(cidr, []string{"nonsense", allowed, "::/0"}) {
			t.Fatalf("more entries refused %q", cidr)
		}
	})
}
