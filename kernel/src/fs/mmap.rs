//! Memory mappings (docs/storage.md, "mmap"): anonymous memory, and files
//! mapped straight from the page cache. A file mapping's pages are the
//! cache's own (no copy): a fault maps the pages of the folio around the
//! faulting one (fault-around) and pins the folio, which is then neither
//! evicted nor moved until the mapping goes. A private writable mapping
//! copies a page on its first write (copy-on-write); the file never
//! changes through a mapping.
//!
//! Regions live in their own table (`MAPS`, a leaf lock: taken alone, or
//! briefly under the storage lock, never the other way round), so
//! anonymous mappings work without a disk. A process's regions outlive it
//! until the next sweep, which gives their pins back (its address space,
//! gone with it, freed only the frames it owned).

use aether_abi::fs::{DMA_MAP_MAX, FsError, MAP_ALL, MAP_DMA, MAP_MAX, MAP_PRIVATE, MAP_WRITE, O_READ};
use aether_abi::syscall::Pid;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use spin::{Mutex, MutexGuard};

use super::cache::{FOLIO_PAGES, Folio, Key, State};
use crate::block::DmaBuf;
use crate::mm::paging::Flags;

/// Where a process's mappings start (far above its heap, below its stack).
const MMAP_BASE: u64 = 0x1000_0000_0000;
const PAGE: u64 = 4096;
/// Pages mapped by one fault of a file mapping (aligned, in one folio).
const FAULT_AROUND: u64 = 32;
/// Folios read ahead of a fault in a file mapping.
const FAULT_AHEAD: u64 = 16;

#[derive(Clone, Copy)]
struct FileMap {
    ino: u64,
    /// The file page of the region's first page.
    first_page: u64,
}

struct Region {
    pages: u64,
    file: Option<FileMap>,
    writable: bool,
    /// Cache pages mapped, by folio.
    pins: BTreeMap<Key, u32>,
    /// A `MAP_DMA` mapping's frames (mapped at once; freed with it, or
    /// after the last direct read into them).
    dma: Option<Arc<DmaBuf>>,
}

#[derive(Default)]
struct Maps {
    /// By (process, first address).
    regions: BTreeMap<(Pid, u64), Region>,
    /// Where each process's next mapping goes.
    next: BTreeMap<Pid, u64>,
}

static MAPS: Mutex<Maps> = Mutex::new(Maps {
    regions: BTreeMap::new(),
    next: BTreeMap::new(),
});

fn maps() -> MutexGuard<'static, Maps> {
    loop {
        if let Some(g) = MAPS.try_lock() {
            return g;
        }
        super::back_off();
    }
}

/// Whether a live process maps file `ino` (it may not be removed).
pub fn maps_file(ino: u64) -> bool {
    maps()
        .regions
        .iter()
        .any(|((pid, _), r)| r.file.is_some_and(|f| f.ino == ino) && crate::task::with(|k| k.process_alive(*pid)))
}

/// Removes the regions of processes that have ended; their pins, for the
/// cache to give back.
pub fn sweep() -> alloc::vec::Vec<(Key, u32)> {
    // First their requests in flight (a direct read may be filling a
    // `MAP_DMA` region about to be freed).
    let _ = super::with(|s| {
        s.sweep_aio();
        Ok(())
    });
    let mut g = maps();
    let dead: alloc::vec::Vec<(Pid, u64)> = g
        .regions
        .keys()
        .filter(|(pid, _)| !crate::task::with(|k| k.process_alive(*pid)))
        .copied()
        .collect();
    let mut pins = alloc::vec::Vec::new();
    for k in dead {
        if let Some(r) = g.regions.remove(&k) {
            pins.extend(r.pins);
        }
        g.next.remove(&k.0);
    }
    pins
}

