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

// Package toolschema compiles the input and output JSON Schemas of a
// Toolset's tools, summarizes the Toolset's access and computes the digest
// that shows when any schema changes. It owns the rules for what a tool
// schema may be: JSON Schema 2020-12 unless the schema names another draft,
// compiled offline, with references resolved only within the schema itself
// and the JSON Schema metaschemas.
package toolschema

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"k8s.io/apimachinery/pkg/runtime"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// The two schemas of a tool, named as their fields in spec.tools[i].
const (
	InputSchema  = "inputSchema"
	OutputSchema = "outputSchema"
)

// Result summarizes a Toolset whose schemas all compile.
type Result struct {
	// Tools is the number of tools.
	Tools int

	// Access is ReadOnly when every tool is Read, else ReadWrite.
	Access custosv1alpha1.ToolsetAccess

	// SchemaDigest is "sha256:<hex>" over a canonical encoding of every
	// tool's name and schemas. It does not change with key order or
	// whitespace, nor with the order of the tools (spec.tools is a map keyed
	// by name), and changes when any schema changes. It is empty when a
	// schema does not compile.
	SchemaDigest string
}

// SchemaError says which schema of which tool does not compile, and where in
// it.
type SchemaError struct {
	// Tool is the tool's name.
	Tool string

	// Index is the tool's index in spec.tools.
	Index int

	// Which is InputSchema or OutputSchema.
	Which string

	// Pointer is the JSON pointer inside the schema where it fails, such as
	// /properties/amount/type; empty for the schema as a whole.
	Pointer string

	// Message says what is wrong there.
	Message string

	// Err is the compiler's error, when there is one.
	Err error
}

// Field is the path of the failing schema in the Toolset, such as
// spec.tools[1].inputSchema.
func (e *SchemaError) Field() string {
	return fmt.Sprintf("spec.tools[%d].%s", e.Index, e.Which)
}

func (e *SchemaError) Error() string {
	where := ""
	if e.Pointer != "" {
		where = fmt.Sprintf(" at %q", e.Pointer)
	}
	return fmt.Sprintf("tool %q: %s is not a valid JSON Schema%s: %s", e.Tool, e.Field(), where, e.Message)
}

func (e *SchemaError) Unwrap() error { return e.Err }

// Compile compiles every tool's input and output schema (an absent schema is
// no schema) and summarizes the tools. It stops at the first schema that
// does not compile and returns a *SchemaError for it; Tools and Access are
// filled in even then, as they do not depend on the schemas.
//
// Nothing is fetched: a $ref or $schema that points outside the schema
// (http, https, file or any other URL that is not a JSON Schema metaschema)
// fails to compile. Tool schemas are reviewed as part of the Toolset, and a
// schema that could change behind a URL, or read the operator's files, would
// escape that review.
func Compile(tools []custosv1alpha1.Tool) (Result, error) {
	res := Result{Tools: len(tools), Access: custosv1alpha1.ToolsetReadOnly}
	for _, t := range tools {
		if t.Access != custosv1alpha1.ToolAccessRead {
			res.Access = custosv1alpha1.ToolsetReadWrite
		}
	}

	entries := make([]digestEntry, 0, len(tools))
	for i, t := range tools {
		entry := digestEntry{Name: t.Name}
		for _, which := range []string{InputSchema, OutputSchema} {
			raw := t.InputSchema
			if which == OutputSchema {
				raw = t.OutputSchema
			}
			doc, _, present, err := compileOne(raw)
			if err != nil {
				err.Tool, err.Index, err.Which = t.Name, i, which
				return res, err
			}
			if !present {
				continue
			}
			if which == InputSchema {
				entry.InputSchema = doc
			} else {
				entry.OutputSchema = doc
			}
		}
		entries = append(entries, entry)
	}
	digest, err := digestOf(entries)
	if err != nil {
		return res, err
	}
	res.SchemaDigest = digest
	return res, nil
}

// digestEntry is one tool in the digest's canonical encoding. Schemas are
// decoded documents: encoding/json writes map keys sorted and without
// insignificant whitespace, and keeps numbers as written.
type digestEntry struct {
	Name         string `json:"name"`
	InputSchema  any    `json:"inputSchema"`
	OutputSchema any    `json:"outputSchema"`
}

