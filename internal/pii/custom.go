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

package pii

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// Pattern is a tenant's own kind of personal data (a DataBoundary's
// spec.pii.patterns), compiled.
type Pattern struct {
	Type       Type
	re         *regexp.Regexp
	validator  custosv1alpha1.PIIValidator
	context    *regexp.Regexp
	confidence float64
}

// CompilePatterns compiles a DataBoundary's patterns, or says which field
// of which is wrong and why (at path).
func CompilePatterns(ps []custosv1alpha1.PIIPattern, path *field.Path) ([]Pattern, field.ErrorList) {
	var out []Pattern
	var errs field.ErrorList
	for i, p := range ps {
		at := path.Index(i)
		re, err := regexp.Compile(p.Regex)
		if err != nil {
			errs = append(errs, field.Invalid(at.Child("regex"), p.Regex, "not an RE2 regular expression: "+err.Error()))
			continue
		}
		if re.MatchString("") {
			errs = append(errs, field.Invalid(at.Child("regex"), p.Regex, "matches the empty string: a pattern must match a value"))
			continue
		}
		if n := programSize(p.Regex); n > maxPatternInstructions {
			errs = append(errs, field.Invalid(at.Child("regex"), p.Regex,
				fmt.Sprintf("compiles to %d instructions, more than %d: every call's text is scanned with it (shorten its repetitions)", n, maxPatternInstructions)))
			continue
		}
		c := Pattern{Type: Type("custom:" + p.Name), re: re, validator: p.Validator, confidence: 0.8}
		if p.ConfidencePercent != nil {
			c.confidence = float64(*p.ConfidencePercent) / 100
		}
		if len(p.Context) > 0 {
			c.context = contextWords(p.Context...)
		}
		out = append(out, c)
	}
	return out, errs
}

// find are the pattern's matches in text that stand alone, pass its
// validator and, with context words, follow one within 40 bytes.
func (p *Pattern) find(text string) []Finding {
	var out []Finding
	for _, m := range p.re.FindAllStringIndex(text, -1) {
		start, end := m[0], m[1]
		if start == end || !isolated(text, start, end) {
			continue
		}
		v := text[start:end]
		switch p.validator {
		case custosv1alpha1.PIIValidatorLuhn:
			if !luhn(digitsOf(v)) {
				continue
			}
		case custosv1alpha1.PIIValidatorMod97:
			compact := strings.ToUpper(withoutSeparators.Replace(v))
			if len(compact) < 5 || !mod97(compact) {
				continue
			}
		}
		if p.context != nil && !contextBefore(text, start, 40, p.context) {
			continue
		}
		out = append(out, Finding{Type: p.Type, Start: start, End: end, Confidence: p.confidence})
	}
	return out
}

// String names the pattern.
func (p *Pattern) String() string { return fmt.Sprintf("%s (%s)", p.Type, p.re) }

// maxPatternInstructions bounds a pattern's compiled size: RE2's time is
// linear in the text, times the program's size.
const maxPatternInstructions = 500

// programSize is the number of instructions re compiles to.
func programSize(re string) int {
	parsed, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		return 0
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		return 0
	}
	return len(prog.Inst)
}
