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
	"fmt"
	"slices"
	"strconv"
	"strings"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// Personal data declared in a schema (issue #24, item 2): a field whose
// schema says x-custos-pii: <class> is that class whatever it holds, so
// names, diagnoses and addresses in structured values are known without
// guessing.

// PIIField is a place in a value a schema marks: its path from the root
// (property names, "*" for any item of an array) and its class.
type PIIField struct {
	Path  []string
	Class custosv1alpha1.PIIClass
}

// Pointer is the path as a JSON pointer pattern (/patients/*/name).
func (f PIIField) Pointer() string { return jsonPointer(f.Path) }

// maxPIIDepth bounds how deep marks are looked for (and how many local
// $refs are followed on one path).
const maxPIIDepth = 32

// maxPIINodes bounds the subschemas visited looking for marks.
const maxPIINodes = 10000

// PIIFields are the places doc (a decoded schema) marks with
// x-custos-pii, through properties, items, prefixItems, allOf, anyOf,
// oneOf and local $refs (#/$defs/..., #/definitions/...); or a
// *SchemaError at the first mark that is not one of the classes.
func PIIFields(doc any) ([]PIIField, *SchemaError) {
	var out []PIIField
	visited := 0
	onPath := map[string]bool{}
	var walk func(node any, path []string, at string, depth int) *SchemaError
	walk = func(node any, path []string, at string, depth int) *SchemaError {
		m, ok := node.(map[string]any)
		if !ok || depth > maxPIIDepth {
			return nil
		}
		if visited++; visited > maxPIINodes {
			return &SchemaError{Pointer: at, Message: fmt.Sprintf("looking for x-custos-pii marks visits more than %d subschemas (its $refs and allOf/anyOf/oneOf multiply): simplify it", maxPIINodes)}
		}
		if v, ok := m[custosv1alpha1.PIISchemaKeyword]; ok {
			s, _ := v.(string)
			if !slices.Contains(custosv1alpha1.PIIClasses, custosv1alpha1.PIIClass(s)) {
				classes := make([]string, len(custosv1alpha1.PIIClasses))
				for i, c := range custosv1alpha1.PIIClasses {
					classes[i] = string(c)
				}
				return &SchemaError{Pointer: at + "/" + custosv1alpha1.PIISchemaKeyword,
					Message: fmt.Sprintf("%v is not a class of personal data: one of %s", v, strings.Join(classes, ", "))}
			}
			out = append(out, PIIField{Path: slices.Clone(path), Class: custosv1alpha1.PIIClass(s)})
		}
		if props, ok := m["properties"].(map[string]any); ok {
			names := make([]string, 0, len(props))
			for name := range props {
				names = append(names, name)
			}
			slices.Sort(names)
			for _, name := range names {
				if err := walk(props[name], append(path, name), at+"/properties/"+escape(name), depth+1); err != nil {
					return err
				}
			}
		}
		if items, ok := m["items"]; ok {
			if err := walk(items, append(path, "*"), at+"/items", depth+1); err != nil {
				return err
			}
		}
		if prefix, ok := m["prefixItems"].([]any); ok {
			for i, item := range prefix {
				if err := walk(item, append(path, strconv.Itoa(i)), at+"/prefixItems/"+strconv.Itoa(i), depth+1); err != nil {
					return err
				}
			}
		}
		for _, key := range []string{"allOf", "anyOf", "oneOf"} {
			if subs, ok := m[key].([]any); ok {
				for i, sub := range subs {
					if err := walk(sub, path, at+"/"+key+"/"+strconv.Itoa(i), depth+1); err != nil {
						return err
					}
				}
			}
		}
		if ref, ok := m["$ref"].(string); ok && (ref == "#" || strings.HasPrefix(ref, "#/")) && !onPath[ref] {
			// A schema that refers to itself is followed once on a path.
			if target, ok := resolveLocal(doc, ref); ok {
				onPath[ref] = true
				err := walk(target, path, ref[1:], depth+1)
				delete(onPath, ref)
				if err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(doc, nil, "", 0); err != nil {
		return nil, err
	}
	return out, nil
}

// pointerUnescaper undoes pointerEscaper.
var pointerUnescaper = strings.NewReplacer("~1", "/", "~0", "~")

// resolveLocal follows a local JSON pointer reference in doc.
func resolveLocal(doc any, ref string) (any, bool) {
	node := doc
	if ref == "#" {
		return doc, true
	}
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		tok = pointerUnescaper.Replace(tok)
		m, ok := node.(map[string]any)
		if !ok {
			return nil, false
		}
		if node, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return node, true
}

// MarkedValue is a string or number in a value at a place a schema marks.
type MarkedValue struct {
	// Pointer is its JSON pointer in the value (/patients/0/name).
	Pointer string
	Class   custosv1alpha1.PIIClass
}

// Marked are the leaves (strings, numbers, booleans) of value under the
// places fields mark, each with its class; a marked object or array marks
// every leaf in it.
func Marked(fields []PIIField, value any) []MarkedValue {
	var out []MarkedValue
	for _, f := range fields {
		var visit func(v any, rest []string, at string)
		visit = func(v any, rest []string, at string) {
			if len(rest) == 0 {
				leaves(v, at, func(p string) { out = append(out, MarkedValue{Pointer: p, Class: f.Class}) })
				return
			}
			switch t := v.(type) {
			case map[string]any:
				if child, ok := t[rest[0]]; ok {
					visit(child, rest[1:], at+"/"+escape(rest[0]))
				}
			case []any:
				for i, child := range t {
					if rest[0] == "*" || rest[0] == strconv.Itoa(i) {
						visit(child, rest[1:], at+"/"+strconv.Itoa(i))
					}
				}
			}
		}
		visit(value, f.Path, "")
	}
	slices.SortFunc(out, func(a, b MarkedValue) int { return strings.Compare(a.Pointer, b.Pointer) })
	return slices.CompactFunc(out, func(a, b MarkedValue) bool { return a.Pointer == b.Pointer })
}

// leaves calls found with the pointer of every leaf of v.
func leaves(v any, at string, found func(string)) {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			leaves(t[k], at+"/"+escape(k), found)
		}
	case []any:
		for i, child := range t {
			leaves(child, at+"/"+strconv.Itoa(i), found)
		}
	case nil:
	default:
		found(at)
	}
}
