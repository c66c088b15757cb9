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
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// LifecycleState is the state an Agent's owner asks for.
// +kubebuilder:validation:Enum=Active;Suspended;Decommissioned
type LifecycleState string

const (
	// LifecycleActive: the agent runs, holds its leases and reaches its tools.
	LifecycleActive LifecycleState = "Active"
	// LifecycleSuspended: the agent is scaled to zero, its leases are revoked
	// and its network is deny-all; it can be made Active again.
	LifecycleSuspended LifecycleState = "Suspended"
	// LifecycleDecommissioned: the agent is taken away for good: every lease
	// revoked, every object removed. The state is final.
	LifecycleDecommissioned LifecycleState = "Decommissioned"
)

// AgentPhase is where an Agent is in its life, as observed by Custos.
// +kubebuilder:validation:Enum=Pending;Active;Suspended;Frozen;Decommissioning;Decommissioned
type AgentPhase string

const (
	// AgentPhasePending: the agent is being onboarded; it is not Ready yet.
	AgentPhasePending AgentPhase = "Pending"
	// AgentPhaseActive: the agent was observed Ready.
	AgentPhaseActive AgentPhase = "Active"
	// AgentPhaseSuspended: the agent is suspended by its owner or on expiry.
	AgentPhaseSuspended AgentPhase = "Suspended"
	// AgentPhaseFrozen: the circuit breaker froze the agent.
	AgentPhaseFrozen AgentPhase = "Frozen"
	// AgentPhaseDecommissioning: the decommission path is under way.
	AgentPhaseDecommissioning AgentPhase = "Decommissioning"
	// AgentPhaseDecommissioned: the decommission path completed.
	AgentPhaseDecommissioned AgentPhase = "Decommissioned"
)

