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

// Command screenshots takes the pictures in docs/images of Prometheus's own
// web UI showing Custos's alerts and a per-agent graph: it loads a real
// Prometheus (Debian's prometheus package, installed: its web UI is in
// /usr/share/prometheus/web) with test/promslice's slice of 8 days and the
// chart's rules file, and has Debian's chromium-headless-shell take the
// pages. make screenshots installs both and runs it.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/custos-dev/custos/test/promslice"
)

func main() {
	promtool := flag.String("promtool", "/usr/bin/promtool", "promtool, to load the slice.")
	prometheus := flag.String("prometheus", "/usr/bin/prometheus", "prometheus, with its web UI installed (Debian's package).")
	chrome := flag.String("chrome", "chromium-headless-shell", "Debian's chromium-headless-shell.")
	out := flag.String("out", "docs/images", "Where the pictures go.")
	rules := flag.String("rules", "charts/custos/files/rules/custos-alerts.yaml", "The chart's rules file.")
	flag.Parse()
	if err := run(*promtool, *prometheus, *chrome, *out, *rules); err != nil {
		fmt.Fprintln(os.Stderr, "screenshots:", err)
		os.Exit(1)
	}
}

func run(promtool, prometheus, chrome, out, rules string) error {
	dir, err := os.MkdirTemp("", "custos-screenshots-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	absRules, err := filepath.Abs(rules)
	if err != nil {
		return err
	}
	prom, err := promslice.Serve(promtool, prometheus, dir, "global: {evaluation_interval: 5s}\nrule_files: ["+absRules+"]\n", time.Now().Truncate(time.Minute))
	if err != nil {
		return err
	}
	defer prom.Stop()
	base := "http://" + prom.Addr
	// A few evaluations of the rules.
	time.Sleep(15 * time.Second)
	graph := url.Values{
		"g0.expr":        {`sum by (agent) (rate(custos_gateway_agent_records_total{namespace="finance-agents",agent=~"agent-0[0-4]"}[5m]))`},
		"g0.tab":         {"0"},
		"g0.range_input": {"2d"},
		"g1.expr":        {`custos_breaker_evidence_ratio{namespace="finance-agents"}`},
		"g1.tab":         {"0"},
		"g1.range_input": {"2d"},
	}
	for name, page := range map[string]string{
		"prometheus-alerts.png":    base + "/classic/alerts",
		"prometheus-per-agent.png": base + "/classic/graph?" + graph.Encode(),
	} {
		path, err := filepath.Abs(filepath.Join(out, name))
		if err != nil {
			return err
		}
		cmd := exec.Command(chrome, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,1100",
			"--virtual-time-budget=15000", "--screenshot="+path, page)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v\n%s", chrome, page, err, b)
		}
		fmt.Println("wrote", path)
	}
	return nil
}
