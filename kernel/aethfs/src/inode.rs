//! Inodes (256 bytes in an inode-table block) and extent lists
//! (docs/disk-format.md, "Inodes"). Decoding checks everything a later
//! step relies on: a bad inode is `Corrupt`, never a wild block number.

use aether_abi::disk::{BLOCK_SIZE, META_HEADER_LEN, Superblock, u32_at, u64_at};
use aether_abi::fs::FileKind;
use alloc::vec::Vec;

/// Bytes per inode.
pub const INODE_SIZE: usize = 256;
/// Extents stored in the inode itself.
pub const INLINE_EXTENTS: usize = 12;
/// Where an extent list block's entries start, and how many it holds.
const LIST_AT: usize = 48;
pub const LIST_EXTENTS: usize = (BLOCK_SIZE - LIST_AT) / 16;
/// The most extents a file may have (inline plus one list block).
pub const MAX_EXTENTS: usize = INLINE_EXTENTS + LIST_EXTENTS;
/// The longest extent (a `u32` of blocks).
pub const MAX_RUN: u64 = u32::MAX as u64;

/// A run of device blocks holding consecutive file blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub start: u64,
    pub blocks: u64,
}

impl Run {
    pub fn end(self) -> u64 {
        self.start + self.blocks
    }
}

/// An inode in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inode {
    pub kind: FileKind,
    pub links: u32,
    pub size: u64,
    pub mtime_ms: u64,
    pub ctime_ms: u64,
    pub generation: u32,
    /// In file order: file block 0 is `extents[0].start`.
    pub extents: Vec<Run>,
    /// The extent list block (0: none; needed past [`INLINE_EXTENTS`]).
    pub list_block: u64,
}

impl Inode {
    pub fn new(kind: FileKind, now_ms: u64, generation: u32) -> Inode {
        Inode {
            kind,
            links: 1,
            size: 0,
            mtime_ms: now_ms,
            ctime_ms: now_ms,
            generation,
            extents: Vec::new(),
            list_block: 0,
        }
    }

    /// Blocks allocated to the data.
    pub fn blocks(&self) -> u64 {
        self.extents.iter().map(|r| r.blocks).sum()
    }

    /// The device block of file block `fb` and how many blocks after it
    /// (itself included) follow contiguously on the device.
    pub fn map(&self, fb: u64) -> Option<(u64, u64)> {
        let mut first = 0;
        for r in &self.extents {
            if fb < first + r.blocks {
                let into = fb - first;
                return Some((r.start + into, r.blocks - into));
            }
            first += r.blocks;
        }
        None
    }

    /// Appends `run` to the data, merging it with the last extent when
    /// they touch.
    pub fn push_run(&mut self, run: Run) {
        if let Some(last) = self.extents.last_mut()
            && last.end() == run.start
            && last.blocks + run.blocks <= MAX_RUN
        {
            last.blocks += run.blocks;
            return;
        }
        self.extents.push(run);
    }

    /// Drops data blocks from file block `keep` on; the runs freed.
    pub fn cut(&mut self, keep: u64) -> Vec<Run> {
        let mut freed = Vec::new();
        let mut first = 0;
        let mut kept = Vec::new();
        for r in self.extents.drain(..) {
            if first + r.blocks <= keep {
                kept.push(r);
            } else if first >= keep {
                freed.push(r);
            } else {
                let stay = keep - first;
                kept.push(Run {
                    start: r.start,
                    blocks: stay,
                });
                freed.push(Run {
                    start: r.start + stay,
                    blocks: r.blocks - stay,
                });
            }
            first += r.blocks;
        }
        self.extents = kept;
        freed
    }
}

/// Why an inode is refused.
pub type Bad = &'static str;

fn kind_code(kind: Option<FileKind>) -> u8 {
    match kind {
        None => 0,
        Some(FileKind::File) => 1,
        Some(FileKind::Dir) => 2,
    }
}

/// Whether device run `r` lies in the data region of `sb`.
pub fn in_data(sb: &Superblock, r: Run) -> bool {
    r.blocks > 0 && r.start >= sb.data_start() && r.start.checked_add(r.blocks).is_some_and(|e| e <= sb.copy_block())
}

fn put_run(b: &mut [u8], at: usize, r: Run) {
    b[at..at + 8].copy_from_slice(&r.start.to_le_bytes());
    b[at + 8..at + 12].copy_from_slice(&(r.blocks as u32).to_le_bytes());
    b[at + 12..at + 16].fill(0);
}