func digestOf(entries []digestEntry) (string, error) {
	slices.SortStableFunc(entries, func(a, b digestEntry) int { return strings.Compare(a.Name, b.Name) })
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(entries); err != nil {
		return "", fmt.Errorf("encoding the tool schemas for their digest: %w", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// schemaURL is where each schema is placed for the compiler. Every schema is
// compiled by a compiler of its own, so the same URL never collides; it is
// stripped from messages, where it would mean nothing to the user.
const (
	schemaBase = "mem://custos/"
	schemaURL  = schemaBase + "schema.json"
)

// compileOne decodes and compiles one schema. It returns the decoded
// document for the digest, the compiled schema, and whether a schema was
// there at all.
func compileOne(raw *runtime.RawExtension) (any, *jsonschema.Schema, bool, *SchemaError) {
	data, err := rawBytes(raw)
	if err != nil {
		return nil, nil, false, &SchemaError{Message: err.Error(), Err: err}
	}
	if data == nil {
		return nil, nil, false, nil
	}
	doc, err := decode(data)
	if err != nil {
		return nil, nil, false, &SchemaError{Message: "not JSON: " + err.Error(), Err: err}
	}

	c := jsonschema.NewCompiler()
	// Pinned, so that a schema without $schema keeps its meaning when the
	// library's default moves on.
	c.DefaultDraft(jsonschema.Draft2020)
	// The default loader reads files; this one loads nothing. Metaschemas
	// are built into the library and are resolved before the loader is
	// asked.
	c.UseLoader(offlineLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, nil, false, &SchemaError{Message: shorten(err.Error()), Err: err}
	}
	compiled, err := c.Compile(schemaURL)
	if err != nil {
		return nil, nil, false, describe(doc, err)
	}
	// Personal data it marks must be marked with a class there is.
	if _, perr := PIIFields(doc); perr != nil {
		return nil, nil, false, perr
	}
	return doc, compiled, true, nil
}

// Schemas are one tool's compiled schemas, nil where it has none: what the
// gateway checks a call's arguments and result against; and the places
// each marks as personal data (x-custos-pii).
type Schemas struct {
	Input, Output       *jsonschema.Schema
	InputPII, OutputPII []PIIField
}

// CompileTool compiles the schemas of t, spec.tools[index], by the rules
// Compile applies.
func CompileTool(t custosv1alpha1.Tool, index int) (Schemas, error) {
	var out Schemas
	for _, which := range []string{InputSchema, OutputSchema} {
		raw := t.InputSchema
		if which == OutputSchema {
			raw = t.OutputSchema
		}
		doc, compiled, _, err := compileOne(raw)
		if err != nil {
			err.Tool, err.Index, err.Which = t.Name, index, which
			return Schemas{}, err
		}
		// Checked by compileOne.
		marked, _ := PIIFields(doc)
		if which == InputSchema {
			out.Input, out.InputPII = compiled, marked
		} else {
			out.Output, out.OutputPII = compiled, marked
		}
	}
	return out, nil
}

// ValueError says where a value breaks its schema, and how.
type ValueError struct {
	// Pointer is the JSON pointer of the offending place in the value,
	// such as /amount; empty for the value as a whole.
	Pointer string
	// Message says which rule it breaks.
	Message string
}

func (e *ValueError) Error() string {
	where := "the value"
	if e.Pointer != "" {
		where = e.Pointer
	}
	return where + ": " + e.Message
}

// Validate checks value (JSON decoded with numbers kept as written, as
// DecodeValue does) against s; a nil s takes anything. It names the
// deepest place that fails and the rule it breaks.
func Validate(s *jsonschema.Schema, value any) *ValueError {
	if s == nil {
		return nil
	}
	err := s.Validate(value)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return &ValueError{Message: shorten(err.Error())}
	}
	leaf := deepestCause(verr)
	return &ValueError{Pointer: jsonPointer(leaf.InstanceLocation), Message: leaf.ErrorKind.LocalizedString(printer)}
}

// DecodeValue reads exactly one JSON value for Validate, numbers kept as
// written.
func DecodeValue(data []byte) (any, error) { return decode(data) }

func rawBytes(raw *runtime.RawExtension) ([]byte, error) {
	if raw == nil {
		return nil, nil
	}
	if len(bytes.TrimSpace(raw.Raw)) > 0 {
		return raw.Raw, nil
	}
	if raw.Object != nil {
		data, err := json.Marshal(raw.Object)
		if err != nil {
			return nil, fmt.Errorf("encoding the schema: %w", err)
		}
		return data, nil
	}
	return nil, nil
}

// decode reads exactly one JSON value, keeping numbers as written.
func decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the schema")
	}
	return doc, nil
}

// offlineLoader refuses every URL the compiler asks for.
type offlineLoader struct{}

// errNotLoaded is what offlineLoader answers.
var errNotLoaded = errors.New("schemas are compiled offline: only references within the schema (such as #/$defs/name) and to the JSON Schema metaschemas resolve; put the referenced schema under $defs")

func (offlineLoader) Load(string) (any, error) {
	return nil, errNotLoaded
}

var printer = message.NewPrinter(language.English)

