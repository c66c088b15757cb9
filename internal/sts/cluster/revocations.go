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

package cluster

import (
	"context"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/custos-dev/custos/internal/sts"
)

// Revocations says an agent is revoked while it may not act: suspended,
// frozen, decommissioned, gone or its image not verified, as the Agent
// says now. Every agent of a chain is checked at every exchange, so
// suspending one stops every token that passed through it from being
// exchanged further. Revoked tokens and sessions (by jti and sid) are not
// kept yet.
type Revocations struct {
	Reader      client.Reader
	TrustDomain string
	// Timeout bounds one read; 5 s when 0.
	Timeout time.Duration
}

var _ sts.Revocations = (*Revocations)(nil)

// Revoked reports whether the agent with SPIFFE ID agentID may not act.
func (r *Revocations) Revoked(_, _, agentID string) (string, bool) {
	if agentID == "" {
		return "", false
	}
	key, ok := (&Targets{TrustDomain: r.TrustDomain}).agentOf(agentID)
	if !ok {
		return "it is no agent of trust domain " + r.TrustDomain, true
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	agent, err := getAgent(ctx, r.Reader, key)
	if err != nil {
		// A read that fails denies: revocation must not fail open.
		return strings.TrimSpace("its Agent cannot be read: " + err.Error()), true
	}
	if ok, why := runnable(agent); !ok {
		return why, true
	}
	return "", false
}
