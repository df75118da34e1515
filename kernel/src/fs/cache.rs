//! The page cache (docs/storage.md): file data in *folios* of up to 512
//! pages (2 MiB, physically contiguous, so one device request fills one;
//! a file's last folio holds only the pages the file has), keyed by
//! (inode, folio index), filled by DMA, replaced by 2Q (`kcore::twoq`: a
//! sequential scan passes through without flushing what is used again). A
//! folio being filled or dirty is pinned. The cache is used under the
//! storage lock; waiting for the device happens without it.
//!
//! Why 2 MiB: under TCG each request costs an interrupt, a wake-up and
//! QEMU's own work, so 64 KiB folios read a 256 MiB file cold at 210 MiB/s,
//! 1 MiB ones at about 1.3 GiB/s, 2 MiB ones at about 2.1 GiB/s, and 4 MiB
//! ones were slower again (docs/benchmarks.md, "Files").

use aether_abi::disk::BLOCK_SIZE;
use aether_abi::fs::{CacheStats, FsError};
use aethfs::Fs;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use kcore::twoq::TwoQ;

use super::store::{DiskStore, SECTORS_PER_BLOCK};
use crate::block::{self, BlkError, DmaBuf, Ticket};

pub const FOLIO_PAGES: u64 = 512;
pub const FOLIO_BYTES: u64 = FOLIO_PAGES * BLOCK_SIZE as u64;
const BS: u64 = BLOCK_SIZE as u64;

/// (inode, folio index in the file).
pub type Key = (u64, u64);

pub enum State {
    Ready(DmaBuf),
    /// A read is in flight; its ticket, until a waiter takes it (then
    /// `None`: others wait for that waiter), the file's size when it
    /// started (what lies past it is zeroed when it lands) and the read's
    /// number (a waiter's landing applies only to the read it waited for:
    /// the folio may have been dropped and read again meanwhile).
    Loading(Option<Ticket>, u64, u64),
}

pub struct Folio {
    pub state: State,
    pub dirty: bool,
    /// Brought in by readahead and not read yet.
    pub ahead: bool,
    /// Pages its buffer has.
    pub pages: u64,
    /// Pages of it mapped into processes: while any are, it is neither
    /// evicted nor dropped, and its buffer never changes.
    pub maps: u32,
}

pub struct Cache {
    folios: BTreeMap<Key, Folio>,
    policy: TwoQ<Key>,
    /// Pages the folios hold, and the most they may (the budget counts
    /// pages, not folios: small files' short folios take what they use).
    pages: u64,
    capacity_pages: u64,
    pub stats: CacheStats,
}

/// Pages of file data folio `f` holds in a file of `size` bytes.
pub fn folio_blocks(f: u64, size: u64) -> u64 {
    size.div_ceil(BS).saturating_sub(f * FOLIO_PAGES).min(FOLIO_PAGES)
}

/// Zeroes what lies past the end of the file in a folio's buffer (a device
/// block's bytes past the size are not the file's).
pub fn zero_past_end(buf: &mut DmaBuf, f: u64, size: u64) {
    let from = size.saturating_sub(f * FOLIO_BYTES) as usize;
    if let Some(tail) = buf.as_mut_slice().get_mut(from..) {
        tail.fill(0);
    }
}

/// Reads file blocks `[from, to)` of folio `f` into `buf`, piece by piece
/// (blocking; for folios that cross an extent boundary).
fn read_pieces(fs: &mut Fs<DiskStore>, ino: u64, f: u64, buf: &mut DmaBuf, from: u64, to: u64) -> Result<(), FsError> {
    let mut fb = from;
    while fb < to {
        let (dev, run) = super::map(fs, ino, f * FOLIO_PAGES + fb)?.ok_or(FsError::Corrupt)?;
        let n = run.min(to - fb);
        block::with_disk(|d| d.read(dev * SECTORS_PER_BLOCK, buf, (fb * BS) as usize, (n * BS) as usize))
            .map_err(|_| FsError::Io)?;
        fb += n;
    }
    Ok(())
}

impl Cache {
    /// A cache of `capacity_pages` pages (in folios of any size: the
    /// policy tracks up to one folio per 16 pages).
    pub fn new(capacity_pages: u64) -> Cache {
        Cache {
            folios: BTreeMap::new(),
            policy: TwoQ::new((capacity_pages / 16).max(16) as usize),
            pages: 0,
            capacity_pages,
            stats: CacheStats {
                capacity: capacity_pages,
                ..CacheStats::default()
            },
        }
    }

    pub fn get_mut(&mut self, key: &Key) -> Option<&mut Folio> {
        self.folios.get_mut(key)
    }

    /// A use of a cached folio (the replacement policy's view).
    pub fn touch(&mut self, key: Key) {
        self.policy.access(key);
    }

    /// Counters now.
    pub fn stats(&self) -> CacheStats {
        let mut s = self.stats;
        s.pages = self.folios.values().map(|f| f.pages).sum();
        s.dirty = self.folios.values().filter(|f| f.dirty).map(|f| f.pages).sum();
        s.evictions = self.policy.stats().evictions;
        s
    }