// AgentSpec is what an agent's owner asks for.
// +kubebuilder:validation:XValidation:rule="!has(self.credentials) || self.credentials.all(c, !has(c.awsSTS) || (has(self.identity) && has(self.identity.aws)))",message="awsSTS credentials need spec.identity.aws: a session is assumed from the agent's bound role",fieldPath=".credentials"
// +kubebuilder:validation:XValidation:rule="!has(self.credentials) || self.credentials.all(c, !has(c.azureToken) || (has(self.identity) && has(self.identity.azure)))",message="azureToken credentials need spec.identity.azure: a token is issued for the agent's bound client ID",fieldPath=".credentials"
// +kubebuilder:validation:XValidation:rule="!has(self.credentials) || self.credentials.all(c, !has(c.gateway) || (has(self.toolsetRefs) && self.toolsetRefs.exists(r, r.name == c.gateway.toolset && has(r.__namespace__) == has(c.gateway.toolsetNamespace) && (!has(r.__namespace__) || r.__namespace__ == c.gateway.toolsetNamespace))))",message="a gateway credential's toolset must be one of spec.toolsetRefs (same name and namespace)",fieldPath=".credentials"
type AgentSpec struct {
	// owner is the accountable team for this agent and how to reach it.
	// +required
	Owner AgentOwner `json:"owner"`

	// purpose says in a sentence what the agent does and why it needs the
	// access it asks for. Reviewers and auditors read it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Purpose string `json:"purpose"`

	// image is the agent's container image, by tag or digest. Custos resolves
	// it to a digest, verifies its signature and runs the digest.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.contains(' ')",message="must be an image reference without spaces"
	Image string `json:"image"`

	// runtime shapes the agent's workload.
	// +optional
	// +kubebuilder:default={replicas: 1}
	Runtime AgentRuntime `json:"runtime,omitzero"`

	// identity binds the agent's own ServiceAccount to at most one identity
	// in each cloud, reached through leases unless its mode is Ambient.
	// +optional
	Identity *IdentityBindings `json:"identity,omitempty"`

	// credentials are the short-lived leases issued for the agent, each from
	// its own identity.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Credentials []CredentialSpec `json:"credentials,omitempty"`

	// toolsetRefs are the Toolsets the agent may use. Its egress is limited to
	// their endpoints.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(r, self.exists_one(o, o.name == r.name && (has(o.__namespace__) ? o.__namespace__ : '') == (has(r.__namespace__) ? r.__namespace__ : '')))",message="each Toolset may be referenced once"
	ToolsetRefs []ToolsetReference `json:"toolsetRefs,omitempty"`

	// delegation says who may have the agent act for them through
	// custos-sts: which people and groups, and which agents may pass a
	// person's token on to it. Without it, nobody may.
	// +optional
	Delegation *AgentDelegation `json:"delegation,omitempty"`

	// requireDecisionRecord says which of the agent's tool calls through
	// custos-gateway must carry a decision record (goal, reasoning,
	// alternatives, confidence) in the call's _meta: None, Irreversible
	// (calls of irreversible tools) or Write (calls of Write tools,
	// irreversible ones included). A call without one is refused. Records
	// sent when none is required are checked and recorded all the same.
	// +optional
	// +kubebuilder:default=None
	RequireDecisionRecord DecisionRecordRequirement `json:"requireDecisionRecord,omitempty"`

	// caps lower, for this agent, the caps its DataBoundary sets
	// (spec.caps there): a cap here above the boundary's is refused at
	// admission, one the boundary does not set is the agent's own, and
	// the lower of the two is enforced.
	// +optional
	Caps *AgentCaps `json:"caps,omitempty"`

	// schedule is when the agent is expected to act: its calls outside it
	// open Findings (rubric off-schedule) for a person to look at. None:
	// any time.
	// +optional
	Schedule *AgentSchedule `json:"schedule,omitempty"`

	// evaluation tightens, for this agent, the lines of the evaluator's
	// rubrics its DataBoundary sets (spec.evaluation there): a looser one
	// is refused at admission, and the tighter of the two holds.
	// +optional
	Evaluation *EvaluationThresholds `json:"evaluation,omitempty"`

	// breaker tunes the breaker's watch of this agent within what its
	// DataBoundary allows: a higher sensitivity than the boundary's is
	// anyone's to set (the watch only tightens); Observe and allowances
	// loosen it, so setting or widening them needs what lifting a freeze
	// needs: a person (not a ServiceAccount) allowed the verb unfreeze on
	// the Agent, which the agent's owners do not hold.
	// +optional
	Breaker *AgentBreaker `json:"breaker,omitempty"`

	// review, when set, has the agent's owners re-attest it (an
	// AgentAttestation, kubectl custos attest) every everyDays days, as
	// people review an employee; an agent whose review is overdue is
	// Suspended (reason ReviewOverdue) until an owner attests it.
	// +optional
	Review *AgentReview `json:"review,omitempty"`

	// lifecycle is the state the owner asks for and when the agent expires.
	// +optional
	// +kubebuilder:default={state: Active}
	Lifecycle AgentLifecycle `json:"lifecycle,omitzero"`
}

// AgentSchedule is when an agent is expected to act: weekly windows in a
// time zone.
type AgentSchedule struct {
	// timeZone is the IANA name the windows are read in (Europe/Berlin);
	// UTC when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TimeZone string `json:"timeZone,omitempty"`

	// windows are when the agent acts: a call in none of them is off its
	// schedule.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Windows []ScheduleWindow `json:"windows"`
}

// ScheduleWindow is a weekly window.
type ScheduleWindow struct {
	// days the window opens on; every day when empty.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=7
	Days []Weekday `json:"days,omitempty"`

	// start is when the window opens, HH:MM in the schedule's time zone.
	// +required
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	Start string `json:"start"`

	// duration is how long it stays open: at most 24h (a window past
	// midnight runs into the next day).
	// +required
	Duration metav1.Duration `json:"duration"`
}

// AgentReview is how often the agent's owners must attest it.
type AgentReview struct {
	// everyDays is the most days that may pass between two attestations
	// (counted from the Agent's creation for the first).
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=366
	EveryDays int32 `json:"everyDays"`
}

// DecisionRecordRequirement says which tool calls must carry a decision record.
// +kubebuilder:validation:Enum=None;Irreversible;Write
type DecisionRecordRequirement string

