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

// DataBoundarySpec is a tenant's boundary: the namespaces it covers, where
// its agents may run and reach, which cloud identities and images they may
// use.
type DataBoundarySpec struct {
	// tenant is the tenant this boundary is for. Namespaces it covers and the
	// Agents and Toolsets in them carry it as the custos.dev/tenant label.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="tenant is immutable: create a new DataBoundary for another tenant"
	Tenant string `json:"tenant"`

	// namespaceSelector selects the namespaces the boundary covers. It must
	// select something: an empty selector would cover every namespace.
	// +required
	// +kubebuilder:validation:XValidation:rule="(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)",message="must not be empty: an empty selector would cover every namespace"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="matchExpressions operators must be In, NotIn, Exists or DoesNotExist"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))",message="In and NotIn need values; Exists and DoesNotExist take none"
	NamespaceSelector metav1.LabelSelector `json:"namespaceSelector"`

	// regions the tenant's agents and tools may run in
	// (topology.kubernetes.io/region), for data residency.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Regions []string `json:"regions"`

	// egress limits where the tenant's agents may connect. Without it, agents
	// may reach only in-cluster Toolsets of their own tenant.
	// +optional
	Egress *EgressPolicy `json:"egress,omitempty"`

	// cloudRoles lists the cloud identities the tenant's agents may bind.
	// Without it, agents may bind none.
	// +optional
	CloudRoles *CloudRolePolicy `json:"cloudRoles,omitempty"`

	// images limits where the tenant's agent images may come from. Without
	// it, any registry is allowed (signature verification still applies).
	// +optional
	Images *ImagePolicy `json:"images,omitempty"`

	// trustedIssuers are the identity providers whose tokens name the
	// tenant's people to custos-sts: a person's token from any other issuer
	// is refused. Without it, custos-sts exchanges no token of the tenant's.
	// +optional
	// +listType=map
	// +listMapKey=issuer
	// +kubebuilder:validation:MaxItems=8
	TrustedIssuers []TrustedIssuer `json:"trustedIssuers,omitempty"`

	// checks are policy-as-code rules every Agent of the tenant must pass at
	// admission, written as kyverno-json assertion trees over the payload
	// {agent, namespace, boundary, request, time}. A failed check denies the
	// request with the check's name and message.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Checks []PolicyCheck `json:"checks,omitempty"`

	// callChecks are policy-as-code rules every tool call of the tenant's
	// agents must pass at custos-gateway, written as kyverno-json assertion
	// trees over the payload {agent, person, chain, tool, arguments, recent,
	// time} (docs/gateway.md, "Policy over the call"). A failed check
	// refuses the call (PolicyDenied) with the check's name and message.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	CallChecks []PolicyCheck `json:"callChecks,omitempty"`

	// caps are the most each agent of the tenant may take through
	// custos-gateway in a minute and in a day (UTC): records, bytes and
	// calls. The call or result that would cross a cap is withheld
	// (CapExceeded) and the agent frozen (an AgentFreeze with trigger
	// Cap) until a person lifts it. An Agent may set lower caps of its
	// own (spec.caps), never higher ones. Rate limits throttle; caps
	// freeze.
	// +optional
	Caps *AgentCaps `json:"caps,omitempty"`

	// breaker says what the manager's breaker does when it trips on one of
	// the tenant's agents (an agent that stops behaving like itself): the
	// platform team's to set, not the owners' being watched.
	// +optional
	Breaker *BreakerPolicy `json:"breaker,omitempty"`

	// evaluation sets the lines of the evaluator's rubrics for the
	// tenant's agents (docs/findings.md): past one, a Finding opens for a
	// person to review. An Agent may tighten them for itself
	// (spec.evaluation), never loosen them; the tighter of the two holds.
	// +optional
	Evaluation *EvaluationThresholds `json:"evaluation,omitempty"`

	// judge, when set, has a model read the tenant's open Findings (and
	// a small sample of its calls that raised nothing) and say how bad
	// each looks: its verdict annotates the Finding and orders the review
	// queue (kubectl custos findings); it never freezes an agent, closes
	// a Finding or opens one (docs/findings.md).
	// +optional
	Judge *EvaluationJudge `json:"judge,omitempty"`

	// pii is the tenant's personal-data policy (docs/pii.md): for now,
	// its own kinds of personal data, found beside the built-in ones.
	// +optional
	PII *PIIPolicy `json:"pii,omitempty"`
}

