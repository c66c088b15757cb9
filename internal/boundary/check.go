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
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// tenantLabelPath is where both the object's and its namespace's tenant
// mismatches are reported: the label is what the owner can fix on the object,
// whichever side is wrong.
var tenantLabelPath = field.NewPath("metadata", "labels").Key(custosv1alpha1.TenantLabel)

// CheckAgent returns every way agent breaks b, the boundary covering its
// namespace ns. Every rule is checked, not just the first that fails, so the
// owner can fix them all in one edit.
func CheckAgent(b *custosv1alpha1.DataBoundary, ns *corev1.Namespace, agent *custosv1alpha1.Agent) field.ErrorList {
	var errs field.ErrorList
	errs = appendIfError(errs, checkTenantLabel(b, "Agent", agent.Labels))
	errs = appendIfError(errs, checkNamespaceTenant(b, ns, agent.Namespace))
	errs = append(errs, checkIdentity(b, agent.Spec.Identity)...)
	errs = appendIfError(errs, checkImage(b, agent.Spec.Image))
	return errs
}

// CheckToolset returns every way toolset breaks b, for an agent of b's tenant
// using it. endpointNS is the namespace of the toolset's in-cluster endpoint,
// or nil when it does not exist.
func CheckToolset(b *custosv1alpha1.DataBoundary, toolset *custosv1alpha1.Toolset, endpointNS *corev1.Namespace) field.ErrorList {
	var errs field.ErrorList
	errs = appendIfError(errs, checkTenantLabel(b, "Toolset", toolset.Labels))
	errs = appendIfError(errs, checkRegion(b, toolset.Spec.Region))
	if ic := toolset.Spec.Endpoint.InCluster; ic != nil {
		errs = appendIfError(errs, checkEndpointNamespace(b, ic.Namespace, endpointNS))
	}
	if ext := toolset.Spec.Endpoint.External; ext != nil {
		errs = append(errs, checkExternalCIDRs(b, ext.CIDRs)...)
	}
	return errs
}

func checkTenantLabel(b *custosv1alpha1.DataBoundary, kind string, objLabels map[string]string) *field.Error {
	tenant := objLabels[custosv1alpha1.TenantLabel]
	switch {
	// An empty value is no tenant at all; treating it as missing also keeps
	// a boundary with an empty tenant (which validation refuses) from
	// matching unlabelled objects.
	case tenant == "":
		return field.Forbidden(tenantLabelPath, fmt.Sprintf("the %s has no %s label; DataBoundary %q is for tenant %q (spec.tenant)",
			kind, custosv1alpha1.TenantLabel, b.Name, b.Spec.Tenant))
	case tenant != b.Spec.Tenant:
		return field.Forbidden(tenantLabelPath, fmt.Sprintf("tenant %q is not tenant %q of DataBoundary %q (spec.tenant)",
			tenant, b.Spec.Tenant, b.Name))
	}
	return nil
}

// checkNamespaceTenant fails closed on a nil ns: without the namespace Custos
// cannot know which tenant it was given to.
func checkNamespaceTenant(b *custosv1alpha1.DataBoundary, ns *corev1.Namespace, fallbackName string) *field.Error {
	name := fallbackName
	var tenant string
	if ns != nil {
		name = ns.Name
		tenant = ns.Labels[custosv1alpha1.TenantLabel]
	}
	switch {
	case tenant == "":
		return field.Forbidden(tenantLabelPath, fmt.Sprintf("namespace %q has no %s label; DataBoundary %q covering it is for tenant %q (spec.tenant)",
			name, custosv1alpha1.TenantLabel, b.Name, b.Spec.Tenant))
	case tenant != b.Spec.Tenant:
		return field.Forbidden(tenantLabelPath, fmt.Sprintf("namespace %q has a %s label that differs: %q is not tenant %q of DataBoundary %q (spec.tenant)",
			name, custosv1alpha1.TenantLabel, tenant, b.Spec.Tenant, b.Name))
	}
	return nil
}

func checkIdentity(b *custosv1alpha1.DataBoundary, id *custosv1alpha1.IdentityBindings) field.ErrorList {
	if id == nil {
		return nil
	}
	var policy custosv1alpha1.CloudRolePolicy
	if b.Spec.CloudRoles != nil {
		policy = *b.Spec.CloudRoles
	}
	path := field.NewPath("spec", "identity")
	var errs field.ErrorList
	if id.Mode == custosv1alpha1.IdentityModeAmbient && !AmbientIdentityAllowed(b) {
		errs = append(errs, field.Forbidden(path.Child("mode"), fmt.Sprintf(
			"DataBoundary %q does not allow ambient cloud identity (spec.cloudRoles.ambientIdentity); leased credentials (spec.credentials awsSTS, azureToken) reach the same roles",
			b.Name)))
	}
	if id.AWS != nil {
		errs = appendIfError(errs, checkCloudRole(b, path.Child("aws", "roleARN"), id.AWS.RoleARN,
			"awsRoleARNs", policy.AWSRoleARNs, MatchGlob))
	}
	if id.Azure != nil {
		errs = appendIfError(errs, checkCloudRole(b, path.Child("azure", "clientID"), id.Azure.ClientID,
			"azureClientIDs", policy.AzureClientIDs, matchGlobFold))
	}
	if id.GCP != nil {
		errs = appendIfError(errs, checkCloudRole(b, path.Child("gcp", "serviceAccount"), id.GCP.ServiceAccount,
			"gcpServiceAccounts", policy.GCPServiceAccounts, MatchGlob))
	}
	return errs
}

