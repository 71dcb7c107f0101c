-- API requests per organization and calendar month (UTC), added to in batches by each server
-- instance.

CREATE TABLE api_usage (
    org_id uuid NOT NULL REFERENCES control.tenants (id) ON DELETE CASCADE,
    period_start date NOT NULL,
    api_requests bigint NOT NULL DEFAULT 0 CHECK (api_requests >= 0),
    PRIMARY KEY (org_id, period_start)
);
