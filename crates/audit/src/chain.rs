//! The hash chain itself, free of I/O: which chain an entry belongs to, the canonical bytes and
//! hash of an entry, and [`Checker`], which walks a chain in order and names what is wrong.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::list::Source;

/// The `prev_hash` of a chain's first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// One chain of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// An organization's control-side chain (`audit.entries`, `org_id`).
    Organization(Uuid),
    /// The platform's chain (`audit.entries`, `org_id` NULL).
    Platform,
    /// A tenant's chain in its own storage (`audit_log`, `tenant_id`).
    Tenant(Uuid),
}

impl Chain {
    /// The key of the advisory lock serialising appends to this chain.
    pub fn lock_key(self) -> String {
        match self {
            Chain::Organization(id) => format!("tenantry:audit:org:{id}"),
            Chain::Platform => "tenantry:audit:platform".to_string(),
            Chain::Tenant(id) => format!("tenantry:audit:tenant:{id}"),
        }
    }

    /// How problems name the chain.
    pub fn label(self) -> &'static str {
        match self {
            Chain::Organization(_) => "organization chain",
            Chain::Platform => "platform chain",
            Chain::Tenant(_) => "tenant chain",
        }
    }

    pub fn source(self) -> Source {
        match self {
            Chain::Organization(_) => Source::Organization,
            Chain::Platform => Source::Platform,
            Chain::Tenant(_) => Source::Tenant,
        }
    }

    /// The control side's key for the chain: the organization, or the nil UUID for the platform
    /// (as in the `coalesce(org_id, nil)` indexes).
    pub fn control_key(self) -> Uuid {
        match self {
            Chain::Organization(id) | Chain::Tenant(id) => id,
            Chain::Platform => Uuid::nil(),
        }
    }
}

/// `at` as the canonical bytes write it: RFC 3339, UTC, six fractional digits, `Z`.
pub fn format_at(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The current time, truncated to what PostgreSQL keeps (microseconds), so the value read back
/// hashes the same.
pub fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// The hashed content of one entry (every column but `prev_hash`, which is hashed first, and
/// `hash`).
#[derive(Debug, Clone)]
pub struct Link<'a> {
    pub chain: Chain,
    pub seq: i64,
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor_kind: &'a str,
    pub actor_id: Option<Uuid>,
    pub action: &'a str,
    pub target_kind: &'a str,
    pub target_id: Option<&'a str>,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub request_id: Option<&'a str>,
}

impl Link<'_> {
    /// The canonical bytes: a JSON object of the columns, compact, keys sorted.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let text = |v: Option<&str>| v.map_or(Value::Null, Value::from);
        let uuid = |v: Option<Uuid>| v.map_or(Value::Null, |id| Value::from(id.to_string()));
        let mut object = Map::new();
        match self.chain {
            Chain::Organization(id) => object.insert("org_id".into(), uuid(Some(id))),
            Chain::Platform => object.insert("org_id".into(), Value::Null),
            Chain::Tenant(id) => object.insert("tenant_id".into(), uuid(Some(id))),
        };
        object.insert("seq".into(), Value::from(self.seq));
        object.insert("id".into(), uuid(Some(self.id)));
        object.insert("at".into(), Value::from(format_at(self.at)));
        object.insert("actor_kind".into(), Value::from(self.actor_kind));
        object.insert("actor_id".into(), uuid(self.actor_id));
        object.insert("action".into(), Value::from(self.action));
        object.insert("target_kind".into(), Value::from(self.target_kind));
        object.insert("target_id".into(), text(self.target_id));
        object.insert("before".into(), self.before.cloned().unwrap_or(Value::Null));
        object.insert("after".into(), self.after.cloned().unwrap_or(Value::Null));
        object.insert("ip".into(), text(self.ip));
        object.insert("user_agent".into(), text(self.user_agent));
        object.insert("request_id".into(), text(self.request_id));
        let mut out = String::new();
        write_canonical(&Value::Object(object), &mut out);
        out.into_bytes()
    }

    /// `SHA-256(prev_hash || canonical bytes)`.
    pub fn hash(&self, prev_hash: &[u8]) -> [u8; 32] {
        let mut digest = Sha256::new();
        digest.update(prev_hash);
        digest.update(self.canonical_bytes());
        digest.finalize().into()
    }
}