const (
	// DecisionRecordNone: no call must carry one.
	DecisionRecordNone DecisionRecordRequirement = "None"
	// DecisionRecordIrreversible: calls of irreversible tools must.
	DecisionRecordIrreversible DecisionRecordRequirement = "Irreversible"
	// DecisionRecordWrite: calls of Write tools must, irreversible ones included.
	DecisionRecordWrite DecisionRecordRequirement = "Write"
)

// AgentOwner is the accountable owner of an agent.
type AgentOwner struct {
	// team is the owning team's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Team string `json:"team"`

	// contact is an e-mail address that reaches the owning team.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+\.[^@\s]+$`
	Contact string `json:"contact"`
}

// AgentRuntime shapes the agent's Deployment. Security context, service
// account and scheduling are Custos's, not the owner's.
type AgentRuntime struct {
	// replicas is the number of agent pods while the agent is Active.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=20
	Replicas *int32 `json:"replicas,omitempty"`

	// resources are the agent container's compute resources.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// env are plain environment variables. Secrets never travel here: they are
	// credentials, issued as leases.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Env []AgentEnvVar `json:"env,omitempty"`

	// args are the arguments passed to the agent's entrypoint.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=4096
	Args []string `json:"args,omitempty"`

	// imagePullSecrets name Secrets in the agent's namespace with the
	// registry credentials for spec.image: Custos reads the image's
	// signatures with them, and the agent's pods pull with them.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
}

// AgentEnvVar is one plain environment variable.
type AgentEnvVar struct {
	// name of the variable.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_]*$`
	Name string `json:"name"`

	// value of the variable.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Value string `json:"value,omitempty"`
}

// IdentityMode is how an agent reaches its bound cloud identities.
// +kubebuilder:validation:Enum=Leased;Ambient
type IdentityMode string

const (
	// IdentityModeLeased: the agent's ServiceAccount carries no cloud
	// workload-identity annotation and its pods no cloud-identity label, so
	// no platform webhook (EKS Pod Identity, Azure Workload Identity) or GKE
	// metadata server hands the pods an ambient cloud token. The bound roles
	// are reached only through awsSTS and azureToken leases, which Custos
	// caps, renews, revokes and records.
	IdentityModeLeased IdentityMode = "Leased"
	// IdentityModeAmbient: the ServiceAccount and pods carry the clouds'
	// workload-identity annotations and labels, for SDKs that need the
	// platform's own token injection. Those tokens are outside the lease
	// ledger: rotated by the kubelet, never capped or revoked by Custos.
	// Only where the agent's DataBoundary allows it
	// (spec.cloudRoles.ambientIdentity).
	IdentityModeAmbient IdentityMode = "Ambient"
)

// IdentityBindings binds the agent's ServiceAccount to cloud identities:
// at most one per cloud, and at least one.
// +kubebuilder:validation:XValidation:rule="has(self.aws) || has(self.azure) || has(self.gcp)",message="must bind at least one cloud identity (aws, azure or gcp): mode alone binds nothing; leave spec.identity out for an agent without one"
type IdentityBindings struct {
	// mode is how the agent reaches its cloud identities: Leased (the
	// default) only through awsSTS and azureToken leases; Ambient also
	// through the platforms' workload-identity token injection, where the
	// DataBoundary allows it.
	// +optional
	// +kubebuilder:default=Leased
	Mode IdentityMode `json:"mode,omitempty"`

	// aws binds an IAM role: awsSTS leases assume it; in Ambient mode
	// IRSA (the ServiceAccount's eks.amazonaws.com/role-arn) does too.
	// +optional
	AWS *AWSIdentity `json:"aws,omitempty"`

	// azure binds an Entra ID application: azureToken leases are issued
	// for it; in Ambient mode Azure Workload Identity injects its tokens too.
	// +optional
	Azure *AzureIdentity `json:"azure,omitempty"`

	// gcp binds a Google service account, through GKE Workload Identity
	// in Ambient mode only: no lease backend issues Google credentials yet.
	// +optional
	GCP *GCPIdentity `json:"gcp,omitempty"`
}

// AWSIdentity is an IAM role the agent assumes with its ServiceAccount token.
type AWSIdentity struct {
	// roleARN is the IAM role's ARN.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$`
	RoleARN string `json:"roleARN"`
}

