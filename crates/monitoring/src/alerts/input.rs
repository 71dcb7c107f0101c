//! An alert channel as a client sends it, and its validation: the fields each kind needs and
//! allows, URLs, email addresses (as `tenantry_base::Email` parses them) and webhook
//! secrets, generated when absent and shown afterwards only as a hint.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Deserialize;
use uuid::Uuid;

use crate::monitors::Invalid;

/// The prefix of generated webhook secrets.
pub const SECRET_PREFIX: &str = "whsec_";
/// The most monitors one channel may list.
pub const MAX_CHANNEL_MONITORS: usize = 1000;
const MIN_SECRET_CHARS: usize = 16;
const MAX_SECRET_CHARS: usize = 200;
const MAX_URL_CHARS: usize = 2000;

pub(super) fn invalid(field: &'static str, detail: impl Into<String>) -> Invalid {
    Invalid {
        field,
        detail: detail.into(),
    }
}

/// An alert channel as a client sends it (create and full update).
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertChannelInput {
    #[schema(min_length = 1, max_length = 200, example = "On-call webhook")]
    pub name: String,
    #[schema(pattern = "^(webhook|email)$", example = "webhook")]
    pub kind: String,
    /// Webhooks: the absolute `http://` or `https://` URL the alerts are POSTed to.
    #[serde(default)]
    #[schema(example = "https://hooks.example.com/tenantry")]
    pub url: Option<String>,
    /// Webhooks: the signing secret, 16 to 200 characters. Absent on create: one is generated
    /// (`whsec_` and 32 random bytes, base64url) and shown in the response. Absent on update: the
    /// channel keeps its secret.
    #[serde(default)]
    #[schema(min_length = 16, max_length = 200)]
    pub secret: Option<String>,
    /// Email channels: the address the alerts are sent to.
    #[serde(default)]
    #[schema(example = "oncall@example.com")]
    pub email: Option<String>,
    /// The monitors whose incidents the channel announces; empty or absent: all of them.
    #[serde(default)]
    pub monitor_ids: Option<Vec<Uuid>>,
}

impl std::fmt::Debug for AlertChannelInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertChannelInput")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("email", &self.email)
            .field("monitor_ids", &self.monitor_ids)
            .finish()
    }
}

/// A webhook signing secret in clear. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// A new random secret: `whsec_` and 32 random bytes, base64url.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        WebhookSecret(format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What reads show of it: the prefix, if it has ours, and its last four characters.
    pub fn hint(&self) -> String {
        let prefix = if self.0.starts_with(SECRET_PREFIX) {
            SECRET_PREFIX
        } else {
            ""
        };
        let chars: Vec<char> = self.0.chars().collect();
        let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
        format!("{prefix}…{tail}")
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Webhook,
    Email,
}

/// An input that passed [`AlertChannelInput::validate`].
#[derive(Debug)]
pub(super) struct Valid {
    pub(super) name: String,
    pub(super) kind: Kind,
    pub(super) url: Option<String>,
    pub(super) email: Option<String>,
    pub(super) secret: Option<WebhookSecret>,
    /// Sorted, without repeats.
    pub(super) monitor_ids: Vec<Uuid>,
}

impl AlertChannelInput {
    /// Checks every field against the channel's kind (not yet whether the monitors exist).
    pub fn validate(&self) -> Result<(), Invalid> {
        self.valid().map(|_| ())
    }

    pub(super) fn valid(&self) -> Result<Valid, Invalid> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(invalid("name", "1 to 200 characters"));
        }
        let kind = match self.kind.as_str() {
            "webhook" => Kind::Webhook,
            "email" => Kind::Email,
            other => {
                return Err(invalid(
                    "kind",
                    format!("{other:?} is not one of webhook, email"),
                ));
            }
        };
        let (url, email, secret) = match kind {
            Kind::Webhook => {
                if self.email.is_some() {
                    return Err(invalid("email", "webhook channels have no email"));
                }
                let url = self
                    .url
                    .as_deref()
                    .ok_or_else(|| invalid("url", "required for webhook channels"))?;
                let secret = self.secret.as_deref().map(check_secret).transpose()?;
                (Some(check_url(url)?), None, secret)
            }
            Kind::Email => {
                if self.url.is_some() {
                    return Err(invalid("url", "email channels have no url"));
                }
                if self.secret.is_some() {
                    return Err(invalid("secret", "email channels have no secret"));
                }
                let email = self
                    .email
                    .as_deref()
                    .ok_or_else(|| invalid("email", "required for email channels"))?;
                let email = tenantry_base::Email::parse(email)
                    .map_err(|detail| invalid("email", detail))?;
                (None, Some(email.as_str().to_string()), None)
            }
        };
        let mut monitor_ids = self.monitor_ids.clone().unwrap_or_default();
        monitor_ids.sort_unstable();
        monitor_ids.dedup();
        if monitor_ids.len() > MAX_CHANNEL_MONITORS {
            return Err(invalid(
                "monitor_ids",
                format!("at most {MAX_CHANNEL_MONITORS} monitors"),
            ));
        }
        Ok(Valid {
            name: name.to_string(),
            kind,
            url,
            email,
            secret,
            monitor_ids,
        })
    }
}

