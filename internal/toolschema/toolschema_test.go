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

package toolschema

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// toolOption shapes a test tool.
type toolOption func(*custosv1alpha1.Tool)

func withInput(schema string) toolOption {
	return func(t *custosv1alpha1.Tool) { t.InputSchema = &runtime.RawExtension{Raw: []byte(schema)} }
}

func withOutput(schema string) toolOption {
	return func(t *custosv1alpha1.Tool) { t.OutputSchema = &runtime.RawExtension{Raw: []byte(schema)} }
}

func writes() toolOption {
	return func(t *custosv1alpha1.Tool) { t.Access = custosv1alpha1.ToolAccessWrite }
}

func tool(name string, opts ...toolOption) custosv1alpha1.Tool {
	t := custosv1alpha1.Tool{Name: name, Access: custosv1alpha1.ToolAccessRead}
	for _, o := range opts {
		o(&t)
	}
	return t
}

func TestCompileSummarizesValidTools(t *testing.T) {
	cases := []struct {
		name       string
		tools      []custosv1alpha1.Tool
		wantTools  int
		wantAccess custosv1alpha1.ToolsetAccess
	}{
		{
			name:      "read tools without schemas",
			tools:     []custosv1alpha1.Tool{tool("a"), tool("b")},
			wantTools: 2, wantAccess: custosv1alpha1.ToolsetReadOnly,
		},
		{
			name: "read tools with schemas",
			tools: []custosv1alpha1.Tool{
				tool("get_invoice",
					withInput(`{"type": "object", "properties": {"invoiceNumber": {"type": "string"}}, "required": ["invoiceNumber"]}`),
					withOutput(`{"type": "object", "properties": {"amount": {"type": "number", "minimum": 0}}}`)),
			},
			wantTools: 1, wantAccess: custosv1alpha1.ToolsetReadOnly,
		},
		{
			name:      "one write tool makes the toolset read-write",
			tools:     []custosv1alpha1.Tool{tool("get"), tool("pay", writes())},
			wantTools: 2, wantAccess: custosv1alpha1.ToolsetReadWrite,
		},
		{
			name:      "local references",
			tools:     []custosv1alpha1.Tool{tool("a", withInput(`{"$defs": {"money": {"type": "number"}}, "properties": {"amount": {"$ref": "#/$defs/money"}}}`))},
			wantTools: 1, wantAccess: custosv1alpha1.ToolsetReadOnly,
		},
		{
			name:      "anchors and embedded resources",
			tools:     []custosv1alpha1.Tool{tool("a", withInput(`{"$defs": {"m": {"$id": "https://acme.example/money", "$anchor": "money", "type": "number"}}, "properties": {"amount": {"$ref": "https://acme.example/money#money"}}}`))},
			wantTools: 1, wantAccess: custosv1alpha1.ToolsetReadOnly,
		},
		{
			name:      "an older draft named by $schema, resolved from the built-in metaschemas",
			tools:     []custosv1alpha1.Tool{tool("a", withInput(`{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "definitions": {"x": {"type": "string"}}}`))},
			wantTools: 1, wantAccess: custosv1alpha1.ToolsetReadOnly,
		},
		{
			name:      "boolean schema",
			tools:     []custosv1alpha1.Tool{tool("a", withInput(`true`))},
			wantTools: 1, wantAccess: custosv1alpha1.ToolsetReadOnly,
		},
		{
			name:      "empty raw extension is no schema",
			tools:     []custosv1alpha1.Tool{{Name: "a", Access: custosv1alpha1.ToolAccessRead, InputSchema: &runtime.RawExtension{}}},
			wantTools: 1, wantAccess: custosv1alpha1.ToolsetReadOnly,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			res, err := Compile(tc.tools)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Tools).To(Equal(tc.wantTools))
			g.Expect(res.Access).To(Equal(tc.wantAccess))
			g.Expect(res.SchemaDigest).To(MatchRegexp(`^sha256:[0-9a-f]{64}$`))
			g.Expect(len(res.SchemaDigest)).To(BeNumerically("<=", 71), "status.schemaDigest has a maximum length of 71")
		})
	}
}

