-- Copyright 2026 The Custos Authors.
-- SPDX-License-Identifier: Apache-2.0
--
-- Argo CD health check for Custos's kinds (custos.dev/v1alpha1): Agent,
-- Toolset, DataBoundary, ApprovalRequest, ApprovalPolicy,
-- ApprovalDecision, AgentAttestation, AgentFreeze and AgentUnfreeze. One
-- script serves them all; install it under
-- resource.customizations.health.custos.dev_Agent, ..._Toolset,
-- ..._DataBoundary, ..._ApprovalRequest, ..._ApprovalPolicy,
-- ..._ApprovalDecision, ..._AgentAttestation, ..._AgentFreeze and
-- ..._AgentUnfreeze in argocd-cm (docs/gitops.md shows the ConfigMap).
--
-- For Agents, Toolsets and DataBoundaries it reads the kstatus conditions
-- Custos writes, in the order kstatus reads them, so Argo CD, Flux and
-- kubectl-wait tooling agree:
--
--   observedGeneration absent, -1 or not the generation  Progressing
--   Stalled=True                                          Degraded
--   Reconciling=True                                      Progressing
--   Ready=True, reason SuspendedBySpec or Expired         Suspended
--   Ready=True, reason ReviewOverdue                      Suspended
--   Ready=True, reason Frozen                             Degraded
--   Ready=True (Succeeded, Decommissioned, ...)           Healthy
--   Ready=False or Unknown                                Progressing
--   no Ready condition                                    Progressing
--
-- An Agent suspended for ReviewOverdue waits for one of its owners to
-- attest it (an AgentAttestation: kubectl custos attest); the message says
-- so when the condition's does not.
--
-- A Frozen Agent (an AgentFreeze holds it: a cap or the breaker tripped,
-- or a person froze it) is contained, and waits for a person who may lift
-- the freeze: Degraded, so that it is seen.
--
-- ApprovalPolicies, ApprovalDecisions, AgentAttestations and
-- AgentUnfreezes have no status: Healthy once stored. An AgentFreeze is
-- Degraded while it holds its agent and Healthy once Lifted. An ApprovalRequest's spec never changes (it has no
-- observedGeneration); its health is its phase:
--
--   Pending, or no phase yet                              Progressing
--   Approved (the call may run once, at its next try)     Healthy
--   Consumed (the approved call ran)                      Healthy
--   Denied, or Expired (which denies)                     Degraded
--
-- The message is the deciding condition's (for an ApprovalRequest, made
-- from its phase and counts). Argo CD gives custom health checks only
-- `obj` and the base, table and (safe) os libraries: no string library,
-- so nothing here calls string functions.

local function findCondition(conditions, conditionType)
  for _, c in ipairs(conditions) do
    if type(c) == "table" and c.type == conditionType then
      return c
    end
  end
  return nil
end

local function messageOf(c)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.type .. ": " .. c.reason
  end
  return c.type .. " is " .. tostring(c.status)
end

-- The approvals.
if obj.kind == "ApprovalPolicy" or obj.kind == "ApprovalDecision" or obj.kind == "AgentAttestation" or obj.kind == "AgentUnfreeze" then
  return {status = "Healthy", message = obj.kind .. " stored"}
end
if obj.kind == "AgentFreeze" then
  local spec = obj.spec
  if type(spec) ~= "table" then
    spec = {}
  end
  local st = obj.status
  if type(st) ~= "table" then
    st = {}
  end
  if st.phase == "Lifted" then
    return {status = "Healthy", message = "Lifted by " .. tostring(st.unfreeze) .. " (" .. tostring(st.verdict) .. ")"}
  end
  return {status = "Degraded", message = "Holds Agent " .. tostring(spec.agent) .. " Frozen (" .. tostring(spec.trigger) .. "): " .. tostring(spec.reason)}
