//! Audit entries read from an archive: checked against their source chain, and rebuilt under
//! the new tenant's id with the audit crate's own chain code ([`tenantry_audit::Link`]), every
//! column but `prev_hash` and `hash` (and, control side, `id`) kept as it was.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tenantry_audit::{Chain, Checker, GENESIS, Link, write_canonical};
use uuid::Uuid;

/// One audit entry as a line of the archive (either chain; the chain's own column left out).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct EntryLine {
    pub seq: i64,
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub target_kind: String,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl EntryLine {
    /// The entry's hashed content in `chain`, under `id`.
    fn link(&self, chain: Chain, id: Uuid) -> Link<'_> {
        Link {
            chain,
            seq: self.seq,
            id,
            at: self.at,
            actor_kind: &self.actor_kind,
            actor_id: self.actor_id,
            action: &self.action,
            target_kind: &self.target_kind,
            target_id: self.target_id.as_deref(),
            before: self.before.as_ref(),
            after: self.after.as_ref(),
            ip: self.ip.as_deref(),
            user_agent: self.user_agent.as_deref(),
            request_id: self.request_id.as_deref(),
        }
    }
}

/// A `bytea` as `to_jsonb` writes it (`\x` and hex).
pub(crate) fn decode_bytea(text: &str) -> Option<Vec<u8>> {
    hex::decode(text.strip_prefix("\\x")?).ok()
}

pub(crate) fn encode_bytea(bytes: &[u8]) -> String {
    format!("\\x{}", hex::encode(bytes))
}

/// Walks an archived chain under its source id: any entry altered or missing is a problem.
pub(crate) struct SourceCheck {
    chain: Chain,
    checker: Checker,
}

impl SourceCheck {
    pub fn new(chain: Chain) -> Self {
        Self {
            chain,
            checker: Checker::new(chain),
        }
    }

    pub fn push(&mut self, line: &str) -> Result<(), String> {
        let entry: EntryLine =
            serde_json::from_str(line).map_err(|e| format!("an audit entry is malformed: {e}"))?;
        let prev = decode_bytea(&entry.prev_hash);
        let hash = decode_bytea(&entry.hash);
        let (Some(prev), Some(hash)) = (prev, hash) else {
            return Err(format!("audit entry {} has a malformed hash", entry.seq));
        };
        self.checker
            .push(&entry.link(self.chain, entry.id), &prev, &hash);
        Ok(())
    }

    /// The problems found, each naming its chain and entry.
    pub fn finish(self) -> Vec<String> {
        self.checker.finish(None).1
    }
}

/// Rebuilds a chain under a new id, entry after entry.
pub(crate) struct Rechain {
    chain: Chain,
    prev: Vec<u8>,
    last_seq: i64,
    /// New ids for the entries (control side), or their own (tenant side).
    new_ids: bool,
}

impl Rechain {
    pub fn new(chain: Chain, new_ids: bool) -> Self {
        Self {
            chain,
            prev: GENESIS.to_vec(),
            last_seq: 0,
            new_ids,
        }
    }

    /// The archived line as a row of the new chain: a JSON object with the chain's column
    /// (`column` = `value`) added, new `prev_hash` and `hash`, and a new `id` on the control
    /// side.
    pub fn next(&mut self, line: &str, column: &str, value: Uuid) -> anyhow::Result<String> {
        let mut row: Map<String, Value> = serde_json::from_str(line)?;
        let entry: EntryLine = serde_json::from_value(Value::Object(row.clone()))?;
        let id = if self.new_ids {
            Uuid::now_v7()
        } else {
            entry.id
        };
        let hash = entry.link(self.chain, id).hash(&self.prev);
        row.insert("id".into(), Value::from(id.to_string()));
        row.insert("prev_hash".into(), Value::from(encode_bytea(&self.prev)));
        row.insert("hash".into(), Value::from(encode_bytea(&hash)));
        row.insert(column.into(), Value::from(value.to_string()));
        self.prev = hash.to_vec();
        self.last_seq = entry.seq;
        Ok(Value::Object(row).to_string())
    }

