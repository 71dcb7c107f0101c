//! Who acted and what changed: the [`AuditContext`] a request (or the CLI) carries, and the
//! [`Change`] each operation describes.

use crate::action::AuditAction;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What kind of principal acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A signed-in user (`actor_id` is the user's id).
    User,
    /// An API key (`actor_id` is the key's id).
    ApiKey,
    /// The platform itself: the CLI, a background job (`actor_id` usually absent).
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::ApiKey => "api_key",
            ActorKind::System => "system",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "user" => Some(ActorKind::User),
            "api_key" => Some(ActorKind::ApiKey),
            "system" => Some(ActorKind::System),
            _ => None,
        }
    }
}

impl std::fmt::Display for ActorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The principal that acted. A user or an API key always has an id (the database refuses one
/// without).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<Uuid>,
}

impl Actor {
    pub fn user(id: Uuid) -> Self {
        Self {
            kind: ActorKind::User,
            id: Some(id),
        }
    }

    pub fn api_key(id: Uuid) -> Self {
        Self {
            kind: ActorKind::ApiKey,
            id: Some(id),
        }
    }

    pub fn system() -> Self {
        Self {
            kind: ActorKind::System,
            id: None,
        }
    }
}

/// Who acted and from where: built once per request by the HTTP layer.
#[derive(Clone, Debug)]
pub struct AuditContext {
    pub actor: Actor,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl AuditContext {
    /// The platform acting on its own: CLI commands and background jobs.
    pub fn system() -> Self {
        Self::new(Actor::system())
    }

    /// `actor`, with no network details.
    pub fn new(actor: Actor) -> Self {
        Self {
            actor,
            ip: None,
            user_agent: None,
            request_id: None,
        }
    }
}

/// One change: what was done (`member.added`, `api_key.revoked`, `monitor.updated`...), to
/// what, and a summary of the target before and after (absent for a creation / a removal).
/// Summaries are JSON; keep secrets (tokens, key material, passwords) out of them.
#[derive(Clone, Debug)]
pub struct Change {
    /// What was done.
    pub action: AuditAction,
    /// `member`, `invitation`, `api_key`, `organization`, `monitor`...
    pub target_kind: &'static str,
    pub target_id: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_kinds_round_trip_through_their_names() {
        for kind in [ActorKind::User, ActorKind::ApiKey, ActorKind::System] {
            assert_eq!(ActorKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.as_str())
            );
        }
        assert_eq!(ActorKind::parse("robot"), None);
    }
}
