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
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/internal/sts/cluster"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/fixtures"
)

// stsGoal: custos-sts's warm p99 is at most this times the floor's.
const stsGoal = 1.3

// stsSides are the bench's three endpoints, taking turns: the floor, and
// custos-sts with its TokenReview cache warm and cold.
var stsSides = []string{"floor", "custos-sts warm", "custos-sts cold"}

// runSTS (`make bench-sts`) times token exchanges over loopback HTTPS at
// each -levels concurrency: custos-sts (internal/sts with the cluster
// resolvers, reading a warm cache of Agents, Toolsets, DataBoundaries and
// pods, its TokenReview answers kept 5 s: warm) and the same with every
// exchange reviewing its actor token with the API server (cold), against a
// floor measured in the same run: an endpoint that parses the same form,
// verifies the same subject token and signs the same claims, and nothing
// else. The sides take turns in rounds, so all meet the same load.
func runSTS(ctx context.Context, c config) error {
	levels, err := parseLevels(c.levels)
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(scheme))
	say("starting etcd and kube-apiserver")
	cp, err := controlplane.Start(ctx, controlplane.Options{RepoRoot: c.root, Scheme: scheme})
	if err != nil {
		return err
	}
	defer func() { _ = cp.Stop() }()
	cl, err := client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}

	// A person's identity provider on loopback.
	idpKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	idp := httptest.NewTLSServer(mux)
	defer idp.Close()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": idp.URL, "jwks_uri": idp.URL + "/keys", "authorization_endpoint": idp.URL + "/authorize"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &idpKey.PublicKey, KeyID: "k", Algorithm: "ES256", Use: "sig"}}})
	})

	// The tenant, its agent and the agent's pod, as the manager leaves them.
	const tenantName, ns = "bench-sts", "bench-sts-agents"
	for _, obj := range []client.Object{
		fixtures.TenantNamespace(ns, tenantName),
		fixtures.DataBoundary(tenantName, func(b *custosv1alpha1.DataBoundary) {
			b.Spec.TrustedIssuers = []custosv1alpha1.TrustedIssuer{{Issuer: idp.URL, Audiences: []string{"custos-sts"}}}
		}),
		fixtures.Toolset(ns, "ledger", tenantName),
	} {
		if err := cl.Create(ctx, obj); err != nil {
			return err
		}
	}
	agent := fixtures.Agent(ns, "invoice", tenantName, fixtures.WithToolsets("ledger"))
	agent.Spec.Delegation = &custosv1alpha1.AgentDelegation{People: []string{"alice"}}
	if err := cl.Create(ctx, agent); err != nil {
		return err
	}
	agent.Status.Lifecycle = &custosv1alpha1.LifecycleStatus{Phase: custosv1alpha1.AgentPhaseActive}
	meta.SetStatusCondition(&agent.Status.Conditions, metav1.Condition{Type: custosv1alpha1.ImageVerifiedCondition,
		Status: metav1.ConditionTrue, Reason: custosv1alpha1.VerifiedReason, Message: "verified"})
	if err := cl.Status().Update(ctx, agent); err != nil {
		return err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "agent-invoice", Namespace: ns}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "agent-invoice-0", Namespace: ns, Labels: map[string]string{
		custosv1alpha1.AgentLabel: "invoice", custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue}},
		Spec: corev1.PodSpec{ServiceAccountName: sa.Name, Containers: []corev1.Container{{Name: "agent", Image: fixtures.Image}}}}
	for _, obj := range []client.Object{sa, pod} {
		if err := cl.Create(ctx, obj); err != nil {
			return err
		}
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"custos-sts"}, ExpirationSeconds: ptr.To[int64](3600),
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}}}
	if err := cl.SubResource("token").Create(ctx, sa, tr); err != nil {
		return err
	}

	// The STS's cache, synced before the first exchange.
	// As custos-sts's: the revocation lists of its own namespace only.
	cached, err := cache.New(cp.Config, cache.Options{Scheme: scheme, ByObject: map[client.Object]cache.ByObject{
		&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{metav1.NamespaceDefault: {}}},
	}})
	if err != nil {
		return err
	}
	podMeta := &metav1.PartialObjectMetadata{}
	podMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	for _, obj := range []client.Object{&custosv1alpha1.Agent{}, &custosv1alpha1.Toolset{}, &custosv1alpha1.DataBoundary{}, podMeta, &corev1.ConfigMap{}} {
		if _, err := cached.GetInformer(ctx, obj); err != nil {
			return err
		}
	}
	cacheCtx, stopCache := context.WithCancel(ctx)
	defer stopCache()
	go func() { _ = cached.Start(cacheCtx) }()
	if !cached.WaitForCacheSync(ctx) {
		return fmt.Errorf("the STS's cache did not sync")
	}

	keys, err := sts.NewKeySet(time.Now())
	if err != nil {
		return err
	}
	issuer := &sts.Issuer{URL: "https://custos-sts.bench/tenants/" + tenantName, Tenant: tenantName, Keys: keys}
	service := func(reviewTTL time.Duration) *sts.Service {
		clk := clock.RealClock{}
		issuers := sts.StaticIssuers{tenantName: issuer}
		return &sts.Service{
			Issuers:     issuers,
			Actors:      &cluster.Actors{Client: cl, Reader: cached, TrustDomain: "cluster.local", Audience: "custos-sts", TTL: reviewTTL, Clock: clk},
			Subjects:    &cluster.Subjects{Reader: cached, Issuers: issuers, HTTPClient: idp.Client(), Clock: clk, Context: ctx},
			Targets:     &cluster.Targets{Reader: cached, TrustDomain: "cluster.local"},
			Revocations: &cluster.Revocations{Reader: cached, TrustDomain: "cluster.local", Namespace: metav1.NamespaceDefault, Clock: clk},
			Audit:       audit.Discard(), Clock: clk,
		}
	}
	servers := []*httptest.Server{
		httptest.NewTLSServer(floorHandler(&idpKey.PublicKey, idp.URL, issuer)),
		httptest.NewTLSServer(sts.Handler(service(cluster.DefaultReviewTTL))),
		httptest.NewTLSServer(sts.Handler(service(time.Nanosecond))),
	}
	for _, s := range servers {
		defer s.Close()
	}
	person := benchPersonToken(idpKey, idp.URL)
	form := url.Values{"grant_type": {sts.GrantTypeTokenExchange}, "subject_token": {person}, "subject_token_type": {sts.TokenTypeAccessToken},
		"actor_token": {tr.Status.Token}, "actor_token_type": {sts.TokenTypeJWT}, "resource": {cluster.ToolsetResource(ns, "ledger")},
		"scope": {"ledger.read"}}.Encode()
	exchange := func(side int) func() error {
		s := servers[side]
		hc := s.Client()
		hc.Transport.(*http.Transport).MaxIdleConnsPerHost = 256
		return func() error {
			resp, err := hc.Post(s.URL+"/tenants/"+tenantName+"/token", "application/x-www-form-urlencoded", strings.NewReader(form))
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %d %s", stsSides[side], resp.StatusCode, body)
			}
			return nil
		}
	}
	calls := []func() error{exchange(0), exchange(1), exchange(2)}
	for _, call := range calls { // warm the connections, the keys and the caches
		for range 20 {
			if err := call(); err != nil {
				return err
			}
		}
	}

	fmt.Printf("\ntoken exchange over loopback HTTPS; sides take turns in rounds of 50 per client\n")
	fmt.Printf("  %-8s %-22s %9s %9s %12s\n", "clients", "side", "p50 ms", "p99 ms", "exchanges/s")
	for _, l := range levels {
		res := make([][]time.Duration, len(calls))
		wall := make([]time.Duration, len(calls))
		perClient := max(1, l.creates/l.clients)
		for done := 0; done < perClient; {
			round := min(50, perClient-done)
			for side, call := range calls {
				lat, took, err := timeExchanges(ctx, call, l.clients, round)
				if err != nil {
					return err
				}
				res[side] = append(res[side], lat...)
				wall[side] += took
			}
			done += round
		}
		var p99 []time.Duration
		for side := range calls {
			slices.Sort(res[side])
			lt := latencies{sorted: res[side]}
			p99 = append(p99, lt.pct(0.99))
			fmt.Printf("  %-8d %-22s %9s %9s %12.0f\n", l.clients, stsSides[side], ms(lt.pct(0.5)), ms(lt.pct(0.99)),
				float64(len(res[side]))/wall[side].Seconds())
		}
		r := float64(p99[1]) / float64(p99[0])
		fmt.Printf("  %-8d %-22s %8.2fx  goal <= %.1fx: %s;  cold ÷ floor %.2fx\n", l.clients, "warm p99 ÷ floor p99", r, stsGoal,
			verdict(r <= stsGoal), float64(p99[2])/float64(p99[0]))
	}
	fmt.Println()
	return nil
}

