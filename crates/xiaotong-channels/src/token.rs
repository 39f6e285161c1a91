//! Access-token cache shared by the WeCom and DingTalk application adapters:
//! one token per app credential, refreshed `margin` before it expires,
//! single-flight (the lock is held while fetching), dropped on demand when
//! the provider says it is invalid.

use crate::model::DeliveryOutcome;
use crate::secret::Secret;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

pub(crate) struct TokenCache {
    slot: Mutex<Option<Cached>>,
    margin: Duration,
}

impl TokenCache {
    pub(crate) fn new(margin: Duration) -> Self {
        Self {
            slot: Mutex::new(None),
            margin,
        }
    }

    /// The cached token, or a fresh one from `fetch`, which returns the
    /// token and its lifetime in seconds.
    pub(crate) async fn get<F, Fut>(&self, fetch: F) -> Result<Secret, DeliveryOutcome>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, u64), DeliveryOutcome>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(c) = slot.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let (token, expires_in) = fetch().await?;
        let ttl = Duration::from_secs(expires_in)
            .saturating_sub(self.margin)
            .max(Duration::from_secs(1));
        let token = Secret::new(token);
        *slot = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + ttl,
        });
        Ok(token)
    }

    /// Drops `token` if it is still the cached one.
    pub(crate) async fn invalidate(&self, token: &Secret) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|c| &c.token == token) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn caches_single_flight_and_invalidates() {
        let cache = Arc::new(TokenCache::new(Duration::from_secs(300)));
        let calls = Arc::new(AtomicU32::new(0));
        let fetch = |calls: Arc<AtomicU32>| async move {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok((format!("t{n}"), 7200))
        };
        let mut handles = Vec::new();
        for _ in 0..8 {
            let (cache, calls) = (cache.clone(), calls.clone());
            handles.push(tokio::spawn(
                async move { cache.get(|| fetch(calls)).await },
            ));
        }
        for h in handles {
            let t = h.await.expect("join").expect("token");
            assert_eq!(t.expose(), "t1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        cache.invalidate(&Secret::new("other")).await;
        assert_eq!(
            cache
                .get(|| fetch(calls.clone()))
                .await
                .expect("token")
                .expose(),
            "t1"
        );
        cache.invalidate(&Secret::new("t1")).await;
        assert_eq!(
            cache
                .get(|| fetch(calls.clone()))
                .await
                .expect("token")
                .expose(),
            "t2"
        );
    }
}
