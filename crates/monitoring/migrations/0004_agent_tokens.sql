-- Agent tokens, in the control database's `monitoring` schema. An agent (`tenantry agent`)
-- authenticates with `Authorization: Bearer tagt_...` and names no organization, so the token
-- must lead to its tenant before any tenant is known: this table maps the token's SHA-256 (the
-- token itself is never stored) to the organization and the agent. The agent lives in the
-- tenant's own storage (possibly another database), so there is no foreign key to it: the token
-- is issued before the agent commits and removed after the agent is deleted, and a row outliving
-- its agent is refused like an unknown token (the agent is looked up in the tenant on every
-- request).
--
-- The organization is `org_id`, not `tenant_id`: this is a control table read across tenants,
-- not a tenant table under row-level security. A hard delete of the organization removes its
-- rows with it.
CREATE TABLE agent_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    org_id uuid NOT NULL REFERENCES control.tenants (id) ON DELETE CASCADE,
    agent_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, agent_id)
);