// timeExchanges makes n exchanges on each of clients goroutines and returns
// each one's latency and the wall time of all.
func timeExchanges(ctx context.Context, call func() error, clients, n int) ([]time.Duration, time.Duration, error) {
	var mu sync.Mutex
	var out []time.Duration
	start := time.Now()
	err := parallel(ctx, clients, clients*n, func(_ context.Context, _ int) error {
		t := time.Now()
		if err := call(); err != nil {
			return err
		}
		d := time.Since(t)
		mu.Lock()
		out = append(out, d)
		mu.Unlock()
		return nil
	})
	return out, time.Since(start), err
}

// floorHandler is the least an exchange can be: parse the same form,
// verify the same subject token (ES256, a known key, iss, aud, exp), sign
// the same claims with the same issuer, answer the same JSON.
func floorHandler(idpKey *ecdsa.PublicKey, idpURL string, issuer *sts.Issuer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, perr := sts.ParseExchangeRequest(w, r)
		if perr != nil {
			sts.WriteError(w, perr)
			return
		}
		jws, err := jose.ParseSigned(req.SubjectToken, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		payload, err := jws.Verify(idpKey)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var c struct {
			Iss, Sub, Aud, Sid, Jti, Scope string
			Exp                            int64
		}
		if err := json.Unmarshal(payload, &c); err != nil || c.Iss != idpURL || c.Aud != "custos-sts" || time.Now().Unix() >= c.Exp {
			http.Error(w, "subject token refused", http.StatusBadRequest)
			return
		}
		now := time.Now()
		claims := sts.Claims{Subject: c.Sub, Audience: req.Target(), Scope: req.Scope, Expiry: now.Add(sts.DefaultTTL).Unix(),
			IssuedAt: now.Unix(), NotBefore: now.Unix(), Session: c.Sid, OriginalIssuer: c.Iss, OriginalSubject: c.Sub, Parent: c.Jti,
			Act: &sts.Actor{Subject: "spiffe://cluster.local/ns/bench-sts-agents/sa/agent-invoice"}}
		tok, err := issuer.Mint(claims)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		body, _ := json.Marshal(sts.TokenResponse{AccessToken: tok, IssuedTokenType: sts.TokenTypeAccessToken, TokenType: "Bearer",
			ExpiresIn: int64(sts.DefaultTTL.Seconds()), Scope: req.Scope})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(body)
	})
}

// benchPersonToken is alice's token from the bench's identity provider.
func benchPersonToken(key *ecdsa.PrivateKey, iss string) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k"}}, nil)
	if err != nil {
		panic(err)
	}
	payload, _ := json.Marshal(map[string]any{"iss": iss, "sub": "alice", "aud": "custos-sts", "exp": time.Now().Add(2 * time.Hour).Unix(),
		"iat": time.Now().Unix(), "scope": "ledger.read", "sid": "s-alice", "jti": "idp-alice"})
	jws, err := signer.Sign(payload)
	if err != nil {
		panic(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}