func TestCompileRefusesInvalidSchemas(t *testing.T) {
	cases := []struct {
		name        string
		tools       []custosv1alpha1.Tool
		wantTool    string
		wantField   string
		wantPointer string
		wantMsg     string
	}{
		{
			name:     "type is not a type name",
			tools:    []custosv1alpha1.Tool{tool("ok"), tool("pay", writes(), withInput(`{"type": 12}`))},
			wantTool: "pay", wantField: "spec.tools[1].inputSchema", wantPointer: "/type",
			wantMsg: "value must be one of",
		},
		{
			name:     "minimum is not a number",
			tools:    []custosv1alpha1.Tool{tool("get", withOutput(`{"minimum": "x"}`))},
			wantTool: "get", wantField: "spec.tools[0].outputSchema", wantPointer: "/minimum",
			wantMsg: "got string, want number",
		},
		{
			name:     "nested keyword",
			tools:    []custosv1alpha1.Tool{tool("pay", withInput(`{"type": "object", "properties": {"amount": {"type": "strin"}}}`))},
			wantTool: "pay", wantField: "spec.tools[0].inputSchema", wantPointer: "/properties/amount/type",
			wantMsg: "value must be one of",
		},
		{
			name:     "pointer tokens are escaped",
			tools:    []custosv1alpha1.Tool{tool("pay", withInput(`{"properties": {"a/b~c": {"minLength": -1}}}`))},
			wantTool: "pay", wantField: "spec.tools[0].inputSchema", wantPointer: "/properties/a~1b~0c/minLength",
			wantMsg: "minimum",
		},
		{
			name:     "invalid regular expression",
			tools:    []custosv1alpha1.Tool{tool("find", withInput(`{"properties": {"q": {"pattern": "(?<x"}}}`))},
			wantTool: "find", wantField: "spec.tools[0].inputSchema", wantPointer: "/properties/q/pattern",
			wantMsg: "not valid regex",
		},
		{
			name:     "reference to nothing",
			tools:    []custosv1alpha1.Tool{tool("a", withInput(`{"properties": {"x": {"$ref": "#/$defs/missing"}}}`))},
			wantTool: "a", wantField: "spec.tools[0].inputSchema", wantPointer: "/properties/x/$ref",
			wantMsg: `reference "#/$defs/missing" points to nothing`,
		},
		{
			name:     "unknown anchor",
			tools:    []custosv1alpha1.Tool{tool("a", withInput(`{"items": {"$ref": "#money"}}`))},
			wantTool: "a", wantField: "spec.tools[0].inputSchema", wantPointer: "/items/$ref",
			wantMsg: `anchor "#money" is not defined`,
		},
		{
			name:     "remote reference",
			tools:    []custosv1alpha1.Tool{tool("a", withInput(`{"properties": {"x": {"$ref": "https://schemas.acme.example/money.json"}}}`))},
			wantTool: "a", wantField: "spec.tools[0].inputSchema", wantPointer: "/properties/x/$ref",
			wantMsg: `cannot load "https://schemas.acme.example/money.json": schemas are compiled offline`,
		},
		{
			name:     "relative reference",
			tools:    []custosv1alpha1.Tool{tool("a", withInput(`{"$ref": "money.json"}`))},
			wantTool: "a", wantField: "spec.tools[0].inputSchema", wantPointer: "/$ref",
			wantMsg: `cannot load "money.json"`,
		},
		{
			name:     "remote metaschema",
			tools:    []custosv1alpha1.Tool{tool("a", withInput(`{"$schema": "https://schemas.acme.example/meta"}`))},
			wantTool: "a", wantField: "spec.tools[0].inputSchema", wantPointer: "/$schema",
			wantMsg: "schemas are compiled offline",
		},
		{
			name:     "not JSON",
			tools:    []custosv1alpha1.Tool{tool("a", withInput(`{"type": `))},
			wantTool: "a", wantField: "spec.tools[0].inputSchema", wantPointer: "",
			wantMsg: "not JSON",
		},
		{
			name:     "data after the schema",
			tools:    []custosv1alpha1.Tool{tool("a", withInput(`{} {}`))},
			wantTool: "a", wantField: "spec.tools[0].inputSchema", wantPointer: "",
			wantMsg: "unexpected data after the schema",
		},
		{
			name:     "the first failure is reported",
			tools:    []custosv1alpha1.Tool{tool("a", withOutput(`{"type": 1}`)), tool("b", withInput(`{"type": 2}`))},
			wantTool: "a", wantField: "spec.tools[0].outputSchema", wantPointer: "/type",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			res, err := Compile(tc.tools)
			g.Expect(err).To(HaveOccurred())
			var se *SchemaError
			g.Expect(errors.As(err, &se)).To(BeTrue(), "want a *SchemaError, got %T: %v", err, err)
			g.Expect(se.Tool).To(Equal(tc.wantTool))
			g.Expect(se.Field()).To(Equal(tc.wantField))
			g.Expect(se.Pointer).To(Equal(tc.wantPointer))
			g.Expect(se.Message).To(ContainSubstring(tc.wantMsg))
			g.Expect(se.Message).NotTo(ContainSubstring("mem://"), "the compiler's placeholder URL means nothing to users")

			// The message names the tool, the field and the pointer.
			g.Expect(err.Error()).To(ContainSubstring(`tool "` + tc.wantTool + `"`))
			g.Expect(err.Error()).To(ContainSubstring(tc.wantField))
			if tc.wantPointer != "" {
				g.Expect(err.Error()).To(ContainSubstring(`at "` + tc.wantPointer + `"`))
			}

			// What does not depend on the schemas is still reported.
			g.Expect(res.Tools).To(Equal(len(tc.tools)))
			g.Expect(res.SchemaDigest).To(BeEmpty())
		})
	}
}

