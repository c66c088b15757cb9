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
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// TestRunRefusesWhatCannotBeSafe: custos-gateway does not start without
// TLS, without custos-sts to verify callers with, or with limits that
// would let an upstream run unbounded; each refusal names the flag.
func TestRunRefusesWhatCannotBeSafe(t *testing.T) {
	ok := options{certDir: "/tls", issuerBase: "https://custos-sts.custos-system.svc", stsNamespace: "custos-system",
		timeout: 10 * time.Second, maxResponse: 1 << 20, maxRequest: 1 << 20}
	for name, tc := range map[string]struct {
		change func(*options)
		says   string
	}{
		"no TLS":              {func(o *options) { o.certDir = "" }, "--tls-cert-dir is required"},
		"no custos-sts":       {func(o *options) { o.issuerBase = "" }, "--issuer-base is required"},
		"no revocation lists": {func(o *options) { o.stsNamespace = "" }, "--sts-namespace"},
		"no upstream timeout": {func(o *options) { o.timeout = 0 }, "--upstream-timeout must be positive"},
		"unbounded answers":   {func(o *options) { o.maxResponse = 0 }, "--max-response-bytes"},
		"unbounded requests":  {func(o *options) { o.maxRequest = -1 }, "--max-request-bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			o := ok
			tc.change(&o)
			err := run(context.Background(), o, nil, logr.Discard(), nil)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("run: %v, want it to say %q", err, tc.says)
			}
		})
	}
}

// TestResolveFlag: --resolve maps host:port to another address:port, and
// refuses anything else, saying the form it takes.
func TestResolveFlag(t *testing.T) {
	var r resolveFlag
	for _, v := range []string{"ledger-api.finance.svc:8080=127.0.0.1:40001", "crm.sales.svc:443=[::1]:40002"} {
		if err := r.Set(v); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
	}
	if r["ledger-api.finance.svc:8080"] != "127.0.0.1:40001" || r["crm.sales.svc:443"] != "[::1]:40002" {
		t.Errorf("resolve %v", r)
	}
	for _, bad := range []string{"ledger-api.finance.svc:8080", "ledger-api.finance.svc=127.0.0.1:1", "ledger:80=127.0.0.1", ":80=127.0.0.1:1", "a:80="} {
		if err := r.Set(bad); err == nil || !strings.Contains(err.Error(), "is not host:port=address:port") {
			t.Errorf("%q: %v, want refused", bad, err)
		}
	}
}