// AzureIdentity is an Entra ID application the agent federates with.
type AzureIdentity struct {
	// clientID is the application's (client) ID.
	// +required
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	// +kubebuilder:validation:MaxLength=36
	ClientID string `json:"clientID"`

	// tenantID is the Entra ID tenant's ID.
	// +required
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	// +kubebuilder:validation:MaxLength=36
	TenantID string `json:"tenantID"`
}

// GCPIdentity is a Google service account the agent impersonates.
type GCPIdentity struct {
	// serviceAccount is the Google service account's e-mail.
	// +required
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9-]+\.iam\.gserviceaccount\.com$`
	ServiceAccount string `json:"serviceAccount"`
}

// CredentialSpec asks for one short-lived credential, issued as a lease from
// exactly one backend.
// +kubebuilder:validation:XValidation:rule="[has(self.kubernetesToken), has(self.awsSTS), has(self.azureToken)].filter(b, b).size() == 1",message="exactly one of kubernetesToken, awsSTS or azureToken must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.awsSTS) || duration(self.ttl) >= duration('15m')",message="awsSTS sessions last at least 15m (the STS minimum)",fieldPath=".ttl"
// +kubebuilder:validation:XValidation:rule="!has(self.gateway) || !has(self.awsSTS)",message="an awsSTS session is several values, not one header: a gateway credential is a kubernetesToken or an azureToken",fieldPath=".gateway"
type CredentialSpec struct {
	// name identifies the credential; its lease Secret is named after it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// kubernetesToken issues a bound ServiceAccount token for an audience.
	// +optional
	KubernetesToken *KubernetesTokenCredential `json:"kubernetesToken,omitempty"`

	// awsSTS assumes the agent's bound IAM role with its ServiceAccount token.
	// +optional
	AWSSTS *AWSSTSCredential `json:"awsSTS,omitempty"`

	// azureToken obtains an Entra ID access token for the agent's bound
	// application.
	// +optional
	AzureToken *AzureTokenCredential `json:"azureToken,omitempty"`

	// ttl is how long each lease lives; it is renewed before it expires.
	// Between 10m (the TokenRequest minimum) and 12h.
	// +optional
	// +kubebuilder:default="15m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10m') && duration(self) <= duration('12h')",message="must be between 10m and 12h"
	TTL metav1.Duration `json:"ttl,omitzero"`

	// gateway, set, makes the credential gateway-only: its lease is kept
	// where only Custos and custos-gateway read it (the manager's
	// --gateway-credentials-namespace), never in the agent's namespace nor
	// its pods, and custos-gateway sets it on the calls the agent makes
	// to one of its Toolsets, and to no other.
	// +optional
	Gateway *GatewayCredential `json:"gateway,omitempty"`
}

// GatewayCredential says where custos-gateway puts a gateway-only
// credential: in one header of the calls to one Toolset's tool server.
type GatewayCredential struct {
	// toolset is the name of the agent's Toolset (one of spec.toolsets)
	// whose tool server receives the credential.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Toolset string `json:"toolset"`

	// toolsetNamespace is the Toolset's namespace, as in its toolsetRefs
	// entry; the agent's own namespace when empty.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	ToolsetNamespace string `json:"toolsetNamespace,omitempty"`

	// header is the HTTP header custos-gateway sets to the lease's value
	// on the calls to the Toolset's tool server, such as X-Api-Key. Not
	// Authorization (custos-gateway's own token for the tool server) nor a
	// header MCP or tracing needs.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`
	// +kubebuilder:validation:XValidation:rule="!(self.lowerAscii() in ['authorization', 'mcp-session-id', 'mcp-protocol-version', 'content-type', 'content-length', 'accept', 'host', 'traceparent', 'tracestate', 'connection', 'transfer-encoding'])",messageExpression="self + ' is a header custos-gateway sets itself (its token, MCP, HTTP or tracing): name another, such as X-Api-Key'"
	Header string `json:"header"`
}

