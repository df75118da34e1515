//! AetherOS disk images, offline (docs/disk-format.md): `mkfs` lays out an
//! empty file system on an image file, `check` verifies what exists of the
//! format so far (superblock and its copy, bitmap blocks and the fixed
//! regions marked used in them). The format code is `aether_abi::disk`,
//! shared with the kernel.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use aether_abi::disk::{
    self, BLOCK_SIZE, MetaHeader, MetaKind, SUPERBLOCK_LEN, Superblock, bitmap_bit, set_bitmap_bit,
};

/// The default journal size (4 MiB) and inode count.
pub const JOURNAL_BLOCKS: u64 = 1024;
pub const INODES: u64 = 4096;

#[derive(Debug)]
pub enum Error {
    Io(io::Error),
    Layout(disk::LayoutError),
    /// What `check` found wrong, each a line.
    Inconsistent(Vec<String>),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Layout(e) => write!(f, "{e}"),
            Error::Inconsistent(problems) => write!(f, "{} problem(s): {}", problems.len(), problems.join("; ")),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

fn volume_id() -> io::Result<[u8; 16]> {
    let mut id = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut id)?;
    Ok(id)
}

fn write_block(f: &mut File, n: u64, block: &[u8; BLOCK_SIZE]) -> io::Result<()> {
    f.seek(SeekFrom::Start(n * BLOCK_SIZE as u64))?;
    f.write_all(block)
}

fn read_block(f: &mut File, n: u64) -> io::Result<[u8; BLOCK_SIZE]> {
    let mut block = [0u8; BLOCK_SIZE];
    f.seek(SeekFrom::Start(n * BLOCK_SIZE as u64))?;
    f.read_exact(&mut block)?;
    Ok(block)
}

/// Creates (or overwrites) `path` as an empty file system of `bytes`
/// (rounded down to whole blocks).
pub fn mkfs(path: &Path, bytes: u64) -> Result<Superblock, Error> {
    let total = bytes / BLOCK_SIZE as u64;
    let sb = disk::layout(total, JOURNAL_BLOCKS, INODES, volume_id()?).map_err(Error::Layout)?;
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .read(true)
        .truncate(true)
        .open(path)?;
    f.set_len(total * BLOCK_SIZE as u64)?;
    let mut block = [0u8; BLOCK_SIZE];
    block[..SUPERBLOCK_LEN].copy_from_slice(&sb.encode());
    write_block(&mut f, 0, &block)?;
    write_block(&mut f, sb.copy_block(), &block)?;
    // The bitmap: every fixed block used, the rest free.
    for i in 0..sb.bitmap.blocks {
        let number = sb.bitmap.start + i;
        let mut bm = [0u8; BLOCK_SIZE];
        let first = i * disk::BITS_PER_BITMAP_BLOCK;
        for b in first..(first + disk::BITS_PER_BITMAP_BLOCK).min(total) {
            if sb.is_fixed(b) {
                set_bitmap_bit(&mut bm, (b - first) as usize, true);
            }
        }
        MetaHeader {
            kind: MetaKind::Bitmap,
            block: number,
            seq: 0,
        }
        .seal(&mut bm);
        write_block(&mut f, number, &bm)?;
    }
    // The inode table: sealed empty blocks.
    for i in 0..sb.inode_table.blocks {
        let number = sb.inode_table.start + i;
        let mut it = [0u8; BLOCK_SIZE];
        MetaHeader {
            kind: MetaKind::InodeTable,
            block: number,
            seq: 0,
        }
        .seal(&mut it);
        write_block(&mut f, number, &it)?;
    }
    f.sync_all()?;
    Ok(sb)
}

/// The superblock of `path`: block 0's, or its copy's when block 0 is bad
/// (then `Some(why)`).
pub fn superblock(path: &Path) -> Result<(Superblock, Option<disk::SuperblockError>), Error> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let first = read_block(&mut f, 0)?;
    match Superblock::decode(&first) {
        Ok(sb) => Ok((sb, None)),
        Err(e) => {
            let last = (len / BLOCK_SIZE as u64)
                .checked_sub(1)
                .ok_or_else(|| Error::Inconsistent(vec![e.to_string()]))?;
            let copy = read_block(&mut f, last)?;
            match Superblock::decode(&copy) {
                Ok(sb) if sb.copy_block() == last => Ok((sb, Some(e))),
                Ok(_) => Err(Error::Inconsistent(vec![format!(
                    "block 0: {e}; the copy is for another size"
                )])),
                Err(e2) => Err(Error::Inconsistent(vec![format!("block 0: {e}; the copy: {e2}")])),
            }
        }
    }
}

/// Checks `path` (what exists of the format so far); the superblock if
/// everything is consistent.
pub fn check(path: &Path) -> Result<Superblock, Error> {
    let (sb, bad_first) = superblock(path)?;
    let mut problems = Vec::new();
    if let Some(e) = bad_first {
        problems.push(format!("block 0: {e} (the copy is good)"));
    }
    let mut f = File::open(path)?;
    let blocks = f.metadata()?.len() / BLOCK_SIZE as u64;
    if blocks != sb.total_blocks {
        problems.push(format!(
            "the image has {blocks} blocks, the superblock says {}",
            sb.total_blocks
        ));
    }
    if problems.is_empty() {
        let copy = read_block(&mut f, sb.copy_block())?;
        if copy[..SUPERBLOCK_LEN] != sb.encode() {
            problems.push("the superblock's copy differs from block 0".into());
        }
    }
    for i in 0..sb.bitmap.blocks {
        let number = sb.bitmap.start + i;
        let Ok(bm) = read_block(&mut f, number) else {
            problems.push(format!("bitmap block {number}: unreadable"));
            continue;
        };
        if let Err(e) = MetaHeader::verify(&bm, MetaKind::Bitmap, number) {
            problems.push(format!("bitmap block {number}: {e}"));
            continue;
        }
        let first = i * disk::BITS_PER_BITMAP_BLOCK;
        for b in first..(first + disk::BITS_PER_BITMAP_BLOCK).min(sb.total_blocks) {
            if sb.is_fixed(b) && !bitmap_bit(&bm, (b - first) as usize) {
                problems.push(format!("block {b} belongs to a fixed region but is free in the bitmap"));
                break;
            }
        }
    }
    for i in 0..sb.inode_table.blocks {
        let number = sb.inode_table.start + i;
        match read_block(&mut f, number) {
            Ok(it) => {
                if let Err(e) = MetaHeader::verify(&it, MetaKind::InodeTable, number) {
                    problems.push(format!("inode table block {number}: {e}"));
                }
            }
            Err(_) => problems.push(format!("inode table block {number}: unreadable")),
        }
    }
    if problems.is_empty() {
        Ok(sb)
    } else {
        Err(Error::Inconsistent(problems))
    }
}
