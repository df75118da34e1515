//! AetherFS: the file system of docs/disk-format.md as plain `no_std` code
//! over a [`Store`] of 4 KiB blocks, used by the kernel (over its block
//! layer and page cache) and by the host tool `aether-disk` (over an image
//! file), so both read and write the disk with one implementation.
//!
//! Metadata (bitmap, inode table, directory and extent list blocks) is
//! read through a small cache, changed in memory and made durable by
//! [`Fs::commit`]: the changed blocks go to the journal with a commit
//! record, then in place. File data is written in place before the
//! metadata that points at it is committed (ordered data). A block freed
//! in a transaction is not reused until that transaction has committed, so
//! a power cut never leaves a committed file pointing at another file's
//! new data.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod check;
pub mod dir;
pub mod inode;
mod journal;
pub mod mem;
#[cfg(test)]
mod tests;

use aether_abi::disk::{
    self, BLOCK_SIZE, INODES_PER_BLOCK, MetaError, MetaHeader, MetaKind, SUPERBLOCK_LEN, Superblock, SuperblockError,
};
use aether_abi::fs::{DirEntry, FileKind, FsError, FsStat, Stat, check_name, components, split_parent};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

pub use inode::{Inode, Run};

/// One block.
pub type Block = [u8; BLOCK_SIZE];
const BS: u64 = BLOCK_SIZE as u64;

/// A device failed a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoError;

/// Blocks the file system lives on.
pub trait Store {
    /// Capacity in blocks.
    fn blocks(&self) -> u64;
    fn read_only(&self) -> bool;
    fn read(&mut self, block: u64, buf: &mut Block) -> Result<(), IoError>;
    fn write(&mut self, block: u64, buf: &Block) -> Result<(), IoError>;
    /// Everything written before is durable when this returns.
    fn flush(&mut self) -> Result<(), IoError>;
    /// Unix milliseconds, for inode times.
    fn now_ms(&self) -> u64;
    /// Reads consecutive blocks from `block` into `buf` (whole blocks); a
    /// device overrides this with one large request.
    fn read_run(&mut self, block: u64, buf: &mut [u8]) -> Result<(), IoError> {
        for (i, chunk) in buf.as_chunks_mut::<BLOCK_SIZE>().0.iter_mut().enumerate() {
            self.read(block + i as u64, chunk)?;
        }
        Ok(())
    }
    /// Writes consecutive blocks from `block` (whole blocks).
    fn write_run(&mut self, block: u64, data: &[u8]) -> Result<(), IoError> {
        for (i, chunk) in data.as_chunks::<BLOCK_SIZE>().0.iter().enumerate() {
            self.write(block + i as u64, chunk)?;
        }
        Ok(())
    }
}

/// Why a disk is not mounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountError {
    Io,
    /// Block 0 is bad, and so is its copy (`None`: the copy is for another
    /// size, or the disk has no last block).
    Superblock {
        first: SuperblockError,
        copy: Option<SuperblockError>,
    },
    /// The file system claims more blocks than the device has.
    TooLarge {
        fs: u64,
        device: u64,
    },
    /// A metadata block failed its checks.
    Metadata {
        block: u64,
        what: &'static str,
        error: Option<MetaError>,
    },
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::Io => f.write_str("the device failed a read"),
            MountError::Superblock {
                first,
                copy: Some(copy),
            } => {
                write!(f, "block 0: {first}; the superblock's copy: {copy}")
            }
            MountError::Superblock { first, copy: None } => write!(f, "block 0: {first}; no usable copy"),
            MountError::TooLarge { fs, device } => {
                write!(f, "the file system has {fs} blocks, the device {device}")
            }
            MountError::Metadata {
                block,
                what,
                error: Some(e),
            } => write!(f, "{what} block {block}: {e}"),
            MountError::Metadata {
                block,
                what,
                error: None,
            } => write!(f, "block {block}: {what}"),
        }
    }
}

impl From<IoError> for MountError {
    fn from(_: IoError) -> Self {
        MountError::Io
    }
}

impl From<IoError> for FsError {
    fn from(_: IoError) -> Self {
        FsError::Io
    }
}

/// What a mount noticed and repaired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountReport {
    /// Block 0 was bad; the copy was used (and block 0 rewritten).
    pub used_copy: bool,
    /// A committed transaction was found in the journal and replayed
    /// (blocks it wrote).
    pub replayed: Option<usize>,
}

/// A cached metadata block.
struct Meta {
    kind: MetaKind,
    data: Box<Block>,
}

/// Why a metadata block did not load.
enum LoadError {
    Io,
    Bad(MetaError),
}

impl LoadError {
    fn at_mount(self, block: u64, what: &'static str) -> MountError {
        match self {
            LoadError::Io => MountError::Io,
            LoadError::Bad(e) => MountError::Metadata {
                block,
                what,
                error: Some(e),
            },
        }
    }
}

/// Metadata blocks kept in memory beyond the dirty ones.
const META_CACHE: usize = 4096;
/// Commit on its own once this many metadata blocks are dirty.
const AUTO_COMMIT: usize = 128;

/// A directory entry found: what it names and where it is stored.
#[derive(Clone, Copy)]
struct Found {
    ino: u64,
    kind: FileKind,
    block: u64,
    at: usize,
    len: usize,
}

