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
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// Fake secrets, built so that no scanner takes this file for a leak; each
// has the shape of the real thing.
var (
	fakeJWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6Ik1qQTFNREF4In0" + "." +
		"eyJpc3MiOiJodHRwczovL2t1YmVybmV0ZXMuZGVmYXVsdC5zdmMiLCJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZmluYW5jZS1hZ2VudHM6aW52b2ljZSJ9" + "." +
		"Zm9vYmFyYmF6cXV4LXNpZ25hdHVyZS1ieXRlcy1ub3QtcmVhbA"
	fakePEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----"
	// AWS's own documentation example pair.
	fakeAWSKeyID  = "AKIA" + "IOSFODNN7EXAMPLE"
	fakeAWSSecret = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
	fakeAzureKey  = "Zm9vYmFyQmF6UXV4MTIzNDU2Nzg5MEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFla" + "Yk1uT3BRclN0VXZXeFl6MDEyMzQ1Njc4OQ=="
	fakeGitHub    = "ghp_" + "R4nd0mL00k1ngT0k3nV4lu3F0rT3st1ngXy"
	fakeGoogleKey = "AIza" + "SyA-f4k3K3yV4lu3F0rT3st1ng0nlyXYZ12"
	fakeSlack     = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
	fakeSASSig    = "sig=" + "k8sF4k3S1gn4tur3V4lu3%2B0nly%3D"
)

func TestRedactString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"JWT alone", fakeJWT, Redacted},
		{"JWT in a sentence", "projected token " + fakeJWT + " rejected", "projected token " + Redacted + " rejected"},
		{"PEM block", "key:\n" + fakePEM + "\nend", "key:\n" + Redacted + "\nend"},
		{"PEM block cut off", "leaked " + fakePEM[:60], "leaked " + Redacted},
		{"AWS access key ID", "role assumed with " + fakeAWSKeyID, "role assumed with " + Redacted},
		{"AWS temporary key ID", "ASIA" + "QWERTYUIOPASDFGH expired", Redacted + " expired"},
		{"AWS key pair", fakeAWSKeyID + ":" + fakeAWSSecret, Redacted + ":" + Redacted},
		{"AWS secret labelled", "aws_secret_access_key " + fakeAWSSecret, "aws_secret_access_key " + Redacted},
		{"bearer token", "Authorization: Bearer abc.def-ghi_jkl~mno", "Authorization: Bearer " + Redacted},
		{"basic credentials", "basic YWRtaW46cGFzc3dvcmQ=", "basic " + Redacted},
		{"token keyword with a long value", "token 3b1f9c0e7d2a4f6b8c0d1e2f3a4b5c6d", "token " + Redacted},
		{"password assignment", "connect failed: password=hunter2 user=app", "connect failed: password=" + Redacted + " user=app"},
		{"quoted secret assignment", `client_secret: "s3cr3t value"`, `client_secret: ` + Redacted},
		{"api key assignment", "X-Api-Key=abcdef123456", "X-Api-Key=" + Redacted},
		{"URL password", "postgres://app:Sup3rS3cret@127.0.0.1:5432/ledger", "postgres://app:" + Redacted + "@127.0.0.1:5432/ledger"},
		{"Azure storage key", "AccountKey=" + fakeAzureKey + ";EndpointSuffix=core", "AccountKey=" + Redacted + ";EndpointSuffix=core"},
		{"Azure key alone", fakeAzureKey, Redacted},
		{"SAS signature", "https://127.0.0.1/c?sv=2024&" + fakeSASSig, "https://127.0.0.1/c?sv=2024&sig=" + Redacted},
		{"GitHub token", "cloned with " + fakeGitHub, "cloned with " + Redacted},
		{"Google API key", fakeGoogleKey, Redacted},
		{"Slack token", fakeSlack, Redacted},
		{"random base64 secret", "generated Kx9mQ2vR7tL4wZ8nB3cF6hJ1pS5dG0aYeU", "generated " + Redacted},

		// What must stay readable.
		{"plain reason", "credential ledger-api issued for 10m", "credential ledger-api issued for 10m"},
		{"the word token", "the token audience ledger-api was not allowed", "the token audience ledger-api was not allowed"},
		{"image digest", "127.0.0.1:5000/agents/invoice@sha256:" + strings.Repeat("0123456789abcdef", 4), "127.0.0.1:5000/agents/invoice@sha256:" + strings.Repeat("0123456789abcdef", 4)},
		{"UID", "0f3c1c8e-5d2b-4b8e-9d8a-3f0c2a1b9e77", "0f3c1c8e-5d2b-4b8e-9d8a-3f0c2a1b9e77"},
		{"role ARN", "arn:aws:iam::111122223333:role/acme-finance-invoice-reconciler", "arn:aws:iam::111122223333:role/acme-finance-invoice-reconciler"},
		{"SPIFFE ID", "spiffe://acme-finance/ns/finance-agents/sa/invoice-reconciler", "spiffe://acme-finance/ns/finance-agents/sa/invoice-reconciler"},
		{"URL without password", "https://127.0.0.1/api/v1/invoices?page=2", "https://127.0.0.1/api/v1/invoices?page=2"},
		{"long Kubernetes name", "agent-invoice-reconciler-finance-platform-eu-west-1", "agent-invoice-reconciler-finance-platform-eu-west-1"},
		{"trace ID", "4bf92f3577b34da6a3ce929d0e0e4736", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"record hash", GenesisHash, GenesisHash},
		{"policy name", "boundary/regions: eu-west-1 not in [eu-central-1]", "boundary/regions: eu-west-1 not in [eu-central-1]"},
		{"a field error on a token field", "spec.volumes[2].projected.sources[0].serviceAccountToken: Forbidden: agent pods carry no ServiceAccount token",
			"spec.volumes[2].projected.sources[0].serviceAccountToken: Forbidden: agent pods carry no ServiceAccount token"},
		{"a required secret field", "spec.secretKey: Required value", "spec.secretKey: Required value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got, changed := redactString(tt.in)
			g.Expect(got).To(Equal(tt.want))
			g.Expect(changed).To(Equal(tt.want != tt.in))
		})
	}
}

