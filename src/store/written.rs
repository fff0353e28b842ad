//! What this node's commands wrote last: per account and per stream, the cursor of the newest
//! event. A read waits until the projections have applied the cursor its caller (or its
//! thread) was last written at, instead of every write waiting before it answers; a read with
//! nothing pending waits for nothing.
//!
//! Only commands are recorded (a reply's chunk batches are not: the reply's end is a command,
//! and it comes after them). The maps are bounded: past [`KEEP`] entries the older half goes,
//! long applied by then (the projector trails the log by one batch).

use std::collections::HashMap;
use std::sync::Mutex;

use super::log::Cursor;

/// Entries kept per map before the older half is dropped.
const KEEP: usize = 8192;

/// The newest cursor this node's commands wrote, per account and per stream.
#[derive(Default)]
pub struct Written {
    maps: Mutex<Maps>,
}

#[derive(Default)]
struct Maps {
    accounts: HashMap<String, Cursor>,
    streams: HashMap<(&'static str, String), Cursor>,
    /// The newest of all.
    newest: Cursor,
}

impl Written {
    /// Records a command's append to stream `(aggregate, id)` on behalf of `actor`.
    pub fn record(&self, aggregate: &'static str, id: &str, actor: Option<&str>, cursor: Cursor) {
        let Ok(mut maps) = self.maps.lock() else {
            return;
        };
        maps.newest = maps.newest.max(cursor);
        raise(&mut maps.streams, (aggregate, id.to_owned()), cursor);
        if let Some(actor) = actor {
            raise(&mut maps.accounts, actor.to_owned(), cursor);
        }
    }

    /// The cursor of the newest event this node's commands wrote on behalf of `account`.
    pub fn by_account(&self, account: &str) -> Option<Cursor> {
        self.maps.lock().ok()?.accounts.get(account).copied()
    }

    /// The cursor of the newest event any of this node's commands wrote: for reads across
    /// accounts (an admin's reports, a shared thread).
    pub fn newest(&self) -> Option<Cursor> {
        let maps = self.maps.lock().ok()?;
        (maps.newest > Cursor::default()).then_some(maps.newest)
    }

    /// The cursor of the newest event this node's commands appended to `(aggregate, id)`.
    pub fn to_stream(&self, aggregate: &'static str, id: &str) -> Option<Cursor> {
        let maps = self.maps.lock().ok()?;
        maps.streams.get(&(aggregate, id.to_owned())).copied()
    }
}

fn raise<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Cursor>, key: K, cursor: Cursor) {
    let entry = map.entry(key).or_default();
    *entry = (*entry).max(cursor);
    if map.len() > KEEP {
        let mut cursors: Vec<Cursor> = map.values().copied().collect();
        let (_, median, _) = cursors.select_nth_unstable(map.len() / 2);
        let median = *median;
        map.retain(|_, c| *c > median);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_and_its_actor_keep_their_newest_cursor() {
        let written = Written::default();
        written.record("Thread", "t1", Some("a1"), (0, 5));
        written.record("Thread", "t2", Some("a1"), (0, 7));
        written.record("Thread", "t1", None, (0, 3));
        assert_eq!(written.to_stream("Thread", "t1"), Some((0, 5)));
        assert_eq!(written.to_stream("Thread", "t2"), Some((0, 7)));
        assert_eq!(written.to_stream("Account", "t1"), None);
        assert_eq!(written.by_account("a1"), Some((0, 7)));
        assert_eq!(written.by_account("a2"), None);
        assert_eq!(written.newest(), Some((0, 7)));
        assert_eq!(Written::default().newest(), None);
    }

    #[test]
    fn past_the_bound_the_older_half_goes_and_the_newest_stay() {
        let written = Written::default();
        for i in 0..=KEEP as i64 {
            written.record("Thread", &format!("t{i}"), Some(&format!("a{i}")), (0, i));
        }
        assert_eq!(written.to_stream("Thread", "t0"), None);
        assert_eq!(written.by_account("a0"), None);
        let newest = format!("t{KEEP}");
        assert_eq!(written.to_stream("Thread", &newest), Some((0, KEEP as i64)));
        let kept = written.maps.lock().unwrap().streams.len();
        assert!(kept < KEEP / 2 + 2, "{kept}");
    }
}