// EvaluationThresholds are the lines of the evaluator's rubrics; an unset
// one is Custos's default.
type EvaluationThresholds struct {
	// minConfidencePercent is the least confidence, in percent, an agent's
	// decision record must state for an irreversible call to raise nothing
	// (low-confidence). Default 70; tighter is higher.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MinConfidencePercent *int32 `json:"minConfidencePercent,omitempty"`

	// probeRefusals calls refused as unknown, out of scope, off schema,
	// against policy or naming someone else within probeWindow are probing.
	// Defaults 5 and 10m; tighter is fewer, and longer (at most 1h).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	ProbeRefusals *int32 `json:"probeRefusals,omitempty"`
	// +optional
	ProbeWindow *metav1.Duration `json:"probeWindow,omitempty"`

	// deniedApprovals of an agent's approval requests denied by people
	// within deniedWindow are asking again what people refused. Defaults
	// 3 and 24h; tighter is fewer, and longer (at most 168h).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	DeniedApprovals *int32 `json:"deniedApprovals,omitempty"`
	// +optional
	DeniedWindow *metav1.Duration `json:"deniedWindow,omitempty"`

	// volumeFactorPercent: a day whose records (the data records the
	// agent's tools returned) pass this percent of its daily mean over the
	// 28 days before (its days with calls, at least 7 of them, a mean of
	// at least one record) is far above its history (rubric volume).
	// Default 300; tighter is lower.
	// +optional
	// +kubebuilder:validation:Minimum=110
	// +kubebuilder:validation:Maximum=10000
	VolumeFactorPercent *int32 `json:"volumeFactorPercent,omitempty"`

	// dailyRecordBudget is the records a day past which an agent is over
	// its budget (rubric volume), whatever its history. None by default;
	// tighter is lower.
	// +optional
	// +kubebuilder:validation:Minimum=1
	DailyRecordBudget *int64 `json:"dailyRecordBudget,omitempty"`
}

// PIIPolicy is a tenant's personal-data policy.
type PIIPolicy struct {
	// patterns are the tenant's own kinds of personal data (an employee
	// number, a patient ID), each found as custom:<name>.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Patterns []PIIPattern `json:"patterns,omitempty"`
}

// PIIValidator checks what a pattern matched: luhn (the Luhn check over
// its digits), mod97 (ISO 7064 mod 97-10 over its letters and digits, as
// an IBAN's) or none.
// +kubebuilder:validation:Enum=none;luhn;mod97
type PIIValidator string

const (
	PIIValidatorNone  PIIValidator = "none"
	PIIValidatorLuhn  PIIValidator = "luhn"
	PIIValidatorMod97 PIIValidator = "mod97"
)

// PIIPattern is one kind of personal data a tenant names.
type PIIPattern struct {
	// name of the kind: a finding of it is custom:<name>.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// regex is an RE2 regular expression of the value; a match counts
	// only standing alone (not inside a longer word or digit run), and
	// never an empty one.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Regex string `json:"regex"`

	// validator checks each match; none by default.
	// +optional
	// +kubebuilder:default=none
	Validator PIIValidator `json:"validator,omitempty"`

	// context, when set, are words one of which must stand within 40
	// bytes before a match (case does not matter).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=64
	Context []string `json:"context,omitempty"`

	// confidencePercent of a finding of it: 80 by default.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	ConfidencePercent *int32 `json:"confidencePercent,omitempty"`
}

// EvaluationJudge is a model, served inside the tenant's boundary, that
// reads what the evaluator found.
type EvaluationJudge struct {
	// toolset is the Toolset whose endpoint serves the model: an
	// OpenAI-compatible API over https at the endpoint's path (POST
	// <path>/chat/completions; path /v1 for most servers), without
	// credentials. It must be the tenant's and pass every DataBoundary of
	// the tenant as an agent's Toolset must (region, endpoint namespace,
	// external CIDRs, to which the manager's connections are pinned): the
	// judge is inside the boundary, and is given only redacted input. In
	// gateway mode a tool server in a tenant namespace admits
	// custos-gateway alone, so an in-cluster judge runs in a shared
	// namespace the boundary lists (spec.egress.namespaces).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Toolset string `json:"toolset"`
	// namespace of the Toolset.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`

	// model is the model asked for.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Model string `json:"model"`

	// samplePercent of the tenant's calls that raised nothing are judged
	// too: their verdicts go to the audit trail (call.judged) and the
	// custos_judge_verdicts_total metric, to show how often the judge
	// sees what the rubrics did not; nothing else. Default 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	SamplePercent *int32 `json:"samplePercent,omitempty"`
}

// BreakerMode is what a trip of the breaker does.
// +kubebuilder:validation:Enum=Enforce;Observe
type BreakerMode string

