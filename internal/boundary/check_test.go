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
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
)

const (
	tenantPath = "metadata.labels[custos.dev/tenant]"
	modePath   = "spec.identity.mode"
	awsPath    = "spec.identity.aws.roleARN"
	azurePath  = "spec.identity.azure.clientID"
	gcpPath    = "spec.identity.gcp.serviceAccount"
	imagePath  = "spec.image"

	financeRole  = "arn:aws:iam::111122223333:role/acme-finance-invoices"
	financeSA    = "invoice-bot@acme-finance.iam.gserviceaccount.com"
	financeAzure = "0b9e4f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
	// financeEntra is the Entra ID tenant of the Azure applications.
	financeEntra = "11111111-2222-3333-4444-555555555555"
)

func financeRoles() custosv1alpha1.CloudRolePolicy {
	return custosv1alpha1.CloudRolePolicy{
		AWSRoleARNs:        []string{"arn:aws:iam::111122223333:role/acme-finance-*"},
		AzureClientIDs:     []string{"0B9E4F6A-1C2D-4E5F-8A9B-0C1D2E3F4A5B"},
		GCPServiceAccounts: []string{"*@acme-finance.iam.gserviceaccount.com"},
	}
}

func TestCheckAgent(t *testing.T) {
	tests := []struct {
		name     string
		boundary *custosv1alpha1.DataBoundary
		ns       *corev1.Namespace
		agent    *custosv1alpha1.Agent
		want     []wantError
	}{
		{
			name:     "an agent of the tenant without identity or image policy",
			boundary: newBoundary(),
			ns:       tenantNamespace(),
			agent:    newAgent(),
		},

		// Tenant.
		{
			name:     "the agent has no tenant label",
			boundary: newBoundary(),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAgentLabels(nil)),
			want:     []wantError{{tenantPath, []string{"the Agent has no custos.dev/tenant label", `DataBoundary "acme-finance"`, `tenant "acme"`, "(spec.tenant)"}}},
		},
		{
			name:     "the agent's tenant label is empty",
			boundary: newBoundary(),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAgentLabels(map[string]string{custosv1alpha1.TenantLabel: ""})),
			want:     []wantError{{tenantPath, []string{"the Agent has no custos.dev/tenant label"}}},
		},
		{
			name:     "the agent belongs to another tenant",
			boundary: newBoundary(),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAgentLabels(map[string]string{custosv1alpha1.TenantLabel: "globex"})),
			want:     []wantError{{tenantPath, []string{`tenant "globex" is not tenant "acme" of DataBoundary "acme-finance" (spec.tenant)`}}},
		},
		{
			name:     "the namespace's tenant label differs",
			boundary: newBoundary(),
			ns:       fixtures.Namespace("acme-payments", map[string]string{custosv1alpha1.TenantLabel: "globex"}),
			agent:    newAgent(),
			want:     []wantError{{tenantPath, []string{`namespace "acme-payments"`, "label that differs", `"globex" is not tenant "acme"`, `DataBoundary "acme-finance"`}}},
		},
		{
			name:     "the namespace has no tenant label",
			boundary: newBoundary(),
			ns:       fixtures.Namespace("acme-payments", map[string]string{"team": "finance"}),
			agent:    newAgent(),
			want:     []wantError{{tenantPath, []string{`namespace "acme-payments" has no custos.dev/tenant label`}}},
		},
		{
			name:     "an unknown namespace fails closed",
			boundary: newBoundary(),
			ns:       nil,
			agent:    newAgent(),
			want:     []wantError{{tenantPath, []string{`namespace "acme-payments" has no custos.dev/tenant label`}}},
		},
		{
			name:     "agent and namespace both of another tenant",
			boundary: newBoundary(),
			ns:       fixtures.Namespace("acme-payments", map[string]string{custosv1alpha1.TenantLabel: "globex"}),
			agent:    newAgent(fixtures.WithAgentLabels(map[string]string{custosv1alpha1.TenantLabel: "globex"})),
			want: []wantError{
				{tenantPath, []string{`tenant "globex" is not tenant "acme"`}},
				{tenantPath, []string{`namespace "acme-payments"`, "differs"}},
			},
		},

		// Cloud roles.
		{
			name:     "every cloud identity allowed",
			boundary: newBoundary(fixtures.WithCloudRoles(financeRoles())),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAWSRole(financeRole), fixtures.WithAzureClient(financeAzure, financeEntra), fixtures.WithGCPServiceAccount(financeSA)),
		},
		{
			name:     "no cloudRoles allows no binding at all",
			boundary: newBoundary(),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAWSRole(financeRole), fixtures.WithAzureClient(financeAzure, financeEntra), fixtures.WithGCPServiceAccount(financeSA)),
			want: []wantError{
				{awsPath, []string{financeRole + ` is not allowed by DataBoundary "acme-finance"`, "spec.cloudRoles is not set"}},
				{azurePath, []string{financeAzure + ` is not allowed by DataBoundary "acme-finance"`, "spec.cloudRoles is not set"}},
				{gcpPath, []string{financeSA + ` is not allowed by DataBoundary "acme-finance"`, "spec.cloudRoles is not set"}},
			},
		},
		{
			name:     "an AWS role outside the glob",
			boundary: newBoundary(fixtures.WithCloudRoles(financeRoles())),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAWSRole("arn:aws:iam::111122223333:role/acme-sales-crm")),
			want: []wantError{{awsPath, []string{
				`arn:aws:iam::111122223333:role/acme-sales-crm is not allowed by DataBoundary "acme-finance" (spec.cloudRoles.awsRoleARNs)`,
			}}},
		},
		{
			name:     "an AWS role of another account",
			boundary: newBoundary(fixtures.WithCloudRoles(financeRoles())),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAWSRole("arn:aws:iam::999999999999:role/acme-finance-invoices")),
			want:     []wantError{{awsPath, []string{"(spec.cloudRoles.awsRoleARNs)"}}},
		},
		{
			name:     "AWS role ARNs are matched case-sensitively",
			boundary: newBoundary(fixtures.WithCloudRoles(financeRoles())),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAWSRole("arn:aws:iam::111122223333:role/ACME-finance-invoices")),
			want:     []wantError{{awsPath, []string{"(spec.cloudRoles.awsRoleARNs)"}}},
		},
		{
			name: "cloudRoles without AWS entries allows no AWS role",
			boundary: newBoundary(fixtures.WithCloudRoles(custosv1alpha1.CloudRolePolicy{
				GCPServiceAccounts: []string{"*@acme-finance.iam.gserviceaccount.com"},
			})),
			ns:    tenantNamespace(),
			agent: newAgent(fixtures.WithAWSRole(financeRole), fixtures.WithGCPServiceAccount(financeSA)),
			want:  []wantError{{awsPath, []string{"(spec.cloudRoles.awsRoleARNs)"}}},
		},
		{
			name:     "an Azure client ID in lower case matches its upper-case entry",
			boundary: newBoundary(fixtures.WithCloudRoles(financeRoles())),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAzureClient("0b9e4f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b", financeEntra)),
		},
		{
			name: "an Azure client ID glob, case-insensitive",
			boundary: newBoundary(fixtures.WithCloudRoles(custosv1alpha1.CloudRolePolicy{
				AzureClientIDs: []string{"0b9e4f6a-*"},
			})),
			ns:    tenantNamespace(),
			agent: newAgent(fixtures.WithAzureClient("0B9E4F6A-FFFF-4E5F-8A9B-0C1D2E3F4A5B", financeEntra)),
		},
		{
			name:     "an Azure client ID that is not listed",
			boundary: newBoundary(fixtures.WithCloudRoles(financeRoles())),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAzureClient("0b9e4f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5c", financeEntra)),
			want: []wantError{{azurePath, []string{
				`0b9e4f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5c is not allowed by DataBoundary "acme-finance" (spec.cloudRoles.azureClientIDs)`,
			}}},
		},
		{
			name:     "a GCP service account of another project",
			boundary: newBoundary(fixtures.WithCloudRoles(financeRoles())),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithGCPServiceAccount("invoice-bot@acme-sales.iam.gserviceaccount.com")),
			want: []wantError{{gcpPath, []string{
				`invoice-bot@acme-sales.iam.gserviceaccount.com is not allowed by DataBoundary "acme-finance" (spec.cloudRoles.gcpServiceAccounts)`,
			}}},
		},
		{
			name: "an exact GCP service account entry",
			boundary: newBoundary(fixtures.WithCloudRoles(custosv1alpha1.CloudRolePolicy{
				GCPServiceAccounts: []string{"other@acme-finance.iam.gserviceaccount.com", financeSA},
			})),
			ns:    tenantNamespace(),
			agent: newAgent(fixtures.WithGCPServiceAccount(financeSA)),
		},

		// Identity mode.
		{
			name:     "leased by default, whatever the boundary says of ambient identity",
			boundary: newBoundary(fixtures.WithCloudRoles(financeRoles())),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAWSRole(financeRole), fixtures.WithAzureClient(financeAzure, financeEntra)),
		},
		{
			name:     "leased, said explicitly",
			boundary: newBoundary(fixtures.WithCloudRoles(financeRoles()), fixtures.WithAmbientIdentity(custosv1alpha1.AmbientIdentityForbidden)),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAWSRole(financeRole), fixtures.WithIdentityMode(custosv1alpha1.IdentityModeLeased)),
		},
		{
			name:     "ambient where the boundary does not say",
			boundary: newBoundary(fixtures.WithCloudRoles(financeRoles())),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAWSRole(financeRole), fixtures.WithIdentityMode(custosv1alpha1.IdentityModeAmbient)),
			want: []wantError{{modePath, []string{
				`DataBoundary "acme-finance" does not allow ambient cloud identity (spec.cloudRoles.ambientIdentity); leased credentials (spec.credentials awsSTS, azureToken) reach the same roles`,
			}}},
		},
		{
			name:     "ambient where the boundary forbids it",
			boundary: newBoundary(fixtures.WithCloudRoles(financeRoles()), fixtures.WithAmbientIdentity(custosv1alpha1.AmbientIdentityForbidden)),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAzureClient(financeAzure, financeEntra), fixtures.WithIdentityMode(custosv1alpha1.IdentityModeAmbient)),
			want:     []wantError{{modePath, []string{"does not allow ambient cloud identity"}}},
		},
		{
			name:     "ambient where the boundary allows it",
			boundary: newBoundary(fixtures.WithCloudRoles(financeRoles()), fixtures.WithAmbientIdentity(custosv1alpha1.AmbientIdentityAllowed)),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAWSRole(financeRole), fixtures.WithGCPServiceAccount(financeSA), fixtures.WithIdentityMode(custosv1alpha1.IdentityModeAmbient)),
		},
		{
			name:     "ambient allowed does not allow a role the boundary does not list",
			boundary: newBoundary(fixtures.WithCloudRoles(financeRoles()), fixtures.WithAmbientIdentity(custosv1alpha1.AmbientIdentityAllowed)),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAWSRole("arn:aws:iam::111122223333:role/acme-sales-crm"), fixtures.WithIdentityMode(custosv1alpha1.IdentityModeAmbient)),
			want:     []wantError{{awsPath, []string{"(spec.cloudRoles.awsRoleARNs)"}}},
		},
		{
			name:     "ambient without cloudRoles: the mode and the role are both refused",
			boundary: newBoundary(),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithAWSRole(financeRole), fixtures.WithIdentityMode(custosv1alpha1.IdentityModeAmbient)),
			want: []wantError{
				{modePath, []string{"does not allow ambient cloud identity"}},
				{awsPath, []string{"spec.cloudRoles is not set"}},
			},
		},

		// Images.
		{
			name:     "an image from an allowed registry",
			boundary: newBoundary(fixtures.WithRegistries("registry.acme.example/agents/")),
			ns:       tenantNamespace(),
			agent:    newAgent(),
		},
		{
			name:     "an image from another registry",
			boundary: newBoundary(fixtures.WithRegistries("registry.acme.example/agents/")),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithImage("ghcr.io/evil/agent:1.0")),
			want: []wantError{{imagePath, []string{
				`ghcr.io/evil/agent:1.0 is not allowed by DataBoundary "acme-finance" (spec.images.registries)`,
			}}},
		},
		{
			name:     "an image reference that does not parse",
			boundary: newBoundary(fixtures.WithRegistries("registry.acme.example/agents/")),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithImage("registry.acme.example/agents/x@latest")),
			want: []wantError{{imagePath, []string{
				`"registry.acme.example/agents/x@latest" is not an image reference DataBoundary "acme-finance" can check`,
			}}},
		},
		{
			name:     "an images policy without registries allows any image",
			boundary: newBoundary(func(b *custosv1alpha1.DataBoundary) { b.Spec.Images = &custosv1alpha1.ImagePolicy{} }),
			ns:       tenantNamespace(),
			agent:    newAgent(fixtures.WithImage("ghcr.io/evil/agent:1.0")),
		},

		// Everything at once, in a fixed order.
		{
			name:     "every rule broken",
			boundary: newBoundary(fixtures.WithCloudRoles(financeRoles()), fixtures.WithRegistries("registry.acme.example/agents")),
			ns:       fixtures.Namespace("acme-payments", map[string]string{custosv1alpha1.TenantLabel: "globex"}),
			agent: newAgent(
				fixtures.WithAgentLabels(nil),
				fixtures.WithIdentityMode(custosv1alpha1.IdentityModeAmbient),
				fixtures.WithAWSRole("arn:aws:iam::111122223333:role/other"),
				fixtures.WithAzureClient("00000000-0000-0000-0000-000000000000", financeEntra),
				fixtures.WithGCPServiceAccount("x@other.iam.gserviceaccount.com"),
				fixtures.WithImage("registry.acme.example/agent:1"),
			),
			want: []wantError{
				{tenantPath, []string{"the Agent has no"}},
				{tenantPath, []string{"namespace", "differs"}},
				{modePath, []string{"ambientIdentity"}},
				{awsPath, []string{"awsRoleARNs"}},
				{azurePath, []string{"azureClientIDs"}},
				{gcpPath, []string{"gcpServiceAccounts"}},
				{imagePath, []string{"registry.acme.example/agent:1", "spec.images.registries"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			expectErrors(g, CheckAgent(tt.boundary, tt.ns, tt.agent), tt.want)
		})
	}
}

