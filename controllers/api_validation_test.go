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

package controllers

import (
	"context"
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/custos-dev/custos/test/fixtures"
)

// Valid manifests each invalid case starts from, as a user would write them.
const (
	validAgent = `
apiVersion: custos.dev/v1alpha1
kind: Agent
metadata:
  generateName: agent-
  labels:
    custos.dev/tenant: acme-finance
spec:
  owner: {team: finance-platform, contact: finance-platform@acme.example}
  purpose: Reconcile supplier invoices against the ledger.
  image: registry.acme.example/agents/invoice-reconciler:1.4.2
  identity:
    aws: {roleARN: "arn:aws:iam::111122223333:role/acme-finance-invoice"}
  credentials:
    - {name: ledger-api, kubernetesToken: {audience: ledger-api}, ttl: 10m}
  toolsetRefs:
    - {name: ledger-readonly}
`
	validToolset = `
apiVersion: custos.dev/v1alpha1
kind: Toolset
metadata:
  generateName: toolset-
  labels:
    custos.dev/tenant: acme-finance
spec:
  endpoint:
    inCluster: {namespace: finance-agents, podSelector: {app: ledger-api}, port: 8080}
  tools:
    - name: get_invoice
      access: Read
      inputSchema: {type: object, properties: {invoiceNumber: {type: string}}}
`
	validDataBoundary = `
apiVersion: custos.dev/v1alpha1
kind: DataBoundary
metadata:
  generateName: boundary-
spec:
  tenant: acme-finance
  namespaceSelector:
    # Not acme-finance's label: the suite's acme-finance boundary covers
    # those namespaces, and two boundaries must not overlap.
    matchLabels: {custos.dev/tenant: acme-validation}
  regions: [eu-west-1, eu-central-1]
  egress:
    cidrs: [203.0.113.0/24]
`
)

// apiCase is one manifest the API server must refuse, with the field and the
// rule its error must name. When update is set, the valid object is created
// first and the mutation is sent as an update.
type apiCase struct {
	name      string
	base      string
	update    bool
	mutate    func(u map[string]any)
	wantField string
	wantMsg   string
}

