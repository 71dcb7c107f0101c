-- Agents: processes (`tenantry agent`) that run an organization's checks from another machine,
-- so that monitors can watch a private network the servers cannot reach. `agents` holds each
-- agent (its name, and when it last asked for work); its token lives in the control database
-- (`monitoring.agent_tokens`, only the token's SHA-256), because a token must lead to its
-- organization before any tenant is known.
--
-- `monitors.agent_id` names the agent that runs a monitor's checks; `NULL` means the servers
-- run them. A heartbeat monitor is pinged and has no runner, so it never names an agent.
-- Deleting an agent first puts its monitors back on the servers (`agent_id = NULL`, in the same
-- transaction, by `tenantry_monitoring::delete_agent`): the foreign key has no `ON DELETE`
-- action, because `SET NULL (agent_id)` (leaving `tenant_id` alone) needs PostgreSQL 15 and the
-- tenant schema runs on 13 and newer.

CREATE TABLE agents (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id) REFERENCES tenant_settings (tenant_id)
);

-- The list of agents, oldest first.
CREATE INDEX agents_tenant_created_idx ON agents (tenant_id, created_at, id);

ALTER TABLE monitors ADD COLUMN agent_id uuid NULL;
ALTER TABLE monitors ADD CONSTRAINT monitors_agent_fkey
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id);
ALTER TABLE monitors ADD CONSTRAINT monitors_heartbeat_without_agent
    CHECK (agent_id IS NULL OR kind <> 'heartbeat');

-- An agent's monitors (its `monitor_ids`, and releasing them when it is deleted).
CREATE INDEX monitors_agent_idx ON monitors (tenant_id, agent_id) WHERE agent_id IS NOT NULL;

ALTER TABLE agents ENABLE ROW LEVEL SECURITY;
ALTER TABLE agents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON agents
    USING (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));
