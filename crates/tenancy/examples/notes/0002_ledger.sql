-- What happened to each tenant's notes, in order. Append-only: the comment makes the engine's
-- grants leave the runtime role INSERT and SELECT only.

CREATE TABLE ledger (
    tenant_id uuid NOT NULL,
    seq bigint NOT NULL CHECK (seq > 0),
    at timestamptz NOT NULL DEFAULT now(),
    entry text NOT NULL CHECK (length(entry) BETWEEN 1 AND 1000),
    PRIMARY KEY (tenant_id, seq),
    FOREIGN KEY (tenant_id) REFERENCES tenant_settings (tenant_id)
);

COMMENT ON TABLE ledger IS 'append-only: what happened to the notes';

ALTER TABLE ledger ENABLE ROW LEVEL SECURITY;
ALTER TABLE ledger FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ledger
    USING (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));
