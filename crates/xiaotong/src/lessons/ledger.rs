//! The lesson-hour ledger: append-only entries, hash-chained through
//! [`crate::chain`], with balances encrypted at rest.
//!
//! Each tenant's ledger is [`CHAINS`] chains: an account's entries always go
//! to chain `account_id % CHAINS`. One chain per tenant would make every
//! check-in of a tenant wait for the one before it to commit (the chain head's
//! row lock is held until commit); with several, check-ins of different
//! accounts commit in parallel, while all entries of one account stay in one
//! chain, in order. A transaction takes the chain heads it needs last, in
//! ascending order, so appends never deadlock.
//!
//! An entry's hash covers its plain columns and its balance after the entry
//! (decrypted), so `verify` needs the key and catches a changed amount, a
//! changed balance, a removed entry and a reordered pair. Ciphertexts are
//! bound to their row (the account id or the entry's sequence number is part
//! of the plaintext), so one row's encrypted balance cannot be copied onto
//! another.

use super::model::{LedgerEntry, LedgerVerifyReport};
use crate::chain;
use crate::crypto::Keys;
use crate::db::{ms_to_rfc3339, Db, RowExt, Sql, Tx};
use crate::error::{Error, Result};

/// Chains per tenant.
pub const CHAINS: i64 = 16;

pub fn chain_name(tenant_id: i64, chain_no: i64) -> String {
    format!("ledger:{tenant_id}:{chain_no}")
}

pub fn chain_of(account_id: i64) -> i64 {
    account_id.rem_euclid(CHAINS)
}

/// An account's balance: paid hours first, then bonus hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balance {
    pub paid: i64,
    pub bonus: i64,
}

impl Balance {
    pub fn total(self) -> i64 {
        self.paid + self.bonus
    }

    /// Take `hours` (paid first, then bonus; a shortfall goes on paid, as credit).
    pub fn debit(self, hours: i64) -> (Balance, i64) {
        let from_paid = hours.min(self.paid.max(0));
        let rest = hours - from_paid;
        let from_bonus = rest.min(self.bonus.max(0));
        let credit = rest - from_bonus;
        (
            Balance {
                paid: self.paid - from_paid - credit,
                bonus: self.bonus - from_bonus,
            },
            from_paid + credit,
        )
    }

    /// Give back `hours` (to paid hours: reversals and corrections return what
    /// was taken, which the refund rules count as paid).
    pub fn credit(self, paid: i64, bonus: i64) -> Balance {
        Balance {
            paid: self.paid + paid,
            bonus: self.bonus + bonus,
        }
    }
}

pub fn encrypt_balance(keys: &Keys, account_id: i64, b: Balance) -> String {
    keys.encrypt(&format!("a{account_id}:{}:{}", b.paid, b.bonus))
}

pub fn decrypt_balance(keys: &Keys, account_id: i64, enc: &str) -> Result<Balance> {
    let pt = keys.decrypt(enc)?;
    let bad = || {
        Error::Other(anyhow::anyhow!(
            "account {account_id}: balance does not belong to this account"
        ))
    };
    let mut it = pt.split(':');
    if it.next() != Some(format!("a{account_id}").as_str()) {
        return Err(bad());
    }
    let paid = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let bonus = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    Ok(Balance { paid, bonus })
}

fn encrypt_after(
    keys: &Keys,
    tenant_id: i64,
    chain_no: i64,
    seq: i64,
    balance_after: i64,
) -> String {
    keys.encrypt(&format!("t{tenant_id}c{chain_no}s{seq}:{balance_after}"))
}

fn decrypt_after(keys: &Keys, tenant_id: i64, chain_no: i64, seq: i64, enc: &str) -> Result<i64> {
    let pt = keys.decrypt(enc)?;
    pt.strip_prefix(&format!("t{tenant_id}c{chain_no}s{seq}:"))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            Error::Other(anyhow::anyhow!(
                "ledger entry {seq}: balance does not belong to this entry"
            ))
        })
}

