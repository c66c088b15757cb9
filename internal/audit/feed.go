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
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The audit feed: a component (custos-gateway, custos-sts) serves its own
// trail, read from its segment store, to the manager's evaluator, which
// cannot reach the component's volume. GET FeedPath?from=N&max=M answers
// the records of seq N and after, at most M, one JSON object a line.
//
// Only a reader the component was told of (FeedHandler.Readers, the
// manager's ServiceAccount) is answered, authenticated by the API server
// (a TokenReview) with a token of audience FeedAudience: a token minted
// for the feed is good for nothing else, and the manager's own token is
// never sent. The component serves the feed on its TLS listener, whose
// certificate the reader verifies against the component's Service name.
const (
	FeedPath     = "/audit/v1/records"
	FeedAudience = "custos-audit-feed"
	// FeedMaxRecords is the most records one answer holds.
	FeedMaxRecords = 10000
	// FeedKeep is how long a segment the reader has read is kept: more
	// than the longest window of the trail's records (refusals, an hour).
	FeedKeep = 2 * time.Hour
	// feedMaxBytes is the most of an answer a reader reads.
	feedMaxBytes = 256 << 20
)

// FeedHandler serves a segment store's records to the readers allowed.
type FeedHandler struct {
	Store *StoreReader
	// Readers are the usernames answered
	// (system:serviceaccount:<namespace>:<name>).
	Readers []string
	// Reviews authenticates the bearer token (TokenReview).
	Reviews client.Client

	// The feed shares a port agents reach: what the API server said of a
	// token is kept (a minute when it authenticated, ten seconds when not),
	// and tokens it has not seen are reviewed at most feedReviewRate a
	// second, so that no caller makes the component flood the API server.
	mu      sync.Mutex
	seen    map[[32]byte]feedReview
	limiter *rate.Limiter
	// asked is one more than the highest from a reader asked for: it has
	// read, and committed, the records before it asks from (DrainFeed).
	asked atomic.Uint64
}

type feedReview struct {
	user  string
	ok    bool
	until time.Time
}

const (
	feedReviewRate  = 5
	feedReviewsKept = 256
)

// review says who token is, for audience FeedAudience ("" when the API
// server does not authenticate it), from what is kept when it can.
func (h *FeedHandler) review(ctx context.Context, token string) (user string, status int, err error) {
	key := sha256.Sum256([]byte(token))
	now := time.Now()
	h.mu.Lock()
	if h.seen == nil {
		h.seen, h.limiter = map[[32]byte]feedReview{}, rate.NewLimiter(feedReviewRate, 2*feedReviewRate)
	}
	if r, ok := h.seen[key]; ok && now.Before(r.until) {
		h.mu.Unlock()
		if !r.ok {
			return "", http.StatusUnauthorized, nil
		}
		return r.user, 0, nil
	}
	allowed := h.limiter.Allow()
	h.mu.Unlock()
	if !allowed {
		return "", http.StatusTooManyRequests, errors.New("too many tokens to review: try again")
	}
	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{FeedAudience}}}
	if err := h.Reviews.Create(ctx, tr); err != nil {
		return "", http.StatusServiceUnavailable, errors.New("the API server could not review the token")
	}
	ok := tr.Status.Authenticated && slices.Contains(tr.Status.Audiences, FeedAudience)
	r := feedReview{user: tr.Status.User.Username, ok: ok, until: now.Add(10 * time.Second)}
	if ok {
		r.until = now.Add(time.Minute)
	}
	h.mu.Lock()
	if len(h.seen) >= feedReviewsKept {
		for k := range h.seen {
			delete(h.seen, k)
			break
		}
	}
	h.seen[key] = r
	h.mu.Unlock()
	if !ok {
		return "", http.StatusUnauthorized, nil
	}
	return r.user, 0, nil
}

func (h *FeedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		http.Error(w, "a bearer token of audience "+FeedAudience+" is required", http.StatusUnauthorized)
		return
	}
	user, status, err := h.review(r.Context(), token)
	switch {
	case err != nil:
		http.Error(w, err.Error(), status)
		return
	case status != 0:
		http.Error(w, "the API server does not authenticate the token for audience "+FeedAudience, status)
		return
	}
	if !slices.Contains(h.Readers, user) {
		http.Error(w, user+" may not read this trail", http.StatusForbidden)
		return
	}
	q := r.URL.Query()
	from, err := strconv.ParseUint(q.Get("from"), 10, 64)
	if err != nil {
		http.Error(w, "from: want a sequence number", http.StatusBadRequest)
		return
	}
	limit := FeedMaxRecords
	if v := q.Get("max"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			limit = min(n, FeedMaxRecords)
		}
	}
	for {
		if old := h.asked.Load(); from+1 <= old || h.asked.CompareAndSwap(old, from+1) {
			break
		}
	}
	records, err := h.Store.Read(from, limit)
	if err != nil {
		http.Error(w, "reading the trail: "+err.Error(), http.StatusInternalServerError)
		return
	}
	// The reader has what is before from; what it may read back after a
	// restart (its windows, an hour) stays.
	if _, err := h.Store.PruneRead(from, time.Now().Add(-FeedKeep)); err != nil {
		http.Error(w, "pruning the trail: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/jsonl")
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for i := range records {
		if err := enc.Encode(&records[i]); err != nil {
			return
		}
	}
	_ = bw.Flush()
}

