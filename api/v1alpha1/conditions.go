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

// Labels, annotations and finalizers Custos reads and writes. They are API:
// platform tooling selects on them.
const (
	// TenantLabel names the tenant an object belongs to. It is required on
	// Agents and Toolsets, must equal the tenant label of their namespace and
	// cannot change once set.
	TenantLabel = "custos.dev/tenant"

	// AgentLabel is set on every object Custos creates for an Agent, with the
	// Agent's name as value. Only pods carrying it reach the pod guard.
	AgentLabel = "custos.dev/agent"

	// AgentUIDLabel carries the UID of the Agent an object was made for, so
	// that a child left behind by a deleted Agent of the same name is told
	// apart from the children of its successor.
	AgentUIDLabel = "custos.dev/agent-uid"

	// ManagedByLabel is the standard label Custos sets to ManagedByValue on
	// everything it creates; Custos deletes only objects carrying it.
	ManagedByLabel = "app.kubernetes.io/managed-by"

	// ManagedByValue is the value of ManagedByLabel on objects Custos creates.
	ManagedByValue = "custos"

	// DecommissionFinalizer holds an Agent until its decommission path has
	// revoked every lease and removed every object the agent had.
	DecommissionFinalizer = "custos.dev/decommission"

	// NetworkPolicyFinalizer holds an agent's NetworkPolicy until no pod
	// of the agent is left: whoever deletes it early (the garbage
	// collector in a foreground deletion, or a person) cannot open the
	// network of pods that still run. The decommission path and the
	// sweeper release it once the agent's pods are gone.
	NetworkPolicyFinalizer = "custos.dev/network-isolation"

	// ToolsetUIDLabel carries, on a NetworkPolicy Custos made for a
	// Toolset's tool server, the UID of that Toolset: a policy left behind
	// by a deleted Toolset of the same name is told apart from its
	// successor's, and the sweeper reaps it.
	ToolsetUIDLabel = "custos.dev/toolset-uid"

	// ToolsetAnnotation names, on a NetworkPolicy Custos made for a
	// Toolset's tool server, that Toolset as <namespace>/<name> (a Toolset's
	// name can be longer than a label value).
	ToolsetAnnotation = "custos.dev/toolset"

	// CredentialLabel names, on a lease Secret, the credential of
	// spec.credentials whose material it holds.
	CredentialLabel = "custos.dev/credential"

	// AgentNamespaceLabel carries, on a gateway-only credential's lease
	// Secret (kept in the manager's --gateway-credentials-namespace, not
	// the agent's), the namespace of the Agent it was issued for: no owner
	// reference crosses namespaces, so the labels say whose it is.
	AgentNamespaceLabel = "custos.dev/agent-namespace"

	// CallDigestLabel carries, on an ApprovalRequest, the first 40 hex
	// digits of its spec.callDigest: custos-gateway finds the request of a
	// call retried by it.
	CallDigestLabel = "custos.dev/call-digest"

	// ApprovalRequestLabel carries, on an ApprovalDecision, the name of
	// the ApprovalRequest it decides (set by the admission webhook).
	ApprovalRequestLabel = "custos.dev/approval-request"

	// LeaseSecretType is the type of the Secrets that hold an agent's
	// credential leases.
	LeaseSecretType = "custos.dev/lease"

	// LeaseExpiresAtAnnotation is when a lease expires, RFC 3339, on every
	// lease Secret; custos-gateway reads it on gateway-only leases.
	LeaseExpiresAtAnnotation = "custos.dev/expires-at"

	// LeaseTokenKey is the Secret key of a bearer token lease
	// (kubernetesToken, azureToken): a file a client reads its token from.
	LeaseTokenKey = "token"
)

// Condition types shared by every Custos kind. They follow kstatus: Ready is
// always present once the controller has seen the object; Reconciling and
// Stalled are present only while True.
const (
	// ReadyCondition is True when the object is in the state its spec asks
	// for and every condition it summarizes holds. For an Agent that state is
	// running (reason Succeeded), suspended (SuspendedBySpec, Expired) or
	// decommissioned (Decommissioned): the reason says which, and the phase
	// column shows it. kstatus, and so Flux and Argo CD, read a False Ready as
	// "in progress".
	ReadyCondition = "Ready"

	// ReconcilingCondition is True while the controller is working towards
	// the desired state (a new generation, a pending rollout, a step waiting
	// on another object). It is removed when the work is done.
	ReconcilingCondition = "Reconciling"

	// StalledCondition is True when the controller cannot make progress
	// without a change to the object or to what it references (invalid
	// configuration, a policy violation). It is removed when progress resumes.
	StalledCondition = "Stalled"
)

