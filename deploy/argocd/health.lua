-- Argo CD health check of masreset.dev/BulkPasswordReset.
-- Argo CD runs it with gopher-lua (Lua 5.1) and, by default, only the base,
-- table and os libraries, so it uses no string functions.
local hs = {}

local function condition(status, type)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

-- Reason and message of the phase: every condition carries the same pair,
-- so Ready is read first and Stalled when Ready is missing.
local function phase_condition(status)
  return condition(status, "Ready") or condition(status, "Stalled") or {}
end

local function counts_message(status)
  local counts = status.counts
  if counts == nil or counts.total == nil then
    return nil
  end
  return (counts.done or 0) .. " of " .. counts.total .. " users done, " ..
    (counts.succeeded or 0) .. " succeeded, " .. (counts.failed or 0) .. " failed, " ..
    (counts.unknown or 0) .. " unknown"
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to start the run"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local phase = status.phase
local reason = phase_condition(status).reason
local message = phase_condition(status).message

if phase == "Pending" then
  hs.status = "Progressing"
  hs.message = message or "Reading the inputs of the run"
elseif phase == "Running" then
  hs.status = "Progressing"
  hs.message = counts_message(status) or message or "Sending password requests"
elseif phase == "Paused" and reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = message or "Suspended by spec.suspend"
elseif phase == "Paused" then
  hs.status = "Degraded"
  hs.message = message or ("Paused: " .. (reason or "unknown reason"))
elseif phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = message or counts_message(status) or "Every user was reset"
elseif phase == "PartiallyFailed" or phase == "Failed" then
  hs.status = "Degraded"
  hs.message = message or counts_message(status) or phase
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. phase
end
return hs
