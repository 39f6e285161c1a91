//! Live inbox updates. A watcher reads new inbox rows from the database
//! (so entries written by any `serve` instance reach browsers connected to
//! any other) and broadcasts who got something; each server-sent-event
//! stream forwards the events for its own person.

use crate::db::{Db, RowExt, Sql};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

/// People (tenant, person) with new inbox entries.
pub type Batch = Arc<HashSet<(i64, i64)>>;

pub struct Hub {
    tx: broadcast::Sender<Batch>,
    wake: Notify,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tx: broadcast::channel(256).0,
            wake: Notify::new(),
        }
    }
}

impl Hub {
    pub fn subscribe(&self) -> broadcast::Receiver<Batch> {
        self.tx.subscribe()
    }

    /// Tells one person's streams that their unread count changed (they read
    /// something in another tab).
    pub fn touch(&self, tenant_id: i64, person_id: i64) {
        if self.tx.receiver_count() > 0 {
            let _ = self
                .tx
                .send(Arc::new(HashSet::from([(tenant_id, person_id)])));
        }
    }

    /// Look for new entries now (this process just wrote some).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// How far back each poll looks again: ids are allocated before commit, so a
/// row with a lower id can become visible after a higher one.
const REWIND: i64 = 1_000;

pub async fn watch(
    db: Db,
    hub: Arc<crate::messaging::pipeline::Runtime>,
    shutdown: CancellationToken,
) {
    let mut seen: BTreeSet<i64> = BTreeSet::new();
    let mut floor = match db
        .fetch_one(&Sql::new("SELECT COALESCE(MAX(id), 0) AS m FROM inbox"))
        .await
        .and_then(|r| r.i64("m"))
    {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "inbox watcher could not start");
            0
        }
    };
    loop {
        let idle = hub.live.tx.receiver_count() == 0;
        let wait = if idle {
            Duration::from_secs(2)
        } else {
            Duration::from_millis(300)
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = hub.live.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        let from = floor;
        let rows = match db
            .fetch_all(
                &Sql::new("SELECT id, tenant_id, person_id FROM inbox WHERE id > ? ORDER BY id LIMIT 50000").bind(from),
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "inbox watcher poll failed");
                continue;
            }
        };
        let mut batch = HashSet::new();
        let mut max = from;
        for r in &rows {
            let (Ok(id), Ok(t), Ok(p)) = (r.i64("id"), r.i64("tenant_id"), r.i64("person_id"))
            else {
                continue;
            };
            max = max.max(id);
            if seen.insert(id) {
                batch.insert((t, p));
            }
        }
        // Keep a window of seen ids below the newest, and look again from its start.
        let new_floor = (max - REWIND).max(floor);
        seen = seen.split_off(&(new_floor + 1));
        floor = new_floor;
        if !batch.is_empty() && hub.live.tx.receiver_count() > 0 {
            let _ = hub.live.tx.send(Arc::new(batch));
        }
    }
}