/// A mounted file system.
pub struct Fs<S: Store> {
    store: S,
    sb: Superblock,
    /// The transaction being built (the next to commit).
    seq: u64,
    meta: BTreeMap<u64, Meta>,
    dirty: BTreeSet<u64>,
    /// The allocator's view: a bit per block, set when used *or* freed in
    /// the open transaction (not reusable until it commits).
    used: Vec<u64>,
    pending_free: Vec<Run>,
    free_blocks: u64,
    free_inodes: u64,
    read_only: bool,
    alloc_hint: u64,
    inode_hint: u64,
}

/// Whether `ino` names an inode slot: slot 0 of each inode-table block
/// holds the block's header, so inode numbers that are multiples of
/// [`INODES_PER_BLOCK`] (0 included) do not exist.
pub fn usable_ino(sb: &Superblock, ino: u64) -> bool {
    ino < sb.inode_count && !ino.is_multiple_of(INODES_PER_BLOCK)
}

fn bit(v: &[u64], b: u64) -> bool {
    v[(b / 64) as usize] & (1 << (b % 64)) != 0
}

fn set_bit(v: &mut [u64], b: u64, on: bool) {
    let w = &mut v[(b / 64) as usize];
    if on {
        *w |= 1 << (b % 64);
    } else {
        *w &= !(1 << (b % 64));
    }
}

/// `mkfs`: lays out an empty file system on the whole store.
pub fn format<S: Store>(
    mut store: S,
    journal_blocks: u64,
    inodes: u64,
    volume_id: [u8; 16],
) -> Result<Fs<S>, FormatError> {
    if store.read_only() {
        return Err(FormatError::ReadOnly);
    }
    let total = store.blocks();
    let sb = disk::layout(total, journal_blocks, inodes, volume_id).map_err(FormatError::Layout)?;
    let mut block = [0u8; BLOCK_SIZE];
    // No journal from whatever the device held before.
    store.write(sb.journal.start, &block)?;
    for i in 0..sb.bitmap.blocks {
        let number = sb.bitmap.start + i;
        block.fill(0);
        let first = i * disk::BITS_PER_BITMAP_BLOCK;
        for b in first..(first + disk::BITS_PER_BITMAP_BLOCK).min(total) {
            if sb.is_fixed(b) {
                disk::set_bitmap_bit(&mut block, (b - first) as usize, true);
            }
        }
        MetaHeader {
            kind: MetaKind::Bitmap,
            block: number,
            seq: 0,
        }
        .seal(&mut block);
        store.write(number, &block)?;
    }
    let now = store.now_ms();
    for i in 0..sb.inode_table.blocks {
        let number = sb.inode_table.start + i;
        block.fill(0);
        if number == sb.inode_table.start + sb.root_inode / INODES_PER_BLOCK {
            let at = (sb.root_inode % INODES_PER_BLOCK) as usize * inode::INODE_SIZE;
            let root = Inode::new(FileKind::Dir, now, 1);
            inode::encode(Some(&root), &mut block[at..at + inode::INODE_SIZE], None);
        }
        MetaHeader {
            kind: MetaKind::InodeTable,
            block: number,
            seq: 0,
        }
        .seal(&mut block);
        store.write(number, &block)?;
    }
    block.fill(0);
    block[..SUPERBLOCK_LEN].copy_from_slice(&sb.encode());
    store.write(sb.copy_block(), &block)?;
    store.write(0, &block)?;
    store.flush()?;
    Fs::mount(store).map(|(fs, _)| fs).map_err(FormatError::Mount)
}

/// Why `format` failed.
#[derive(Debug)]
pub enum FormatError {
    ReadOnly,
    Io,
    Layout(disk::LayoutError),
    /// What was written does not mount (a bug, or a failing device).
    Mount(MountError),
}

impl From<IoError> for FormatError {
    fn from(_: IoError) -> Self {
        FormatError::Io
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::ReadOnly => f.write_str("the device is read-only"),
            FormatError::Io => f.write_str("the device failed a write"),
            FormatError::Layout(e) => write!(f, "{e}"),
            FormatError::Mount(e) => write!(f, "the new file system does not mount: {e}"),
        }
    }
}

/// Reads and checks the superblock (block 0, else its copy).
fn read_superblock<S: Store>(store: &mut S) -> Result<(Superblock, bool), MountError> {
    let mut b = [0u8; BLOCK_SIZE];
    store.read(0, &mut b)?;
    let first = match Superblock::decode(&b) {
        Ok(sb) => return Ok((sb, false)),
        Err(e) => e,
    };
    let Some(last) = store.blocks().checked_sub(1) else {
        return Err(MountError::Superblock { first, copy: None });
    };
    store.read(last, &mut b)?;
    match Superblock::decode(&b) {
        Ok(sb) if sb.copy_block() == last => Ok((sb, true)),
        Ok(_) => Err(MountError::Superblock { first, copy: None }),
        Err(copy) => Err(MountError::Superblock {
            first,
            copy: Some(copy),
        }),
    }
}

