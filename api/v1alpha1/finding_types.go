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

// VerbReview is the verb a person needs on an Agent to review its
// Findings (a FindingReview): granted to the agent's owners and its
// approvers by the tenant roles. It is not a real API verb: RBAC grants
// it and Custos's admission webhook asks for it.
const VerbReview = "review"

// FindingSeverity is how bad a Finding's rubric judges what it saw.
// +kubebuilder:validation:Enum=High;Medium;Low
type FindingSeverity string

const (
	SeverityHigh   FindingSeverity = "High"
	SeverityMedium FindingSeverity = "Medium"
	SeverityLow    FindingSeverity = "Low"
)

// FindingPhase is where a Finding's review stands: Open until a person
// acknowledges it (Acknowledged, still open) or closes it (Confirmed,
// Dismissed).
// +kubebuilder:validation:Enum=Open;Acknowledged;Confirmed;Dismissed
type FindingPhase string

const (
	FindingOpen         FindingPhase = "Open"
	FindingAcknowledged FindingPhase = "Acknowledged"
	FindingConfirmed    FindingPhase = "Confirmed"
	FindingDismissed    FindingPhase = "Dismissed"
)

// Closed says whether p ends the review: Confirmed or Dismissed.
func (p FindingPhase) Closed() bool { return p == FindingConfirmed || p == FindingDismissed }

// FindingSpec says what a Finding is about: an Agent of the same
// namespace, the rubric that saw something, and the day it saw it in.
// Custos's evaluator makes it; what it found is in its status.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a Finding's agent, rubric and window are what it is: they cannot change"
type FindingSpec struct {
	// agent is the Agent's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Agent string `json:"agent"`

	// agentUID is the UID of the Agent the records named, when they did.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	AgentUID string `json:"agentUID,omitempty"`

	// rubric is the rule that saw it (internal/evaluate): low-confidence,
	// no-decision-record, intent-mismatch, probing, denied-approvals,
	// delegation-at-max-depth, off-schedule, volume or idle-slot.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Rubric string `json:"rubric"`

	// windowStart is the start of the UTC day whose hits of this rubric on
	// this agent the Finding gathers: repeats within it merge into one
	// Finding.
	// +required
	WindowStart metav1.Time `json:"windowStart"`
}

// FindingEvidence is the audit records behind a Finding in one trail.
type FindingEvidence struct {
	// auditLogID is the audit trail whose records are cited
	// (custos-gateway/<replica>, custos-sts/<replica>,
	// custos-manager/<replica>).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	AuditLogID string `json:"auditLogID"`

	// sequences are those records' sequence numbers in that trail, the
	// first 64 (recordCount says how many there were).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Sequences []int64 `json:"sequences,omitempty"`

	// traceIDs are the W3C trace IDs of the calls cited, the first 32.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=32
	TraceIDs []string `json:"traceIDs,omitempty"`
}

// FindingCount is how far a Finding has counted one trail.
type FindingCount struct {
	// trail is the trail and its chain (<log ID>@<chain>).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Trail string `json:"trail"`
	// seq is the last record counted.
	// +required
	// +kubebuilder:validation:Minimum=0
	Seq int64 `json:"seq"`
}

// JudgeVerdict is how bad a judge says a Finding looks.
// +kubebuilder:validation:Enum=Benign;Suspicious;Harmful
type JudgeVerdict string

const (
	JudgeBenign     JudgeVerdict = "Benign"
	JudgeSuspicious JudgeVerdict = "Suspicious"
	JudgeHarmful    JudgeVerdict = "Harmful"
)

// FindingJudgement is a judge's verdict on a Finding, kept with what
// made it.
type FindingJudgement struct {
	// +required
	Verdict JudgeVerdict `json:"verdict"`
	// confidencePercent is the judge's own, 0 to 100.
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	ConfidencePercent int32 `json:"confidencePercent"`
	// rationale is the judge's words, printable characters only, cut to
	// 512: text for people, never an instruction to Custos.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Rationale string `json:"rationale,omitempty"`
	// model is the model that answered, as the endpoint named it;
	// modelAsked the one asked for (the DataBoundary's).
	// +required
	// +kubebuilder:validation:MaxLength=253
	Model string `json:"model"`
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ModelAsked string `json:"modelAsked,omitempty"`
	// promptDigest is the SHA-256 of the prompt, the model asked for and
	// the input the judge was given (sha256:<hex>; the input is on the
	// finding.judged record): the same input gives the same digest.
	// +required
	// +kubebuilder:validation:MaxLength=71
	PromptDigest string `json:"promptDigest"`
	// recordCount is the Finding's record count when it was judged: more
	// records are judged again.
	// +required
	RecordCount int32 `json:"recordCount"`
	// +required
	At metav1.Time `json:"at"`
}

