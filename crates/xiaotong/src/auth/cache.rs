//! A short-lived cache of resolved callers, so that a busy client does not
//! cost four queries per request to authenticate. Entries live a few
//! seconds; every change to sessions, passwords, roles or people's active
//! state clears the cache of this process, and other processes see the
//! change within the lifetime of an entry.

use super::model::Principal;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(5);
const MAX_ENTRIES: usize = 20_000;

#[derive(Default)]
pub struct PrincipalCache {
    entries: Mutex<HashMap<String, (Instant, Principal)>>,
}

impl std::fmt::Debug for PrincipalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrincipalCache")
    }
}

impl PrincipalCache {
    pub fn get(&self, key: &str) -> Option<Principal> {
        let map = self.entries.lock().ok()?;
        map.get(key)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, p)| p.clone())
    }

    pub fn put(&self, key: String, p: Principal) {
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= MAX_ENTRIES {
                map.retain(|_, (at, _)| at.elapsed() < TTL);
                if map.len() >= MAX_ENTRIES {
                    map.clear();
                }
            }
            map.insert(key, (Instant::now(), p));
        }
    }

    pub fn clear(&self) {
        if let Ok(mut map) = self.entries.lock() {
            map.clear();
        }
    }
}
