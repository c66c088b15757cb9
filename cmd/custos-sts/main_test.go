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
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/internal/sts/cluster"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/fixtures"
	"github.com/custos-dev/custos/test/idptest"
)

// env is the API server the package's tests share, started by TestMain.
var env struct {
	cp     *controlplane.ControlPlane
	c      client.Client
	scheme *runtime.Scheme
}

func TestMain(m *testing.M) {
	env.scheme = runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(env.scheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(env.scheme))
	cp, err := controlplane.Start(context.Background(), controlplane.Options{RepoRoot: "../..", Scheme: env.scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	env.cp = cp
	if env.c, err = client.New(cp.Config, client.Options{Scheme: env.scheme}); err != nil {
		_ = cp.Stop()
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = cp.Stop()
	os.Exit(code)
}

// world is a tenant whose DataBoundary trusts a person's identity provider
// on loopback, an Active agent invoice (which acts for alice, with Toolset
// ledger) and its pod's token, and custos-sts's TLS certificate, namespace
// and audit directory.
type world struct {
	t          *testing.T
	idp        *idptest.IdP
	idpCA      string
	tenant     string
	ns, system string
	actorToken string
	certDir    string
	auditDir   string
	https      *http.Client
}

func newWorld(t *testing.T) *world {
	t.Helper()
	c := env.c
	dir := t.TempDir()
	w := &world{t: t, idp: idptest.New(t), tenant: fixtures.UniqueTenant("acme"), auditDir: filepath.Join(dir, "audit")}
	w.idpCA = w.idp.CAFile(t, dir)
	w.ns = fixtures.CreateTenantNamespace(t, c, w.tenant)
	w.system = fixtures.CreateTenantNamespace(t, c, fixtures.UniqueTenant("custos-system"))
	fixtures.Create(t, c, fixtures.DataBoundary(w.tenant, func(b *custosv1alpha1.DataBoundary) {
		b.Spec.TrustedIssuers = []custosv1alpha1.TrustedIssuer{{Issuer: w.idp.URL, Audiences: []string{"custos-sts"}}}
	}))
	fixtures.Create(t, c, fixtures.Toolset(w.ns, "ledger", w.tenant))
	agent := fixtures.Agent(w.ns, "invoice", w.tenant, fixtures.WithToolsets("ledger"))
	agent.Spec.Delegation = &custosv1alpha1.AgentDelegation{People: []string{"alice"}}
	_, pod := fixtures.ActiveAgentPod(t, c, agent)
	w.actorToken = fixtures.PodToken(t, c, pod, "custos-sts")
	w.certDir = filepath.Join(dir, "tls")
	roots := x509.NewCertPool()
	roots.AddCert(selfSigned(t, w.certDir))
	w.https = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	return w
}

// replica is one custos-sts run as its main does; stop ends it as SIGTERM
// would and returns what run returned.
type replica struct {
	addr string
	// base is the tenant's issuer as this replica serves it.
	base string
	stop func() error
}

// start runs a custos-sts replica on loopback; auditDir, when not empty,
// replaces the world's (each replica keeps its own trail), and change, if
// any, changes its flags.
func (w *world) start(auditDir string, change ...func(*options)) *replica {
	w.t.Helper()
	if auditDir == "" {
		auditDir = w.auditDir
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	o := options{listen: "127.0.0.1:0", certDir: w.certDir, namespace: w.system, issuerBase: "https://custos-sts.test",
		audience: "custos-sts", trustDomain: "cluster.local", tokenTTL: sts.DefaultTTL, rotateEvery: cluster.DefaultRotateEvery,
		issuersCA: w.idpCA, probeAddr: "0", metricsAddr: "0", audit: audit.Config{Sink: audit.SinkFile, Dir: auditDir}}
	for _, c := range change {
		c(&o)
	}
	go func() { done <- run(ctx, o, env.cp.Config, ctrl.Log.WithName("test"), ready) }()
	r := &replica{}
	select {
	case r.addr = <-ready:
	case err := <-done:
		cancel()
		w.t.Fatalf("custos-sts stopped: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		w.t.Fatal("custos-sts did not serve within a minute")
	}
	r.base = "https://" + r.addr + "/tenants/" + w.tenant
	var once sync.Once
	var stopErr error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = errors.New("custos-sts did not stop within 30 s")
			}
		})
		return stopErr
	}
	w.t.Cleanup(func() { _ = r.stop() })
	return r
}

// exchangeForm is alice's token, scope ledger.read, exchanged for agent
// invoice for Toolset ledger.
func (w *world) exchangeForm(sub string) url.Values {
	person := w.idp.Token(w.t, sub, "custos-sts", time.Now().Add(time.Hour), map[string]any{"scp": nil, "scope": "ledger.read"})
	return url.Values{"grant_type": {sts.GrantTypeTokenExchange}, "subject_token": {person}, "subject_token_type": {sts.TokenTypeAccessToken},
		"actor_token": {w.actorToken}, "actor_token_type": {sts.TokenTypeJWT}, "resource": {cluster.ToolsetResource(w.ns, "ledger")}}
}

// TestCustosSTS runs custos-sts as its main does, on loopback against a
// real API server, and exchanges a person's token for an agent over HTTPS.
func TestCustosSTS(t *testing.T) {
	ctx := context.Background()
	c := env.c
	w := newWorld(t)
	r := w.start("")
	https, base, tenant, system := w.https, r.base, w.tenant, w.system

	var md sts.Metadata
	getJSON(t, https, base+"/.well-known/oauth-authorization-server", &md)
	if md.Issuer != "https://custos-sts.test/tenants/"+tenant {
		t.Errorf("metadata: %+v", md)
	}
	var jwks jose.JSONWebKeySet
	getJSON(t, https, base+"/jwks", &jwks)

	form := w.exchangeForm("alice")
	resp, err := https.PostForm(base+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var tok sts.TokenResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tok) != nil {
		t.Fatalf("exchange: %d %s", resp.StatusCode, body)
	}
	// The token verifies with the served JWKS alone.
	jws, err := jose.ParseSigned(tok.AccessToken, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	keys := jwks.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q is not in the served JWKS", jws.Signatures[0].Header.KeyID)
	}
	if _, err := jws.Verify(keys[0].Key); err != nil {
		t.Errorf("the token does not verify with the served key: %v", err)
	}
	// The keys are in the key Secret, for the other replicas.
	if err := c.Get(ctx, client.ObjectKey{Namespace: system, Name: cluster.SecretName(tenant)}, &corev1.Secret{}); err != nil {
		t.Errorf("the tenant's key Secret: %v", err)
	}
	// carol is not someone the agent acts for: 400, invalid_request.
	form.Set("subject_token", w.idp.Token(t, "carol", "custos-sts", time.Now().Add(time.Hour), nil))
	resp, err = https.PostForm(base+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("carol's exchange: %d %s, want 400", resp.StatusCode, body)
	}

	if err := r.stop(); err != nil {
		t.Errorf("custos-sts stopped with %v", err)
	}
	// Both decisions are on the audit trail.
	var actions []string
	report, err := audit.Verify(w.auditDir, audit.VerifyOptions{SkipSignatures: true, AllowOpenTail: true,
		OnRecord: func(_ string, _ int, r *audit.Record) { actions = append(actions, r.Action) }})
	if err != nil || !slices.Contains(actions, audit.ActionTokenExchanged) || !slices.Contains(actions, audit.ActionTokenRefused) {
		t.Errorf("the audit trail: %+v %v, %v; want the exchange and the refusal", report, actions, err)
	}
}

func getJSON(t *testing.T, c *http.Client, u string, into any) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatal(err)
	}
}

func selfSigned(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "custos-sts"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "tls.crt"), "CERTIFICATE", der)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	writePEM(t, filepath.Join(dir, "tls.key"), "PRIVATE KEY", kder)
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestParseServiceAccount(t *testing.T) {
	if got, err := parseServiceAccount("custos-system/custos-gateway"); err != nil || got.Namespace != "custos-system" || got.Name != "custos-gateway" {
		t.Errorf("custos-system/custos-gateway: %v, %v", got, err)
	}
	if got, err := parseServiceAccount(""); err != nil || got.Name != "" {
		t.Errorf("empty: %v, %v; want none", got, err)
	}
	for _, bad := range []string{"custos-gateway", "/x", "x/", "a/b/c"} {
		if _, err := parseServiceAccount(bad); err == nil || !strings.Contains(err.Error(), "is not namespace/name") {
			t.Errorf("%q: %v, want refused", bad, err)
		}
	}
}
