-- Cache invalidation: a row trigger announcing '<topic>:<key>' on the channel
-- tenantry_invalidate when a cached row changes, delivered when the change commits.
-- Arguments: the topic, then one or two columns whose values form the key.
CREATE FUNCTION control.notify_invalidation() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed jsonb;
    payload text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := to_jsonb(OLD);
    ELSE
        changed := to_jsonb(NEW);
    END IF;
    payload := TG_ARGV[0] || ':' || coalesce(changed ->> TG_ARGV[1], '');
    IF TG_NARGS > 2 THEN
        payload := payload || ':' || coalesce(changed ->> TG_ARGV[2], '');
    END IF;
    PERFORM pg_notify('tenantry_invalidate', payload);
    -- A key that changed (a renamed slug) names the old row too.
    IF TG_OP = 'UPDATE' THEN
        changed := to_jsonb(OLD);
        PERFORM pg_notify('tenantry_invalidate',
            TG_ARGV[0] || ':' || coalesce(changed ->> TG_ARGV[1], '')
            || CASE WHEN TG_NARGS > 2 THEN ':' || coalesce(changed ->> TG_ARGV[2], '') ELSE '' END);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tenants_invalidate AFTER INSERT OR UPDATE OR DELETE ON control.tenants
    FOR EACH ROW EXECUTE FUNCTION control.notify_invalidation('tenant', 'id');