fn unpin_all(pins: impl IntoIterator<Item = (Key, u32)>) {
    let pins: alloc::vec::Vec<(Key, u32)> = pins.into_iter().collect();
    if pins.is_empty() {
        return;
    }
    let _ = super::with(|s| {
        for (key, n) in pins {
            s.cache.pin(key, -(n as i64));
        }
        Ok(())
    });
}

/// `Mmap`: the address of the new mapping.
pub fn mmap(pid: Pid, fd: Option<u32>, offset: u64, len: u64, flags: u32) -> Result<u64, FsError> {
    if flags & !MAP_ALL != 0 || len == 0 || len > MAP_MAX || !offset.is_multiple_of(PAGE) {
        return Err(FsError::InvalidArgument);
    }
    let writable = flags & MAP_WRITE != 0;
    let pages = len.div_ceil(PAGE);
    if flags & MAP_DMA != 0 {
        if fd.is_some() || !writable || len > DMA_MAP_MAX {
            return Err(FsError::InvalidArgument);
        }
        return map_dma(pid, pages);
    }
    let file = match fd {
        Some(fd) => {
            // A shared file mapping is the cache's pages: read-only.
            if writable && flags & MAP_PRIVATE == 0 {
                return Err(FsError::InvalidArgument);
            }
            let (ino, size) = super::with(|s| {
                let of = s.files.get(&(pid, fd)).ok_or(FsError::BadFd)?;
                if of.flags & O_READ == 0 {
                    return Err(FsError::BadFd);
                }
                let ino = of.ino;
                let st = super::stat(&mut s.fs, ino)?;
                if st.kind == aether_abi::fs::FileKind::Dir {
                    return Err(FsError::IsDir);
                }
                Ok((ino, st.size))
            })?;
            if offset
                .checked_add(pages * PAGE)
                .is_none_or(|end| end > size.div_ceil(PAGE) * PAGE)
            {
                return Err(FsError::InvalidArgument);
            }
            Some(FileMap {
                ino,
                first_page: offset / PAGE,
            })
        }
        None => None,
    };
    unpin_all(sweep());
    let mut g = maps();
    let addr = reserve(&mut g, pid, pages)?;
    g.regions.insert(
        (pid, addr),
        Region {
            pages,
            file,
            writable,
            pins: BTreeMap::new(),
            dma: None,
        },
    );
    Ok(addr)
}

/// Address space for `pages` more of `pid`'s mappings.
fn reserve(g: &mut Maps, pid: Pid, pages: u64) -> Result<u64, FsError> {
    let addr = *g.next.get(&pid).unwrap_or(&MMAP_BASE);
    // A guard page between mappings.
    let next = addr + (pages + 1) * PAGE;
    if next > crate::task::loader::STACK_TOP / 2 {
        return Err(FsError::InvalidArgument);
    }
    g.next.insert(pid, next);
    Ok(addr)
}

/// A `MAP_DMA` mapping: contiguous zeroed frames, mapped writable now.
fn map_dma(pid: Pid, pages: u64) -> Result<u64, FsError> {
    unpin_all(sweep());
    let buf = DmaBuf::new((pages * PAGE) as usize).ok_or(FsError::NoMemory)?;
    let mut g = maps();
    let addr = reserve(&mut g, pid, pages)?;
    let phys = buf.phys();
    let mapped = crate::task::with(|k| {
        let space = k.current_task_space().ok_or(FsError::Io)?;
        for i in 0..pages {
            if space
                .map_borrowed(addr + i * PAGE, phys + i * PAGE, Flags::WRITABLE)
                .is_err()
            {
                for j in 0..i {
                    space.unmap(addr + j * PAGE);
                }
                return Err(FsError::NoMemory);
            }
        }
        Ok(())
    });
    mapped?;
    g.regions.insert(
        (pid, addr),
        Region {
            pages,
            file: None,
            writable: true,
            pins: BTreeMap::new(),
            dma: Some(Arc::new(buf)),
        },
    );
    Ok(addr)
}

