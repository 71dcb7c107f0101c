-- The keys that sign access tokens are the owner role's alone: the runtime role, which serves
-- requests, cannot read them, so no statement a request runs (an injection included) can mint
-- tokens. The server loads them with the owner role at start.
COMMENT ON TABLE signing_keys IS
    'owner-only: Ed25519 keys signing access tokens; loaded by the owner role at start';