const (
	// BreakerEnforce: a trip freezes the agent (an AgentFreeze, trigger
	// Trend or Ratio).
	BreakerEnforce BreakerMode = "Enforce"
	// BreakerObserve: a trip is recorded (breaker.observed, what would
	// have frozen the agent) and freezes nothing: for rolling the breaker
	// out to a tenant. Caps freeze all the same.
	BreakerObserve BreakerMode = "Observe"
)

// BreakerPolicy is a tenant's setting of the breaker.
type BreakerPolicy struct {
	// mode is Enforce (the default) or Observe. A tenant with several
	// DataBoundaries is observed only when every one says Observe.
	// +optional
	// +kubebuilder:default=Enforce
	Mode BreakerMode `json:"mode,omitempty"`

	// sensitivity is how much evidence trips the breaker: Low (12
	// spreads), Medium (8, the default, what make replay-risk judges) or
	// High (6). An Agent may only raise it; with several DataBoundaries,
	// a tenant's agents are watched at the highest.
	// +optional
	// +kubebuilder:default=Medium
	Sensitivity BreakerSensitivity `json:"sensitivity,omitempty"`

	// maxAllowance is the most an Agent's allowance (spec.breaker
	// .allowances[].factor there) may multiply its baseline by in a batch
	// window; with several DataBoundaries, the lowest holds.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxAllowance int32 `json:"maxAllowance,omitempty"`
}

// BreakerSensitivity is how much evidence trips the breaker.
// +kubebuilder:validation:Enum=Low;Medium;High
type BreakerSensitivity string

const (
	SensitivityLow    BreakerSensitivity = "Low"
	SensitivityMedium BreakerSensitivity = "Medium"
	SensitivityHigh   BreakerSensitivity = "High"
)

// AgentBreaker is an Agent's setting of the breaker, within its
// DataBoundary's.
type AgentBreaker struct {
	// mode Observe records this agent's trips (breaker.observed) and
	// freezes nothing; Enforce, or none, leaves it to the DataBoundary.
	// Caps freeze all the same. Setting Observe needs the verb unfreeze.
	// +optional
	Mode BreakerMode `json:"mode,omitempty"`

	// sensitivity may only be at least the DataBoundary's.
	// +optional
	Sensitivity BreakerSensitivity `json:"sensitivity,omitempty"`

	// allowances are known batch windows: in each, the agent may take up
	// to factor times its baseline before any evidence accumulates, and
	// nothing it takes is learned as normal. Adding or widening one needs
	// the verb unfreeze.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Allowances []BreakerAllowance `json:"allowances,omitempty"`
}

// BreakerAllowance is a batch window, every week, in UTC.
type BreakerAllowance struct {
	// name names the window (e.g. month-end-close).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// days the window opens on (UTC); every day when empty.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=7
	Days []Weekday `json:"days,omitempty"`

	// start is when the window opens, HH:MM in UTC.
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	Start string `json:"start"`

	// duration is how long it stays open: at most 24h.
	Duration metav1.Duration `json:"duration"`

	// factor is how many times its baseline the agent may take in the
	// window: at most the DataBoundary's maxAllowance.
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=100
	Factor int32 `json:"factor"`
}

// Weekday is a day of the week.
// +kubebuilder:validation:Enum=Mon;Tue;Wed;Thu;Fri;Sat;Sun
type Weekday string

// AgentCaps are the caps of an agent's use of its tools, per minute and
// per day.
type AgentCaps struct {
	// perMinute caps what one agent takes in a clock minute (UTC).
	// +optional
	PerMinute *CapLimits `json:"perMinute,omitempty"`

	// perDay caps what one agent takes in a calendar day (UTC).
	// +optional
	PerDay *CapLimits `json:"perDay,omitempty"`
}

// CapLimits are the caps of one window; an unset one is no cap.
type CapLimits struct {
	// records returned (a tool's recordsPath says what a record is).
	// +optional
	// +kubebuilder:validation:Minimum=1
	Records *int64 `json:"records,omitempty"`

	// bytes of the results served to the agent.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Bytes *int64 `json:"bytes,omitempty"`

	// calls made.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Calls *int64 `json:"calls,omitempty"`
}

// PolicyCheck is one policy-as-code rule: a kyverno-json assertion tree.
type PolicyCheck struct {
	// name identifies the check in denials and audit records.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// message is shown to the requester when the check fails; the
	// assertion's own failure description follows it.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// assert is a kyverno-json assertion tree evaluated against the payload,
	// for example {agent: {spec: {owner: {team: finance-platform}}}}.
	// +required
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	Assert runtime.RawExtension `json:"assert"`
}

