//! Who is at the browser. The console's middleware ([`layer`]) reads the session cookie once per
//! request, resumes the browser session it holds (rotating its token when due), and leaves the
//! result in the request for the extractors: [`Visitor`] (anyone) and [`Signed`] (a signed-in
//! user; others are sent to the login page). It also sets the security headers of every
//! console response.
//!
//! CSRF: a signed-in browser's forms carry its session's CSRF token; a visitor's (log in, sign
//! up, accept an invitation) carry the value of a random pre-session cookie (double submit).
//! [`Form`] refuses a state-changing request whose token does not match, and a cross-site one
//! (an `Origin` that is not this server's).

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, COOKIE, HOST, ORIGIN, REFERRER_POLICY, SET_COOKIE,
    USER_AGENT, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use tenantry_identity::{BrowserSession, IdentityError, User};

use super::error::ConsoleError;
use crate::state::AppState;

pub(crate) const SESSION_COOKIE: &str = "tenantry_session";
const PRESESSION_COOKIE: &str = "tenantry_presession";
const FLASH_COOKIE: &str = "tenantry_flash";

/// The console's content security policy: scripts and styles from this server only, no inline
/// ones; images from this server, inline SVG, and https (organization logos).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// A signed-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    pub session: BrowserSession,
    pub user: User,
}

/// What the middleware learnt about the browser, for the extractors.
#[derive(Debug, Clone)]
struct Resolved {
    signed: Option<Signed>,
    /// The pre-session token (a visitor's CSRF token).
    presession: String,
    /// A message left by the previous response (a redirect after a form).
    flash: Option<String>,
}

/// Anyone at the browser: signed in or not, with the CSRF token their forms carry and the
/// message the previous response left.
#[derive(Debug, Clone)]
pub(crate) struct Visitor {
    pub signed: Option<Signed>,
    pub csrf: String,
    pub flash: Option<String>,
}

fn resolved(parts: &Parts) -> Result<&Resolved, ConsoleError> {
    parts
        .extensions
        .get::<Resolved>()
        .ok_or_else(|| ConsoleError::Unexpected(anyhow::anyhow!("console route without its layer")))
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ConsoleError> {
        let resolved = resolved(parts)?;
        Ok(Visitor {
            csrf: resolved.signed.as_ref().map_or_else(
                || resolved.presession.clone(),
                |s| s.session.csrf_token.clone(),
            ),
            signed: resolved.signed.clone(),
            flash: resolved.flash.clone(),
        })
    }
}

/// A signed-in user; anyone else is sent to the login page, which comes back here after.
#[derive(Debug, Clone)]
pub(crate) struct SignedIn {
    pub signed: Signed,
    pub flash: Option<String>,
}

impl SignedIn {
    pub fn user(&self) -> &User {
        &self.signed.user
    }

    pub fn csrf(&self) -> &str {
        &self.signed.session.csrf_token
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ConsoleError> {
        let resolved = resolved(parts)?;
        match &resolved.signed {
            Some(signed) => Ok(SignedIn {
                signed: signed.clone(),
                flash: resolved.flash.clone(),
            }),
            None => Err(ConsoleError::SignIn {
                next: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "/".to_owned()),
            }),
        }
    }
}

/// A form posted from one of the console's pages: its CSRF token checked (the signed-in
/// session's, or the visitor's pre-session token), then its fields read into `T`. Unknown
/// fields are ignored.
#[derive(Debug)]
pub(crate) struct Form<T>(pub T);

impl<T: serde::de::DeserializeOwned> FromRequest<AppState> for Form<T> {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ConsoleError> {
        let (mut parts, body) = request.into_parts();
        let visitor = Visitor::from_request_parts(&mut parts, state).await?;
        if !same_origin(&parts.headers) {
            return Err(ConsoleError::Csrf);
        }
        let request = Request::from_parts(parts, body);
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| ConsoleError::BadRequest(e.body_text()))?;
        if crate::text::unstorable_field(&bytes).is_some() || bytes.contains(&0) {
            return Err(ConsoleError::BadRequest(
                "Text may not contain the NUL character.".to_string(),
            ));
        }
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
        // `%00` decodes to a NUL, which PostgreSQL cannot store.
        if fields
            .iter()
            .any(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(ConsoleError::BadRequest(
                "Text may not contain the NUL character.".to_string(),
            ));
        }
        let presented = fields
            .iter()
            .find(|(name, _)| name == "_csrf")
            .map(|(_, value)| value.as_str())
            .unwrap_or_default();
        if !constant_time_eq(presented.as_bytes(), visitor.csrf.as_bytes()) {
            return Err(ConsoleError::Csrf);
        }
        let value = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
        Ok(Form(value))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A request with no `Origin`, or one naming this server's host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

/// The value of cookie `name`.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, for the whole site, `Secure` when the
/// server is reached over https.
fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let secure = if state.identity.keys().issuer().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("tenantry_invalid=; Max-Age=0"))
}

