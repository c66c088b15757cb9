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

// Package sts is the token profile of custos-sts, the token service that
// exchanges a person's token for one an agent may use on that person's
// behalf (RFC 8693), and the parts of the service that hold no state of the
// cluster: the claims and their actor chain, the tenants' signing keys and
// their rotation, minting and verifying tokens, the exchange request and
// its errors, and the RFC 8414 metadata. docs/sts.md is the profile in
// prose, for the gateway and for anyone who verifies a Custos token.
//
// A Custos access token is a JWT access token (RFC 9068): header typ
// "at+jwt", alg ES256, kid one of the tenant's live keys; claims iss (the
// tenant's issuer), sub (the person), aud (exactly one), exp, iat, nbf,
// jti, client_id (the agent acting last), scope, and act, the actor chain
// nested with the newest actor outermost (RFC 8693 §4.1), plus sid (the
// session), and Custos's own: the tenant, the subject as its issuer named
// it, and the jti of the token it was exchanged from. Each tenant has its
// own issuer and key set, so a token of one tenant never verifies as
// another's.
package sts
