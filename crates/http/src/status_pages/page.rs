//! A public status page as the answer shows it: JSON when the client asks for it, else a
//! self-contained HTML page (inline CSS, no script, no external reference, every user string
//! escaped) under a `Content-Security-Policy` that allows nothing else.

use axum::Json;
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use tenantry_monitoring::{PublicMonitor, PublicPage};

/// What the HTML may load: its own inline style, nothing else.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";
/// How long a shown page may be cached.
const CACHED: &str = "public, max-age=30";

/// Whether the client asked for JSON: `application/json` in `Accept`, with a quality no lower
/// than `text/html`'s. Browsers, and clients that name nothing, get HTML.
pub(super) fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let (mut json, mut html) = (0.0_f32, 0.0_f32);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/json" => json = json.max(quality),
            "text/html" | "application/xhtml+xml" => html = html.max(quality),
            _ => {}
        }
    }
    json > 0.0 && json >= html
}

/// The headers of every answer of the public route, found or not: it varies with `Accept`, and
/// what it shows may not load anything.
pub(super) fn with_page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(VARY, HeaderValue::from_static("accept"));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Page `shown`, as JSON or HTML, generated at `at`.
/// A client that already has this very answer (`If-None-Match` with its `ETag`) gets `304`.
pub(super) fn found(
    json: bool,
    shown: &PublicPage,
    at: DateTime<Utc>,
    request: &HeaderMap,
) -> Response {
    // The tag covers what the page shows, not when it was rendered.
    let tag = {
        use sha2::{Digest, Sha256};
        let content = serde_json::to_vec(shown).unwrap_or_default();
        let digest = Sha256::digest(&content);
        format!(
            "\"{}{}\"",
            if json { "j" } else { "h" },
            hex::encode(&digest[..12])
        )
    };
    let matches = request
        .get(axum::http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else if json {
        Json(shown).into_response()
    } else {
        Html(html(shown, at)).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(CACHED));
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        headers.insert(axum::http::header::ETAG, tag);
    }
    with_page_headers(response)
}

/// The HTML answer when there is no public page at the address (whatever the reason).
pub(super) fn not_found() -> Response {
    let body = shell(
        "Page not found",
        "<main><h1>Page not found</h1>\
         <p class=\"note\">There is no public status page at this address.</p></main>",
    );
    with_page_headers((StatusCode::NOT_FOUND, Html(body)).into_response())
}

/// `text` with every character that means something in HTML (text or attribute) escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The overall state of a page, from its monitors.
fn banner(monitors: &[PublicMonitor]) -> (&'static str, String) {
    let count = |status: &str| monitors.iter().filter(|m| m.status == status).count();
    let (down, up) = (count("down"), count("up"));
    match (monitors.len(), down, up) {
        (0, _, _) => ("pending", "No monitors on this page yet".to_string()),
        (all, 0, up) if up == all => ("up", "All systems operational".to_string()),
        (all, 0, _) => ("pending", format!("{} of {all} not checked yet", all - up)),
        (all, down, _) => ("down", format!("{down} of {all} down")),
    }
}

fn status_label(status: &str) -> (&'static str, &'static str) {
    match status {
        "up" => ("up", "Operational"),
        "down" => ("down", "Down"),
        _ => ("pending", "Not checked yet"),
    }
}

fn monitor_row(m: &PublicMonitor) -> String {
    let (class, label) = status_label(&m.status);
    let uptime = match m.uptime_24h {
        Some(u) => format!("{u:.2}% uptime in the last 24 hours"),
        None => "No checks in the last 24 hours".to_string(),
    };
    format!(
        "<li class=\"monitor\"><span class=\"dot {class}\" aria-hidden=\"true\"></span>\
         <span class=\"name\">{name}</span>\
         <span class=\"badge {class}\">{label}</span>\
         <span class=\"uptime\">{uptime}</span></li>",
        name = escape(&m.name),
    )
}

fn html(shown: &PublicPage, at: DateTime<Utc>) -> String {
    let title = escape(&shown.title);
    let (state, summary) = banner(&shown.monitors);
    let rows: String = shown.monitors.iter().map(monitor_row).collect();
    let list = if rows.is_empty() {
        String::new()
    } else {
        format!("<ul class=\"monitors\" aria-label=\"Monitors\">{rows}</ul>")
    };
    let body = format!(
        "<main><h1>{title}</h1>\
         <p class=\"banner {state}\" role=\"status\">{summary}</p>{list}\
         <footer><p>Generated <time datetime=\"{stamp}\">{shown_at}</time></p></footer></main>",
        stamp = at.to_rfc3339_opts(SecondsFormat::Secs, true),
        shown_at = at.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    shell(&shown.title, &body)
}

/// A whole HTML document around `body`, with the page's one stylesheet; `title` is escaped here.
fn shell(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{title}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        title = escape(title),
    )
}

