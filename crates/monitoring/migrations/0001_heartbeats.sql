-- Heartbeat tokens, in the control database's `monitoring` schema. A push monitor is pinged at
-- `/api/v1/heartbeat/<token>` without authentication, so the token must lead to its tenant
-- before any tenant is known: this table maps the token's SHA-256 (the token itself is never
-- stored) to the organization and the monitor. The monitor lives in the tenant's own storage
-- (possibly another database), so there is no foreign key to it: a row outliving its monitor is
-- harmless, as a ping then finds no monitor and is answered 404.
--
-- The organization is `org_id`, not `tenant_id`: this is a control table read across tenants,
-- not a tenant table under row-level security. A hard delete of the organization removes its
-- rows with it.
CREATE TABLE heartbeats (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    org_id uuid NOT NULL REFERENCES control.tenants (id) ON DELETE CASCADE,
    monitor_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, monitor_id)
);
