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

package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/sts"
)

// DefaultMaxFacades bounds the facades custos-gateway keeps built.
const DefaultMaxFacades = 4096

// served is a facade and the MCP server that serves it.
type served struct {
	facade  *Facade
	handler http.Handler
}

// facadeCache keeps facades built, with their MCP servers: building one
// compiles its Toolsets' schemas, and the MCP SDK re-encodes each tool's
// schema when it is added. A facade depends only on the Toolsets (their
// spec), the token's scope and which tools were found drifted, so it is
// kept by those and shared by every caller with the same: nothing of a
// caller is in it.
type facadeCache struct {
	mu sync.Mutex
	m  map[string]*served
}

// get is the facade of toolsets for scope, built by build when not kept;
// at most max are kept (DefaultMaxFacades when 0).
func (c *facadeCache) get(toolsets []custosv1alpha1.Toolset, scope string, drift *DriftChecks, max int, build func(*Facade) http.Handler) *served {
	key := facadeKey(toolsets, scope, drift.Version())
	c.mu.Lock()
	got, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return got
	}
	// A Toolset that cannot be served is left out; it is not Ready, and
	// its status says why.
	facade, _ := NewFacade(toolsets, sts.Scopes(scope))
	got = &served{facade: facade, handler: build(facade)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*served{}
	}
	if max == 0 {
		max = DefaultMaxFacades
	}
	// Over the bound, some facade goes (map order is random enough: a
	// facade dropped is built again on its next request).
	for k := range c.m {
		if len(c.m) < max {
			break
		}
		delete(c.m, k)
	}
	c.m[key] = got
	return got
}

// Len is how many facades are kept.
func (c *facadeCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// facadeKey names what a facade is built from: the scope, the drift
// checks' version, and each Toolset by UID and generation (the API
// server bumps it on every change of spec, all NewFacade reads besides
// the name); a Toolset without a generation (not read from an API
// server) by its spec's digest.
func facadeKey(toolsets []custosv1alpha1.Toolset, scope string, driftVersion uint64) string {
	scopes := sts.Scopes(scope)
	slices.Sort(scopes)
	var b strings.Builder
	b.WriteString(strings.Join(scopes, " "))
	b.WriteString("|")
	b.WriteString(strconv.FormatUint(driftVersion, 10))
	for i := range toolsets {
		ts := &toolsets[i]
		b.WriteString("|")
		b.WriteString(ts.Namespace + "/" + ts.Name + "/" + string(ts.UID) + "/")
		if ts.Generation > 0 {
			b.WriteString(strconv.FormatInt(ts.Generation, 10))
			continue
		}
		raw, _ := json.Marshal(ts.Spec)
		sum := sha256.Sum256(raw)
		b.WriteString(hex.EncodeToString(sum[:]))
	}
	return b.String()
}