    /// The last entry's number and hash, once there is one.
    pub fn head(&self) -> Option<(i64, Vec<u8>)> {
        (self.last_seq > 0).then(|| (self.last_seq, self.prev.clone()))
    }
}

/// SHA-256 over the rows' content without the chain's hashes: equal for an archived chain and
/// its rebuilt copy exactly when every other column is.
#[derive(Default)]
pub(crate) struct ContentDigest {
    digest: Sha256,
    rows: u64,
}

impl ContentDigest {
    pub fn push(&mut self, line: &str) -> anyhow::Result<()> {
        let mut row: Map<String, Value> = serde_json::from_str(line)?;
        for column in ["tenant_id", "prev_hash", "hash"] {
            row.remove(column);
        }
        let mut text = String::new();
        write_canonical(&Value::Object(row), &mut text);
        self.digest.update(text.as_bytes());
        self.digest.update(b"\n");
        self.rows += 1;
        Ok(())
    }

    pub fn finish(self) -> (u64, String) {
        (self.rows, hex::encode(self.digest.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: i64, prev: &[u8], chain: Chain) -> (String, Vec<u8>) {
        let entry = EntryLine {
            seq,
            id: Uuid::from_u128(seq as u128),
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            actor_kind: "user".into(),
            actor_id: Some(Uuid::from_u128(9)),
            action: "monitor.created".into(),
            target_kind: "monitor".into(),
            target_id: Some("m".into()),
            before: None,
            after: Some(serde_json::json!({"name": "Home", "n": 1.5})),
            ip: Some("127.0.0.1".into()),
            user_agent: None,
            request_id: None,
            prev_hash: String::new(),
            hash: String::new(),
        };
        let hash = entry.link(chain, entry.id).hash(prev);
        let text = serde_json::json!({
            "seq": seq, "id": entry.id, "at": "2023-11-14T22:13:20.123456+00:00",
            "actor_kind": "user", "actor_id": entry.actor_id, "action": "monitor.created",
            "target_kind": "monitor", "target_id": "m", "before": null,
            "after": {"name": "Home", "n": 1.5}, "ip": "127.0.0.1", "user_agent": null,
            "request_id": null, "prev_hash": encode_bytea(prev), "hash": encode_bytea(&hash),
        })
        .to_string();
        (text, hash.to_vec())
    }

    #[test]
    fn a_chain_rebuilt_under_a_new_id_verifies_there_and_keeps_its_content() {
        let (old, new) = (Chain::Tenant(Uuid::from_u128(1)), Uuid::from_u128(2));
        let (first, hash) = line(1, &GENESIS, old);
        let (second, _) = line(2, &hash, old);
        let mut check = SourceCheck::new(old);
        check.push(&first).unwrap();
        check.push(&second).unwrap();
        assert!(check.finish().is_empty());

        let mut rechain = Rechain::new(Chain::Tenant(new), false);
        let rebuilt = [
            rechain.next(&first, "tenant_id", new).unwrap(),
            rechain.next(&second, "tenant_id", new).unwrap(),
        ];
        let mut check = SourceCheck::new(Chain::Tenant(new));
        for row in &rebuilt {
            check.push(row).unwrap();
        }
        assert!(check.finish().is_empty());
        assert_eq!(rechain.head().unwrap().0, 2);

        let digest = |rows: &[&str]| {
            let mut d = ContentDigest::default();
            rows.iter().for_each(|r| d.push(r).unwrap());
            d.finish()
        };
        assert_eq!(
            digest(&[&first, &second]),
            digest(&[&rebuilt[0], &rebuilt[1]])
        );
        // The old chain does not verify under the new id.
        let mut check = SourceCheck::new(Chain::Tenant(new));
        check.push(&first).unwrap();
        assert_eq!(check.finish(), ["tenant chain: entry 1 was altered"]);
    }

    #[test]
    fn an_altered_archived_entry_is_named() {
        let old = Chain::Organization(Uuid::from_u128(1));
        let (first, _) = line(1, &GENESIS, old);
        let altered = first.replace("monitor.created", "monitor.deleted");
        let mut check = SourceCheck::new(old);
        check.push(&altered).unwrap();
        assert_eq!(check.finish(), ["organization chain: entry 1 was altered"]);
    }
}