func TestCheckToolset(t *testing.T) {
	const (
		regionPath  = "spec.region"
		inClusterNS = "spec.endpoint.inCluster.namespace"
	)
	sharedEgress := custosv1alpha1.EgressPolicy{Namespaces: []string{"platform-search"}}
	cidrEgress := custosv1alpha1.EgressPolicy{CIDRs: []string{"203.0.113.0/24", "2001:db8:1::/48"}}

	tests := []struct {
		name       string
		boundary   *custosv1alpha1.DataBoundary
		toolset    *custosv1alpha1.Toolset
		endpointNS *corev1.Namespace
		want       []wantError
	}{
		{
			name:       "an in-cluster toolset of the tenant",
			boundary:   newBoundary(),
			toolset:    newToolset(),
			endpointNS: tenantNamespace(),
		},

		// Tenant.
		{
			name:       "the toolset has no tenant label",
			boundary:   newBoundary(),
			toolset:    newToolset(fixtures.WithToolsetLabels(map[string]string{"app": "ledger"})),
			endpointNS: tenantNamespace(),
			want:       []wantError{{tenantPath, []string{"the Toolset has no custos.dev/tenant label", `DataBoundary "acme-finance"`}}},
		},
		{
			name:       "the toolset belongs to another tenant",
			boundary:   newBoundary(),
			toolset:    newToolset(fixtures.WithToolsetLabels(map[string]string{custosv1alpha1.TenantLabel: "globex"})),
			endpointNS: tenantNamespace(),
			want:       []wantError{{tenantPath, []string{`tenant "globex" is not tenant "acme" of DataBoundary "acme-finance" (spec.tenant)`}}},
		},

		// Residency.
		{
			name:       "a region of the boundary",
			boundary:   newBoundary(),
			toolset:    newToolset(fixtures.WithToolsetRegion("eu-central-1")),
			endpointNS: tenantNamespace(),
		},
		{
			name:       "a region outside the boundary",
			boundary:   newBoundary(),
			toolset:    newToolset(fixtures.WithToolsetRegion("us-east-1")),
			endpointNS: tenantNamespace(),
			want: []wantError{{regionPath, []string{
				`region "us-east-1" is not allowed by DataBoundary "acme-finance" (spec.regions: eu-west-1, eu-central-1)`,
			}}},
		},
		{
			name:       "regions are compared exactly",
			boundary:   newBoundary(),
			toolset:    newToolset(fixtures.WithToolsetRegion("eu-west")),
			endpointNS: tenantNamespace(),
			want:       []wantError{{regionPath, []string{`region "eu-west"`}}},
		},

		// In-cluster egress.
		{
			name:       "an endpoint in another covered namespace",
			boundary:   newBoundary(),
			toolset:    newToolset(fixtures.WithInClusterNamespace("acme-ledger")),
			endpointNS: fixtures.Namespace("acme-ledger", map[string]string{custosv1alpha1.TenantLabel: "acme"}),
		},
		{
			name:       "an endpoint in another tenant's namespace",
			boundary:   newBoundary(),
			toolset:    newToolset(fixtures.WithInClusterNamespace("globex-ledger")),
			endpointNS: fixtures.Namespace("globex-ledger", map[string]string{custosv1alpha1.TenantLabel: "globex"}),
			want: []wantError{{inClusterNS, []string{
				`namespace "globex-ledger" is neither covered by DataBoundary "acme-finance" (spec.namespaceSelector) nor listed in its spec.egress.namespaces`,
			}}},
		},
		{
			name:       "an endpoint in a shared namespace listed in egress",
			boundary:   newBoundary(fixtures.WithEgress(sharedEgress)),
			toolset:    newToolset(fixtures.WithInClusterNamespace("platform-search")),
			endpointNS: fixtures.Namespace("platform-search", nil),
		},
		{
			name:       "a listed shared namespace that does not exist yet",
			boundary:   newBoundary(fixtures.WithEgress(sharedEgress)),
			toolset:    newToolset(fixtures.WithInClusterNamespace("platform-search")),
			endpointNS: nil,
		},
		{
			name:       "an endpoint namespace that does not exist and is not listed",
			boundary:   newBoundary(fixtures.WithEgress(sharedEgress)),
			toolset:    newToolset(fixtures.WithInClusterNamespace("acme-ledger")),
			endpointNS: nil,
			want: []wantError{{inClusterNS, []string{
				`namespace "acme-ledger" does not exist and is not listed in spec.egress.namespaces of DataBoundary "acme-finance"`,
			}}},
		},
		{
			name:       "a Namespace object of another name lends no coverage",
			boundary:   newBoundary(),
			toolset:    newToolset(fixtures.WithInClusterNamespace("globex-ledger")),
			endpointNS: tenantNamespace(),
			want:       []wantError{{inClusterNS, []string{`namespace "globex-ledger" does not exist`}}},
		},
		{
			name:       "a boundary with an invalid selector covers no endpoint namespace",
			boundary:   newBoundary(fixtures.WithSelector(metav1.LabelSelector{})),
			toolset:    newToolset(),
			endpointNS: tenantNamespace(),
			want:       []wantError{{inClusterNS, []string{`namespace "acme-payments" cannot be checked against DataBoundary "acme-finance"`, "empty namespaceSelector"}}},
		},

		// External egress.
		{
			name:     "external CIDRs inside the allowed ones, IPv4 and IPv6",
			boundary: newBoundary(fixtures.WithEgress(cidrEgress)),
			toolset:  newToolset(fixtures.WithExternal("203.0.113.0/24", "203.0.113.128/25", "203.0.113.7/32", "2001:db8:1:2::/64")),
		},
		{
			name:     "no egress allows no external CIDR",
			boundary: newBoundary(),
			toolset:  newToolset(fixtures.WithExternal("203.0.113.0/24")),
			want: []wantError{{"spec.endpoint.external.cidrs[0]", []string{
				`203.0.113.0/24 is not allowed by DataBoundary "acme-finance" (spec.egress is not set`,
			}}},
		},
		{
			name:     "egress with namespaces only allows no external CIDR",
			boundary: newBoundary(fixtures.WithEgress(sharedEgress)),
			toolset:  newToolset(fixtures.WithExternal("203.0.113.0/24")),
			want:     []wantError{{"spec.endpoint.external.cidrs[0]", []string{"(spec.egress.cidrs)"}}},
		},
		{
			name:     "each CIDR outside the allowed ones is reported at its index",
			boundary: newBoundary(fixtures.WithEgress(cidrEgress)),
			toolset:  newToolset(fixtures.WithExternal("203.0.113.0/25", "203.0.112.0/23", "2001:db8:1::1/128", "2001:db8::/32", "0.0.0.0/0")),
			want: []wantError{
				{"spec.endpoint.external.cidrs[1]", []string{`203.0.112.0/23 is not allowed by DataBoundary "acme-finance" (spec.egress.cidrs)`}},
				{"spec.endpoint.external.cidrs[3]", []string{`2001:db8::/32 is not allowed by DataBoundary "acme-finance" (spec.egress.cidrs)`}},
				{"spec.endpoint.external.cidrs[4]", []string{`0.0.0.0/0 is not allowed`}},
			},
		},
		{
			name:     "an external CIDR that does not parse",
			boundary: newBoundary(fixtures.WithEgress(cidrEgress)),
			toolset:  newToolset(fixtures.WithExternal("203.0.113.0/33")),
			want:     []wantError{{"spec.endpoint.external.cidrs[0]", []string{`"203.0.113.0/33" is not a CIDR`}}},
		},

		{
			name:       "every rule broken",
			boundary:   newBoundary(),
			toolset:    newToolset(fixtures.WithToolsetLabels(nil), fixtures.WithToolsetRegion("us-east-1"), fixtures.WithInClusterNamespace("globex-ledger")),
			endpointNS: fixtures.Namespace("globex-ledger", nil),
			want: []wantError{
				{tenantPath, []string{"the Toolset has no"}},
				{regionPath, []string{"us-east-1"}},
				{inClusterNS, []string{"globex-ledger"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			expectErrors(g, CheckToolset(tt.boundary, tt.toolset, tt.endpointNS), tt.want)
		})
	}
}
