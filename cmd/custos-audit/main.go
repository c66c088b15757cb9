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

// Command custos-audit verifies Custos audit logs offline and makes the keys
// that sign their checkpoints.
//
//	custos-audit verify --key audit-public.pem DIR|FILE
//	custos-audit prove --key audit-public.pem --seq N DIR|FILE
//	custos-audit keygen [--out-dir DIR]
//	custos-audit freezes --key audit-public.pem --trail ID=DIR|FILE ... DIR|FILE
//
// verify exits 0 and prints "ok: …" when the log is intact, and exits 1
// and prints the first problem, as file:line: record seq N: what is wrong,
// when it is not. See the package documentation of internal/audit for what
// is checked.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/breaker"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1 // the log did not verify
	exitUsage   = 2
	exitTrouble = 3 // the verifier could not do its job (unreadable file, bad key)
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  custos-audit verify --key PUBLIC.pem [--allow-open] [--allow-partial] DIR|FILE
  custos-audit verify --no-signatures [--allow-open] [--allow-partial] DIR|FILE
  custos-audit prove --key PUBLIC.pem --seq N DIR|FILE
  custos-audit keygen [--out-dir DIR]
  custos-audit freezes --key PUBLIC.pem [--allow-open] --trail [LOGID=]DIR|FILE ... DIR|FILE

