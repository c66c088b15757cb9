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
	"testing"

	. "github.com/onsi/gomega"
)

// TestTracing: spans go where tracing.otlpEndpoint says, from custos-sts
// and custos-gateway alike; without it, neither is told to send any.
func TestTracing(t *testing.T) {
	g := NewWithT(t)
	for _, name := range []string{"custos-sts", "custos-gateway"} {
		args := render(t, namespace, gatewayOn...).deploymentNamed(t, name).Spec.Template.Spec.Containers[0].Args
		g.Expect(args).NotTo(ContainElement(HavePrefix("--otlp-")), name)
		args = render(t, namespace, append(gatewayOn, "tracing.otlpEndpoint=otel-collector.observability:4317", "tracing.insecure=true")...).
			deploymentNamed(t, name).Spec.Template.Spec.Containers[0].Args
		g.Expect(args).To(ContainElements("--otlp-endpoint=otel-collector.observability:4317", "--otlp-insecure"), name)
	}
	stderr := renderError(t, "tracing.otlpEndpoint=http://otel-collector:4317")
	g.Expect(stderr).To(ContainSubstring("/tracing/otlpEndpoint"))
	g.Expect(renderError(t, "tracing.exporter=jaeger")).To(ContainSubstring("additional properties 'exporter' not allowed"))
}
