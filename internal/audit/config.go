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
	"errors"
	"flag"
	"fmt"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Values of --audit-sink.
const (
	SinkStdout = "stdout"
	SinkFile   = "file"
	SinkBoth   = "both"
)

// The signing Secret's data keys.
const (
	// SigningKeyDataKey holds the checkpoint signing key: an Ed25519 or
	// ECDSA P-256 private key in PKCS#8 PEM ("PRIVATE KEY", as
	// `custos-audit keygen` writes it), or a cosign key file.
	SigningKeyDataKey = "private.pem"
	// SigningKeyPasswordDataKey holds the password of a cosign key file,
	// when the key is one.
	SigningKeyPasswordDataKey = "password"
)

// Config is the manager's audit configuration, from its flags.
type Config struct {
	// Sink is SinkStdout, SinkFile or SinkBoth.
	Sink string
	// Dir is the segment store's directory (file and both).
	Dir string
	// SigningKeySecret is "namespace/name" of the Secret holding the
	// checkpoint signing key; empty writes no checkpoints.
	SigningKeySecret string
	// CheckpointEvery and CheckpointInterval: see Options.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// SegmentSize: see StoreOptions.
	SegmentSize int64
	// BufferDir and BufferMaxBytes: see Options.
	BufferDir      string
	BufferMaxBytes int64

	// Registerer registers the metrics (controller-runtime's
	// metrics.Registry in the manager); nil registers none.
	Registerer prometheus.Registerer
	// Clock is for tests; nil is the real clock.
	Clock clock.WithTicker
}

// AddFlags registers the --audit-* flags on fs, with defaults.
func (c *Config) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Sink, "audit-sink", SinkStdout, "Where audit records go: stdout (JSON lines, for log shippers), file (the segment store in --audit-dir) or both.")
	fs.StringVar(&c.Dir, "audit-dir", "/var/lib/custos/audit", "The audit segment store's directory (a persistent volume), for --audit-sink=file or both.")
	fs.StringVar(&c.SigningKeySecret, "audit-signing-key-secret", "", "namespace/name of the Secret whose \""+SigningKeyDataKey+"\" holds the Ed25519 (or ECDSA P-256, or cosign) private key that signs audit checkpoints; empty: no checkpoints.")
	fs.IntVar(&c.CheckpointEvery, "audit-checkpoint-every", 1000, "Sign a checkpoint after this many audit records.")
	fs.DurationVar(&c.CheckpointInterval, "audit-checkpoint-interval", time.Minute, "Sign a checkpoint at least this often while audit records are added.")
	fs.Int64Var(&c.SegmentSize, "audit-segment-size", 64<<20, "Seal an audit segment and start the next at this size, in bytes.")
	fs.StringVar(&c.BufferDir, "audit-buffer-dir", "", "Where records wait for an audit sink that is down; empty: <audit-dir>/buffer for the file sinks, else a directory in the temporary directory.")
	fs.Int64Var(&c.BufferMaxBytes, "audit-buffer-max-bytes", 64<<20, "The most bytes of records buffered per audit sink; beyond it records are dropped, counted in custos_audit_records_dropped_total and logged.")
}

// SecretReader reads Secrets; the manager passes its API reader
// (mgr.GetAPIReader()), since the Secret is read once, before the caches
// start, and needs only "get" on it.
type SecretReader = client.Reader

// Open builds the Log that cfg describes, reading the signing key from its
// Secret with secrets (which may be nil when no Secret is configured).
func Open(ctx context.Context, cfg Config, secrets SecretReader, log logr.Logger) (*Log, error) {
	opts := Options{
		CheckpointEvery: cfg.CheckpointEvery, CheckpointInterval: cfg.CheckpointInterval,
		BufferDir: cfg.BufferDir, BufferMaxBytes: cfg.BufferMaxBytes,
		Logger: log, Registerer: cfg.Registerer, Clock: cfg.Clock,
	}
	if cfg.CheckpointEvery <= 0 {
		opts.CheckpointEvery = -1
	}
	if cfg.CheckpointInterval <= 0 {
		opts.CheckpointInterval = -1
	}
	useStdout, useFile := false, false
	switch cfg.Sink {
	case SinkStdout, "":
		useStdout = true
	case SinkFile:
		useFile = true
	case SinkBoth:
		useStdout, useFile = true, true
	default:
		return nil, fmt.Errorf("--audit-sink=%q: want %s, %s or %s", cfg.Sink, SinkStdout, SinkFile, SinkBoth)
	}
	if useFile {
		if cfg.Dir == "" {
			return nil, errors.New("--audit-dir is required with --audit-sink=file or both")
		}
		store, err := OpenSegmentStore(cfg.Dir, StoreOptions{SegmentSize: cfg.SegmentSize})
		if err != nil {
			return nil, err
		}
		opts.Sinks = append(opts.Sinks, store)
		if opts.BufferDir == "" {
			opts.BufferDir = cfg.Dir + "/buffer"
		}
	}
	if useStdout {
		// A closed standard output must fail the sink's writes (EPIPE),
		// which the Log buffers, rather than kill the process with
		// SIGPIPE as Go does for fd 1 by default.
		signal.Ignore(syscall.SIGPIPE)
		opts.Sinks = append(opts.Sinks, NewStdoutSink())
	}
	if cfg.SigningKeySecret != "" {
		signer, err := signerFromSecret(ctx, secrets, cfg.SigningKeySecret)
		if err != nil {
			return nil, err
		}
		opts.Signer = signer
	}
	return New(opts)
}

func signerFromSecret(ctx context.Context, secrets SecretReader, ref string) (Signer, error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("--audit-signing-key-secret=%q: want namespace/name", ref)
	}
	if secrets == nil {
		return nil, errors.New("audit: no client to read the signing key Secret with")
	}
	var s corev1.Secret
	if err := secrets.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		return nil, fmt.Errorf("audit signing key Secret %s: %w", ref, err)
	}
	data, ok := s.Data[SigningKeyDataKey]
	if !ok {
		return nil, fmt.Errorf("audit signing key Secret %s has no %q key", ref, SigningKeyDataKey)
	}
	key, err := ParsePrivateKeyPEM(data, s.Data[SigningKeyPasswordDataKey])
	if err != nil {
		return nil, fmt.Errorf("Secret %s: %w", ref, err)
	}
	return NewSigner(key)
}
