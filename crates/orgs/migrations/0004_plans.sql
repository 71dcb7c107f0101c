-- Plans: named sets of limits and feature flags, and each organization's overrides of its
-- plan's values, key by key. A limit of null means unlimited.

CREATE TABLE plans (
    name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,31}$'),
    position integer NOT NULL,
    limits jsonb NOT NULL CHECK (jsonb_typeof(limits) = 'object'),
    features jsonb NOT NULL CHECK (jsonb_typeof(features) = 'object')
);

INSERT INTO plans (name, position, limits, features) VALUES
    ('free', 1,
     '{"max_users": 5, "max_monitors": 20, "max_agents": 1, "max_api_keys": 2,
       "min_check_interval_s": 60, "api_requests_per_minute": 600, "retention_days": 7}',
     '{"status_pages": true, "webhook_alerts": true, "email_alerts": true, "agents": false,
       "audit_log": true, "export": true}'),
    ('pro', 2,
     '{"max_users": 50, "max_monitors": 500, "max_agents": 10, "max_api_keys": 20,
       "min_check_interval_s": 30, "api_requests_per_minute": 6000, "retention_days": 90}',
     '{"status_pages": true, "webhook_alerts": true, "email_alerts": true, "agents": true,
       "audit_log": true, "export": true}'),
    ('enterprise', 3,
     '{"max_users": null, "max_monitors": null, "max_agents": null, "max_api_keys": null,
       "min_check_interval_s": 10, "api_requests_per_minute": 60000, "retention_days": 400}',
     '{"status_pages": true, "webhook_alerts": true, "email_alerts": true, "agents": true,
       "audit_log": true, "export": true}');

CREATE TABLE plan_overrides (
    org_id uuid PRIMARY KEY REFERENCES control.tenants (id) ON DELETE CASCADE,
    limits jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(limits) = 'object'),
    features jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(features) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now()
);