// Condition types of an Agent. Each is owned by one step of the Agent
// reconciler; Ready summarizes them.
const (
	// BoundaryCompliantCondition is True when the Agent's tenant has exactly
	// one DataBoundary and the Agent's regions, roles, image and Toolsets lie
	// inside it.
	BoundaryCompliantCondition = "BoundaryCompliant"

	// IdentityBoundCondition is True when the Agent's own ServiceAccount
	// exists with the workload-identity bindings of every cloud in
	// spec.identity, and status.identity names it and its SPIFFE ID.
	IdentityBoundCondition = "IdentityBound"

	// ImageVerifiedCondition is True when spec.image resolved to a digest
	// whose signature was verified against a signer the DataBoundary trusts.
	ImageVerifiedCondition = "ImageVerified"

	// NetworkIsolatedCondition is True when the Agent's NetworkPolicy denies
	// all traffic except DNS and egress to its Toolsets' endpoints allowed by
	// the DataBoundary (or denies everything while the Agent is not Active).
	// With custos-gateway (the manager's --gateway-* flags) the egress is
	// DNS, custos-gateway and custos-sts only: every tool call goes through
	// the gateway. It is a condition of Toolsets too (below).
	NetworkIsolatedCondition = "NetworkIsolated"

	// CredentialsIssuedCondition is True when every credential in
	// spec.credentials has a current lease, and none is held that is not
	// allowed any more.
	CredentialsIssuedCondition = "CredentialsIssued"

	// WorkloadAvailableCondition is True when the Agent's Deployment has the
	// desired number of available, up-to-date replicas (zero while Suspended).
	WorkloadAvailableCondition = "WorkloadAvailable"

	// ChangesApprovedCondition is True when every Toolset and cloud role
	// the generation asks for is in force (status.granted). False while an
	// addition waits for people's approval (reason ApprovalRequired; an
	// ApprovalPolicy with agentChanges holds the agent's changes), or was
	// denied (ApprovalDenied, ApprovalExpired): the generation in force
	// keeps running meanwhile.
	ChangesApprovedCondition = "ChangesApproved"
)

// Condition types of a Toolset.
const (
	// SchemasValidCondition is True when every tool's input and output JSON
	// Schema compiles.
	SchemasValidCondition = "SchemasValid"

	// NetworkIsolatedCondition (the Agent's condition type, above) is, on a
	// Toolset with an in-cluster endpoint and only while custos-gateway
	// runs, True when the tool server's pods are reachable from the
	// gateway's pods alone: Custos's NetworkPolicy custos-toolset-<toolset
	// namespace>.<toolset name> in the endpoint's namespace admits only them,
	// on the endpoint's port, and no other NetworkPolicy there admits more.
	// Ready summarizes it, except for EndpointOutsideTenant (a report).
)

