-- The control-side audit log. Runs with search_path = audit, in the control database. One
-- hash-chained entry per organization-level change (members, invitations, API keys, profile,
-- plan, lifecycle), written in the transaction of the change; `org_id` NULL is the platform's
-- own log. The organization is `org_id`, not `tenant_id`: a control table outside row-level
-- security. A hard delete of the organization removes its log with it.

CREATE TABLE entries (
    id uuid PRIMARY KEY,
    org_id uuid NULL REFERENCES control.tenants (id) ON DELETE CASCADE,
    -- 1, 2, 3... per chain (an organization, or the platform).
    seq bigint NOT NULL CHECK (seq > 0),
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
    hash bytea NOT NULL CHECK (length(hash) = 32)
);
-- One chain per organization and one for the platform: (org_id, seq) unique with the NULLs of
-- the platform equal, written as an expression so it holds before PostgreSQL 15 too.
CREATE UNIQUE INDEX entries_chain_seq_key
    ON entries ((coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid)), seq);
CREATE INDEX entries_chain_at_idx
    ON entries ((coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid)), at DESC, id DESC);

COMMENT ON TABLE entries IS
    'append-only: hash-chained audit entries; the runtime role may insert and read only';

-- The last entry of each chain, updated in the transaction of every append, so removing the
-- newest entries is noticed too. The runtime role may update it: it is a second place someone
-- removing entries must also change, not a proof.
CREATE TABLE heads (
    org_id uuid NULL REFERENCES control.tenants (id) ON DELETE CASCADE,
    seq bigint NOT NULL CHECK (seq > 0),
    hash bytea NOT NULL CHECK (length(hash) = 32),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX heads_chain_key
    ON heads ((coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid)));
