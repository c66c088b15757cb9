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

package ha

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"
)

// proxy stands in for the webhook Service and kube-proxy: it spreads the
// API server's connections over the replicas' webhook ports on loopback and
// skips a replica that refuses connections, as a Service drops an endpoint
// that is not ready.
type proxy struct {
	l        net.Listener
	mu       sync.Mutex
	backends []int
	next     int
}

// startProxy listens on port (where the API server sends admission
// requests) until the test ends.
func startProxy(t *testing.T, port int) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("the webhook proxy cannot listen on %d: %v", port, err)
	}
	p := &proxy{l: l}
	t.Cleanup(func() { _ = l.Close() })
	go p.serve()
	return p
}

// addBackend adds a replica's webhook port.
func (p *proxy) addBackend(port int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backends = append(p.backends, port)
}

func (p *proxy) serve() {
	for {
		conn, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.forward(conn)
	}
}

// forward connects conn to the next replica that accepts a connection.
func (p *proxy) forward(conn net.Conn) {
	defer conn.Close()
	p.mu.Lock()
	ports := append([]int(nil), p.backends...)
	start := p.next
	p.next++
	p.mu.Unlock()
	var backend net.Conn
	for i := range ports {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(ports[(start+i)%len(ports)]))
		if err == nil {
			backend = c
			break
		}
	}
	if backend == nil {
		return
	}
	defer backend.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tcp, ok := dst.(*net.TCPConn); ok {
			_ = tcp.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(backend, conn)
	go pipe(conn, backend)
	<-done
	<-done
}

// yamlToObject decodes a manifest.
func yamlToObject(data []byte, obj any) error {
	if len(data) == 0 {
		return errors.New("empty manifest")
	}
	return yaml.UnmarshalStrict(data, obj)
}