func TestAPIValidationRefusesInvalidManifests(t *testing.T) {
	cases := []apiCase{
		// Agent
		{
			name: "agent without owner", base: validAgent,
			mutate:    del("spec", "owner"),
			wantField: "spec.owner", wantMsg: "Required value",
		},
		{
			name: "agent without purpose", base: validAgent,
			mutate:    del("spec", "purpose"),
			wantField: "spec.purpose", wantMsg: "Required value",
		},
		{
			name: "agent with an empty purpose", base: validAgent,
			mutate:    set("", "spec", "purpose"),
			wantField: "spec.purpose", wantMsg: "should be at least 1 chars long",
		},
		{
			name: "owner contact is not an e-mail address", base: validAgent,
			mutate:    set("finance platform", "spec", "owner", "contact"),
			wantField: "spec.owner.contact", wantMsg: "should match",
		},
		{
			name: "unknown lifecycle state", base: validAgent,
			mutate:    set("Paused", "spec", "lifecycle", "state"),
			wantField: "spec.lifecycle.state", wantMsg: `Unsupported value: "Paused": supported values: "Active", "Suspended", "Decommissioned"`,
		},
		{
			name: "credential TTL below the TokenRequest minimum", base: validAgent,
			mutate:    set("5m", "spec", "credentials", 0, "ttl"),
			wantField: "spec.credentials[0].ttl", wantMsg: "must be between 10m and 12h",
		},
		{
			name: "credential TTL above twelve hours", base: validAgent,
			mutate:    set("24h", "spec", "credentials", 0, "ttl"),
			wantField: "spec.credentials[0].ttl", wantMsg: "must be between 10m and 12h",
		},
		{
			name: "credential TTL that is not a duration", base: validAgent,
			mutate:    set("ten minutes", "spec", "credentials", 0, "ttl"),
			wantField: "spec.credentials[0].ttl", wantMsg: "should match",
		},
		{
			name: "credential with two backends", base: validAgent,
			mutate:    set(map[string]any{"scope": "https://vault.azure.net/.default"}, "spec", "credentials", 0, "azureToken"),
			wantField: "spec.credentials[0]", wantMsg: "exactly one of kubernetesToken, awsSTS or azureToken must be set",
		},
		{
			name: "awsSTS credential shorter than the STS minimum", base: validAgent,
			mutate: set([]any{map[string]any{"name": "reports", "awsSTS": map[string]any{}, "ttl": "10m"}},
				"spec", "credentials"),
			wantField: "spec.credentials[0].ttl", wantMsg: "awsSTS sessions last at least 15m",
		},
		{
			name: "awsSTS credential without an AWS identity", base: validAgent,
			mutate: chain(del("spec", "identity"),
				set([]any{map[string]any{"name": "reports", "awsSTS": map[string]any{}, "ttl": "15m"}}, "spec", "credentials")),
			wantField: "spec.credentials", wantMsg: "awsSTS credentials need spec.identity.aws",
		},
		{
			name: "gateway credential in the Authorization header", base: validAgent,
			mutate:    set(map[string]any{"toolset": "ledger-readonly", "header": "authorization"}, "spec", "credentials", 0, "gateway"),
			wantField: "spec.credentials[0].gateway.header", wantMsg: "is a header custos-gateway sets itself",
		},
		{
			name: "gateway credential in a traceparent header", base: validAgent,
			mutate:    set(map[string]any{"toolset": "ledger-readonly", "header": "Traceparent"}, "spec", "credentials", 0, "gateway"),
			wantField: "spec.credentials[0].gateway.header", wantMsg: "is a header custos-gateway sets itself",
		},
		{
			name: "gateway credential header that is no header name", base: validAgent,
			mutate:    set(map[string]any{"toolset": "ledger-readonly", "header": "X Api Key"}, "spec", "credentials", 0, "gateway"),
			wantField: "spec.credentials[0].gateway.header", wantMsg: "should match",
		},
		{
			name: "gateway credential for a Toolset the agent does not use", base: validAgent,
			mutate:    set(map[string]any{"toolset": "crm", "header": "X-Api-Key"}, "spec", "credentials", 0, "gateway"),
			wantField: "spec.credentials", wantMsg: "a gateway credential's toolset must be one of spec.toolsetRefs",
		},
		{
			name: "gateway awsSTS credential", base: validAgent,
			mutate: set([]any{map[string]any{"name": "reports", "awsSTS": map[string]any{}, "ttl": "15m",
				"gateway": map[string]any{"toolset": "ledger-readonly", "header": "X-Api-Key"}}}, "spec", "credentials"),
			wantField: "spec.credentials[0].gateway", wantMsg: "an awsSTS session is several values",
		},
		{
			name: "two credentials of one name", base: validAgent,
			mutate: set([]any{
				map[string]any{"name": "ledger-api", "kubernetesToken": map[string]any{"audience": "a"}},
				map[string]any{"name": "ledger-api", "kubernetesToken": map[string]any{"audience": "b"}},
			}, "spec", "credentials"),
			wantField: "spec.credentials[1]", wantMsg: "Duplicate value",
		},
		{
			name: "malformed IAM role ARN", base: validAgent,
			mutate:    set("arn:aws:iam::1111:user/alice", "spec", "identity", "aws", "roleARN"),
			wantField: "spec.identity.aws.roleARN", wantMsg: "should match",
		},
		{
			name: "identity with no cloud bound", base: validAgent,
			mutate:    set(map[string]any{}, "spec", "identity"),
			wantField: "spec.identity", wantMsg: "must bind at least one cloud identity (aws, azure or gcp): mode alone binds nothing",
		},
		{
			name: "identity with a mode and no cloud", base: validAgent,
			mutate:    set(map[string]any{"mode": "Leased"}, "spec", "identity"),
			wantField: "spec.identity", wantMsg: "must bind at least one cloud identity (aws, azure or gcp): mode alone binds nothing",
		},
		{
			name: "unknown identity mode", base: validAgent,
			mutate:    set("Sideways", "spec", "identity", "mode"),
			wantField: "spec.identity.mode", wantMsg: `Unsupported value: "Sideways": supported values: "Leased", "Ambient"`,
		},
		{
			name: "kubernetesToken for AWS STS", base: validAgent,
			mutate:    set("sts.amazonaws.com", "spec", "credentials", 0, "kubernetesToken", "audience"),
			wantField: "spec.credentials[0].kubernetesToken.audience", wantMsg: "sts.amazonaws.com is a cloud token-exchange audience: use an awsSTS or azureToken credential, which Custos caps, renews and revokes",
		},
		{
			name: "kubernetesToken for AWS STS, in capitals", base: validAgent,
			mutate:    set("STS.AmazonAWS.com", "spec", "credentials", 0, "kubernetesToken", "audience"),
			wantField: "spec.credentials[0].kubernetesToken.audience", wantMsg: "STS.AmazonAWS.com is a cloud token-exchange audience",
		},
		{
			name: "kubernetesToken for Entra ID", base: validAgent,
			mutate:    set("api://AzureADTokenExchange", "spec", "credentials", 0, "kubernetesToken", "audience"),
			wantField: "spec.credentials[0].kubernetesToken.audience", wantMsg: "api://AzureADTokenExchange is a cloud token-exchange audience",
		},
		{
			name: "kubernetesToken for a Google workload identity pool", base: validAgent,
			mutate: set("//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/acme/providers/k8s",
				"spec", "credentials", 0, "kubernetesToken", "audience"),
			wantField: "spec.credentials[0].kubernetesToken.audience", wantMsg: "is a cloud token-exchange audience",
		},
		{
			name: "kubernetesToken for a Google workload identity pool, by URL", base: validAgent,
			mutate: set("https://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/acme/providers/k8s",
				"spec", "credentials", 0, "kubernetesToken", "audience"),
			wantField: "spec.credentials[0].kubernetesToken.audience", wantMsg: "is a cloud token-exchange audience",
		},
		{
			name: "kubernetesToken for Google STS", base: validAgent,
			mutate:    set("sts.googleapis.com", "spec", "credentials", 0, "kubernetesToken", "audience"),
			wantField: "spec.credentials[0].kubernetesToken.audience", wantMsg: "sts.googleapis.com is a cloud token-exchange audience",
		},
		{
			name: "kubernetesToken for Google STS, by URL", base: validAgent,
			mutate:    set("https://sts.googleapis.com", "spec", "credentials", 0, "kubernetesToken", "audience"),
			wantField: "spec.credentials[0].kubernetesToken.audience", wantMsg: "https://sts.googleapis.com is a cloud token-exchange audience",
		},
		{
			name: "Toolset referenced twice", base: validAgent,
			mutate:    set([]any{map[string]any{"name": "ledger"}, map[string]any{"name": "ledger"}}, "spec", "toolsetRefs"),
			wantField: "spec.toolsetRefs", wantMsg: "each Toolset may be referenced once",
		},
		{
			name: "agent without a tenant label", base: validAgent,
			mutate:    del("metadata", "labels"),
			wantField: "metadata.labels[custos.dev/tenant]", wantMsg: "every Agent belongs to a tenant",
		},
		{
			name: "Decommissioned agent brought back", base: validAgent, update: true,
			mutate:    set("Active", "spec", "lifecycle", "state"),
			wantField: "spec.lifecycle.state", wantMsg: "Decommissioned is final",
		},
		{
			name: "agent moved to another tenant", base: validAgent, update: true,
			mutate:    set("acme-retail", "metadata", "labels", "custos.dev/tenant"),
			wantField: "metadata.labels[custos.dev/tenant]", wantMsg: "the tenant label is immutable",
		},
		{
			name: "agent tenant label removed", base: validAgent, update: true,
			mutate:    del("metadata", "labels"),
			wantField: "metadata.labels[custos.dev/tenant]", wantMsg: "the tenant label is immutable",
		},

		// Toolset
		{
			name: "toolset without tools", base: validToolset,
			mutate:    del("spec", "tools"),
			wantField: "spec.tools", wantMsg: "Required value",
		},
		{
			name: "toolset endpoint path that is not absolute", base: validToolset,
			mutate:    set("mcp", "spec", "endpoint", "path"),
			wantField: "spec.endpoint.path", wantMsg: "should match",
		},
		{
			name: "toolset endpoint path with a query", base: validToolset,
			mutate:    set("/mcp?as=admin", "spec", "endpoint", "path"),
			wantField: "spec.endpoint.path", wantMsg: "should match",
		},
		{
			name: "toolset in-cluster service that is not a Service name", base: validToolset,
			mutate:    set("Ledger_API", "spec", "endpoint", "inCluster", "service"),
			wantField: "spec.endpoint.inCluster.service", wantMsg: "should match",
		},
		{
			name: "toolset in-cluster scheme other than https or http", base: validToolset,
			mutate:    set("grpc", "spec", "endpoint", "inCluster", "scheme"),
			wantField: "spec.endpoint.inCluster.scheme", wantMsg: "Unsupported value",
		},
		{
			name: "tool argument bound to no known claim", base: validToolset,
			mutate:    set([]any{map[string]any{"argument": "customer", "claim": "Email"}}, "spec", "tools", 0, "bind"),
			wantField: "spec.tools[0].bind[0].claim", wantMsg: "Unsupported value",
		},
		{
			name: "tool argument bound twice", base: validToolset,
			mutate: set([]any{map[string]any{"argument": "customer", "claim": "Person"}, map[string]any{"argument": "customer", "claim": "Session"}},
				"spec", "tools", 0, "bind"),
			wantField: "spec.tools[0].bind[1]", wantMsg: "Duplicate value",
		},
		{
			name: "agent decision record requirement that is not one of the three", base: validAgent,
			mutate:    set("Always", "spec", "requireDecisionRecord"),
			wantField: "spec.requireDecisionRecord", wantMsg: "Unsupported value",
		},
		{
			name: "toolset with two endpoints", base: validToolset,
			mutate:    set(map[string]any{"host": "ledger.acme.example", "cidrs": []any{"203.0.113.0/24"}}, "spec", "endpoint", "external"),
			wantField: "spec.endpoint", wantMsg: "exactly one of inCluster or external must be set",
		},
		{
			name: "external endpoint with a malformed CIDR", base: validToolset,
			mutate: chain(del("spec", "endpoint", "inCluster"),
				set(map[string]any{"host": "ledger.acme.example", "cidrs": []any{"203.0.113.0/33"}}, "spec", "endpoint", "external")),
			wantField: "spec.endpoint.external.cidrs[0]", wantMsg: "must be a CIDR",
		},
		{
			name: "irreversible read tool", base: validToolset,
			mutate:    set(true, "spec", "tools", 0, "irreversible"),
			wantField: "spec.tools[0].irreversible", wantMsg: "only a Write tool can be irreversible",
		},
		{
			name: "unknown tool access", base: validToolset,
			mutate:    set("Admin", "spec", "tools", 0, "access"),
			wantField: "spec.tools[0].access", wantMsg: `Unsupported value: "Admin"`,
		},
		{
			name: "toolset without a tenant label", base: validToolset,
			mutate:    del("metadata", "labels"),
			wantField: "metadata.labels[custos.dev/tenant]", wantMsg: "every Toolset belongs to a tenant",
		},

		// DataBoundary
		{
			name: "boundary with an empty namespace selector", base: validDataBoundary,
			mutate:    set(map[string]any{}, "spec", "namespaceSelector"),
			wantField: "spec.namespaceSelector", wantMsg: "an empty selector would cover every namespace",
		},
		{
			name: "boundary without regions", base: validDataBoundary,
			mutate:    set([]any{}, "spec", "regions"),
			wantField: "spec.regions", wantMsg: "should have at least 1 items",
		},
		{
			name: "boundary egress with a malformed CIDR", base: validDataBoundary,
			mutate:    set([]any{"10.0.0.0"}, "spec", "egress", "cidrs"),
			wantField: "spec.egress.cidrs[0]", wantMsg: "must be a CIDR",
		},
		{
			name: "boundary selector with an unknown operator", base: validDataBoundary,
			mutate: set(map[string]any{"matchExpressions": []any{map[string]any{
				"key": "custos.dev/tenant", "operator": "Near", "values": []any{"acme-finance"}}}}, "spec", "namespaceSelector"),
			wantField: "spec.namespaceSelector", wantMsg: "operators must be In, NotIn, Exists or DoesNotExist",
		},
		{
			name: "boundary selector In without values", base: validDataBoundary,
			mutate: set(map[string]any{"matchExpressions": []any{map[string]any{
				"key": "custos.dev/tenant", "operator": "In"}}}, "spec", "namespaceSelector"),
			wantField: "spec.namespaceSelector", wantMsg: "In and NotIn need values",
		},
		{
			name: "keyless signers without a trusted root", base: validDataBoundary,
			mutate:    set(map[string]any{"keyless": []any{map[string]any{"issuer": "https://issuer.example", "subject": "dev@acme.example"}}}, "spec", "images"),
			wantField: "spec.images.keyless", wantMsg: "keyless signers need trustedRoot",
		},
		{
			name: "a keyless identity with both subject and subjectRegExp", base: validDataBoundary,
			mutate: set(map[string]any{
				"keyless":     []any{map[string]any{"issuer": "https://issuer.example", "subject": "dev@acme.example", "subjectRegExp": ".*"}},
				"trustedRoot": map[string]any{"configMapRef": map[string]any{"namespace": "custos-system", "name": "root", "key": "trusted_root.json"}},
			}, "spec", "images"),
			wantField: "spec.images.keyless[0]", wantMsg: "exactly one of subject and subjectRegExp",
		},
		{
			name: "a public key in both a Secret and a ConfigMap", base: validDataBoundary,
			mutate: set(map[string]any{"publicKeys": []any{map[string]any{
				"secretRef":    map[string]any{"namespace": "custos-system", "name": "keys", "key": "cosign.pub"},
				"configMapRef": map[string]any{"namespace": "custos-system", "name": "keys", "key": "cosign.pub"},
			}}}, "spec", "images"),
			wantField: "spec.images.publicKeys[0]", wantMsg: "exactly one of secretRef and configMapRef",
		},
		{
			name: "a transparency log required without its keys", base: validDataBoundary,
			mutate:    set(map[string]any{"requireTransparencyLog": true}, "spec", "images"),
			wantField: "spec.images.requireTransparencyLog", wantMsg: "requireTransparencyLog needs trustedRoot",
		},
		{
			name: "delegation deeper than the hard limit", base: validAgent,
			mutate:    set(map[string]any{"people": []any{"alice"}, "maxDepth": int64(5)}, "spec", "delegation"),
			wantField: "spec.delegation.maxDepth", wantMsg: "should be less than or equal to 4",
		},
		{
			name: "delegation to nobody's depth", base: validAgent,
			mutate:    set(map[string]any{"people": []any{"alice"}, "maxDepth": int64(0)}, "spec", "delegation"),
			wantField: "spec.delegation.maxDepth", wantMsg: "should be greater than or equal to 1",
		},
		{
			name: "delegation from an empty person", base: validAgent,
			mutate:    set(map[string]any{"people": []any{""}}, "spec", "delegation"),
			wantField: "spec.delegation.people[0]", wantMsg: "should be at least 1 chars long",
		},
		{
			name: "delegation from an agent without a name", base: validAgent,
			mutate:    set(map[string]any{"agents": []any{map[string]any{"namespace": "finance-agents"}}}, "spec", "delegation"),
			wantField: "spec.delegation.agents[0].name", wantMsg: "Required value",
		},
		{
			name: "a trusted issuer over plain http", base: validDataBoundary,
			mutate:    set([]any{map[string]any{"issuer": "http://idp.acme.example", "audiences": []any{"custos-sts"}}}, "spec", "trustedIssuers"),
			wantField: "spec.trustedIssuers[0].issuer", wantMsg: "must be an https URL",
		},
		{
			name: "a trusted issuer no token could be for", base: validDataBoundary,
			mutate:    set([]any{map[string]any{"issuer": "https://idp.acme.example", "audiences": []any{}}}, "spec", "trustedIssuers"),
			wantField: "spec.trustedIssuers[0].audiences", wantMsg: "should have at least 1 items",
		},
		{
			name: "a trusted issuer's keys over plain http", base: validDataBoundary,
			mutate: set([]any{map[string]any{"issuer": "https://idp.acme.example", "audiences": []any{"custos-sts"},
				"jwksURL": "http://idp.acme.example/keys"}}, "spec", "trustedIssuers"),
			wantField: "spec.trustedIssuers[0].jwksURL", wantMsg: "must be an https URL",
		},
		{
			name: "the same issuer trusted twice", base: validDataBoundary,
			mutate: set([]any{
				map[string]any{"issuer": "https://idp.acme.example", "audiences": []any{"a"}},
				map[string]any{"issuer": "https://idp.acme.example", "audiences": []any{"b"}},
			}, "spec", "trustedIssuers"),
			wantField: "spec.trustedIssuers[1]", wantMsg: "Duplicate value",
		},
		{
			name: "boundary cloudRoles listing nothing", base: validDataBoundary,
			mutate:    set(map[string]any{}, "spec", "cloudRoles"),
			wantField: "spec.cloudRoles", wantMsg: "must list at least one of awsRoleARNs, azureClientIDs or gcpServiceAccounts",
		},
		{
			name: "boundary allowing ambient identity of no role", base: validDataBoundary,
			mutate:    set(map[string]any{"ambientIdentity": "Allowed"}, "spec", "cloudRoles"),
			wantField: "spec.cloudRoles", wantMsg: "must list at least one of awsRoleARNs, azureClientIDs or gcpServiceAccounts",
		},
		{
			name: "an unknown ambient identity policy", base: validDataBoundary,
			mutate:    set(map[string]any{"awsRoleARNs": []any{"arn:aws:iam::111122223333:role/x"}, "ambientIdentity": "Sometimes"}, "spec", "cloudRoles"),
			wantField: "spec.cloudRoles.ambientIdentity", wantMsg: `Unsupported value: "Sometimes": supported values: "Forbidden", "Allowed"`,
		},
		{
			name: "an unknown verification failure action", base: validDataBoundary,
			mutate:    set(map[string]any{"onVerificationFailure": "Ignore"}, "spec", "images"),
			wantField: "spec.images.onVerificationFailure", wantMsg: "Unsupported value",
		},
		{
			name: "agent name longer than a label value", base: validAgent,
			mutate:    chain(del("metadata", "generateName"), set("a-very-long-agent-name-that-does-not-fit-into-a-kubernetes-label-value", "metadata", "name")),
			wantField: "", wantMsg: "metadata.name: must be no more than 63 characters",
		},
		{
			name: "boundary handed to another tenant", base: validDataBoundary, update: true,
			mutate:    set("acme-retail", "spec", "tenant"),
			wantField: "spec.tenant", wantMsg: "tenant is immutable",
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			ns := fixtures.CreateTenantNamespace(t, k8sClient, "acme-finance")

			obj := manifest(t, tc.base, ns)
			if tc.update {
				if tc.wantField == "spec.lifecycle.state" {
					g.Expect(unstructured.SetNestedField(obj.Object, "Decommissioned", "spec", "lifecycle", "state")).To(Succeed())
				}
				g.Expect(k8sClient.Create(ctx, obj)).To(Succeed(), "the valid object must be accepted")
				t.Cleanup(func() { _ = k8sClient.Delete(ctx, obj) })
				// The reconcilers may write the object's status meanwhile;
				// a conflict is not the refusal under test, so read again.
				var err error
				for range 50 {
					g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
					tc.mutate(obj.Object)
					if err = k8sClient.Update(ctx, obj); !apierrors.IsConflict(err) {
						break
					}
				}
				assertRefused(g, err, tc.wantField, tc.wantMsg)
				return
			}
			tc.mutate(obj.Object)
			err := k8sClient.Create(ctx, obj)
			if err == nil {
				t.Cleanup(func() { _ = k8sClient.Delete(ctx, obj) })
			}
			assertRefused(g, err, tc.wantField, tc.wantMsg)
		})
	}
}

