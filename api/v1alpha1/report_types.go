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

// Recommendation is what an AgentReport proposes to do with its agent.
// +kubebuilder:validation:Enum=Keep;Narrow;Decommission
type Recommendation string

const (
	// RecommendKeep: the agent used what it holds.
	RecommendKeep Recommendation = "Keep"
	// RecommendNarrow: it holds tools it did not call in the period; the
	// report's patch narrows its toolsetRefs to those it called.
	RecommendNarrow Recommendation = "Narrow"
	// RecommendDecommission: it called no tool in a month that is over, or
	// a freeze of it was confirmed as misuse.
	RecommendDecommission Recommendation = "Decommission"
)

// AgentReportSpec names the agent and the month a report is of. Custos
// makes it, named <agent>-<yyyymm>-<digest of the Agent's UID>: a new
// Agent of the same name has reports of its own. A report outlives its
// Agent (it is a record) until it is 13 months old.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a report's agent and period are what it is: they cannot change"
type AgentReportSpec struct {
	// agent is the Agent's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Agent string `json:"agent"`

	// agentUID is the Agent's UID: a new Agent of the same name has
	// reports of its own.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	AgentUID string `json:"agentUID"`

	// period is the UTC calendar month the report counts: 2026-12.
	// +required
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-(0[1-9]|1[0-2])$`
	Period string `json:"period"`
}

// ReportCount is how many of one kind.
type ReportCount struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`
	// +required
	// +kubebuilder:validation:Minimum=0
	Count int64 `json:"count"`
}

// ReportDay is one UTC day of an agent's month.
type ReportDay struct {
	// day of the month, 1 to 31.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=31
	Day int32 `json:"day"`
	// +required
	// +kubebuilder:validation:Minimum=0
	Calls int64 `json:"calls"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	Records int64 `json:"records,omitempty"`
}

// ToolUse is how often the agent called one tool.
type ToolUse struct {
	// toolset is the Toolset, namespace/name.
	// +required
	// +kubebuilder:validation:MaxLength=317
	Toolset string `json:"toolset"`
	// +required
	// +kubebuilder:validation:MaxLength=128
	Tool string `json:"tool"`
	// calls custos-gateway passed to the tool server.
	// +required
	// +kubebuilder:validation:Minimum=0
	Calls int64 `json:"calls"`
	// errors are those of them the tool answered with an error.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Errors int64 `json:"errors,omitempty"`
}

// ReportSnapshot is a report as it stood: when an owner signed it off,
// as Custos's admission webhook read it.
type ReportSnapshot struct {
	// asOf is the time of the newest record counted then.
	// +optional
	AsOf *metav1.Time `json:"asOf,omitempty"`
	// +optional
	Calls int64 `json:"calls,omitempty"`
	// +optional
	Score *int32 `json:"score,omitempty"`
	// +optional
	Recommendation Recommendation `json:"recommendation,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Reason string `json:"reason,omitempty"`
}

// ReportSignOff is an owner's sign-off of a report: an AgentAttestation
// naming it (spec.report), by a person who may update the Agent and holds
// the verb review on it.
type ReportSignOff struct {
	// attestation is the AgentAttestation's name, attestationUID its UID.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Attestation string `json:"attestation"`
	// +required
	// +kubebuilder:validation:MaxLength=64
	AttestationUID string `json:"attestationUID"`
	// by is who the API server authenticated.
	// +required
	By Approver `json:"by"`
	// at is when the attestation was made.
	// +required
	At metav1.Time `json:"at"`
	// comment is the attestation's.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Comment string `json:"comment,omitempty"`
	// signed is the report as it stood when it was signed off.
	// +optional
	Signed ReportSnapshot `json:"signed,omitzero"`
}

