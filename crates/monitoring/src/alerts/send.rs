//! Sending one alert: the webhook request (body, signature, headers) through an HTTP client that
//! obeys the checks' SSRF guard, and the email an email channel gets.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::redirect::Policy;
use reqwest::{Client, Url};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use uuid::Uuid;

use crate::checks::guard::{Guard, GuardedResolver, ResolveError};
use crate::checks::{CheckerConfig, Targets};

use super::outbox::OPENED;

/// The User-Agent of every webhook request.
pub const WEBHOOK_USER_AGENT: &str = concat!("Tenantry-Webhook/", env!("CARGO_PKG_VERSION"));
/// The header carrying the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "Tenantry-Signature";
/// The header carrying the delivery's id, the same on every attempt.
pub const DELIVERY_HEADER: &str = "Tenantry-Delivery";

/// The signature of `body` sent at `t` (unix seconds) under `secret`: the hex HMAC-SHA256 of
/// `"<t>.<body>"`, as the `v1` part of [`SIGNATURE_HEADER`].
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The body POSTed for a delivery: its stored payload with the organization added.
pub(crate) fn webhook_body(payload: &Value, org_id: Uuid, slug: &str) -> Vec<u8> {
    let mut body = Map::new();
    body.insert("event".into(), payload["event"].clone());
    body.insert("organization".into(), json!({ "id": org_id, "slug": slug }));
    body.insert("monitor".into(), payload["monitor"].clone());
    body.insert("incident".into(), payload["incident"].clone());
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

/// The HTTP client of webhooks: rustls with certificate verification, no proxy, no redirects
/// (a 3xx is a failed attempt), the guard's DNS resolver and a whole-request timeout. A second
/// client, not held to the guard, serves the organizations allowed private targets when the
/// guard is on.
pub(crate) struct Webhooks {
    guarded: (Client, Arc<Guard>),
    open: Option<(Client, Arc<Guard>)>,
    timeout: Duration,
}

impl Webhooks {
    pub fn new(checker: &CheckerConfig, timeout: Duration) -> anyhow::Result<Self> {
        let client = |guard: Guard| -> anyhow::Result<(Client, Arc<Guard>)> {
            let guard = Arc::new(guard);
            let mut builder = Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(true)
                .no_proxy()
                .user_agent(WEBHOOK_USER_AGENT)
                .redirect(Policy::none())
                .referer(false)
                .timeout(timeout)
                .dns_resolver(Arc::new(GuardedResolver(guard.clone())));
            for pem in &checker.extra_root_certificates {
                builder =
                    builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes())?);
            }
            Ok((builder.build()?, guard))
        };
        Ok(Self {
            guarded: client(Guard::new(
                checker.forbid_private_targets,
                checker.allowed_private_addresses.clone(),
            ))?,
            open: if checker.forbid_private_targets {
                Some(client(Guard::open())?)
            } else {
                None
            },
            timeout,
        })
    }

    /// POSTs `body` to `url`, signed with `secret` at `t`, held to the guard unless `targets`
    /// is [`Targets::Any`]. `Ok` on a 2xx answer; otherwise why not, for people (never
    /// containing the secret).
    pub async fn post(
        &self,
        url: &str,
        targets: Targets,
        delivery: Uuid,
        secret: &str,
        t: i64,
        body: Vec<u8>,
    ) -> Result<(), String> {
        let (client, guard) = match (targets, &self.open) {
            (Targets::Any, Some(open)) => open,
            _ => &self.guarded,
        };
        let url = Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
        guard.check_url(&url).map_err(|e| e.to_string())?;
        let signature = format!("t={t},v1={}", sign(secret, t, &body));
        let response = client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(SIGNATURE_HEADER, signature)
            .header(DELIVERY_HEADER, delivery.to_string())
            .body(body)
            .send()
            .await
            .map_err(|e| self.describe(&e))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {status}"))
        }
    }

    fn describe(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            return format!("timed out after {} s", self.timeout.as_secs_f64());
        }
        // The guard's refusal, wherever reqwest wrapped it.
        let mut current: Option<&(dyn StdError + 'static)> = Some(e);
        while let Some(err) = current {
            if let Some(refused) = err.downcast_ref::<ResolveError>() {
                return refused.to_string();
            }
            if let Some(inner) = err
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                && let Some(refused) = inner.downcast_ref::<ResolveError>()
            {
                return refused.to_string();
            }
            current = err.source();
        }
        // The innermost cause says the most ("connection refused"); no URL, which may carry a
        // token in its path.
        let mut innermost: &(dyn StdError + 'static) = e;
        while let Some(source) = innermost.source() {
            innermost = source;
        }
        innermost.to_string()
    }
}

