//! Files (docs/storage.md): the disk's file system (`aethfs`, mounted at
//! boot; a disk that fails its checks is refused with the reason and the
//! kernel runs on without it), the page cache in front of it, and the
//! framed `FS` syscall. One lock (`STORAGE`) covers the file system, the
//! cache and the open files; it is never held while waiting for a read to
//! finish, and a task that finds it taken yields instead of spinning.

mod aio;
mod cache;
pub mod mmap;
mod store;

use aether_abi::fs::{
    self as abi, DirEntry, FileKind, FsError, FsRequest, FsResponse, O_ALL, O_APPEND, O_CREATE, O_EXCL, O_READ,
    O_TRUNC, O_WRITE, OPEN_MAX, Stat,
};
use aether_abi::syscall::{Errno, Pid, REQUEST_MAX};
use aethfs::{Fs, MountError, Store};
use alloc::collections::BTreeMap;
use kcore::readahead::Readahead;
use spin::{Mutex, MutexGuard};

use cache::{Cache, FOLIO_BYTES, FOLIO_PAGES, Folio, State};
use store::DiskStore;

/// Readahead windows, in folios (2 MiB): 4 MiB growing to 32 MiB.
const RA_MIN: u64 = 2;
const RA_MAX: u64 = 16;
/// The most one read or write call moves (a longer one is short).
const IO_MAX: u64 = 16 << 20;

struct OpenFile {
    ino: u64,
    flags: u32,
    pos: u64,
    ra: Readahead,
}

struct Storage {
    fs: Fs<DiskStore>,
    cache: Cache,
    /// By (process, descriptor).
    files: BTreeMap<(Pid, u32), OpenFile>,
    /// Each process's async queues.
    aio: BTreeMap<Pid, aio::Aio>,
}

static STORAGE: Mutex<Option<Storage>> = Mutex::new(None);

/// Waits a moment for a lock or a folio someone else holds: a sleep, not a
/// yield, so that a holder of lower priority gets the CPU (a yield let a
/// higher-priority waiter spin forever over a lower-priority holder).
fn back_off() {
    crate::task::sleep_until(crate::time::now_ns() + 20_000);
}

/// The storage lock; a task that finds it taken lets others run.
fn lock() -> MutexGuard<'static, Option<Storage>> {
    loop {
        if let Some(g) = STORAGE.try_lock() {
            return g;
        }
        back_off();
    }
}

fn with<R>(f: impl FnOnce(&mut Storage) -> Result<R, FsError>) -> Result<R, FsError> {
    match lock().as_mut() {
        Some(s) => f(s),
        None => Err(FsError::NoFileSystem),
    }
}

/// Pages the cache may hold: three quarters of the memory free at mount,
/// less 16 MiB kept for everything else.
fn cache_capacity() -> u64 {
    let f = crate::mm::frames::stats();
    (f.free * 3 / 4).saturating_sub(4096).max(8 * FOLIO_PAGES)
}

/// The inode number of the raw disk (`OpenDisk`): not a file system's.
pub const DISK_INO: u64 = u64::MAX;

/// What `stat` says of inode `ino`, the raw disk included (a read-only
/// file as large as the disk).
fn stat(fs: &mut Fs<DiskStore>, ino: u64) -> Result<Stat, FsError> {
    if ino != DISK_INO {
        return fs.stat(ino);
    }
    let blocks = fs.store().blocks();
    Ok(Stat {
        ino,
        kind: FileKind::File,
        size: blocks * 4096,
        blocks,
        links: 1,
        extents: 1,
        mtime_ms: 0,
        ctime_ms: 0,
    })
}

/// The device block of file block `fb` of `ino` and the contiguous run
/// from it (the raw disk: itself).
fn map(fs: &mut Fs<DiskStore>, ino: u64, fb: u64) -> Result<Option<(u64, u64)>, FsError> {
    if ino != DISK_INO {
        return fs.map(ino, fb);
    }
    let blocks = fs.store().blocks();
    Ok((fb < blocks).then(|| (fb, blocks - fb)))
}

