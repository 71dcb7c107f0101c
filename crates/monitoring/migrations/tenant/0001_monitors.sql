-- A tenant's monitors. Runs with search_path set to the tenant schema, after the engine's set
-- (`tenant_settings`); the same text builds the shared, schema and database tiers.

CREATE TABLE monitors (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind text NOT NULL CHECK (kind IN ('http', 'keyword', 'tcp', 'heartbeat')),
    target text NULL,
    interval_seconds integer NOT NULL DEFAULT 60 CHECK (interval_seconds > 0),
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id) REFERENCES tenant_settings (tenant_id)
);

CREATE INDEX monitors_tenant_created_idx ON monitors (tenant_id, created_at, id);

ALTER TABLE monitors ENABLE ROW LEVEL SECURITY;
ALTER TABLE monitors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON monitors
    USING (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));