// AmbientIdentityAllowed: b lets its agents hold their cloud identities
// ambiently (identity mode Ambient). Forbidden unless it says Allowed.
func AmbientIdentityAllowed(b *custosv1alpha1.DataBoundary) bool {
	return b != nil && b.Spec.CloudRoles != nil && b.Spec.CloudRoles.AmbientIdentity == custosv1alpha1.AmbientIdentityAllowed
}

// matchGlobFold matches Azure client IDs, which are GUIDs: Entra ID treats
// them case-insensitively, so a boundary listing one in upper case must still
// allow it in lower case.
func matchGlobFold(pattern, s string) bool {
	return MatchGlob(strings.ToLower(pattern), strings.ToLower(s))
}

// checkCloudRole reports value unless one of patterns, the boundary's list
// named rule, matches it. Without spec.cloudRoles the list is empty and the
// message says why, since "not in an empty list" would read as a typo.
func checkCloudRole(b *custosv1alpha1.DataBoundary, path *field.Path, value, rule string,
	patterns []string, match func(pattern, s string) bool) *field.Error {
	if b.Spec.CloudRoles == nil {
		return field.Forbidden(path, fmt.Sprintf("%s is not allowed by DataBoundary %q (spec.cloudRoles is not set, so no cloud identity may be bound)",
			value, b.Name))
	}
	for _, pattern := range patterns {
		if match(pattern, value) {
			return nil
		}
	}
	return field.Forbidden(path, fmt.Sprintf("%s is not allowed by DataBoundary %q (spec.cloudRoles.%s)", value, b.Name, rule))
}

func checkImage(b *custosv1alpha1.DataBoundary, image string) *field.Error {
	if b.Spec.Images == nil || len(b.Spec.Images.Registries) == 0 {
		return nil
	}
	if RegistryAllowed(b.Spec.Images.Registries, image) {
		return nil
	}
	path := field.NewPath("spec", "image")
	if _, ok := Repository(image); !ok {
		return field.Forbidden(path, fmt.Sprintf("%q is not an image reference DataBoundary %q can check (spec.images.registries); write registry/repository[:tag][@digest]",
			image, b.Name))
	}
	return field.Forbidden(path, fmt.Sprintf("%s is not allowed by DataBoundary %q (spec.images.registries)", image, b.Name))
}

func checkRegion(b *custosv1alpha1.DataBoundary, region string) *field.Error {
	if region == "" || slices.Contains(b.Spec.Regions, region) {
		return nil
	}
	return field.Forbidden(field.NewPath("spec", "region"), fmt.Sprintf("region %q is not allowed by DataBoundary %q (spec.regions: %s)",
		region, b.Name, strings.Join(b.Spec.Regions, ", ")))
}

func checkEndpointNamespace(b *custosv1alpha1.DataBoundary, name string, endpointNS *corev1.Namespace) *field.Error {
	if b.Spec.Egress != nil && slices.Contains(b.Spec.Egress.Namespaces, name) {
		return nil
	}
	path := field.NewPath("spec", "endpoint", "inCluster", "namespace")
	// A Namespace object of another name must not lend its labels to this
	// one: a caller passing the wrong object gets a refusal, not coverage.
	if endpointNS == nil || endpointNS.Name != name {
		return field.Forbidden(path, fmt.Sprintf("namespace %q does not exist and is not listed in spec.egress.namespaces of DataBoundary %q",
			name, b.Name))
	}
	covered, err := Covers(b, endpointNS)
	if err != nil {
		return field.Forbidden(path, fmt.Sprintf("namespace %q cannot be checked against DataBoundary %q: %v", name, b.Name, err))
	}
	if !covered {
		return field.Forbidden(path, fmt.Sprintf("namespace %q is neither covered by DataBoundary %q (spec.namespaceSelector) nor listed in its spec.egress.namespaces",
			name, b.Name))
	}
	return nil
}

func checkExternalCIDRs(b *custosv1alpha1.DataBoundary, cidrs []string) field.ErrorList {
	var allowed []string
	if b.Spec.Egress != nil {
		allowed = b.Spec.Egress.CIDRs
	}
	path := field.NewPath("spec", "endpoint", "external", "cidrs")
	var errs field.ErrorList
	for i, cidr := range cidrs {
		if CIDRWithin(cidr, allowed) {
			continue
		}
		var detail string
		switch _, err := netip.ParsePrefix(cidr); {
		case err != nil:
			detail = fmt.Sprintf("%q is not a CIDR, so DataBoundary %q cannot allow it (spec.egress.cidrs)", cidr, b.Name)
		case b.Spec.Egress == nil:
			detail = fmt.Sprintf("%s is not allowed by DataBoundary %q (spec.egress is not set, so no external network may be reached)", cidr, b.Name)
		default:
			detail = fmt.Sprintf("%s is not allowed by DataBoundary %q (spec.egress.cidrs)", cidr, b.Name)
		}
		errs = append(errs, field.Forbidden(path.Index(i), detail))
	}
	return errs
}

func appendIfError(errs field.ErrorList, err *field.Error) field.ErrorList {
	if err != nil {
		return append(errs, err)
	}
	return errs
}