/// One entry to append.
#[derive(Debug, Clone, Default)]
pub struct Posting {
    pub account_id: i64,
    pub student_id: i64,
    pub kind: &'static str,
    pub amount: i64,
    pub value_fen: i64,
    pub balance_after: i64,
    pub reference: Option<String>,
    pub session_id: Option<i64>,
    pub teacher_id: Option<i64>,
    pub course_id: Option<i64>,
    pub campus_id: Option<i64>,
    pub actor_id: Option<i64>,
}

/// The hashed content of an entry: exactly its stored columns, with the
/// balance in clear.
#[allow(clippy::too_many_arguments)]
fn canonical(at: i64, day: i64, p: &Posting, kind: &str, reference: Option<&str>) -> String {
    serde_json::to_string(&(
        at,
        day,
        p.account_id,
        p.student_id,
        kind,
        p.amount,
        p.value_fen,
        p.balance_after,
        reference,
        p.session_id,
        p.teacher_id,
        p.course_id,
        p.campus_id,
        p.actor_id,
    ))
    .unwrap_or_default()
}

/// Append entries in the caller's transaction; returns each posting's
/// (chain, sequence number). Call this last in the transaction: it takes the
/// chain heads' locks, in ascending chain order.
pub async fn post(
    tx: &mut Tx,
    keys: &Keys,
    tenant_id: i64,
    at: i64,
    day: i64,
    postings: &[Posting],
) -> Result<Vec<(i64, i64)>> {
    post_dated(
        tx,
        keys,
        tenant_id,
        at,
        &vec![day; postings.len()],
        postings,
    )
    .await
}

/// [`post`] with a day per posting (`days[i]` for `postings[i]`): a group
/// of check-ins spans lessons of several days.
pub async fn post_dated(
    tx: &mut Tx,
    keys: &Keys,
    tenant_id: i64,
    at: i64,
    days: &[i64],
    postings: &[Posting],
) -> Result<Vec<(i64, i64)>> {
    assert_eq!(days.len(), postings.len(), "a day per posting");
    let mut out = vec![(0, 0); postings.len()];
    let mut by_chain: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
    for (i, p) in postings.iter().enumerate() {
        by_chain.entry(chain_of(p.account_id)).or_default().push(i);
    }
    if by_chain.is_empty() {
        return Ok(out);
    }
    // A group of check-ins touches most of a tenant's chains: every step
    // below is one statement for all of them (not one per chain), so the
    // transaction's length does not grow with the number of chains.
    let names: Vec<String> = by_chain.keys().map(|c| chain_name(tenant_id, *c)).collect();
    let links = chain::claim_chains(tx, &names).await?;
    const INSERT: &str = "INSERT INTO ledger_entries (tenant_id, chain_no, seq, at, day, account_id, student_id, kind, amount, value_fen, balance_after_enc, ref, session_id, teacher_id, course_id, campus_id, actor_id, prev_hash, hash) VALUES ";
    let mut sql = Sql::new(INSERT);
    let mut in_sql = 0;
    let mut heads = Vec::with_capacity(names.len());
    // (day, chain) → (hours, value, entries)
    let mut daily: std::collections::BTreeMap<(i64, i64), (i64, i64, i64)> = Default::default();
    for (((chain_no, idx), link), name) in by_chain.iter().zip(links).zip(names) {
        let mut prev = link.prev_hash;
        let mut seq = link.seq;
        for i in idx {
            let p = &postings[*i];
            let day = days[*i];
            let content = canonical(at, day, p, p.kind, p.reference.as_deref());
            let hash = chain::entry_hash(&prev, seq, &content);
            if in_sql > 0 {
                sql.push(", ");
            }
            sql.push_bind("(?", tenant_id)
                .push_bind(", ?", *chain_no)
                .push_bind(", ?", seq)
                .push_bind(", ?", at)
                .push_bind(", ?", day)
                .push_bind(", ?", p.account_id)
                .push_bind(", ?", p.student_id)
                .push_bind(", ?", p.kind)
                .push_bind(", ?", p.amount)
                .push_bind(", ?", p.value_fen)
                .push_bind(
                    ", ?",
                    encrypt_after(keys, tenant_id, *chain_no, seq, p.balance_after),
                )
                .push_bind(", ?", p.reference.clone())
                .push_bind(", ?", p.session_id)
                .push_bind(", ?", p.teacher_id)
                .push_bind(", ?", p.course_id)
                .push_bind(", ?", p.campus_id)
                .push_bind(", ?", p.actor_id)
                .push_bind(", ?", prev.clone())
                .push_bind(", ?)", hash.clone());
            in_sql += 1;
            // 100 rows of 19 values stay under every backend's parameter limit.
            if in_sql == 100 {
                tx.execute(&std::mem::replace(&mut sql, Sql::new(INSERT)))
                    .await?;
                in_sql = 0;
            }
            out[*i] = (*chain_no, seq);
            prev = hash;
            seq += 1;
            // The day's consumption total of this chain, under the chain's lock.
            if p.kind == "consume" || p.kind == "reverse" {
                let t = daily.entry((day, *chain_no)).or_default();
                t.0 -= p.amount;
                t.1 += p.value_fen;
                t.2 += if p.kind == "consume" { 1 } else { -1 };
            }
        }
        heads.push((name, seq - 1, prev));
    }
    if in_sql > 0 {
        tx.execute(&sql).await?;
    }
    if !daily.is_empty() {
        let values = vec!["(?, ?, ?, ?, ?, ?)"; daily.len()].join(", ");
        let upsert = match tx.backend() {
            crate::db::Backend::MySql => format!("INSERT INTO lesson_daily (tenant_id, day, chain_no, hours, value_fen, entries) VALUES {values} \
                ON DUPLICATE KEY UPDATE hours = hours + VALUES(hours), value_fen = value_fen + VALUES(value_fen), entries = entries + VALUES(entries)"),
            _ => format!("INSERT INTO lesson_daily (tenant_id, day, chain_no, hours, value_fen, entries) VALUES {values} \
                ON CONFLICT (tenant_id, day, chain_no) DO UPDATE SET hours = lesson_daily.hours + excluded.hours, \
                value_fen = lesson_daily.value_fen + excluded.value_fen, entries = lesson_daily.entries + excluded.entries"),
        };
        let mut sql = Sql::new(upsert);
        for ((day, chain_no), (hours, value, n)) in daily {
            sql = sql
                .bind(tenant_id)
                .bind(day)
                .bind(chain_no)
                .bind(hours)
                .bind(value)
                .bind(n);
        }
        tx.execute(&sql).await?;
    }
    chain::advance_chains(tx, &heads).await?;
    Ok(out)
}

