-- A plan's share of the check workers: the scheduler gives an organization `scheduler_weight`
-- ranks per round where one of weight 1 gets one, so a plan with a higher weight is delayed last
-- when checks queue up. Read by the scheduler's claim (`tenantry_monitoring::scheduler`).
ALTER TABLE plans ADD COLUMN scheduler_weight integer NOT NULL DEFAULT 1
    CHECK (scheduler_weight BETWEEN 1 AND 100);
UPDATE plans SET scheduler_weight = 2 WHERE name = 'pro';
UPDATE plans SET scheduler_weight = 4 WHERE name = 'enterprise';