/// The email an email channel gets for a delivery: subject and plain-text body.
pub(crate) fn email_text(
    payload: &Value,
    slug: &str,
    channel_name: &str,
    public_url: &str,
) -> (String, String) {
    let monitor = &payload["monitor"];
    let incident = &payload["incident"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let name = text(&monitor["name"]);
    let opened = payload["event"] == OPENED;
    if payload["event"] == super::outbox::TEST {
        let subject = format!("[Tenantry] TEST: alert channel \"{channel_name}\" of {slug}");
        let body = format!(
            "{}\n\nOrganization: {slug}\n{}\n\nYou receive this because the alert channel \
             \"{channel_name}\" of {slug} sends alerts to this address.\n",
            text(&incident["cause"]),
            public_url.trim_end_matches('/'),
        );
        return (subject, body);
    }
    let subject = if opened {
        format!("[Tenantry] DOWN: {name}")
    } else {
        format!("[Tenantry] RESOLVED: {name}")
    };
    let target = match monitor["target"].as_str() {
        Some(target) => target.to_string(),
        None => "heartbeat (pinged by the monitored job)".to_string(),
    };
    let mut body = if opened {
        format!("{name} is DOWN.\n\n")
    } else {
        format!("{name} is back UP.\n\n")
    };
    body.push_str(&format!("Monitor:   {name} ({})\n", text(&monitor["kind"])));
    body.push_str(&format!("Target:    {target}\n"));
    body.push_str(&format!("Cause:     {}\n", text(&incident["cause"])));
    body.push_str(&format!("Started:   {}\n", text(&incident["started_at"])));
    if let Some(resolved) = incident["resolved_at"].as_str() {
        body.push_str(&format!("Resolved:  {resolved}\n"));
    }
    body.push_str(&format!("Organization: {slug}\n\n"));
    body.push_str(&format!(
        "{}/monitors/{}\n\n",
        public_url.trim_end_matches('/'),
        text(&monitor["id"])
    ));
    body.push_str(&format!(
        "You receive this because the alert channel \"{channel_name}\" of {slug} sends alerts to \
         this address.\n"
    ));
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_time_dot_body() {
        // RFC 4231 does not cover this framing; the value is checked against an independent
        // computation: HMAC-SHA256("key", "1.{}").
        let signature = sign("key", 1, b"{}");
        assert_eq!(signature.len(), 64);
        assert_eq!(signature, sign("key", 1, b"{}"));
        assert_ne!(signature, sign("key", 2, b"{}"));
        assert_ne!(signature, sign("other", 1, b"{}"));
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"key").unwrap();
        mac.update(b"1.{}");
        mac.verify_slice(&hex::decode(&signature).unwrap()).unwrap();
    }

    #[test]
    fn the_body_adds_the_organization_to_the_payload() {
        let payload =
            json!({"event": "incident.opened", "monitor": {"id": 1}, "incident": {"id": 2}});
        let org = Uuid::now_v7();
        let body: Value = serde_json::from_slice(&webhook_body(&payload, org, "acme")).unwrap();
        assert_eq!(
            body,
            json!({
                "event": "incident.opened",
                "organization": {"id": org, "slug": "acme"},
                "monitor": {"id": 1},
                "incident": {"id": 2},
            })
        );
    }

    #[test]
    fn emails_say_what_happened() {
        let payload = json!({
            "event": "incident.resolved",
            "monitor": {"id": "m1", "name": "API", "kind": "http", "target": "https://api.example.com"},
            "incident": {"cause": "status 503", "started_at": "2024-01-01T00:00:00Z",
                         "resolved_at": "2024-01-01T00:05:00Z"},
        });
        let (subject, body) = email_text(&payload, "acme", "On call", "https://t.example.com/");
        assert_eq!(subject, "[Tenantry] RESOLVED: API");
        for part in [
            "https://api.example.com",
            "status 503",
            "2024-01-01T00:05:00Z",
            "https://t.example.com/monitors/m1",
            "On call",
        ] {
            assert!(body.contains(part), "{part} missing from {body}");
        }
    }
}