/// The frame allocator's reclaimer: clean cache folios go (unless the
/// storage lock is held: the allocation is then the cache's own, which
/// shrinks itself).
fn reclaim(frames: u64) -> u64 {
    match STORAGE.try_lock() {
        Some(mut g) => g.as_mut().map_or(0, |s| s.cache.shrink(frames)),
        None => 0,
    }
}

/// Mounts the disk, if there is one (at boot), and says how it went.
pub fn init() {
    let store = match DiskStore::open() {
        Ok(s) => s,
        Err(crate::block::BlkError::NoDevice) => return,
        Err(e) => {
            log::warn!("disk: mount refused: {e:?}");
            return;
        }
    };
    match Fs::mount(store) {
        Ok((fs, report)) => {
            let sb = *fs.superblock();
            if report.used_copy {
                log::warn!("disk: block 0 was bad; mounted from the superblock's copy");
            }
            if let Some(n) = report.replayed {
                log::info!("disk: journal: a committed transaction replayed ({n} blocks)");
            }
            let capacity = cache_capacity();
            log::info!(
                "disk: AetherOS file system v1, {} blocks ({} MiB), data from block {}{}; cache {} MiB",
                sb.total_blocks,
                (sb.total_blocks * 4096) >> 20,
                sb.data_start(),
                if fs.read_only() { ", read-only" } else { "" },
                (capacity * 4096) >> 20
            );
            crate::mm::frames::set_reclaim(reclaim);
            *STORAGE.lock() = Some(Storage {
                fs,
                cache: Cache::new(capacity),
                files: BTreeMap::new(),
                aio: BTreeMap::new(),
            });
        }
        Err(MountError::Superblock { first, copy: None }) => log::warn!("disk: mount refused: {first}"),
        Err(e) => log::warn!("disk: mount refused: {e}"),
    }
}

/// The `[fs-sweep]` kernel task: after processes end, their open files,
/// async queues (once their requests have landed) and mappings (their
/// pins, their `MAP_DMA` memory) are given back, within 100 ms.
pub fn sweeper() {
    let exits = &crate::task::PROCESS_EXITS;
    let mut seen = 0;
    loop {
        crate::task::sleep_until(crate::time::now_ns() + 100_000_000);
        let now = exits.load(core::sync::atomic::Ordering::Relaxed);
        if now == seen {
            continue;
        }
        seen = now;
        // `mmap::sweep` drops the async queues first (waiting for their
        // requests), then the mappings.
        let pins = mmap::sweep();
        let _ = with(|s| {
            for (key, n) in pins {
                s.cache.pin(key, -(n as i64));
            }
            s.sweep_files();
            Ok(())
        });
    }
}

/// Why a call failed: the file system's answer, or the syscall's (a bad
/// pointer, a malformed request).
enum Fail {
    Fs(FsError),
    Sys(Errno),
}

impl From<FsError> for Fail {
    fn from(e: FsError) -> Self {
        Fail::Fs(e)
    }
}

impl From<Errno> for Fail {
    fn from(e: Errno) -> Self {
        Fail::Sys(e)
    }
}

/// The `FS` syscall: a postcard [`FsRequest`] in, an [`FsResponse`] out.
pub fn syscall(pid: Pid, req: &[u8], out: &mut [u8]) -> Result<usize, Errno> {
    if req.len() > REQUEST_MAX {
        return Err(Errno::TooLarge);
    }
    let request: FsRequest = aether_abi::syscall::decode(req)?;
    let answer = match serve(pid, request) {
        Ok(a) => a,
        Err(Fail::Fs(e)) => FsResponse::Err(e),
        Err(Fail::Sys(e)) => return Err(e),
    };
    Ok(aether_abi::syscall::encode(&answer, out)?.len())
}

