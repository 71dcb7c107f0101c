//! Email addresses, parsed once: trimmed, with one `@`, a local part and a dotted domain.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let valid = (3..=254).contains(&s.len())
            && s.split('@').count() == 2
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && local.len() <= 64
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
            })
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid {
            Ok(Self(s.to_string()))
        } else {
            Err(format!("{s:?} is not an email address"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Email::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_trim() {
        assert_eq!(
            Email::parse(" ada@example.com ").unwrap().as_str(),
            "ada@example.com"
        );
        assert!(Email::parse("a.b+tag@sub.example.org").is_ok());
    }

    #[test]
    fn non_addresses_are_refused() {
        for s in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a@b@c.d",
            "ada @x.io",
            "ada@.io",
            "ada@x..io",
        ] {
            assert!(Email::parse(s).is_err(), "{s:?}");
        }
    }
}
