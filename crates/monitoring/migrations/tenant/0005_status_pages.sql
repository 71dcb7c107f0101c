-- Status pages: a page an organization may publish at /status/<org slug>/<page slug>, showing
-- chosen monitors with their status and 24-hour uptime. `status_pages` holds each page (its slug,
-- unique within the tenant; its title; whether it is public); `status_page_monitors` the monitors
-- it shows, in `position` order. Deleting a page, or a monitor, removes its rows here.

CREATE TABLE status_pages (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    slug text NOT NULL CHECK (
        length(slug) BETWEEN 2 AND 63
        AND slug ~ '^[a-z][a-z0-9-]*[a-z0-9]$'
        AND strpos(slug, '--') = 0
    ),
    title text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    public boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT status_pages_slug_key UNIQUE (tenant_id, slug),
    FOREIGN KEY (tenant_id) REFERENCES tenant_settings (tenant_id)
);

-- The list of pages, oldest first.
CREATE INDEX status_pages_tenant_created_idx ON status_pages (tenant_id, created_at, id);

CREATE TABLE status_page_monitors (
    tenant_id uuid NOT NULL,
    page_id uuid NOT NULL,
    monitor_id uuid NOT NULL,
    position integer NOT NULL CHECK (position >= 0),
    PRIMARY KEY (tenant_id, page_id, monitor_id),
    UNIQUE (tenant_id, page_id, position),
    FOREIGN KEY (tenant_id) REFERENCES tenant_settings (tenant_id),
    FOREIGN KEY (tenant_id, page_id) REFERENCES status_pages (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT status_page_monitors_monitor_fkey FOREIGN KEY (tenant_id, monitor_id)
        REFERENCES monitors (tenant_id, id) ON DELETE CASCADE
);

-- Deleting a monitor finds the pages showing it.
CREATE INDEX status_page_monitors_monitor_idx ON status_page_monitors (tenant_id, monitor_id);

ALTER TABLE status_pages ENABLE ROW LEVEL SECURITY;
ALTER TABLE status_pages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON status_pages
    USING (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));

ALTER TABLE status_page_monitors ENABLE ROW LEVEL SECURITY;
ALTER TABLE status_page_monitors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON status_page_monitors
    USING (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid));
