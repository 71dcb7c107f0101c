-- Who belongs to which organization, with which role. Runs with search_path = orgs, in the
-- control database, after the identity schema. An organization is a tenant of the registry:
-- deleting its registry row (a hard delete) removes its memberships with it.

CREATE TABLE memberships (
    org_id uuid NOT NULL REFERENCES control.tenants (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);