    /// Evicts the policy's victim among the folios neither dirty, mapped
    /// nor being read: the pages it held, `None` if every folio is pinned.
    fn evict_one(&mut self) -> Option<u64> {
        let folios = &self.folios;
        let pinned = |k: &Key| {
            folios
                .get(k)
                .is_some_and(|f| f.dirty || f.maps > 0 || matches!(f.state, State::Loading(..)))
        };
        let victim = self.policy.victim(pinned)?;
        let f = self.remove(&victim)?;
        if f.ahead {
            self.stats.readahead_wasted += 1;
        }
        Some(f.pages)
    }

    /// Takes a folio out (the policy forgets it when it chose it, or is
    /// told by the caller).
    fn remove(&mut self, key: &Key) -> Option<Folio> {
        let f = self.folios.remove(key)?;
        self.pages -= f.pages;
        Some(f)
    }

    /// Evicts until a folio of `pages` more fits; false if every folio is
    /// pinned.
    fn make_room(&mut self, pages: u64) -> bool {
        while self.policy.is_full() || self.pages + pages > self.capacity_pages {
            if self.evict_one().is_none() {
                return false;
            }
        }
        true
    }

    fn insert(&mut self, key: Key, state: State, pages: u64, ahead: bool) {
        self.policy.insert(key);
        self.pages += pages;
        self.folios.insert(
            key,
            Folio {
                state,
                dirty: false,
                ahead,
                pages,
                maps: 0,
            },
        );
    }

    /// A buffer of `pages` for a folio, making room first. Not cleared
    /// when the device fills it all.
    fn buffer(&mut self, pages: u64, zeroed: bool) -> Result<DmaBuf, FsError> {
        if !self.make_room(pages.max(1)) {
            return Err(FsError::NoMemory);
        }
        let bytes = (pages.max(1) * BS) as usize;
        let alloc = || {
            if zeroed {
                DmaBuf::new(bytes)
            } else {
                DmaBuf::for_device_writes(bytes)
            }
        };
        // Memory short (processes took it): the cache gives way first.
        match alloc() {
            Some(b) => Ok(b),
            None if self.shrink(pages + FOLIO_PAGES) > 0 => alloc().ok_or(FsError::NoMemory),
            None => Err(FsError::NoMemory),
        }
    }

    /// Evicts clean, unpinned folios until `pages` pages are freed (or none
    /// is left); the pages freed.
    pub fn shrink(&mut self, pages: u64) -> u64 {
        let mut freed = 0;
        while freed < pages {
            match self.evict_one() {
                Some(p) => freed += p,
                None => break,
            }
        }
        freed
    }

    /// Starts reading folio `f` of `ino` (size `size`), ahead of a reader
    /// or for one: one device request when its blocks are contiguous on
    /// the disk, else read at once piece by piece. `Ok(false)`: the
    /// device's queue is full (start it later); with `must`, waits for
    /// room instead.
    pub fn start_fill(
        &mut self,
        fs: &mut Fs<DiskStore>,
        ino: u64,
        f: u64,
        size: u64,
        ahead: bool,
        must: bool,
    ) -> Result<bool, FsError> {
        let key = (ino, f);
        if self.folios.contains_key(&key) {
            return Ok(true);
        }
        let blocks = folio_blocks(f, size);
        if blocks == 0 {
            return Ok(true);
        }
        let (dev, run) = super::map(fs, ino, f * FOLIO_PAGES)?.ok_or(FsError::Corrupt)?;
        let mut buf = self.buffer(blocks, false)?;
        self.stats.read_requests += 1;
        self.stats.read_pages += blocks;
        if ahead {
            self.stats.readahead += 1;
        }
        if run >= blocks {
            let (sector, len) = (dev * SECTORS_PER_BLOCK, (blocks * BS) as usize);
            let submitted = if must {
                block::submit_read(sector, buf, len).map_err(|e| (e, None))
            } else {
                block::try_submit_read(sector, buf, len)
            };
            return match submitted {
                Ok(ticket) => {
                    let id = ticket.id();
                    self.insert(key, State::Loading(Some(ticket), size, id), blocks, ahead);
                    Ok(true)
                }
                Err((BlkError::QueueFull, _)) => {
                    self.stats.read_requests -= 1;
                    self.stats.read_pages -= blocks;
                    if ahead {
                        self.stats.readahead -= 1;
                    }
                    Ok(false)
                }
                Err(_) => Err(FsError::Io),
            };
        }
        // Across an extent boundary: each piece in turn.
        read_pieces(fs, ino, f, &mut buf, 0, blocks)?;
        zero_past_end(&mut buf, f, size);
        self.insert(key, State::Ready(buf), blocks, ahead);
        Ok(true)
    }

