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

package evaluate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/custos-dev/custos/internal/audit"
)

// Feed is a component whose pods serve their own trails (audit.FeedPath):
// custos-gateway's, custos-sts's.
type Feed struct {
	// Component names its trails: <Component>/<pod name>.
	Component string
	Namespace string
	Selector  labels.Selector
	// Port is the pods' TLS port (the container's, not a Service's).
	Port int
	// HTTP verifies the pods' certificate (FeedHTTPClient).
	HTTP *http.Client
}

// FeedTrails finds, on each call, the running pods of each feed, and a
// trail for each, read through its feed with a token from token.
func FeedTrails(reader client.Reader, token func(context.Context) (string, error), feeds ...Feed) func(context.Context) ([]Trail, error) {
	return func(ctx context.Context) ([]Trail, error) {
		var trails []Trail
		var errs []error
		for _, f := range feeds {
			var pods corev1.PodList
			if err := reader.List(ctx, &pods, client.InNamespace(f.Namespace), client.MatchingLabelsSelector{Selector: f.Selector}); err != nil {
				errs = append(errs, fmt.Errorf("the pods of %s: %w", f.Component, err))
				continue
			}
			for _, p := range pods.Items {
				if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
					continue
				}
				c := &audit.FeedClient{URL: "https://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(f.Port)), HTTP: f.HTTP, Token: token}
				trails = append(trails, Trail{ID: f.Component + "/" + p.Name, Records: c.Records})
			}
		}
		return trails, errors.Join(errs...)
	}
}

// FeedHTTPClient verifies a component's certificate against the CA in
// caFile, read again for each new connection (a rotated CA is taken at
// once), for serverName (its Service's DNS name: the pods are dialled by
// IP, and any of them holds the Service's certificate).
func FeedHTTPClient(caFile, serverName string) *http.Client {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verified below, against the CA as it is now.
		InsecureSkipVerify: true, //nolint:gosec // VerifyConnection verifies the chain and the name.
		VerifyConnection: func(cs tls.ConnectionState) error {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return err
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return fmt.Errorf("%s holds no PEM certificate", caFile)
			}
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: serverName})
			return err
		},
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}}
}
