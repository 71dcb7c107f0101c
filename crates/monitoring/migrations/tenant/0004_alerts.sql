-- Alerts: where an organization's incidents are announced, and the outbox of those
-- announcements.
--
-- `alert_channels` are the destinations: a webhook (a URL POSTed signed JSON) or an email
-- address. A webhook's signing secret is needed in clear to sign, so it cannot be hashed: it is
-- stored sealed (ChaCha20-Poly1305 under a key of the control database's `monitoring.alert_keys`,
-- a random nonce, the channel id as associated data), with only a short hint in clear.
-- `all_monitors` says the channel announces every monitor's incidents; otherwise those of the
-- monitors listed in `alert_channel_monitors` (deleting a listed monitor removes it from the
-- list, never turning the channel into an all-monitors one).
--
-- `alert_deliveries` is the outbox: one row per channel and incident event, inserted by
-- `tenantry_monitoring::record_result` in the transaction that opens or resolves the incident,
-- so an event is announced if and only if it happened. Its id is the `Tenantry-Delivery` header,
-- the same on every attempt. The payload (the monitor and the incident as they were) is built
-- then; a deliverer claims due rows (`FOR UPDATE SKIP LOCKED`, then a lease in `lease_owner` and
-- `lease_until`), sends them outside any transaction, and records `delivered_at`, or the next
-- attempt after a backoff, or `failed_at` with the last error once it gives up.

CREATE TABLE alert_channels (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind text NOT NULL CHECK (kind IN ('webhook', 'email')),
    url text NULL CHECK (length(url) <= 2000),
    email text NULL CHECK (length(email) BETWEEN 3 AND 254),
    -- The webhook's secret, sealed, and its hint (`whsec_…Ab3x`).
    secret_key_id smallint NULL,
    secret_nonce bytea NULL CHECK (length(secret_nonce) = 12),
    secret_sealed bytea NULL,
    secret_hint text NULL CHECK (length(secret_hint) <= 32),
    all_monitors boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id) REFERENCES tenant_settings (tenant_id),
    CHECK ((secret_sealed IS NULL) = (secret_nonce IS NULL)
        AND (secret_sealed IS NULL) = (secret_key_id IS NULL)
        AND (secret_sealed IS NULL) = (secret_hint IS NULL)),
    CHECK (kind <> 'webhook' OR (url IS NOT NULL AND secret_sealed IS NOT NULL AND email IS NULL)),
    CHECK (kind <> 'email' OR (email IS NOT NULL AND url IS NULL AND secret_sealed IS NULL))
);

-- The list, in creation order.
CREATE INDEX alert_channels_tenant_created_idx ON alert_channels (tenant_id, created_at, id);

CREATE TABLE alert_channel_monitors (
    tenant_id uuid NOT NULL,
    channel_id uuid NOT NULL,
    monitor_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, channel_id, monitor_id),
    FOREIGN KEY (tenant_id) REFERENCES tenant_settings (tenant_id),
    FOREIGN KEY (tenant_id, channel_id) REFERENCES alert_channels (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, monitor_id) REFERENCES monitors (tenant_id, id) ON DELETE CASCADE
);

-- The channels of a monitor, when one opens or resolves an incident.
CREATE INDEX alert_channel_monitors_monitor_idx
    ON alert_channel_monitors (tenant_id, monitor_id);

CREATE TABLE alert_deliveries (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    channel_id uuid NOT NULL,
    incident_id uuid NOT NULL,
    event text NOT NULL CHECK (event IN ('incident.opened', 'incident.resolved')),
    payload jsonb NOT NULL,
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_owner uuid NULL,
    lease_until timestamptz NULL,
    delivered_at timestamptz NULL,
    failed_at timestamptz NULL,
    last_error text NULL CHECK (length(last_error) <= 2000),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, channel_id, incident_id, event),
    FOREIGN KEY (tenant_id) REFERENCES tenant_settings (tenant_id),
    FOREIGN KEY (tenant_id, channel_id) REFERENCES alert_channels (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, incident_id) REFERENCES incidents (tenant_id, id) ON DELETE CASCADE,
    CHECK (delivered_at IS NULL OR failed_at IS NULL)
);

-- What is left to deliver, soonest first.
CREATE INDEX alert_deliveries_pending_idx ON alert_deliveries (tenant_id, next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
-- Pruning what was delivered or given up long ago.
CREATE INDEX alert_deliveries_created_idx ON alert_deliveries (tenant_id, created_at);
-- The cascade from a deleted incident.
CREATE INDEX alert_deliveries_incident_idx ON alert_deliveries (tenant_id, incident_id);

ALTER TABLE alert_channels ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_channels FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON alert_channels
    USING (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));

ALTER TABLE alert_channel_monitors ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_channel_monitors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON alert_channel_monitors
    USING (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));

ALTER TABLE alert_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON alert_deliveries
    USING (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));