fn serve(pid: Pid, request: FsRequest) -> Result<FsResponse, Fail> {
    Ok(match request {
        FsRequest::Open { path, flags } => open(pid, &path, flags)?,
        FsRequest::OpenDisk => open_disk(pid)?,
        FsRequest::Close { fd } => with(|s| s.files.remove(&(pid, fd)).map(|_| FsResponse::Ok).ok_or(FsError::BadFd))?,
        FsRequest::Read { fd, offset, buf, len } => FsResponse::Done(read(pid, fd, offset, buf, len)?),
        FsRequest::Write { fd, offset, buf, len } => FsResponse::Done(write(pid, fd, offset, buf, len)?),
        FsRequest::Stat { path } => with(|s| {
            let ino = s.fs.lookup(&path)?;
            s.fs.stat(ino).map(FsResponse::Stat)
        })?,
        FsRequest::Fstat { fd } => with(|s| {
            let ino = s.files.get(&(pid, fd)).ok_or(FsError::BadFd)?.ino;
            stat(&mut s.fs, ino).map(FsResponse::Stat)
        })?,
        FsRequest::Readdir { path, start } => with(|s| {
            let ino = s.fs.lookup(&path)?;
            let all = s.fs.readdir(ino)?;
            let entries: heapless::Vec<DirEntry, { abi::DIR_PAGE }> =
                all.iter().skip(start as usize).take(abi::DIR_PAGE).cloned().collect();
            let next = start as usize + entries.len();
            Ok(FsResponse::Dir {
                next: (next < all.len()).then_some(next as u32),
                entries,
            })
        })?,
        FsRequest::Mkdir { path } => with(|s| {
            s.sync_data()?;
            s.fs.create(&path, FileKind::Dir).map(|_| FsResponse::Ok)
        })?,
        FsRequest::Unlink { path } => with(|s| {
            let ino = s.fs.lookup(&path)?;
            if s.is_open(ino) {
                return Err(FsError::Busy);
            }
            s.sync_data()?;
            s.fs.unlink(&path)?;
            s.cache.drop_from(ino, 0);
            Ok(FsResponse::Ok)
        })?,
        FsRequest::Rename { from, to } => with(|s| {
            let replaced = s.fs.lookup(&to).ok();
            if let Some(victim) = replaced
                && s.fs.lookup(&from)? != victim
                && s.is_open(victim)
            {
                return Err(FsError::Busy);
            }
            s.sync_data()?;
            s.fs.rename(&from, &to)?;
            if let Some(victim) = replaced
                && s.fs.lookup(&to)? != victim
            {
                s.cache.drop_from(victim, 0);
            }
            Ok(FsResponse::Ok)
        })?,
        FsRequest::Fsync { fd } => with(|s| {
            s.files.get(&(pid, fd)).ok_or(FsError::BadFd)?;
            s.sync().map(|_| FsResponse::Ok)
        })?,
        FsRequest::Sync => with(|s| s.sync().map(|_| FsResponse::Ok))?,
        FsRequest::StatFs => with(|s| Ok(FsResponse::FsStat(s.fs.statfs())))?,
        FsRequest::CacheStats => with(|s| Ok(FsResponse::Cache(s.cache.stats())))?,
        FsRequest::Mmap { fd, offset, len, flags } => FsResponse::Mapped {
            addr: mmap::mmap(pid, fd, offset, len, flags)?,
        },
        FsRequest::Munmap { addr, len } => {
            mmap::munmap(pid, addr, len)?;
            FsResponse::Ok
        }
        FsRequest::Submit { entries } => aio::submit(pid, &entries)?,
        FsRequest::Complete { min, timeout_ms } => aio::complete(pid, min, timeout_ms)?,
        FsRequest::DropCaches => with(|s| {
            s.sync_data()?;
            s.cache.drop_clean();
            Ok(FsResponse::Ok)
        })?,
    })
}

impl Storage {
    /// Whether any live process has `ino` open (descriptors of processes
    /// that have ended are dropped here).
    fn is_open(&mut self, ino: u64) -> bool {
        self.sweep_files();
        self.files.values().any(|f| f.ino == ino) || mmap::maps_file(ino)
    }

    /// Drops the descriptors of processes that have ended.
    fn sweep_files(&mut self) {
        self.files
            .retain(|(pid, _), _| crate::task::with(|k| k.process_alive(*pid)));
    }

    /// Dirty data to the disk, before any metadata that points at it is
    /// committed (ordered data).
    fn sync_data(&mut self) -> Result<(), FsError> {
        self.cache.write_back(&mut self.fs)
    }

