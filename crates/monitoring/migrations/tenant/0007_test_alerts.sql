-- A test alert: a delivery an organization's member sends to one channel from the console, to
-- check that the webhook or the mailbox receives it. It announces no incident (its incident_id
-- is NULL, and only a test alert's is) and is delivered like any other.
ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_event_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_event_check
    CHECK (event IN ('incident.opened', 'incident.resolved', 'alert.test'));
ALTER TABLE alert_deliveries ALTER COLUMN incident_id DROP NOT NULL;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_test_check
    CHECK ((event = 'alert.test') = (incident_id IS NULL));