const ENTRY_COLS: &str = "chain_no, seq, at, day, account_id, student_id, kind, amount, value_fen, balance_after_enc, ref, session_id, teacher_id, course_id, campus_id, actor_id, prev_hash, hash";

fn read_entry(
    keys: &Keys,
    tenant_id: i64,
    r: &sqlx::any::AnyRow,
) -> Result<(LedgerEntry, chain::StoredEntry)> {
    let seq = r.i64("seq")?;
    let chain_no = r.i64("chain_no")?;
    let p = Posting {
        account_id: r.i64("account_id")?,
        student_id: r.i64("student_id")?,
        kind: "",
        amount: r.i64("amount")?,
        value_fen: r.i64("value_fen")?,
        balance_after: decrypt_after(keys, tenant_id, chain_no, seq, &r.str("balance_after_enc")?)?,
        reference: r.opt_str("ref")?,
        session_id: r.opt_i64("session_id")?,
        teacher_id: r.opt_i64("teacher_id")?,
        course_id: r.opt_i64("course_id")?,
        campus_id: r.opt_i64("campus_id")?,
        actor_id: r.opt_i64("actor_id")?,
    };
    let kind = r.str("kind")?;
    let at = r.i64("at")?;
    let stored = chain::StoredEntry {
        seq,
        content: canonical(at, r.i64("day")?, &p, &kind, p.reference.as_deref()),
        prev_hash: r.str("prev_hash")?,
        hash: r.str("hash")?,
    };
    Ok((
        LedgerEntry {
            chain: chain_no,
            seq,
            at: ms_to_rfc3339(at),
            account_id: p.account_id,
            student_id: p.student_id,
            kind,
            amount: p.amount,
            value_fen: p.value_fen,
            balance_after: p.balance_after,
            reference: p.reference,
            session_id: p.session_id,
            hash: stored.hash.clone(),
        },
        stored,
    ))
}

