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

package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxSafeInteger is the largest integer an IEEE 754 double holds exactly;
// RFC 8785 numbers are doubles, so larger integers would change meaning.
const maxSafeInteger = 1<<53 - 1

// Canonicalize returns the RFC 8785 (JSON Canonicalization Scheme) form of
// the JSON text data: no insignificant white space, object members sorted
// by the UTF-16 code units of their names, strings with the minimal
// escaping RFC 8785 prescribes, and numbers in ECMAScript form.
//
// Audit records only hold strings, integers, booleans, objects and arrays,
// so Canonicalize supports numbers only when they are integers of at most
// 2^53-1 in magnitude (written in any JSON form, such as 1e3 or 4.0) and
// refuses other numbers with an error rather than risk formatting them
// differently from another implementation. It also refuses invalid UTF-8,
// duplicate member names and trailing data.
func Canonicalize(data []byte) ([]byte, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("canonical JSON: input is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out []byte
	out, err := canonicalValue(dec, out, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("canonical JSON: data after the top-level value")
	}
	return out, nil
}

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 64

func canonicalValue(dec *json.Decoder, out []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("canonical JSON: nesting deeper than %d", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("canonical JSON: %w", err)
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			type member struct {
				name  string
				value []byte
			}
			var members []member
			seen := map[string]bool{}
			for dec.More() {
				nt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("canonical JSON: %w", err)
				}
				name := nt.(string)
				if seen[name] {
					return nil, fmt.Errorf("canonical JSON: duplicate member name %q", name)
				}
				seen[name] = true
				value, err := canonicalValue(dec, nil, depth+1)
				if err != nil {
					return nil, err
				}
				members = append(members, member{name, value})
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("canonical JSON: %w", err)
			}
			slices.SortFunc(members, func(a, b member) int { return compareUTF16(a.name, b.name) })
			out = append(out, '{')
			for i, m := range members {
				if i > 0 {
					out = append(out, ',')
				}
				out = appendCanonicalString(out, m.name)
				out = append(out, ':')
				out = append(out, m.value...)
			}
			return append(out, '}'), nil
		case '[':
			out = append(out, '[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					out = append(out, ',')
				}
				if out, err = canonicalValue(dec, out, depth+1); err != nil {
					return nil, err
				}
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("canonical JSON: %w", err)
			}
			return append(out, ']'), nil
		}
		return nil, fmt.Errorf("canonical JSON: unexpected %v", v)
	case string:
		return appendCanonicalString(out, v), nil
	case json.Number:
		return appendCanonicalNumber(out, v)
	case bool:
		return strconv.AppendBool(out, v), nil
	case nil:
		return append(out, "null"...), nil
	}
	return nil, fmt.Errorf("canonical JSON: unexpected token %v", tok)
}

// appendCanonicalNumber writes an integral number as ECMAScript would:
// plain decimal digits, no exponent, no fraction, and 0 for -0.
func appendCanonicalNumber(out []byte, n json.Number) ([]byte, error) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		if i > maxSafeInteger || i < -maxSafeInteger {
			return nil, fmt.Errorf("canonical JSON: integer %s is outside ±(2^53-1)", n)
		}
		return strconv.AppendInt(out, i, 10), nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || f != math.Trunc(f) {
		return nil, fmt.Errorf("canonical JSON: number %s is not an integer; audit records hold only integers", n)
	}
	if f > maxSafeInteger || f < -maxSafeInteger {
		return nil, fmt.Errorf("canonical JSON: integer %s is outside ±(2^53-1)", n)
	}
	return strconv.AppendInt(out, int64(f), 10), nil
}

// appendCanonicalString writes s with RFC 8785's escaping: only '"', '\\'
// and the control characters are escaped, the latter as \b \t \n \f \r or
// \u00xx in lower case; everything else, including non-ASCII, is written
// as UTF-8. s must be valid UTF-8.
func appendCanonicalString(out []byte, s string) []byte {
	out = append(out, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		out = append(out, s[start:i]...)
		switch c {
		case '"':
			out = append(out, '\\', '"')
		case '\\':
			out = append(out, '\\', '\\')
		case '\b':
			out = append(out, '\\', 'b')
		case '\t':
			out = append(out, '\\', 't')
		case '\n':
			out = append(out, '\\', 'n')
		case '\f':
			out = append(out, '\\', 'f')
		case '\r':
			out = append(out, '\\', 'r')
		default:
			const hex = "0123456789abcdef"
			out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	out = append(out, s[start:]...)
	return append(out, '"')
}

// compareUTF16 orders strings by their UTF-16 code units, as RFC 8785
// sorts member names. It differs from byte order only when one string has
// a character at or above U+10000 where the other has one in
// U+E000..U+FFFF.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			ua, ub := utf16Unit(ra), utf16Unit(rb)
			if ua != ub {
				if ua < ub {
					return -1
				}
				return 1
			}
			// Two supplementary characters with the same high surrogate.
			if ra < rb {
				return -1
			}
			return 1
		}
		a, b = a[na:], b[nb:]
	}
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return -1
	}
	return 1
}

