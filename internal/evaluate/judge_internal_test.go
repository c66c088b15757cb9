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
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

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
		`{"verdict":"Benign","confidence":"high","rationale":"x"}`:            "not a number from 0 to 1",
		`{"verdict":"Benign","confidence":1}`:                                 "no member \"rationale\"",
		`{"verdict":"Benign","confidence":1,"rationale":"x","close":true}`:    "not the schema's JSON",
		`{"verdict":"Benign","confidence":1,"rationale":"x"} {"verdict":"x"}`: "more after the object",
		`Benign`:                          "not the schema's JSON",
		`[{"verdict":"Benign"}]`:          "not the schema's JSON",
		`{"confidence":1,"rationale":""}`: "no member \"verdict\"",
		`{"VERDICT":"Benign","confidence":1,"rationale":"x"}`:                     "member \"VERDICT\" is not the schema's",
		`{"verdict":"Harmful","verdict":"Benign","confidence":1,"rationale":"x"}`: "member \"verdict\" twice",
		`{"verdict":null,"confidence":1,"rationale":"x"}`:                         "is null",
	} {
		_, err := parseVerdict(completion(content))
		g.Expect(err).To(MatchError(ContainSubstring(says)), content)
	}
	_, err = parseVerdict([]byte(`{"choices":[]}`))
	g.Expect(err).To(MatchError(ContainSubstring("not a chat completion with a choice")))
}

// TestJudgeEndpoint: a judge Toolset's base URL, always https, and the
// addresses it may be reached at: its Service's cluster IPs (never an
// ExternalName), or its external CIDRs.
func TestJudgeEndpoint(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	scheme := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "models", Name: "vllm"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.7", ClusterIPs: []string{"10.96.0.7", "fd00::7"}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "models", Name: "elsewhere"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "attacker.example"}},
	).Build()
	ts := &custosv1alpha1.Toolset{}
	ts.Namespace, ts.Name = "finance", "judge"
	ts.Spec.Endpoint = custosv1alpha1.ToolEndpoint{Path: "/v1", InCluster: &custosv1alpha1.InClusterEndpoint{Namespace: "models", Service: "vllm", Port: 8000}}
	url, allowed, err := JudgeEndpoint(ctx, c, ts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(url).To(Equal("https://vllm.models.svc:8000/v1"))
	g.Expect(allowed).To(ConsistOf(netip.MustParsePrefix("10.96.0.7/32"), netip.MustParsePrefix("10.96.0.7/32"), netip.MustParsePrefix("fd00::7/128")))
	ts.Spec.Endpoint.InCluster.Service = "elsewhere"
	_, _, err = JudgeEndpoint(ctx, c, ts)
	g.Expect(err).To(MatchError(ContainSubstring("is an ExternalName (attacker.example)")))
	ts.Spec.Endpoint = custosv1alpha1.ToolEndpoint{Path: "/openai/v1", External: &custosv1alpha1.ExternalEndpoint{Host: "judge.acme.example", CIDRs: []string{"203.0.113.9/32"}}}
	url, allowed, err = JudgeEndpoint(ctx, c, ts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(url).To(Equal("https://judge.acme.example:443/openai/v1"))
	g.Expect(allowed).To(ConsistOf(netip.MustParsePrefix("203.0.113.9/32")))
	ts.Spec.Endpoint = custosv1alpha1.ToolEndpoint{InCluster: &custosv1alpha1.InClusterEndpoint{Namespace: "models", Port: 8000}}
	_, _, err = JudgeEndpoint(ctx, c, ts)
	g.Expect(err).To(MatchError(ContainSubstring("has no Service")))
}

// TestDialAllowed: a connection goes only to an address the judge's
// Toolset names.
func TestDialAllowed(t *testing.T) {
	g := NewWithT(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = l.Close() }()
	d := &net.Dialer{}
	ctx := context.WithValue(context.Background(), allowedKey{}, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	conn, err := dialAllowed(ctx, d, "tcp", l.Addr().String())
	g.Expect(err).NotTo(HaveOccurred())
	_ = conn.Close()
	ctx = context.WithValue(context.Background(), allowedKey{}, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	_, err = dialAllowed(ctx, d, "tcp", l.Addr().String())
	g.Expect(err).To(MatchError(ContainSubstring("none of them within the judge's addresses")))
	_, err = dialAllowed(context.Background(), d, "tcp", l.Addr().String())
	g.Expect(err).To(HaveOccurred(), "nothing allowed, nothing dialled")
}
