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
	"context"
	"fmt"
	"slices"

	jpfunctions "github.com/jmespath-community/go-jmespath/pkg/functions"
	"github.com/jmespath-community/go-jmespath/pkg/interpreter"
	"github.com/kyverno/kyverno-json/pkg/engine/template"
)

// impureFunctions are the kyverno-json functions checks may not call, with
// the reason Compile gives: a verdict must depend on the payload alone, so
// that the same request is always admitted or always denied and a denial
// can be reproduced from the audit record.
var impureFunctions = map[string]string{
	"time_now":     "it reads the clock: use time.now from the payload",
	"time_now_utc": "it reads the clock: use time.now from the payload",
	"time_since":   "it may read the clock: use time_diff(<from>, time.now)",
	"random":       "it is not deterministic",
}

// functionCaller is the JMESPath function table checks run with, and
// functionArity the arity of each function in it, for Compile to reject a
// call that could never succeed (an unknown function, a missing argument)
// before it denies every request of the tenant.
var functionCaller, functionArity = pureFunctions()

// arity is how many arguments a function takes; max is -1 when the last
// argument is variadic, and min -1 when the function checks its arguments
// itself.
type arity struct{ min, max int }

func pureFunctions() (interpreter.FunctionCaller, map[string]arity) {
	var entries []jpfunctions.FunctionEntry
	arities := map[string]arity{}
	for _, f := range template.GetFunctions(context.Background()) {
		if _, impure := impureFunctions[f.Name]; impure {
			continue
		}
		if f.Name == "sort_by" {
			f.Handler = copyFirstArgument(f.Handler)
		}
		entries = append(entries, f)
		arities[f.Name] = arityOf(f.Arguments)
	}
	return interpreter.NewFunctionCaller(entries...), arities
}

// arityOf counts arguments the way the JMESPath interpreter checks them.
func arityOf(args []jpfunctions.ArgSpec) arity {
	if len(args) == 0 {
		return arity{min: -1, max: -1}
	}
	a := arity{max: len(args)}
	for _, arg := range args {
		if !arg.Optional {
			a.min++
		}
		if arg.Variadic {
			a.max = -1
		}
	}
	return a
}

func (a arity) accepts(n int) bool {
	return (a.min < 0 || n >= a.min) && (a.max < 0 || n <= a.max)
}

func (a arity) String() string {
	switch {
	case a.max < 0:
		return fmt.Sprintf("it takes at least %d", a.min)
	case a.min == a.max:
		return fmt.Sprintf("it takes %d", a.min)
	default:
		return fmt.Sprintf("it takes %d to %d", a.min, a.max)
	}
}

// copyFirstArgument makes sort_by sort a copy: the JMESPath implementation
// sorts its argument in place, which would reorder the payload that the
// following checks, and concurrent evaluations of the same payload, see.
func copyFirstArgument(h jpfunctions.JpFunction) jpfunctions.JpFunction {
	return func(args []any) (any, error) {
		if len(args) > 0 {
			if list, ok := args[0].([]any); ok {
				args = append([]any{slices.Clone(list)}, args[1:]...)
			}
		}
		return h(args)
	}
}
