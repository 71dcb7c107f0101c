//! Status pages: an organization's pages listing chosen monitors, in order, and the public view
//! of one (each monitor's name, status and uptime over 24 hours). Every query runs inside a
//! `TenantTx`, so a page can only ever name, and show, the tenant's own monitors.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tenantry_tenancy::TenantTx;
use uuid::Uuid;

use crate::monitors::Invalid;

/// A status page as its organization sees it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StatusPage {
    pub id: Uuid,
    /// Unique within the organization; the page's address is `/status/<org slug>/<slug>`.
    #[schema(example = "main")]
    pub slug: String,
    #[schema(example = "Acme status")]
    pub title: String,
    /// The monitors the page shows, in the order it shows them.
    pub monitor_ids: Vec<Uuid>,
    /// Whether anyone may see the page, without signing in.
    pub public: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "p.id, p.slug, p.title, p.public, p.created_at, p.updated_at,
    ARRAY(SELECT s.monitor_id FROM status_page_monitors s
          WHERE s.tenant_id = p.tenant_id AND s.page_id = p.id ORDER BY s.position) AS monitor_ids";

/// A status page as a client sends it (create and full update).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusPageInput {
    /// 2 to 63 characters: lowercase letters, digits and single dashes, starting with a letter
    /// and not ending with a dash. Unique within the organization.
    #[schema(
        min_length = 2,
        max_length = 63,
        pattern = "^[a-z](-?[a-z0-9])+$",
        example = "main"
    )]
    pub slug: String,
    #[schema(min_length = 1, max_length = 200, example = "Acme status")]
    pub title: String,
    /// Monitors of this organization, in the order the page shows them (at most 100, each
    /// once).
    #[serde(default)]
    #[schema(value_type = Vec<Uuid>, max_items = 100)]
    pub monitor_ids: Vec<String>,
    /// Whether anyone may see the page without signing in.
    #[serde(default)]
    #[schema(default = false)]
    pub public: bool,
}

/// The most monitors one page shows.
pub const MAX_PAGE_MONITORS: usize = 100;

fn invalid(field: &'static str, detail: impl Into<String>) -> Invalid {
    Invalid {
        field,
        detail: detail.into(),
    }
}

/// A status page's slug: 2 to 63 characters, lowercase letters, digits and single dashes,
/// starting with a letter and not ending with a dash (the rule of organization slugs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSlug(String);