/// Entries of one account (or one student), oldest first.
pub async fn entries(
    db: &Db,
    keys: &Keys,
    tenant_id: i64,
    account_id: Option<i64>,
    student_id: Option<i64>,
    limit: i64,
) -> Result<Vec<LedgerEntry>> {
    let mut sql = Sql::new(format!(
        "SELECT {ENTRY_COLS} FROM ledger_entries WHERE tenant_id = ?"
    ))
    .bind(tenant_id);
    if let Some(a) = account_id {
        sql.push_bind(" AND account_id = ?", a);
    }
    if let Some(s) = student_id {
        sql.push_bind(" AND student_id = ?", s);
    }
    sql.push_bind(" ORDER BY at, id LIMIT ?", limit);
    db.fetch_all(&sql)
        .await?
        .iter()
        .map(|r| read_entry(keys, tenant_id, r).map(|(e, _)| e))
        .collect()
}

/// Verify a tenant's ledger, chain by chain: the hashes, the heads, each
/// balance ciphertext, and that every balance after equals the running sum
/// of its account's amounts. Names the first entry (chain and sequence
/// number) that was changed, removed or reordered.
pub async fn verify(db: &Db, keys: &Keys, tenant_id: i64) -> Result<LedgerVerifyReport> {
    let mut checked = 0;
    for chain_no in 0..CHAINS {
        let r = verify_chain(db, keys, tenant_id, chain_no).await?;
        checked += r.checked;
        if !r.ok {
            return Ok(LedgerVerifyReport { checked, ..r });
        }
    }
    Ok(LedgerVerifyReport {
        ok: true,
        checked,
        first_broken_chain: None,
        first_broken_seq: None,
        reason: None,
    })
}

async fn verify_chain(
    db: &Db,
    keys: &Keys,
    tenant_id: i64,
    chain_no: i64,
) -> Result<LedgerVerifyReport> {
    let mut v = chain::Verifier::default();
    let mut sums: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    let mut after_seq = 0i64;
    let broken = |v: &chain::Verifier, seq: i64, reason: String| LedgerVerifyReport {
        ok: false,
        checked: v.checked,
        first_broken_chain: Some(chain_no),
        first_broken_seq: Some(seq),
        reason: Some(format!("chain {chain_no}: {reason}")),
    };
    loop {
        let rows = db
            .fetch_all(
                &Sql::new(format!(
                    "SELECT {ENTRY_COLS} FROM ledger_entries WHERE tenant_id = ? AND chain_no = ? AND seq > ? ORDER BY seq LIMIT 5000"
                ))
                .bind(tenant_id)
                .bind(chain_no)
                .bind(after_seq),
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let seq = r.i64("seq")?;
            let (e, stored) = match read_entry(keys, tenant_id, r) {
                Ok(x) => x,
                Err(err) => {
                    return Ok(broken(
                        &v,
                        seq,
                        format!("entry {seq}: its balance cannot be read: {err}"),
                    ))
                }
            };
            after_seq = seq;
            if let Err(b) = v.push(&stored) {
                return Ok(broken(&v, b.seq, b.reason));
            }
            let sum = sums.entry(e.account_id).or_default();
            *sum += e.amount;
            if *sum != e.balance_after {
                return Ok(broken(
                    &v,
                    seq,
                    format!(
                        "entry {seq}: balance after {} is not the sum of the account's entries ({})",
                        e.balance_after, *sum
                    ),
                ));
            }
        }
    }
    let head = db
        .fetch_optional(
            &Sql::new("SELECT seq, head_hash FROM chain_heads WHERE chain = ?")
                .bind(chain_name(tenant_id, chain_no)),
        )
        .await?;
    let (head_seq, head_hash) = match head {
        Some(r) => (r.i64("seq")?, r.str("head_hash")?),
        None => (0, chain::GENESIS.to_string()),
    };
    if let Err(b) = v.finish(head_seq, &head_hash) {
        return Ok(broken(&v, b.seq, b.reason));
    }
    Ok(LedgerVerifyReport {
        ok: true,
        checked: v.checked,
        first_broken_chain: None,
        first_broken_seq: None,
        reason: None,
    })
}

