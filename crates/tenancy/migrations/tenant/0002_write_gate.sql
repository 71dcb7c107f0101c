-- The write gate of tenant moves. Every writing TenantTx calls tenant_write_gate(its tenant) as it
-- begins: it waits while a move holds the tenant's gate exclusively (the final switch), and fails
-- with SQLSTATE TM001 once this copy of the tenant is retired, so the door opens the transaction
-- at the tenant's new placement instead. Reading transactions do not pass the gate.

ALTER TABLE tenant_settings ADD COLUMN retired_at timestamptz NULL;

CREATE FUNCTION tenant_write_gate(tenant uuid) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('tenantry.move'), hashtext(tenant::text));
    IF NOT EXISTS (
        SELECT 1 FROM tenant_settings s WHERE s.tenant_id = tenant AND s.retired_at IS NULL
    ) THEN
        RAISE EXCEPTION 'this copy of tenant % is retired', tenant
            USING ERRCODE = 'TM001', HINT = 'the tenant has moved; open the transaction again';
    END IF;
END
$$;
