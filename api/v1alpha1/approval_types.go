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
)

// ApprovalPolicySpec says which tool calls of the namespace's agents wait
// for people to approve them, who may, how many must, and for how long.
// Several policies may match one call: the call then needs the largest
// quorum, the shortest timeout and every separation of duties any of them
// asks for.
type ApprovalPolicySpec struct {
	// agentSelector picks the Agents of this namespace whose calls the
	// policy governs; every Agent of the namespace when empty.
	// +optional
	AgentSelector *metav1.LabelSelector `json:"agentSelector,omitempty"`

	// match says which calls need approval: every call of an irreversible
	// tool by default.
	// +optional
	// +kubebuilder:default={}
	Match ApprovalMatch `json:"match,omitzero"`

	// quorum is how many distinct people must approve a call.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	Quorum int32 `json:"quorum,omitempty"`

	// separationOfDuties says who may not approve a call, whatever their
	// RBAC says. Everything is excluded by default.
	// +optional
	// +kubebuilder:default={}
	SeparationOfDuties SeparationOfDuties `json:"separationOfDuties,omitzero"`

	// timeout is how long a request waits for its quorum (at most 24h).
	// +optional
	// +kubebuilder:default="15m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('24h')",message="timeout must be between 10s and 24h"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// onTimeout is what a request that timed out means: Deny (the only
	// choice: silence never approves).
	// +optional
	// +kubebuilder:default=Deny
	// +kubebuilder:validation:Enum=Deny
	OnTimeout string `json:"onTimeout,omitempty"`

	// agentChanges, true, also holds changes to the Agents the policy
	// selects: a generation that adds a Toolset with Write tools or a
	// cloud role (spec.identity) runs with the Toolsets and roles of the
	// generation in force until people approve it (an ApprovalRequest with
	// spec.change, decided by whoever may approve agents). Off by default.
	// To hold Agent changes only, set match.irreversible to false too.
	// +optional
	AgentChanges bool `json:"agentChanges,omitempty"`
}

// ApprovalMatch selects calls. A call matches when any of its clauses
// does.
type ApprovalMatch struct {
	// irreversible matches every call of a tool marked irreversible.
	// +optional
	// +kubebuilder:default=true
	Irreversible *bool `json:"irreversible,omitempty"`

	// write matches every call of a tool whose access is Write.
	// +optional
	Write bool `json:"write,omitempty"`

	// expression is a CEL expression returning a bool over the call:
	// tool (name, access, irreversible), toolset (name, namespace),
	// arguments (as checked, bound ones included), person (subject,
	// groups) and agent (name, namespace, labels). For example
	// `tool.name == 'pay' && arguments.amount > 1000`.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Expression string `json:"expression,omitempty"`
}

// MatchesIrreversible is spec.match.irreversible, true when unset.
func (m ApprovalMatch) MatchesIrreversible() bool { return m.Irreversible == nil || *m.Irreversible }

// SeparationOfDuties excludes approvers whatever their RBAC says.
type SeparationOfDuties struct {
	// excludePerson refuses the person the agent acts for.
	// +optional
	// +kubebuilder:default=true
	ExcludePerson *bool `json:"excludePerson,omitempty"`

	// excludeOwners refuses the agent's owners: whoever may update the
	// Agent (a SubjectAccessReview for update on it).
	// +optional
	// +kubebuilder:default=true
	ExcludeOwners *bool `json:"excludeOwners,omitempty"`

	// excludeServiceAccounts refuses every ServiceAccount: approvals are
	// people's.
	// +optional
	// +kubebuilder:default=true
	ExcludeServiceAccounts *bool `json:"excludeServiceAccounts,omitempty"`
}

func orTrue(b *bool) bool { return b == nil || *b }

// Person is spec.excludePerson, true when unset.
func (s SeparationOfDuties) Person() bool { return orTrue(s.ExcludePerson) }

// Owners is spec.excludeOwners, true when unset.
func (s SeparationOfDuties) Owners() bool { return orTrue(s.ExcludeOwners) }

// ServiceAccounts is spec.excludeServiceAccounts, true when unset.
func (s SeparationOfDuties) ServiceAccounts() bool { return orTrue(s.ExcludeServiceAccounts) }

// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=ap,categories=custos
// +kubebuilder:printcolumn:name="Quorum",type=integer,JSONPath=`.spec.quorum`
// +kubebuilder:printcolumn:name="Timeout",type=string,JSONPath=`.spec.timeout`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// ApprovalPolicy, written by risk owners, makes the tool calls it matches
// wait at custos-gateway until people approve them (ApprovalDecisions).
type ApprovalPolicy struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the risk owner declares.
	// +required
	Spec ApprovalPolicySpec `json:"spec"`
}

// +kubebuilder:object:root=true

// ApprovalPolicyList is a list of ApprovalPolicies.
type ApprovalPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ApprovalPolicy `json:"items"`
}

// ApprovalPhase is where an ApprovalRequest stands.
// +kubebuilder:validation:Enum=Pending;Approved;Denied;Expired;Consumed
type ApprovalPhase string

const (
	// ApprovalPending: waiting for its quorum.
	ApprovalPending ApprovalPhase = "Pending"
	// ApprovalApproved: the quorum approved; the call runs at its next try.
	ApprovalApproved ApprovalPhase = "Approved"
	// ApprovalDenied: someone allowed to decide denied it (a veto).
	ApprovalDenied ApprovalPhase = "Denied"
	// ApprovalExpired: the timeout passed first; it means deny.
	ApprovalExpired ApprovalPhase = "Expired"
	// ApprovalConsumed: the approved call ran, once.
	ApprovalConsumed ApprovalPhase = "Consumed"
)

// Terminal says whether nothing can change the phase any more.
func (p ApprovalPhase) Terminal() bool {
	return p == ApprovalDenied || p == ApprovalExpired || p == ApprovalConsumed
}

// ApprovalRequestSpec is exactly one call, as custos-gateway held it, or
// exactly one Agent change, as Custos held it. It cannot change once
// created.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="an ApprovalRequest is immutable: it is bound to one call"
// +kubebuilder:validation:XValidation:rule="has(self.change) != has(self.tool)",message="an ApprovalRequest holds one tool call (tool, toolset, person) or one Agent change (change), not both"
type ApprovalRequestSpec struct {
	// agent is the Agent that made the call.
	// +required
	Agent ApprovalAgent `json:"agent"`

	// toolset holds the tool; who may approve is asked of it (verb
	// approve on toolsets). Empty for an Agent change.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.tools)",message="a request's toolset names no tools: spec.tool is the tool called"
	Toolset ToolsetReference `json:"toolset,omitzero"`

	// tool is the tool called. Empty for an Agent change.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Tool string `json:"tool,omitempty"`

	// change is the Agent change held, when the request is for one rather
	// than for a tool call; who may approve is asked of the Agent (verb
	// approve on agents).
	// +optional
	Change *AgentChange `json:"change,omitempty"`

	// access and irreversible are the tool's, as declared when called.
	// +optional
	Access ToolAccess `json:"access,omitempty"`
	// +optional
	Irreversible bool `json:"irreversible,omitempty"`

	// callDigest binds the request to this call: sha256 over the agent's
	// UID, the Toolset and tool, the canonical arguments, the person and
	// their session. Only a call with the same digest can use it. For an
	// Agent change, sha256 over the agent's UID, the generation and what
	// it adds.
	// +required
	// +kubebuilder:validation:Pattern=`^sha256:[0-9a-f]{64}$`
	CallDigest string `json:"callDigest"`

	// argumentsDigest is the sha256 of the canonical arguments.
	// +optional
	ArgumentsDigest string `json:"argumentsDigest,omitempty"`

	// arguments are the call's arguments as canonical JSON, with secrets
	// redacted (and cut at 4 KiB): what the approver decides on.
	// +optional
	// +kubebuilder:validation:MaxLength=4200
	Arguments string `json:"arguments,omitempty"`

	// person is the subject the agent acts for, session their session,
	// and chain the actors from the person to this agent. Empty for an
	// Agent change.
	// +optional
	Person string `json:"person,omitempty"`
	// +optional
	Session string `json:"session,omitempty"`
	// +optional
	Chain string `json:"chain,omitempty"`

	// decisionRecord is the agent's decision record for the call (its
	// _meta custos.dev/decision), when it gave one, as canonical JSON.
	// +optional
	// +kubebuilder:validation:MaxLength=8192
	DecisionRecord string `json:"decisionRecord,omitempty"`

	// policies are the ApprovalPolicies that matched.
	// +required
	// +kubebuilder:validation:MinItems=1
	Policies []string `json:"policies"`

	// quorum, separationOfDuties and expiresAt are the matched policies'
	// strictest, fixed when the request was made.
	// +required
	// +kubebuilder:validation:Minimum=1
	Quorum int32 `json:"quorum"`
	// +required
	SeparationOfDuties SeparationOfDuties `json:"separationOfDuties"`
	// +required
	ExpiresAt metav1.Time `json:"expiresAt"`

	// traceID is the trace of the call that asked first.
	// +optional
	TraceID string `json:"traceID,omitempty"`
}