/// A view of `buf..buf + len` of `pid` when it lies in one `MAP_DMA`
/// mapping (a direct read may go straight into it).
pub fn dma_view(pid: Pid, buf: u64, len: u64) -> Option<DmaBuf> {
    let g = maps();
    let ((_, start), r) = g.regions.range((pid, 0)..=(pid, buf)).next_back()?;
    DmaBuf::view_of(r.dma.as_ref()?, (buf - start) as usize, len as usize)
}

/// `Munmap` of a whole mapping.
pub fn munmap(pid: Pid, addr: u64, len: u64) -> Result<(), FsError> {
    let dma = match maps().regions.get(&(pid, addr)) {
        Some(r) if r.pages == len.div_ceil(PAGE) => r.dma.is_some(),
        _ => return Err(FsError::InvalidArgument),
    };
    // Direct reads still filling it: not yet.
    if dma && super::with(|s| Ok(s.aio_busy(pid))).unwrap_or(false) {
        return Err(FsError::Busy);
    }
    let region = maps().regions.remove(&(pid, addr)).ok_or(FsError::InvalidArgument)?;
    crate::task::with(|k| {
        if let Some(space) = k.current_task_space() {
            for i in 0..region.pages {
                space.unmap(addr + i * PAGE);
            }
        }
    });
    unpin_all(region.pins);
    Ok(())
}

/// The region of `pid` holding `addr`: its start and a copy of what a
/// fault needs.
fn region_at(pid: Pid, addr: u64) -> Option<(u64, u64, Option<FileMap>, bool)> {
    let g = maps();
    let ((_, start), r) = g.regions.range((pid, 0)..=(pid, addr)).next_back()?;
    (addr < start + r.pages * PAGE).then_some((*start, r.pages, r.file, r.writable))
}

fn add_pins(pid: Pid, start: u64, key: Key, n: u32) {
    let recorded = match maps().regions.get_mut(&(pid, start)) {
        Some(r) => {
            *r.pins.entry(key).or_default() += n;
            true
        }
        None => false,
    };
    if !recorded {
        // Unmapped meanwhile: nothing holds the pages.
        unpin_all([(key, n)]);
    }
}

/// A page fault of the running process at `addr` (`write`: a write
/// access; `present`: the page was mapped, so it is a protection fault).
/// Whether it was served (the access is retried) or is the process's
/// fault. May sleep for the disk.
pub fn on_fault(addr: u64, write: bool, present: bool) -> bool {
    let pid = crate::task::with(|k| k.current);
    let Some((start, pages, file, writable)) = region_at(pid, addr) else {
        return false;
    };
    if write && !writable {
        return false;
    }
    let va = addr & !(PAGE - 1);
    let flags = if writable { Flags::WRITABLE } else { Flags::empty() };
    match file {
        None => {
            if present {
                return false;
            }
            crate::task::with(|k| k.current_task_space().is_some_and(|s| s.map_zeroed(va, flags).is_ok()))
        }
        Some(fm) => file_fault(pid, start, pages, fm, va, write).is_ok(),
    }
}

/// Runs `then` once folio `f` of `ino` is in the cache and filled
/// (reading it, and waiting without the lock, as needed), with the
/// storage, the folio's key and the file's size.
fn with_folio<R>(
    ino: u64,
    f: u64,
    mut then: impl FnMut(&mut super::Storage, Key, u64) -> Result<R, FsError>,
) -> Result<R, FsError> {
    let key = (ino, f);
    loop {
        let wait = super::with(|s| {
            let size = super::stat(&mut s.fs, ino)?.size;
            if s.cache.get_mut(&key).is_none() {
                s.cache.start_fill(&mut s.fs, ino, f, size, false, true)?;
            }
            match &mut s.cache.get_mut(&key).ok_or(FsError::Io)?.state {
                State::Loading(t, ..) => Ok(Err(t.take())),
                State::Ready(_) => Ok(Ok(then(s, key, size)?)),
            }
        })?;
        match wait {
            Ok(r) => return Ok(r),
            Err(Some(ticket)) => super::wait_for(ticket, key)?,
            Err(None) => super::back_off(),
        }
    }
}