    /// A write at `pos` past the old end `old_size`: the bytes between read
    /// as zeros. When the write starts in a later folio than the old end's,
    /// the old last block's tail is zeroed (in the cache when that folio is
    /// there, written back with it; else on the disk) and the whole blocks
    /// up to the write's folio are zeroed on the disk. (The write's own
    /// folio is zero past the old end already.)
    fn zero_gap(&mut self, ino: u64, old_size: u64, pos: u64) -> Result<(), FsError> {
        let (f_old, f_pos) = (old_size / FOLIO_BYTES, pos / FOLIO_BYTES);
        if f_old == f_pos {
            return Ok(());
        }
        match self.cache.get_mut(&(ino, f_old)) {
            // Zero past the old end already (as every folio is).
            Some(
                folio @ Folio {
                    state: State::Ready(_), ..
                },
            ) => folio.dirty = true,
            _ => self.fs.zero_tail(ino, old_size)?,
        }
        let first = old_size.div_ceil(4096);
        self.fs.zero_blocks(ino, first, (f_pos * FOLIO_PAGES).max(first))
    }

    /// Everything to the disk: data, then the metadata journal.
    fn sync(&mut self) -> Result<(), FsError> {
        self.sync_data()?;
        self.fs.commit()
    }
}

/// The raw disk, read-only, as a file (benchmarks: the same paths as
/// files, without the file system's mapping).
fn open_disk(pid: Pid) -> Result<FsResponse, Fail> {
    Ok(with(|s| {
        s.sweep_files();
        let fd = (0..OPEN_MAX as u32)
            .find(|fd| !s.files.contains_key(&(pid, *fd)))
            .ok_or(FsError::TooManyOpen)?;
        let stat = stat(&mut s.fs, DISK_INO)?;
        s.files.insert(
            (pid, fd),
            OpenFile {
                ino: DISK_INO,
                flags: O_READ,
                pos: 0,
                ra: Readahead::new(RA_MIN, RA_MAX),
            },
        );
        Ok(FsResponse::Opened { fd, stat })
    })?)
}

fn open(pid: Pid, path: &str, flags: u32) -> Result<FsResponse, Fail> {
    if flags & !O_ALL != 0 || flags & (O_READ | O_WRITE) == 0 || (flags & O_TRUNC != 0 && flags & O_WRITE == 0) {
        return Err(FsError::InvalidArgument.into());
    }
    Ok(with(|s| {
        s.sweep_files();
        if s.files.keys().filter(|(p, _)| *p == pid).count() >= OPEN_MAX {
            return Err(FsError::TooManyOpen);
        }
        let ino = match s.fs.lookup(path) {
            Ok(_) if flags & O_CREATE != 0 && flags & O_EXCL != 0 => return Err(FsError::Exists),
            Ok(ino) => ino,
            Err(FsError::NotFound) if flags & O_CREATE != 0 => {
                s.sync_data()?;
                s.fs.create(path, FileKind::File)?
            }
            Err(e) => return Err(e),
        };
        let mut stat = s.fs.stat(ino)?;
        if stat.kind == FileKind::Dir && flags & O_WRITE != 0 {
            return Err(FsError::IsDir);
        }
        if flags & O_WRITE != 0 && s.fs.read_only() {
            return Err(FsError::ReadOnly);
        }
        if flags & O_TRUNC != 0 && stat.size > 0 {
            // Mapped pages are the cache's: they cannot be taken away.
            if mmap::maps_file(ino) || s.cache.mapped(ino) {
                return Err(FsError::Busy);
            }
            s.sync_data()?;
            s.cache.drop_from(ino, 0);
            s.fs.truncate(ino, 0)?;
            stat = s.fs.stat(ino)?;
        }
        let fd = (0..OPEN_MAX as u32)
            .find(|fd| !s.files.contains_key(&(pid, *fd)))
            .ok_or(FsError::TooManyOpen)?;
        s.files.insert(
            (pid, fd),
            OpenFile {
                ino,
                flags,
                pos: 0,
                ra: Readahead::new(RA_MIN, RA_MAX),
            },
        );
        Ok(FsResponse::Opened { fd, stat })
    })?)
}

fn user_write(va: u64, src: &[u8]) -> Result<(), Fail> {
    crate::task::with(|k| match k.current_task_space() {
        Some(space) => space.write(va, src).map_err(|_| Fail::Sys(Errno::BadAddress)),
        None => Err(Fail::Sys(Errno::BadAddress)),
    })
}