impl PageSlug {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let rule = "2 to 63 lowercase letters, digits and single dashes, starting with a letter \
                    and not ending with a dash";
        let bytes = text.as_bytes();
        let valid = (2..=63).contains(&bytes.len())
            && bytes[0].is_ascii_lowercase()
            && bytes[bytes.len() - 1] != b'-'
            && !text.contains("--")
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if valid {
            Ok(Self(text.to_string()))
        } else {
            Err(invalid("slug", rule))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A status page input that passed [`StatusPageInput::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSpec {
    pub slug: PageSlug,
    pub title: String,
    pub monitor_ids: Vec<Uuid>,
    pub public: bool,
}

impl StatusPageInput {
    /// Checks every field that can be checked without the database: whether each monitor is
    /// one of the tenant's is [`create_page`]'s and [`update_page`]'s to say.
    pub fn parse(&self) -> Result<PageSpec, Invalid> {
        let slug = PageSlug::parse(&self.slug)?;
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > 200 {
            return Err(invalid("title", "1 to 200 characters"));
        }
        if self.monitor_ids.len() > MAX_PAGE_MONITORS {
            return Err(invalid(
                "monitor_ids",
                format!("at most {MAX_PAGE_MONITORS} monitors"),
            ));
        }
        let mut monitor_ids: Vec<Uuid> = Vec::with_capacity(self.monitor_ids.len());
        for text in &self.monitor_ids {
            let id: Uuid = text
                .parse()
                .map_err(|_| invalid("monitor_ids", format!("{text:?} is not a monitor id")))?;
            if monitor_ids.contains(&id) {
                return Err(invalid("monitor_ids", format!("{id} is listed twice")));
            }
            monitor_ids.push(id);
        }
        Ok(PageSpec {
            slug,
            title: title.to_string(),
            monitor_ids,
            public: self.public,
        })
    }
}

/// Why a status page could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum StatusPageError {
    /// A field is wrong (a monitor that is not one of the tenant's, named in `monitor_ids`).
    #[error("{}: {}", .0.field, .0.detail)]
    Invalid(Invalid),
    /// Another page of the tenant has this slug.
    #[error("another status page has this slug")]
    SlugTaken,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StatusPageError {
    fn from(e: sqlx::Error) -> Self {
        let constraint = match &e {
            sqlx::Error::Database(db) => db.constraint().map(str::to_owned),
            _ => None,
        };
        match constraint.as_deref() {
            Some("status_pages_slug_key") => StatusPageError::SlugTaken,
            // A monitor deleted between the check and the insert.
            Some("status_page_monitors_monitor_fkey") => StatusPageError::Invalid(invalid(
                "monitor_ids",
                "a monitor of the list was deleted meanwhile",
            )),
            _ => StatusPageError::Unexpected(anyhow::Error::new(e).context("status page query")),
        }
    }
}

/// Fails with `monitor_ids` naming the first id that is not a monitor of the tenant.
async fn check_monitors(tx: &mut TenantTx, ids: &[Uuid]) -> Result<(), StatusPageError> {
    let unknown: Option<Uuid> = sqlx::query_scalar(
        "SELECT u.id FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n)
         WHERE NOT EXISTS (SELECT 1 FROM monitors m WHERE m.id = u.id)
         ORDER BY u.n LIMIT 1",
    )
    .bind(ids)
    .fetch_optional(&mut **tx)
    .await?;
    match unknown {
        Some(id) => Err(StatusPageError::Invalid(invalid(
            "monitor_ids",
            format!("{id} is not a monitor of this organization"),
        ))),
        None => Ok(()),
    }
}

/// Makes `page_id` show exactly `ids`, in that order.
async fn set_monitors(tx: &mut TenantTx, page_id: Uuid, ids: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM status_page_monitors WHERE page_id = $1")
        .bind(page_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO status_page_monitors (tenant_id, page_id, monitor_id, position)
         SELECT $1, $2, u.id, u.n - 1 FROM unnest($3::uuid[]) WITH ORDINALITY AS u(id, n)",
    )
    .bind(tx.tenant_id().as_uuid())
    .bind(page_id)
    .bind(ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Creates a page. On an error the transaction is left unusable: drop it.
pub async fn create_page(
    tx: &mut TenantTx,
    spec: &PageSpec,
) -> Result<StatusPage, StatusPageError> {
    check_monitors(tx, &spec.monitor_ids).await?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO status_pages (tenant_id, id, slug, title, public) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tx.tenant_id().as_uuid())
    .bind(id)
    .bind(spec.slug.as_str())
    .bind(&spec.title)
    .bind(spec.public)
    .execute(&mut **tx)
    .await?;
    set_monitors(tx, id, &spec.monitor_ids).await?;
    get_page(tx, id)
        .await?
        .ok_or_else(|| StatusPageError::Unexpected(anyhow::anyhow!("the new page is not there")))
}

pub async fn get_page(tx: &mut TenantTx, id: Uuid) -> sqlx::Result<Option<StatusPage>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM status_pages p WHERE p.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Up to `limit` pages in creation order, after `cursor`.
pub async fn list_pages(
    tx: &mut TenantTx,
    limit: i64,
    cursor: Option<crate::results::After>,
) -> sqlx::Result<Vec<StatusPage>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM status_pages p
         WHERE ($1::timestamptz IS NULL OR (p.created_at, p.id) > ($1, $2))
         ORDER BY p.created_at, p.id LIMIT $3"
    ))
    .bind(cursor.map(|c| c.at))
    .bind(cursor.map(|c| c.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// Page `id`, locked until the transaction ends.
async fn lock_page(tx: &mut TenantTx, id: Uuid) -> sqlx::Result<Option<StatusPage>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM status_pages p WHERE p.id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// A page before and after a change.
#[derive(Debug, Clone, PartialEq)]
pub struct Replaced {
    pub before: StatusPage,
    pub after: StatusPage,
}

/// Replaces page `id` with `spec`; `None` when there is no such page (whatever `spec` names).
/// On an error the transaction is left unusable: drop it.
pub async fn update_page(
    tx: &mut TenantTx,
    id: Uuid,
    spec: &PageSpec,
) -> Result<Option<Replaced>, StatusPageError> {
    let Some(before) = lock_page(tx, id).await? else {
        return Ok(None);
    };
    check_monitors(tx, &spec.monitor_ids).await?;
    sqlx::query(
        "UPDATE status_pages SET slug = $2, title = $3, public = $4, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(spec.slug.as_str())
    .bind(&spec.title)
    .bind(spec.public)
    .execute(&mut **tx)
    .await?;
    set_monitors(tx, id, &spec.monitor_ids).await?;
    let after = get_page(tx, id)
        .await?
        .ok_or_else(|| StatusPageError::Unexpected(anyhow::anyhow!("the page is not there")))?;
    Ok(Some(Replaced { before, after }))
}

/// Deletes page `id` (and its list of monitors); the page as it was, or `None` when there is no
/// such page.
pub async fn delete_page(tx: &mut TenantTx, id: Uuid) -> sqlx::Result<Option<StatusPage>> {
    let Some(before) = lock_page(tx, id).await? else {
        return Ok(None);
    };
    sqlx::query("DELETE FROM status_pages WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(Some(before))
}

/// A public page as anyone sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PublicPage {
    #[schema(example = "Acme status")]
    pub title: String,
    /// The page's monitors, in its order.
    pub monitors: Vec<PublicMonitor>,
}

/// A monitor as a public page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PublicMonitor {
    #[schema(example = "Homepage")]
    pub name: String,
    /// `up`, `down` or `pending` (not checked yet).
    #[schema(pattern = "^(up|down|pending)$", example = "up")]
    pub status: String,
    /// The percentage of passed checks among the monitor's checks of the last 24 hours, 0 to
    /// 100, to 2 decimals; `null` when there were none.
    #[schema(minimum = 0, maximum = 100, example = 99.93)]
    pub uptime_24h: Option<f64>,
}

/// The window [`public_page`] reports uptime over.
pub const UPTIME_WINDOW: TimeDelta = TimeDelta::hours(24);

/// Page `slug` as the public sees it at `at`, if it exists and is public: its title, and each of
/// its monitors with the share of passed checks in the [`UPTIME_WINDOW`] before `at`.
pub async fn public_page(
    tx: &mut TenantTx,
    slug: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<Option<PublicPage>> {
    let page: Option<(Uuid, String)> =
        sqlx::query_as("SELECT id, title FROM status_pages WHERE slug = $1 AND public")
            .bind(slug)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((id, title)) = page else {
        return Ok(None);
    };
    // One query for every monitor; each one's window is a range of the index on
    // (tenant_id, monitor_id, checked_at DESC, id DESC).
    let monitors = sqlx::query_as(
        "SELECT m.name, m.status,
                (SELECT round(100.0 * count(*) FILTER (WHERE r.ok) / nullif(count(*), 0), 2)::float8
                 FROM check_results r
                 WHERE r.tenant_id = m.tenant_id AND r.monitor_id = m.id
                   AND r.checked_at > $2 AND r.checked_at <= $3) AS uptime_24h
         FROM status_page_monitors s
         JOIN monitors m ON m.tenant_id = s.tenant_id AND m.id = s.monitor_id
         WHERE s.page_id = $1
         ORDER BY s.position",
    )
    .bind(id)
    .bind(at - UPTIME_WINDOW)
    .bind(at)
    .fetch_all(&mut **tx)
    .await?;
    Ok(Some(PublicPage { title, monitors }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(slug: &str, title: &str, monitor_ids: &[&str]) -> StatusPageInput {
        StatusPageInput {
            slug: slug.into(),
            title: title.into(),
            monitor_ids: monitor_ids.iter().map(|s| s.to_string()).collect(),
            public: false,
        }
    }

    #[test]
    fn good_slugs_parse() {
        for slug in ["ab", "main", "api-v2", "status-2024", &"a".repeat(63)] {
            assert_eq!(PageSlug::parse(slug).unwrap().as_str(), slug);
        }
    }

    #[test]
    fn bad_slugs_are_refused() {
        for slug in [
            "",
            "a",
            "Main",
            "-main",
            "main-",
            "ma--in",
            "2024",
            "mäin",
            "ma in",
            "ma_in",
            &"a".repeat(64),
        ] {
            assert_eq!(PageSlug::parse(slug).unwrap_err().field, "slug", "{slug:?}");
        }
    }

    #[test]
    fn inputs_parse_to_specs() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let spec = input("main", "  Acme  ", &[&b.to_string(), &a.to_string()])
            .parse()
            .unwrap();
        assert_eq!(spec.title, "Acme");
        assert_eq!(spec.monitor_ids, vec![b, a]);
        assert!(!spec.public);
    }

    #[test]
    fn bad_inputs_name_the_field() {
        let field = |i: StatusPageInput| i.parse().unwrap_err().field;
        assert_eq!(field(input("Main", "t", &[])), "slug");
        assert_eq!(field(input("main", " ", &[])), "title");
        assert_eq!(field(input("main", &"x".repeat(201), &[])), "title");
        assert_eq!(field(input("main", "t", &["nope"])), "monitor_ids");
        let id = Uuid::now_v7().to_string();
        assert_eq!(field(input("main", "t", &[&id, &id])), "monitor_ids");
        let many: Vec<String> = (0..=MAX_PAGE_MONITORS)
            .map(|_| Uuid::now_v7().to_string())
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(field(input("main", "t", &many)), "monitor_ids");
    }
}