    /// Makes folio `f` ready to take a write ending at byte `end` of the
    /// file: read first where the write does not cover what the file held
    /// (`old_size`; `covers_all`), zero elsewhere, and big enough.
    pub fn for_write(
        &mut self,
        fs: &mut Fs<DiskStore>,
        ino: u64,
        f: u64,
        old_size: u64,
        end: u64,
        covers_all: bool,
    ) -> Result<(), FsError> {
        let key = (ino, f);
        let need = folio_blocks(f, end);
        if let Some(folio) = self.folios.get_mut(&key) {
            // A file's last folio grows with it, doubling (appends copy
            // each byte a bounded number of times, and a small file's
            // folio stays small).
            if let State::Ready(buf) = &mut folio.state
                && folio.pages < need
            {
                if folio.maps > 0 {
                    // Its pages are mapped: the buffer cannot move.
                    return Err(FsError::Busy);
                }
                let grown = need.next_power_of_two().min(FOLIO_PAGES);
                let mut bigger = DmaBuf::new((grown * BS) as usize).ok_or(FsError::NoMemory)?;
                let old = buf.as_slice().len();
                bigger.as_mut_slice()[..old].copy_from_slice(buf.as_slice());
                *buf = bigger;
                self.pages += grown - folio.pages;
                folio.pages = grown;
            }
            return Ok(());
        }
        let held = folio_blocks(f, old_size);
        let pages = if need > held {
            need.next_power_of_two().min(FOLIO_PAGES)
        } else {
            need.max(held)
        };
        let mut buf = self.buffer(pages, true)?;
        if held > 0 && !covers_all {
            read_pieces(fs, ino, f, &mut buf, 0, held)?;
            zero_past_end(&mut buf, f, old_size);
        }
        self.insert(key, State::Ready(buf), pages, false);
        Ok(())
    }

    /// Writes every dirty folio to its blocks (blocking writes, in order).
    pub fn write_back(&mut self, fs: &mut Fs<DiskStore>) -> Result<(), FsError> {
        let dirty: Vec<Key> = self.folios.iter().filter(|(_, f)| f.dirty).map(|(k, _)| *k).collect();
        for (ino, f) in dirty {
            let size = super::stat(fs, ino)?.size;
            let blocks = folio_blocks(f, size);
            let Some(folio) = self.folios.get_mut(&(ino, f)) else {
                continue;
            };
            let State::Ready(buf) = &folio.state else { continue };
            let blocks = blocks.min(folio.pages);
            let mut fb = 0;
            while fb < blocks {
                let (dev, run) = super::map(fs, ino, f * FOLIO_PAGES + fb)?.ok_or(FsError::Corrupt)?;
                let n = run.min(blocks - fb);
                block::with_disk(|d| d.write(dev * SECTORS_PER_BLOCK, buf, (fb * BS) as usize, (n * BS) as usize))
                    .map_err(|_| FsError::Io)?;
                fb += n;
            }
            folio.dirty = false;
            self.stats.written_back += blocks;
        }
        Ok(())
    }

    /// Read `id` of a folio has landed.
    pub fn filled(&mut self, key: Key, id: u64, mut data: DmaBuf) {
        if let Some(folio) = self.folios.get_mut(&key)
            && let State::Loading(_, size, read) = folio.state
            && read == id
        {
            zero_past_end(&mut data, key.1, size);
            folio.state = State::Ready(data);
        }
        // Otherwise it was dropped meanwhile (truncated), perhaps read
        // again since: this buffer goes.
    }

    /// Read `id` of a folio failed: the folio goes if it is still that
    /// read's.
    pub fn failed(&mut self, key: Key, id: u64) {
        if self
            .folios
            .get(&key)
            .is_some_and(|f| matches!(f.state, State::Loading(_, _, read) if read == id))
        {
            self.drop_one(key);
        }
    }

    /// Forgets every folio that is neither dirty nor being read.
    pub fn drop_clean(&mut self) {
        let keys: Vec<Key> = self
            .folios
            .iter()
            .filter(|(_, f)| !f.dirty && f.maps == 0 && matches!(f.state, State::Ready(_)))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.drop_one(k);
        }
    }

    /// `n` more (or, negative, fewer) pages of folio `key` mapped.
    pub fn pin(&mut self, key: Key, n: i64) {
        if let Some(f) = self.folios.get_mut(&key) {
            f.maps = (f.maps as i64 + n).max(0) as u32;
        }
    }

    /// Whether any folio of `ino` is mapped.
    pub fn mapped(&self, ino: u64) -> bool {
        self.folios.range((ino, 0)..=(ino, u64::MAX)).any(|(_, f)| f.maps > 0)
    }

    /// Forgets one folio (its read failed, or it is stale).
    pub fn drop_one(&mut self, key: Key) {
        self.remove(&key);
        self.policy.remove(&key);
    }

    /// Drops the folios of `ino` from folio `from` on (a file truncated or
    /// removed: its blocks may go to another file).
    pub fn drop_from(&mut self, ino: u64, from: u64) {
        let keys: Vec<Key> = self
            .folios
            .range((ino, from)..=(ino, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some(Folio {
                state: State::Loading(Some(ticket), ..),
                ..
            }) = self.remove(&k)
            {
                // Its buffer comes back to be freed (a waiter that took the
                // ticket finds the folio gone and frees it itself).
                let _ = block::wait(ticket);
            }
            self.policy.remove(&k);
        }
    }
}