// EgressPolicy is where a tenant's agents may connect.
type EgressPolicy struct {
	// cidrs are the external networks agents may reach, when a Toolset they
	// use lives there.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self)",message="must be a CIDR such as 203.0.113.0/24"
	CIDRs []string `json:"cidrs,omitempty"`

	// namespaces outside the tenant whose in-cluster Toolsets agents may
	// reach (shared platform services).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	Namespaces []string `json:"namespaces,omitempty"`
}

// CloudRolePolicy lists the cloud identities a tenant's agents may bind, as
// exact values or glob patterns (* matches any run of characters), and
// whether they may hold them ambiently.
// +kubebuilder:validation:XValidation:rule="has(self.awsRoleARNs) || has(self.azureClientIDs) || has(self.gcpServiceAccounts)",message="must list at least one of awsRoleARNs, azureClientIDs or gcpServiceAccounts; leave spec.cloudRoles out to allow no cloud identity"
type CloudRolePolicy struct {
	// awsRoleARNs the agents may assume, such as
	// arn:aws:iam::111122223333:role/acme-finance-*.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=2048
	AWSRoleARNs []string `json:"awsRoleARNs,omitempty"`

	// azureClientIDs the agents may federate with.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=36
	AzureClientIDs []string `json:"azureClientIDs,omitempty"`

	// gcpServiceAccounts the agents may impersonate, such as
	// *@acme-finance.iam.gserviceaccount.com.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=254
	GCPServiceAccounts []string `json:"gcpServiceAccounts,omitempty"`

	// ambientIdentity says whether agents may bind these identities in
	// Ambient mode (spec.identity.mode of the Agent), where the platforms'
	// workload-identity webhooks and metadata server inject cloud tokens
	// Custos cannot cap, revoke or record. Forbidden (the default): the
	// identities are reached only through leases.
	// +optional
	// +kubebuilder:default=Forbidden
	AmbientIdentity AmbientIdentityPolicy `json:"ambientIdentity,omitempty"`
}

// AmbientIdentityPolicy says whether a boundary's agents may hold their cloud
// identities ambiently.
// +kubebuilder:validation:Enum=Forbidden;Allowed
type AmbientIdentityPolicy string

const (
	// AmbientIdentityForbidden: agents reach their cloud identities only
	// through leases (identity mode Leased).
	AmbientIdentityForbidden AmbientIdentityPolicy = "Forbidden"
	// AmbientIdentityAllowed: agents may also use identity mode Ambient.
	AmbientIdentityAllowed AmbientIdentityPolicy = "Allowed"
)

// ImagePolicy says where a tenant's agent images may come from and who must
// have signed them. Custos resolves every Agent's image to a digest, verifies
// its cosign signatures offline against these signers, and runs only that
// digest. An Agent whose boundary trusts no signer never runs.
// +kubebuilder:validation:XValidation:rule="!has(self.keyless) || size(self.keyless) == 0 || has(self.trustedRoot)",message="keyless signers need trustedRoot: the Fulcio CA chain (and Rekor keys) they are verified against",fieldPath=".keyless"
// +kubebuilder:validation:XValidation:rule="!has(self.requireTransparencyLog) || !self.requireTransparencyLog || has(self.trustedRoot)",message="requireTransparencyLog needs trustedRoot with the Rekor public keys",fieldPath=".requireTransparencyLog"
type ImagePolicy struct {
	// registries agent images may come from, as prefixes
	// (registry.acme.example/agents/) or glob patterns.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=512
	Registries []string `json:"registries,omitempty"`

	// publicKeys are signers trusted by their public key: each names a PEM
	// public key (cosign.pub) in a Secret or ConfigMap.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	PublicKeys []TrustSource `json:"publicKeys,omitempty"`

	// keyless are signers trusted by the identity in their short-lived
	// signing certificate (Sigstore keyless signing), verified against
	// trustedRoot.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Keyless []KeylessIdentity `json:"keyless,omitempty"`

	// trustedRoot is a Sigstore trusted_root.json (the Fulcio CA chain, Rekor
	// and CT log public keys) in a Secret or ConfigMap. Verification uses it
	// offline: nothing is fetched from a public-good instance.
	// +optional
	TrustedRoot *TrustSource `json:"trustedRoot,omitempty"`

	// requireTransparencyLog accepts only signatures that carry a Rekor
	// entry verified against trustedRoot's log keys. Keyless signatures
	// need it to stay verifiable once their certificate has expired.
	// +optional
	RequireTransparencyLog bool `json:"requireTransparencyLog,omitempty"`

	// onVerificationFailure is what happens to a running agent whose image
	// no longer verifies (a key rotated out, a signature removed): Block
	// refuses new pods and reports it; Suspend also suspends the agent
	// (scaled to zero, deny-all, leases revoked) until its image verifies.
	// +optional
	// +kubebuilder:default=Block
	OnVerificationFailure ImageFailureAction `json:"onVerificationFailure,omitempty"`
}

