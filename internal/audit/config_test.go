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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/scrypt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestConfigFlags(t *testing.T) {
	g := NewWithT(t)
	var c Config
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	c.AddFlags(fs)
	g.Expect(c.Sink).To(Equal(SinkStdout))
	g.Expect(fs.Parse([]string{"--audit-sink=both", "--audit-dir=/data/audit", "--audit-signing-key-secret=custos-system/audit-key",
		"--audit-checkpoint-every=50", "--audit-checkpoint-interval=30s", "--audit-segment-size=1048576",
		"--audit-buffer-dir=/data/buffer", "--audit-buffer-max-bytes=1024"})).To(Succeed())
	g.Expect(c).To(Equal(Config{Sink: SinkBoth, Dir: "/data/audit", SigningKeySecret: "custos-system/audit-key",
		CheckpointEvery: 50, CheckpointInterval: 30 * time.Second, SegmentSize: 1 << 20, BufferDir: "/data/buffer", BufferMaxBytes: 1024}))
}

func TestOpen(t *testing.T) {
	g := NewWithT(t)
	privPEM, pubPEM, err := GenerateKey()
	g.Expect(err).NotTo(HaveOccurred())
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "custos-system", Name: "audit-key"},
		Data: map[string][]byte{SigningKeyDataKey: privPEM}}
	cl := fake.NewClientBuilder().WithObjects(secret).Build()
	dir := t.TempDir()
	cfg := Config{Sink: SinkFile, Dir: dir, SigningKeySecret: "custos-system/audit-key", CheckpointEvery: 3,
		Registerer: prometheus.NewRegistry()}
	l, err := Open(context.Background(), cfg, cl, logrDiscard())
	g.Expect(err).NotTo(HaveOccurred())
	record(t, l, 7)
	g.Expect(l.Close()).To(Succeed())
	pub, err := ParsePublicKeyPEM(pubPEM)
	g.Expect(err).NotTo(HaveOccurred())
	rep, err := Verify(dir, VerifyOptions{Key: pub})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rep.Checkpoints).To(Equal(3))
	g.Expect(filepath.Join(dir, "buffer")).To(BeADirectory())

	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Sink: "syslog"}, `--audit-sink="syslog": want stdout, file or both`},
		{Config{Sink: SinkFile}, "--audit-dir is required"},
		{Config{Sink: SinkStdout, SigningKeySecret: "audit-key"}, `want namespace/name`},
		{Config{Sink: SinkStdout, SigningKeySecret: "custos-system/missing"}, `audit signing key Secret custos-system/missing: secrets "missing" not found`},
	} {
		tt.cfg.BufferDir = t.TempDir()
		_, err := Open(context.Background(), tt.cfg, cl, logrDiscard())
		g.Expect(err).To(MatchError(ContainSubstring(tt.want)))
	}
	wrong := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "custos-system", Name: "wrong"}, Data: map[string][]byte{"key": privPEM}}
	g.Expect(cl.Create(context.Background(), wrong)).To(Succeed())
	_, err = Open(context.Background(), Config{SigningKeySecret: "custos-system/wrong", BufferDir: t.TempDir()}, cl, logrDiscard())
	g.Expect(err).To(MatchError(`audit signing key Secret custos-system/wrong has no "private.pem" key`))
}

func TestKeys(t *testing.T) {
	g := NewWithT(t)
	_, err := ParsePrivateKeyPEM([]byte("not pem"), nil)
	g.Expect(err).To(MatchError(ContainSubstring("no PEM block")))
	_, err = ParsePublicKeyPEM([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	g.Expect(err).To(MatchError(ContainSubstring(`PEM block "PRIVATE KEY" is not a PUBLIC KEY`)))
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, err = NewSigner(p384)
	g.Expect(err).To(MatchError(ContainSubstring("curve P-384 is not supported")))
}

// A cosign key file (ECDSA P-256, encrypted with scrypt and secretbox)
// signs checkpoints that verify with its public key.
func TestCosignKey(t *testing.T) {
	g := NewWithT(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	der, err := x509.MarshalPKCS8PrivateKey(key)
	g.Expect(err).NotTo(HaveOccurred())
	salt, nonce := make([]byte, 32), [24]byte{1, 2, 3}
	boxKey, err := scrypt.Key([]byte("pw"), salt, 1<<14, 8, 1, 32)
	g.Expect(err).NotTo(HaveOccurred())
	var k [32]byte
	copy(k[:], boxKey)
	body := map[string]any{
		"kdf":        map[string]any{"name": "scrypt", "params": map[string]int{"N": 1 << 14, "r": 8, "p": 1}, "salt": salt},
		"cipher":     map[string]any{"name": "nacl/secretbox", "nonce": nonce[:]},
		"ciphertext": secretbox.Seal(nil, der, &nonce, &k),
	}
	data, _ := json.Marshal(body)
	file := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: data})

	_, err = ParsePrivateKeyPEM(file, []byte("wrong"))
	g.Expect(err).To(MatchError(ContainSubstring("decryption failed (wrong password?)")))
	parsed, err := ParsePrivateKeyPEM(file, []byte("pw"))
	g.Expect(err).NotTo(HaveOccurred())
	signer, err := NewSigner(parsed)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(signer.Algorithm()).To(Equal(AlgorithmECDSAP256))

	path := filepath.Join(t.TempDir(), "audit.jsonl")
	f, err := os.Create(path)
	g.Expect(err).NotTo(HaveOccurred())
	l, _ := newTestLog(t, withSinks(NewWriterSink("f", f)), withSigner(signer), withEvery(2))
	record(t, l, 5)
	g.Expect(l.Close()).To(Succeed())
	_, err = Verify(path, VerifyOptions{Key: &key.PublicKey})
	g.Expect(err).NotTo(HaveOccurred())
	_, edPub := testKey(t, 1)
	_, err = Verify(path, VerifyOptions{Key: edPub})
	g.Expect(err).To(MatchError(ContainSubstring("(signing key replaced)")))
}
