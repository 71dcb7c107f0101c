//! Text a client sends that PostgreSQL cannot store: the NUL character (`\u0000`) and unpaired
//! UTF-16 surrogates (`\ud800` alone). A JSON body carrying either is refused as a whole with
//! `422 validation_failed` naming the field, before anything looks at it, so no such text ever
//! reaches a query (where it would fail as a server error).

use serde_json::Value;

/// The field (a dotted path, `items.0.name`; `body` for the body itself) of the first string
/// or key holding text PostgreSQL cannot store, if any.
pub fn unstorable_field(body: &[u8]) -> Option<String> {
    if !has_escape_of_interest(body) {
        return None;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => nul_in(&value, ""),
        // serde_json names a lone surrogate "lone leading surrogate" or, when no escape follows
        // a leading one, "unexpected end of hex escape".
        Err(e) if e.to_string().contains("surrogate") || e.to_string().contains("hex escape") => {
            Some(key_before(body, e.line(), e.column()).unwrap_or_else(|| "body".to_string()))
        }
        // Any other syntax error is the parser's to report.
        Err(_) => None,
    }
}

/// Whether the body has a `\u0000` or a `\uD800`–`\uDFFF` escape (a cheap first look).
fn has_escape_of_interest(body: &[u8]) -> bool {
    body.windows(4).enumerate().any(|(i, w)| {
        w[0] == b'\\' && (w[1] == b'u' || w[1] == b'U') && {
            let hex = &body[i + 2..(i + 6).min(body.len())];
            hex.eq_ignore_ascii_case(b"0000")
                || (hex.len() >= 2 && hex[0].eq_ignore_ascii_case(&b'd') && {
                    let second = hex[1].to_ascii_lowercase();
                    (b'8'..=b'9').contains(&second) || (b'a'..=b'f').contains(&second)
                })
        }
    })
}

fn nul_in(value: &Value, path: &str) -> Option<String> {
    let here = || {
        if path.is_empty() {
            "body".to_string()
        } else {
            path.to_string()
        }
    };
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(here()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_in(v, &join(&i.to_string()))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(here())
            } else {
                nul_in(v, &join(k))
            }
        }),
        _ => None,
    }
}

/// The object key whose value holds position (`line`, `column`), 1-based as serde_json counts.
fn key_before(body: &[u8], line: usize, column: usize) -> Option<String> {
    let start_of_line = body
        .split_inclusive(|b| *b == b'\n')
        .take(line.saturating_sub(1))
        .map(<[u8]>::len)
        .sum::<usize>();
    let end = (start_of_line + column).min(body.len());
    let text = String::from_utf8_lossy(&body[..end]);
    // The last `"key":` before the position.
    let colon = text.rfind("\":").or_else(|| text.rfind("\" :"))?;
    let open = text[..colon].rfind('"')?;
    let key = &text[open + 1..colon];
    (!key.is_empty() && key.len() <= 200).then(|| key.to_string())
}

/// Refuses a request whose path or query, once percent-decoded, holds a NUL character: no
/// resource is named by one (`404`), and no query parameter may carry one (`400`). Bodies are
/// checked by `ApiJson`.
pub(crate) async fn refuse_nul(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;

    let decoded_has_nul = |text: &str| {
        text.as_bytes()
            .windows(3)
            .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
    };
    if decoded_has_nul(request.uri().path()) {
        return crate::error::AppError::NotFound.into_response();
    }
    if request.uri().query().is_some_and(decoded_has_nul) {
        return crate::error::AppError::BadRequest(
            "A query parameter may not contain the NUL character (%00).".to_string(),
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_lone_surrogates_name_their_field() {
        assert_eq!(unstorable_field(br#"{"name": "fine"}"#), None);
        assert_eq!(
            unstorable_field(br#"{"name": "a\u0000b"}"#).as_deref(),
            Some("name")
        );
        assert_eq!(
            unstorable_field(br#"{"settings": {"x": ["ok", "\u0000"]}}"#).as_deref(),
            Some("settings.x.1")
        );
        assert_eq!(
            unstorable_field(br#"{"a\u0000": 1}"#).as_deref(),
            Some("body")
        );
        assert_eq!(
            unstorable_field(br#"{"name": "x", "email": "\ud800"}"#).as_deref(),
            Some("email")
        );
        assert_eq!(
            unstorable_field(br#"{"email": "\uDC00z"}"#).as_deref(),
            Some("email")
        );
        // A proper pair is text like any other.
        assert_eq!(unstorable_field(br#"{"name": "\ud83d\ude00"}"#), None);
        assert_eq!(unstorable_field(br#""\u0000""#).as_deref(), Some("body"));
    }
}
