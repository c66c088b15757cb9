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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// make dev's TLS: a CA made for the run, whose private key is never
// written down, and the serving certificates it signs: one for 127.0.0.1
// that the identity provider, custos-sts and custos-gateway serve, and one
// for the sample tool server under its Service's name. Clients trust the
// CA (custos-sts through --trusted-issuers-ca-file, custos-gateway through
// --sts-ca-file and --upstream-ca-file, curl through --cacert).
const (
	tlsDirName = "tls"
	caFileName = "ca.crt"
)

// loopbackTLS is what writeLoopbackTLS made.
type loopbackTLS struct {
	// Dir holds ca.crt, and tls.crt and tls.key as custos-sts's
	// --tls-cert-dir wants them.
	Dir string
	// CAFile is the CA's certificate, PEM.
	CAFile string
	// Cert is the serving certificate, for servers in this process.
	Cert tls.Certificate
	// Roots trust the CA alone, for clients in this process.
	Roots *x509.CertPool

	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

// writeLoopbackTLS makes a CA and a serving certificate for 127.0.0.1 and
// localhost, writes them into devDir/tls and returns them.
func writeLoopbackTLS(devDir string) (*loopbackTLS, error) {
	dir := filepath.Join(devDir, tlsDirName)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "custos make dev CA"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(30 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	t := &loopbackTLS{Dir: dir, CAFile: filepath.Join(dir, caFileName), Roots: x509.NewCertPool(), ca: ca, caKey: caKey}
	t.Roots.AddCert(ca)
	certPEM, keyPEM, err := t.issue("127.0.0.1", []net.IP{net.IPv4(127, 0, 0, 1)}, "localhost")
	if err != nil {
		return nil, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{caFileName, caPEM, 0o644}, {"tls.crt", certPEM, 0o644}, {"tls.key", keyPEM, 0o600}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, err
		}
	}
	if t.Cert, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, err
	}
	return t, nil
}

// serverCert is a serving certificate of the CA for dnsNames, for a
// server in this process; nothing of it is written down.
func (t *loopbackTLS) serverCert(dnsNames ...string) (tls.Certificate, error) {
	certPEM, keyPEM, err := t.issue(dnsNames[0], nil, dnsNames...)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// issue signs a serving certificate for ips and dnsNames with a new key,
// and returns both in PEM.
func (t *loopbackTLS) issue(commonName string, ips []net.IP, dnsNames ...string) (certPEM, keyPEM []byte, err error) {
	now := time.Now()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: commonName},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(30 * 24 * time.Hour),
		IPAddresses: ips, DNSNames: dnsNames,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, t.ca, &key.PublicKey, t.caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}
