//! Directory blocks (docs/disk-format.md, "Directories"): after the
//! metadata header, entries `{inode: u64, kind: u8, name_len: u8, name}`
//! packed one after another; an inode number of 0 (or the end of the
//! block) ends them.

use aether_abi::disk::{BLOCK_SIZE, META_HEADER_LEN, u64_at};
use aether_abi::fs::{FileKind, check_name};
use alloc::vec::Vec;

const ENTRY_HEAD: usize = 10;

/// One entry as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub ino: u64,
    pub kind: FileKind,
    pub name: &'a [u8],
    /// Its byte offset in the block.
    pub at: usize,
}

impl Entry<'_> {
    /// Its length in the block.
    pub fn stored_len(&self) -> usize {
        ENTRY_HEAD + self.name.len()
    }
}

/// The entries of a directory block, or why it is bad.
pub fn entries(block: &[u8; BLOCK_SIZE]) -> Result<Vec<Entry<'_>>, &'static str> {
    let mut out = Vec::new();
    let mut at = META_HEADER_LEN;
    while at + ENTRY_HEAD <= BLOCK_SIZE {
        let ino = u64_at(block, at);
        if ino == 0 {
            break;
        }
        let kind = match block[at + 8] {
            1 => FileKind::File,
            2 => FileKind::Dir,
            _ => return Err("a directory entry of unknown kind"),
        };
        let len = block[at + 9] as usize;
        let name = block
            .get(at + ENTRY_HEAD..at + ENTRY_HEAD + len)
            .ok_or("a directory entry runs past its block")?;
        if check_name(name).is_err() {
            return Err("a directory entry with an invalid name");
        }
        out.push(Entry { ino, kind, name, at });
        at += ENTRY_HEAD + len;
    }
    Ok(out)
}

/// Where the entries of a (valid) block end.
pub fn used(block: &[u8; BLOCK_SIZE]) -> usize {
    entries(block)
        .ok()
        .and_then(|e| e.last().map(|l| l.at + l.stored_len()))
        .unwrap_or(META_HEADER_LEN)
}

/// Appends an entry if it fits; whether it did.
pub fn insert(block: &mut [u8; BLOCK_SIZE], ino: u64, kind: FileKind, name: &[u8]) -> bool {
    let at = used(block);
    let len = ENTRY_HEAD + name.len();
    if at + len > BLOCK_SIZE {
        return false;
    }
    block[at..at + 8].copy_from_slice(&ino.to_le_bytes());
    block[at + 8] = match kind {
        FileKind::File => 1,
        FileKind::Dir => 2,
    };
    block[at + 9] = name.len() as u8;
    block[at + ENTRY_HEAD..at + len].copy_from_slice(name);
    if at + len + 8 <= BLOCK_SIZE {
        block[at + len..at + len + 8].fill(0);
    }
    true
}

/// Removes the entry at byte `at` of length `len`, closing the gap.
pub fn remove(block: &mut [u8; BLOCK_SIZE], at: usize, len: usize) {
    let end = used(block);
    block.copy_within(at + len..end, at);
    block[end - len..end].fill(0);
}
