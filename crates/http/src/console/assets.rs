//! The console's static files, compiled into the binary: one stylesheet, one small script
//! (progressive enhancement only: every action works without it) and the icon. Served with an
//! `ETag`, so a browser revalidates cheaply and sees a new build at once.

use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

pub(crate) const CSS_PATH: &str = "/static/console.css";
pub(crate) const JS_PATH: &str = "/static/console.js";
pub(crate) const ICON_PATH: &str = "/static/icon.svg";

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");
const ICON: &str = include_str!("../../assets/icon.svg");

fn serve(request: &Request, body: &'static str, content_type: &'static str) -> Response {
    let tag = format!("\"{}\"", hex::encode(&Sha256::digest(body.as_bytes())[..8]));
    let matches = request
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        headers.insert(ETAG, tag);
    }
    response
}

pub(crate) async fn css(request: Request) -> Response {
    serve(&request, CSS, "text/css; charset=utf-8")
}

pub(crate) async fn js(request: Request) -> Response {
    serve(&request, JS, "text/javascript; charset=utf-8")
}

pub(crate) async fn icon(request: Request) -> Response {
    serve(&request, ICON, "image/svg+xml")
}
