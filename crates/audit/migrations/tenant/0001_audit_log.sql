-- The tenant-side audit log: one hash-chained entry per change of the tenant's own data
-- (monitors, later alert channels, status pages, agents), written in the TenantTx of the change
-- by `tenantry_audit::record_in_tenant`. Append-only: the comment below makes
-- `grant_tenant_tables` revoke UPDATE, DELETE and TRUNCATE from the tenant's runtime role.

CREATE TABLE audit_log (
    tenant_id uuid NOT NULL,
    -- 1, 2, 3... per tenant: the position in the tenant's chain.
    seq bigint NOT NULL CHECK (seq > 0),
    id uuid NOT NULL,
    at timestamptz NOT NULL,
    actor_kind text NOT NULL CHECK (actor_kind IN ('user', 'api_key', 'system')),
    actor_id uuid NULL CHECK (actor_kind = 'system' OR actor_id IS NOT NULL),
    action text NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    target_kind text NOT NULL CHECK (length(target_kind) BETWEEN 1 AND 100),
    target_id text NULL,
    before jsonb NULL,
    after jsonb NULL,
    ip text NULL,
    user_agent text NULL,
    request_id text NULL,
    -- The previous entry's hash (32 zero bytes for the first), and SHA-256 of it followed by the
    -- canonical bytes of this entry.
    prev_hash bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (tenant_id, seq),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id) REFERENCES tenant_settings (tenant_id)
);

CREATE INDEX audit_log_tenant_at_idx ON audit_log (tenant_id, at DESC, id DESC);

COMMENT ON TABLE audit_log IS
    'append-only: the tenant''s hash-chained audit log; the runtime role may insert and read only';

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log
    USING (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));