/// The stylesheet: system fonts, light and dark, status never shown by colour alone.
const STYLE: &str = "\
:root{--bg:#f6f8fa;--card:#fff;--text:#1f2328;--muted:#59636e;--line:#d1d9e0;\
--up:#1a7f37;--up-bg:#dafbe1;--down:#cf222e;--down-bg:#ffebe9;--pending:#7d4e00;--pending-bg:#fff8c5}\
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#151b23;--text:#f0f6fc;\
--muted:#9198a1;--line:#3d444d;--up:#3fb950;--up-bg:#12261e;--down:#f85149;--down-bg:#2d1214;\
--pending:#d29922;--pending-bg:#272115}}\
*{box-sizing:border-box}\
body{margin:0;background:var(--bg);color:var(--text);\
font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
main{max-width:44rem;margin:0 auto;padding:2.5rem 1rem}\
h1{font-size:1.75rem;margin:0 0 1.25rem;overflow-wrap:anywhere}\
.banner{margin:0 0 1.5rem;padding:1rem 1.25rem;border-radius:.5rem;font-weight:600;\
border:1px solid var(--line)}\
.banner.up{background:var(--up-bg);color:var(--up);border-color:var(--up)}\
.banner.down{background:var(--down-bg);color:var(--down);border-color:var(--down)}\
.banner.pending{background:var(--pending-bg);color:var(--pending);border-color:var(--pending)}\
.monitors{list-style:none;margin:0;padding:0;background:var(--card);border:1px solid var(--line);\
border-radius:.5rem}\
.monitor{display:grid;grid-template-columns:auto 1fr auto;grid-template-areas:'dot name badge' \
'. uptime uptime';gap:.125rem .75rem;align-items:center;padding:.875rem 1.25rem}\
.monitor+.monitor{border-top:1px solid var(--line)}\
.dot{grid-area:dot;width:.75rem;height:.75rem;border-radius:50%;background:var(--pending)}\
.dot.up{background:var(--up)}.dot.down{background:var(--down)}\
.name{grid-area:name;font-weight:600;overflow-wrap:anywhere}\
.uptime{grid-area:uptime;color:var(--muted);font-size:.875rem}\
.badge{grid-area:badge;font-size:.8125rem;font-weight:600;padding:.125rem .625rem;\
border-radius:1rem;background:var(--pending-bg);color:var(--pending)}\
.badge.up{background:var(--up-bg);color:var(--up)}\
.badge.down{background:var(--down-bg);color:var(--down)}\
.note,footer{color:var(--muted)}footer{margin-top:1.5rem;font-size:.875rem}";

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn json_only_when_asked_for() {
        assert!(wants_json(&accept("application/json")));
        assert!(wants_json(&accept("application/json, text/plain, */*")));
        assert!(wants_json(&accept("text/html;q=0.5, application/json")));
        assert!(!wants_json(&HeaderMap::new()));
        assert!(!wants_json(&accept("*/*")));
        assert!(!wants_json(&accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(!wants_json(&accept("application/json;q=0.1, text/html")));
        assert!(!wants_json(&accept("application/json;q=0")));
    }

    #[test]
    fn user_text_is_escaped() {
        assert_eq!(
            escape("<script>alert('x' & \"y\")</script>"),
            "&lt;script&gt;alert(&#39;x&#39; &amp; &quot;y&quot;)&lt;/script&gt;"
        );
    }

    fn monitor(status: &str, uptime: Option<f64>) -> PublicMonitor {
        PublicMonitor {
            name: format!("<b>{status}</b>"),
            status: status.to_string(),
            uptime_24h: uptime,
        }
    }

    #[test]
    fn the_banner_sums_the_monitors_up() {
        assert_eq!(banner(&[]).0, "pending");
        assert_eq!(banner(&[monitor("up", None), monitor("up", None)]).0, "up");
        assert_eq!(
            banner(&[monitor("up", None), monitor("down", None)]).1,
            "1 of 2 down"
        );
        assert_eq!(
            banner(&[monitor("up", None), monitor("pending", None)]).0,
            "pending"
        );
    }

    #[test]
    fn the_page_is_self_contained_and_escaped() {
        let page = PublicPage {
            title: "Acme <status>".into(),
            monitors: vec![monitor("up", Some(75.0)), monitor("pending", None)],
        };
        let text = html(&page, Utc::now());
        assert!(text.contains("Acme &lt;status&gt;"));
        assert!(text.contains("&lt;b&gt;up&lt;/b&gt;"));
        assert!(text.contains("75.00% uptime"));
        assert!(!text.contains("<b>"));
        assert!(!text.contains("//"), "no reference to anywhere");
        assert!(!text.contains("<script"));
    }
}