fn user_read(va: u64, dst: &mut [u8]) -> Result<(), Fail> {
    crate::task::with(|k| match k.current_task_space() {
        Some(space) => space.read(va, dst).map_err(|_| Fail::Sys(Errno::BadAddress)),
        None => Err(Fail::Sys(Errno::BadAddress)),
    })
}

fn user_check(va: u64, len: u64, write: bool) -> Result<(), Fail> {
    crate::task::with(|k| match k.current_task_space() {
        Some(space) => space
            .check(va, len as usize, write)
            .map_err(|_| Fail::Sys(Errno::BadAddress)),
        None => Err(Fail::Sys(Errno::BadAddress)),
    })
}

/// What one step of a read or write found.
enum Step {
    Done(u64),
    /// The folio is being read: wait for it, then look again.
    Wait(crate::block::Ticket, cache::Key),
    /// Someone else waits for it, or the device's queue is full.
    Retry,
    End,
}

/// After a wait: the folio is filled (or, on a device error, dropped).
fn complete(
    s: &mut Storage,
    key: cache::Key,
    id: u64,
    r: Result<crate::block::DmaBuf, crate::block::BlkError>,
) -> Result<(), FsError> {
    match r {
        Ok(data) => {
            s.cache.filled(key, id, data);
            Ok(())
        }
        Err(_) => {
            s.cache.failed(key, id);
            Err(FsError::Io)
        }
    }
}

/// Waits for a folio's read (without the lock) and completes it.
fn wait_for(ticket: crate::block::Ticket, key: cache::Key) -> Result<(), FsError> {
    let id = ticket.id();
    let r = crate::block::wait(ticket);
    with(|s| complete(s, key, id, r))
}

fn read(pid: Pid, fd: u32, offset: Option<u64>, buf: u64, len: u64) -> Result<u64, Fail> {
    let len = len.min(IO_MAX);
    user_check(buf, len, true)?;
    let mut done = 0u64;
    // The folios to have in flight: the read's own and the readahead
    // window (planned once per call), started as the device has room.
    let mut plan: Option<core::ops::Range<u64>> = None;
    let mut last = 0;
    while done < len {
        let step = {
            let mut g = lock();
            let s = g.as_mut().ok_or(FsError::NoFileSystem)?;
            let of = s.files.get_mut(&(pid, fd)).ok_or(FsError::BadFd)?;
            if of.flags & O_READ == 0 {
                return Err(FsError::BadFd.into());
            }
            let ino = of.ino;
            let pos = offset.unwrap_or(of.pos) + done;
            let st = stat(&mut s.fs, ino)?;
            if st.kind == FileKind::Dir {
                return Err(FsError::IsDir.into());
            }
            if pos >= st.size {
                Step::End
            } else {
                let size = st.size;
                let end = (pos + (len - done)).min(size);
                let f = pos / FOLIO_BYTES;
                let todo = plan.get_or_insert_with(|| {
                    last = end.div_ceil(FOLIO_BYTES);
                    of.ra.on_read(f, last - f, size.div_ceil(FOLIO_BYTES))
                });
                // Top the device's queue up (a full queue: later).
                while todo.start < todo.end {
                    let g = todo.start;
                    if !s.cache.start_fill(&mut s.fs, ino, g, size, g >= last, false)? {
                        break;
                    }
                    todo.start += 1;
                }
                let key = (ino, f);
                match s.cache.get_mut(&key) {
                    None => {
                        s.cache.stats.misses += 1;
                        s.cache.start_fill(&mut s.fs, ino, f, size, false, true)?;
                        Step::Done(0)
                    }
                    Some(Folio {
                        state: State::Loading(t, ..),
                        ..
                    }) => match t.take() {
                        Some(ticket) => {
                            s.cache.stats.misses += 1;
                            Step::Wait(ticket, key)
                        }
                        None => Step::Retry,
                    },
                    Some(Folio {
                        state: State::Ready(data),
                        ahead,
                        ..
                    }) => {
                        let first_use = core::mem::take(ahead);
                        let within = pos - f * FOLIO_BYTES;
                        let take = (FOLIO_BYTES - within).min(end - pos);
                        let Some(bytes) = data.as_slice().get(within as usize..(within + take) as usize) else {
                            // Shorter than the file now (it grew): read it again.
                            s.cache.drop_one(key);
                            continue;
                        };
                        user_write(buf + done, bytes)?;
                        if first_use {
                            s.cache.stats.readahead_used += 1;
                        }
                        s.cache.stats.hits += 1;
                        s.cache.touch(key);
                        Step::Done(take)
                    }
                }
            }
        };
        match step {
            Step::Done(n) => done += n,
            Step::End => break,
            Step::Retry => back_off(),
            Step::Wait(ticket, key) => wait_for(ticket, key)?,
        }
    }
    if offset.is_none() {
        with(|s| {
            if let Some(of) = s.files.get_mut(&(pid, fd)) {
                of.pos += done;
            }
            Ok(())
        })?;
    }
    Ok(done)
}

