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

// Package policy owns the policy-as-code checks of a DataBoundary: it
// compiles each check's kyverno-json assertion tree once, and evaluates the
// compiled checks against an admission payload
// {agent, namespace, boundary, request, time} (spec.checks, at admission of
// Agents) or a call payload {agent, person, chain, tool, arguments, recent,
// time} (spec.callChecks, at custos-gateway on every tool call). Evaluation
// is pure: it reads nothing but the payload (no clock, no network, no
// files), so the same request always gets the same verdict, and fails
// closed when a check cannot be evaluated.
//
// Assertion trees follow kyverno-json
// (https://kyverno.github.io/kyverno-json/latest/policies/asserts/):
//
//   - a map projects the payload: a plain key selects the field of that name,
//     a key in parentheses, such as (contains(request.groups, 'admins')), is a
//     JMESPath expression evaluated against the current value, and a key
//     written \name\ is the field name even if it looks like an expression;
//   - a key prefixed with ~. iterates over the list or map it projects, and
//     asserts the value below it on every element;
//   - a key suffixed with ->name binds its projection to $name for the
//     expressions below it; $payload is always bound to the whole payload;
//   - a leaf is compared for equality with the projected value; a leaf in
//     parentheses is a JMESPath expression evaluated against that value
//     first; an empty map asserts that the value is present and not null;
//   - a list is matched element by element and must have the same length.
//
// JMESPath functions are those of kyverno-json minus the ones that read the
// clock or a random source (time_now, time_now_utc, time_since, random):
// checks use the payload's time instead.
package policy
