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

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ToolAccess says whether a tool only reads or also changes the world.
// +kubebuilder:validation:Enum=Read;Write
type ToolAccess string

const (
	// ToolAccessRead: the tool only reads.
	ToolAccessRead ToolAccess = "Read"
	// ToolAccessWrite: the tool changes data or triggers actions.
	ToolAccessWrite ToolAccess = "Write"
)

// DataClassification is the most sensitive class of data a Toolset handles.
// +kubebuilder:validation:Enum=Public;Internal;Confidential;Restricted
type DataClassification string

const (
	// ClassificationPublic: data that may be published.
	ClassificationPublic DataClassification = "Public"
	// ClassificationInternal: data for the organisation only.
	ClassificationInternal DataClassification = "Internal"
	// ClassificationConfidential: data for named teams only.
	ClassificationConfidential DataClassification = "Confidential"
	// ClassificationRestricted: regulated data (payment, health, personal).
	ClassificationRestricted DataClassification = "Restricted"
)

// ToolsetAccess summarizes the access of all tools of a Toolset.
type ToolsetAccess string

const (
	// ToolsetReadOnly: every tool is Read.
	ToolsetReadOnly ToolsetAccess = "ReadOnly"
	// ToolsetReadWrite: at least one tool is Write.
	ToolsetReadWrite ToolsetAccess = "ReadWrite"
)

// ToolsetSpec is a scoped set of tools served by one endpoint.
type ToolsetSpec struct {
	// description says what the tools are for.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// endpoint is where the tool server listens. Agents using this Toolset may
	// reach it, and nothing else it does not allow.
	// +required
	Endpoint ToolEndpoint `json:"endpoint"`

	// region the tool server runs in, for data residency; it must be one of
	// the tenant's DataBoundary regions.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Region string `json:"region,omitempty"`

	// dataClassification is the most sensitive class of data the tools handle.
	// +optional
	// +kubebuilder:default=Internal
	DataClassification DataClassification `json:"dataClassification,omitempty"`

	// tools the server offers.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=128
	Tools []Tool `json:"tools"`
}