fn check_url(url: &str) -> Result<String, Invalid> {
    let url = url.trim();
    let bad = |detail: &str| invalid("url", detail);
    if url.is_empty() || url.chars().count() > MAX_URL_CHARS {
        return Err(bad(
            "an absolute http:// or https:// URL, at most 2000 characters",
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("a URL has no spaces"));
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|_| bad("an absolute http:// or https:// URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("an http:// or https:// URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("an http:// or https:// URL with a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "no credentials in the URL: the receiver verifies the signature instead",
        ));
    }
    Ok(url.to_string())
}

fn check_secret(secret: &str) -> Result<WebhookSecret, Invalid> {
    let count = secret.chars().count();
    if !(MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&count)
        || secret.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            "secret",
            format!("{MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters, no spaces"),
        ));
    }
    Ok(WebhookSecret(secret.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(url: &str) -> AlertChannelInput {
        AlertChannelInput {
            name: "hook".into(),
            kind: "webhook".into(),
            url: Some(url.into()),
            secret: None,
            email: None,
            monitor_ids: None,
        }
    }

    fn email(address: &str) -> AlertChannelInput {
        AlertChannelInput {
            name: "mail".into(),
            kind: "email".into(),
            url: None,
            secret: None,
            email: Some(address.into()),
            monitor_ids: None,
        }
    }

    #[test]
    fn good_channels_validate() {
        assert_eq!(
            webhook("https://hooks.example.com/x?y=1").validate(),
            Ok(())
        );
        assert_eq!(webhook("http://127.0.0.1:9000/").validate(), Ok(()));
        assert_eq!(email("oncall@example.com").validate(), Ok(()));
        let mut with_secret = webhook("https://h.example.com");
        with_secret.secret = Some("a-secret-of-16-chars".into());
        assert_eq!(with_secret.validate(), Ok(()));
    }

    #[test]
    fn bad_channels_name_the_field() {
        let field = |i: AlertChannelInput| i.validate().unwrap_err().field;
        assert_eq!(field(webhook("ftp://x.example.com")), "url");
        assert_eq!(field(webhook("/relative")), "url");
        assert_eq!(field(webhook("https://u:p@x.example.com")), "url");
        assert_eq!(field(webhook("https://x.example.com/a b")), "url");
        assert_eq!(field(email("not-an-address")), "email");
        let mut short = webhook("https://x.example.com");
        short.secret = Some("short".into());
        assert_eq!(field(short), "secret");
        let mut both = webhook("https://x.example.com");
        both.email = Some("a@example.com".into());
        assert_eq!(field(both), "email");
        let mut mail_url = email("a@example.com");
        mail_url.url = Some("https://x.example.com".into());
        assert_eq!(field(mail_url), "url");
        let mut mail_secret = email("a@example.com");
        mail_secret.secret = Some("a-secret-of-16-chars".into());
        assert_eq!(field(mail_secret), "secret");
        let mut no_url = webhook("https://x.example.com");
        no_url.url = None;
        assert_eq!(field(no_url), "url");
        let mut blank = email("a@example.com");
        blank.name = " ".into();
        assert_eq!(field(blank), "name");
        let mut long = email("a@example.com");
        long.name = "n".repeat(201);
        assert_eq!(field(long), "name");
        let mut sms = email("a@example.com");
        sms.kind = "sms".into();
        assert_eq!(field(sms), "kind");
    }

    #[test]
    fn generated_secrets_have_the_prefix_and_32_random_bytes() {
        let secret = WebhookSecret::generate();
        let text = secret.expose();
        assert!(text.starts_with(SECRET_PREFIX));
        let bytes = URL_SAFE_NO_PAD
            .decode(&text[SECRET_PREFIX.len()..])
            .unwrap();
        assert_eq!(bytes.len(), 32);
        assert_ne!(WebhookSecret::generate(), secret);
        assert!(!format!("{secret:?}").contains(&text[SECRET_PREFIX.len()..]));
    }

    #[test]
    fn hints_show_the_prefix_and_the_last_four_characters() {
        let ours = WebhookSecret("whsec_abcdefghAb3x".into());
        assert_eq!(ours.hint(), "whsec_…Ab3x");
        let theirs = WebhookSecret("0123456789abcdefWXYZ".into());
        assert_eq!(theirs.hint(), "…WXYZ");
    }

    #[test]
    fn input_debug_hides_the_secret() {
        let mut input = webhook("https://x.example.com");
        input.secret = Some("very-secret-value-1".into());
        assert!(!format!("{input:?}").contains("very-secret"));
    }
}
