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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

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
)

// FeedHandler serves a segment store's records to the readers allowed.
type FeedHandler struct {
	Store *StoreReader
	// Readers are the usernames answered
	// (system:serviceaccount:<namespace>:<name>).
	Readers []string
	// Reviews authenticates the bearer token (TokenReview).
	Reviews client.Client
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
	review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{FeedAudience}}}
	if err := h.Reviews.Create(r.Context(), review); err != nil {
		http.Error(w, "the API server could not review the token", http.StatusServiceUnavailable)
		return
	}
	if !review.Status.Authenticated || !slices.Contains(review.Status.Audiences, FeedAudience) {
		http.Error(w, "the API server does not authenticate the token for audience "+FeedAudience, http.StatusUnauthorized)
		return
	}
	if !slices.Contains(h.Readers, review.Status.User.Username) {
		http.Error(w, review.Status.User.Username+" may not read this trail", http.StatusForbidden)
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
	records, err := h.Store.Read(from, limit)
	if err != nil {
		http.Error(w, "reading the trail: "+err.Error(), http.StatusInternalServerError)
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
	var out []Record
	sc := bufio.NewScanner(resp.Body)
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
// given; otherwise h alone. It says why not when it cannot.
func WithFeed(h http.Handler, cfg Config, readers []string, reviews client.Client) (http.Handler, error) {
	if len(readers) == 0 {
		return h, nil
	}
	if cfg.Sink == SinkStdout || cfg.Dir == "" {
		return nil, fmt.Errorf("--audit-feed-readers serves the trail from its segment store: it needs --audit-sink=%s or %s and --audit-dir", SinkFile, SinkBoth)
	}
	mux := http.NewServeMux()
	mux.Handle(FeedPath, &FeedHandler{Store: &StoreReader{Dir: cfg.Dir}, Readers: readers, Reviews: reviews})
	mux.Handle("/", h)
	return mux, nil
}
