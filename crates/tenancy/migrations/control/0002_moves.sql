-- Moves of tenants between tiers in progress: where the tenant comes from, where it goes, and how
-- far the move got ('copying' until the registry names the new placement, 'switched' until the
-- old copy is removed). A move cut off anywhere is resumed from this row.

CREATE TABLE tenant_moves (
    id uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    from_isolation text NOT NULL CHECK (from_isolation IN ('shared', 'schema', 'database')),
    from_database text NOT NULL,
    from_schema text NOT NULL,
    to_isolation text NOT NULL CHECK (to_isolation IN ('shared', 'schema', 'database')),
    to_database text NOT NULL,
    to_schema text NOT NULL,
    phase text NOT NULL CHECK (phase IN ('copying', 'switched')),
    write_pause_ms double precision NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (from_isolation <> to_isolation)
);
