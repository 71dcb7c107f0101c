-- The tenant registry and the state of the shared tenant schema. Runs with search_path = control.

CREATE TABLE tenants (
    id uuid PRIMARY KEY,
    slug text NOT NULL CONSTRAINT tenants_slug_key UNIQUE
        CHECK (slug ~ '^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){1,62}$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    plan text NOT NULL DEFAULT 'free' CHECK (plan ~ '^[a-z][a-z0-9_-]{0,31}$'),
    isolation text NOT NULL CHECK (isolation IN ('shared', 'schema', 'database')),
    -- Placement: which PostgreSQL server, which database, which schema.
    server text NOT NULL DEFAULT 'default',
    database_name text NOT NULL,
    schema_name text NOT NULL,
    status text NOT NULL DEFAULT 'provisioning'
        CHECK (status IN ('provisioning', 'active', 'suspended', 'deleted', 'failed')),
    status_before_delete text NULL CHECK (status_before_delete IN ('active', 'suspended')),
    provision_step text NOT NULL DEFAULT 'registered'
        CHECK (provision_step IN ('registered', 'role_created', 'storage_created',
                                  'tables_created', 'seeded', 'activated')),
    last_error text NULL,
    purging boolean NOT NULL DEFAULT false,
    schema_version integer NOT NULL DEFAULT 0,
    settings jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz NULL,
    CHECK ((status = 'deleted') = (deleted_at IS NOT NULL))
);

CREATE INDEX tenants_status_idx ON tenants (status);
CREATE INDEX tenants_pending_migration_idx ON tenants (isolation, schema_version);

-- The version of tenant-schema migrations applied to a scope ('shared' is the shared schema).
CREATE TABLE schema_scopes (
    scope text PRIMARY KEY,
    version integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Keys only the owner role reads (the role-password key).
CREATE TABLE secrets (
    name text PRIMARY KEY,
    value bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
