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
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/sts"
)

// TestReplicaKilledUnderLoad: two replicas behind a Service serve ten
// clients that exchange tokens without pause over kept-alive connections;
// one replica is stopped as Kubernetes stops a pod (SIGTERM, and its
// endpoint removed a moment later) in the middle of it. No exchange is
// lost: every request sent gets its token, every token verifies with the
// surviving replica's keys, and the two audit trails together record each
// exchange once, on the trail of the replica that answered it.
func TestReplicaKilledUnderLoad(t *testing.T) {
	// endpointsLag is how long after the SIGTERM the Service stops routing
	// new connections to the stopped replica, as kube-proxy does once the
	// pod's deletion reaches it; the replica's --shutdown-delay covers it.
	const clients, endpointsLag, shutdownDelay = 10, 100 * time.Millisecond, 500 * time.Millisecond
	delayed := func(o *options) { o.shutdownDelay = shutdownDelay }
	w := newWorld(t)
	dir := t.TempDir()
	auditDirs := []string{filepath.Join(dir, "audit-0"), filepath.Join(dir, "audit-1")}
	svc := newService(w, w.start(auditDirs[0], delayed), w.start(auditDirs[1], delayed))
	killed, survivor := svc.replicas[0], svc.replicas[1]

	// Each client's form (a person's token for the agent) is made here:
	// the world's helpers may fail the test, which only its goroutine may.
	forms := make([]string, clients)
	for i := range forms {
		forms[i] = w.exchangeForm("alice").Encode()
	}
	var (
		mu      sync.Mutex
		results []result
		stopped atomic.Bool // once the killed replica got its SIGTERM
		after   [2]int      // exchanges answered by each replica since
	)
	load, endLoad := context.WithCancel(context.Background())
	defer endLoad()
	var wg sync.WaitGroup
	began := time.Now()
	for i := range clients {
		wg.Go(func() {
			c := svc.client()
			defer c.CloseIdleConnections()
			for load.Err() == nil {
				r := svc.exchange(c, forms[i])
				mu.Lock()
				results = append(results, r)
				if r.err == nil && stopped.Load() {
					after[r.replica]++
				}
				mu.Unlock()
			}
		})
	}

	time.Sleep(time.Second)
	stopped.Store(true)
	stopAt := time.Now()
	stopErr := make(chan error, 1)
	go func() { stopErr <- killed.stop() }()
	time.Sleep(endpointsLag)
	svc.unlist(0)
	if err := <-stopErr; err != nil {
		t.Errorf("the stopped replica's run returned %v", err)
	}
	t.Logf("the stopped replica's run returned %s after its SIGTERM", time.Since(stopAt).Round(time.Millisecond))
	time.Sleep(1500 * time.Millisecond)
	endLoad()
	wg.Wait()
	elapsed := time.Since(began)

	var served [2]int
	var lost []error
	tokens := map[string]int{} // jti → the replica that answered
	var jwts []string
	for _, r := range results {
		if r.err != nil {
			lost = append(lost, r.err)
			continue
		}
		served[r.replica]++
		tokens[r.jti] = r.replica
		jwts = append(jwts, r.token)
	}
	t.Logf("%d exchanges in %s by %d clients: %d answered by the stopped replica (%d after its SIGTERM), %d by the other (%d then); "+
		"%d connections refused by a replica still in the endpoints; %d lost",
		len(results), elapsed.Round(time.Millisecond), clients, served[0], after[0], served[1], after[1], svc.refused.Load(), len(lost))
	for i, err := range lost {
		if i == 5 {
			t.Errorf("... and %d more", len(lost)-5)
			break
		}
		t.Errorf("lost exchange: %v", err)
	}
	if n := svc.refused.Load(); n > 0 {
		t.Errorf("a replica still in the Service's endpoints refused %d connections: a real Service's clients would have got "+
			"those errors (the replica stopped listening before the Service stopped routing to it)", n)
	}
	if served[0] == 0 || served[1] == 0 || after[1] == 0 {
		t.Errorf("exchanges answered: %v, %v after the SIGTERM; want both replicas to serve, and the survivor after", served, after)
	}
	if len(tokens) != len(jwts) {
		t.Errorf("%d tokens but %d distinct jti", len(jwts), len(tokens))
	}

	// Every token verifies with the surviving replica's keys, those of
	// the stopped one included: the replicas share them.
	var jwks jose.JSONWebKeySet
	getJSON(t, w.https, survivor.base+"/jwks", &jwks)
	unverified := 0
	for _, tok := range jwts {
		if err := verifyToken(tok, &jwks); err != nil {
			if unverified++; unverified <= 3 {
				t.Errorf("a token does not verify with the surviving replica's JWKS: %v", err)
			}
		}
	}

	// Each exchange answered is on the trail of the replica that answered
	// it, once; and no exchange was made whose answer did not arrive.
	if err := survivor.stop(); err != nil {
		t.Errorf("the surviving replica's run returned %v", err)
	}
	recorded := map[string]int{} // jti → the replica whose trail holds it
	for i, d := range auditDirs {
		report, err := audit.Verify(d, audit.VerifyOptions{SkipSignatures: true, AllowOpenTail: true,
			OnRecord: func(_ string, _ int, r *audit.Record) {
				if r.Action != audit.ActionTokenExchanged {
					return
				}
				jti := r.Details["jti"]
				if _, twice := recorded[jti]; twice {
					t.Errorf("jti %s is recorded twice", jti)
				}
				recorded[jti] = i
			}})
		if err != nil {
			t.Errorf("replica %d's audit trail: %+v, %v", i, report, err)
		}
	}
	var missing, unanswered int
	for jti, replica := range tokens {
		if at, ok := recorded[jti]; !ok || at != replica {
			missing++
		}
	}
	for jti := range recorded {
		if _, ok := tokens[jti]; !ok {
			unanswered++
		}
	}
	if missing > 0 || unanswered > 0 {
		t.Errorf("the audit trails record %d exchanges for %d tokens answered: %d answered are not on the answering replica's trail, "+
			"%d recorded were never answered", len(recorded), len(tokens), missing, unanswered)
	}
}