func TestAPIValidationAcceptsValidManifests(t *testing.T) {
	for _, base := range []string{validAgent, validToolset, validDataBoundary} {
		g := NewWithT(t)
		ctx := context.Background()
		obj := manifest(t, base, fixtures.CreateTenantNamespace(t, k8sClient, "acme-finance"))
		g.Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		t.Cleanup(func() { _ = k8sClient.Delete(ctx, obj) })
		if obj.GetKind() == "Toolset" {
			// The gateway calls a tool server at /mcp unless the Toolset says otherwise.
			path, _, _ := unstructured.NestedString(obj.Object, "spec", "endpoint", "path")
			g.Expect(path).To(Equal("/mcp"), "spec.endpoint.path's default")
			// Tokens never travel in the clear unless the owner says so.
			scheme, _, _ := unstructured.NestedString(obj.Object, "spec", "endpoint", "inCluster", "scheme")
			g.Expect(scheme).To(Equal("https"), "spec.endpoint.inCluster.scheme's default")
		}
		if obj.GetKind() == "Agent" {
			req, _, _ := unstructured.NestedString(obj.Object, "spec", "requireDecisionRecord")
			g.Expect(req).To(Equal("None"), "spec.requireDecisionRecord's default")
		}
	}
}

// assertRefused checks that err is the API server's Invalid error naming
// field with a message that contains msg. CRD schema and CEL errors carry
// them as a cause; admission policies' errors carry them in the message.
func assertRefused(g Gomega, err error, field, msg string) {
	g.Expect(err).To(HaveOccurred(), "the API server accepted an invalid object")
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want reason Invalid, got %v", err)
	var status apierrors.APIStatus
	g.Expect(errors.As(err, &status)).To(BeTrue(), "not an API status error: %v", err)
	var found []string
	if details := status.Status().Details; details != nil {
		for _, c := range details.Causes {
			found = append(found, c.Field+": "+c.Message)
		}
	}
	if len(found) == 0 {
		found = []string{status.Status().Message}
	}
	g.Expect(found).To(ContainElement(And(ContainSubstring(field+": "), ContainSubstring(msg))), "error: %v", err)
}

