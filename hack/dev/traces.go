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
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/custos-dev/custos/test/otlptest"
)

// State files of the trace receiver: its OTLP/gRPC endpoint (where
// custos-sts, custos-gateway and custos-dev call send spans) and the URL
// its traces are read back from (<url>/traces/<trace ID>).
const (
	otlpEndpointFileName = "otlp-endpoint"
	tracesURLFileName    = "traces-url"
)

// traceReceiver is make dev's trace collector: an OTLP/gRPC receiver on
// loopback, and its traces served as JSON on another loopback port.
type traceReceiver struct {
	*otlptest.Receiver
	URL   string
	http  *http.Server
	files []string
}

// startTraces starts the receiver and writes its state files.
func startTraces(devDir string) (*traceReceiver, error) {
	rcv, err := otlptest.Start("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		rcv.Stop()
		return nil, err
	}
	t := &traceReceiver{Receiver: rcv, URL: "http://" + l.Addr().String(),
		http: &http.Server{Handler: rcv.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = t.http.Serve(l) }()
	for name, value := range map[string]string{otlpEndpointFileName: rcv.Endpoint(), tracesURLFileName: t.URL} {
		file := filepath.Join(devDir, name)
		t.files = append(t.files, file)
		if err := os.WriteFile(file, []byte(value+"\n"), 0o644); err != nil {
			t.Stop()
			return nil, err
		}
	}
	return t, nil
}

// Args are the flags that send a server's spans here.
func (t *traceReceiver) Args() []string {
	return []string{"--otlp-endpoint", t.Endpoint(), "--otlp-insecure"}
}

// Stop stops serving and removes the state files.
func (t *traceReceiver) Stop() {
	_ = t.http.Close()
	t.Receiver.Stop()
	for _, f := range t.files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			say("removing %s: %v", f, err)
		}
	}
}