// ToolEndpoint is an in-cluster or an external endpoint: exactly one.
// +kubebuilder:validation:XValidation:rule="has(self.inCluster) != has(self.external)",message="exactly one of inCluster or external must be set"
type ToolEndpoint struct {
	// inCluster is a tool server running as pods in the cluster.
	// +optional
	InCluster *InClusterEndpoint `json:"inCluster,omitempty"`

	// external is a tool server outside the cluster.
	// +optional
	External *ExternalEndpoint `json:"external,omitempty"`

	// path is the tool server's MCP endpoint on its host, where
	// custos-gateway sends the agent's calls.
	// +optional
	// +kubebuilder:default="/mcp"
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/[^?#\s]*$`
	Path string `json:"path,omitempty"`
}

// InClusterEndpoint selects the tool server's pods.
type InClusterEndpoint struct {
	// namespace of the tool server's pods.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace"`

	// podSelector selects the tool server's pods by label.
	// +required
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=16
	PodSelector map[string]string `json:"podSelector"`

	// port the tool server listens on.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`

	// service is the Service in namespace, in front of the selected pods on
	// port, that custos-gateway calls. Without it the gateway cannot call
	// the Toolset.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Service string `json:"service,omitempty"`

	// scheme custos-gateway calls service with: https (the default; the
	// server's certificate must chain to the gateway's upstream CAs) or
	// http, which carries the Toolset's token in the clear on the pod
	// network (only behind a mesh that encrypts it).
	// +optional
	// +kubebuilder:default=https
	// +kubebuilder:validation:Enum=https;http
	Scheme string `json:"scheme,omitempty"`
}

// ExternalEndpoint is a tool server reached over the network.
type ExternalEndpoint struct {
	// host is the server's DNS name, used by the gateway and in audit records.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Host string `json:"host"`

	// cidrs are the addresses the server is reached at; agent egress is
	// opened to these, and only where the DataBoundary allows.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self)",message="must be a CIDR such as 203.0.113.0/24"
	CIDRs []string `json:"cidrs"`

	// port the server listens on.
	// +optional
	// +kubebuilder:default=443
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
}

// Tool is one tool of a Toolset.
// +kubebuilder:validation:XValidation:rule="!has(self.irreversible) || !self.irreversible || self.access == 'Write'",message="only a Write tool can be irreversible",fieldPath=".irreversible"
type Tool struct {
	// name of the tool as the agent calls it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	Name string `json:"name"`

	// description of what the tool does.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// access says whether the tool only reads or also writes.
	// +required
	Access ToolAccess `json:"access"`

	// irreversible marks a Write tool whose effect cannot be undone (a
	// payment, a deletion); such calls may require human approval.
	// +optional
	Irreversible bool `json:"irreversible,omitempty"`

	// inputSchema is the JSON Schema the tool's input must satisfy.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	InputSchema *runtime.RawExtension `json:"inputSchema,omitempty"`

	// outputSchema is the JSON Schema the tool's output must satisfy.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	OutputSchema *runtime.RawExtension `json:"outputSchema,omitempty"`

	// bind sets arguments of every call from the caller's token, so that
	// the agent cannot choose them: a call that sends another value is
	// refused by custos-gateway, and one that sends none gets the token's.
	// +optional
	// +listType=map
	// +listMapKey=argument
	// +kubebuilder:validation:MaxItems=8
	Bind []ArgumentBinding `json:"bind,omitempty"`

	// recordsPath says where the records are in the tool's structured
	// result: a JSON Pointer (RFC 6901, "/invoices") to an array, whose
	// length is the records a call returned, for maxRecords and the
	// DataBoundary's caps. Empty: a result that is an array is that many
	// records. Anything else (nothing there, not an array): one record.
	// The caps on bytes count whatever a record is.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^(/([^~/]|~[01])*)*$`
	RecordsPath string `json:"recordsPath,omitempty"`

	// maxRecords is the most records one call of the tool may return: a
	// result with more is withheld from the agent (CapExceeded) and the
	// agent is frozen (an AgentFreeze with trigger Cap).
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxRecords *int64 `json:"maxRecords,omitempty"`
}

// ArgumentBinding binds one top-level argument of a tool to a claim of the
// caller's token.
type ArgumentBinding struct {
	// argument is the name of a top-level property of the tool's input.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_.-]*$`
	Argument string `json:"argument"`

	// claim is what of the token the argument gets: Person (sub, the
	// person the agent acts for, as custos-sts names them), PersonAtIssuer
	// (the person as their identity provider names them), Session, Tenant
	// or Agent (the acting agent's SPIFFE ID).
	// +required
	Claim BoundClaim `json:"claim"`
}

// BoundClaim is a claim of the caller's token an argument can be bound to.
// +kubebuilder:validation:Enum=Person;PersonAtIssuer;Session;Tenant;Agent
type BoundClaim string

const (
	BoundClaimPerson         BoundClaim = "Person"
	BoundClaimPersonAtIssuer BoundClaim = "PersonAtIssuer"
	BoundClaimSession        BoundClaim = "Session"
	BoundClaimTenant         BoundClaim = "Tenant"
	BoundClaimAgent          BoundClaim = "Agent"
)

// ToolsetStatus is what Custos observed of a Toolset.
type ToolsetStatus struct {
	// observedGeneration is the generation last reconciled successfully; -1
	// until the first success.
	// +optional
	// +kubebuilder:default=-1
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Reconciling, Stalled, SchemasValid, and
	// NetworkIsolated while custos-gateway runs (the tool server reachable
	// from the gateway only).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// access is ReadOnly when every tool is Read, else ReadWrite.
	// +optional
	// +kubebuilder:validation:Enum=ReadOnly;ReadWrite
	Access ToolsetAccess `json:"access,omitempty"`

	// tools is the number of tools.
	// +optional
	Tools int32 `json:"tools,omitempty"`

	// schemaDigest is the sha256 of the tools' names and input and output
	// schemas in canonical JSON, so a change to any schema shows; empty while
	// a schema is invalid.
	// +optional
	// +kubebuilder:validation:MaxLength=71
	SchemaDigest string `json:"schemaDigest,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ts,categories=custos
// +kubebuilder:printcolumn:name="Tenant",type=string,JSONPath=`.metadata.labels.custos\.dev/tenant`
// +kubebuilder:printcolumn:name="Access",type=string,JSONPath=`.status.access`
// +kubebuilder:printcolumn:name="Class",type=string,JSONPath=`.spec.dataClassification`
// +kubebuilder:printcolumn:name="Region",type=string,JSONPath=`.spec.region`
// +kubebuilder:printcolumn:name="Tools",type=integer,JSONPath=`.status.tools`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Toolset is a scoped set of tools on one server: per-tool access, the
// irreversible flag, input and output JSON Schemas, the endpoint, its region
// and the class of data it handles. Agents reference Toolsets to use them.
type Toolset struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the tool owner declares.
	// +required
	Spec ToolsetSpec `json:"spec"`

	// status is what Custos observed.
	// +optional
	// +kubebuilder:default={}
	Status ToolsetStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// ToolsetList is a list of Toolsets.
type ToolsetList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Toolset `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Toolset{}, &ToolsetList{})
}

// PIIClass is a class of personal data a Toolset's schema marks a field
// with (x-custos-pii): the field is treated as that class whatever it
// holds.
type PIIClass string

const (
	PIIPerson        PIIClass = "person"
	PIIContact       PIIClass = "contact"
	PIIGovernmentID  PIIClass = "government-id"
	PIIFinancial     PIIClass = "financial"
	PIIHealth        PIIClass = "health"
	PIILocation      PIIClass = "location"
	PIICredential    PIIClass = "credential"
	PIISchemaKeyword          = "x-custos-pii"
)

// PIIClasses are the classes a schema may mark a field with, in order.
var PIIClasses = []PIIClass{PIIPerson, PIIContact, PIIGovernmentID, PIIFinancial, PIIHealth, PIILocation, PIICredential}