// utf16Unit is the first UTF-16 code unit of r.
func utf16Unit(r rune) rune {
	if r >= 0x10000 {
		hi, _ := utf16.EncodeRune(r)
		return hi
	}
	return r
}

// CanonicalValue returns the RFC 8785 form of v, a value as encoding/json
// decodes JSON into an any (nil, bool, float64, string, []any,
// map[string]any). Unlike Canonicalize, it takes numbers that are not
// integers, written as ECMAScript writes doubles: for digests of documents
// that hold them, such as a tool call's arguments or an agent's decision
// record, never for audit records themselves.
// (encoding/json has bounded v's depth already.)
func CanonicalValue(v any) ([]byte, error) { return appendCanonicalValue(nil, v) }

func appendCanonicalValue(out []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(out, "null"...), nil
	case bool:
		return strconv.AppendBool(out, v), nil
	case string:
		if !utf8.ValidString(v) {
			return nil, errors.New("canonical JSON: a string is not valid UTF-8")
		}
		return appendCanonicalString(out, v), nil
	case float64:
		return appendESNumber(out, v)
	case []any:
		out = append(out, '[')
		for i, e := range v {
			if i > 0 {
				out = append(out, ',')
			}
			var err error
			if out, err = appendCanonicalValue(out, e); err != nil {
				return nil, err
			}
		}
		return append(out, ']'), nil
	case map[string]any:
		names := make([]string, 0, len(v))
		for name := range v {
			if !utf8.ValidString(name) {
				return nil, errors.New("canonical JSON: a member name is not valid UTF-8")
			}
			names = append(names, name)
		}
		slices.SortFunc(names, compareUTF16)
		out = append(out, '{')
		for i, name := range names {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendCanonicalString(out, name)
			out = append(out, ':')
			var err error
			if out, err = appendCanonicalValue(out, v[name]); err != nil {
				return nil, err
			}
		}
		return append(out, '}'), nil
	}
	return nil, fmt.Errorf("canonical JSON: unexpected %T", v)
}

// appendESNumber writes f as ECMAScript's Number.prototype.toString does
// (ECMA-262, Number::toString), which RFC 8785 prescribes: the shortest
// digits that read back as f, in plain form for exponents from -7 to 20
// and in exponent form otherwise.
func appendESNumber(out []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, errors.New("canonical JSON: NaN and infinities are not JSON numbers")
	}
	if f == 0 {
		return append(out, '0'), nil // -0 too
	}
	if f < 0 {
		out = append(out, '-')
		f = -f
	}
	// d.ddddde±xx: the shortest digits s, k of them, and x = s × 10^(n-k).
	mantissa, exp, _ := strings.Cut(strconv.FormatFloat(f, 'e', -1, 64), "e")
	digits := strings.Replace(mantissa, ".", "", 1)
	e, err := strconv.Atoi(exp)
	if err != nil {
		return nil, fmt.Errorf("canonical JSON: number %v: %w", f, err)
	}
	k, n := len(digits), e+1
	switch {
	case k <= n && n <= 21:
		out = append(out, digits...)
		for range n - k {
			out = append(out, '0')
		}
	case 0 < n && n <= 21:
		out = append(out, digits[:n]...)
		out = append(out, '.')
		out = append(out, digits[n:]...)
	case -6 < n && n <= 0:
		out = append(out, "0."...)
		for range -n {
			out = append(out, '0')
		}
		out = append(out, digits...)
	default:
		out = append(out, digits[0])
		if k > 1 {
			out = append(out, '.')
			out = append(out, digits[1:]...)
		}
		out = append(out, 'e')
		if n-1 >= 0 {
			out = append(out, '+')
		}
		out = strconv.AppendInt(out, int64(n-1), 10)
	}
	return out, nil
}
