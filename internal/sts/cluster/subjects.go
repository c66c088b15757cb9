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
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/sts"
)

// Subjects verifies subject tokens: a token of the tenant's own issuer
// (the hop before was an exchange), or a person's token from an issuer the
// tenant's DataBoundary trusts (spec.trustedIssuers), its keys fetched over
// https and cached, its claims mapped as the DataBoundary says.
type Subjects struct {
	// Reader reads DataBoundaries (the STS's cache).
	Reader client.Reader
	// Issuers are the STS's own, by tenant.
	Issuers sts.Issuers
	// HTTPClient fetches the trusted issuers' discovery documents and keys.
	HTTPClient *http.Client
	Clock      clock.PassiveClock
	// Context bounds the key sets' background fetches: the STS's life.
	Context context.Context

	mu        sync.Mutex
	verifiers map[string]*oidc.IDTokenVerifier // by issuer and keys URL
}

var _ sts.SubjectVerifier = (*Subjects)(nil)

// VerifySubject verifies token as tenant's subject token. audiences are
// what a token of the tenant's own issuer must carry one of (the actor's
// own); a person's token must carry one of its trusted issuer's audiences.
func (s *Subjects) VerifySubject(ctx context.Context, tenant, token string, audiences []string) (*sts.Subject, error) {
	iss, err := unverifiedIssuer(token)
	if err != nil {
		return nil, err
	}
	if own, ok := s.Issuers.Issuer(tenant); ok && iss == own.URL {
		var last error
		for _, aud := range audiences {
			c, err := own.Verify(token, aud, s.Clock.Now())
			if err == nil {
				return &sts.Subject{Claims: c, Groups: c.Groups}, nil
			}
			last = err
		}
		return nil, last
	}
	trusted, boundary, err := s.trustedIssuer(ctx, tenant, iss)
	if err != nil {
		return nil, err
	}
	v, err := s.verifier(trusted)
	if err != nil {
		return nil, err
	}
	idt, err := v.Verify(ctx, token)
	if err != nil {
		return nil, fmt.Errorf("a token of %s trusted by DataBoundary %s: %w", iss, boundary, err)
	}
	if !slices.ContainsFunc(idt.Audience, func(a string) bool { return slices.Contains(trusted.Audiences, a) }) {
		return nil, fmt.Errorf("a token of %s for %s, none of the audiences DataBoundary %s trusts it for (%s)",
			iss, strings.Join(idt.Audience, ", "), boundary, strings.Join(trusted.Audiences, ", "))
	}
	var raw map[string]any
	if err := idt.Claims(&raw); err != nil {
		return nil, err
	}
	if claim := trusted.Claims.Tenant; claim != "" && !slices.Contains(listClaim(raw, claim), tenant) {
		return nil, fmt.Errorf("a token of %s for a person of another tenant: its %s claim does not name %q (DataBoundary %s, spec.trustedIssuers claims.tenant)",
			iss, claim, tenant, boundary)
	}
	c := &sts.Claims{
		Issuer: iss, Subject: idt.Subject, Expiry: idt.Expiry.Unix(), IssuedAt: idt.IssuedAt.Unix(),
		ID: stringClaim(raw, "jti"), Session: stringClaim(raw, "sid"), Scope: scopeClaim(raw),
		OriginalIssuer: iss, OriginalSubject: idt.Subject,
	}
	return &sts.Subject{Claims: c, Groups: listClaim(raw, trusted.Claims.Groups)}, nil
}

// trustedIssuer finds iss among the trusted issuers of tenant's
// DataBoundary.
func (s *Subjects) trustedIssuer(ctx context.Context, tenant, iss string) (custosv1alpha1.TrustedIssuer, string, error) {
	var boundaries custosv1alpha1.DataBoundaryList
	if err := s.Reader.List(ctx, &boundaries, client.UnsafeDisableDeepCopy); err != nil {
		return custosv1alpha1.TrustedIssuer{}, "", fmt.Errorf("reading DataBoundaries: %w", err)
	}
	for _, b := range boundaries.Items {
		if b.Spec.Tenant != tenant {
			continue
		}
		for _, ti := range b.Spec.TrustedIssuers {
			if ti.Issuer == iss {
				return ti, b.Name, nil
			}
		}
		return custosv1alpha1.TrustedIssuer{}, "", fmt.Errorf("issuer %q is none of those DataBoundary %s trusts (spec.trustedIssuers)", iss, b.Name)
	}
	return custosv1alpha1.TrustedIssuer{}, "", fmt.Errorf("no DataBoundary of tenant %q", tenant)
}

// verifier returns the cached verifier of ti, made on first use (with a
// discovery request when ti names no keys URL).
func (s *Subjects) verifier(ti custosv1alpha1.TrustedIssuer) (*oidc.IDTokenVerifier, error) {
	key := ti.Issuer + " " + ti.JWKSURL
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.verifiers[key]; ok {
		return v, nil
	}
	ctx := oidc.ClientContext(s.Context, s.HTTPClient)
	cfg := &oidc.Config{SkipClientIDCheck: true, Now: s.Clock.Now, SupportedSigningAlgs: []string{
		oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.EdDSA}}
	var v *oidc.IDTokenVerifier
	if ti.JWKSURL != "" {
		v = oidc.NewVerifier(ti.Issuer, oidc.NewRemoteKeySet(ctx, ti.JWKSURL), cfg)
	} else {
		p, err := oidc.NewProvider(ctx, ti.Issuer)
		if err != nil {
			return nil, fmt.Errorf("discovering trusted issuer %s: %w", ti.Issuer, err)
		}
		v = p.Verifier(cfg)
	}
	if s.verifiers == nil {
		s.verifiers = map[string]*oidc.IDTokenVerifier{}
	}
	s.verifiers[key] = v
	return v, nil
}

// unverifiedIssuer reads a JWT's iss without verifying it, to pick the
// issuer that must verify it.
func unverifiedIssuer(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", errors.New("not a JWT: its payload is not base64url")
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Iss == "" {
		return "", errors.New("not a JWT with an issuer")
	}
	return c.Iss, nil
}

func stringClaim(raw map[string]any, name string) string {
	s, _ := raw[name].(string)
	return s
}

// listClaim reads a claim that is a list of strings or one string.
func listClaim(raw map[string]any, name string) []string {
	switch v := raw[name].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// scopeClaim reads scope (RFC 8693, space-separated) or scp (a list, as
// some providers write it).
func scopeClaim(raw map[string]any) string {
	if s := stringClaim(raw, "scope"); s != "" {
		return s
	}
	return strings.Join(listClaim(raw, "scp"), " ")
}
