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

package audit

import (
	"cmp"
	"math"
	"regexp"
	"slices"
	"strings"
)

// Redaction rules. Each content pattern matches the secret itself (or, with
// a capture group, the secret part of a larger match) so that the text
// around it stays readable: "login failed: Authorization: Bearer
// [REDACTED]".
var (
	// A PEM block, armour included, or a BEGIN line whose END was cut off.
	pemBlock = regexp.MustCompile(`-----BEGIN [A-Z0-9 ]{1,64}-----(?s:.*?)(?:-----END [A-Z0-9 ]{1,64}-----|\z)`)
	// A JWT (JWS compact form): header.payload.signature, base64url.
	jwt = regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)
	// An AWS access key ID (long-term AKIA, temporary ASIA and friends).
	awsAccessKeyID = regexp.MustCompile(`\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b`)
	// An AWS secret access key: 40 base64 characters, redacted when an
	// access key ID or an aws_secret_access_key label is in the same text.
	awsSecretKey  = regexp.MustCompile(`(?:^|[^A-Za-z0-9/+=])([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`)
	awsSecretHint = regexp.MustCompile(`(?i)aws.?secret|secret.?access.?key`)
	// The credential of an HTTP Authorization header or a token scheme.
	authScheme = regexp.MustCompile(`(?i)\b(?:bearer|basic|digest|negotiate)\s+([A-Za-z0-9._~+/=-]{8,})|\btoken\s+([A-Za-z0-9._~+/=-]{20,})`)
	// name=value or name: value where the name says secret.
	secretAssignment = regexp.MustCompile(`(?i)(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|account[_-]?key|shared[_-]?access[_-]?key|sig)["']?\s*[:=]\s*("[^"]*"|'[^']*'|[^\s,;&"']+)`)
	// The password in a URL's user information: scheme://user:password@host.
	urlPassword = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:([^/\s@]+)@`)
	// Tokens with a well-known prefix: GitHub, GitLab, Slack, Google API
	// keys, Stripe, OpenAI/Anthropic-style "sk-", npm, SendGrid.
	prefixedToken = regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|glpat-[A-Za-z0-9_-]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|sk-[A-Za-z0-9_-]{20,}|npm_[A-Za-z0-9]{36}|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,})`)
	// A long run of base64 or base64url characters: a candidate for a
	// generated secret (Azure keys, GCP service account keys, random
	// tokens); highEntropy decides.
	longToken = regexp.MustCompile(`[A-Za-z0-9+/_-]{32,}={0,2}`)
	// Detail keys whose values are secrets whatever they look like.
	secretKeyName = regexp.MustCompile(`(?i)password|passwd|secret|token|credential|private.?key|api.?key|access.?key|signing.?key|client.?key|session.?key|cookie|authorization|bearer|\bkey$|^key\b|keymaterial|key.?material`)
	// ...unless the key names a reference to the secret rather than the
	// secret: secretName, tokenAudience, credentialRef, tokenTTL.
	referenceKeyName = regexp.MustCompile(`(?i)(?:name|names|ref|namespace|audience|audiences|ttl|expiry|expiresat|expiration|kind|type|id|uid|count|path|field|keyid)$`)
)

// redactString applies the rules to one string (SecretSpans), noting
// whether it changed.
func redactString(s string) (string, bool) {
	spans := SecretSpans(s)
	if len(spans) == 0 {
		return s, false
	}
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		b.WriteString(s[last:sp[0]])
		b.WriteString(Redacted)
		last = sp[1]
	}
	b.WriteString(s[last:])
	return b.String(), b.String() != s
}

