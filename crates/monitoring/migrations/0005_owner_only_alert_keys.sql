-- The keys sealing webhook secrets are the owner role's alone (see identity's signing keys).
COMMENT ON TABLE alert_keys IS
    'owner-only: keys sealing webhook secrets; loaded by the owner role at start';