func TestCompileErrorMessage(t *testing.T) {
	g := NewWithT(t)
	_, err := Compile([]custosv1alpha1.Tool{tool("get"), tool("pay", withInput(`{"properties": {"amount": {"minimum": "x"}}}`))})
	g.Expect(err).To(MatchError(`tool "pay": spec.tools[1].inputSchema is not a valid JSON Schema at "/properties/amount/minimum": got string, want number`))
}

func TestCompileDigest(t *testing.T) {
	digest := func(g Gomega, tools ...custosv1alpha1.Tool) string {
		res, err := Compile(tools)
		g.Expect(err).NotTo(HaveOccurred())
		return res.SchemaDigest
	}
	base := []custosv1alpha1.Tool{
		tool("get", withInput(`{"type": "object", "properties": {"id": {"type": "string"}, "n": {"type": "integer"}}}`)),
		tool("pay", writes(), withOutput(`{"type": "boolean"}`)),
	}

	t.Run("stable under key order and whitespace", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(digest(g,
			tool("get", withInput("{\n  \"properties\": {\"n\": {\"type\":\"integer\"}, \"id\": {\"type\": \"string\"}},\n  \"type\": \"object\"\n}")),
			tool("pay", writes(), withOutput(` { "type" : "boolean" } `)),
		)).To(Equal(digest(g, base...)))
	})
	t.Run("stable under tool order", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(digest(g, base[1], base[0])).To(Equal(digest(g, base...)))
	})
	t.Run("does not depend on access", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(digest(g, base[0], tool("pay", withOutput(`{"type": "boolean"}`)))).To(Equal(digest(g, base...)))
	})
	t.Run("changes with an input schema", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(digest(g, tool("get", withInput(`{"type": "object", "properties": {"id": {"type": "string"}, "n": {"type": "number"}}}`)), base[1])).
			NotTo(Equal(digest(g, base...)))
	})
	t.Run("changes with an output schema", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(digest(g, base[0], tool("pay", writes(), withOutput(`{"type": "string"}`)))).NotTo(Equal(digest(g, base...)))
	})
	t.Run("changes when a schema moves from input to output", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(digest(g, tool("a", withInput(`{"type": "string"}`)))).NotTo(Equal(digest(g, tool("a", withOutput(`{"type": "string"}`)))))
	})
	t.Run("changes with a tool's name", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(digest(g, base[0], tool("refund", writes(), withOutput(`{"type": "boolean"}`)))).NotTo(Equal(digest(g, base...)))
	})
	t.Run("changes when a tool is added", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(digest(g, append(base, tool("list"))...)).NotTo(Equal(digest(g, base...)))
	})
	t.Run("an absent schema differs from an empty one", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(digest(g, tool("a"))).NotTo(Equal(digest(g, tool("a", withInput(`{}`)))))
	})
	t.Run("a decoded object digests as its JSON", func(t *testing.T) {
		g := NewWithT(t)
		obj := &runtime.Unknown{Raw: []byte(`{"type":"string"}`), ContentType: runtime.ContentTypeJSON}
		fromObject := custosv1alpha1.Tool{Name: "a", Access: custosv1alpha1.ToolAccessRead, InputSchema: &runtime.RawExtension{Object: obj}}
		g.Expect(digest(g, fromObject)).To(Equal(digest(g, tool("a", withInput(`{"type": "string"}`)))))
	})
}

