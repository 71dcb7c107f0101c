-- API requests per organization and day (UTC), written by the same batched flush as the
-- monthly counts, for the console's chart of requests per day.

CREATE TABLE api_usage_daily (
    org_id uuid NOT NULL REFERENCES control.tenants (id) ON DELETE CASCADE,
    day date NOT NULL,
    api_requests bigint NOT NULL DEFAULT 0 CHECK (api_requests >= 0),
    PRIMARY KEY (org_id, day)
);
