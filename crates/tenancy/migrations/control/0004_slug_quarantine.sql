-- A slug an organization let go of (renamed away, or purged with the organization) stays
-- reserved for 30 days, so links, bookmarks and API clients that name it never reach someone
-- else's organization. Only the organization that renamed away from it may take it back
-- meanwhile; a purged organization's id is not kept (only its former slug, for 30 days).
CREATE TABLE control.released_slugs (
    slug text PRIMARY KEY,
    org_id uuid NULL,
    released_at timestamptz NOT NULL DEFAULT now()
);

-- Security definer: a rename by the runtime role records the release in a table that role
-- cannot write itself.
CREATE FUNCTION control.release_slug() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, control AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- A tenant that never became active served no one: nothing names its slug.
        IF OLD.provision_step <> 'activated' THEN
            RETURN NULL;
        END IF;
        INSERT INTO control.released_slugs (slug, org_id, released_at)
        VALUES (OLD.slug, NULL, now())
        ON CONFLICT (slug) DO UPDATE SET org_id = NULL, released_at = now();
    ELSIF OLD.slug IS DISTINCT FROM NEW.slug THEN
        INSERT INTO control.released_slugs (slug, org_id, released_at)
        VALUES (OLD.slug, OLD.id, now())
        ON CONFLICT (slug) DO UPDATE SET org_id = excluded.org_id, released_at = now();
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tenants_release_slug AFTER UPDATE OF slug OR DELETE ON control.tenants
    FOR EACH ROW EXECUTE FUNCTION control.release_slug();

-- A quarantined slug is taken, as far as anyone else is concerned (the same error as a slug
-- in use: unique_violation).
CREATE FUNCTION control.refuse_quarantined_slug() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, control AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.slug = NEW.slug THEN
        RETURN NEW;
    END IF;
    IF EXISTS (
        SELECT 1 FROM control.released_slugs r
        WHERE r.slug = NEW.slug AND r.org_id IS DISTINCT FROM NEW.id
          AND r.released_at > now() - interval '30 days'
    ) THEN
        RAISE EXCEPTION 'the slug % was released less than 30 days ago', NEW.slug
            USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER tenants_refuse_quarantined_slug BEFORE INSERT OR UPDATE OF slug ON control.tenants
    FOR EACH ROW EXECUTE FUNCTION control.refuse_quarantined_slug();