// AgentChange is what one generation of an Agent adds to the Toolsets
// and cloud roles in force.
type AgentChange struct {
	// generation is the Agent generation the request approves; an
	// approval counts for it alone.
	// +required
	// +kubebuilder:validation:Minimum=1
	Generation int64 `json:"generation"`

	// inForce is the generation whose Toolsets and roles run meanwhile
	// (0 when none ran yet).
	// +optional
	InForce int64 `json:"inForce,omitempty"`

	// toolsets are the Toolsets added that have Write tools, with those
	// tools, and the Toolsets in force that gained Write tools since (with
	// the new ones; held out of force until approved).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Toolsets []WriteToolset `json:"toolsets,omitempty"`

	// identity holds the cloud roles added or replaced, one per cloud.
	// +optional
	Identity *CloudRoles `json:"identity,omitempty"`
}

// WriteToolset is a Toolset's Write tools: those an Agent change adds, or
// those in force.
type WriteToolset struct {
	// +required
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// +required
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// writeTools are its Write tools; irreversibleTools those of them
	// marked irreversible.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=128
	WriteTools []string `json:"writeTools,omitempty"`
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=128
	IrreversibleTools []string `json:"irreversibleTools,omitempty"`
}

// ApprovalAgent names the Agent that made a call, by name and UID (a new
// Agent of the same name cannot use another's approvals).
type ApprovalAgent struct {
	// +required
	Name string `json:"name"`
	// +required
	UID string `json:"uid"`
}

