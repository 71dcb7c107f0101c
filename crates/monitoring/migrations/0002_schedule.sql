-- The schedule: one row per enabled monitor of every organization, in the control database so
-- that every server instance claims due checks from one place, whichever tier keeps the
-- monitor itself. A row is a hint, the monitor in its tenant's storage is the truth: a worker
-- reads the monitor before running a check and corrects (or removes) the row when it disagrees.
--
-- Claiming: `next_due_at <= now()` and no live lease; an instance takes rows with
-- `FOR UPDATE SKIP LOCKED` and sets `lease_owner`/`lease_until`. When it has recorded the
-- check it moves `next_due_at` to the next slot and clears the lease; when it dies, the lease
-- expires and another instance takes the slot over. A slot recorded twice is stored once
-- (check_results is unique per monitor and `due_at`), so a takeover never counts a check twice.
--
-- `agent_id` names the agent that runs the monitor's checks from another machine; instances
-- never claim those rows, the agent does through the API.
CREATE TABLE schedule (
    org_id uuid NOT NULL REFERENCES control.tenants (id) ON DELETE CASCADE,
    monitor_id uuid NOT NULL,
    interval_seconds integer NOT NULL CHECK (interval_seconds > 0),
    timeout_seconds integer NOT NULL CHECK (timeout_seconds > 0),
    agent_id uuid NULL,
    next_due_at timestamptz NOT NULL,
    lease_owner uuid NULL,
    lease_until timestamptz NULL,
    -- When the row was last written from its monitor: a row younger than a minute may belong to
    -- a monitor whose transaction has not committed yet, and is not removed for lack of one.
    planned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, monitor_id)
);

-- Due rows for the instances (which organizations have checks due), each organization's due
-- rows oldest first (the claim ranks only the first few of each), and each agent's.
CREATE INDEX schedule_due_idx ON schedule (next_due_at) WHERE agent_id IS NULL;
CREATE INDEX schedule_org_due_idx ON schedule (org_id, next_due_at, monitor_id)
    WHERE agent_id IS NULL;
-- Each organization's checks running now (the claim ranks an organization's due checks after
-- them).
CREATE INDEX schedule_leased_idx ON schedule (org_id) WHERE lease_owner IS NOT NULL;
CREATE INDEX schedule_agent_due_idx ON schedule (org_id, agent_id, next_due_at)
    WHERE agent_id IS NOT NULL;
