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
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/custos-dev/custos/internal/sts/cluster"
)

// TestRevokedSessionRefusedAtOnce: custos-sts watches the tenant's
// revocation list; once a session is revoked (as kubectl custos revoke
// writes it), the next exchange of a token of it is refused by the
// running replica, with who revoked it and why. The test logs how long
// after the write the first refusal came.
func TestRevokedSessionRefusedAtOnce(t *testing.T) {
	w := newWorld(t)
	r := w.start("")
	form := w.exchangeForm("alice") // sid s-alice
	post := func() (int, string) {
		t.Helper()
		resp, err := w.https.PostForm(r.base+"/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := post(); code != http.StatusOK {
		t.Fatalf("alice's exchange before any revocation: %d %s", code, body)
	}
	now := time.Now()
	if err := cluster.Revoke(context.Background(), env.c, w.system, w.tenant, cluster.Revocation{Kind: cluster.RevokeSession,
		Value: "s-alice", Until: metav1.NewTime(now.Add(time.Hour)), By: "ola", Reason: "laptop stolen"}, now); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	deadline := written.Add(10 * time.Second)
	for {
		code, body := post()
		if code == http.StatusBadRequest {
			var e struct {
				Code        string `json:"error"`
				Description string `json:"error_description"`
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Code != "invalid_request" ||
				!strings.Contains(e.Description, "session s-alice was revoked at ") || !strings.Contains(e.Description, "by ola: laptop stolen") {
				t.Fatalf("the refusal: %s, want invalid_request naming the revocation", body)
			}
			t.Logf("the first refusal came %s after the revocation was written", time.Since(written).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still exchanging alice's revoked session 10 s after the revocation: %d %s", code, body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// alice's other session goes on.
	form.Set("subject_token", w.idp.Token(t, "alice", "custos-sts", time.Now().Add(time.Hour),
		map[string]any{"scp": nil, "scope": "ledger.read", "sid": "s-alice-phone", "jti": "jti-alice-phone"}))
	if code, body := post(); code != http.StatusOK {
		t.Errorf("alice's exchange in a session nobody revoked: %d %s", code, body)
	}
}
