-- Announce changes of what requests cache (see control.notify_invalidation).
CREATE TRIGGER memberships_invalidate AFTER INSERT OR UPDATE OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION control.notify_invalidation('member', 'org_id', 'user_id');
CREATE TRIGGER api_keys_invalidate AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION control.notify_invalidation('key', 'id');
CREATE TRIGGER plans_invalidate AFTER INSERT OR UPDATE OR DELETE ON plans
    FOR EACH ROW EXECUTE FUNCTION control.notify_invalidation('plan', 'name');
CREATE TRIGGER plan_overrides_invalidate AFTER INSERT OR UPDATE OR DELETE ON plan_overrides
    FOR EACH ROW EXECUTE FUNCTION control.notify_invalidation('tenant', 'org_id');
