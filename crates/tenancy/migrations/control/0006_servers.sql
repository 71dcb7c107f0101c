-- The PostgreSQL servers database-tier tenants are placed on. `default` is the server holding the
-- control database, reached with the engine's own owner options; any other is reached with its
-- URL, sealed with a key derived from the role-password key (`url_sealed`), and shown by
-- `address`, the URL without its password. A draining server takes no new tenants.

CREATE TABLE servers (
    name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,31}$'),
    address text NOT NULL,
    url_sealed bytea NULL,
    -- The most connections all tenant pools of one engine may hold on the server; NULL for the
    -- engine's configured budget.
    max_connections integer NULL CHECK (max_connections > 0),
    draining boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((name = 'default') = (url_sealed IS NULL))
);

INSERT INTO servers (name, address) VALUES ('default', 'the control database''s server');

ALTER TABLE tenants ADD CONSTRAINT tenants_server_fkey FOREIGN KEY (server) REFERENCES servers (name);

ALTER TABLE tenant_moves ADD COLUMN from_server text NOT NULL DEFAULT 'default' REFERENCES servers (name);
ALTER TABLE tenant_moves ADD COLUMN to_server text NOT NULL DEFAULT 'default' REFERENCES servers (name);
ALTER TABLE tenant_moves DROP CONSTRAINT tenant_moves_check;
ALTER TABLE tenant_moves ADD CONSTRAINT tenant_moves_check
    CHECK (from_isolation <> to_isolation OR from_server <> to_server);
