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

package lease

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	. "github.com/onsi/gomega"
	clocktesting "k8s.io/utils/clock/testing"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/leasedoubles"
)

const (
	testRoleARN  = "arn:aws:iam::123456789012:role/agents/reader"
	testTenantID = "0b4c1a57-5e3d-4f0e-9c1a-7d1e2f3a4b5c"
	testClientID = "6f1d2c3b-4a5e-4b7c-8d9e-0a1b2c3d4e5f"
	testScope    = "https://vault.azure.net/.default"
)

// testNow is the backends' clock: IssuedAt is read from it.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testTokens is the TokenRequest API as the backends see it, with what a
// test changes: the audience asked for, a forged signature. It keeps every
// token it hands out, so that a test can assert that none leaks.
type testTokens struct {
	TokenSource
	// audience, when set, replaces the audience a backend asks for.
	audience string
	// forge re-signs each token with a key of its own under the API
	// server's key ID.
	forge bool

	mu     sync.Mutex
	issued []string
}

func newTestTokens() *testTokens {
	return &testTokens{TokenSource: NewTokenSource(testClient)}
}

func (t *testTokens) ServiceAccountToken(ctx context.Context, namespace, serviceAccount string, audiences []string, ttl time.Duration, bound *BoundObject) (string, time.Time, error) {
	if t.audience != "" {
		audiences = []string{t.audience}
	}
	token, expires, err := t.TokenSource.ServiceAccountToken(ctx, namespace, serviceAccount, audiences, ttl, bound)
	if err != nil {
		return "", time.Time{}, err
	}
	if t.forge {
		if token, err = forge(token); err != nil {
			return "", time.Time{}, err
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.issued = append(t.issued, token)
	return token, expires, nil
}

func (t *testTokens) tokens() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.issued...)
}

// forge signs token's claims with a new key, naming the original key.
func forge(token string) (string, error) {
	parsed, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return "", err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", parsed.Signatures[0].Header.KeyID)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, opts)
	if err != nil {
		return "", err
	}
	signed, err := signer.Sign(parsed.UnsafePayloadWithoutVerification())
	if err != nil {
		return "", err
	}
	return signed.CompactSerialize()
}