// ImageFailureAction is what Custos does with an agent whose image stops
// verifying.
// +kubebuilder:validation:Enum=Block;Suspend
type ImageFailureAction string

const (
	// ImageFailureBlock refuses new pods of the agent and reports it.
	ImageFailureBlock ImageFailureAction = "Block"
	// ImageFailureSuspend suspends the agent as well.
	ImageFailureSuspend ImageFailureAction = "Suspend"
)

// TrustSource is verification material in one key of a Secret or a
// ConfigMap: exactly one of secretRef and configMapRef.
// +kubebuilder:validation:XValidation:rule="has(self.secretRef) != has(self.configMapRef)",message="exactly one of secretRef and configMapRef"
type TrustSource struct {
	// secretRef names a key of a Secret.
	// +optional
	SecretRef *ObjectKeyReference `json:"secretRef,omitempty"`

	// configMapRef names a key of a ConfigMap.
	// +optional
	ConfigMapRef *ObjectKeyReference `json:"configMapRef,omitempty"`
}

// ObjectKeyReference names one key of a namespaced object. Keep it where
// tenants cannot write (Custos's own namespace, say): whoever can change it
// decides which images run.
type ObjectKeyReference struct {
	// namespace of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`

	// name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key in the object's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// KeylessIdentity is a keyless signer: the OIDC issuer and the subject of
// its signing certificate, each exact or as a regular expression (RE2,
// unanchored unless anchored with ^ and $).
// +kubebuilder:validation:XValidation:rule="has(self.issuer) != has(self.issuerRegExp)",message="exactly one of issuer and issuerRegExp"
// +kubebuilder:validation:XValidation:rule="has(self.subject) != has(self.subjectRegExp)",message="exactly one of subject and subjectRegExp"
type KeylessIdentity struct {
	// issuer is the exact OIDC issuer, such as
	// https://token.actions.githubusercontent.com.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Issuer string `json:"issuer,omitempty"`

	// issuerRegExp matches the OIDC issuer.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	IssuerRegExp string `json:"issuerRegExp,omitempty"`

	// subject is the exact certificate subject: an e-mail address or a
	// URI such as a CI workflow's.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Subject string `json:"subject,omitempty"`

	// subjectRegExp matches the certificate subject.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	SubjectRegExp string `json:"subjectRegExp,omitempty"`
}

// DataBoundaryStatus is what Custos observed of a DataBoundary.
type DataBoundaryStatus struct {
	// observedGeneration is the generation last reconciled successfully; -1
	// until the first success.
	// +optional
	// +kubebuilder:default=-1
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// namespaces the boundary covers now.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1024
	// +kubebuilder:validation:items:MaxLength=63
	Namespaces []string `json:"namespaces,omitempty"`

	// agents is the number of Agents in the covered namespaces, counted
	// again at most every two seconds while Agents come and go.
	// +optional
	Agents int32 `json:"agents,omitempty"`

	// imagePolicyHash is a digest of spec.images with the key material it
	// references, as last read. Agents verified against another are
	// verified again.
	// +optional
	// +kubebuilder:validation:MaxLength=80
	ImagePolicyHash string `json:"imagePolicyHash,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=db;dbnd,categories=custos
// +kubebuilder:printcolumn:name="Tenant",type=string,JSONPath=`.spec.tenant`
// +kubebuilder:printcolumn:name="Regions",type=string,JSONPath=`.spec.regions`
// +kubebuilder:printcolumn:name="Agents",type=integer,JSONPath=`.status.agents`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// DataBoundary is a tenant's boundary, written by the platform team: the
// namespaces it covers, the regions its agents and tools may run in, where
// they may connect, and which cloud identities and images they may use.
// Custos enforces it at admission, at scheduling and in the network.
type DataBoundary struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the boundary.
	// +required
	Spec DataBoundarySpec `json:"spec"`

	// status is what Custos observed.
	// +optional
	// +kubebuilder:default={}
	Status DataBoundaryStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// DataBoundaryList is a list of DataBoundaries.
type DataBoundaryList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DataBoundary `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DataBoundary{}, &DataBoundaryList{})
}
