-- Announce session changes (a logout, a revocation) to the caches of every instance.
CREATE TRIGGER sessions_invalidate AFTER INSERT OR UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION control.notify_invalidation('session', 'id');
