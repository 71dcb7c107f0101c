-- A test alert: a delivery an organization's member sends to one channel from the console, to
-- check that the webhook or the mailbox receives it. It names no incident of the tenant's (its
-- incident_id is made up for it) and is delivered like any other.
ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_event_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_event_check
    CHECK (event IN ('incident.opened', 'incident.resolved', 'alert.test'));
