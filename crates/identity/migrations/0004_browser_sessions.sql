-- Browser sessions: a session signed in through the console is kept in a cookie holding one of
-- its refresh tokens (rotated as it ages, with the same reuse rule as the API's). Each session
-- records what it is, which browser holds it and when it was last used, for the "Sessions" list;
-- a browser session also has the secret its forms' CSRF tokens are made from.
ALTER TABLE sessions
    ADD COLUMN kind text NOT NULL DEFAULT 'api' CHECK (kind IN ('api', 'browser')),
    ADD COLUMN user_agent text NULL CHECK (length(user_agent) <= 300),
    ADD COLUMN last_seen_at timestamptz NULL,
    ADD COLUMN csrf_secret bytea NULL;
ALTER TABLE sessions DROP CONSTRAINT sessions_revoked_reason_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_revoked_reason_check
    CHECK (revoked_reason IN ('logout', 'reuse', 'admin', 'user'));
