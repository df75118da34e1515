//! The page cache's replacement policy: 2Q (Johnson and Shasha, VLDB
//! 1994), so that one large sequential scan cannot flush the pages a
//! workload keeps coming back to (docs/storage.md).
//!
//! A page seen for the first time enters `A1in`, a FIFO that holds about a
//! quarter of the cache. When it falls out of `A1in` unreferenced, only its
//! key is remembered, in the ghost FIFO `A1out`. A page asked for again
//! while its key is in `A1out` has proven itself and enters `Am`, an LRU
//! list for the rest of the cache. A scan touches each page once: its pages
//! pass through `A1in` and leave, and `Am` is untouched.
//!
//! The policy only keeps lists of keys: the cache owns the pages, tells
//! the policy about accesses, and asks it for a victim when it needs a
//! frame; pages the cache pins (mapped, or with I/O in flight) are skipped.

use alloc::collections::{BTreeMap, VecDeque};

/// Where a key sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum List {
    A1in,
    Am,
}

/// What the cache should do about an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The page is cached.
    Hit,
    /// Not cached: fetch it, then [`TwoQ::insert`] it.
    Miss,
}

/// Counters since the policy was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    /// Misses whose key was in the ghost list (they go straight to `Am`).
    pub ghost_hits: u64,
    pub evictions: u64,
}

/// 2Q over keys `K` (a file and page index, say), for a cache of
/// `capacity` pages.
pub struct TwoQ<K: Ord + Copy> {
    capacity: usize,
    kin: usize,
    kout: usize,
    /// Every cached key: its list and its stamp there.
    entries: BTreeMap<K, (List, u64)>,
    /// `A1in` by insertion stamp (oldest first), `Am` by last-use stamp.
    a1in: BTreeMap<u64, K>,
    am: BTreeMap<u64, K>,
    /// Ghost keys, oldest first; `ghosts` indexes them.
    a1out: VecDeque<K>,
    ghosts: BTreeMap<K, ()>,
    stamp: u64,
    stats: Stats,
}