// AgentReportStatus is what the agent did in the period, as the audit
// trail says, and what Custos proposes.
type AgentReportStatus struct {
	// from and to bound the period.
	// +optional
	From *metav1.Time `json:"from,omitempty"`
	// +optional
	To *metav1.Time `json:"to,omitempty"`
	// asOf is the time of the newest record counted.
	// +optional
	AsOf *metav1.Time `json:"asOf,omitempty"`

	// calls are the agent's tool calls: those custos-gateway passed to
	// the tool server and those it refused.
	// +optional
	Calls int64 `json:"calls,omitempty"`
	// succeeded are the calls passed and answered without a tool error.
	// +optional
	Succeeded int64 `json:"succeeded,omitempty"`
	// successPercent is succeeded of calls, rounded down.
	// +optional
	SuccessPercent *int32 `json:"successPercent,omitempty"`

	// refusals are the calls refused, by the gateway's reason.
	// +optional
	// +listType=map
	// +listMapKey=kind
	// +kubebuilder:validation:MaxItems=32
	Refusals []ReportCount `json:"refusals,omitempty"`
	// tools are the tools called, by Toolset.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Tools []ToolUse `json:"tools,omitempty"`
	// approvals: Requested, and Approved, Denied or Expired as decided.
	// +optional
	// +listType=map
	// +listMapKey=kind
	// +kubebuilder:validation:MaxItems=8
	Approvals []ReportCount `json:"approvals,omitempty"`
	// freezes: Frozen, and lifted by verdict (FalsePositive,
	// ConfirmedMisuse).
	// +optional
	// +listType=map
	// +listMapKey=kind
	// +kubebuilder:validation:MaxItems=8
	Freezes []ReportCount `json:"freezes,omitempty"`
	// findings: Opened, and reviewed by verdict (Acknowledged, Confirmed,
	// Dismissed).
	// +optional
	// +listType=map
	// +listMapKey=kind
	// +kubebuilder:validation:MaxItems=8
	Findings []ReportCount `json:"findings,omitempty"`
	// days are the calls and the records (the data records its tools
	// returned) of each UTC day of the month it called on: its history
	// for the volume rubric.
	// +optional
	// +listType=map
	// +listMapKey=day
	// +kubebuilder:validation:MaxItems=31
	Days []ReportDay `json:"days,omitempty"`
	// callsBySlot are its calls in each hour of the day, UTC, on weekdays
	// (0 to 23) and at weekends (24 to 47): the slots it is normally idle
	// in have none (rubric idle-slot).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=48
	CallsBySlot []int64 `json:"callsBySlot,omitempty"`

	// notCounted says what the counts leave out, when they do: the
	// manager's own decisions (freezes, approvals decided, findings) are
	// counted only when the evaluator follows the manager's trail.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	NotCounted string `json:"notCounted,omitempty"`

	// counted is, per trail, the last record counted: a record read twice
	// counts once.
	// +optional
	// +listType=map
	// +listMapKey=trail
	// +kubebuilder:validation:MaxItems=256
	Counted []FindingCount `json:"counted,omitempty"`

	// score is from 0 to 100, by formula (none without calls).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Score *int32 `json:"score,omitempty"`
	// formula is the score's, with this period's numbers.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Formula string `json:"formula,omitempty"`
	// recommendation is Keep, Narrow or Decommission; reason says why.
	// A running month with no tool called yet has none.
	// +optional
	Recommendation Recommendation `json:"recommendation,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Reason string `json:"reason,omitempty"`
	// patch is a JSON merge patch of the Agent that does what is
	// recommended (kubectl patch agent <agent> --type merge -p '<patch>'),
	// against its spec now: for Narrow, its toolsetRefs cut to the tools
	// it called.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	Patch string `json:"patch,omitempty"`

	// signOffs are the owners' sign-offs, oldest first, the last 16.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	SignOffs []ReportSignOff `json:"signOffs,omitempty"`
	// signingOff is the UID of the attestation whose sign-off the manager
	// is recording (on the audit trail, then here): one found here after
	// a restart is recorded again rather than never.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	SigningOff string `json:"signingOff,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=arpt,categories=custos
// +kubebuilder:printcolumn:name="Agent",type=string,JSONPath=`.spec.agent`
// +kubebuilder:printcolumn:name="Period",type=string,JSONPath=`.spec.period`
// +kubebuilder:printcolumn:name="Calls",type=integer,JSONPath=`.status.calls`
// +kubebuilder:printcolumn:name="Success%",type=integer,JSONPath=`.status.successPercent`
// +kubebuilder:printcolumn:name="Score",type=integer,JSONPath=`.status.score`
// +kubebuilder:printcolumn:name="Recommendation",type=string,JSONPath=`.status.recommendation`
// +kubebuilder:printcolumn:name="Signed-off-by",type=string,JSONPath=`.status.signOffs[*].by.username`

// AgentReport is an agent's review for one month, as people review an
// employee: its calls and their success, refusals, approvals, freezes and
// findings from the audit trail, a score with its formula, and whether to
// keep it, narrow it to the tools it used (a proposed patch) or
// decommission it. Custos makes and updates it; an owner signs it off
// with an AgentAttestation naming it (kubectl custos attest --report).
type AgentReport struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AgentReportSpec `json:"spec"`
	// +optional
	Status AgentReportStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// AgentReportList is a list of AgentReports.
type AgentReportList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AgentReport `json:"items"`
}

func init() {
	SchemeBuilder.Register(&AgentReport{}, &AgentReportList{})
}
