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

package boundary

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// Reader reads what the checks take. Gathering is the only part of this
// package that does I/O; the checks stay pure.
type Reader = client.Reader

// Placement is a namespace and the one DataBoundary that covers it.
type Placement struct {
	Namespace *corev1.Namespace
	// Boundary is nil when Unplaced is set.
	Boundary *custosv1alpha1.DataBoundary
	// Unplaced is a *NotFoundError or *ConflictError: no single boundary
	// covers the namespace. It is a verdict, not a failure to read.
	Unplaced error
}

// GatheredToolset is a Toolset an Agent references, with what its checks
// read beside it.
type GatheredToolset struct {
	// Index is the reference's index in spec.toolsetRefs.
	Index   int
	Key     types.NamespacedName
	Toolset *custosv1alpha1.Toolset
	// EndpointNamespace is the namespace of the Toolset's in-cluster
	// endpoint; nil when it has none or it does not exist.
	EndpointNamespace *corev1.Namespace
}

// AgentInputs are everything the checks of an Agent against its
// DataBoundary read. The Agent reconciler and the Agent webhook both gather
// them here and check them with Check, so they reach the same verdict on the
// same objects by construction.
type AgentInputs struct {
	Placement
	// Toolsets are the referenced Toolsets that exist, in spec order.
	Toolsets []GatheredToolset
	// MissingToolsets are the referenced Toolsets that do not exist, in
	// spec order. Gathered only when a boundary places the agent.
	MissingToolsets []GatheredToolset
}

// ReadError is a failure to read (as opposed to observing that something
// does not exist). It changes no verdict: the caller retries.
type ReadError struct {
	What string
	Err  error
}

func (e *ReadError) Error() string { return fmt.Sprintf("reading %s: %v", e.What, e.Err) }
func (e *ReadError) Unwrap() error { return e.Err }

// IsReadError reports whether err is a failure to read.
func IsReadError(err error) bool {
	var re *ReadError
	return errors.As(err, &re)
}

// GatherPlacement reads namespace and selects the DataBoundary that covers
// it. When the cache shows none, live (if not nil) is asked before "none" is
// the answer: a boundary created a moment ago may not be cached yet. Every
// error returned is a *ReadError; a namespace that does not exist is one
// too (what is in it is being deleted with it).
func GatherPlacement(ctx context.Context, r, live Reader, namespace string) (Placement, error) {
	var p Placement
	ns := &corev1.Namespace{}
	if err := r.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
		return p, &ReadError{What: "namespace " + namespace, Err: err}
	}
	p.Namespace = ns
	var boundaries custosv1alpha1.DataBoundaryList
	if err := r.List(ctx, &boundaries); err != nil {
		return p, &ReadError{What: "DataBoundaries", Err: err}
	}
	b, err := Select(boundaries.Items, ns)
	var notFound *NotFoundError
	if errors.As(err, &notFound) && live != nil {
		if err := live.List(ctx, &boundaries); err != nil {
			return p, &ReadError{What: "DataBoundaries", Err: err}
		}
		b, err = Select(boundaries.Items, ns)
	}
	if err != nil {
		// Not found, a conflict, or a boundary whose selector cannot be
		// read (it covers nothing until fixed): all verdicts.
		p.Unplaced = err
		return p, nil
	}
	p.Boundary = b
	return p, nil
}

// GatherAgent gathers the inputs of agent's checks: its placement and, when
// a boundary places it, the Toolsets it references and their endpoints'
// namespaces. Every error returned is a *ReadError; objects that do not
// exist are recorded as such.
func GatherAgent(ctx context.Context, r, live Reader, agent *custosv1alpha1.Agent) (*AgentInputs, error) {
	p, err := GatherPlacement(ctx, r, live, agent.Namespace)
	in := &AgentInputs{Placement: p}
	if err != nil || p.Boundary == nil {
		return in, err
	}
	for i, ref := range agent.Spec.ToolsetRefs {
		g := GatheredToolset{Index: i, Key: ref.Key(agent.Namespace)}
		ts := &custosv1alpha1.Toolset{}
		if err := r.Get(ctx, g.Key, ts); apierrors.IsNotFound(err) {
			in.MissingToolsets = append(in.MissingToolsets, g)
			continue
		} else if err != nil {
			return in, &ReadError{What: "Toolset " + g.Key.String(), Err: err}
		}
		g.Toolset = ts
		if g.EndpointNamespace, err = EndpointNamespace(ctx, r, ts); err != nil {
			return in, err
		}
		in.Toolsets = append(in.Toolsets, g)
	}
	return in, nil
}

// EndpointNamespace reads the namespace of a Toolset's in-cluster endpoint:
// nil when it has none or the namespace does not exist. Every error
// returned is a *ReadError.
func EndpointNamespace(ctx context.Context, r Reader, ts *custosv1alpha1.Toolset) (*corev1.Namespace, error) {
	in := ts.Spec.Endpoint.InCluster
	if in == nil {
		return nil, nil
	}
	ns := &corev1.Namespace{}
	if err := r.Get(ctx, types.NamespacedName{Name: in.Namespace}, ns); apierrors.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, &ReadError{What: "namespace " + in.Namespace, Err: err}
	}
	return ns, nil
}

// Check returns every way the gathered agent breaks its boundary: the
// agent's own rules (CheckAgent) and each existing Toolset's (CheckToolset),
// the latter on spec.toolsetRefs[i]. A Toolset that does not exist breaks
// nothing: the agent's egress to it stays closed until it exists. Nil
// without a boundary: Unplaced says why.
func (in *AgentInputs) Check(agent *custosv1alpha1.Agent) field.ErrorList {
	if in.Boundary == nil {
		return nil
	}
	errs := CheckAgent(in.Boundary, in.Namespace, agent)
	for _, g := range in.Toolsets {
		path := field.NewPath("spec", "toolsetRefs").Index(g.Index)
		if owner := g.Toolset.Labels[custosv1alpha1.TenantLabel]; owner != in.Boundary.Spec.Tenant {
			errs = append(errs, field.Forbidden(path, fmt.Sprintf("Toolset %s belongs to tenant %q, not %q", g.Key, owner, in.Boundary.Spec.Tenant)))
			continue
		}
		for _, e := range CheckToolset(in.Boundary, g.Toolset, g.EndpointNamespace) {
			errs = append(errs, field.Forbidden(path, fmt.Sprintf("Toolset %s: %s: %s", g.Key, e.Field, e.Detail)))
		}
	}
	return errs
}
