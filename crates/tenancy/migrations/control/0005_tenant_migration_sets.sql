-- Tenant migrations are recorded per set: the engine's own set and each of the application's
-- (`TenantSchema`). `schema_versions` holds a tenant's version in each set, `versions` a scope's.
-- Rows of releases before sets are left NULL here; the engine fills them from the single
-- `schema_version` / `version` when it opens, which is then no longer written.

ALTER TABLE tenants ADD COLUMN schema_versions jsonb;
ALTER TABLE tenants ALTER COLUMN schema_versions SET DEFAULT '{}'::jsonb;
COMMENT ON COLUMN tenants.schema_version IS
    'the single tenant-schema version of releases before migration sets; see schema_versions';
DROP INDEX tenants_pending_migration_idx;

ALTER TABLE schema_scopes ADD COLUMN versions jsonb;
ALTER TABLE schema_scopes ALTER COLUMN versions SET DEFAULT '{}'::jsonb;
