//! One async lock per key (a stream, a thread, an account), created on first use and forgotten
//! when nobody holds or waits for it. Serialises work on one key within a node; races between
//! nodes are decided by the event store's optimistic concurrency.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

type Entry = Arc<tokio::sync::Mutex<()>>;

/// A map of async locks keyed by `K`.
pub struct KeyedLocks<K: Eq + Hash + Clone> {
    locks: Arc<Mutex<HashMap<K, Entry>>>,
}

impl<K: Eq + Hash + Clone> Default for KeyedLocks<K> {
    fn default() -> Self {
        Self {
            locks: Arc::default(),
        }
    }
}

impl<K: Eq + Hash + Clone> KeyedLocks<K> {
    /// Waits for the lock of `key`; it is held until the guard drops.
    pub async fn lock(&self, key: K) -> KeyedGuard<K> {
        let entry = self
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone();
        let guard = entry.lock_owned().await;
        KeyedGuard {
            guard: Some(guard),
            key,
            locks: self.locks.clone(),
        }
    }

    /// How many keys have a lock now (held or waited for).
    pub fn len(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no key has a lock now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A held lock of one key.
pub struct KeyedGuard<K: Eq + Hash + Clone> {
    guard: Option<OwnedMutexGuard<()>>,
    key: K,
    locks: Arc<Mutex<HashMap<K, Entry>>>,
}

impl<K: Eq + Hash + Clone> Drop for KeyedGuard<K> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the map holds the entry: nobody waits for it any more.
        if locks
            .get(&self.key)
            .is_some_and(|entry| Arc::strong_count(entry) == 1)
        {
            locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn holders_of_one_key_take_turns_and_the_key_is_forgotten_after() {
        let locks = Arc::new(KeyedLocks::<String>::default());
        let first = locks.lock("a".into()).await;
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _second = locks.lock("a".into()).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the second holder waits");
        let _other = locks.lock("b".into()).await;
        drop(first);
        waiter.await.unwrap();
        assert_eq!(locks.len(), 1, "only b is still held");
    }
}
