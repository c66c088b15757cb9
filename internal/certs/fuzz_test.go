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

package certs

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// FuzzRenew feeds renew whatever a Secret might hold, since anyone who may
// edit the Secret can put anything there. Whatever it was, renew must not
// panic, must end with a serving certificate that verifies against the
// bundle, and must accept what it made.
func FuzzRenew(f *testing.F) {
	p := testParams()
	seed, err := renew(nil, p, t0)
	if err != nil {
		f.Fatal(err)
	}
	d := seed.data
	f.Add(d[CACertKey], d[CAKeyKey], d[corev1.TLSCertKey], d[corev1.TLSPrivateKeyKey])
	f.Add(d[CACertKey], d[CAKeyKey], []byte{}, []byte{})
	f.Add(d[corev1.TLSCertKey], d[corev1.TLSPrivateKeyKey], d[CACertKey], d[CAKeyKey])
	f.Add(append(append([]byte{}, d[CACertKey]...), d[corev1.TLSCertKey]...), d[CAKeyKey], d[corev1.TLSCertKey], d[CAKeyKey])
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN PRIVATE KEY-----\nMA==\n-----END PRIVATE KEY-----\n"), []byte("x"), []byte(nil))

	f.Fuzz(func(t *testing.T, caCert, caKey, tlsCert, tlsKey []byte) {
		data := map[string][]byte{CACertKey: caCert, CAKeyKey: caKey, corev1.TLSCertKey: tlsCert, corev1.TLSPrivateKeyKey: tlsKey}
		r, err := renew(data, p, t0)
		if err != nil {
			t.Fatalf("renew: %v", err)
		}
		out := data
		if r.data != nil {
			out = r.data
		}
		again, err := renew(out, p, t0)
		if err != nil {
			t.Fatalf("renew again: %v", err)
		}
		if again.data != nil {
			t.Fatalf("renew does not accept what it made: CA %q, certificate %q", again.caReason, again.certReason)
		}
		s := decodeSecret(out)
		if s.leaf == nil || s.caCert == nil {
			t.Fatalf("no certificate after renew: %v, %v", s.leafErr, s.caErr)
		}
		if why := chainsTo(s.leaf, s.caCert, t0); why != "" {
			t.Fatal(why)
		}
	})
}
