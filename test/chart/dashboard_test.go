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
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/custos-dev/custos/test/promslice"
)

const dashboardFile = "files/dashboards/custos-agent-risk.json"

type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDashboardConfigMap: the chart ships the dashboard as it is, with the
// sidecar's label.
func TestDashboardConfigMap(t *testing.T) {
	g := NewWithT(t)
	cm := render(t, namespace).find(t, "ConfigMap", "custos-dashboards")
	g.Expect(cm.GetLabels()).To(HaveKeyWithValue("grafana_dashboard", "1"))
	raw, err := os.ReadFile(filepath.Join(chartDir, dashboardFile))
	g.Expect(err).NotTo(HaveOccurred())
	data := cm.Object["data"].(map[string]any)
	var shipped, file any
	g.Expect(json.Unmarshal([]byte(data["custos-agent-risk.json"].(string)), &shipped)).To(Succeed())
	g.Expect(json.Unmarshal(raw, &file)).To(Succeed())
	g.Expect(shipped).To(Equal(file))
	other := render(t, namespace, "grafanaDashboard.label=dashboards", "grafanaDashboard.labelValue=custos", "grafanaDashboard.namespace=monitoring").
		find(t, "ConfigMap", "custos-dashboards")
	g.Expect(other.GetLabels()).To(HaveKeyWithValue("dashboards", "custos"))
	g.Expect(other.GetNamespace()).To(Equal("monitoring"))
	g.Expect(names(render(t, namespace, "grafanaDashboard.enabled=false").ofKind("ConfigMap"))).NotTo(ContainElement("custos-dashboards"))
}

// TestDashboardQueries: every query of the dashboard returns data from a
// real Prometheus (Debian's, beside promtool) loaded with a slice of the
// gateway's metrics: 20 agents over 8 days at 1-minute resolution, each
// with its own daily shape.
func TestDashboardQueries(t *testing.T) {
	g := NewWithT(t)
	promtool := os.Getenv("PROMTOOL")
	if promtool == "" {
		t.Fatal("PROMTOOL is not set: make test sets it (hack/promtool.sh fetches Debian's promtool and prometheus)")
	}
	end := time.Now().Truncate(time.Minute)
	prom, err := promslice.Serve(promtool, filepath.Join(filepath.Dir(promtool), "prometheus"), t.TempDir(), "global: {}\n", end)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(prom.Stop)
	addr := prom.Addr

	query := func(expr string) (int, error) {
		u := "http://" + addr + "/api/v1/query?" + url.Values{"query": {expr}, "time": {fmt.Sprint(end.Add(-time.Hour).Unix())}}.Encode()
		res, err := http.Get(u)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		var body struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
			return 0, err
		}
		if body.Status != "success" {
			return 0, fmt.Errorf("%s", body.Error)
		}
		return len(body.Data.Result), nil
	}
	g.Eventually(func() error { _, err := query("up"); return err }).WithTimeout(30*time.Second).WithPolling(200*time.Millisecond).
		Should(Succeed(), "prometheus did not answer")

	raw, err := os.ReadFile(filepath.Join(chartDir, dashboardFile))
	g.Expect(err).NotTo(HaveOccurred())
	var d dashboard
	g.Expect(json.Unmarshal(raw, &d)).To(Succeed())
	g.Expect(d.Panels).NotTo(BeEmpty())
	vars := strings.NewReplacer("$namespace", ".*", "$agent", ".*")
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			n, err := query(vars.Replace(target.Expr))
			g.Expect(err).NotTo(HaveOccurred(), "%s: %s", p.Title, target.Expr)
			g.Expect(n).To(BeNumerically(">", 0), "%s: %s returned no data", p.Title, target.Expr)
		}
	}
}
