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

package v1alpha1

import "k8s.io/apimachinery/pkg/types"

// AgentDelegation says who may have an agent act for them (custos-sts).
// A person delegates to the agent when their subject or one of their
// groups is listed; after the first hop, the agent passing the person's
// token on must be listed in agents too. The person is checked at every
// hop: a low-privilege agent cannot relay a person another agent may not
// act for.
type AgentDelegation struct {
	// people are the subjects (the sub claim, as the tenant's trusted
	// issuer names them) who may have the agent act for them.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	People []string `json:"people,omitempty"`

	// groups whose members may have the agent act for them (the groups
	// claim, as the trusted issuer's claim mapping reads it).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Groups []string `json:"groups,omitempty"`

	// agents may pass a person's token on to this agent: Agents of the
	// same tenant, in the agent's namespace unless one is given.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Agents []AgentReference `json:"agents,omitempty"`

	// maxDepth is how many agents a chain of delegation may hold, this
	// one included: 2 by default, at most 4.
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4
	MaxDepth int32 `json:"maxDepth,omitempty"`
}

// AgentReference names an Agent.
type AgentReference struct {
	// name of the Agent.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// namespace of the Agent; the referring agent's own when empty.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// Key is the namespace and name of the referenced Agent, for a reference
// made by an Agent in namespace: without a namespace, its own.
func (r AgentReference) Key(namespace string) types.NamespacedName {
	if r.Namespace != "" {
		namespace = r.Namespace
	}
	return types.NamespacedName{Namespace: namespace, Name: r.Name}
}

// TrustedIssuer is an identity provider whose tokens name a tenant's
// people to custos-sts.
type TrustedIssuer struct {
	// issuer is the iss claim of its tokens, an https URL; its keys are
	// found through its OpenID discovery document unless jwksURL says.
	// +required
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https'",message="must be an https URL"
	Issuer string `json:"issuer"`

	// audiences: a person's token must carry one of them (the client ID
	// custos-sts has at the provider).
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Audiences []string `json:"audiences"`

	// jwksURL is where the provider's keys are, an https URL; from its
	// discovery document when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https'",message="must be an https URL"
	JWKSURL string `json:"jwksURL,omitempty"`

	// claims say which claims carry a person's groups, tenant and data
	// region.
	// +optional
	// +kubebuilder:default={groups: groups}
	Claims IssuerClaims `json:"claims,omitzero"`
}

// IssuerClaims map a trusted issuer's claims.
type IssuerClaims struct {
	// groups is the claim listing the person's groups.
	// +optional
	// +kubebuilder:default=groups
	// +kubebuilder:validation:MaxLength=128
	Groups string `json:"groups,omitempty"`

	// tenant is the claim naming the tenant a person belongs to, for an
	// identity provider several tenants share: a person's token is taken
	// only when it names this DataBoundary's tenant there (the claim a
	// string, or a list holding it). Empty: every person the provider
	// vouches for with one of the audiences is the tenant's.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Tenant string `json:"tenant,omitempty"`

	// dataRegion is the claim naming the region the person's data may be
	// processed in; none when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DataRegion string `json:"dataRegion,omitempty"`
}