// Compiling must never reach the network or the file system, whatever the
// schema asks for.
func TestCompileLoadsNothing(t *testing.T) {
	g := NewWithT(t)

	var requests atomic.Int32
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		_, _ = w.Write([]byte(`{"type": "string"}`))
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })

	file := filepath.Join(t.TempDir(), "money.json")
	g.Expect(os.WriteFile(file, []byte(`{"type": "number"}`), 0o600)).To(Succeed())

	for _, ref := range []string{
		"http://" + lis.Addr().String() + "/money.json",
		"https://" + lis.Addr().String() + "/money.json",
		"file://" + file,
		file,
	} {
		_, err := Compile([]custosv1alpha1.Tool{tool("a", withInput(`{"properties": {"x": {"$ref": "`+ref+`"}}}`))})
		g.Expect(err).To(HaveOccurred(), "$ref %s", ref)
		g.Expect(err.Error()).To(ContainSubstring("schemas are compiled offline"), "$ref %s", ref)
		g.Expect(err.Error()).To(ContainSubstring(`at "/properties/x/$ref"`), "$ref %s", ref)

		_, err = Compile([]custosv1alpha1.Tool{tool("a", withInput(`{"$schema": "`+ref+`"}`))})
		g.Expect(err).To(HaveOccurred(), "$schema %s", ref)
		g.Expect(err.Error()).To(ContainSubstring("schemas are compiled offline"), "$schema %s", ref)
	}
	g.Expect(requests.Load()).To(BeZero(), "the compiler fetched a schema")
}

func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		`{}`, `true`, `{"type": 12}`, `{"minimum": "x"}`,
		`{"type": "object", "properties": {"a": {"type": "string", "pattern": "^a+$"}}, "required": ["a"]}`,
		`{"$ref": "#/$defs/x", "$defs": {"x": {"$ref": "#/$defs/x"}}}`,
		`{"$id": "https://acme.example/a", "$ref": "b.json"}`,
		`{"$schema": "http://json-schema.org/draft-04/schema#", "id": "#x"}`,
		`{"$dynamicRef": "#meta", "$dynamicAnchor": "meta"}`,
		`{"properties": {"~/": {"$ref": "#/properties/~0~1"}}}`,
		`{"allOf": [{"$anchor": "a"}, {"$anchor": "a"}]}`,
		`[1, 2`, `"x"`, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tools := []custosv1alpha1.Tool{tool("a", withInput(string(data)), withOutput(string(data)))}
		res, err := Compile(tools)
		if err != nil {
			var se *SchemaError
			if !errors.As(err, &se) {
				t.Fatalf("Compile returned %T, want *SchemaError: %v", err, err)
			}
			if se.Message == "" || se.Tool != "a" || !strings.HasPrefix(se.Field(), "spec.tools[0].") {
				t.Fatalf("incomplete SchemaError: %#v", se)
			}
			if se.Pointer != "" && !strings.HasPrefix(se.Pointer, "/") {
				t.Fatalf("pointer %q is not a JSON pointer", se.Pointer)
			}
			return
		}
		if !strings.HasPrefix(res.SchemaDigest, "sha256:") || len(res.SchemaDigest) != 71 {
			t.Fatalf("digest %q", res.SchemaDigest)
		}
		again, err := Compile(tools)
		if err != nil || again.SchemaDigest != res.SchemaDigest {
			t.Fatalf("compiling twice gave %q then %q (%v)", res.SchemaDigest, again.SchemaDigest, err)
		}
	})
}
