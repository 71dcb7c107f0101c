-- Alert delivery, the control database's part. Deliveries live in each tenant's own storage
-- (possibly a database of its own), so a deliverer cannot find them without visiting every
-- tenant; `alert_wakeups` says which organizations have some to make, and when.
--
-- A wakeup is noted (`tenantry_monitoring::alerts::note_pending`: due now, `noted_at` now)
-- before the tenant transaction that inserts deliveries commits, so a crash after that commit
-- never leaves deliveries nobody knows about; a wakeup whose transaction rolled back finds
-- nothing. A deliverer claims due rows with `FOR UPDATE SKIP LOCKED` and a lease
-- (`lease_owner`, `lease_until`), delivers what is due in the tenant, then moves `due_at` to the
-- tenant's next pending attempt, or deletes the row when nothing is pending and the last note is
-- old enough (`noted_at`) that the transaction which noted it has surely ended: a note younger
-- than that may belong to a transaction that has not committed yet.
--
-- The organization is `org_id`, not `tenant_id`: these are control tables read across tenants,
-- not tenant tables under row-level security. A hard delete of the organization removes its
-- rows with it.
CREATE TABLE alert_wakeups (
    org_id uuid PRIMARY KEY REFERENCES control.tenants (id) ON DELETE CASCADE,
    due_at timestamptz NOT NULL DEFAULT now(),
    noted_at timestamptz NOT NULL DEFAULT now(),
    lease_owner uuid NULL,
    lease_until timestamptz NULL
);
CREATE INDEX alert_wakeups_due_idx ON alert_wakeups (due_at);

-- Keys sealing webhook secrets (ChaCha20-Poly1305, 32 bytes), as `mail.keys` seals email
-- bodies. The first is made at first start with id 1 (`ON CONFLICT DO NOTHING`, so concurrent
-- starts end with one); the newest seals.
CREATE TABLE alert_keys (
    id smallint PRIMARY KEY CHECK (id > 0),
    algorithm text NOT NULL CHECK (algorithm = 'chacha20poly1305'),
    secret bytea NOT NULL CHECK (length(secret) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Deliveries to email channels whose email was queued in `mail.outbox`: inserted in the same
-- transaction as the email, so a delivery attempted again (its deliverer died before recording
-- it delivered) does not queue a second email. Pruned after a week.
CREATE TABLE alert_emails (
    delivery_id uuid PRIMARY KEY,
    org_id uuid NOT NULL REFERENCES control.tenants (id) ON DELETE CASCADE,
    email_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_emails_created_idx ON alert_emails (created_at);
CREATE INDEX alert_emails_org_idx ON alert_emails (org_id);