DIR is a segment store (--audit-dir); FILE is a JSON-lines file of records
(the manager's standard output with --audit-sink=stdout).
`

// run is the command; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "verify":
		return verify(args[1:], stdout, stderr)
	case "prove":
		return prove(args[1:], stdout, stderr)
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	case "freezes":
		return freezes(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "custos-audit: unknown command %q\n%s", args[0], usage)
	return exitUsage
}

// parse parses flags that may come before or after the one path.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) (string, bool) {
	fs.SetOutput(stderr)
	var paths []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", false
		}
		if fs.NArg() == 0 {
			break
		}
		paths = append(paths, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(paths) != 1 {
		fmt.Fprintf(stderr, "custos-audit %s: want one DIR or FILE, got %d\n%s", fs.Name(), len(paths), usage)
		return "", false
	}
	return paths[0], true
}

func verify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	var vf audit.VerifyFlags
	vf.AddFlags(fs)
	quiet := fs.Bool("quiet", false, "Print nothing when the log verifies.")
	path, ok := parse(fs, args, stderr)
	if !ok {
		return exitUsage
	}
	opts, err := vf.Options()
	if err != nil {
		fmt.Fprintf(stderr, "custos-audit verify: %v\n", err)
		return exitUsage
	}
	rep, err := audit.Verify(path, opts)
	if rep != nil {
		for _, w := range rep.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
	}
	if err != nil {
		var ve *audit.VerifyError
		if errors.As(err, &ve) {
			fmt.Fprintln(stderr, ve.Error())
			return exitFailed
		}
		fmt.Fprintf(stderr, "custos-audit verify: %v\n", err)
		return exitTrouble
	}
	if !*quiet {
		fmt.Fprintln(stdout, summary(rep, opts))
	}
	return exitOK
}

func summary(rep *audit.Report, opts audit.VerifyOptions) string {
	s := fmt.Sprintf("ok: %d records, %d checkpoints, head %s", rep.Records, rep.Checkpoints, rep.Head)
	s += fmt.Sprintf(" (seq %d to %d, %d events, %d files", rep.FirstSeq, rep.LastSeq, rep.Events, rep.Files)
	if rep.Chains > 1 {
		s += fmt.Sprintf(", %d chains", rep.Chains)
	}
	if rep.LastCheckpoint != nil && rep.LastCheckpoint.Checkpoint.Final {
		s += ", closed by a final checkpoint"
	} else if rep.Uncovered > 0 {
		s += fmt.Sprintf(", %d records after the last checkpoint", rep.Uncovered)
	}
	if opts.SkipSignatures {
		s += "; signatures NOT checked"
	}
	return s + ")"
}

func prove(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("prove", flag.ContinueOnError)
	var vf audit.VerifyFlags
	vf.AddFlags(fs)
	seqFlag := fs.String("seq", "", "The seq of the record to prove.")
	path, ok := parse(fs, args, stderr)
	if !ok {
		return exitUsage
	}
	seq, err := strconv.ParseUint(*seqFlag, 10, 64)
	if err != nil {
		fmt.Fprintf(stderr, "custos-audit prove: --seq %q is not a record number\n", *seqFlag)
		return exitUsage
	}
	opts, err := vf.Options()
	if err != nil {
		fmt.Fprintf(stderr, "custos-audit prove: %v\n", err)
		return exitUsage
	}
	if opts.AllowPartial {
		fmt.Fprintln(stderr, "custos-audit prove: a proof needs the whole log (no --allow-partial)")
		return exitUsage
	}
	// The proof is against the last checkpoint that covers the record.
	var hashes []string
	var target *audit.Record
	var where string
	var cp *audit.Record
	opts.OnRecord = func(file string, line int, r *audit.Record) {
		if r.Seq == 0 {
			hashes, target, cp = hashes[:0], nil, nil // a new chain
		}
		if r.Seq == seq {
			target, where, cp = r, fmt.Sprintf("%s:%d", file, line), nil
		}
		if r.Checkpoint != nil && target != nil && r.Checkpoint.Size > seq {
			cp = r
		}
		hashes = append(hashes, r.Hash)
	}
	if _, err := audit.Verify(path, opts); err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	if target == nil {
		fmt.Fprintf(stderr, "custos-audit prove: no record with seq %d\n", seq)
		return exitFailed
	}
	if cp == nil {
		fmt.Fprintf(stderr, "custos-audit prove: no checkpoint covers seq %d yet\n", seq)
		return exitFailed
	}
	p, err := audit.ProveInclusion(hashes, seq, cp.Checkpoint.Size)
	if err == nil {
		err = p.Verify(cp.Checkpoint.Root)
	}
	if err != nil {
		fmt.Fprintf(stderr, "custos-audit prove: %v\n", err)
		return exitFailed
	}
	out, _ := json.MarshalIndent(struct {
		Record     string                `json:"record"`
		At         string                `json:"at"`
		Checkpoint uint64                `json:"checkpointSeq"`
		KeyID      string                `json:"keyID"`
		Proof      *audit.InclusionProof `json:"proof"`
	}{string(target.Line()), where, cp.Seq, cp.Checkpoint.KeyID, p}, "", "  ")
	fmt.Fprintln(stdout, string(out))
	return exitOK
}

func keygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("out-dir", ".", "Where to write audit-private.pem and audit-public.pem.")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return exitUsage
	}
	priv, pub, err := audit.GenerateKey()
	if err != nil {
		fmt.Fprintf(stderr, "custos-audit keygen: %v\n", err)
		return exitTrouble
	}
	privPath, pubPath := filepath.Join(*dir, "audit-private.pem"), filepath.Join(*dir, "audit-public.pem")
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{privPath, priv, 0o600}, {pubPath, pub, 0o644}} {
		// O_EXCL: never overwrite a key that may be in use.
		fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err == nil {
			_, err = fh.Write(f.data)
			err = errors.Join(err, fh.Close())
		}
		if err != nil {
			fmt.Fprintf(stderr, "custos-audit keygen: %v\n", err)
			return exitTrouble
		}
	}
	pubKey, _ := audit.ParsePublicKeyPEM(pub)
	id, _ := audit.KeyID(pubKey)
	fmt.Fprintf(stdout, "wrote %s and %s (Ed25519, key ID %s)\n", privPath, pubPath, id)
	fmt.Fprintf(stdout, "store the private key for the manager with:\n  kubectl -n NAMESPACE create secret generic NAME --from-file=%s=%s\n", audit.SigningKeyDataKey, privPath)
	return exitOK
}

// trailFlags are freezes' --trail flags: LOGID=PATH, or PATH for any log.
type trailFlags map[string]string

func (t trailFlags) String() string { return fmt.Sprint(map[string]string(t)) }

func (t trailFlags) Set(v string) error {
	id, path, ok := strings.Cut(v, "=")
	if !ok {
		id, path = "", v
	}
	if path == "" {
		return errors.New("want [LOGID=]DIR|FILE")
	}
	if _, dup := t[id]; dup {
		if id == "" {
			return errors.New("one trail without a log ID at most (it answers for every log)")
		}
		return fmt.Errorf("log ID %s given twice", id)
	}
	t[id] = path
	return nil
}

// freezes recomputes, from the trails alone, why each freeze on the
// manager's trail (DIR|FILE) happened: a Cap freeze's cited records are
// looked up in the gateway trails given with --trail (custos-gateway/<pod>
// is a replica's log ID; a trail given without one answers for any), every
// trail verified first. One line per freeze; exit 1 when one is not borne
// out.
func freezes(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("freezes", flag.ContinueOnError)
	var vf audit.VerifyFlags
	vf.AddFlags(fs)
	trails := trailFlags{}
	fs.Var(trails, "trail", "A gateway's trail, as LOGID=DIR|FILE (the freezes' evidence.auditLogID, custos-gateway/<pod>) or DIR|FILE for any log ID; repeatable.")
	path, ok := parse(fs, args, stderr)
	if !ok {
		return exitUsage
	}
	opts, err := vf.Options()
	if err != nil {
		fmt.Fprintf(stderr, "custos-audit freezes: %v\n", err)
		return exitUsage
	}
	verified := func(p string, on func(r *audit.Record)) int {
		o := opts
		o.OnRecord = func(_ string, _ int, r *audit.Record) { on(r) }
		if _, err := audit.Verify(p, o); err != nil {
			var ve *audit.VerifyError
			if errors.As(err, &ve) {
				fmt.Fprintf(stderr, "%s does not verify: %s\n", p, ve.Error())
				return exitFailed
			}
			fmt.Fprintf(stderr, "custos-audit freezes: %v\n", err)
			return exitTrouble
		}
		return exitOK
	}
	var frozen []*audit.Record
	if code := verified(path, func(r *audit.Record) {
		if r.Action == audit.ActionAgentFrozen {
			frozen = append(frozen, r)
		}
	}); code != exitOK {
		return code
	}
	// The records the freezes cite, and those alone, are kept of the
	// gateways' trails.
	wanted := map[string]map[uint64]bool{}
	for _, f := range frozen {
		id := f.Details["evidence.auditLogID"]
		for _, s := range strings.Split(f.Details["evidence.sequences"], ",") {
			if seq, err := strconv.ParseUint(s, 10, 64); err == nil {
				for _, key := range []string{id, ""} {
					if wanted[key] == nil {
						wanted[key] = map[uint64]bool{}
					}
					wanted[key][seq] = true
				}
			}
		}
	}
	cited := map[string]map[uint64]*audit.Record{}
	// The manager's trail answers too, last: a Trend or Ratio freeze cites
	// the breaker's record there.
	const own = "\x00manager"
	all := map[string]string{own: path}
	for id, p := range trails {
		all[id] = p
	}
	wanted[own] = wanted[""]
	for id, p := range all {
		cited[id] = map[uint64]*audit.Record{}
		if code := verified(p, func(r *audit.Record) {
			if r.Type == audit.TypeEvent && wanted[id][r.Seq] {
				cited[id][r.Seq] = r
			}
		}); code != exitOK {
			return code
		}
	}
	// A Cap freeze cites a gateway's trail; a Trend or Ratio one the
	// manager's own, unless that trail is given by its log ID.
	finder := func(ids ...string) breaker.Cited {
		return func(logID string, seq uint64) (*audit.Record, bool) {
			for _, id := range append([]string{logID}, ids...) {
				if r, ok := cited[id][seq]; ok {
					return r, true
				}
			}
			return nil, false
		}
	}
	gateways, manager := finder(""), finder(own)
	code := exitOK
	for _, f := range frozen {
		find := gateways
		if t := custosv1alpha1.FreezeTrigger(f.Details["trigger"]); t == custosv1alpha1.FreezeTrend || t == custosv1alpha1.FreezeRatio {
			find = manager
		}
		r := breaker.Recompute(f, find)
		verdict := "ok  "
		if !r.OK {
			verdict, code = "FAIL", exitFailed
		}
		fmt.Fprintf(stdout, "%s %s frozen by %s (%s, record %d): %s\n", verdict, r.Agent, r.Freeze, r.Trigger, f.Seq, r.Says)
	}
	fmt.Fprintf(stdout, "%d freezes on the trail\n", len(frozen))
	return code
}