fn get_run(b: &[u8], at: usize) -> Run {
    Run {
        start: u64_at(b, at),
        blocks: u32_at(b, at + 8) as u64,
    }
}

/// Writes `inode` (or a free slot, `None`) into its 256 bytes; the extents
/// past the inline ones go to `list` (a block's payload), which the caller
/// writes to `inode.list_block`.
pub fn encode(inode: Option<&Inode>, slot: &mut [u8], list: Option<&mut [u8; BLOCK_SIZE]>) {
    slot.fill(0);
    let Some(i) = inode else { return };
    slot[0] = kind_code(Some(i.kind));
    slot[4..8].copy_from_slice(&i.links.to_le_bytes());
    slot[8..16].copy_from_slice(&i.size.to_le_bytes());
    slot[16..24].copy_from_slice(&i.mtime_ms.to_le_bytes());
    slot[24..32].copy_from_slice(&i.ctime_ms.to_le_bytes());
    slot[32..36].copy_from_slice(&i.generation.to_le_bytes());
    slot[36..40].copy_from_slice(&(i.extents.len() as u32).to_le_bytes());
    slot[40..48].copy_from_slice(&i.list_block.to_le_bytes());
    for (n, r) in i.extents.iter().take(INLINE_EXTENTS).enumerate() {
        put_run(slot, 48 + 16 * n, *r);
    }
    if let Some(list) = list {
        list[META_HEADER_LEN..].fill(0);
        let rest = i.extents.len().saturating_sub(INLINE_EXTENTS);
        list[32..36].copy_from_slice(&(rest as u32).to_le_bytes());
        for (n, r) in i.extents.iter().skip(INLINE_EXTENTS).enumerate() {
            put_run(list, LIST_AT + 16 * n, *r);
        }
    }
}

/// The slot's kind (`None`: free) without decoding the rest.
pub fn slot_kind(slot: &[u8]) -> Result<Option<FileKind>, Bad> {
    match slot[0] {
        0 => Ok(None),
        1 => Ok(Some(FileKind::File)),
        2 => Ok(Some(FileKind::Dir)),
        _ => Err("unknown inode kind"),
    }
}

/// The extent list block an inode slot names, if it needs one.
pub fn slot_list_block(slot: &[u8]) -> Option<u64> {
    (u32_at(slot, 36) as usize > INLINE_EXTENTS).then(|| u64_at(slot, 40))
}

/// Decodes a used slot; `list` is the payload of its extent list block
/// when [`slot_list_block`] named one.
pub fn decode(sb: &Superblock, slot: &[u8], list: Option<&[u8; BLOCK_SIZE]>) -> Result<Inode, Bad> {
    let kind = slot_kind(slot)?.ok_or("a free inode")?;
    let count = u32_at(slot, 36) as usize;
    if count > MAX_EXTENTS {
        return Err("more extents than the format allows");
    }
    let mut inode = Inode {
        kind,
        links: u32_at(slot, 4),
        size: u64_at(slot, 8),
        mtime_ms: u64_at(slot, 16),
        ctime_ms: u64_at(slot, 24),
        generation: u32_at(slot, 32),
        extents: Vec::with_capacity(count),
        list_block: u64_at(slot, 40),
    };
    for n in 0..count.min(INLINE_EXTENTS) {
        inode.extents.push(get_run(slot, 48 + 16 * n));
    }
    if count > INLINE_EXTENTS {
        if !in_data(
            sb,
            Run {
                start: inode.list_block,
                blocks: 1,
            },
        ) {
            return Err("the extent list block is outside the data region");
        }
        let list = list.ok_or("the extent list block is missing")?;
        if u32_at(list, 32) as usize != count - INLINE_EXTENTS {
            return Err("the extent list's count disagrees with the inode");
        }
        for n in 0..count - INLINE_EXTENTS {
            inode.extents.push(get_run(list, LIST_AT + 16 * n));
        }
    } else if inode.list_block != 0 {
        return Err("an extent list block without extents for it");
    }
    if inode.links == 0 {
        return Err("a used inode with no links");
    }
    for r in &inode.extents {
        if !in_data(sb, *r) {
            return Err("an extent outside the data region");
        }
    }
    if inode.size > inode.blocks() * BLOCK_SIZE as u64 {
        return Err("the size is larger than the blocks allocated");
    }
    if inode.blocks() > inode.size.div_ceil(BLOCK_SIZE as u64) {
        return Err("more blocks than the size needs");
    }
    if kind == FileKind::Dir && !inode.size.is_multiple_of(BLOCK_SIZE as u64) {
        return Err("a directory whose size is not whole blocks");
    }
    Ok(inode)
}