// KubernetesTokenCredential is a bound ServiceAccount token.
type KubernetesTokenCredential struct {
	// audience the token is issued for. Not a cloud's token-exchange
	// audience (AWS STS, Entra ID, Google STS): such a token buys cloud
	// credentials that outlive the lease; awsSTS and azureToken credentials
	// reach the same roles with leases Custos caps, renews and revokes.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="!(self.lowerAscii() in ['sts.amazonaws.com', 'sts.amazonaws.com.cn', 'sts.googleapis.com', 'https://sts.googleapis.com', 'https://sts.googleapis.com/']) && !self.lowerAscii().startsWith('api://azureadtokenexchange') && !self.lowerAscii().startsWith('//iam.googleapis.com/') && !self.lowerAscii().startsWith('https://iam.googleapis.com/')",messageExpression="self + ' is a cloud token-exchange audience: use an awsSTS or azureToken credential, which Custos caps, renews and revokes'"
	Audience string `json:"audience"`
}

// AWSSTSCredential is an STS session of the agent's bound role.
type AWSSTSCredential struct {
	// sessionName names the STS session; the agent's name when empty.
	// +optional
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9+=,.@_-]+$`
	SessionName string `json:"sessionName,omitempty"`
}

// AzureTokenCredential is an Entra ID access token of the agent's bound
// application.
type AzureTokenCredential struct {
	// scope the token is issued for, such as https://vault.azure.net/.default.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Scope string `json:"scope"`
}

// ToolsetReference names a Toolset the agent may use.
type ToolsetReference struct {
	// name of the Toolset.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// namespace of the Toolset; the agent's own namespace when empty. A
	// Toolset of another namespace must belong to the same tenant.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`

	// tools, in an Agent's toolsetRefs, are the tools of the Toolset the
	// agent may call; all it offers when empty. Naming fewer narrows the
	// agent at once (kubectl custos report proposes the tools it used);
	// naming more, or dropping the list, widens it, and a Write tool that
	// adds waits for approval where an ApprovalPolicy holds the agent's
	// changes, as a new Toolset's do. A name the Toolset does not offer
	// grants nothing (admission warns). custos-gateway serves only these
	// tools; a token custos-sts issues for the Toolset itself (an agent
	// calling it directly, not through the gateway) carries its read and
	// write scopes, the write scope only with a Write tool among these:
	// the tool server must tell the tools apart for itself.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=128
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	Tools []string `json:"tools,omitempty"`
}

// Allows says whether the reference lets the agent call tool: every tool
// when it names none.
func (r ToolsetReference) Allows(tool string) bool {
	return len(r.Tools) == 0 || slices.Contains(r.Tools, tool)
}

// AgentLifecycle is the state the owner asks for and the agent's expiry.
// +kubebuilder:validation:XValidation:rule="oldSelf.state != 'Decommissioned' || self.state == 'Decommissioned'",message="Decommissioned is final: a decommissioned agent cannot be brought back; create a new Agent",fieldPath=".state"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.expiresAt) || has(self.expiresAt)",message="expiresAt cannot be removed once set; move it instead",fieldPath=".expiresAt"
type AgentLifecycle struct {
	// state the owner asks for.
	// +optional
	// +kubebuilder:default=Active
	State LifecycleState `json:"state,omitempty"`

	// expiresAt is when the agent is suspended on its own. Agents should not
	// live forever: set it and move it when the agent is renewed.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
}

