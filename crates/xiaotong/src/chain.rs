//! Hash chains: each entry's hash covers the previous entry's hash and the
//! entry's canonical content, so a changed, removed or reordered entry breaks
//! every hash after it. The audit trail and the lesson-hour ledger both use
//! this module; each chain has a named head row (`chain_heads`) that is
//! updated in the writer's transaction, which also serializes appends to one
//! chain across processes.

use crate::db::{insert_ignore, Backend, RowExt, Sql, Tx};
use crate::error::Result;
use sha2::{Digest, Sha256};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Hash of one entry: SHA-256 over the previous hash, the sequence number and
/// the canonical content, each length-prefixed so no two inputs collide.
pub fn entry_hash(prev_hash: &str, seq: i64, content: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        prev_hash.as_bytes(),
        seq.to_string().as_bytes(),
        content.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// The next position in a chain: claimed inside the caller's transaction.
#[derive(Debug, Clone)]
pub struct Link {
    pub seq: i64,
    pub prev_hash: String,
}

/// Lock the heads of several chains with one statement and return each
/// chain's next position and previous hash, in the order given. Heads are
/// locked in name order, so writers of several chains cannot deadlock one
/// another; heads that do not exist yet are created. The caller writes its
/// entries and then calls [`advance_chains`] in the same transaction.
pub async fn claim_chains(tx: &mut Tx, chains: &[String]) -> Result<Vec<Link>> {
    let mut names: Vec<&str> = chains.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let lock = |names: &[&str], backend: Backend| {
        let mut sql = Sql::new("SELECT chain, seq, head_hash FROM chain_heads WHERE chain IN ");
        sql.push_in(names.iter().map(|n| n.to_string()));
        sql.push(" ORDER BY chain");
        if backend != Backend::Sqlite {
            // SQLite has one writer; the others lock rows in the sort order.
            sql.push(" FOR UPDATE");
        }
        sql
    };
    let mut rows = tx.fetch_all(&lock(&names, tx.backend())).await?;
    if rows.len() < names.len() {
        let found: Vec<String> = rows.iter().map(|r| r.str("chain")).collect::<Result<_>>()?;
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !found.iter().any(|f| f == n))
            .collect();
        let values = vec!["(?, 0, ?)"; missing.len()].join(", ");
        let mut sql = Sql::new(insert_ignore(
            tx.backend(),
            &format!("chain_heads (chain, seq, head_hash) VALUES {values}"),
        ));
        for m in missing {
            sql = sql.bind(m).bind(GENESIS);
        }
        tx.execute(&sql).await?;
        rows = tx.fetch_all(&lock(&names, tx.backend())).await?;
    }
    let mut heads = std::collections::HashMap::with_capacity(rows.len());
    for r in &rows {
        heads.insert(
            r.str("chain")?,
            Link {
                seq: r.i64("seq")? + 1,
                prev_hash: r.str("head_hash")?,
            },
        );
    }
    chains
        .iter()
        .map(|c| {
            heads
                .get(c)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("chain head {c} missing").into())
        })
        .collect()
}

/// Record the new heads (last sequence number and hash) of chains claimed
/// with [`claim_chains`], in one statement.
pub async fn advance_chains(tx: &mut Tx, heads: &[(String, i64, String)]) -> Result<()> {
    if heads.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new("UPDATE chain_heads SET seq = CASE chain");
    for (chain, seq, _) in heads {
        sql.push_bind(" WHEN ?", chain.as_str())
            .push_bind(" THEN ?", *seq);
    }
    sql.push(" END, head_hash = CASE chain");
    for (chain, _, hash) in heads {
        sql.push_bind(" WHEN ?", chain.as_str())
            .push_bind(" THEN ?", hash.as_str());
    }
    sql.push(" END WHERE chain IN ");
    sql.push_in(heads.iter().map(|h| h.0.clone()));
    tx.execute(&sql).await?;
    Ok(())
}

/// One stored entry as read back for verification.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub seq: i64,
    pub content: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Why verification stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub seq: i64,
    pub reason: String,
}

/// Incremental verifier: feed entries in sequence order.
#[derive(Debug)]
pub struct Verifier {
    expected_seq: i64,
    prev_hash: String,
    pub checked: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            expected_seq: 1,
            prev_hash: GENESIS.to_string(),
            checked: 0,
        }
    }
}

impl Verifier {
    pub fn push(&mut self, e: &StoredEntry) -> std::result::Result<(), Break> {
        if e.seq != self.expected_seq {
            return Err(Break {
                seq: self.expected_seq,
                reason: if e.seq > self.expected_seq {
                    format!(
                        "entry {} is missing (next stored entry is {})",
                        self.expected_seq, e.seq
                    )
                } else {
                    format!("entry {} appears out of order", e.seq)
                },
            });
        }
        if e.prev_hash != self.prev_hash {
            return Err(Break {
                seq: e.seq,
                reason: format!("entry {} does not link to the entry before it", e.seq),
            });
        }
        let h = entry_hash(&e.prev_hash, e.seq, &e.content);
        if h != e.hash {
            return Err(Break {
                seq: e.seq,
                reason: format!("entry {} was changed after it was written", e.seq),
            });
        }
        self.prev_hash = h;
        self.expected_seq += 1;
        self.checked += 1;
        Ok(())
    }

    /// Check that the chain reaches the recorded head (detects a removed tail).
    pub fn finish(&self, head_seq: i64, head_hash: &str) -> std::result::Result<(), Break> {
        if head_seq != self.expected_seq - 1 || head_hash != self.prev_hash {
            return Err(Break {
                seq: self.expected_seq,
                reason: format!(
                    "the chain ends at entry {} but its head records entry {head_seq}",
                    self.expected_seq - 1
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(n: i64) -> Vec<StoredEntry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let content = format!("entry {seq}");
                let hash = entry_hash(&prev, seq, &content);
                let e = StoredEntry {
                    seq,
                    content,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    fn verify(entries: &[StoredEntry]) -> std::result::Result<(), Break> {
        let mut v = Verifier::default();
        entries.iter().try_for_each(|e| v.push(e))
    }

    #[test]
    fn intact_chain_verifies() {
        let es = build(5);
        assert!(verify(&es).is_ok());
        let mut v = Verifier::default();
        es.iter().for_each(|e| v.push(e).unwrap());
        assert!(v.finish(5, &es[4].hash).is_ok());
        assert!(v.finish(6, "x").is_err(), "a removed tail must be detected");
    }

    #[test]
    fn changed_removed_and_swapped_entries_are_named() {
        let mut es = build(5);
        es[2].content = "tampered".into();
        assert_eq!(verify(&es).unwrap_err().seq, 3);

        let mut es = build(5);
        es.remove(1);
        assert_eq!(verify(&es).unwrap_err().seq, 2);

        let mut es = build(5);
        es.swap(1, 2);
        assert_eq!(verify(&es).unwrap_err().seq, 2);
    }
}
