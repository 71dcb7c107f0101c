//! Value types of the registry: tenant ids, slugs, isolation tiers, statuses and provisioning
//! steps. Each parses from text and refuses what it cannot represent.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The id of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(Uuid);

impl TenantId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The 32 hex digits used in the names of the tenant's schema, database and role.
    pub fn simple(&self) -> String {
        self.0.simple().to_string()
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for TenantId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TenantId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    #[error("a slug has 2 to 63 characters; {0:?} has {1}")]
    Length(String, usize),
    #[error(
        "a slug uses lowercase letters, digits and single hyphens, starts with a letter and does \
         not end with a hyphen; {0:?} does not"
    )]
    Characters(String),
    #[error("{0:?} is reserved (or reads as an id); choose another slug")]
    Reserved(String),
}

/// A tenant's URL-safe name: 2 to 63 of `a-z`, `0-9` and single inner hyphens, starting with a
/// letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

const RESERVED_SLUGS: &[&str] = &[
    "admin", "api", "app", "console", "docs", "healthz", "metrics", "new", "readyz", "settings",
    "static", "status", "system", "tenantry", "www",
];

impl Slug {
    pub fn parse(s: &str) -> Result<Self, SlugError> {
        let len = s.chars().count();
        if !(2..=63).contains(&len) {
            return Err(SlugError::Length(s.to_string(), len));
        }
        let bytes = s.as_bytes();
        let valid = bytes[0].is_ascii_lowercase()
            && bytes[bytes.len() - 1] != b'-'
            && !s.contains("--")
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if !valid {
            return Err(SlugError::Characters(s.to_string()));
        }
        if RESERVED_SLUGS.contains(&s) || Uuid::parse_str(s).is_ok() {
            return Err(SlugError::Reserved(s.to_string()));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Slug::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Declares an enum stored as checked text, with `as_str`, `FromStr`, `Display` and serde.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "{other:?} is not one of: {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// Where a tenant's rows live.
    Isolation {
        Shared = "shared",
        Schema = "schema",
        Database = "database",
    }
}

text_enum! {
    /// A tenant's lifecycle state. Only `Active` tenants pass the door.
    TenantStatus {
        Provisioning = "provisioning",
        Active = "active",
        Suspended = "suspended",
        Deleted = "deleted",
        Failed = "failed",
    }
}

text_enum! {
    /// The last provisioning step a tenant completed, in order.
    ProvisionStep {
        Registered = "registered",
        RoleCreated = "role_created",
        StorageCreated = "storage_created",
        TablesCreated = "tables_created",
        Seeded = "seeded",
        Activated = "activated",
    }
}

text_enum! {
    /// Where a move between tiers stands: copying to the new placement (abandoned by an abort),
    /// or switched to it (only the old copy's removal is left).
    MovePhase {
        Copying = "copying",
        Switched = "switched",
    }
}

impl ProvisionStep {
    /// The step that comes after this one, if any.
    pub fn next(&self) -> Option<ProvisionStep> {
        let all = Self::ALL;
        let i = all.iter().position(|s| s == self)?;
        all.get(i + 1).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_slugs_parse() {
        for s in ["acme", "a1", "acme-corp", "x-1-2"] {
            assert_eq!(Slug::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn bad_slugs_are_refused() {
        for s in [
            "a", "Acme", "1acme", "acme-", "ac--me", "ac_me", "ac me", "admin", "ü-x", "",
        ] {
            assert!(Slug::parse(s).is_err(), "{s:?} should be refused");
        }
        assert!(Slug::parse(&"a".repeat(64)).is_err());
        assert!(Slug::parse(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn enums_round_trip_through_text() {
        for tier in Isolation::ALL {
            assert_eq!(tier.as_str().parse::<Isolation>().unwrap(), *tier);
        }
        for status in TenantStatus::ALL {
            assert_eq!(status.as_str().parse::<TenantStatus>().unwrap(), *status);
        }
        assert!("sharded".parse::<Isolation>().is_err());
    }

    #[test]
    fn provisioning_steps_run_in_order_and_end() {
        let mut step = ProvisionStep::Registered;
        let mut seen = vec![step];
        while let Some(next) = step.next() {
            seen.push(next);
            step = next;
        }
        assert_eq!(seen, ProvisionStep::ALL);
    }
}
