-- Copyright 2026 The Custos Authors.
-- SPDX-License-Identifier: Apache-2.0
--
-- Argo CD health check for Custos's kinds: Agent, Toolset and DataBoundary
-- (custos.dev/v1alpha1). One script serves all three; install it under
-- resource.customizations.health.custos.dev_Agent, ..._Toolset and
-- ..._DataBoundary in argocd-cm (docs/gitops.md shows the ConfigMap).
--
-- It reads the kstatus conditions Custos writes, in the order kstatus reads
-- them, so Argo CD, Flux and kubectl-wait tooling agree:
--
--   observedGeneration absent, -1 or not the generation  Progressing
--   Stalled=True                                          Degraded
--   Reconciling=True                                      Progressing
--   Ready=True, reason SuspendedBySpec or Expired         Suspended
--   Ready=True (Succeeded, Decommissioned, ...)           Healthy
--   Ready=False or Unknown                                Progressing
--   no Ready condition                                    Progressing
--
-- The message is the deciding condition's. Argo CD gives custom health
-- checks only `obj` and the base, table and (safe) os libraries: no string
-- library, so nothing here calls string functions.

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
  return {status = "Healthy", message = messageOf(ready)}
end
return {status = "Progressing", message = messageOf(ready)}
