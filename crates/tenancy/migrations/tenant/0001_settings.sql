-- The engine's own tenant table: one row per tenant, created when the tenant is provisioned.
-- Every application table of the tenant schema refers to it (`FOREIGN KEY (tenant_id)
-- REFERENCES tenant_settings`). Runs with search_path set to the tenant schema; the same text
-- builds the shared, schema and database tiers.

CREATE TABLE tenant_settings (
    tenant_id uuid PRIMARY KEY,
    timezone text NOT NULL DEFAULT 'UTC',
    data jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE tenant_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_settings
    USING (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));