impl<S: Store> Fs<S> {
    /// Mounts: the superblock (or its copy), the journal's last committed
    /// transaction replayed, the bitmap and the root checked.
    pub fn mount(mut store: S) -> Result<(Fs<S>, MountReport), MountError> {
        let (sb, used_copy) = read_superblock(&mut store)?;
        let device = store.blocks();
        if sb.total_blocks > device {
            return Err(MountError::TooLarge {
                fs: sb.total_blocks,
                device,
            });
        }
        let read_only = store.read_only();
        let mut report = MountReport {
            used_copy,
            replayed: None,
        };
        let (next_seq, replay) = journal::find(&mut store, &sb)?;
        let mut fs = Fs {
            store,
            sb,
            seq: next_seq,
            meta: BTreeMap::new(),
            dirty: BTreeSet::new(),
            used: vec![0; sb.total_blocks.div_ceil(64) as usize],
            pending_free: Vec::new(),
            free_blocks: 0,
            free_inodes: 0,
            read_only,
            alloc_hint: sb.data_start(),
            inode_hint: 1,
        };
        if let Some(blocks) = replay {
            report.replayed = Some(blocks.len());
            for (target, data) in blocks {
                if !read_only {
                    fs.store.write(target, &data)?;
                }
                // On a read-only device the journal's copies stand in for
                // the blocks in place.
                let kind =
                    MetaHeader::verify_any(&data[..], target)
                        .map(|h| h.kind)
                        .map_err(|e| MountError::Metadata {
                            block: target,
                            what: "journal copy of",
                            error: Some(e),
                        })?;
                fs.meta.insert(target, Meta { kind, data });
            }
            if !read_only {
                fs.store.flush()?;
            }
        }
        if used_copy && !read_only {
            let mut b = [0u8; BLOCK_SIZE];
            b[..SUPERBLOCK_LEN].copy_from_slice(&sb.encode());
            fs.store.write(0, &b)?;
            fs.store.flush()?;
        }
        fs.load_bitmap()?;
        fs.count_inodes()?;
        match fs.inode(sb.root_inode) {
            Ok(root) if root.kind == FileKind::Dir => {}
            Ok(_) => {
                return Err(MountError::Metadata {
                    block: fs.inode_location(sb.root_inode).0,
                    what: "the root inode is not a directory",
                    error: None,
                });
            }
            Err(_) => {
                return Err(MountError::Metadata {
                    block: fs.inode_location(sb.root_inode).0,
                    what: "the root inode is unreadable",
                    error: None,
                });
            }
        }
        Ok((fs, report))
    }

    fn load_bitmap(&mut self) -> Result<(), MountError> {
        let total = self.sb.total_blocks;
        for i in 0..self.sb.bitmap.blocks {
            let number = self.sb.bitmap.start + i;
            self.load_meta(number, MetaKind::Bitmap)
                .map_err(|e| e.at_mount(number, "bitmap"))?;
            let block = &self.meta[&number].data;
            let first = i * disk::BITS_PER_BITMAP_BLOCK;
            for b in first..(first + disk::BITS_PER_BITMAP_BLOCK).min(total) {
                let on = disk::bitmap_bit(block, (b - first) as usize);
                if !on && self.sb.is_fixed(b) {
                    return Err(MountError::Metadata {
                        block: number,
                        what: "a fixed region is free in the bitmap",
                        error: None,
                    });
                }
                set_bit(&mut self.used, b, on);
            }
        }
        self.free_blocks = (0..total).filter(|&b| !bit(&self.used, b)).count() as u64;
        Ok(())
    }

    fn count_inodes(&mut self) -> Result<(), MountError> {
        let mut free = 0;
        for i in 0..self.sb.inode_table.blocks {
            let number = self.sb.inode_table.start + i;
            self.load_meta(number, MetaKind::InodeTable)
                .map_err(|e| e.at_mount(number, "inode table"))?;
            let block = &self.meta[&number].data;
            for s in 0..INODES_PER_BLOCK {
                let ino = i * INODES_PER_BLOCK + s;
                if !usable_ino(&self.sb, ino) {
                    continue;
                }
                let at = s as usize * inode::INODE_SIZE;
                match inode::slot_kind(&block[at..at + inode::INODE_SIZE]) {
                    Ok(None) => free += 1,
                    Ok(Some(_)) => {}
                    Err(what) => {
                        return Err(MountError::Metadata {
                            block: number,
                            what,
                            error: None,
                        });
                    }
                }
            }
        }
        self.free_inodes = free;
        Ok(())
    }

    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The store (the kernel's data path reads through it directly).
    pub fn store(&mut self) -> &mut S {
        &mut self.store
    }

    /// Gives the store back (after a [`Fs::commit`] to keep what changed).
    pub fn into_store(self) -> S {
        self.store
    }

    pub fn statfs(&self) -> FsStat {
        FsStat {
            block_size: BLOCK_SIZE as u32,
            total_blocks: self.sb.total_blocks,
            free_blocks: self.free_blocks,
            inodes: self.sb.inode_count - self.sb.inode_count / INODES_PER_BLOCK,
            free_inodes: self.free_inodes,
            read_only: self.read_only,
        }
    }

    // ---- metadata blocks ----

    /// Loads metadata block `n` of `kind` into the cache (checked).
    fn meta_block(&mut self, n: u64, kind: MetaKind) -> Result<(), FsError> {
        self.load_meta(n, kind).map_err(|e| match e {
            LoadError::Io => FsError::Io,
            LoadError::Bad(_) => FsError::Corrupt,
        })
    }

    fn load_meta(&mut self, n: u64, kind: MetaKind) -> Result<(), LoadError> {
        if let Some(m) = self.meta.get(&n) {
            return if m.kind == kind {
                Ok(())
            } else {
                Err(LoadError::Bad(MetaError::WrongKind {
                    expected: kind,
                    found: m.kind,
                }))
            };
        }
        if n >= self.sb.total_blocks {
            return Err(LoadError::Bad(MetaError::Misdirected { expected: n, found: n }));
        }
        let mut data = Box::new([0u8; BLOCK_SIZE]);
        self.store.read(n, &mut data).map_err(|_| LoadError::Io)?;
        MetaHeader::verify(&data[..], kind, n).map_err(LoadError::Bad)?;
        if self.meta.len() >= META_CACHE + self.dirty.len() {
            let clean: Vec<u64> = self
                .meta
                .keys()
                .copied()
                .filter(|k| !self.dirty.contains(k))
                .take(META_CACHE / 4)
                .collect();
            for k in clean {
                self.meta.remove(&k);
            }
        }
        self.meta.insert(n, Meta { kind, data });
        Ok(())
    }

    fn meta_ref(&mut self, n: u64, kind: MetaKind) -> Result<&Block, FsError> {
        self.meta_block(n, kind)?;
        Ok(&self.meta[&n].data)
    }

    /// The block to change; it joins the open transaction.
    fn meta_mut(&mut self, n: u64, kind: MetaKind) -> Result<&mut Block, FsError> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        self.meta_block(n, kind)?;
        self.dirty.insert(n);
        Ok(&mut self.meta.get_mut(&n).expect("just loaded").data)
    }

