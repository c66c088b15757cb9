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

package chart

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"
)

const rulesFile = "files/rules/custos-alerts.yaml"

// TestAlertRules: the rules file is valid and every alert's cases pass
// (promtool check rules, promtool test rules: each alert has a case that
// must fire and one that must not); every alert has a severity, a summary,
// a description and a runbook that exists in docs/runbooks.
func TestAlertRules(t *testing.T) {
	g := NewWithT(t)
	promtool := os.Getenv("PROMTOOL")
	if promtool == "" {
		t.Fatal("PROMTOOL is not set: make test sets it (hack/promtool.sh fetches Debian's promtool)")
	}
	rules := filepath.Join(chartDir, rulesFile)
	for _, args := range [][]string{{"check", "rules", rules}, {"test", "rules", filepath.Join("..", "rules", "custos-alerts.test.yaml")}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), "promtool %v:\n%s", args, out)
	}

	raw, err := os.ReadFile(rules)
	g.Expect(err).NotTo(HaveOccurred())
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `json:"alert"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	g.Expect(yaml.Unmarshal(raw, &file)).To(Succeed())
	tests, err := os.ReadFile(filepath.Join("..", "rules", "custos-alerts.test.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	alerts := 0
	for _, group := range file.Groups {
		for _, r := range group.Rules {
			alerts++
			g.Expect(r.Alert).To(HavePrefix("Custos"))
			g.Expect(r.Labels["severity"]).To(BeElementOf("critical", "warning", "info"), r.Alert)
			g.Expect(r.Annotations).To(And(HaveKey("summary"), HaveKey("description")), r.Alert)
			g.Expect(r.Annotations["runbook_url"]).To(HaveSuffix("/docs/runbooks/"+r.Alert+".md"), r.Alert)
			g.Expect(filepath.Join("..", "..", "docs", "runbooks", r.Alert+".md")).To(BeAnExistingFile(), r.Alert)
			// A case that fires and one that does not.
			cases := regexp.MustCompile(`(?s)alertname: `+r.Alert+`\n\s+exp_alerts:(\s*\[\]|\s*\n\s+- exp_labels)`).FindAllSubmatch(tests, -1)
			fires, quiet := false, false
			for _, c := range cases {
				if string(c[1]) == " []" {
					quiet = true
				} else {
					fires = true
				}
			}
			g.Expect(fires && quiet).To(BeTrue(), "%s needs a case that fires and one that does not", r.Alert)
		}
	}
	g.Expect(alerts).To(BeNumerically(">=", 4))
}

// TestPrometheusRule: the chart renders the rules file as a PrometheusRule,
// and only where the CRD exists.
func TestPrometheusRule(t *testing.T) {
	g := NewWithT(t)
	g.Expect(names(render(t, namespace).ofKind("PrometheusRule"))).To(BeEmpty(), "no CRD, no PrometheusRule")
	stdout, stderr, err := helm(t, append(templateArgs(chartDir, namespace, "prometheusRule.labels.release=kube-prometheus"),
		"--api-versions", "monitoring.coreos.com/v1/PrometheusRule")...)
	g.Expect(err).NotTo(HaveOccurred(), stderr)
	objs, err := parse(stdout)
	g.Expect(err).NotTo(HaveOccurred())
	pr := objs.find(t, "PrometheusRule", "custos")
	g.Expect(pr.GetLabels()).To(HaveKeyWithValue("release", "kube-prometheus"))
	raw, err := os.ReadFile(filepath.Join(chartDir, rulesFile))
	g.Expect(err).NotTo(HaveOccurred())
	var file map[string]any
	g.Expect(yaml.Unmarshal(raw, &file)).To(Succeed())
	g.Expect(pr.Object["spec"]).To(Equal(file), "the rules promtool tests, as they are")
}
