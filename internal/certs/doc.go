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

// Package certs owns the serving certificate of Custos's own admission
// webhook server, so that installing Custos needs no cert-manager: a
// self-signed CA and a serving certificate kept in a Secret in Custos's
// namespace, the tls.crt and tls.key files the webhook server reads, and the
// caBundle of the webhook configurations that point at it. Every replica of
// the manager runs a Rotator; they agree through the Secret.
package certs