// describe turns a compiler error into a SchemaError with the JSON pointer
// of the place in doc that fails.
func describe(doc any, err error) *SchemaError {
	se := &SchemaError{Message: shorten(err.Error()), Err: err}

	var invalid *jsonschema.SchemaValidationError
	var load *jsonschema.LoadURLError
	var notFound *jsonschema.JSONPointerNotFoundError
	var badPointer *jsonschema.InvalidJsonPointerError
	var anchor *jsonschema.AnchorNotFoundError
	var badRegex *jsonschema.InvalidRegexError
	var badID *jsonschema.ParseIDError
	var badAnchor *jsonschema.ParseAnchorError
	var dupID *jsonschema.DuplicateIDError
	var dupAnchor *jsonschema.DuplicateAnchorError
	switch {
	case errors.As(err, &invalid):
		// The schema does not validate against its metaschema: the deepest
		// failure is where the user has to look.
		var verr *jsonschema.ValidationError
		if errors.As(invalid.Err, &verr) {
			leaf := deepestCause(verr)
			se.Pointer = pointerIn(invalid.URL) + jsonPointer(leaf.InstanceLocation)
			se.Message = leaf.ErrorKind.LocalizedString(printer)
		}
	case errors.As(err, &load):
		se.Pointer = findReference(doc, load.URL)
		se.Message = fmt.Sprintf("cannot load %q: %v", shorten(load.URL), errNotLoaded)
	case errors.As(err, &notFound):
		se.Pointer = findReference(doc, notFound.URL)
		se.Message = fmt.Sprintf("reference %q points to nothing in the schema", shorten(notFound.URL))
	case errors.As(err, &badPointer):
		se.Pointer = findReference(doc, badPointer.URL)
		se.Message = fmt.Sprintf("reference %q is not a valid JSON pointer", shorten(badPointer.URL))
	case errors.As(err, &anchor):
		se.Pointer = findReference(doc, anchor.Reference)
		se.Message = fmt.Sprintf("anchor %q is not defined in the schema", shorten(anchor.Reference))
	case errors.As(err, &badRegex):
		se.Pointer = pointerIn(badRegex.URL)
		se.Message = fmt.Sprintf("%q is not a valid regular expression: %v", badRegex.Regex, badRegex.Err)
	case errors.As(err, &badID):
		se.Pointer = pointerIn(badID.URL)
		se.Message = "invalid $id"
	case errors.As(err, &badAnchor):
		se.Pointer = pointerIn(badAnchor.URL)
		se.Message = "invalid anchor"
	case errors.As(err, &dupID):
		se.Pointer = dupID.Ptr2
		se.Message = fmt.Sprintf("$id %q is also declared at %q", dupID.ID, dupID.Ptr1)
	case errors.As(err, &dupAnchor):
		se.Pointer = dupAnchor.Ptr2
		se.Message = fmt.Sprintf("anchor %q is also declared at %q", dupAnchor.Anchor, dupAnchor.Ptr1)
	}
	return se
}

// deepestCause returns the first of the most deeply nested failures, which
// names the offending keyword rather than the allOf or $ref that led there.
func deepestCause(e *jsonschema.ValidationError) *jsonschema.ValidationError {
	best := e
	var walk func(*jsonschema.ValidationError)
	walk = func(v *jsonschema.ValidationError) {
		if len(v.Causes) == 0 {
			if len(v.InstanceLocation) > len(best.InstanceLocation) || len(best.Causes) > 0 {
				best = v
			}
			return
		}
		for _, c := range v.Causes {
			walk(c)
		}
	}
	walk(e)
	return best
}

// jsonPointer encodes tokens as an RFC 6901 JSON pointer.
func jsonPointer(tokens []string) string {
	var sb strings.Builder
	for _, tok := range tokens {
		sb.WriteByte('/')
		sb.WriteString(escape(tok))
	}
	return sb.String()
}

// pointerEscaper escapes a JSON pointer's reference token (RFC 6901).
var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func escape(s string) string { return pointerEscaper.Replace(s) }

// pointerIn returns the JSON pointer in the fragment of a URL the compiler
// reports inside the schema, which it writes percent-encoded.
func pointerIn(u string) string {
	base, frag, ok := strings.Cut(u, "#")
	if !ok || base != schemaURL || !strings.HasPrefix(frag, "/") {
		return ""
	}
	if unescaped, err := url.PathUnescape(frag); err == nil {
		return unescaped
	}
	return frag
}

// findReference returns the JSON pointer of the first $ref, $dynamicRef or
// $schema in doc whose value names target, the URL the compiler could not
// resolve. The compiler reports the URL it resolved, not where the reference
// was written, so a relative reference is matched as a suffix of it. Empty
// when none matches.
func findReference(doc any, target string) string {
	targets := []string{target}
	if unescaped, err := url.PathUnescape(target); err == nil && unescaped != target {
		targets = append(targets, unescaped)
	}
	var found string
	var walk func(v any, ptr string) bool
	walk = func(v any, ptr string) bool {
		switch v := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				p := ptr + jsonPointer([]string{k})
				if ref, ok := v[k].(string); ok && ref != "" && (k == "$ref" || k == "$dynamicRef" || k == "$schema") {
					for _, t := range targets {
						if strings.HasSuffix(t, ref) || strings.HasSuffix(t, "/"+strings.TrimPrefix(ref, "./")) {
							found = p
							return true
						}
					}
				}
				if walk(v[k], p) {
					return true
				}
			}
		case []any:
			for i, item := range v {
				if walk(item, fmt.Sprintf("%s/%d", ptr, i)) {
					return true
				}
			}
		}
		return false
	}
	walk(doc, "")
	return found
}

// shorten removes the compiler's placeholder URL from a message, leaving
// references as the user wrote them (#/$defs/x, other.json).
func shorten(s string) string {
	s = strings.ReplaceAll(s, schemaURL, "")
	return strings.ReplaceAll(s, schemaBase, "")
}