// service stands for a Kubernetes Service in front of the replicas, as
// kube-proxy routes it: each new connection goes to the next replica in
// the endpoints, in turn; a kept-alive connection stays with its replica
// until either side closes it. A replica that refuses a connection or
// resets it in the TLS handshake, before any request was sent, is passed
// over for the next one; such a refusal by a replica still in the
// endpoints is counted, since a real Service's client would get it. A
// request that was sent is never sent again: if its answer does not come,
// the exchange is lost (a retry would hide just what the test looks for).
type service struct {
	replicas  []*replica
	tlsConfig *tls.Config
	// url is the tenant's token endpoint, as clients name it.
	url  string
	next atomic.Uint64
	// refused counts the connections refused by a replica in the
	// endpoints.
	refused atomic.Int64

	mu       sync.Mutex
	unlisted map[int]bool // replicas out of the endpoints
}

func newService(w *world, replicas ...*replica) *service {
	tlsConfig := w.https.Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsConfig.ServerName = "127.0.0.1"
	return &service{replicas: replicas, tlsConfig: tlsConfig, unlisted: map[int]bool{},
		url: "https://custos-sts.test/tenants/" + w.tenant + "/token"}
}

// unlist takes replica k out of the endpoints.
func (s *service) unlist(k int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unlisted[k] = true
}

func (s *service) listed(k int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.unlisted[k]
}

// client is one client's: its own kept-alive connection, through the
// Service.
func (s *service) client() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialTLSContext: s.dial}}
}

// dial connects to the next replica in the endpoints that takes the
// connection.
func (s *service) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	first := int(s.next.Add(1))
	var errs []error
	for i := range s.replicas {
		k := (first + i) % len(s.replicas)
		if !s.listed(k) {
			continue
		}
		raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.replicas[k].addr)
		if err == nil {
			c := tls.Client(raw, s.tlsConfig)
			if err = c.HandshakeContext(ctx); err == nil {
				return c, nil
			}
			_ = raw.Close()
		}
		s.refused.Add(1)
		errs = append(errs, fmt.Errorf("replica %d: %w", k, err))
	}
	return nil, errors.Join(errs...)
}

// result is one exchange: the replica that answered and the token it
// issued, or why the exchange was lost.
type result struct {
	replica    int
	token, jti string
	err        error
}

// exchange sends the exchange form through the Service with c.
func (s *service) exchange(c *http.Client, form string) result {
	var err error
	for range 3 {
		var sent atomic.Bool
		var to atomic.Value // the replica's address
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn:      func(i httptrace.GotConnInfo) { to.Store(i.Conn.RemoteAddr().String()) },
			WroteRequest: func(httptrace.WroteRequestInfo) { sent.Store(true) }})
		var req *http.Request
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, s.url, strings.NewReader(form))
		if err != nil {
			return result{replica: -1, err: err}
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		var resp *http.Response
		resp, err = c.Do(req)
		if err != nil && !sent.Load() {
			continue // no replica got it: send it again
		}
		k := slices.IndexFunc(s.replicas, func(r *replica) bool { return r.addr == to.Load() })
		if err != nil {
			return result{replica: k, err: fmt.Errorf("replica %d: sent, no answer: %w", k, err)}
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return result{replica: k, err: fmt.Errorf("replica %d: reading the answer: %w", k, err)}
		}
		var tok sts.TokenResponse
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" {
			return result{replica: k, err: fmt.Errorf("replica %d: %d %s", k, resp.StatusCode, body)}
		}
		jti, err := unverifiedJTI(tok.AccessToken)
		if err != nil {
			return result{replica: k, err: fmt.Errorf("replica %d: %w", k, err)}
		}
		return result{replica: k, token: tok.AccessToken, jti: jti}
	}
	return result{replica: -1, err: fmt.Errorf("no replica took the exchange: %w", err)}
}

func unverifiedJTI(token string) (string, error) {
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return "", err
	}
	return jtiOf(jws.UnsafePayloadWithoutVerification())
}

func verifyToken(token string, jwks *jose.JSONWebKeySet) error {
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return err
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := jwks.Key(kid)
	if len(keys) != 1 {
		return fmt.Errorf("kid %q is not in the JWKS", kid)
	}
	_, err = jws.Verify(keys[0].Key)
	return err
}

func jtiOf(payload []byte) (string, error) {
	var c struct {
		ID string `json:"jti"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.ID == "" {
		return "", fmt.Errorf("a token without a jti: %s", payload)
	}
	return c.ID, nil
}