// AgentStatus is what Custos observed of an agent.
type AgentStatus struct {
	// observedGeneration is the generation last reconciled successfully; -1
	// until the first success.
	// +optional
	// +kubebuilder:default=-1
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Reconciling, Stalled and one per reconcile step.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// identity is the agent's identity in the cluster.
	// +optional
	Identity *IdentityStatus `json:"identity,omitempty"`

	// image is the verified image the agent runs.
	// +optional
	Image *ImageStatus `json:"image,omitempty"`

	// leases is the ledger of the agent's credential leases; it never holds
	// the material.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Leases []LeaseStatus `json:"leases,omitempty"`

	// outstandingLeases are leases Custos revoked (the agent suspended,
	// frozen or decommissioned, a credential removed) that their source
	// cannot revoke: AWS STS sessions and Entra tokens stay valid there
	// until they expire, though the Secret that held them is gone. Each is
	// listed until then.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	OutstandingLeases []OutstandingLease `json:"outstandingLeases,omitempty"`

	// lifecycle is the observed phase and its milestones.
	// +optional
	Lifecycle *LifecycleStatus `json:"lifecycle,omitempty"`

	// review is the owners' last attestation and when the next is due,
	// with spec.review.
	// +optional
	Review *ReviewStatus `json:"review,omitempty"`

	// granted is what of spec.toolsetRefs and spec.identity's cloud roles
	// is in force: the Toolsets custos-gateway and custos-sts serve and the
	// network reaches, the roles leases assume. It lags the spec while a
	// change waits for approval (condition ChangesApproved, an
	// ApprovalPolicy with agentChanges); nothing is in force without it.
	// +optional
	Granted *AgentGrant `json:"granted,omitempty"`
}

// AgentGrant is what of an Agent's Toolsets and cloud roles is in force.
type AgentGrant struct {
	// generation is the last generation whose Toolsets and cloud roles are
	// all in force. A later generation's removals are in force at once;
	// its additions that need approval wait.
	// +optional
	Generation int64 `json:"generation,omitempty"`

	// toolsetRefs are the Toolsets in force.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	ToolsetRefs []ToolsetReference `json:"toolsetRefs,omitempty"`

	// writeTools are the Write tools in force, by Toolset: a Toolset in
	// force that gains another is held again.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	WriteTools []WriteToolset `json:"writeTools,omitempty"`

	// identity holds the cloud roles in force.
	// +optional
	Identity *CloudRoles `json:"identity,omitempty"`

	// approvalRequest is the ApprovalRequest that approved the last change
	// that needed approval, when one did.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ApprovalRequest string `json:"approvalRequest,omitempty"`
}

// CloudRoles are an Agent's cloud roles, at most one per cloud.
type CloudRoles struct {
	// +optional
	AWS *AWSIdentity `json:"aws,omitempty"`
	// +optional
	Azure *AzureIdentity `json:"azure,omitempty"`
	// +optional
	GCP *GCPIdentity `json:"gcp,omitempty"`
}

// ReviewStatus is where the agent's owner review stands.
type ReviewStatus struct {
	// lastAttestedAt is when an owner last attested the agent, by whom
	// (as the API server authenticated them) and with which
	// AgentAttestation.
	// +optional
	LastAttestedAt *metav1.Time `json:"lastAttestedAt,omitempty"`
	// +optional
	AttestedBy string `json:"attestedBy,omitempty"`
	// +optional
	Attestation string `json:"attestation,omitempty"`
	// dueAt is when the next attestation is due; past it the agent is
	// Suspended (ReviewOverdue).
	// +optional
	DueAt *metav1.Time `json:"dueAt,omitempty"`
}

// IdentityStatus is the agent's identity.
type IdentityStatus struct {
	// serviceAccount is the name of the agent's own ServiceAccount.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServiceAccount string `json:"serviceAccount,omitempty"`

	// spiffeID is the agent's SPIFFE ID,
	// spiffe://<trust domain>/ns/<namespace>/sa/<service account>.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	SPIFFEID string `json:"spiffeID,omitempty"`

	// mode is the identity mode in force: Ambient only while spec.identity
	// asks for it and the agent's DataBoundary allows it; Leased otherwise.
	// +optional
	Mode IdentityMode `json:"mode,omitempty"`
}

// ImageStatus is the verified image: the one digest the agent's pods may run.
type ImageStatus struct {
	// reference is spec.image as it was when it was resolved to digest.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Reference string `json:"reference,omitempty"`

	// digest spec.image resolved to, such as sha256:….
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Digest string `json:"digest,omitempty"`

	// signer is the identity whose signature verified.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Signer string `json:"signer,omitempty"`

	// verifiedAt is when the signature last verified.
	// +optional
	VerifiedAt *metav1.Time `json:"verifiedAt,omitempty"`

	// policyHash is the DataBoundary image policy it verified against
	// (status.imagePolicyHash of the boundary).
	// +optional
	// +kubebuilder:validation:MaxLength=80
	PolicyHash string `json:"policyHash,omitempty"`
}

