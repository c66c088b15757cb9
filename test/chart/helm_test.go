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

// Package chart tests the Helm chart (charts/custos) as a user meets it:
// helm lint, helm template for the value combinations users install, and
// the values schema. The rendered objects are held against what the code
// generates (config/rbac, config/webhook, config/crd/policies), so the chart
// cannot drift from the manager it installs. The helm binary comes from
// $HELM (make test builds it with hack/helm.sh); no cluster is needed.
package chart

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	runtimeconv "k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	release   = "custos"
	namespace = "custos-system"
)

// repoRoot is the repository's root directory.
var repoRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}()

// chartDir is the chart under test.
var chartDir = filepath.Join(repoRoot, "charts", "custos")

// helmBinary is the helm the tests run: $HELM.
func helmBinary(t *testing.T) string {
	t.Helper()
	h := os.Getenv("HELM")
	if h == "" {
		t.Fatal("HELM is not set. The chart tests run helm: use `make test`, or build it once with " +
			"`hack/helm.sh` (it prints the binary's path) and run `HELM=$(hack/helm.sh) go test ./test/chart/...`")
	}
	return h
}

// helm runs helm with args and returns its standard output and error.
func helm(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	// No kubeconfig, no repositories, no plugins of the user's: the chart
	// tests depend on nothing but the chart.
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+filepath.Join(home, "kubeconfig"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// manifests is what helm template rendered.
type manifests []*unstructured.Unstructured

// templateArgs are helm template's arguments for the chart in ns, with
// --set values.
func templateArgs(chart, ns string, sets ...string) []string {
	args := []string{"template", release, chart, "--namespace", ns}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return args
}

// render runs helm template on the chart in namespace ns with --set values
// and fails the test when it fails.
func render(t *testing.T, ns string, sets ...string) manifests {
	t.Helper()
	stdout, stderr, err := helm(t, templateArgs(chartDir, ns, sets...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", sets, err, stderr)
	}
	objs, err := parse(stdout)
	if err != nil {
		t.Fatalf("helm template %v rendered unparsable YAML: %v", sets, err)
	}
	return objs
}

// renderError runs helm template with --set values that must fail and
// returns its error output.
func renderError(t *testing.T, sets ...string) string {
	t.Helper()
	_, stderr, err := helm(t, templateArgs(chartDir, namespace, sets...)...)
	if err == nil {
		t.Fatalf("helm template %v succeeded; want it to fail", sets)
	}
	return stderr
}

// parse splits a multi-document YAML stream into objects, skipping empty
// documents.
func parse(stream string) (manifests, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	var objs manifests
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("%w in\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// parseFile parses a YAML file of the repository.
func parseFile(t *testing.T, path string) manifests {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parse(string(data))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return objs
}

// ofKind returns the objects of kind.
func (m manifests) ofKind(kind string) manifests {
	var out manifests
	for _, o := range m {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// find returns the object of kind and name, failing the test when there is
// none.
func (m manifests) find(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range m.ofKind(kind) {
		if o.GetName() == name {
			return o
		}
	}
	var names []string
	for _, o := range m.ofKind(kind) {
		names = append(names, o.GetName())
	}
	t.Fatalf("no %s %q rendered; %s rendered: %v", kind, name, kind, names)
	return nil
}

// into converts an object to its typed form.
func into[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtimeconv.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s does not convert to %T: %v", u.GetKind(), u.GetName(), out, err)
	}
	return out
}

// deployment returns the manager's Deployment.
func (m manifests) deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	return into[appsv1.Deployment](t, m.find(t, "Deployment", "custos-manager"))
}

// TestHelmBinary fails early, with the way out, when $HELM is unset.
func TestHelmBinary(t *testing.T) {
	g := NewWithT(t)
	stdout, stderr, err := helm(t, "version", "--template", "{{.Version}}")
	g.Expect(err).NotTo(HaveOccurred(), stderr)
	g.Expect(stdout).To(HavePrefix("v3."))
}