// manifest decodes a YAML manifest into an object in namespace ns (unless it
// is cluster-scoped).
func manifest(t *testing.T, doc, ns string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
		t.Fatalf("decoding the manifest: %v", err)
	}
	if obj.GetKind() != "DataBoundary" {
		obj.SetNamespace(ns)
	}
	return obj
}

// set returns a mutation setting path to value; integers in path index lists.
func set(value any, path ...any) func(map[string]any) {
	return func(obj map[string]any) {
		parent, last := walk(obj, path)
		switch p := parent.(type) {
		case map[string]any:
			p[last.(string)] = value
		case []any:
			p[last.(int)] = value
		}
	}
}

// del returns a mutation removing path.
func del(path ...any) func(map[string]any) {
	return func(obj map[string]any) {
		parent, last := walk(obj, path)
		delete(parent.(map[string]any), last.(string))
	}
}

func chain(fns ...func(map[string]any)) func(map[string]any) {
	return func(obj map[string]any) {
		for _, fn := range fns {
			fn(obj)
		}
	}
}

// walk returns the container of path's last element, creating maps on the way.
func walk(obj map[string]any, path []any) (any, any) {
	var cur any = obj
	for _, key := range path[:len(path)-1] {
		switch k := key.(type) {
		case string:
			m := cur.(map[string]any)
			if _, ok := m[k]; !ok {
				m[k] = map[string]any{}
			}
			cur = m[k]
		case int:
			cur = cur.([]any)[k]
		}
	}
	return cur, path[len(path)-1]
}
