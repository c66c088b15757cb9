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
	"time"

	. "github.com/onsi/gomega"
)

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"a", "", false},
		{"*", "", true},
		{"*", "anything/at:all@x", true},
		{"**", "", true},
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"abc", "abcd", false},
		{"abc", "ab", false},
		{"a*", "a", true},
		{"a*", "abc", true},
		{"a*", "ba", false},
		{"*c", "abc", true},
		{"*c", "abcd", false},
		{"a*c", "ac", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbbd", false},
		// Several stars, and backtracking over a false start.
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXcYb", false},
		{"a*b*c*d", "abcabcabcd", true},
		{"*ab*ab*", "xabyab", true},
		{"*ab*ab*", "xaby", false},
		{"*aab", "aaab", true},
		{"*a*a*a*a*b", strings.Repeat("a", 40), false},
		// Stars cross the separators of ARNs, e-mails and image names.
		{"arn:aws:iam::111122223333:role/acme-finance-*", "arn:aws:iam::111122223333:role/acme-finance-invoices", true},
		{"arn:aws:iam::111122223333:role/acme-finance-*", "arn:aws:iam::111122223333:role/path/acme-finance-x", false},
		{"arn:aws:iam::111122223333:role/*", "arn:aws:iam::111122223333:role/path/to/x", true},
		{"arn:aws:iam::*:role/reader", "arn:aws:iam::444455556666:role/reader", true},
		{"*@acme-finance.iam.gserviceaccount.com", "bot@acme-finance.iam.gserviceaccount.com", true},
		{"*@acme-finance.iam.gserviceaccount.com", "bot@acme-sales.iam.gserviceaccount.com", false},
		{"*@acme-finance.iam.gserviceaccount.com", "@acme-finance.iam.gserviceaccount.com", true},
		// No other metacharacter.
		{"a?c", "abc", false},
		{"a?c", "a?c", true},
		{"[ab]", "a", false},
		{"[ab]", "[ab]", true},
		{`a\*`, `a\xyz`, true},
		{".*", "abc", false},
		{".*", ".abc", true},
		// A literal star in the subject is matched only by a star.
		{"a*", "a*", true},
		{"a", "*", false},
		// Matching is by byte and case-sensitive.
		{"ABC", "abc", false},
		{"é*", "été", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.s, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(MatchGlob(tt.pattern, tt.s)).To(Equal(tt.want))
		})
	}
}

// TestMatchGlobIsNotExponential guards against a backtracking rewrite:
// patterns and subjects come from users, and this pair takes a naive
// recursive matcher longer than the age of the universe.
func TestMatchGlobIsNotExponential(t *testing.T) {
	g := NewWithT(t)
	pattern := strings.Repeat("*a", 200) + "b"
	s := strings.Repeat("a", 2048)
	start := time.Now()
	g.Expect(MatchGlob(pattern, s)).To(BeFalse())
	g.Expect(time.Since(start)).To(BeNumerically("<", 2*time.Second))
}

func TestCIDRWithin(t *testing.T) {
	tests := []struct {
		name    string
		cidr    string
		allowed []string
		want    bool
	}{
		{"the same network", "203.0.113.0/24", []string{"203.0.113.0/24"}, true},
		{"a subnet", "203.0.113.128/25", []string{"203.0.113.0/24"}, true},
		{"a host", "203.0.113.7/32", []string{"203.0.113.0/24"}, true},
		{"a supernet", "203.0.112.0/23", []string{"203.0.113.0/24"}, false},
		{"a supernet with the same first address", "203.0.112.0/23", []string{"203.0.112.0/24"}, false},
		{"a neighbour", "203.0.114.0/24", []string{"203.0.113.0/24"}, false},
		{"overlapping but wider", "203.0.113.0/16", []string{"203.0.113.0/24"}, false},
		{"host bits are ignored", "203.0.113.77/24", []string{"203.0.113.1/24"}, true},
		{"any of several", "198.51.100.0/24", []string{"203.0.113.0/24", "198.51.0.0/16"}, true},
		{"0.0.0.0/0 allows all IPv4", "10.1.2.3/32", []string{"0.0.0.0/0"}, true},
		{"0.0.0.0/0 is only within itself", "0.0.0.0/0", []string{"0.0.0.0/8", "0.0.0.0/1"}, false},
		{"no allowed networks", "203.0.113.0/24", nil, false},

		{"IPv6 subnet", "2001:db8:1:2::/64", []string{"2001:db8:1::/48"}, true},
		{"IPv6 host", "2001:db8:1::1/128", []string{"2001:db8:1::/48"}, true},
		{"IPv6 supernet", "2001:db8::/32", []string{"2001:db8:1::/48"}, false},
		{"IPv6 supernet with the same first address", "2001:db8::/32", []string{"2001:db8::/48"}, false},
		{"::/0 is only within itself", "::/0", []string{"::/1"}, false},
		{"IPv6 neighbour", "2001:db8:2::/48", []string{"2001:db8:1::/48"}, false},
		{"::/0 allows all IPv6", "2001:db8::/32", []string{"::/0"}, true},
		{"IPv6 written in full", "2001:0db8:0001:0000::/64", []string{"2001:db8:1::/48"}, true},

		{"IPv4 is never within IPv6", "10.0.0.0/8", []string{"::/0"}, false},
		{"IPv6 is never within IPv4", "::/0", []string{"0.0.0.0/0"}, false},
		{"IPv6 ::/96 is not within 0.0.0.0/0", "::/96", []string{"0.0.0.0/0"}, false},
		{"an IPv4-mapped network is IPv4, not within ::/0", "::ffff:10.0.0.0/104", []string{"::/0"}, false},
		{"an IPv4-mapped network within its IPv4 allowance", "::ffff:10.1.0.0/112", []string{"10.0.0.0/8"}, true},
		{"an IPv4 network within an IPv4-mapped allowance", "10.1.0.0/16", []string{"::ffff:10.0.0.0/104"}, true},
		{"::ffff:0:0/96 is all of IPv4", "203.0.113.0/24", []string{"::ffff:0:0/96"}, true},
		{"an IPv6 network overlapping the mapped range stays IPv6", "::/80", []string{"::/64"}, true},
		{"an IPv6 network overlapping the mapped range is not IPv4", "::/80", []string{"0.0.0.0/0"}, false},

		{"an unparseable CIDR", "203.0.113.0/33", []string{"0.0.0.0/0"}, false},
		{"a bare address is not a CIDR", "203.0.113.7", []string{"0.0.0.0/0"}, false},
		{"an empty CIDR", "", []string{"0.0.0.0/0"}, false},
		{"a zone is not a CIDR", "fe80::1%eth0/128", []string{"::/0"}, false},
		{"unparseable entries are skipped", "203.0.113.0/24", []string{"nonsense", "203.0.113.0/24"}, true},
		{"unparseable entries never match", "203.0.113.0/24", []string{"203.0.113.0/24 ", "203.0.113.0"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(CIDRWithin(tt.cidr, tt.allowed)).To(Equal(tt.want))
		})
	}
}
