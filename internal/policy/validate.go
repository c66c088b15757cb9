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

package policy

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/jmespath-community/go-jmespath/pkg/parsing"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The expression syntax of kyverno-json's assertion trees, as its
// engine/assert package parses it (the parser is not exported). Compile
// uses these only to find the JMESPath statements to check before a check
// is accepted; evaluation goes through the library, so a drift here can make
// Compile more or less strict but never changes a verdict.
var (
	foreachRegex = regexp.MustCompile(`^~(\w+)?\.(.*)`)
	bindingRegex = regexp.MustCompile(`(.*)\s*->\s*(\w+)$`)
	escapeRegex  = regexp.MustCompile(`^\\(.+)\\$`)
	engineRegex  = regexp.MustCompile(`^\((?:(\w+):)?(.+)\)$`)
)

// expression is a key or a leaf of an assertion tree, taken apart.
type expression struct {
	foreach   bool   // ~. or ~name.
	binding   string // ->name
	engine    string // "jp" for (statement), "" for a plain field name or value
	escaped   bool   // \literal\
	statement string
}

func parseExpression(in string) expression {
	var e expression
	if m := foreachRegex.FindStringSubmatch(in); m != nil {
		e.foreach = true
		in = m[2]
	}
	if m := bindingRegex.FindStringSubmatch(in); m != nil {
		e.binding = m[2]
		in = m[1]
	}
	if m := escapeRegex.FindStringSubmatch(in); m != nil {
		e.escaped = true
		in = m[1]
	} else if m := engineRegex.FindStringSubmatch(in); m != nil {
		e.engine = m[1]
		if e.engine == "" {
			e.engine = "jp"
		}
		in = m[2]
	}
	e.statement = in
	return e
}

// validateTree reports every expression in an assertion tree that would fail
// on every request: JMESPath syntax errors, unknown or impure functions,
// calls with the wrong number of arguments, keys that open a parenthesis
// they do not close at the end (the engine would look them up as field
// names, which never exist), and expression forms the engine rejects on the
// right-hand side. at is the position inside the tree, rendered as the
// engine renders failure paths.
func validateTree(node any, at *field.Path) []string {
	var problems []string
	switch n := node.(type) {
	case map[string]any:
		// Sorted, so that Compile reports problems in a stable order.
		for _, k := range slices.Sorted(maps.Keys(n)) {
			child := at.Child(k)
			e := parseExpression(k)
			if e.engine == "" && !e.escaped && strings.HasPrefix(e.statement, "(") {
				problems = append(problems, pathString(child)+": starts with ( but does not end with ): write an expression as (expression), or escape a field name as \\name\\")
			}
			problems = append(problems, validateExpression(pathString(child), e)...)
			problems = append(problems, validateTree(n[k], child)...)
		}
	case []any:
		for i, v := range n {
			problems = append(problems, validateTree(v, at.Index(i))...)
		}
	case string:
		// A leaf not wholly in parentheses is a literal, whatever it starts
		// with: the engine compares it as written (and does not unescape
		// leaves, so there is nothing else to check).
		where := fmt.Sprintf("%s: %q", pathString(at), n)
		e := parseExpression(n)
		if e.engine != "" && e.foreach {
			problems = append(problems, where+": ~ (foreach) is only allowed in keys")
		}
		if e.engine != "" && e.binding != "" {
			problems = append(problems, where+": -> (binding) is only allowed in keys")
		}
		problems = append(problems, validateExpression(where, e)...)
	}
	return problems
}

func validateExpression(where string, e expression) []string {
	if e.engine == "" {
		return nil
	}
	if e.engine != "jp" {
		// The engine would run the statement as JMESPath whatever the
		// prefix says; refuse rather than surprise a CEL author.
		return []string{fmt.Sprintf("%s: unknown expression language %q: only JMESPath, written (expression), is supported", where, e.engine)}
	}
	ast, err := parsing.NewParser().Parse(e.statement)
	if err != nil {
		return []string{fmt.Sprintf("%s: invalid JMESPath expression: %v", where, err)}
	}
	var problems []string
	walkFunctions(ast, func(name string, args int) {
		a, known := functionArity[name]
		switch why, impure := impureFunctions[name]; {
		case impure:
			problems = append(problems, fmt.Sprintf("%s: function %s is not available to checks: %s", where, name, why))
		case !known:
			problems = append(problems, fmt.Sprintf("%s: unknown function %s", where, name))
		case !a.accepts(args):
			problems = append(problems, fmt.Sprintf("%s: function %s called with %d arguments, %s", where, name, args, a))
		}
	})
	return problems
}

// walkFunctions calls fn with the name and argument count of every function
// the expression calls.
func walkFunctions(node parsing.ASTNode, fn func(name string, args int)) {
	if node.NodeType == parsing.ASTFunctionExpression {
		if name, ok := node.Value.(string); ok {
			fn(name, len(node.Children))
		}
	}
	for _, c := range node.Children {
		walkFunctions(c, fn)
	}
}

func pathString(p *field.Path) string {
	if p == nil {
		return "<root>"
	}
	return p.String()
}