func TestRedactEventDetailKeys(t *testing.T) {
	tests := []struct {
		key, value string
		redacted   bool
	}{
		{"token", "hunter2", true},
		{"accessToken", "x", true},
		{"client_secret", "abc", true},
		{"password", "p", true},
		{"credential", "ledger-api", true},
		{"privateKey", "k", true},
		{"signing-key", "k", true},
		{"apiKey", "k", true},
		{"key", "k", true},
		{"cookie", "session=1", true},
		{"secretName", "ledger-api-creds", false},
		{"credentialName", "ledger-api", false},
		{"tokenAudience", "ledger-api", false},
		{"tokenTTL", "10m", false},
		{"keyID", "0011223344556677", false},
		{"secretRef", "finance-agents/ledger", false},
		{"ttl", "10m", false},
		{"image", "127.0.0.1:5000/agents/invoice:1.4.2", false},
		{"note", "had " + fakeJWT, true}, // content rule
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			g := NewWithT(t)
			e := Event{Details: map[string]string{tt.key: tt.value, "other": "fine"}}
			changed := redactEvent(&e)
			if tt.redacted {
				g.Expect(changed).To(Equal([]string{"details." + tt.key}))
				g.Expect(e.Details[tt.key]).NotTo(ContainSubstring(strings.TrimPrefix(tt.value, "had ")))
				g.Expect(e.Details[tt.key]).To(ContainSubstring(Redacted))
			} else {
				g.Expect(changed).To(BeEmpty())
				g.Expect(e.Details[tt.key]).To(Equal(tt.value))
			}
			g.Expect(e.Details["other"]).To(Equal("fine"))
		})
	}
}

func FuzzRedactString(f *testing.F) {
	f.Add("password=" + "hunter2 and " + fakeJWT)
	f.Add(fakePEM)
	f.Fuzz(func(t *testing.T, s string) {
		out, _ := redactString(s)
		// Redaction is idempotent, and leaves no JWT or PEM header.
		again, changed := redactString(out)
		if changed {
			t.Fatalf("redacting %q twice changed it: %q then %q", s, out, again)
		}
		if jwt.MatchString(out) || strings.Contains(out, "-----BEGIN ") && pemBlock.MatchString(out) {
			t.Fatalf("redacted %q still holds a secret: %q", s, out)
		}
	})
}
