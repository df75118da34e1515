//! The metadata journal (docs/disk-format.md, "Crash consistency"). One
//! transaction at a time lives in the journal region: a descriptor (the
//! target block numbers), the copies, a commit record with the checksum of
//! all of them. Each commit checkpoints at once, so the next one may reuse
//! the region from its start.

use aether_abi::crc::{CASTAGNOLI, update};
use aether_abi::disk::{BLOCK_SIZE, MetaHeader, MetaKind, Superblock, u32_at, u64_at};
use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::{Block, IoError, MountError, Store};

const TARGETS_AT: usize = 56;

/// Blocks one transaction may hold.
pub fn capacity(sb: &Superblock) -> usize {
    ((BLOCK_SIZE - TARGETS_AT) / 8).min(sb.journal.blocks as usize - 2)
}

fn crc_of<'a>(blocks: impl Iterator<Item = &'a [u8]>) -> u32 {
    let mut c = !0;
    for b in blocks {
        c = update(&CASTAGNOLI, c, b.iter().copied());
    }
    !c
}

/// Commits one transaction: data first (flush), then the journal (flush:
/// durable from here on), then the blocks in place (flushed by the next
/// commit; a power cut before that replays the journal).
pub fn commit<'a, S: Store>(
    store: &mut S,
    sb: &Superblock,
    seq: u64,
    blocks: impl Iterator<Item = (u64, &'a Block)> + Clone,
) -> Result<(), IoError> {
    store.flush()?;
    let start = sb.journal.start;
    let mut desc = [0u8; BLOCK_SIZE];
    let mut count = 0usize;
    for (i, (target, data)) in blocks.clone().enumerate() {
        desc[TARGETS_AT + 8 * i..TARGETS_AT + 8 * i + 8].copy_from_slice(&target.to_le_bytes());
        store.write(start + 1 + i as u64, data)?;
        count += 1;
    }
    desc[32..36].copy_from_slice(&(count as u32).to_le_bytes());
    desc[40..56].copy_from_slice(&sb.volume_id);
    MetaHeader {
        kind: MetaKind::JournalDescriptor,
        block: start,
        seq,
    }
    .seal(&mut desc);
    store.write(start, &desc)?;
    let crc = crc_of(core::iter::once(&desc[..]).chain(blocks.clone().map(|(_, b)| &b[..])));
    let at = start + 1 + count as u64;
    let mut commit = [0u8; BLOCK_SIZE];
    commit[32..36].copy_from_slice(&(count as u32).to_le_bytes());
    commit[36..40].copy_from_slice(&crc.to_le_bytes());
    commit[40..56].copy_from_slice(&sb.volume_id);
    MetaHeader {
        kind: MetaKind::JournalCommit,
        block: at,
        seq,
    }
    .seal(&mut commit);
    store.write(at, &commit)?;
    store.flush()?;
    for (target, data) in blocks {
        store.write(target, data)?;
    }
    Ok(())
}

/// A transaction to replay: its blocks and where they go.
pub type Replay = Vec<(u64, Box<Block>)>;

/// Looks at the journal at mount: the next sequence number, and the last
/// transaction if it committed (replaying it is idempotent: it may have
/// been checkpointed already).
pub fn find<S: Store>(store: &mut S, sb: &Superblock) -> Result<(u64, Option<Replay>), MountError> {
    let start = sb.journal.start;
    let mut desc = [0u8; BLOCK_SIZE];
    store.read(start, &mut desc)?;
    let Ok(h) = MetaHeader::verify(&desc, MetaKind::JournalDescriptor, start) else {
        // Never written, or torn: nothing committed there.
        return Ok((sb.checkpoint_seq + 1, None));
    };
    let next = h.seq.max(sb.checkpoint_seq) + 1;
    if desc[40..56] != sb.volume_id {
        // Another file system's journal (an earlier mkfs on this device).
        return Ok((next, None));
    }
    let count = u32_at(&desc, 32) as usize;
    let bad = |what| MountError::Metadata {
        block: start,
        what,
        error: None,
    };
    if count == 0 || count > capacity(sb) {
        return Err(bad("the journal descriptor's count is out of range"));
    }
    let at = start + 1 + count as u64;
    let mut commit = [0u8; BLOCK_SIZE];
    store.read(at, &mut commit)?;
    let committed = MetaHeader::verify(&commit, MetaKind::JournalCommit, at)
        .is_ok_and(|c| c.seq == h.seq && u32_at(&commit, 32) as usize == count && commit[40..56] == sb.volume_id);
    if !committed {
        return Ok((next, None));
    }
    let mut blocks: Replay = Vec::with_capacity(count);
    for i in 0..count {
        let target = u64_at(&desc, TARGETS_AT + 8 * i);
        if target < sb.journal.start + sb.journal.blocks || target >= sb.copy_block() {
            return Err(bad("the journal names a block outside the metadata"));
        }
        let mut b = Box::new([0u8; BLOCK_SIZE]);
        store.read(start + 1 + i as u64, &mut b)?;
        blocks.push((target, b));
    }
    let crc = crc_of(core::iter::once(&desc[..]).chain(blocks.iter().map(|(_, b)| &b[..])));
    if crc != u32_at(&commit, 36) {
        // The commit record of an earlier transaction of the same length.
        return Ok((next, None));
    }
    Ok((next, Some(blocks)))
}