// SecretSpans are the byte spans [start, end) of s that the trail's rules
// take for secrets, in order, overlapping ones merged: what a record's
// free text loses to Redacted, and what internal/pii calls a secret. Each
// rule runs only when a cheap test says it might match: most values are
// short names, and the regular expressions are what an event costs.
func SecretSpans(s string) [][2]int {
	if len(s) < 8 {
		return nil
	}
	lower := strings.ToLower(s)
	has := func(subs ...string) bool {
		for _, sub := range subs {
			if strings.Contains(lower, sub) {
				return true
			}
		}
		return false
	}
	var spans [][2]int
	whole := func(re *regexp.Regexp) {
		for _, m := range re.FindAllStringIndex(s, -1) {
			spans = append(spans, [2]int{m[0], m[1]})
		}
	}
	if strings.Contains(s, "-----BEGIN ") {
		whole(pemBlock)
	}
	if strings.Contains(s, "eyJ") {
		whole(jwt)
	}
	if has("gh", "github_pat_", "glpat-", "xox", "aiza", "k_live_", "k_test_", "sk-", "npm_", "sg.") {
		whole(prefixedToken)
	}
	if awsKeyPrefix := has("akia", "asia", "abia", "acca"); awsKeyPrefix || has("secret") {
		if awsKeyPrefix && awsAccessKeyID.MatchString(s) || awsSecretHint.MatchString(s) {
			spans = append(spans, groupSpans(awsSecretKey, s)...)
		}
		if awsKeyPrefix {
			whole(awsAccessKeyID)
		}
	}
	if strings.Contains(s, "://") && strings.Contains(s, "@") {
		spans = append(spans, groupSpans(urlPassword, s)...)
	}
	if has("bearer", "basic", "digest", "negotiate", "token") {
		spans = append(spans, groupSpans(authScheme, s)...)
	}
	if strings.ContainsAny(s, ":=") && has("passw", "pwd", "secret", "token", "key", "sig") {
		spans = append(spans, groupSpans(secretAssignment, s)...)
	}
	if hasLongRun(s) {
		for _, m := range longToken.FindAllStringIndex(s, -1) {
			if highEntropy(s[m[0]:m[1]]) {
				spans = append(spans, [2]int{m[0], m[1]})
			}
		}
	}
	if len(spans) == 0 {
		return nil
	}
	slices.SortFunc(spans, func(a, b [2]int) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	merged := spans[:1]
	for _, sp := range spans[1:] {
		if last := &merged[len(merged)-1]; sp[0] <= last[1] {
			last[1] = max(last[1], sp[1])
		} else {
			merged = append(merged, sp)
		}
	}
	return merged
}

// hasLongRun says whether s has 32 characters in a row that longToken
// could match.
func hasLongRun(s string) bool {
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '_' || c == '-' {
			if run++; run >= 32 {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// fieldErrorType are the words a Kubernetes field error puts after its
// path ("spec.volumes[0].projected.sources[0].serviceAccountToken:
// Forbidden: ..."): what an admission denial says, never a secret.
var fieldErrorType = map[string]bool{
	"Forbidden": true, "Required": true, "Invalid": true, "Unsupported": true,
	"Duplicate": true, "Not": true, "Too": true, "Internal": true,
}

// groupSpans are the spans of the first capture group that matched, in
// every match of re in s.
func groupSpans(re *regexp.Regexp, s string) [][2]int {
	var out [][2]int
	for _, m := range re.FindAllStringSubmatchIndex(s, -1) {
		// The first capture group that matched is the secret.
		for g := 2; g+1 < len(m); g += 2 {
			if m[g] < 0 {
				continue
			}
			if v := s[m[g]:m[g+1]]; v != Redacted && !fieldErrorType[strings.TrimSuffix(v, ":")] {
				out = append(out, [2]int{m[g], m[g+1]})
			}
			break
		}
	}
	return out
}

// highEntropy says whether t looks generated rather than written: it mixes
// upper case, lower case and digits, is not hex, and its characters carry
// at least 4 bits each (English words and Kubernetes names carry fewer;
// a random base64 string of 32 characters carries about 4.5 to 5).
func highEntropy(t string) bool {
	t = strings.TrimRight(t, "=")
	var upper, lower, digit bool
	counts := map[rune]int{}
	for _, r := range t {
		switch {
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= '0' && r <= '9':
			digit = true
		}
		counts[r]++
	}
	if !(upper && lower && digit) {
		return false
	}
	n := float64(len(t))
	h := 0.0
	for _, c := range counts {
		p := float64(c) / n
		h -= p * math.Log2(p)
	}
	return h >= 4.0
}

// redactEvent scrubs an event's free text and details in place (details
// are copied first) and returns the names of the fields it changed, in
// order: "reason", "policy", "details.<key>", ...
func redactEvent(e *Event) []string {
	var changed []string
	if s, ok := redactString(e.Reason); ok {
		e.Reason = s
		changed = append(changed, "reason")
	}
	if s, ok := redactString(e.Policy); ok {
		e.Policy = s
		changed = append(changed, "policy")
	}
	if s, ok := redactString(e.TraceID); ok {
		e.TraceID = s
		changed = append(changed, "traceID")
	}
	if len(e.Details) == 0 {
		return changed
	}
	details := make(map[string]string, len(e.Details))
	var keys []string
	for k, v := range e.Details {
		switch {
		case v == "" || v == Redacted:
		case secretKeyName.MatchString(k) && !referenceKeyName.MatchString(k):
			v = Redacted
			keys = append(keys, k)
		default:
			if s, ok := redactString(v); ok {
				v = s
				keys = append(keys, k)
			}
		}
		details[k] = v
	}
	e.Details = details
	sortUTF16(keys)
	for _, k := range keys {
		changed = append(changed, "details."+k)
	}
	return changed
}

// sortUTF16 sorts strings as RFC 8785 sorts member names.
func sortUTF16(s []string) { slices.SortFunc(s, compareUTF16) }

// RedactValue scrubs a decoded JSON value (a tool call's arguments, say)
// by the same rules as a record's details: a member whose name says
// secret is Redacted whatever its value (a string, a number, an array or
// an object alike), and every other string is scrubbed of
// the secrets it holds. v is not changed; the copy is returned.
func RedactValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			if e != nil && secretKeyName.MatchString(k) && !referenceKeyName.MatchString(k) {
				out[k] = Redacted
				continue
			}
			out[k] = RedactValue(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = RedactValue(e)
		}
		return out
	case string:
		s, _ := redactString(t)
		return s
	}
	return v
}