    /// A new metadata block (just allocated): zeroed, dirty.
    fn meta_new(&mut self, n: u64, kind: MetaKind) -> &mut Block {
        self.dirty.insert(n);
        self.meta.insert(
            n,
            Meta {
                kind,
                data: Box::new([0u8; BLOCK_SIZE]),
            },
        );
        &mut self.meta.get_mut(&n).expect("just inserted").data
    }

    // ---- inodes ----

    fn inode_location(&self, ino: u64) -> (u64, usize) {
        (
            self.sb.inode_table.start + ino / INODES_PER_BLOCK,
            (ino % INODES_PER_BLOCK) as usize * inode::INODE_SIZE,
        )
    }

    fn check_ino(&self, ino: u64) -> Result<(), FsError> {
        if !usable_ino(&self.sb, ino) {
            return Err(FsError::Corrupt);
        }
        Ok(())
    }

    /// Inode `ino` (used), decoded and checked.
    pub fn inode(&mut self, ino: u64) -> Result<Inode, FsError> {
        self.check_ino(ino)?;
        let (block, at) = self.inode_location(ino);
        let sb = self.sb;
        let slot: [u8; inode::INODE_SIZE] = self.meta_ref(block, MetaKind::InodeTable)?[at..at + inode::INODE_SIZE]
            .try_into()
            .expect("slot");
        let list = match inode::slot_list_block(&slot) {
            Some(l) if inode::in_data(&sb, Run { start: l, blocks: 1 }) => {
                Some(*self.meta_ref(l, MetaKind::ExtentList)?)
            }
            _ => None,
        };
        inode::decode(&sb, &slot, list.as_ref()).map_err(|_| FsError::Corrupt)
    }

    fn slot_is_free(&mut self, ino: u64) -> Result<bool, FsError> {
        let (block, at) = self.inode_location(ino);
        let b = self.meta_ref(block, MetaKind::InodeTable)?;
        Ok(inode::slot_kind(&b[at..at + inode::INODE_SIZE])
            .map_err(|_| FsError::Corrupt)?
            .is_none())
    }

    /// Stores `inode` as `ino` (`None`: frees the slot), with its extent
    /// list block allocated or freed as the extent count needs.
    fn put_inode(&mut self, ino: u64, inode: Option<&mut Inode>) -> Result<(), FsError> {
        let (block, at) = self.inode_location(ino);
        let mut list_payload = None;
        if let Some(i) = inode.as_deref()
            && i.extents.len() > inode::MAX_EXTENTS
        {
            return Err(FsError::FileTooLarge);
        }
        let inode = match inode {
            Some(i) => {
                if i.extents.len() > inode::INLINE_EXTENTS {
                    if i.list_block == 0 {
                        let run = self.allocate(1, self.alloc_hint).ok_or(FsError::NoSpace)?;
                        i.list_block = run.start;
                        self.meta_new(run.start, MetaKind::ExtentList);
                    }
                    let mut payload = Box::new([0u8; BLOCK_SIZE]);
                    inode::encode(Some(i), &mut [0u8; inode::INODE_SIZE], Some(&mut payload));
                    list_payload = Some((i.list_block, payload));
                } else if i.list_block != 0 {
                    self.free(Run {
                        start: i.list_block,
                        blocks: 1,
                    })?;
                    i.list_block = 0;
                }
                Some(&*i)
            }
            None => None,
        };
        if let Some((l, payload)) = list_payload {
            let b = self.meta_mut(l, MetaKind::ExtentList)?;
            b[disk::META_HEADER_LEN..].copy_from_slice(&payload[disk::META_HEADER_LEN..]);
        }
        let b = self.meta_mut(block, MetaKind::InodeTable)?;
        inode::encode(inode, &mut b[at..at + inode::INODE_SIZE], None);
        Ok(())
    }