/// The physical address of a ready folio's first page and its pages.
fn folio_frames(folio: Option<&mut Folio>) -> Result<(u64, u64), FsError> {
    match folio {
        Some(Folio {
            state: State::Ready(buf),
            pages,
            ..
        }) => Ok((buf.phys(), *pages)),
        _ => Err(FsError::Io),
    }
}

fn file_fault(pid: Pid, start: u64, pages: u64, fm: FileMap, va: u64, write: bool) -> Result<(), FsError> {
    let idx = (va - start) / PAGE;
    let file_page = fm.first_page + idx;
    let f = file_page / FOLIO_PAGES;
    if write {
        // Copy-on-write: a private copy of the page, writable. A read-only
        // cache page mapped there before is given back.
        let gave_back = with_folio(fm.ino, f, |s, key, _| {
            let (phys, _) = folio_frames(s.cache.get_mut(&key))?;
            let src = phys + (file_page % FOLIO_PAGES) * PAGE;
            let was = crate::task::with(|k| {
                let space = k.current_task_space().ok_or(FsError::Io)?;
                let was = space.unmap(va);
                space.map_copy(va, src, Flags::WRITABLE).map_err(|_| FsError::Io)?;
                Ok::<_, FsError>(was)
            })?;
            let borrowed = was.is_some_and(|u| !u.owned);
            if borrowed {
                s.cache.pin(key, -1);
            }
            s.cache.stats.map_faults += 1;
            Ok(borrowed)
        })?;
        if gave_back
            && let Some(n) = maps()
                .regions
                .get_mut(&(pid, start))
                .and_then(|r| r.pins.get_mut(&(fm.ino, f)))
        {
            *n = n.saturating_sub(1);
        }
        return Ok(());
    }
    // Read: the pages of an aligned block around the fault, within the
    // region, the folio and the file.
    let block = idx / FAULT_AROUND * FAULT_AROUND;
    let first = block;
    let end = (block + FAULT_AROUND).min(pages);
    let mapped = with_folio(fm.ino, f, |s, key, size| {
        let (phys, held) = folio_frames(s.cache.get_mut(&key))?;
        let file_pages = size.div_ceil(PAGE);
        let n = crate::task::with(|k| {
            let space = k.current_task_space().ok_or(FsError::Io)?;
            let mut n = 0u32;
            for i in first..end {
                let fp = fm.first_page + i;
                if fp / FOLIO_PAGES != f || fp >= file_pages || fp % FOLIO_PAGES >= held {
                    continue;
                }
                let at = start + i * PAGE;
                if space.mapped(at).is_none()
                    && space
                        .map_borrowed(at, phys + (fp % FOLIO_PAGES) * PAGE, Flags::empty())
                        .is_ok()
                {
                    n += 1;
                }
            }
            Ok::<_, FsError>(n)
        })?;
        s.cache.pin(key, n as i64);
        s.cache.stats.map_faults += 1;
        s.cache.stats.mapped_pages += n as u64;
        if let Some(folio) = s.cache.get_mut(&key)
            && core::mem::take(&mut folio.ahead)
        {
            s.cache.stats.readahead_used += 1;
        }
        // Read ahead of a reader walking the mapping.
        let last_page = (fm.first_page + pages).min(file_pages);
        for g in f + 1..=f + FAULT_AHEAD {
            if g * FOLIO_PAGES >= last_page || !s.cache.start_fill(&mut s.fs, fm.ino, g, size, true, false)? {
                break;
            }
        }
        Ok(n)
    })?;
    if mapped == 0 {
        // Nothing new mapped: the page is past the file's end.
        return Err(FsError::InvalidArgument);
    }
    add_pins(pid, start, (fm.ino, f), mapped);
    Ok(())
}
