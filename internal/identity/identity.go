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
	return "agent-" + agentName
}

// SPIFFEID is the SPIFFE ID of a workload running as a ServiceAccount, in the
// form SPIRE's Kubernetes workload attestor issues.
func SPIFFEID(trustDomain, namespace, serviceAccount string) string {
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// Annotations are the ServiceAccount annotations that bind b's clouds.
func Annotations(b *custosv1alpha1.IdentityBindings) map[string]string {
	a := map[string]string{}
	if b == nil {
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

// PodLabels are the labels an agent's pods need for b's clouds.
func PodLabels(b *custosv1alpha1.IdentityBindings) map[string]string {
	l := map[string]string{}
	if b != nil && b.Azure != nil {
		l[AzureUseLabel] = "true"
	}
	return l
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

// Describe says in words which clouds b binds, for conditions and events.
func Describe(b *custosv1alpha1.IdentityBindings) string {
	c := Clouds(b)
	if len(c) == 0 {
		return "no cloud identity"
	}
	return strings.Join(c, ", ")
}