    fn new_inode(&mut self, kind: FileKind) -> Result<(u64, Inode), FsError> {
        if self.free_inodes == 0 {
            return Err(FsError::NoInodes);
        }
        let count = self.sb.inode_count;
        for k in 0..count {
            let ino = (self.inode_hint + k) % count;
            if !usable_ino(&self.sb, ino) {
                continue;
            }
            if self.slot_is_free(ino)? {
                self.inode_hint = ino + 1;
                let now = self.store.now_ms();
                let mut i = Inode::new(kind, now, (self.seq as u32).wrapping_add(1));
                self.put_inode(ino, Some(&mut i))?;
                self.free_inodes -= 1;
                return Ok((ino, i));
            }
        }
        Err(FsError::NoInodes)
    }

    // ---- blocks ----

    /// Up to `want` contiguous free blocks: the first run from `near` that
    /// holds them all, else the longest run there is. Marked used.
    fn allocate(&mut self, want: u64, near: u64) -> Option<Run> {
        if want == 0 || self.free_blocks == 0 {
            return None;
        }
        let want = want.min(inode::MAX_RUN);
        let total = self.sb.total_blocks;
        let start = if (self.sb.data_start()..total).contains(&near) {
            near
        } else {
            self.sb.data_start()
        };
        let mut best = Run { start: 0, blocks: 0 };
        let mut b = start;
        let mut wrapped = false;
        loop {
            if b >= total {
                if wrapped {
                    break;
                }
                wrapped = true;
                b = self.sb.data_start();
            }
            if wrapped && b >= start {
                break;
            }
            // Skip whole used words.
            if b % 64 == 0 && self.used[(b / 64) as usize] == u64::MAX {
                b += 64;
                continue;
            }
            if bit(&self.used, b) {
                b += 1;
                continue;
            }
            let run_start = b;
            while b < total && !bit(&self.used, b) && b - run_start < want {
                b += 1;
            }
            let run = Run {
                start: run_start,
                blocks: b - run_start,
            };
            if run.blocks > best.blocks {
                best = run;
            }
            if best.blocks >= want {
                break;
            }
        }
        if best.blocks == 0 {
            return None;
        }
        for b in best.start..best.end() {
            set_bit(&mut self.used, b, true);
            let (bm, bitn) = self.sb.bitmap_position(b);
            if let Ok(block) = self.meta_mut(bm, MetaKind::Bitmap) {
                disk::set_bitmap_bit(block, bitn, true);
            }
        }
        self.free_blocks -= best.blocks;
        self.alloc_hint = best.end();
        Some(best)
    }

    /// Frees `run` in the open transaction (reusable once it commits).
    fn free(&mut self, run: Run) -> Result<(), FsError> {
        for b in run.start..run.end() {
            let (bm, bitn) = self.sb.bitmap_position(b);
            disk::set_bitmap_bit(self.meta_mut(bm, MetaKind::Bitmap)?, bitn, false);
        }
        self.pending_free.push(run);
        Ok(())
    }

    // ---- transactions ----

    /// Makes every change so far durable: data flushed, the changed
    /// metadata journaled with a commit record, then written in place.
    pub fn commit(&mut self) -> Result<(), FsError> {
        if self.read_only {
            return Ok(());
        }
        if self.dirty.is_empty() {
            self.store.flush()?;
            return Ok(());
        }
        let dirty: Vec<u64> = core::mem::take(&mut self.dirty).into_iter().collect();
        for chunk in dirty.chunks(journal::capacity(&self.sb)) {
            let mut blocks = Vec::with_capacity(chunk.len());
            for &n in chunk {
                let seq = self.seq;
                let m = self.meta.get_mut(&n).expect("dirty blocks are cached");
                MetaHeader {
                    kind: m.kind,
                    block: n,
                    seq,
                }
                .seal(&mut m.data);
                blocks.push(n);
            }
            let sb = self.sb;
            let seq = self.seq;
            let meta = &self.meta;
            journal::commit(&mut self.store, &sb, seq, blocks.iter().map(|n| (*n, &*meta[n].data)))?;
            self.seq += 1;
        }
        // Committed: the freed blocks may be reused.
        for run in core::mem::take(&mut self.pending_free) {
            for b in run.start..run.end() {
                set_bit(&mut self.used, b, false);
            }
            self.free_blocks += run.blocks;
        }
        Ok(())
    }

    /// Commits if the open transaction has grown large.
    fn maybe_commit(&mut self) -> Result<(), FsError> {
        if self.dirty.len() >= AUTO_COMMIT {
            self.commit()?;
        }
        Ok(())
    }

    /// Whether uncommitted changes exist.
    pub fn has_uncommitted(&self) -> bool {
        !self.dirty.is_empty()
    }

    // ---- names ----

    /// The inode a path names.
    pub fn lookup(&mut self, path: &str) -> Result<u64, FsError> {
        let mut ino = self.sb.root_inode;
        for name in components(path)? {
            let dir = self.inode(ino)?;
            if dir.kind != FileKind::Dir {
                return Err(FsError::NotDir);
            }
            ino = self.find(&dir, name.as_bytes())?.ok_or(FsError::NotFound)?.ino;
        }
        Ok(ino)
    }