// OutstandingLease is a lease deleted from the cluster that stays valid at
// its source until it expires.
type OutstandingLease struct {
	// name of the credential in spec.credentials.
	// +kubebuilder:validation:MaxLength=40
	Name string `json:"name"`

	// backend that issued it.
	// +kubebuilder:validation:Enum=kubernetesToken;awsSTS;azureToken
	Backend string `json:"backend"`

	// revokedAt is when Custos deleted it.
	RevokedAt metav1.Time `json:"revokedAt"`

	// expiresAt is when it stops being valid at its source.
	ExpiresAt metav1.Time `json:"expiresAt"`
}

// LeaseStatus is one entry of the lease ledger.
type LeaseStatus struct {
	// name of the credential in spec.credentials.
	// +required
	// +kubebuilder:validation:MaxLength=40
	Name string `json:"name"`

	// backend that issued the lease.
	// +optional
	// +kubebuilder:validation:Enum=kubernetesToken;awsSTS;azureToken
	Backend string `json:"backend,omitempty"`

	// secretName is the Secret that holds the current material.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName,omitempty"`

	// issuedAt is when the current lease was issued.
	// +optional
	IssuedAt *metav1.Time `json:"issuedAt,omitempty"`

	// expiresAt is when the current lease expires.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// renewAt is when Custos renews the lease.
	// +optional
	RenewAt *metav1.Time `json:"renewAt,omitempty"`

	// lastError is the last issuance or renewal error, if any.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	LastError string `json:"lastError,omitempty"`
}

// LifecycleStatus is the observed phase and its milestones.
type LifecycleStatus struct {
	// phase is where the agent is in its life.
	// +optional
	Phase AgentPhase `json:"phase,omitempty"`

	// onboardedAt is when the agent was first observed Ready.
	// +optional
	OnboardedAt *metav1.Time `json:"onboardedAt,omitempty"`

	// suspendedAt is when the agent was last suspended, by its owner or on
	// expiry; cleared when it is Active again.
	// +optional
	SuspendedAt *metav1.Time `json:"suspendedAt,omitempty"`

	// expiresAt mirrors spec.lifecycle.expiresAt.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// decommissionedAt is when the decommission path completed.
	// +optional
	DecommissionedAt *metav1.Time `json:"decommissionedAt,omitempty"`

	// freeze is the AgentFreeze that holds the agent Frozen; empty when
	// none does.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Freeze string `json:"freeze,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ag;agt,categories=custos
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name: must be no more than 63 characters: it is the value of the custos.dev/agent label on everything the agent owns"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name: must be a DNS label (lower case letters, digits and '-', no '.'): the agent's lease Secrets are named agent-<agent>.<credential>, so a '.' in an agent's name would let two agents claim one Secret"
// +kubebuilder:printcolumn:name="Tenant",type=string,JSONPath=`.metadata.labels.custos\.dev/tenant`
// +kubebuilder:printcolumn:name="Owner",type=string,JSONPath=`.spec.owner.team`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.lifecycle.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Expires",type=date,JSONPath=`.spec.lifecycle.expiresAt`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Agent is one AI agent run as a governed non-human identity: its own
// ServiceAccount and cloud bindings, short-lived credentials, a verified
// image, network and data boundaries, and a lifecycle that ends in a
// complete decommission.
type Agent struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the agent's owner asks for.
	// +required
	Spec AgentSpec `json:"spec"`

	// status is what Custos observed.
	// +optional
	// +kubebuilder:default={}
	Status AgentStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// AgentList is a list of Agents.
type AgentList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Agent `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Agent{}, &AgentList{})
}

// Key is the namespace and name of the referenced Toolset, for an Agent in
// agentNamespace: a reference without a namespace is to the agent's own.
func (r ToolsetReference) Key(agentNamespace string) types.NamespacedName {
	if r.Namespace == "" {
		return types.NamespacedName{Namespace: agentNamespace, Name: r.Name}
	}
	return types.NamespacedName{Namespace: r.Namespace, Name: r.Name}
}
