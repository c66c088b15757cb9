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

package evaluate

import (
	"encoding/json"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

func completion(content string) []byte {
	out, _ := json.Marshal(map[string]any{"model": "m\x07-1", "choices": []any{map[string]any{"message": map[string]any{"content": content}}}})
	return out
}

// TestParseVerdict: only an answer that is exactly the schema's JSON is
// taken.
func TestParseVerdict(t *testing.T) {
	g := NewWithT(t)
	v, err := parseVerdict(completion(`{"verdict":"Suspicious","confidence":0.555,"rationale":"late\nat night"}`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*v).To(Equal(custosv1alpha1.FindingJudgement{Verdict: custosv1alpha1.JudgeSuspicious, ConfidencePercent: 56, Rationale: "late at night", Model: "m-1"}))
	v, err = parseVerdict(completion(`{"verdict":"Benign","confidence":1,"rationale":"` + strings.Repeat("é", 600) + `"}`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect([]rune(v.Rationale)).To(HaveLen(512))
	for content, says := range map[string]string{
		`{"verdict":"benign","confidence":1,"rationale":"x"}`:                 "none of Benign, Suspicious, Harmful",
		`{"verdict":"Benign","confidence":-0.1,"rationale":"x"}`:              "not a number from 0 to 1",
		`{"verdict":"Benign","confidence":"high","rationale":"x"}`:            "not the schema's JSON",
		`{"verdict":"Benign","confidence":1}`:                                 "no rationale",
		`{"verdict":"Benign","confidence":1,"rationale":"x","close":true}`:    "not the schema's JSON",
		`{"verdict":"Benign","confidence":1,"rationale":"x"} {"verdict":"x"}`: "more after it",
		`Benign`:                          "not the schema's JSON",
		`[{"verdict":"Benign"}]`:          "not the schema's JSON",
		`{"confidence":1,"rationale":""}`: "none of Benign",
	} {
		_, err := parseVerdict(completion(content))
		g.Expect(err).To(MatchError(ContainSubstring(says)), content)
	}
	_, err = parseVerdict([]byte(`{"choices":[]}`))
	g.Expect(err).To(MatchError(ContainSubstring("not a chat completion with a choice")))
}

// TestJudgeEndpoint: a judge Toolset's base URL.
func TestJudgeEndpoint(t *testing.T) {
	g := NewWithT(t)
	ts := &custosv1alpha1.Toolset{}
	ts.Namespace, ts.Name = "finance", "judge"
	ts.Spec.Endpoint = custosv1alpha1.ToolEndpoint{Path: "/v1", InCluster: &custosv1alpha1.InClusterEndpoint{Namespace: "models", Service: "vllm", Port: 8000, Scheme: "http"}}
	g.Expect(JudgeEndpoint(ts)).To(Equal("http://vllm.models.svc:8000/v1"))
	ts.Spec.Endpoint = custosv1alpha1.ToolEndpoint{Path: "/openai/v1", External: &custosv1alpha1.ExternalEndpoint{Host: "judge.acme.example"}}
	g.Expect(JudgeEndpoint(ts)).To(Equal("https://judge.acme.example:443/openai/v1"))
	ts.Spec.Endpoint = custosv1alpha1.ToolEndpoint{InCluster: &custosv1alpha1.InClusterEndpoint{Namespace: "models", Port: 8000}}
	_, err := JudgeEndpoint(ts)
	g.Expect(err).To(MatchError(ContainSubstring("has no Service")))
}