    /// The entry `name` of `dir`.
    fn find(&mut self, dir: &Inode, name: &[u8]) -> Result<Option<Found>, FsError> {
        for fb in 0..dir.blocks() {
            let (db, _) = dir.map(fb).ok_or(FsError::Corrupt)?;
            let block = self.meta_ref(db, MetaKind::Directory)?;
            for e in dir::entries(block).map_err(|_| FsError::Corrupt)? {
                if e.name == name {
                    return Ok(Some(Found {
                        ino: e.ino,
                        kind: e.kind,
                        block: db,
                        at: e.at,
                        len: e.stored_len(),
                    }));
                }
            }
        }
        Ok(None)
    }

    /// The parent directory of `path` and the last name.
    fn parent<'p>(&mut self, path: &'p str) -> Result<(u64, Inode, &'p str), FsError> {
        let (parent, name) = split_parent(path)?;
        let pino = self.lookup(parent)?;
        let dir = self.inode(pino)?;
        if dir.kind != FileKind::Dir {
            return Err(FsError::NotDir);
        }
        Ok((pino, dir, name))
    }

    /// Adds an entry to directory `pino`, growing it by a block if needed.
    fn link(&mut self, pino: u64, dir: &mut Inode, name: &[u8], ino: u64, kind: FileKind) -> Result<(), FsError> {
        for fb in 0..dir.blocks() {
            let (db, _) = dir.map(fb).ok_or(FsError::Corrupt)?;
            if BLOCK_SIZE - dir::used(self.meta_ref(db, MetaKind::Directory)?) >= 10 + name.len() {
                let b = self.meta_mut(db, MetaKind::Directory)?;
                dir::insert(b, ino, kind, name);
                dir.mtime_ms = self.store.now_ms();
                return self.put_inode(pino, Some(dir));
            }
        }
        let near = dir.extents.last().map_or(self.alloc_hint, |r| r.end());
        let run = self.allocate(1, near).ok_or(FsError::NoSpace)?;
        dir.push_run(run);
        if dir.extents.len() > inode::MAX_EXTENTS {
            return Err(FsError::FileTooLarge);
        }
        dir.size += BS;
        let b = self.meta_new(run.start, MetaKind::Directory);
        dir::insert(b, ino, kind, name);
        dir.mtime_ms = self.store.now_ms();
        self.put_inode(pino, Some(dir))
    }

    /// Creates a file or directory at `path`.
    pub fn create(&mut self, path: &str, kind: FileKind) -> Result<u64, FsError> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        let (pino, mut dir, name) = self.parent(path)?;
        check_name(name.as_bytes())?;
        if self.find(&dir, name.as_bytes())?.is_some() {
            return Err(FsError::Exists);
        }
        let (ino, _) = self.new_inode(kind)?;
        if let Err(e) = self.link(pino, &mut dir, name.as_bytes(), ino, kind) {
            // Nothing half-made stays: the inode goes back (the transaction
            // is not committed with a dangling inode).
            self.put_inode(ino, None)?;
            self.free_inodes += 1;
            return Err(e);
        }
        self.commit()?;
        Ok(ino)
    }

    pub fn stat(&mut self, ino: u64) -> Result<Stat, FsError> {
        let i = self.inode(ino)?;
        Ok(Stat {
            ino,
            kind: i.kind,
            size: i.size,
            blocks: i.blocks(),
            links: i.links,
            extents: i.extents.len() as u32,
            mtime_ms: i.mtime_ms,
            ctime_ms: i.ctime_ms,
        })
    }

    /// A directory's entries, in stored order.
    pub fn readdir(&mut self, ino: u64) -> Result<Vec<DirEntry>, FsError> {
        let dir = self.inode(ino)?;
        if dir.kind != FileKind::Dir {
            return Err(FsError::NotDir);
        }
        let mut out = Vec::new();
        for fb in 0..dir.blocks() {
            let (db, _) = dir.map(fb).ok_or(FsError::Corrupt)?;
            let block = self.meta_ref(db, MetaKind::Directory)?;
            for e in dir::entries(block).map_err(|_| FsError::Corrupt)? {
                let name = core::str::from_utf8(e.name).map_err(|_| FsError::Corrupt)?;
                out.push(DirEntry {
                    name: heapless::String::try_from(name).map_err(|_| FsError::Corrupt)?,
                    ino: e.ino,
                    kind: e.kind,
                });
            }
        }
        Ok(out)
    }

    /// Removes a file (its blocks freed) or an empty directory.
    pub fn unlink(&mut self, path: &str) -> Result<(), FsError> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        let (pino, mut dir, name) = self.parent(path)?;
        let Found {
            ino,
            block: db,
            at,
            len,
            ..
        } = self.find(&dir, name.as_bytes())?.ok_or(FsError::NotFound)?;
        let victim = self.inode(ino)?;
        if victim.kind == FileKind::Dir && !self.readdir(ino)?.is_empty() {
            return Err(FsError::NotEmpty);
        }
        dir::remove(self.meta_mut(db, MetaKind::Directory)?, at, len);
        dir.mtime_ms = self.store.now_ms();
        self.put_inode(pino, Some(&mut dir))?;
        self.drop_inode(ino, victim)?;
        self.commit()
    }

    fn drop_inode(&mut self, ino: u64, mut victim: Inode) -> Result<(), FsError> {
        for run in victim.cut(0) {
            self.free(run)?;
        }
        if victim.list_block != 0 {
            self.free(Run {
                start: victim.list_block,
                blocks: 1,
            })?;
        }
        self.put_inode(ino, None)?;
        self.free_inodes += 1;
        Ok(())
    }

    /// Renames atomically: `to` (if it exists, a file, or an empty
    /// directory when `from` is one) is replaced in the same transaction.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), FsError> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        let (fpino, fdir, fname) = self.parent(from)?;
        let Found { ino, kind, .. } = self.find(&fdir, fname.as_bytes())?.ok_or(FsError::NotFound)?;
        let (tpino, tdir, tname) = self.parent(to)?;
        check_name(tname.as_bytes())?;
        if kind == FileKind::Dir {
            // Not into itself: no directory on the way to `to` may be `from`.
            let (tparent, _) = split_parent(to)?;
            let mut cur = self.sb.root_inode;
            for c in components(tparent)? {
                let d = self.inode(cur)?;
                cur = self.find(&d, c.as_bytes())?.ok_or(FsError::NotFound)?.ino;
                if cur == ino {
                    return Err(FsError::Busy);
                }
            }
        }
        let existing = self.find(&tdir, tname.as_bytes())?;
        if let Some(Found {
            ino: tino, kind: tkind, ..
        }) = existing
        {
            if tino == ino {
                return Ok(());
            }
            match (kind, tkind) {
                (FileKind::File, FileKind::Dir) => return Err(FsError::IsDir),
                (FileKind::Dir, FileKind::File) => return Err(FsError::NotDir),
                (FileKind::Dir, FileKind::Dir) if !self.readdir(tino)?.is_empty() => return Err(FsError::NotEmpty),
                _ => {}
            }
        }
        // One transaction: nothing is committed until every step is done.
        if let Some(Found {
            ino: tino,
            block: db,
            at,
            len,
            ..
        }) = existing
        {
            dir::remove(self.meta_mut(db, MetaKind::Directory)?, at, len);
            let victim = self.inode(tino)?;
            self.drop_inode(tino, victim)?;
        }
        // Re-read: the target directory may be the source one.
        let mut tdir = self.inode(tpino)?;
        self.link(tpino, &mut tdir, tname.as_bytes(), ino, kind)?;
        let fdir = self.inode(fpino)?;
        let Found { block: db, at, len, .. } = self.find(&fdir, fname.as_bytes())?.ok_or(FsError::Corrupt)?;
        let mut fdir = fdir;
        dir::remove(self.meta_mut(db, MetaKind::Directory)?, at, len);
        fdir.mtime_ms = self.store.now_ms();
        self.put_inode(fpino, Some(&mut fdir))?;
        self.commit()
    }

    // ---- data ----

    /// Reads from file `ino` at `off` into `buf`; bytes read (0 at the end).
    pub fn read(&mut self, ino: u64, off: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        let i = self.inode(ino)?;
        if i.kind == FileKind::Dir {
            return Err(FsError::IsDir);
        }
        if off >= i.size {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(i.size - off) as usize;
        let mut done = 0;
        let mut block = [0u8; BLOCK_SIZE];
        while done < n {
            let pos = off + done as u64;
            let fb = pos / BS;
            let (db, run) = i.map(fb).ok_or(FsError::Corrupt)?;
            let within = (pos % BS) as usize;
            if within == 0 && n - done >= BLOCK_SIZE {
                let whole = (((n - done) / BLOCK_SIZE) as u64).min(run) as usize;
                self.store.read_run(db, &mut buf[done..done + whole * BLOCK_SIZE])?;
                done += whole * BLOCK_SIZE;
                continue;
            }
            self.store.read(db, &mut block)?;
            let take = (BLOCK_SIZE - within).min(n - done);
            buf[done..done + take].copy_from_slice(&block[within..within + take]);
            done += take;
        }
        Ok(n)
    }

    /// Makes file `ino` cover `end` bytes: the blocks past its data are
    /// allocated (contiguous where the disk allows) and the size grows.
    /// Returns the inode before and after. Nothing changes on an error.
    pub fn extend(&mut self, ino: u64, end: u64) -> Result<(Inode, Inode), FsError> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        let old = self.inode(ino)?;
        if old.kind == FileKind::Dir {
            return Err(FsError::IsDir);
        }
        let mut new = old.clone();
        if end <= old.size {
            return Ok((old, new));
        }
        let need = end.div_ceil(BS) - old.blocks();
        // The extent list block too, possibly.
        if need + 1 > self.free_blocks {
            return Err(FsError::NoSpace);
        }
        let mut got = Vec::new();
        let mut left = need;
        while left > 0 {
            let near = new.extents.last().map_or(self.alloc_hint, |r| r.end());
            let Some(run) = self.allocate(left, near) else { break };
            got.push(run);
            new.push_run(run);
            left -= run.blocks;
        }
        if left > 0 || new.extents.len() > inode::MAX_EXTENTS {
            // Give back what this call took (never committed).
            for run in got {
                self.unallocate(run)?;
            }
            return Err(if left > 0 {
                FsError::NoSpace
            } else {
                FsError::FileTooLarge
            });
        }
        new.size = end;
        new.mtime_ms = self.store.now_ms();
        self.put_inode(ino, Some(&mut new))?;
        Ok((old, new))
    }

    /// Undoes an allocation of the open transaction.
    fn unallocate(&mut self, run: Run) -> Result<(), FsError> {
        for b in run.start..run.end() {
            set_bit(&mut self.used, b, false);
            let (bm, bitn) = self.sb.bitmap_position(b);
            disk::set_bitmap_bit(self.meta_mut(bm, MetaKind::Bitmap)?, bitn, false);
        }
        self.free_blocks += run.blocks;
        Ok(())
    }

    /// Writes `data` to file `ino` at `off` (through to the device; the
    /// metadata joins the open transaction: [`Fs::commit`] makes it
    /// durable). A gap past the old end reads as zeros.
    pub fn write(&mut self, ino: u64, off: u64, data: &[u8]) -> Result<usize, FsError> {
        let end = off.checked_add(data.len() as u64).ok_or(FsError::FileTooLarge)?;
        let (old, new) = self.extend(ino, end)?;
        let old_size = old.size;
        // Every block from the first touched (or the old end's) to the
        // write's end: old bytes kept below the old size, zeros elsewhere.
        let first = off.min(old_size) / BS;
        let last = end.div_ceil(BS);
        let mut block = [0u8; BLOCK_SIZE];
        let mut fb = first;
        while fb < last {
            let (db, run) = new.map(fb).ok_or(FsError::Corrupt)?;
            let bstart = fb * BS;
            // Whole blocks inside the write: straight from `data`.
            if bstart >= off && bstart + BS <= end {
                let whole = ((end - bstart) / BS).min(run);
                let from = (bstart - off) as usize;
                self.store.write_run(db, &data[from..from + (whole * BS) as usize])?;
                fb += whole;
                continue;
            }
            if bstart < old_size {
                self.store.read(db, &mut block)?;
                let keep = (old_size - bstart).min(BS) as usize;
                block[keep..].fill(0);
            } else {
                block.fill(0);
            }
            let lo = off.max(bstart);
            let hi = end.min(bstart + BS);
            if lo < hi {
                let src = &data[(lo - off) as usize..(hi - off) as usize];
                block[(lo - bstart) as usize..(hi - bstart) as usize].copy_from_slice(src);
            }
            self.store.write(db, &block)?;
            fb += 1;
        }
        if end <= old_size {
            let mut i = new;
            i.mtime_ms = self.store.now_ms();
            self.put_inode(ino, Some(&mut i))?;
        }
        self.maybe_commit()?;
        Ok(data.len())
    }

    /// Shrinks file `ino` to `size` bytes (a larger size: [`Fs::extend`]).
    pub fn truncate(&mut self, ino: u64, size: u64) -> Result<(), FsError> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        let mut i = self.inode(ino)?;
        if i.kind == FileKind::Dir {
            return Err(FsError::IsDir);
        }
        if size >= i.size {
            // Growing: the new bytes read as zeros, not as whatever the
            // blocks last held (a deleted file's data).
            let old = i.size;
            self.extend(ino, size)?;
            self.zero_tail(ino, old)?;
            self.zero_blocks(ino, old.div_ceil(BS), size.div_ceil(BS))?;
            return self.maybe_commit();
        }
        for run in i.cut(size.div_ceil(BS)) {
            self.free(run)?;
        }
        i.size = size;
        i.mtime_ms = self.store.now_ms();
        self.put_inode(ino, Some(&mut i))?;
        self.maybe_commit()
    }

    /// Zeroes the bytes of the block holding byte `from` of `ino` from
    /// there on (what a shrink left behind in a partial last block).
    pub fn zero_tail(&mut self, ino: u64, from: u64) -> Result<(), FsError> {
        if from.is_multiple_of(BS) {
            return Ok(());
        }
        let (db, _) = self.inode(ino)?.map(from / BS).ok_or(FsError::Corrupt)?;
        let mut block = [0u8; BLOCK_SIZE];
        self.store.read(db, &mut block)?;
        block[(from % BS) as usize..].fill(0);
        self.store.write(db, &block)?;
        Ok(())
    }

    /// Writes zeros to file blocks `[from, to)` of `ino` (blocks a file
    /// grew by without data written to them).
    pub fn zero_blocks(&mut self, ino: u64, from: u64, to: u64) -> Result<(), FsError> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        let i = self.inode(ino)?;
        let zeros = vec![0u8; 64 * BLOCK_SIZE];
        let mut fb = from;
        while fb < to {
            let (db, run) = i.map(fb).ok_or(FsError::Corrupt)?;
            let n = run.min(to - fb).min(64);
            self.store.write_run(db, &zeros[..(n * BS) as usize])?;
            fb += n;
        }
        Ok(())
    }

    /// The device block holding file block `fb` of `ino` and the length of
    /// the contiguous run from it (the kernel's cache reads by this).
    pub fn map(&mut self, ino: u64, fb: u64) -> Result<Option<(u64, u64)>, FsError> {
        Ok(self.inode(ino)?.map(fb))
    }
}