// ApprovalRequestStatus is the request's phase and the decisions counted.
type ApprovalRequestStatus struct {
	// phase is Pending, Approved, Denied, Expired or Consumed.
	// +optional
	Phase ApprovalPhase `json:"phase,omitempty"`

	// decisions are every ApprovalDecision made on the request, counted
	// or not (and why not), kept even if the object is deleted.
	// +optional
	// +listType=atomic
	Decisions []ApprovalVote `json:"decisions,omitempty"`

	// approvals is how many distinct eligible people approved.
	// +optional
	Approvals int32 `json:"approvals,omitempty"`

	// decidedAt is when the phase left Pending.
	// +optional
	DecidedAt *metav1.Time `json:"decidedAt,omitempty"`

	// consumedAt is when custos-gateway ran the approved call, and
	// consumedTraceID that call's trace.
	// +optional
	ConsumedAt *metav1.Time `json:"consumedAt,omitempty"`
	// +optional
	ConsumedTraceID string `json:"consumedTraceID,omitempty"`

	// conditions: Ready (True once decided: Approved, Denied, Expired or
	// Consumed; False while Pending).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ApprovalVote is one decision as the request counted it.
type ApprovalVote struct {
	// name of the ApprovalDecision.
	Name string `json:"name"`
	// approver as the API server authenticated them.
	Approver Approver `json:"approver"`
	// decision is Approve or Deny.
	Decision ApprovalVerdict `json:"decision"`
	// counted says whether it counts; reason says why not.
	Counted bool `json:"counted"`
	// +optional
	Reason string `json:"reason,omitempty"`
	// decidedAt is the decision's creation time.
	DecidedAt metav1.Time `json:"decidedAt"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=areq,categories=custos
// +kubebuilder:printcolumn:name="Agent",type=string,JSONPath=`.spec.agent.name`
// +kubebuilder:printcolumn:name="Tool",type=string,JSONPath=`.spec.tool`
// +kubebuilder:printcolumn:name="Change",type=integer,JSONPath=`.spec.change.generation`,priority=1
// +kubebuilder:printcolumn:name="Person",type=string,JSONPath=`.spec.person`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Approvals",type=integer,JSONPath=`.status.approvals`
// +kubebuilder:printcolumn:name="Quorum",type=integer,JSONPath=`.spec.quorum`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.spec.expiresAt`

// ApprovalRequest is one tool call held by custos-gateway, or one Agent
// change held by Custos, until people approve it. The gateway (or
// Custos) creates it; people decide with ApprovalDecisions; the gateway
// (or Custos) consumes an approved one exactly once.
type ApprovalRequest struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ApprovalRequestSpec `json:"spec"`

	// +optional
	// +kubebuilder:default={}
	Status ApprovalRequestStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// ApprovalRequestList is a list of ApprovalRequests.
type ApprovalRequestList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ApprovalRequest `json:"items"`
}

// ApprovalVerdict is a person's decision.
// +kubebuilder:validation:Enum=Approve;Deny
type ApprovalVerdict string

const (
	Approve ApprovalVerdict = "Approve"
	Deny    ApprovalVerdict = "Deny"
)

// Approver is who made a decision, as the API server authenticated them:
// stamped by Custos's admission webhook from the request, never taken
// from the client.
type Approver struct {
	// +optional
	Username string `json:"username,omitempty"`
	// +optional
	UID string `json:"uid,omitempty"`
	// +optional
	// +listType=atomic
	Groups []string `json:"groups,omitempty"`
}

// ApprovalDecisionSpec is one person's decision on one ApprovalRequest of
// the same namespace.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="an ApprovalDecision is immutable: make a new one"
type ApprovalDecisionSpec struct {
	// request is the ApprovalRequest's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Request string `json:"request"`

	// decision is Approve or Deny; one Deny is a veto.
	// +required
	Decision ApprovalVerdict `json:"decision"`

	// comment says why, for the record.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Comment string `json:"comment,omitempty"`

	// approver is set by Custos's admission webhook from the API server's
	// authentication of the request; whatever a client writes is replaced.
	// +optional
	Approver Approver `json:"approver,omitzero"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=adec,categories=custos
// +kubebuilder:printcolumn:name="Request",type=string,JSONPath=`.spec.request`
// +kubebuilder:printcolumn:name="Decision",type=string,JSONPath=`.spec.decision`
// +kubebuilder:printcolumn:name="Approver",type=string,JSONPath=`.spec.approver.username`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// ApprovalDecision is a person's approval or denial of an
// ApprovalRequest, made through the API server: who made it is what the
// API server authenticated, and it cannot be changed.
type ApprovalDecision struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ApprovalDecisionSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// ApprovalDecisionList is a list of ApprovalDecisions.
type ApprovalDecisionList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ApprovalDecision `json:"items"`
}

// AgentAttestationSpec is an owner's attestation of one Agent of the same
// namespace.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="an AgentAttestation is immutable: make a new one"
type AgentAttestationSpec struct {
	// agent is the Agent's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Agent string `json:"agent"`

	// comment says what was reviewed, for the record.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Comment string `json:"comment,omitempty"`

	// report is the AgentReport of the agent this attestation signs off
	// (kubectl custos attest --report): it needs the verb review on the
	// Agent as well, and the report's status records the sign-off.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Report string `json:"report,omitempty"`

	// reportSeen is set by Custos's admission webhook with spec.report:
	// the report as it stood when it was signed off.
	// +optional
	ReportSeen *ReportSnapshot `json:"reportSeen,omitempty"`

	// agentUID and attester are set by Custos's admission webhook: the
	// Agent's UID (an attestation does not carry over to a new Agent of the
	// same name) and who the API server authenticated.
	// +optional
	AgentUID string `json:"agentUID,omitempty"`
	// +optional
	Attester Approver `json:"attester,omitzero"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=attest,categories=custos
// +kubebuilder:printcolumn:name="Agent",type=string,JSONPath=`.spec.agent`
// +kubebuilder:printcolumn:name="Attester",type=string,JSONPath=`.spec.attester.username`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// AgentAttestation is an owner's review of an agent (spec.review): who
// attested is what the API server authenticated, and only who may change
// the Agent may.
type AgentAttestation struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AgentAttestationSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// AgentAttestationList is a list of AgentAttestations.
type AgentAttestationList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AgentAttestation `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ApprovalPolicy{}, &ApprovalPolicyList{}, &ApprovalRequest{}, &ApprovalRequestList{},
		&ApprovalDecision{}, &ApprovalDecisionList{}, &AgentAttestation{}, &AgentAttestationList{})
}
