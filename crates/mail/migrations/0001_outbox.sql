-- The email outbox and the key that seals its bodies. Runs with search_path = mail, in the
-- control database. An email is inserted in the transaction of the change that causes it and
-- sent by a background sender once that transaction has committed.

-- Keys sealing the bodies (ChaCha20-Poly1305, 32 bytes). The first is made at first start with
-- id 1 (`ON CONFLICT DO NOTHING`, so concurrent starts end with one); the newest seals.
CREATE TABLE keys (
    id smallint PRIMARY KEY CHECK (id > 0),
    algorithm text NOT NULL CHECK (algorithm = 'chacha20poly1305'),
    secret bytea NOT NULL CHECK (length(secret) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The organization is `org_id`, not `tenant_id`: this is a control table read across tenants
-- by the sender, not a tenant table under row-level security. A hard delete of the
-- organization removes its emails with it.
CREATE TABLE outbox (
    id uuid PRIMARY KEY,
    org_id uuid NULL REFERENCES control.tenants (id) ON DELETE CASCADE,
    recipient text NOT NULL CHECK (length(recipient) BETWEEN 3 AND 254),
    subject text NOT NULL CHECK (length(subject) <= 998),
    -- The body, sealed with `key_id` under a random nonce (the row id is the associated data);
    -- erased once an SMTP server has accepted the email.
    key_id smallint NULL REFERENCES keys (id),
    nonce bytea NULL CHECK (length(nonce) = 12),
    body bytea NULL,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'sent', 'dev_mailbox', 'failed')),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz NULL,
    CHECK ((body IS NULL) = (nonce IS NULL) AND (body IS NULL) = (key_id IS NULL)),
    CHECK (status <> 'queued' OR body IS NOT NULL)
);
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE status = 'queued';
CREATE INDEX outbox_created_idx ON outbox (created_at DESC, id DESC);
CREATE INDEX outbox_org_idx ON outbox (org_id) WHERE org_id IS NOT NULL;