/// Re-encrypt every lesson balance written under `old` with `new` (the
/// newest key id). Rows already under the new key are left alone, so the
/// command can be run again after an interruption. Returns rows rewritten.
pub async fn rotate_keys(db: &Db, old: &Keys, new: &Keys) -> Result<u64> {
    let prefix = format!("{}:%", old.key_id());
    let mut n = 0u64;
    loop {
        let rows = db
            .fetch_all(
                &Sql::new("SELECT id, balance_enc FROM lesson_accounts WHERE balance_enc LIKE ? ORDER BY id LIMIT 1000")
                    .bind(prefix.as_str()),
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        let mut tx = db.begin().await?;
        for r in &rows {
            let id = r.i64("id")?;
            let old_enc = r.str("balance_enc")?;
            let b = decrypt_balance(old, id, &old_enc)?;
            n += tx
                .execute(
                    &Sql::new("UPDATE lesson_accounts SET balance_enc = ? WHERE id = ? AND balance_enc = ?")
                        .bind(encrypt_balance(new, id, b))
                        .bind(id)
                        .bind(old_enc),
                )
                .await?;
        }
        tx.commit().await?;
    }
    loop {
        let rows = db
            .fetch_all(
                &Sql::new("SELECT id, tenant_id, chain_no, seq, balance_after_enc FROM ledger_entries WHERE balance_after_enc LIKE ? ORDER BY id LIMIT 5000")
                    .bind(prefix.as_str()),
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        let mut tx = db.begin().await?;
        for r in &rows {
            let (id, t, c, seq) = (
                r.i64("id")?,
                r.i64("tenant_id")?,
                r.i64("chain_no")?,
                r.i64("seq")?,
            );
            let enc = r.str("balance_after_enc")?;
            let v = decrypt_after(old, t, c, seq, &enc)?;
            n += tx
                .execute(
                    &Sql::new("UPDATE ledger_entries SET balance_after_enc = ? WHERE id = ? AND balance_after_enc = ?")
                        .bind(encrypt_after(new, t, c, seq, v))
                        .bind(id)
                        .bind(enc),
                )
                .await?;
        }
        tx.commit().await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debits_take_paid_then_bonus_then_credit() {
        let b = Balance {
            paid: 100,
            bonus: 50,
        };
        assert_eq!(
            b.debit(80),
            (
                Balance {
                    paid: 20,
                    bonus: 50
                },
                80
            )
        );
        assert_eq!(b.debit(120), (Balance { paid: 0, bonus: 30 }, 100));
        assert_eq!(
            b.debit(200),
            (
                Balance {
                    paid: -50,
                    bonus: 0
                },
                150
            )
        );
        let neg = Balance {
            paid: -10,
            bonus: 0,
        };
        assert_eq!(
            neg.debit(10),
            (
                Balance {
                    paid: -20,
                    bonus: 0
                },
                10
            )
        );
    }

    #[test]
    fn balances_are_bound_to_their_row() {
        let k = Keys::from_bytes(&[3u8; 32]);
        let enc = encrypt_balance(&k, 7, Balance { paid: 5, bonus: 1 });
        assert_eq!(
            decrypt_balance(&k, 7, &enc).unwrap(),
            Balance { paid: 5, bonus: 1 }
        );
        assert!(decrypt_balance(&k, 8, &enc).is_err());
        let e = encrypt_after(&k, 1, 5, 2, -30);
        assert_eq!(decrypt_after(&k, 1, 5, 2, &e).unwrap(), -30);
        assert!(decrypt_after(&k, 1, 5, 3, &e).is_err());
        assert!(decrypt_after(&k, 1, 6, 2, &e).is_err());
    }
}
