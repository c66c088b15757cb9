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
	"context"
	"crypto"
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	clocktesting "k8s.io/utils/clock/testing"
)

// testKey returns a fixed Ed25519 signer and its public key.
func testKey(t testing.TB, seed byte) (Signer, crypto.PublicKey) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(make32(seed))
	s, err := NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, priv.Public()
}

func make32(b byte) []byte {
	s := make([]byte, 32)
	for i := range s {
		s[i] = b + byte(i)
	}
	return s
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

// logOption changes the Options newTestLog builds.
type logOption func(*Options)

func withSinks(s ...Sink) logOption { return func(o *Options) { o.Sinks = s } }
func withSigner(s Signer) logOption { return func(o *Options) { o.Signer = s } }
func withEvery(n int) logOption     { return func(o *Options) { o.CheckpointEvery = n } }
func withClock(c clock2) logOption  { return func(o *Options) { o.Clock = c } }
func withBuffer(dir string, max int64) logOption {
	return func(o *Options) { o.BufferDir, o.BufferMaxBytes = dir, max }
}

type clock2 = *clocktesting.FakeClock

// newTestLog opens a Log with a fake clock, a fresh registry and a
// temporary buffer directory.
func newTestLog(t testing.TB, opts ...logOption) (*Log, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o := Options{
		Sinks:      []Sink{NewMemorySink()},
		Clock:      clocktesting.NewFakeClock(t0),
		Logger:     testr.New(t.(*testing.T)),
		Registerer: reg,
		BufferDir:  t.TempDir(),
	}
	for _, f := range opts {
		f(&o)
	}
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return l, reg
}

// event is a realistic event numbered i.
func event(i int) Event {
	return Event{
		Action:   ActionLeaseIssued,
		Actor:    Actor{Kind: ActorController, Name: "custos-controller-manager", Groups: []string{"system:serviceaccounts", "system:authenticated"}},
		Subject:  Subject{Kind: "Agent", Namespace: "finance-agents", Name: fmt.Sprintf("invoice-reconciler-%d", i), UID: "0f3c1c8e-5d2b-4b8e-9d8a-3f0c2a1b9e77", Tenant: "acme-finance"},
		Decision: DecisionAllow,
		Reason:   "credential ledger-api issued for 10m",
		Policy:   "lease/ttl",
		TraceID:  "4bf92f3577b34da6a3ce929d0e0e4736",
		Details:  map[string]string{"credentialName": "ledger-api", "ttl": "10m", "n": fmt.Sprint(i)},
	}
}

func record(t testing.TB, l *Log, n int) {
	t.Helper()
	for i := range n {
		l.Record(context.Background(), event(i))
	}
}

func flush(t testing.TB, l *Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	NewWithT(t).Expect(l.Flush(ctx)).To(Succeed())
}

func logrDiscard() logr.Logger { return logr.Discard() }