// request builds a request of the test agent (trustedSA) for the credential
// c, with both clouds bound, changed by opts.
func request(c custosv1alpha1.CredentialSpec, opts ...func(*Request)) Request {
	r := Request{
		Namespace:      testNamespace,
		Agent:          "agent-a",
		AgentUID:       "3f1c5a8e-0000-4000-8000-000000000001",
		Tenant:         "team-a",
		Owner:          "team-a",
		ServiceAccount: trustedSA,
		Identity: custosv1alpha1.IdentityBindings{
			AWS:   &custosv1alpha1.AWSIdentity{RoleARN: testRoleARN},
			Azure: &custosv1alpha1.AzureIdentity{TenantID: testTenantID, ClientID: testClientID},
		},
		Credential: c,
		TTL:        time.Hour,
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func awsCredential() custosv1alpha1.CredentialSpec {
	return custosv1alpha1.CredentialSpec{Name: "aws", AWSSTS: &custosv1alpha1.AWSSTSCredential{}}
}

func azureCredential(scope string) custosv1alpha1.CredentialSpec {
	return custosv1alpha1.CredentialSpec{Name: "azure", AzureToken: &custosv1alpha1.AzureTokenCredential{Scope: scope}}
}

func withServiceAccount(sa string) func(*Request) { return func(r *Request) { r.ServiceAccount = sa } }
func withTTL(d time.Duration) func(*Request)      { return func(r *Request) { r.TTL = d } }
func withIdentity(id custosv1alpha1.IdentityBindings) func(*Request) {
	return func(r *Request) { r.Identity = id }
}

// newSTS starts an STS double that lets trustedSA assume testRoleARN.
func newSTS(t *testing.T) *leasedoubles.STS {
	t.Helper()
	s, err := leasedoubles.NewSTS(t.Context(), testConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	s.TrustRole(testRoleARN, leasedoubles.Subject(testNamespace, trustedSA))
	return s
}

// newEntra starts an Entra ID double in which testClientID is federated
// with trustedSA.
func newEntra(t *testing.T) *leasedoubles.Entra {
	t.Helper()
	e, err := leasedoubles.NewEntra(t.Context(), testConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	e.Register(testTenantID, testClientID, leasedoubles.Subject(testNamespace, trustedSA))
	return e
}

func awsBackend(s *leasedoubles.STS, tokens TokenSource) *AWSSTS {
	return &AWSSTS{Tokens: tokens, Endpoint: s.URL, Region: "eu-west-1", Clock: clocktesting.NewFakePassiveClock(testNow)}
}

func azureBackend(e *leasedoubles.Entra, tokens TokenSource) *AzureToken {
	return &AzureToken{Tokens: tokens, AuthorityHost: e.URL, HTTPClient: e.Client(), Clock: clocktesting.NewFakePassiveClock(testNow)}
}

// expectNoSecrets asserts that text holds none of secrets.
func expectNoSecrets(g Gomega, text string, secrets ...string) {
	g.Expect(secrets).NotTo(BeEmpty())
	for _, s := range secrets {
		g.Expect(s).NotTo(BeEmpty())
		g.Expect(text).NotTo(ContainSubstring(s), "a secret leaked")
	}
}

// refusal asserts that err is a RefusedError of backend with reason, and
// returns it.
func refusal(g Gomega, err error, backend, reason string) *RefusedError {
	var refused *RefusedError
	g.Expect(errors.As(err, &refused)).To(BeTrue(), "want a refusal, got %v", err)
	g.Expect(refused.Backend).To(Equal(backend))
	g.Expect(refused.Reason).To(Equal(reason), refused.Message)
	return refused
}

// closedAddress is a loopback URL on which nothing listens.
func closedAddress(t *testing.T, scheme string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return scheme + "://" + addr
}

func TestAWSSTSIssues(t *testing.T) {
	g := NewWithT(t)
	s := newSTS(t)
	tokens := newTestTokens()

	before := time.Now()
	l, err := awsBackend(s, tokens).Issue(t.Context(), request(awsCredential()))
	g.Expect(err).NotTo(HaveOccurred())

	sessions := s.Sessions()
	g.Expect(sessions).To(HaveLen(1))
	ses := sessions[0]
	g.Expect(ses.RoleARN).To(Equal(testRoleARN))
	g.Expect(ses.Subject).To(Equal("system:serviceaccount:agents:agent-a"))
	g.Expect(ses.SessionName).To(Equal("agents.agent-a"), "the session is attributed to the agent")
	g.Expect(ses.DurationSeconds).To(Equal(3600))

	id := string(l.Data[AWSAccessKeyIDKey])
	secret := string(l.Data[AWSSecretAccessKeyKey])
	sessionToken := string(l.Data[AWSSessionTokenKey])
	g.Expect(id).To(Equal(ses.AccessKeyID))
	g.Expect(secret).To(HaveLen(40))
	g.Expect(sessionToken).NotTo(BeEmpty())
	g.Expect(string(l.Data[AWSCredentialsKey])).To(Equal(fmt.Sprintf(
		"[default]\naws_access_key_id = %s\naws_secret_access_key = %s\naws_session_token = %s\n", id, secret, sessionToken)))
	g.Expect(l.Data).To(HaveLen(4))

	g.Expect(l.IssuedAt).To(Equal(testNow))
	g.Expect(l.ExpiresAt).To(BeTemporally("==", ses.Expiration))
	g.Expect(l.ExpiresAt).To(BeTemporally("~", before.Add(time.Hour), 5*time.Second))
	g.Expect(l.Attributes).To(Equal(map[string]string{
		"roleARN":        testRoleARN,
		"sessionName":    "agents.agent-a",
		"assumedRoleARN": "arn:aws:sts::123456789012:assumed-role/reader/agents.agent-a",
	}))
	expectNoSecrets(g, fmt.Sprint(l.Attributes), append(tokens.tokens(), secret, sessionToken, id)...)
	g.Expect(s.Calls()).To(Equal(1))
}

func TestAWSSTSSessionName(t *testing.T) {
	g := NewWithT(t)
	s := newSTS(t)
	c := awsCredential()
	c.AWSSTS.SessionName = "nightly-report@team-a"
	l, err := awsBackend(s, newTestTokens()).Issue(t.Context(), request(c, withTTL(15*time.Minute)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(l.Attributes).To(HaveKeyWithValue("sessionName", "nightly-report@team-a"))
	g.Expect(s.Sessions()[0].SessionName).To(Equal("nightly-report@team-a"))
	g.Expect(s.Sessions()[0].DurationSeconds).To(Equal(900))
}

func TestAWSSTSRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		req    Request
		tokens func(*testTokens)
		sts    func(*leasedoubles.STS)
		reason string
		calls  int
	}{{
		name:   "no role bound",
		req:    request(awsCredential(), withIdentity(custosv1alpha1.IdentityBindings{Azure: &custosv1alpha1.AzureIdentity{TenantID: testTenantID, ClientID: testClientID}})),
		reason: "NoAWSIdentity",
	}, {
		name:   "a subject the role does not trust",
		req:    request(awsCredential(), withServiceAccount(untrustedSA)),
		reason: "AccessDenied",
		calls:  1,
	}, {
		name:   "an unknown role",
		req:    request(awsCredential(), withIdentity(custosv1alpha1.IdentityBindings{AWS: &custosv1alpha1.AWSIdentity{RoleARN: "arn:aws:iam::123456789012:role/writer"}})),
		reason: "AccessDenied",
		calls:  1,
	}, {
		name:   "a token for another audience",
		req:    request(awsCredential()),
		tokens: func(t *testTokens) { t.audience = "api://AzureADTokenExchange" },
		reason: "InvalidIdentityToken",
		calls:  1,
	}, {
		name:   "a token not signed by the cluster",
		req:    request(awsCredential()),
		tokens: func(t *testTokens) { t.forge = true },
		reason: "InvalidIdentityToken",
		calls:  1,
	}, {
		name:   "a session longer than the role allows",
		req:    request(awsCredential(), withTTL(2*time.Hour)),
		sts:    func(s *leasedoubles.STS) { s.SetMaxSessionDuration(time.Hour) },
		reason: "ValidationError",
		calls:  1,
	}, {
		name: "an STS refusal injected",
		req:  request(awsCredential()),
		sts: func(s *leasedoubles.STS) {
			s.FailNext(1, leasedoubles.Fault{Status: 403, Code: "IDPRejectedClaim", Message: "claim rejected"})
		},
		reason: "IDPRejectedClaim",
		calls:  1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			s := newSTS(t)
			tokens := newTestTokens()
			if tc.tokens != nil {
				tc.tokens(tokens)
			}
			if tc.sts != nil {
				tc.sts(s)
			}
			l, err := awsBackend(s, tokens).Issue(t.Context(), tc.req)
			t.Log(err)
			g.Expect(l).To(BeNil())
			refusal(g, err, BackendAWSSTS, tc.reason)
			g.Expect(s.Calls()).To(Equal(tc.calls))
			g.Expect(s.Sessions()).To(BeEmpty())
			if tc.calls > 0 {
				expectNoSecrets(g, err.Error(), tokens.tokens()...)
			}
		})
	}
}

func TestAWSSTSTransientErrors(t *testing.T) {
	for _, fault := range []leasedoubles.Fault{leasedoubles.STSUnavailable, leasedoubles.STSThrottling, {Status: 500}} {
		t.Run(fmt.Sprintf("%d %s", fault.Status, fault.Code), func(t *testing.T) {
			g := NewWithT(t)
			s := newSTS(t)
			tokens := newTestTokens()
			b := awsBackend(s, tokens)
			s.FailNext(1, fault)

			_, err := b.Issue(t.Context(), request(awsCredential()))
			t.Log(err)
			g.Expect(err).To(HaveOccurred())
			g.Expect(IsRefused(err)).To(BeFalse(), "a %d is transient: %v", fault.Status, err)
			g.Expect(s.Calls()).To(Equal(1), "the backend leaves retries to the reconciler")
			expectNoSecrets(g, err.Error(), tokens.tokens()...)

			l, err := b.Issue(t.Context(), request(awsCredential()))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(l.Data).To(HaveKey(AWSSessionTokenKey))
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		g := NewWithT(t)
		b := &AWSSTS{Tokens: newTestTokens(), Endpoint: closedAddress(t, "http"), Region: "eu-west-1"}
		_, err := b.Issue(t.Context(), request(awsCredential()))
		t.Log(err)
		g.Expect(err).To(HaveOccurred())
		g.Expect(IsRefused(err)).To(BeFalse())
	})
}

func TestAzureTokenIssues(t *testing.T) {
	g := NewWithT(t)
	e := newEntra(t)
	tokens := newTestTokens()
	b := azureBackend(e, tokens)

	before := time.Now()
	l, err := b.Issue(t.Context(), request(azureCredential(testScope)))
	g.Expect(err).NotTo(HaveOccurred())

	token := string(l.Data[TokenKey])
	grant, ok := e.Grant(token)
	g.Expect(ok).To(BeTrue(), "the lease holds the token Entra ID issued")
	g.Expect(grant.Subject).To(Equal("system:serviceaccount:agents:agent-a"))
	g.Expect(grant.Scope).To(Equal(testScope))
	g.Expect(grant.ClientID).To(Equal(testClientID))
	g.Expect(grant.TenantID).To(Equal(testTenantID))
	g.Expect(l.Data).To(HaveLen(1))
	g.Expect(l.IssuedAt).To(Equal(testNow))
	g.Expect(l.ExpiresAt).To(BeTemporally("~", grant.ExpiresAt, 2*time.Second))
	g.Expect(l.ExpiresAt).To(BeTemporally("~", before.Add(time.Hour), 5*time.Second))
	g.Expect(l.Attributes).To(Equal(map[string]string{"scope": testScope, "clientID": testClientID, "tenantID": testTenantID}))
	expectNoSecrets(g, fmt.Sprint(l.Attributes), append(tokens.tokens(), token)...)

	// A renewal gets a new token, not one azidentity kept.
	renewed, err := b.Issue(t.Context(), request(azureCredential(testScope)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(renewed.Data[TokenKey]).NotTo(Equal(l.Data[TokenKey]))
	g.Expect(e.Calls()).To(Equal(2))
	g.Expect(tokens.tokens()).To(HaveLen(2), "each token request presents a new assertion")
}

func TestAzureTokenRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		req    Request
		tokens func(*testTokens)
		entra  func(*leasedoubles.Entra)
		reason string
		calls  int
	}{{
		name:   "no application bound",
		req:    request(azureCredential(testScope), withIdentity(custosv1alpha1.IdentityBindings{AWS: &custosv1alpha1.AWSIdentity{RoleARN: testRoleARN}})),
		reason: "NoAzureIdentity",
	}, {
		name:   "a subject the application is not federated with",
		req:    request(azureCredential(testScope), withServiceAccount(untrustedSA)),
		reason: "InvalidRequest",
		calls:  1,
	}, {
		name: "an application not in the tenant",
		req: request(azureCredential(testScope), withIdentity(custosv1alpha1.IdentityBindings{
			Azure: &custosv1alpha1.AzureIdentity{TenantID: testTenantID, ClientID: "00000000-1111-4222-8333-444444444444"}})),
		reason: "UnauthorizedClient",
		calls:  1,
	}, {
		name: "an unknown tenant",
		req: request(azureCredential(testScope), withIdentity(custosv1alpha1.IdentityBindings{
			Azure: &custosv1alpha1.AzureIdentity{TenantID: "00000000-1111-4222-8333-444444444444", ClientID: testClientID}})),
		reason: "InvalidTenant",
	}, {
		name:   "a scope that is not a resource's .default",
		req:    request(azureCredential("https://vault.azure.net/secrets.read")),
		reason: "InvalidScope",
		calls:  1,
	}, {
		name:   "an assertion for another audience",
		req:    request(azureCredential(testScope)),
		tokens: func(t *testTokens) { t.audience = "sts.amazonaws.com" },
		reason: "InvalidRequest",
		calls:  1,
	}, {
		name:   "an assertion not signed by the cluster",
		req:    request(azureCredential(testScope)),
		tokens: func(t *testTokens) { t.forge = true },
		reason: "InvalidClient",
		calls:  1,
	}, {
		name: "an Entra ID refusal injected",
		req:  request(azureCredential(testScope)),
		entra: func(e *leasedoubles.Entra) {
			e.FailNext(1, leasedoubles.Fault{Status: 401, Code: "invalid_client", Message: "AADSTS7000215: Invalid client secret provided."})
		},
		reason: "InvalidClient",
		calls:  1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newEntra(t)
			tokens := newTestTokens()
			if tc.tokens != nil {
				tc.tokens(tokens)
			}
			if tc.entra != nil {
				tc.entra(e)
			}
			l, err := azureBackend(e, tokens).Issue(t.Context(), tc.req)
			t.Log(err)
			g.Expect(l).To(BeNil())
			refused := refusal(g, err, BackendAzureToken, tc.reason)
			g.Expect(refused.Message).NotTo(ContainSubstring("\n"), "one line for a condition")
			g.Expect(e.Calls()).To(Equal(tc.calls))
			g.Expect(e.Grants()).To(BeEmpty())
			if tc.calls > 0 {
				g.Expect(refused.Message).To(ContainSubstring("AADSTS"))
				expectNoSecrets(g, err.Error(), tokens.tokens()...)
			}
		})
	}
}

func TestAzureTokenTransientErrors(t *testing.T) {
	for _, fault := range []leasedoubles.Fault{leasedoubles.EntraUnavailable, {Status: 503}, {Status: 429, Code: "temporarily_unavailable", Message: "AADSTS50196: loop detected"}} {
		t.Run(fmt.Sprintf("%d %s", fault.Status, fault.Code), func(t *testing.T) {
			g := NewWithT(t)
			e := newEntra(t)
			tokens := newTestTokens()
			b := azureBackend(e, tokens)
			e.FailNext(1, fault)

			_, err := b.Issue(t.Context(), request(azureCredential(testScope)))
			t.Log(err)
			g.Expect(err).To(HaveOccurred())
			g.Expect(IsRefused(err)).To(BeFalse(), "a %d is transient: %v", fault.Status, err)
			g.Expect(e.Calls()).To(Equal(1), "the backend leaves retries to the reconciler")
			expectNoSecrets(g, err.Error(), tokens.tokens()...)

			l, err := b.Issue(t.Context(), request(azureCredential(testScope)))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(l.Data).To(HaveKey(TokenKey))
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		g := NewWithT(t)
		e := newEntra(t)
		b := &AzureToken{Tokens: newTestTokens(), AuthorityHost: closedAddress(t, "https"), HTTPClient: e.Client()}
		_, err := b.Issue(t.Context(), request(azureCredential(testScope)))
		t.Log(err)
		g.Expect(err).To(HaveOccurred())
		g.Expect(IsRefused(err)).To(BeFalse(), "%v", err)
	})
}

func TestSessionName(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, tc := range []struct {
		namespace, agent, want string
	}{
		{"agents", "reader", "agents.reader"},
		{"agents", "nightly.report", "agents.nightly.report"},
		{"team a", "r/w", "team-a.r-w"},
	} {
		g := NewWithT(t)
		got := SessionName(tc.namespace, tc.agent)
		g.Expect(got).To(Equal(tc.want))
		g.Expect(len(got)).To(BeNumerically("<=", 64))
	}
	g := NewWithT(t)
	g.Expect(SessionName(long, "reader")).NotTo(Equal(SessionName(long, "writer")), "long names stay apart")
	g.Expect(SessionName(long, "reader")).To(HaveLen(64))
	g.Expect(SessionName(long, "reader")).To(MatchRegexp(`^a{55}-[0-9a-f]{8}$`))
}

func FuzzSessionName(f *testing.F) {
	f.Add("agents", "reader")
	f.Add(strings.Repeat("n", 63), strings.Repeat("a", 253))
	f.Add("", "")
	f.Fuzz(func(t *testing.T, namespace, agent string) {
		got := SessionName(namespace, agent)
		if len(got) < 1 || len(got) > 64 || notSessionNameChars.MatchString(got) {
			t.Fatalf("SessionName(%q, %q) = %q: not an STS session name", namespace, agent, got)
		}
	})
}

func TestCamelCase(t *testing.T) {
	for code, want := range map[string]string{
		"invalid_client":      "InvalidClient",
		"unauthorized_client": "UnauthorizedClient",
		"invalid_scope":       "InvalidScope",
		"access_denied":       "AccessDenied",
		"weird__code_":        "WeirdCode",
	} {
		NewWithT(t).Expect(camelCase(code)).To(Equal(want))
	}
}
