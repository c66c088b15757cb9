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

package leasedoubles

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
)

// These tests speak to the doubles on the wire, with tokens of a fake
// cluster: a loopback server publishing an issuer and the key of a signer
// the test holds, so that it can mint any token, an expired one included.
// internal/lease tests the doubles with the real SDKs and a real API server.

const fakeIssuer = "https://kubernetes.default.svc.cluster.local"

type fakeCluster struct {
	cfg    *rest.Config
	signer jose.Signer
}

func newFakeCluster(t *testing.T) *fakeCluster {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		// The jwks_uri is not on this machine, as a test API server's is:
		// the doubles must not follow it.
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": fakeIssuer, "jwks_uri": "https://192.0.2.2:6443/openid/v1/jwks"})
	})
	mux.HandleFunc("GET /openid/v1/jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jwks)
	})
	l, err := listenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}}
	srv.Start()
	t.Cleanup(srv.Close)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	return &fakeCluster{cfg: &rest.Config{Host: srv.URL}, signer: signer}
}

// token mints a token of namespace/sa for audience, expiring at exp.
func (c *fakeCluster) token(t *testing.T, sa, audience string, exp time.Time) string {
	t.Helper()
	tok, err := jwt.Signed(c.signer).Claims(jwt.Claims{
		Issuer:   fakeIssuer,
		Subject:  Subject("agents", sa),
		Audience: jwt.Audience{audience},
		IssuedAt: jwt.NewNumericDate(exp.Add(-2 * time.Hour)),
		Expiry:   jwt.NewNumericDate(exp),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

const testRole = "arn:aws:iam::123456789012:role/team/reader"

func assumeRole(t *testing.T, s *STS, form url.Values) (int, string) {
	t.Helper()
	res, err := http.PostForm(s.URL+"/", form)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

func stsForm(token, session string) url.Values {
	return url.Values{
		"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"},
		"RoleArn": {testRole}, "RoleSessionName": {session}, "WebIdentityToken": {token}, "DurationSeconds": {"900"},
	}
}

func TestSTS(t *testing.T) {
	g := NewWithT(t)
	cluster := newFakeCluster(t)
	s, err := NewSTS(t.Context(), cluster.cfg)
	g.Expect(err).NotTo(HaveOccurred())
	defer s.Close()
	s.TrustRole(testRole, Subject("agents", "reader"))
	g.Expect(s.URL).To(HavePrefix("http://127.0.0.1:"))

	now := time.Now()
	status, body := assumeRole(t, s, stsForm(cluster.token(t, "reader", "sts.amazonaws.com", now.Add(10*time.Minute)), "agents.reader"))
	g.Expect(status).To(Equal(http.StatusOK), body)
	g.Expect(body).To(HavePrefix(`<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><SubjectFromWebIdentityToken>system:serviceaccount:agents:reader</SubjectFromWebIdentityToken><Audience>sts.amazonaws.com</Audience><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/reader/agents.reader</Arn><AssumedRoleId>AROA`))
	g.Expect(body).To(MatchRegexp(`<Expiration>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ</Expiration><AccessKeyId>ASIA[A-Z2-7]{16}</AccessKeyId></Credentials><Provider>arn:aws:iam::123456789012:oidc-provider/kubernetes.default.svc.cluster.local</Provider></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>[0-9a-f-]{36}</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`))
	var res assumeRoleResponse
	g.Expect(xml.Unmarshal([]byte(body), &res)).To(Succeed())
	exp, err := time.Parse(time.RFC3339, res.Result.Credentials.Expiration)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(exp).To(BeTemporally("~", now.Add(15*time.Minute), 2*time.Second))
	ses, ok := s.Session(res.Result.Credentials.AccessKeyID)
	g.Expect(ok).To(BeTrue())
	g.Expect(ses.Expiration).To(Equal(exp))

	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"expired token", stsForm(cluster.token(t, "reader", "sts.amazonaws.com", now.Add(-time.Minute)), "agents.reader"), 400, "ExpiredTokenException"},
		{"wrong audience", stsForm(cluster.token(t, "reader", "api://AzureADTokenExchange", now.Add(time.Hour)), "agents.reader"), 400, "InvalidIdentityToken"},
		{"untrusted subject", stsForm(cluster.token(t, "writer", "sts.amazonaws.com", now.Add(time.Hour)), "agents.writer"), 403, "AccessDenied"},
		{"not a token", stsForm("not-a-jwt", "agents.reader"), 400, "InvalidIdentityToken"},
		{"bad session name", stsForm(cluster.token(t, "reader", "sts.amazonaws.com", now.Add(time.Hour)), "agents/reader"), 400, "ValidationError"},
		{"another action", url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}}, 400, "InvalidAction"},
	} {
		status, body := assumeRole(t, s, tc.form)
		g.Expect(status).To(Equal(tc.status), tc.name)
		g.Expect(body).To(MatchRegexp(`^<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>`+tc.code+`</Code><Message>[^<]+</Message></Error><RequestId>[0-9a-f-]{36}</RequestId></ErrorResponse>$`), tc.name)
	}

	s.FailNext(2, STSUnavailable)
	calls := s.Calls()
	form := stsForm(cluster.token(t, "reader", "sts.amazonaws.com", now.Add(time.Hour)), "agents.reader")
	for range 2 {
		status, body := assumeRole(t, s, form)
		g.Expect(status).To(Equal(http.StatusServiceUnavailable))
		g.Expect(body).To(ContainSubstring("<Type>Receiver</Type><Code>ServiceUnavailable</Code>"))
	}
	status, _ = assumeRole(t, s, form)
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(s.Calls()).To(Equal(calls + 3))
	g.Expect(s.Sessions()).To(HaveLen(2))
}

