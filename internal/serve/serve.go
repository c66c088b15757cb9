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

// Package serve runs an HTTPS service of Custos (custos-sts,
// custos-gateway) beside the controller-runtime manager whose caches it
// reads, and stops it without dropping a request: on SIGTERM the replica
// fails /readyz and serves on for a delay, while every kube-proxy takes it
// out of the Service, then drains, and only then stops the caches the
// requests in flight read.
package serve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// DrainTimeout bounds how long the requests in flight get to finish once
// the replica stops accepting.
const DrainTimeout = 10 * time.Second

// Options say what to serve, and how.
type Options struct {
	// Name is the service's name in logs and in /readyz.
	Name string
	// Manager is started and stopped with the server; its cache must sync
	// before the server is ready.
	Manager manager.Manager
	// Handler serves the requests.
	Handler http.Handler
	// Listen is the address to listen on.
	Listen string
	// CertDir holds tls.crt and tls.key, reloaded when they change.
	CertDir string
	// ShutdownDelay is how long a replica told to stop serves on, not
	// ready, before it drains.
	ShutdownDelay time.Duration
	// WriteTimeout bounds a response; 30 s when 0.
	WriteTimeout time.Duration
	// BeforeServe, when set, runs once the cache has synced, before the
	// first request is served.
	BeforeServe func(ctx context.Context) error
	// Ready, when set, receives the address the server listens on once it
	// serves.
	Ready chan<- string
	Log   logr.Logger
}

// Run serves until stopping ends (SIGTERM) and then shuts down as the
// package says. What the requests need (the manager and its cache) lives
// by a context that ends only once the server drained, or when Run
// returns: everything Run started stops then.
func Run(stopping context.Context, o Options) error {
	ctx, cancel := context.WithCancel(context.WithoutCancel(stopping))
	defer cancel()
	mgr := o.Manager
	watcher, err := certwatcher.New(filepath.Join(o.CertDir, "tls.crt"), filepath.Join(o.CertDir, "tls.key"))
	if err != nil {
		return errors.New("the serving certificate: " + err.Error())
	}
	if err := mgr.Add(watcher); err != nil {
		return err
	}
	l, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return err
	}
	writeTimeout := o.WriteTimeout
	if writeTimeout == 0 {
		writeTimeout = 30 * time.Second
	}
	srv := &http.Server{
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: watcher.GetCertificate},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout,
		MaxHeaderBytes:    64 << 10,
		// Once told to stop, every response closes its connection (HTTP/2:
		// a GOAWAY), so a client that keeps connections alive dials the
		// Service again for its next request and reaches another replica,
		// rather than finding its idle connection closed under it by the
		// drain.
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if stopping.Err() != nil {
				w.Header().Set("Connection", "close")
			}
			o.Handler.ServeHTTP(w, r)
		}),
	}
	// Ready once the cache has synced, and no longer once told to stop: the
	// Service then sends new connections to the other replicas.
	if err := mgr.AddReadyzCheck(o.Name, func(*http.Request) error {
		if stopping.Err() != nil {
			return errors.New("shutting down")
		}
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("the cache has not synced")
		}
		return nil
	}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}

	var mgrErr, srvErr error
	managed, served := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(managed)
		mgrErr = mgr.Start(ctx)
	}()
	go func() {
		defer close(served)
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			_ = l.Close()
			return
		}
		if o.BeforeServe != nil {
			if err := o.BeforeServe(ctx); err != nil {
				o.Log.Error(err, "Before serving")
			}
		}
		if o.Ready != nil {
			o.Ready <- l.Addr().String()
		}
		o.Log.Info("Serving", "address", l.Addr().String())
		if err := srv.ServeTLS(l, "", ""); !errors.Is(err, http.ErrServerClosed) {
			srvErr = err
		}
	}()

	// The shutdown, on SIGTERM. The pod leaves the Service's endpoints when
	// it is deleted, but every node's kube-proxy learns it a moment later:
	// serve on, not ready, for the delay, while the clients' kept-alive
	// connections close one by one (above). Then stop accepting and let the
	// requests in flight finish (srv.Shutdown drops a request that arrives
	// after it began, hence the delay), with the manager and the cache they
	// read still running; only then stop the manager. Should the manager or
	// the server stop on their own, the rest stops at once.
	select {
	case <-stopping.Done():
		o.Log.Info("Stopping: not ready; draining after the delay", "delay", o.ShutdownDelay)
		select {
		case <-time.After(o.ShutdownDelay):
		case <-managed:
		}
	case <-managed:
	case <-served:
	}
	drain, stop := context.WithTimeout(context.Background(), DrainTimeout)
	defer stop()
	if err := srv.Shutdown(drain); err != nil {
		o.Log.Error(err, "Requests still in flight were cut off")
	}
	cancel()
	<-served
	<-managed
	return errors.Join(mgrErr, srvErr)
}

// RootCAs is the system's CA pool (an empty one where the system has
// none) with the PEM certificates of caFile added, when it is set: what a
// Custos service trusts when it calls out over TLS.
func RootCAs(caFile string) (*x509.CertPool, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if caFile == "" {
		return roots, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	return roots, nil
}