// FindingReviewRecord is one review the manager counted.
type FindingReviewRecord struct {
	// review is the FindingReview's name.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Review string `json:"review"`
	// +required
	Verdict FindingPhase `json:"verdict"`
	// +required
	Reviewer Approver `json:"reviewer"`
	// +required
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`
	// +required
	At metav1.Time `json:"at"`
}

// FindingStatus is what the evaluator found and where its review stands.
type FindingStatus struct {
	// phase is Open, Acknowledged, Confirmed or Dismissed.
	// +optional
	Phase FindingPhase `json:"phase,omitempty"`

	// severity is the highest of its hits'.
	// +optional
	Severity FindingSeverity `json:"severity,omitempty"`

	// score, from 0 to 100, is the highest of its hits': how far past the
	// rubric's line.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Score int32 `json:"score,omitempty"`

	// summary says in a sentence what the latest hit saw.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Summary string `json:"summary,omitempty"`

	// hits is how many times the rubric fired within the window, and
	// recordCount how many audit records those hits cite.
	// +optional
	Hits int32 `json:"hits,omitempty"`
	// +optional
	RecordCount int32 `json:"recordCount,omitempty"`

	// firstSeen and lastSeen are the times of the first and last record
	// cited.
	// +optional
	FirstSeen *metav1.Time `json:"firstSeen,omitempty"`
	// +optional
	LastSeen *metav1.Time `json:"lastSeen,omitempty"`

	// evidence is the records cited, by trail.
	// +optional
	// +listType=map
	// +listMapKey=auditLogID
	// +kubebuilder:validation:MaxItems=16
	Evidence []FindingEvidence `json:"evidence,omitempty"`

	// counted is, per trail, the last record counted into the Finding:
	// the evaluator adds only later ones, so that a record read twice (a
	// manager stopped before it wrote how far it had read) counts once.
	// +optional
	// +listType=map
	// +listMapKey=trail
	// +kubebuilder:validation:MaxItems=256
	Counted []FindingCount `json:"counted,omitempty"`

	// openedAt is when it was opened, or opened again: new evidence of a
	// closed Finding's window opens it again, its reviews kept.
	// +optional
	OpenedAt *metav1.Time `json:"openedAt,omitempty"`

	// reviews are the reviews counted, oldest first, the last 16.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Reviews []FindingReviewRecord `json:"reviews,omitempty"`

	// judgement is the judge's reading of it (DataBoundary spec.judge),
	// for people: it orders the review queue and decides nothing.
	// +optional
	Judgement *FindingJudgement `json:"judgement,omitempty"`

	// closedAt is when a review closed it; a closed Finding is deleted
	// after the manager's --finding-retention (its records stay on the
	// audit trail).
	// +optional
	ClosedAt *metav1.Time `json:"closedAt,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=fnd,categories=custos
// +kubebuilder:printcolumn:name="Agent",type=string,JSONPath=`.spec.agent`
// +kubebuilder:printcolumn:name="Rubric",type=string,JSONPath=`.spec.rubric`
// +kubebuilder:printcolumn:name="Severity",type=string,JSONPath=`.status.severity`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Hits",type=integer,JSONPath=`.status.hits`
// +kubebuilder:printcolumn:name="Judged",type=string,JSONPath=`.status.judgement.verdict`
// +kubebuilder:printcolumn:name="Summary",type=string,JSONPath=`.status.summary`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Finding is something Custos's evaluator saw on the audit trail that a
// person must decide about: a rubric's hits on one Agent within one day,
// with the records that show them. Custos makes and updates it; people
// review it with a FindingReview.
type Finding struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec FindingSpec `json:"spec"`
	// +optional
	Status FindingStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// FindingList is a list of Findings.
type FindingList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Finding `json:"items"`
}

// FindingReviewSpec is a person's decision on one Finding of the same
// namespace.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a FindingReview is immutable: make a new one"
type FindingReviewSpec struct {
	// finding is the Finding's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Finding string `json:"finding"`

	// verdict is Acknowledged (looked at, still open), Confirmed (it was
	// wrong, closed) or Dismissed (it was not, closed; not by the agent's
	// owners).
	// +required
	// +kubebuilder:validation:Enum=Acknowledged;Confirmed;Dismissed
	Verdict FindingPhase `json:"verdict"`

	// reason says why, for the record.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`

	// reviewer is set by Custos's admission webhook from the API server's
	// authentication of the request; whatever a client writes is
	// replaced.
	// +optional
	Reviewer Approver `json:"reviewer,omitzero"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=fndr,categories=custos
// +kubebuilder:printcolumn:name="Finding",type=string,JSONPath=`.spec.finding`
// +kubebuilder:printcolumn:name="Verdict",type=string,JSONPath=`.spec.verdict`
// +kubebuilder:printcolumn:name="By",type=string,JSONPath=`.spec.reviewer.username`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// FindingReview is a person's review of a Finding: made through the API
// server by a person who holds the verb review on the Finding's Agent;
// Dismissed only by one who does not own it (may not update it).
type FindingReview struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec FindingReviewSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// FindingReviewList is a list of FindingReviews.
type FindingReviewList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FindingReview `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Finding{}, &FindingList{}, &FindingReview{}, &FindingReviewList{})
}
