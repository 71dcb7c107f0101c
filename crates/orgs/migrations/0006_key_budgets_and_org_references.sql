-- 1. An API key's own rate limit: requests per minute, on top of its organization's
-- `api_requests_per_minute` (a request made with the key must pass both). NULL: only the
-- organization's budget applies.

ALTER TABLE api_keys
    ADD COLUMN requests_per_minute integer NULL CHECK (requests_per_minute >= 1);

-- 2. The identity tables name organizations without a foreign key (identity migrates before
-- the organizations exist as such): a user's default organization and the organization a
-- refresh token carries. A hard-deleted organization must leave no reference behind, so both
-- now reference the registry and are cleared with it. References to organizations already
-- gone are cleared first.

UPDATE identity.users u SET default_org_id = NULL
WHERE default_org_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM control.tenants t WHERE t.id = u.default_org_id);
ALTER TABLE identity.users
    ADD CONSTRAINT users_default_org_fkey FOREIGN KEY (default_org_id)
    REFERENCES control.tenants (id) ON DELETE SET NULL;

UPDATE identity.refresh_tokens r SET org_id = NULL
WHERE org_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM control.tenants t WHERE t.id = r.org_id);
ALTER TABLE identity.refresh_tokens
    ADD CONSTRAINT refresh_tokens_org_fkey FOREIGN KEY (org_id)
    REFERENCES control.tenants (id) ON DELETE SET NULL;
CREATE INDEX refresh_tokens_org_idx ON identity.refresh_tokens (org_id) WHERE org_id IS NOT NULL;
