-- The keys sealing email bodies are the owner role's alone (see identity's signing keys).
COMMENT ON TABLE keys IS
    'owner-only: keys sealing queued email bodies; loaded by the owner role at start';
