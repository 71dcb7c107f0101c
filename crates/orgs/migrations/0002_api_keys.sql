-- API keys: secrets of one organization, stored only as SHA-256 hashes, each with a role.

CREATE TABLE api_keys (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL REFERENCES control.tenants (id) ON DELETE CASCADE,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- The first characters of the key, to tell keys apart in lists.
    prefix text NOT NULL,
    key_hash bytea NOT NULL UNIQUE,
    role text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_by uuid NULL REFERENCES identity.users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NULL,
    revoked_at timestamptz NULL
);
CREATE INDEX api_keys_org_idx ON api_keys (org_id);