/// Signs the browser in: the response sets the session cookie (for 30 days; rotated as it is
/// used).
pub(crate) fn sign_in(state: &AppState, response: &mut Response, cookie_token: &str) {
    let cookie = set_cookie(state, SESSION_COOKIE, cookie_token, Some(30 * 24 * 3600));
    response.headers_mut().append(SET_COOKIE, cookie);
}

/// The response forgets the session cookie.
pub(crate) fn sign_out(state: &AppState, response: &mut Response) {
    let cookie = set_cookie(state, SESSION_COOKIE, "", Some(0));
    response.headers_mut().append(SET_COOKIE, cookie);
}

/// A redirect (303, so the browser follows with GET) that leaves `message` for the next page.
pub(crate) fn redirect_with(state: &AppState, to: &str, message: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    let value = URL_SAFE_NO_PAD.encode(message.as_bytes());
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(state, FLASH_COOKIE, &value, Some(60)),
    );
    response
}

/// The user agent a new session is recorded with.
pub(crate) fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers.get(USER_AGENT).and_then(|v| v.to_str().ok())
}

/// The console's middleware (see the module's documentation).
pub(crate) async fn layer(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let mut forget_session = false;
    let signed = match cookie(headers, SESSION_COOKIE) {
        Some(token) => match state.identity.browser_session(token).await {
            Ok(session) => match state.identity.user(session.user_id).await {
                Ok(Some(user)) => Some(Signed { session, user }),
                Ok(None) => {
                    forget_session = true;
                    None
                }
                Err(e) => {
                    return ConsoleError::from(crate::error::AppError::from(e)).into_response();
                }
            },
            Err(IdentityError::InvalidToken | IdentityError::RefreshReused) => {
                forget_session = true;
                None
            }
            Err(e) => return ConsoleError::from(crate::error::AppError::from(e)).into_response(),
        },
        None => None,
    };
    let (presession, new_presession) = match cookie(headers, PRESESSION_COOKIE) {
        Some(token) if token.len() == 43 => (token.to_owned(), false),
        _ => (random_token(), true),
    };
    let flash = cookie(headers, FLASH_COOKIE)
        .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let had_flash = flash.is_some();
    let rotated = signed.as_ref().and_then(|s| s.session.rotated.clone());
    request.extensions_mut().insert(Resolved {
        signed,
        presession: presession.clone(),
        flash,
    });
    let mut response = next.run(request).await;
    let is_redirect = response.status().is_redirection();
    let headers = response.headers_mut();
    if let Some(token) = rotated {
        headers.append(
            SET_COOKIE,
            set_cookie(&state, SESSION_COOKIE, &token, Some(30 * 24 * 3600)),
        );
    }
    if forget_session && !headers.contains_key(SET_COOKIE) {
        headers.append(SET_COOKIE, set_cookie(&state, SESSION_COOKIE, "", Some(0)));
    }
    if new_presession {
        headers.append(
            SET_COOKIE,
            set_cookie(&state, PRESESSION_COOKIE, &presession, None),
        );
    }
    // A message is shown once: by the page the redirect leads to.
    if had_flash && !is_redirect {
        headers.append(SET_COOKIE, set_cookie(&state, FLASH_COOKIE, "", Some(0)));
    }
    security_headers(headers);
    response
}

/// The headers every console page carries.
pub(crate) fn security_headers(headers: &mut HeaderMap) {
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // No other site learns a console address (the invitation page's carries its token).
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; tenantry_session_x=2; tenantry_session=abc"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "a"), Some("1"));
        assert_eq!(cookie(&headers, "b"), None);
    }

    #[test]
    fn a_cross_site_origin_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b""));
    }
}