impl<K: Ord + Copy> TwoQ<K> {
    /// `A1in` gets a quarter of `capacity`, the ghosts remember half of it
    /// (the paper's tuning).
    pub fn new(capacity: usize) -> TwoQ<K> {
        let capacity = capacity.max(1);
        TwoQ {
            capacity,
            kin: (capacity / 4).max(1),
            kout: (capacity / 2).max(1),
            entries: BTreeMap::new(),
            a1in: BTreeMap::new(),
            am: BTreeMap::new(),
            a1out: VecDeque::new(),
            ghosts: BTreeMap::new(),
            stamp: 0,
            stats: Stats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    fn next_stamp(&mut self) -> u64 {
        self.stamp += 1;
        self.stamp
    }

    /// A read or write of `key`.
    pub fn access(&mut self, key: K) -> Access {
        match self.entries.get(&key).copied() {
            Some((List::Am, stamp)) => {
                // Most recently used again.
                self.am.remove(&stamp);
                let s = self.next_stamp();
                self.am.insert(s, key);
                self.entries.insert(key, (List::Am, s));
                self.stats.hits += 1;
                Access::Hit
            }
            // In A1in: correlated references do not promote (the paper).
            Some((List::A1in, _)) => {
                self.stats.hits += 1;
                Access::Hit
            }
            None => {
                self.stats.misses += 1;
                Access::Miss
            }
        }
    }

    /// A page fetched after a miss is now cached (the cache made room
    /// first with [`TwoQ::victim`] when [`TwoQ::is_full`]). A key
    /// remembered as a ghost goes to `Am`, any other to `A1in`.
    pub fn insert(&mut self, key: K) {
        if self.entries.contains_key(&key) {
            return;
        }
        let s = self.next_stamp();
        if self.ghosts.remove(&key).is_some() {
            self.a1out.retain(|k| *k != key);
            self.stats.ghost_hits += 1;
            self.am.insert(s, key);
            self.entries.insert(key, (List::Am, s));
        } else {
            self.a1in.insert(s, key);
            self.entries.insert(key, (List::A1in, s));
        }
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.capacity
    }

    /// The page to evict (and forgets it): the oldest of `A1in` while it
    /// holds more than its share, else the least recently used of `Am`;
    /// `pinned` pages are passed over. `None` if every page is pinned.
    pub fn victim(&mut self, pinned: impl Fn(&K) -> bool) -> Option<K> {
        let from_a1in = self.a1in.len() > self.kin || self.am.is_empty();
        let pick = |list: &BTreeMap<u64, K>| list.iter().find(|(_, k)| !pinned(k)).map(|(s, k)| (*s, *k));
        let (list, (stamp, key)) = match from_a1in {
            true => pick(&self.a1in)
                .map(|v| (List::A1in, v))
                .or_else(|| pick(&self.am).map(|v| (List::Am, v)))?,
            false => pick(&self.am)
                .map(|v| (List::Am, v))
                .or_else(|| pick(&self.a1in).map(|v| (List::A1in, v)))?,
        };
        self.entries.remove(&key);
        match list {
            List::A1in => {
                self.a1in.remove(&stamp);
                // Remembered: asked for again soon, it has proven itself.
                self.a1out.push_back(key);
                self.ghosts.insert(key, ());
                if self.a1out.len() > self.kout
                    && let Some(old) = self.a1out.pop_front()
                {
                    self.ghosts.remove(&old);
                }
            }
            List::Am => {
                self.am.remove(&stamp);
            }
        }
        self.stats.evictions += 1;
        Some(key)
    }

    /// Forgets `key` (the page was dropped: a file truncated or deleted).
    pub fn remove(&mut self, key: &K) {
        if let Some((list, stamp)) = self.entries.remove(key) {
            match list {
                List::A1in => self.a1in.remove(&stamp),
                List::Am => self.am.remove(&stamp),
            };
        }
        if self.ghosts.remove(key).is_some() {
            self.a1out.retain(|k| k != key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache of `TwoQ` with no pins: access, and insert with eviction on
    /// a miss. Returns whether it hit.
    fn touch(q: &mut TwoQ<u64>, key: u64) -> bool {
        match q.access(key) {
            Access::Hit => true,
            Access::Miss => {
                if q.is_full() {
                    q.victim(|_| false).expect("something to evict");
                }
                q.insert(key);
                false
            }
        }
    }

    /// A hot set of 60 pages used over and over while a scan streams new
    /// pages through a 100-page cache, one scan page between hot uses: the
    /// hot pages' reuse distance (120) is beyond the capacity.
    const HOT: u64 = 60;
    const ROUNDS: u64 = 20_000;

    fn workload(mut touch: impl FnMut(u64) -> bool) -> f64 {
        let mut hot_hits = 0;
        for i in 0..ROUNDS {
            touch(1_000_000 + i);
            let hit = touch(i % HOT);
            if i >= ROUNDS / 2 && hit {
                hot_hits += 1;
            }
        }
        hot_hits as f64 / (ROUNDS / 2) as f64
    }

    #[test]
    fn a_scan_does_not_flush_the_hot_set() {
        let mut q = TwoQ::new(100);
        let ratio = workload(|k| touch(&mut q, k));
        assert!(ratio > 0.99, "hot hit ratio {ratio}");
        assert!((0..HOT).all(|k| q.contains(&k)));
        assert!(q.len() <= 100);
    }

    #[test]
    fn lru_loses_the_hot_set_to_the_same_scan() {
        // The same workload through a plain LRU: for contrast, and to show
        // that the test above can fail.
        let mut lru: VecDeque<u64> = VecDeque::new();
        let ratio = workload(|k| {
            let hit = match lru.iter().position(|&x| x == k) {
                Some(i) => {
                    lru.remove(i);
                    true
                }
                None => {
                    if lru.len() == 100 {
                        lru.pop_front();
                    }
                    false
                }
            };
            lru.push_back(k);
            hit
        });
        assert_eq!(ratio, 0.0);
    }

    #[test]
    fn a_page_asked_for_again_after_leaving_a1in_goes_to_am() {
        let mut q = TwoQ::new(8);
        for k in 0..8 {
            touch(&mut q, k);
        }
        // Page 0 is the oldest of A1in: the next miss evicts it to the ghosts.
        assert!(!touch(&mut q, 100));
        assert!(!q.contains(&0));
        assert!(!touch(&mut q, 0), "a miss, but a ghost hit");
        assert_eq!(q.stats().ghost_hits, 1);
        // In Am now: it survives a flood of new pages.
        for k in 200..300 {
            touch(&mut q, k);
        }
        assert!(q.contains(&0));
    }

    #[test]
    fn pinned_pages_are_never_victims() {
        let mut q = TwoQ::new(4);
        for k in 0..4 {
            touch(&mut q, k);
        }
        let v = q.victim(|&k| k != 3).expect("3 is evictable");
        assert_eq!(v, 3);
        assert!(q.victim(|_| true).is_none(), "everything pinned");
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn random_use_keeps_the_lists_consistent() {
        let mut next = crate::testing::splitmix(11);
        let mut q = TwoQ::new(64);
        for _ in 0..50_000 {
            let k = if next() % 3 == 0 { next() % 40 } else { next() % 5000 };
            match next() % 10 {
                0 => q.remove(&k),
                _ => {
                    touch(&mut q, k);
                }
            }
            assert!(q.len() <= 64);
            assert_eq!(q.entries.len(), q.a1in.len() + q.am.len());
            assert_eq!(q.ghosts.len(), q.a1out.len());
            assert!(q.a1out.len() <= q.kout);
            assert!(q.ghosts.keys().all(|g| !q.entries.contains_key(g)));
        }
        let s = q.stats();
        assert!(s.hits > 0 && s.misses > 0 && s.evictions > 0);
    }
}