fn write(pid: Pid, fd: u32, offset: Option<u64>, buf: u64, len: u64) -> Result<u64, Fail> {
    let len = len.min(IO_MAX);
    user_check(buf, len, false)?;
    // First the file covers the range: blocks allocated, the size grown
    // (in the open transaction; the data follows into the cache).
    let (ino, pos, end, old_size) = with(|s| {
        let of = s.files.get(&(pid, fd)).ok_or(FsError::BadFd)?;
        if of.flags & O_WRITE == 0 {
            return Err(FsError::BadFd);
        }
        let (ino, flags, cur) = (of.ino, of.flags, of.pos);
        let pos = if flags & O_APPEND != 0 {
            s.fs.stat(ino)?.size
        } else {
            offset.unwrap_or(cur)
        };
        let end = pos.checked_add(len).ok_or(FsError::FileTooLarge)?;
        // A mapped last folio cannot grow (its buffer would move): refused
        // before anything changes.
        let size = s.fs.stat(ino)?.size;
        if end > size
            && size > 0
            && s.cache
                .get_mut(&(ino, (size - 1) / FOLIO_BYTES))
                .is_some_and(|f| f.maps > 0 && f.pages < FOLIO_PAGES)
        {
            return Err(FsError::Busy);
        }
        let (old, _) = s.fs.extend(ino, end)?;
        if pos > old.size {
            s.zero_gap(ino, old.size, pos)?;
        }
        Ok((ino, pos, end, old.size))
    })?;
    let mut at = pos;
    while at < end {
        let f = at / FOLIO_BYTES;
        let key = (ino, f);
        let fstart = f * FOLIO_BYTES;
        let fend = fstart + FOLIO_BYTES;
        let step = {
            let mut g = lock();
            let s = g.as_mut().ok_or(FsError::NoFileSystem)?;
            // Old bytes of this folio the write does not overwrite must be
            // read first.
            let covers_all = pos <= fstart && end >= fend.min(old_size);
            s.cache.for_write(&mut s.fs, ino, f, old_size, end, covers_all)?;
            match s.cache.get_mut(&key) {
                Some(Folio {
                    state: State::Loading(t, ..),
                    ..
                }) => match t.take() {
                    Some(ticket) => Step::Wait(ticket, key),
                    None => Step::Retry,
                },
                Some(Folio {
                    state: State::Ready(data),
                    dirty,
                    ..
                }) => {
                    let take = fend.min(end) - at;
                    let within = (at - fstart) as usize;
                    user_read(
                        buf + (at - pos),
                        &mut data.as_mut_slice()[within..within + take as usize],
                    )?;
                    *dirty = true;
                    s.cache.touch(key);
                    Step::Done(take)
                }
                None => return Err(FsError::Io.into()),
            }
        };
        match step {
            Step::Done(n) => at += n,
            Step::Retry | Step::End => back_off(),
            Step::Wait(ticket, key) => wait_for(ticket, key)?,
        }
    }
    if offset.is_none() {
        with(|s| {
            if let Some(of) = s.files.get_mut(&(pid, fd)) {
                of.pos = end;
            }
            Ok(())
        })?;
    }
    Ok(len)
}
