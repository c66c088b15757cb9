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

// FreezeTrigger says what froze an agent.
// +kubebuilder:validation:Enum=Cap;Trend;Ratio;Manual
type FreezeTrigger string

const (
	// FreezeCap: a call would have crossed a cap (per call, minute or
	// day); custos-gateway withheld its response.
	FreezeCap FreezeTrigger = "Cap"
	// FreezeTrend: the breaker saw sustained evidence against the agent's
	// own seasonal baseline.
	FreezeTrend FreezeTrigger = "Trend"
	// FreezeRatio: records above a multiple of the agent's baseline for a
	// while.
	FreezeRatio FreezeTrigger = "Ratio"
	// FreezeManual: a person froze the agent (kubectl custos freeze).
	FreezeManual FreezeTrigger = "Manual"
)

// VerbTrip is the verb Custos's own components (the manager's breaker,
// custos-gateway's caps) hold on agents to freeze them with evidence;
// VerbFreeze the one people need to freeze one by hand, and VerbUnfreeze
// the one they need to lift a freeze. None is a real API verb: RBAC grants
// them and Custos's admission webhook asks for them.
const (
	VerbTrip     = "trip"
	VerbFreeze   = "freeze"
	VerbUnfreeze = "unfreeze"
)

// FreezeEvidence points at what a trip saw: the audit records and traces
// behind it, so the trail alone can say why.
type FreezeEvidence struct {
	// auditLogID is the audit trail (custos-gateway replica or manager)
	// whose records are cited.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	AuditLogID string `json:"auditLogID,omitempty"`

	// sequences are those records' sequence numbers in that trail.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Sequences []int64 `json:"sequences,omitempty"`

	// traceIDs are the W3C trace IDs of the calls cited.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=32
	TraceIDs []string `json:"traceIDs,omitempty"`
}

// AgentFreezeSpec says which Agent of the same namespace is frozen, by
// what and why.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="an AgentFreeze is immutable: lift it with an AgentUnfreeze"
type AgentFreezeSpec struct {
	// agent is the Agent's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Agent string `json:"agent"`

	// trigger is what froze it: Cap, Trend or Ratio (Custos's components
	// alone) or Manual (a person).
	// +required
	Trigger FreezeTrigger `json:"trigger"`

	// signal is what was measured: records, bytes or calls.
	// +optional
	// +kubebuilder:validation:Enum=records;bytes;calls
	Signal string `json:"signal,omitempty"`

	// reason says what happened, for people.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`

	// observed, baseline and limit are the signal's value that tripped,
	// the agent's own baseline for the same slot, and the cap or
	// threshold crossed.
	// +optional
	Observed *int64 `json:"observed,omitempty"`
	// +optional
	Baseline *int64 `json:"baseline,omitempty"`
	// +optional
	Limit *int64 `json:"limit,omitempty"`

	// evidence points at the audit records and traces behind a trip.
	// +optional
	Evidence *FreezeEvidence `json:"evidence,omitempty"`

	// agentUID and frozenBy are set by Custos's admission webhook: the
	// Agent's UID (a freeze does not carry over to a new Agent of the same
	// name) and who the API server authenticated.
	// +optional
	AgentUID string `json:"agentUID,omitempty"`
	// +optional
	FrozenBy Approver `json:"frozenBy,omitzero"`
}

// FreezePhase is Active until a person lifts the freeze.
// +kubebuilder:validation:Enum=Active;Lifted
type FreezePhase string

const (
	FreezeActive FreezePhase = "Active"
	FreezeLifted FreezePhase = "Lifted"
)

// FreezeVerdict is what the person lifting a freeze found it was.
// +kubebuilder:validation:Enum=FalsePositive;ConfirmedMisuse
type FreezeVerdict string

const (
	FalsePositive   FreezeVerdict = "FalsePositive"
	ConfirmedMisuse FreezeVerdict = "ConfirmedMisuse"
)

