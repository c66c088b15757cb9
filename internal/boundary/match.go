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
)

// MatchGlob reports whether s matches pattern, where * matches any run of
// characters, '/', ':' and '@' included, and every other byte matches itself.
//
// Patterns come from DataBoundaries and subjects from Agents, so neither is
// trusted: the match never compiles a regexp and never backtracks
// recursively. On a mismatch it only retries the text after the last star,
// which is enough because an earlier star could only have absorbed what the
// last one can; the cost is at most len(pattern)*len(s).
func MatchGlob(pattern, s string) bool {
	p, i := 0, 0
	star, resume := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, resume = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			// Let the last star absorb one more byte and match the rest
			// of the pattern again from there.
			resume++
			p, i = star+1, resume
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// CIDRWithin reports whether cidr lies entirely inside one of allowed. Entries
// that do not parse never match, and an IPv4 network is never inside an IPv6
// one.
//
// An IPv4-mapped IPv6 network (::ffff:10.0.0.0/104) is compared as the IPv4
// network it names (10.0.0.0/8): the packets go to IPv4 hosts, so only an
// IPv4 allowance may admit them, and an IPv6 allowance such as ::/0 must not
// open the whole IPv4 Internet by the back door.
func CIDRWithin(cidr string, allowed []string) bool {
	inner, ok := parseCIDR(cidr)
	if !ok {
		return false
	}
	for _, a := range allowed {
		outer, ok := parseCIDR(a)
		if !ok {
			continue
		}
		if outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr()) {
			return true
		}
	}
	return false
}

func parseCIDR(s string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	p = p.Masked()
	// Masking keeps the ::ffff: marker only on a /96 or longer, so a shorter
	// network that merely overlaps ::ffff:0:0/96 stays IPv6.
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p, true
}
