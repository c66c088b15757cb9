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
	"math/big"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// noopWebhookServer is an admission webhook that admits every request and
// reads nothing of it but its UID, and changes nothing: what calling any
// webhook costs, served on loopback by the bench itself. It serves a
// validating webhook at url and a mutating one at mutateURL; served counts
// the requests to both, mutated those to mutateURL.
type noopWebhookServer struct {
	url, mutateURL string
	caPEM          []byte
	served         atomic.Int64
	mutated        atomic.Int64
}

// noopMutatePath is the path of the no-op server's mutating webhook.
const noopMutatePath = "/mutate"

// startNoopWebhook serves the no-op webhook on 127.0.0.1 over TLS, with a
// self-signed certificate made for the run, until ctx is done.
func startNoopWebhook(ctx context.Context) (*noopWebhookServer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "custos bench no-op webhook"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	// HTTP/2, as controller-runtime's webhook server (Custos's) offers it:
	// the API server then talks to both alike, and the difference between
	// the two is what the handlers do.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		return nil, err
	}
	s := &noopWebhookServer{
		url:       "https://" + ln.Addr().String() + "/validate",
		mutateURL: "https://" + ln.Addr().String() + noopMutatePath,
		caPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.admit), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			say("no-op webhook: %v", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return s, nil
}

func (s *noopWebhookServer) admit(w http.ResponseWriter, r *http.Request) {
	var review struct {
		Request struct {
			UID string `json:"uid"`
		} `json:"request"`
	}
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.served.Add(1)
	if r.URL.Path == noopMutatePath {
		// Allowed without a patch: the object goes on as it came.
		s.mutated.Add(1)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"apiVersion": "admission.k8s.io/v1",
		"kind":       "AdmissionReview",
		"response":   map[string]any{"uid": review.Request.UID, "allowed": true},
	})
}