end
if obj.kind == "ApprovalRequest" then
  local spec = obj.spec
  if type(spec) ~= "table" then
    spec = {}
  end
  local st = obj.status
  if type(st) ~= "table" then
    st = {}
  end
  local approvals = st.approvals
  if type(approvals) ~= "number" then
    approvals = 0
  end
  local quorum = spec.quorum
  if type(quorum) ~= "number" then
    quorum = 1
  end
  local tally = tostring(approvals) .. " of " .. tostring(quorum) .. " approvals"
  local phase = st.phase
  if phase == "Approved" then
    return {status = "Healthy", message = "Approved with " .. tally .. ": the call runs once, at the agent's next try"}
  end
  if phase == "Consumed" then
    local message = "Consumed: the approved call ran"
    if type(st.consumedAt) == "string" then
      message = message .. " at " .. st.consumedAt
    end
    return {status = "Healthy", message = message}
  end
  if phase == "Denied" then
    local message = "Denied"
    if type(st.decisions) == "table" then
      for _, d in ipairs(st.decisions) do
        if type(d) == "table" and d.decision == "Deny" and d.counted == true and
            type(d.approver) == "table" and type(d.approver.username) == "string" then
          message = "Denied by " .. d.approver.username
          break
        end
      end
    end
    return {status = "Degraded", message = message .. " (" .. tally .. "): the call does not run"}
  end
  if phase == "Expired" then
    local message = "Expired"
    if type(spec.expiresAt) == "string" then
      message = message .. " at " .. spec.expiresAt
    end
    return {status = "Degraded", message = message .. " with " .. tally .. ": the call is denied"}
  end
  if phase == "Pending" then
    local message = "Waiting for " .. tally
    if type(spec.expiresAt) == "string" then
      message = message .. ", until " .. spec.expiresAt
    end
    return {status = "Progressing", message = message}
  end
  return {status = "Progressing", message = "Waiting for Custos to observe the ApprovalRequest"}
end

-- Agents, Toolsets and DataBoundaries.
local status = obj.status
if type(status) ~= "table" then
  return {status = "Progressing", message = "Waiting for Custos to observe the " .. tostring(obj.kind)}
end

-- A status that does not speak for the current spec says nothing about it:
-- a new object (observedGeneration -1) or an edit Custos has not acted on.
local generation = nil
if type(obj.metadata) == "table" then
  generation = obj.metadata.generation
end
local observed = status.observedGeneration
if type(observed) ~= "number" or observed < 0 then
  return {status = "Progressing", message = "Waiting for Custos to observe the " .. tostring(obj.kind)}
end
if generation ~= nil and observed ~= generation then
  return {
    status = "Progressing",
    message = "Waiting for Custos to observe generation " .. tostring(generation) ..
      " (observed " .. tostring(observed) .. ")",
  }
end

local conditions = status.conditions
if type(conditions) ~= "table" then
  conditions = {}
end

local stalled = findCondition(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  return {status = "Degraded", message = messageOf(stalled)}
end

local reconciling = findCondition(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  return {status = "Progressing", message = messageOf(reconciling)}
end

local ready = findCondition(conditions, "Ready")
if ready == nil then
  -- Custos writes Ready whenever it has observed a generation.
  return {status = "Progressing", message = "Waiting for Custos to report Ready"}
end
if ready.status == "True" then
  if ready.reason == "SuspendedBySpec" or ready.reason == "Expired" then
    return {status = "Suspended", message = messageOf(ready)}
  end
  if ready.reason == "ReviewOverdue" then
    local message = ready.message
    if message == nil or message == "" then
      message = "Owner review overdue: suspended until an owner attests the agent (kubectl custos attest)"
    end
    return {status = "Suspended", message = message}
  end
  if ready.reason == "Frozen" then
    return {status = "Degraded", message = messageOf(ready)}
  end
  return {status = "Healthy", message = messageOf(ready)}
end
return {status = "Progressing", message = messageOf(ready)}
