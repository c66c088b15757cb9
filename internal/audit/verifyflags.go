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
	"crypto"
	"errors"
	"flag"
	"fmt"
	"os"
)

// VerifyFlags are the command-line flags of the tools that read an audit
// trail (custos-audit, kubectl-custos): the key its checkpoints are signed
// with, or none, and what may be missing at its ends.
type VerifyFlags struct {
	Key                                   string
	NoSignatures, AllowOpen, AllowPartial bool
}

// AddFlags registers --key, --no-signatures, --allow-open and
// --allow-partial on fs.
func (v *VerifyFlags) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&v.Key, "key", "", "The public key (PEM) that signs the checkpoints: custos-audit keygen's audit-public.pem.")
	fs.BoolVar(&v.NoSignatures, "no-signatures", false, "Check everything but the checkpoint signatures (no --key).")
	fs.BoolVar(&v.AllowOpen, "allow-open", false, "Accept a log that does not end with a final checkpoint (a writer still writing it).")
	fs.BoolVar(&v.AllowPartial, "allow-partial", false, "Accept a log that does not start at seq 0 (a file cut from a longer log).")
}

// Options are the VerifyOptions the flags ask for, the key read.
func (v *VerifyFlags) Options() (VerifyOptions, error) {
	opts := VerifyOptions{SkipSignatures: v.NoSignatures, AllowOpenTail: v.AllowOpen, AllowPartial: v.AllowPartial}
	switch {
	case v.Key == "" && !v.NoSignatures:
		return opts, errors.New("--key is required (or --no-signatures to skip the checkpoint signatures)")
	case v.Key != "" && v.NoSignatures:
		return opts, errors.New("--key and --no-signatures exclude each other")
	case v.Key != "":
		data, err := os.ReadFile(v.Key)
		if err != nil {
			return opts, err
		}
		var pub crypto.PublicKey
		if pub, err = ParsePublicKeyPEM(data); err != nil {
			return opts, fmt.Errorf("%s: %v", v.Key, err)
		}
		opts.Key = pub
	}
	return opts, nil
}