// Condition reasons. Reasons are API: tooling and alerts match on them, so
// they are never renamed casually.
const (
	// SucceededReason: the step or the whole reconciliation succeeded.
	SucceededReason = "Succeeded"

	// ProgressingReason: work is under way towards the desired state.
	ProgressingReason = "Progressing"

	// InvalidSpecReason: the object's spec cannot be acted on as written.
	InvalidSpecReason = "InvalidSpec"

	// DependencyNotFoundReason: an object the spec references does not exist
	// yet; the controller retries and watches for it.
	DependencyNotFoundReason = "DependencyNotFound"

	// BoundaryNotFoundReason: no DataBoundary covers the object's namespace.
	BoundaryNotFoundReason = "BoundaryNotFound"

	// BoundaryConflictReason: more than one DataBoundary covers the object's
	// namespace, so none can be chosen.
	BoundaryConflictReason = "BoundaryConflict"

	// BoundaryViolationReason: the object asks for something its tenant's
	// DataBoundary does not allow (a region, a role, an endpoint).
	BoundaryViolationReason = "BoundaryViolation"

	// SuspendedBySpecReason: the Agent's owner set spec.lifecycle.state to
	// Suspended.
	SuspendedBySpecReason = "SuspendedBySpec"

	// ExpiredReason: the Agent passed spec.lifecycle.expiresAt and was
	// suspended.
	ExpiredReason = "Expired"

	// ReviewOverdueReason: the agent's owners have not attested it within
	// spec.review.everyDays; it is suspended until one does.
	ReviewOverdueReason = "ReviewOverdue"

	// FrozenReason: an AgentFreeze holds the agent (a cap or the breaker
	// tripped, or a person froze it) until a person lifts it.
	FrozenReason = "Frozen"

	// DecommissioningReason: the Agent is being decommissioned; a step of the
	// decommission path is still under way.
	DecommissioningReason = "Decommissioning"

	// RevokingLeasesReason: decommission step 1, the Agent's credential
	// leases are being revoked.
	RevokingLeasesReason = "RevokingLeases"

	// RemovingWorkloadReason: decommission step 2, the Agent's Deployment is
	// being removed.
	RemovingWorkloadReason = "RemovingWorkload"

	// RemovingNetworkPolicyReason: decommission step 3, the Agent's
	// NetworkPolicy is being removed.
	RemovingNetworkPolicyReason = "RemovingNetworkPolicy"

	// RemovingIdentityReason: decommission step 4, the Agent's ServiceAccount
	// is being removed.
	RemovingIdentityReason = "RemovingIdentity"

	// DecommissionedReason: every lease was revoked and every object the
	// Agent had was observed gone.
	DecommissionedReason = "Decommissioned"

	// IdentityNotBoundReason: the workload waits for the Agent's identity;
	// no pod runs without its own ServiceAccount.
	IdentityNotBoundReason = "IdentityNotBound"

	// NameConflictReason: an object Custos would create already exists and
	// is not Custos's; Custos never takes over what it did not create.
	NameConflictReason = "NameConflict"

	// StoppingReason: the agent is suspended, but pods still run as its
	// ServiceAccount; it is reported Suspended once none does.
	StoppingReason = "Stopping"

	// NetworkPolicyWidenedReason: another NetworkPolicy also selects the
	// agent's pods and allows traffic. NetworkPolicies add up, so the
	// agent's network is wider than its own policy says.
	NetworkPolicyWidenedReason = "NetworkPolicyWidened"

	// EndpointOutsideTenantReason: a Toolset's in-cluster endpoint is in a
	// namespace that is not its tenant's (a shared namespace a DataBoundary
	// lists in spec.egress.namespaces, say): Custos writes no NetworkPolicy
	// there for a tenant's Toolset, so keeping that tool server reachable
	// from custos-gateway alone is up to whoever runs the namespace
	// (Toolset NetworkIsolated False; Ready does not summarize it).
	EndpointOutsideTenantReason = "EndpointOutsideTenant"

	// SchemaInvalidReason: a tool's JSON Schema does not compile.
	SchemaInvalidReason = "SchemaInvalid"

	// LeaseBackendNotConfiguredReason: a credential asks for a backend this
	// manager is not configured to issue from (CredentialsIssued False,
	// Stalled until the manager is configured).
	LeaseBackendNotConfiguredReason = "BackendNotConfigured"

	// GatewayNotConfiguredReason: a credential is gateway-only
	// (spec.credentials[].gateway) but this manager keeps no credentials
	// for custos-gateway (no --gateway-credentials-namespace); its lease is
	// not issued (CredentialsIssued False, Stalled until configured).
	GatewayNotConfiguredReason = "GatewayNotConfigured"

	// VerifiedReason: the image resolved to a digest signed by a signer the
	// DataBoundary trusts (ImageVerified True).
	VerifiedReason = "Verified"

	// SignatureMissingReason: the image's digest carries no signature
	// (Stalled until one is added or spec.image changes).
	SignatureMissingReason = "SignatureMissing"

	// UntrustedSignerReason: the image is signed, but by no signer the
	// DataBoundary trusts (Stalled).
	UntrustedSignerReason = "UntrustedSigner"

	// RegistryNotAllowedReason: the image comes from a registry the
	// DataBoundary does not allow (Stalled).
	RegistryNotAllowedReason = "RegistryNotAllowed"

	// ResolveFailedReason: the registry could not be reached or read;
	// retried with backoff, and a digest verified before keeps running.
	ResolveFailedReason = "ResolveFailed"

	// NoTrustedSignersReason: the DataBoundary trusts no image signer
	// (spec.images.publicKeys or keyless), so no image can run (Stalled).
	NoTrustedSignersReason = "NoTrustedSigners"

	// InvalidImagePolicyReason: the DataBoundary's image policy cannot be
	// used: key material missing or malformed (Stalled).
	InvalidImagePolicyReason = "InvalidImagePolicy"

	// ImageNotVerifiedReason: the workload waits for a verified image, or
	// the agent is suspended because its image stopped verifying.
	ImageNotVerifiedReason = "ImageNotVerified"

	// LeaseBackendUnavailableReason: a backend could not be reached or
	// failed; issuance is retried with backoff and a lease still valid is
	// kept until it expires (CredentialsIssued False).
	LeaseBackendUnavailableReason = "BackendUnavailable"

	// ApprovalRequiredReason: the generation adds a Toolset with Write
	// tools or a cloud role, which waits for its ApprovalRequest to be
	// approved; the generation in force keeps running.
	ApprovalRequiredReason = "ApprovalRequired"

	// ApprovalDeniedReason: people denied the generation's additions; it
	// stays out of force until the spec changes.
	ApprovalDeniedReason = "ApprovalDenied"

	// ApprovalExpiredReason: the generation's ApprovalRequest expired
	// unapproved, which means deny.
	ApprovalExpiredReason = "ApprovalExpired"
)

// The RBAC report of a DataBoundary.
const (
	// TenantRBACContainedCondition is True (reason Succeeded) when no RBAC
	// that applies in the namespaces a DataBoundary covers (their
	// RoleBindings, and every ClusterRoleBinding) grants anyone what
	// Custos's admission controls cannot see or stop: impersonation,
	// reading Secrets (the agents' leases), use of agents/identity or
	// verify of agents/image (what the manager holds), escalate or bind on
	// roles, binding pods to nodes, the nodes' proxy, or writing admission
	// policies and webhook configurations. The control plane's own
	// identities and Custos's manager are left out. It is a report, not a
	// state of the boundary: Ready does not summarize it.
	TenantRBACContainedCondition = "TenantRBACContained"

	// UnsafeRBACReason: RBAC in the boundary's namespaces grants subjects
	// what admission cannot see or stop (TenantRBACContained False); the
	// message names the subjects, their grants and the bindings.
	UnsafeRBACReason = "UnsafeRBAC"
)
