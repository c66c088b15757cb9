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

// Package identity owns an agent's identity in the cluster: the name of its
// dedicated ServiceAccount, the workload-identity bindings of each cloud
// written onto it, and its SPIFFE ID.
package identity

import (
	"slices"
	"strings"

	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// The annotations and labels each cloud's workload-identity webhook reads.
const (
	// AWSRoleARNAnnotation binds an IAM role through IRSA.
	AWSRoleARNAnnotation = "eks.amazonaws.com/role-arn"
	// AzureClientIDAnnotation names the Entra ID application.
	AzureClientIDAnnotation = "azure.workload.identity/client-id"
	// AzureTenantIDAnnotation names the Entra ID tenant.
	AzureTenantIDAnnotation = "azure.workload.identity/tenant-id"
	// AzureUseLabel opts a pod into Azure Workload Identity's token injection.
	AzureUseLabel = "azure.workload.identity/use"
	// GCPServiceAccountAnnotation binds a Google service account.
	GCPServiceAccountAnnotation = "iam.gke.io/gcp-service-account"
)

// ServiceAccountName is the name of an agent's own ServiceAccount. The prefix
// keeps it apart from ServiceAccounts people create by hand.
func ServiceAccountName(agentName string) string {
	return ChildPrefix + agentName
}

// ChildPrefix starts the name of everything Custos makes for an agent: its
// ServiceAccount, Deployment, NetworkPolicy and lease Secrets. The API server
// reserves names with it in tenant namespaces for Custos
// (config/crd/policies).
const ChildPrefix = "agent-"

// LeaseSecretName names the Secret holding the lease of an agent's
// credential. Agent and credential names are DNS labels (no '.'), so the '.'
// tells unambiguously where the agent's name ends: agent "invoice" with
// credential "reconciler-ledger-api" and agent "invoice-reconciler" with
// credential "ledger-api" get different Secrets.
func LeaseSecretName(agentName, credential string) string {
	return ChildPrefix + agentName + "." + credential
}

// GatewayLeaseSecretName names the Secret, in the namespace where Custos
// keeps credentials for custos-gateway, holding the lease of an agent's
// gateway-only credential. Namespace, agent and credential names are DNS
// labels (no '.'): agents of different namespaces never share one.
func GatewayLeaseSecretName(namespace, agentName, credential string) string {
	return ChildPrefix + namespace + "." + agentName + "." + credential
}

// LeaseOf splits a lease Secret's name into its agent and credential; ok is
// false for a name that is not a lease's.
func LeaseOf(secretName string) (agentName, credential string, ok bool) {
	rest, found := strings.CutPrefix(secretName, ChildPrefix)
	if !found {
		return "", "", false
	}
	agentName, credential, ok = strings.Cut(rest, ".")
	if !ok || agentName == "" || credential == "" {
		return "", "", false
	}
	return agentName, credential, true
}

// SPIFFEID is the SPIFFE ID of a workload running as a ServiceAccount, in the
// form SPIRE's Kubernetes workload attestor issues.
func SPIFFEID(trustDomain, namespace, serviceAccount string) string {
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// Mode is the identity mode b asks for: Leased unless it says Ambient (an
// Agent stored before modes existed, or built in code, has none).
func Mode(b *custosv1alpha1.IdentityBindings) custosv1alpha1.IdentityMode {
	if b != nil && b.Mode == custosv1alpha1.IdentityModeAmbient {
		return custosv1alpha1.IdentityModeAmbient
	}
	return custosv1alpha1.IdentityModeLeased
}

// Annotations are the ServiceAccount annotations that bind b's clouds: none
// unless b is Ambient. In Leased mode nothing on the ServiceAccount tells a
// platform webhook (or GKE's metadata server) to hand the pods a cloud token;
// the roles are reached through leases only.
func Annotations(b *custosv1alpha1.IdentityBindings) map[string]string {
	a := map[string]string{}
	if Mode(b) != custosv1alpha1.IdentityModeAmbient {
		return a
	}
	if b.AWS != nil {
		a[AWSRoleARNAnnotation] = b.AWS.RoleARN
	}
	if b.Azure != nil {
		a[AzureClientIDAnnotation] = b.Azure.ClientID
		a[AzureTenantIDAnnotation] = b.Azure.TenantID
	}
	if b.GCP != nil {
		a[GCPServiceAccountAnnotation] = b.GCP.ServiceAccount
	}
	return a
}

// PodLabels are the labels an agent's pods need for b's clouds: Azure
// Workload Identity's opt-in label, in Ambient mode only.
func PodLabels(b *custosv1alpha1.IdentityBindings) map[string]string {
	l := map[string]string{}
	if Mode(b) == custosv1alpha1.IdentityModeAmbient && b.Azure != nil {
		l[AzureUseLabel] = "true"
	}
	return l
}

// cloudAnnotationPrefixes start the ServiceAccount annotations the clouds'
// workload-identity webhooks and GKE's metadata server read.
var cloudAnnotationPrefixes = []string{"eks.amazonaws.com/", "azure.workload.identity/", "iam.gke.io/"}

// ForeignCloudAnnotations lists, sorted, the keys of the cloud
// workload-identity annotations in current that are not among own (the
// annotations Custos sets, whose values server-side apply re-asserts):
// someone else's, to be removed.
func ForeignCloudAnnotations(current, own map[string]string) []string {
	var keys []string
	for k := range current {
		if _, ok := own[k]; ok {
			continue
		}
		for _, p := range cloudAnnotationPrefixes {
			if strings.HasPrefix(k, p) {
				keys = append(keys, k)
				break
			}
		}
	}
	slices.Sort(keys)
	return keys
}

// Clouds names the clouds b binds, in a stable order, for messages.
func Clouds(b *custosv1alpha1.IdentityBindings) []string {
	var c []string
	if b == nil {
		return c
	}
	if b.AWS != nil {
		c = append(c, "aws")
	}
	if b.Azure != nil {
		c = append(c, "azure")
	}
	if b.GCP != nil {
		c = append(c, "gcp")
	}
	return c
}

// ServiceAccount renders an agent's ServiceAccount for server-side apply.
// The API server never mounts its token into pods on its own: credentials
// are issued as leases, only for the audiences the agent asked for.
func ServiceAccount(name, namespace string, b *custosv1alpha1.IdentityBindings) *corev1ac.ServiceAccountApplyConfiguration {
	sa := corev1ac.ServiceAccount(name, namespace).WithAutomountServiceAccountToken(false)
	if a := Annotations(b); len(a) > 0 {
		sa.WithAnnotations(a)
	}
	return sa
}

// Describe says in words which clouds b binds and in which mode, for
// conditions and events: "aws, gcp (leased)".
func Describe(b *custosv1alpha1.IdentityBindings) string {
	c := Clouds(b)
	if len(c) == 0 {
		return "no cloud identity"
	}
	return strings.Join(c, ", ") + " (" + strings.ToLower(string(Mode(b))) + ")"
}