// FeedClient reads a component's trail from its feed.
type FeedClient struct {
	// URL is the component's base URL (https://<pod IP>:<port>).
	URL string
	// HTTP verifies the component's certificate.
	HTTP *http.Client
	// Token is a token of audience FeedAudience.
	Token func(context.Context) (string, error)
}

// Records reads the records of seq from and after, at most max.
func (c *FeedClient) Records(ctx context.Context, from uint64, max int) ([]Record, error) {
	token, err := c.Token(ctx)
	if err != nil {
		return nil, err
	}
	q := url.Values{"from": {strconv.FormatUint(from, 10)}}
	if max > 0 {
		q.Set("max", strconv.Itoa(max))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.URL, "/")+FeedPath+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("%s: %s: %s", c.URL, resp.Status, strings.TrimSpace(string(msg)))
	}
	limit := FeedMaxRecords
	if max > 0 {
		limit = min(max, FeedMaxRecords)
	}
	var out []Record
	sc := bufio.NewScanner(io.LimitReader(resp.Body, feedMaxBytes))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		rec, err := ParseRecord(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.URL, err)
		}
		if len(out) > 0 && rec.Seq != out[len(out)-1].Seq+1 || len(out) == 0 && rec.Seq < from {
			return nil, fmt.Errorf("%s: record seq %d out of order", c.URL, rec.Seq)
		}
		out = append(out, *rec)
		if len(out) > limit {
			return nil, fmt.Errorf("%s: more than the %d records asked for", c.URL, limit)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// FeedToken mints, and renews before it expires, a token of audience
// FeedAudience for a ServiceAccount (the manager's own): TokenRequest, ten
// minutes.
type FeedToken struct {
	Client        client.Client
	Namespace, SA string
	mu            sync.Mutex
	token         string
	expires       time.Time
	now           func() time.Time
}

// Get returns a token with at least two minutes left.
func (t *FeedToken) Get(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now
	if t.now != nil {
		now = t.now
	}
	if t.token != "" && now().Add(2*time.Minute).Before(t.expires) {
		return t.token, nil
	}
	seconds := int64(600)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{FeedAudience}, ExpirationSeconds: &seconds}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: t.SA}}
	if err := t.Client.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", fmt.Errorf("a token of audience %s for ServiceAccount %s/%s: %w", FeedAudience, t.Namespace, t.SA, err)
	}
	if tr.Status.Token == "" {
		return "", errors.New("the API server returned no token")
	}
	t.token, t.expires = tr.Status.Token, tr.Status.ExpirationTimestamp.Time
	return t.token, nil
}

// WithFeed serves the feed of the segment store in cfg.Dir at FeedPath
// beside h, to readers, when cfg writes a segment store and readers are
// given (and returns the feed, for DrainFeed); otherwise h alone. It says
// why not when it cannot.
func WithFeed(h http.Handler, cfg Config, readers []string, reviews client.Client) (http.Handler, *FeedHandler, error) {
	if len(readers) == 0 {
		return h, nil, nil
	}
	if cfg.Sink == SinkStdout || cfg.Dir == "" {
		return nil, nil, fmt.Errorf("--audit-feed-readers serves the trail from its segment store: it needs --audit-sink=%s or %s and --audit-dir", SinkFile, SinkBoth)
	}
	feed := &FeedHandler{Store: &StoreReader{Dir: cfg.Dir}, Readers: readers, Reviews: reviews}
	mux := http.NewServeMux()
	mux.Handle(FeedPath, feed)
	mux.Handle("/", h)
	return mux, feed, nil
}

// DrainFeed serves feed alone on listen, over TLS with the certificate in
// certDir, once the process has stopped serving everything else and closed
// its trail (whose last record is last): until its reader has read that
// record, or for at most timeout. A pod being deleted takes its store with
// it; this leaves the evaluator the records of its last seconds.
func DrainFeed(ctx context.Context, feed *FeedHandler, listen, certDir string, last uint64, timeout time.Duration) (read bool, err error) {
	if feed == nil {
		return true, nil
	}
	if feed.asked.Load() > last {
		return true, nil
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
	if err != nil {
		return false, err
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return false, err
	}
	mux := http.NewServeMux()
	mux.Handle(FeedPath, feed)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	defer func() {
		stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(stop)
	}()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for feed.asked.Load() <= last {
		select {
		case <-deadline.C:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		case <-tick.C:
		}
	}
	return true, nil
}