// AgentFreezeStatus says whether the freeze holds, and who lifted it.
type AgentFreezeStatus struct {
	// phase is Active (also while unset: a new freeze holds at once) or
	// Lifted.
	// +optional
	Phase FreezePhase `json:"phase,omitempty"`

	// liftedBy is the AgentUnfreeze that lifted it, with its author,
	// verdict and reason, as the manager counted it.
	// +optional
	Unfreeze string `json:"unfreeze,omitempty"`
	// +optional
	LiftedBy *Approver `json:"liftedBy,omitempty"`
	// +optional
	LiftedAt *metav1.Time `json:"liftedAt,omitempty"`
	// +optional
	Verdict FreezeVerdict `json:"verdict,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=afz,categories=custos
// +kubebuilder:printcolumn:name="Agent",type=string,JSONPath=`.spec.agent`
// +kubebuilder:printcolumn:name="Trigger",type=string,JSONPath=`.spec.trigger`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="By",type=string,JSONPath=`.spec.frozenBy.username`
// +kubebuilder:printcolumn:name="Verdict",type=string,JSONPath=`.status.verdict`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// AgentFreeze freezes an Agent: while it is not Lifted, custos-gateway
// refuses the agent's calls, custos-sts its exchanges, and the manager
// holds it Frozen through the suspend path (leases revoked, deny-all,
// scaled to zero). Custos's components make one when a cap or the breaker
// trips; a person may freeze an agent by hand. Only an AgentUnfreeze lifts
// it.
type AgentFreeze struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AgentFreezeSpec `json:"spec"`
	// +optional
	Status AgentFreezeStatus `json:"status,omitzero"`
}

// Holds says whether f freezes agent now: it names agent and is not
// lifted. It holds the name, not only the Agent it was made for (its
// spec.agentUID): an Agent deleted and made again under that name is
// frozen still, so deleting and re-applying an agent does not lift a
// freeze; only an AgentUnfreeze does.
func (f *AgentFreeze) Holds(agent *Agent) bool {
	return f.Namespace == agent.Namespace && f.Spec.Agent == agent.Name && f.Status.Phase != FreezeLifted
}

// +kubebuilder:object:root=true

// AgentFreezeList is a list of AgentFreezes.
type AgentFreezeList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AgentFreeze `json:"items"`
}

// AgentUnfreezeSpec is a person's decision to lift one AgentFreeze of the
// same namespace.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="an AgentUnfreeze is immutable: make a new one"
type AgentUnfreezeSpec struct {
	// freeze is the AgentFreeze's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Freeze string `json:"freeze"`

	// verdict is what the freeze was: FalsePositive or ConfirmedMisuse
	// (the breaker's precision is counted from these).
	// +required
	Verdict FreezeVerdict `json:"verdict"`

	// reason says why it may run again, for the record.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`

	// unfrozenBy is set by Custos's admission webhook from the API
	// server's authentication of the request; whatever a client writes is
	// replaced.
	// +optional
	UnfrozenBy Approver `json:"unfrozenBy,omitzero"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=aufz,categories=custos
// +kubebuilder:printcolumn:name="Freeze",type=string,JSONPath=`.spec.freeze`
// +kubebuilder:printcolumn:name="Verdict",type=string,JSONPath=`.spec.verdict`
// +kubebuilder:printcolumn:name="By",type=string,JSONPath=`.spec.unfrozenBy.username`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// AgentUnfreeze lifts an AgentFreeze: made through the API server by a
// person who holds verb unfreeze on the Agent and is not one of its owners
// (whoever may update it) nor a ServiceAccount.
type AgentUnfreeze struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AgentUnfreezeSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// AgentUnfreezeList is a list of AgentUnfreezes.
type AgentUnfreezeList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AgentUnfreeze `json:"items"`
}

func init() {
	SchemeBuilder.Register(&AgentFreeze{}, &AgentFreezeList{}, &AgentUnfreeze{}, &AgentUnfreezeList{})
}
