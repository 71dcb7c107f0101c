-- Checks and their consequences: each check's result, the incidents a run of failures opens, and
-- the monitor's running state (how many failures confirm an outage, the current run of failures,
-- the last check and the last heartbeat ping). Written by `tenantry_monitoring::record_result`
-- under the monitor row's lock.

ALTER TABLE monitors ADD COLUMN confirmations integer NOT NULL DEFAULT 1
    CHECK (confirmations BETWEEN 1 AND 10);
ALTER TABLE monitors ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0
    CHECK (consecutive_failures >= 0);
ALTER TABLE monitors ADD COLUMN last_checked_at timestamptz NULL;
ALTER TABLE monitors ADD COLUMN last_ping_at timestamptz NULL;

-- One row per check slot: (monitor_id, due_at) is the idempotency key of a check, so a slot run
-- twice (a lease taken over, a retried write) is recorded once.
CREATE TABLE check_results (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    monitor_id uuid NOT NULL,
    due_at timestamptz NOT NULL,
    checked_at timestamptz NOT NULL,
    ok boolean NOT NULL,
    latency_ms integer NULL CHECK (latency_ms >= 0),
    status_code integer NULL CHECK (status_code BETWEEN 100 AND 999),
    error text NULL CHECK (length(error) <= 2000),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, monitor_id, due_at),
    FOREIGN KEY (tenant_id) REFERENCES tenant_settings (tenant_id),
    FOREIGN KEY (tenant_id, monitor_id) REFERENCES monitors (tenant_id, id) ON DELETE CASCADE
);

-- The latest results of a monitor, and its results in a time range, newest first.
CREATE INDEX check_results_monitor_checked_idx
    ON check_results (tenant_id, monitor_id, checked_at DESC, id DESC);
-- Pruning past the retention, across the tenant's monitors.
CREATE INDEX check_results_tenant_checked_idx ON check_results (tenant_id, checked_at);

CREATE TABLE incidents (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    monitor_id uuid NOT NULL,
    started_at timestamptz NOT NULL,
    resolved_at timestamptz NULL CHECK (resolved_at >= started_at),
    cause text NOT NULL CHECK (length(cause) BETWEEN 1 AND 2000),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id) REFERENCES tenant_settings (tenant_id),
    FOREIGN KEY (tenant_id, monitor_id) REFERENCES monitors (tenant_id, id) ON DELETE CASCADE
);

-- At most one open incident per monitor.
CREATE UNIQUE INDEX incidents_one_open_idx ON incidents (tenant_id, monitor_id)
    WHERE resolved_at IS NULL;
-- A monitor's incidents, newest first.
CREATE INDEX incidents_monitor_started_idx
    ON incidents (tenant_id, monitor_id, started_at DESC, id DESC);

ALTER TABLE check_results ENABLE ROW LEVEL SECURITY;
ALTER TABLE check_results FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON check_results
    USING (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));

ALTER TABLE incidents ENABLE ROW LEVEL SECURITY;
ALTER TABLE incidents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON incidents
    USING (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));