func TestEntra(t *testing.T) {
	g := NewWithT(t)
	cluster := newFakeCluster(t)
	e, err := NewEntra(t.Context(), cluster.cfg)
	g.Expect(err).NotTo(HaveOccurred())
	defer e.Close()
	const tenant, client = "0b4c1a57-5e3d-4f0e-9c1a-7d1e2f3a4b5c", "6f1d2c3b-4a5e-4b7c-8d9e-0a1b2c3d4e5f"
	e.Register(tenant, client, Subject("agents", "reader"))
	g.Expect(e.URL).To(HavePrefix("https://127.0.0.1:"))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: e.Client().Transport.(*http.Transport).TLSClientConfig}}

	res, err := hc.Get(e.URL + "/" + tenant + "/v2.0/.well-known/openid-configuration")
	g.Expect(err).NotTo(HaveOccurred())
	var disco map[string]any
	g.Expect(json.NewDecoder(res.Body).Decode(&disco)).To(Succeed())
	_ = res.Body.Close()
	g.Expect(disco).To(HaveKeyWithValue("issuer", e.URL+"/"+tenant+"/v2.0"))
	g.Expect(disco).To(HaveKeyWithValue("token_endpoint", e.URL+"/"+tenant+"/oauth2/v2.0/token"))

	token := func(form url.Values) (int, map[string]any) {
		res, err := hc.PostForm(e.URL+"/"+tenant+"/oauth2/v2.0/token", form)
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = res.Body.Close() }()
		var body map[string]any
		g.Expect(json.NewDecoder(res.Body).Decode(&body)).To(Succeed())
		return res.StatusCode, body
	}
	grant := func(clientID, assertion, scope string) url.Values {
		return url.Values{
			"grant_type": {"client_credentials"}, "client_id": {clientID}, "scope": {scope},
			"client_assertion_type": {clientAssertionType}, "client_assertion": {assertion},
		}
	}
	now := time.Now()
	status, body := token(grant(client, cluster.token(t, "reader", "api://AzureADTokenExchange", now.Add(time.Hour)), "https://vault.azure.net/.default openid profile offline_access"))
	g.Expect(status).To(Equal(http.StatusOK), "%v", body)
	g.Expect(body).To(HaveKeyWithValue("token_type", "Bearer"))
	g.Expect(body).To(HaveKeyWithValue("expires_in", BeNumerically("==", 3600)))
	g.Expect(body).To(HaveKey("access_token"))
	got, ok := e.Grant(body["access_token"].(string))
	g.Expect(ok).To(BeTrue())
	g.Expect(got.Scope).To(Equal("https://vault.azure.net/.default"))

	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		error  string
		code   string
	}{
		{"expired assertion", grant(client, cluster.token(t, "reader", "api://AzureADTokenExchange", now.Add(-time.Minute)), "https://vault.azure.net/.default"), 401, "invalid_client", "AADSTS700024"},
		{"wrong audience", grant(client, cluster.token(t, "reader", "sts.amazonaws.com", now.Add(time.Hour)), "https://vault.azure.net/.default"), 400, "invalid_request", "AADSTS700212"},
		{"unfederated subject", grant(client, cluster.token(t, "writer", "api://AzureADTokenExchange", now.Add(time.Hour)), "https://vault.azure.net/.default"), 400, "invalid_request", "AADSTS70021"},
		{"unknown client", grant("00000000-1111-4222-8333-444444444444", cluster.token(t, "reader", "api://AzureADTokenExchange", now.Add(time.Hour)), "https://vault.azure.net/.default"), 400, "unauthorized_client", "AADSTS700016"},
		{"bad scope", grant(client, cluster.token(t, "reader", "api://AzureADTokenExchange", now.Add(time.Hour)), "https://vault.azure.net/read"), 400, "invalid_scope", "AADSTS1002012"},
	} {
		status, body := token(tc.form)
		g.Expect(status).To(Equal(tc.status), tc.name)
		g.Expect(body).To(HaveKeyWithValue("error", tc.error), tc.name)
		desc, _ := body["error_description"].(string)
		g.Expect(strings.HasPrefix(desc, tc.code+": ")).To(BeTrue(), "%s: %s", tc.name, desc)
		g.Expect(desc).To(ContainSubstring("\r\nTrace ID: "))
	}

	calls := e.Calls()
	e.FailNext(1, EntraUnavailable)
	status, body = token(grant(client, cluster.token(t, "reader", "api://AzureADTokenExchange", now.Add(time.Hour)), "https://vault.azure.net/.default"))
	g.Expect(status).To(Equal(http.StatusServiceUnavailable))
	g.Expect(body).To(HaveKeyWithValue("error", "temporarily_unavailable"))
	g.Expect(e.Calls()).To(Equal(calls + 1))
	g.Expect(e.Grants()).To(HaveLen(1))
}

func TestDoublesStayOnLoopback(t *testing.T) {
	g := NewWithT(t)
	// Refused before anything is dialled.
	_, err := NewSTS(t.Context(), &rest.Config{Host: "https://192.0.2.2:6443"})
	g.Expect(err).To(MatchError(ContainSubstring("not on loopback")))
	_, err = NewEntra(t.Context(), &rest.Config{Host: "https://192.0.2.2:6443"})
	g.Expect(err).To(MatchError(ContainSubstring("not on loopback")))
}
