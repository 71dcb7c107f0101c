-- Invitations to join an organization. The token travels only in the email; the table keeps its
-- SHA-256. Resending replaces the token: the old hash moves to superseded_invitation_tokens, so
-- the old link answers "gone" rather than "unknown".

CREATE TABLE invitations (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL REFERENCES control.tenants (id) ON DELETE CASCADE,
    email text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    role text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    token_hash bytea NOT NULL UNIQUE,
    invited_by uuid NULL REFERENCES identity.users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    accepted_at timestamptz NULL,
    accepted_by uuid NULL REFERENCES identity.users (id) ON DELETE SET NULL,
    revoked_at timestamptz NULL,
    CHECK (accepted_at IS NULL OR revoked_at IS NULL)
);
-- One open invitation per address and organization.
CREATE UNIQUE INDEX invitations_open_idx ON invitations (org_id, lower(email))
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

CREATE TABLE superseded_invitation_tokens (
    token_hash bytea PRIMARY KEY,
    invitation_id uuid NOT NULL REFERENCES invitations (id) ON DELETE CASCADE
);
CREATE INDEX superseded_invitation_tokens_invitation_idx
    ON superseded_invitation_tokens (invitation_id);
