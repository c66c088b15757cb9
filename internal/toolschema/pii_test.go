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
	"testing"

	. "github.com/onsi/gomega"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

const patientsSchema = `{
  "type": "object",
  "$defs": {"address": {"type": "object", "x-custos-pii": "location", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
  "properties": {
    "patients": {"type": "array", "items": {"type": "object", "properties": {
      "name": {"type": "string", "x-custos-pii": "person"},
      "diagnosis": {"type": "string", "x-custos-pii": "health"},
      "home": {"$ref": "#/$defs/address"},
      "ward": {"type": "string"}
    }}},
    "count": {"type": "integer"}
  }
}`

// TestPIIFields: the places a schema marks (through properties, items and
// local $refs), and the leaves of a value under them; a mark that is not
// a class is refused, naming the tool, the schema and the pointer.
func TestPIIFields(t *testing.T) {
	g := NewWithT(t)
	s, err := CompileTool(tool("find_patients", withOutput(patientsSchema)), 0)
	g.Expect(err).NotTo(HaveOccurred())
	var places []string
	for _, f := range s.OutputPII {
		places = append(places, f.Pointer()+"="+string(f.Class))
	}
	g.Expect(places).To(ConsistOf("/patients/*/name=person", "/patients/*/diagnosis=health", "/patients/*/home=location"))
	g.Expect(s.InputPII).To(BeEmpty())

	value, err := DecodeValue([]byte(`{"count": 2, "patients": [
	  {"name": "Ada Lovelace", "diagnosis": "J45.909", "ward": "3B", "home": {"street": "12 St James's Sq", "city": "London"}},
	  {"name": "Alan Turing", "ward": "1A"}]}`))
	g.Expect(err).NotTo(HaveOccurred())
	var marked []string
	for _, m := range Marked(s.OutputPII, value) {
		marked = append(marked, m.Pointer+"="+string(m.Class))
	}
	g.Expect(marked).To(Equal([]string{"/patients/0/diagnosis=health", "/patients/0/home/city=location", "/patients/0/home/street=location",
		"/patients/0/name=person", "/patients/1/name=person"}), "the ward and the count are not marked")

	_, err = Compile([]custosv1alpha1.Tool{tool("ok"), tool("find", withInput(`{"type": "object", "properties": {"ssn": {"type": "string", "x-custos-pii": "secret-ish"}}}`))})
	var se *SchemaError
	g.Expect(errors.As(err, &se)).To(BeTrue(), "%v", err)
	g.Expect(se.Field()).To(Equal("spec.tools[1].inputSchema"))
	g.Expect(se.Pointer).To(Equal("/properties/ssn/x-custos-pii"))
	g.Expect(se.Message).To(Equal("secret-ish is not a class of personal data: one of person, contact, government-id, financial, health, location, credential"))
}

// TestPIIFieldsOfRecursiveSchemas: a schema that refers to itself, or
// fans out through allOf, is walked in bounded time.
func TestPIIFieldsOfRecursiveSchemas(t *testing.T) {
	g := NewWithT(t)
	s, err := CompileTool(tool("tree", withOutput(`{"type": "object", "properties": {"name": {"type": "string", "x-custos-pii": "person"},
		"children": {"type": "array", "items": {"$ref": "#"}}}}`)), 0)
	g.Expect(err).NotTo(HaveOccurred())
	var places []string
	for _, f := range s.OutputPII {
		places = append(places, f.Pointer())
	}
	g.Expect(places).To(ConsistOf("/name", "/children/*/name"))
	fan := `{"$defs": {"a": {"allOf": [{"$ref": "#/$defs/b"}, {"$ref": "#/$defs/b"}, {"$ref": "#/$defs/b"}]},
		"b": {"allOf": [{"$ref": "#/$defs/c"}, {"$ref": "#/$defs/c"}, {"$ref": "#/$defs/c"}]},
		"c": {"allOf": [{"$ref": "#/$defs/d"}, {"$ref": "#/$defs/d"}, {"$ref": "#/$defs/d"}]},
		"d": {"allOf": [{"$ref": "#/$defs/e"}, {"$ref": "#/$defs/e"}, {"$ref": "#/$defs/e"}]},
		"e": {"allOf": [{"$ref": "#/$defs/f"}, {"$ref": "#/$defs/f"}, {"$ref": "#/$defs/f"}]},
		"f": {"allOf": [{"$ref": "#/$defs/g"}, {"$ref": "#/$defs/g"}, {"$ref": "#/$defs/g"}]},
		"g": {"allOf": [{"$ref": "#/$defs/h"}, {"$ref": "#/$defs/h"}, {"$ref": "#/$defs/h"}]},
		"h": {"allOf": [{"$ref": "#/$defs/i"}, {"$ref": "#/$defs/i"}, {"$ref": "#/$defs/i"}]},
		"i": {"allOf": [{"$ref": "#/$defs/j"}, {"$ref": "#/$defs/j"}, {"$ref": "#/$defs/j"}]},
		"j": {"type": "string", "x-custos-pii": "person"}}, "$ref": "#/$defs/a"}`
	_, err = Compile([]custosv1alpha1.Tool{tool("fan", withOutput(fan))})
	g.Expect(err).To(MatchError(ContainSubstring("visits more than 10000 subschemas")))
}
