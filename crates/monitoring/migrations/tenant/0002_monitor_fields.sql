-- The monitor fields of the API: a timeout, the keyword of keyword checks, and the status.

ALTER TABLE monitors ADD COLUMN timeout_seconds integer NOT NULL DEFAULT 30
    CHECK (timeout_seconds BETWEEN 1 AND 120);
ALTER TABLE monitors ADD COLUMN keyword text NULL CHECK (length(keyword) BETWEEN 1 AND 1000);
ALTER TABLE monitors ADD COLUMN status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'up', 'down'));