/// Compact JSON with every object's keys sorted by their bytes, whatever the order of the map
/// (serde_json keeps insertion order when another crate enables `preserve_order`).
pub fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                if let Some(item) = map.get(key) {
                    write_canonical(item, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The stored chain head: the last entry's number and hash.
#[derive(Debug, Clone)]
pub struct Head {
    pub seq: i64,
    pub hash: Vec<u8>,
}

/// Walks one chain in `seq` order and collects what is wrong with it.
#[derive(Debug)]
pub struct Checker {
    chain: Chain,
    count: u64,
    /// The next `seq` expected.
    expected: i64,
    /// The stored hash of the previous entry.
    prev_hash: Vec<u8>,
    /// Whether the previous entry was already reported altered.
    prev_reported: bool,
    problems: Vec<String>,
}

impl Checker {
    pub fn new(chain: Chain) -> Self {
        Self {
            chain,
            count: 0,
            expected: 1,
            prev_hash: GENESIS.to_vec(),
            prev_reported: false,
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, text: String) {
        self.problems
            .push(format!("{}: {text}", self.chain.label()));
    }

    fn missing(&mut self, from: i64, to: i64) {
        if from == to {
            self.problem(format!("entry {from} is missing"));
        } else {
            self.problem(format!("entries {from} to {to} are missing"));
        }
    }

    /// The next entry, with the hashes it stores.
    pub fn push(&mut self, link: &Link<'_>, prev_hash: &[u8], hash: &[u8]) {
        self.count += 1;
        let gap = link.seq > self.expected;
        if gap {
            self.missing(self.expected, link.seq - 1);
        } else if link.seq < self.expected {
            self.problem(format!("entry {} appears more than once", link.seq));
        }
        let intact = link.hash(prev_hash).as_slice() == hash;
        let mut reported = !intact;
        if !intact {
            self.problem(format!("entry {} was altered", link.seq));
        } else if !gap && prev_hash != self.prev_hash.as_slice() {
            // The entry is consistent in itself but does not follow the previous one: the
            // previous entry was altered and its hash recomputed (or this is a forged first
            // entry).
            if link.seq == 1 {
                self.problem("entry 1 was altered".to_string());
                reported = true;
            } else if !self.prev_reported {
                self.problem(format!("entry {} was altered", link.seq - 1));
            }
        }
        self.prev_reported = reported;
        self.prev_hash = hash.to_vec();
        self.expected = self.expected.max(link.seq + 1);
    }

    /// Compares the end of the chain with its stored head (control-side chains), and returns the
    /// number of entries and the problems found.
    pub fn finish(mut self, head: Option<Option<Head>>) -> (u64, Vec<String>) {
        let last = self.expected - 1;
        match head {
            // Tenant-side chains have no head.
            None => {}
            Some(None) if last > 0 => self.problem(format!(
                "its head is missing, though entries 1 to {last} exist (audit.heads was altered)"
            )),
            Some(None) => {}
            Some(Some(head)) if head.seq > last => self.missing(last + 1, head.seq),
            Some(Some(head)) if head.seq < last => self.problem(format!(
                "its head names entry {}, but entries up to {last} exist (audit.heads was \
                 altered, or entries were added without the audit log's writer)",
                head.seq
            )),
            Some(Some(head)) if head.hash != self.prev_hash && !self.prev_reported => self.problem(
                format!("entry {last} was altered (it no longer matches the chain's head)"),
            ),
            Some(Some(_)) => {}
        }
        (self.count, self.problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn link(seq: i64, action: &str) -> Link<'_> {
        Link {
            chain: Chain::Tenant(Uuid::from_u128(7)),
            seq,
            id: Uuid::from_u128(seq as u128),
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            actor_kind: "user",
            actor_id: Some(Uuid::from_u128(1)),
            action,
            target_kind: "monitor",
            target_id: Some("m-1"),
            before: None,
            after: None,
            ip: Some("127.0.0.1"),
            user_agent: None,
            request_id: None,
        }
    }

    /// `n` entries chained properly: (link, prev_hash, hash).
    fn chain(n: i64) -> Vec<(Link<'static>, Vec<u8>, Vec<u8>)> {
        let mut prev = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let l = link(seq, "monitor.created");
                let hash = l.hash(&prev).to_vec();
                let item = (l, prev.clone(), hash.clone());
                prev = hash;
                item
            })
            .collect()
    }

    fn check(entries: &[(Link<'_>, Vec<u8>, Vec<u8>)], head: Option<Option<Head>>) -> Vec<String> {
        let mut checker = Checker::new(Chain::Tenant(Uuid::from_u128(7)));
        for (l, prev, hash) in entries {
            checker.push(l, prev, hash);
        }
        checker.finish(head).1
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level_and_is_compact() {
        let mut out = String::new();
        write_canonical(
            &json!({"b": 1, "a": {"z": [true, null, 1.5], "y": "é\"x"}, "A": -2}),
            &mut out,
        );
        assert_eq!(
            out,
            r#"{"A":-2,"a":{"y":"é\"x","z":[true,null,1.5]},"b":1}"#
        );
    }

    #[test]
    fn the_canonical_bytes_cover_every_column_in_a_fixed_format() {
        let mut l = link(3, "monitor.updated");
        let before = json!({"name": "a", "interval": 60});
        l.before = Some(&before);
        let text = String::from_utf8(l.canonical_bytes()).unwrap();
        assert_eq!(
            text,
            "{\"action\":\"monitor.updated\",\"actor_id\":\"00000000-0000-0000-0000-000000000001\",\
             \"actor_kind\":\"user\",\"after\":null,\"at\":\"2023-11-14T22:13:20.123456Z\",\
             \"before\":{\"interval\":60,\"name\":\"a\"},\
             \"id\":\"00000000-0000-0000-0000-000000000003\",\"ip\":\"127.0.0.1\",\
             \"request_id\":null,\"seq\":3,\"target_id\":\"m-1\",\"target_kind\":\"monitor\",\
             \"tenant_id\":\"00000000-0000-0000-0000-000000000007\",\"user_agent\":null}"
        );
        // Whole seconds still carry six digits.
        let mut whole = link(1, "x.y");
        whole.at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert!(
            String::from_utf8(whole.canonical_bytes())
                .unwrap()
                .contains("\"at\":\"2023-11-14T22:13:20.000000Z\"")
        );
    }

    #[test]
    fn every_column_changes_the_hash() {
        let base = link(1, "monitor.created");
        let reference = base.hash(&GENESIS);
        let other = json!({"x": 1});
        let variants: Vec<Link<'_>> = vec![
            Link {
                chain: Chain::Tenant(Uuid::from_u128(8)),
                ..base.clone()
            },
            Link {
                chain: Chain::Organization(Uuid::from_u128(7)),
                ..base.clone()
            },
            Link {
                seq: 2,
                ..base.clone()
            },
            Link {
                id: Uuid::from_u128(99),
                ..base.clone()
            },
            Link {
                at: base.at + chrono::TimeDelta::microseconds(1),
                ..base.clone()
            },
            Link {
                actor_kind: "api_key",
                ..base.clone()
            },
            Link {
                actor_id: None,
                ..base.clone()
            },
            Link {
                action: "monitor.deleted",
                ..base.clone()
            },
            Link {
                target_kind: "agent",
                ..base.clone()
            },
            Link {
                target_id: None,
                ..base.clone()
            },
            Link {
                before: Some(&other),
                ..base.clone()
            },
            Link {
                after: Some(&other),
                ..base.clone()
            },
            Link {
                ip: None,
                ..base.clone()
            },
            Link {
                user_agent: Some("curl"),
                ..base.clone()
            },
            Link {
                request_id: Some("r"),
                ..base.clone()
            },
        ];
        for variant in &variants {
            assert_ne!(variant.hash(&GENESIS), reference, "{variant:?}");
        }
        assert_ne!(base.hash(&[1; 32]), reference);
        assert_eq!(Chain::Platform.control_key(), Uuid::nil());
    }

    #[test]
    fn an_intact_chain_has_no_problems() {
        assert!(check(&chain(5), None).is_empty());
        let entries = chain(5);
        let head = Head {
            seq: 5,
            hash: entries[4].2.clone(),
        };
        assert!(check(&entries, Some(Some(head))).is_empty());
        assert!(check(&[], Some(None)).is_empty());
    }

    #[test]
    fn an_altered_entry_is_named() {
        let mut entries = chain(5);
        entries[2].0.action = "monitor.deleted";
        assert_eq!(check(&entries, None), ["tenant chain: entry 3 was altered"]);
    }

    #[test]
    fn an_altered_and_rehashed_entry_is_named_by_its_successor() {
        let mut entries = chain(5);
        entries[2].0.action = "monitor.deleted";
        entries[2].2 = entries[2].0.hash(&entries[2].1).to_vec();
        assert_eq!(check(&entries, None), ["tenant chain: entry 3 was altered"]);
        // The last one is caught by the head only.
        let mut entries = chain(3);
        let head = Head {
            seq: 3,
            hash: entries[2].2.clone(),
        };
        entries[2].0.action = "monitor.deleted";
        entries[2].2 = entries[2].0.hash(&entries[2].1).to_vec();
        assert!(check(&entries, None).is_empty());
        assert_eq!(
            check(&entries, Some(Some(head))),
            ["tenant chain: entry 3 was altered (it no longer matches the chain's head)"]
        );
    }

    #[test]
    fn removed_entries_are_named() {
        let mut entries = chain(6);
        entries.remove(2);
        assert_eq!(check(&entries, None), ["tenant chain: entry 3 is missing"]);
        entries.remove(2);
        entries.remove(2);
        assert_eq!(
            check(&entries, None),
            ["tenant chain: entries 3 to 5 are missing"]
        );
        let mut entries = chain(4);
        entries.remove(0);
        assert_eq!(check(&entries, None), ["tenant chain: entry 1 is missing"]);
    }

    #[test]
    fn removed_newest_entries_are_caught_by_the_head() {
        let mut entries = chain(4);
        let head = Head {
            seq: 4,
            hash: entries[3].2.clone(),
        };
        entries.truncate(3);
        assert_eq!(
            check(&entries, Some(Some(head.clone()))),
            ["tenant chain: entry 4 is missing"]
        );
        assert_eq!(
            check(&[], Some(Some(head))),
            ["tenant chain: entries 1 to 4 are missing"]
        );
        assert_eq!(
            check(&chain(2), Some(None)),
            [
                "tenant chain: its head is missing, though entries 1 to 2 exist (audit.heads was \
                 altered)"
            ]
        );
    }

    #[test]
    fn a_forged_first_entry_is_named() {
        let mut entries = chain(2);
        entries[0].1 = vec![1; 32];
        entries[0].2 = entries[0].0.hash(&entries[0].1).to_vec();
        assert_eq!(check(&entries, None), ["tenant chain: entry 1 was altered"]);
    }
}
