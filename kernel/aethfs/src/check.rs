//! `fsck`: checks a mounted file system from its root (the mount has
//! already checked the superblock, replayed the journal and verified the
//! bitmap and inode table blocks). Every problem is one line.

use aether_abi::disk::{self, BLOCK_SIZE, MetaHeader, MetaKind};
use aether_abi::fs::FileKind;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::inode::{self, Inode, Run};
use crate::{Fs, Store, bit, dir, set_bit};

/// Lines of one kind of problem before the rest are only counted.
const SHOWN: usize = 16;

struct Problems {
    lines: Vec<String>,
    per_kind: BTreeMap<&'static str, usize>,
}

impl Problems {
    fn add(&mut self, kind: &'static str, line: String) {
        let n = self.per_kind.entry(kind).or_default();
        *n += 1;
        if *n <= SHOWN {
            self.lines.push(line);
        }
    }

    fn finish(mut self) -> Vec<String> {
        for (kind, n) in &self.per_kind {
            if *n > SHOWN {
                self.lines.push(format!("... and {} more: {kind}", n - SHOWN));
            }
        }
        self.lines
    }
}

impl<S: Store> Fs<S> {
    /// Every inconsistency found, one line each (empty: clean).
    pub fn check(&mut self) -> Vec<String> {
        let mut p = Problems {
            lines: Vec::new(),
            per_kind: BTreeMap::new(),
        };
        let sb = self.sb;
        let total = sb.total_blocks;
        let mut seen = vec![0u64; total.div_ceil(64) as usize];
        for b in 0..total {
            if sb.is_fixed(b) {
                set_bit(&mut seen, b, true);
            }
        }
        // Every used inode, decoded, and the blocks it owns.
        let mut inodes: BTreeMap<u64, Inode> = BTreeMap::new();
        for ino in (1..sb.inode_count).filter(|&i| crate::usable_ino(&sb, i)) {
            let (block, at) = self.inode_location(ino);
            let slot: Vec<u8> = match self.meta_ref(block, MetaKind::InodeTable) {
                Ok(b) => b[at..at + inode::INODE_SIZE].to_vec(),
                Err(e) => {
                    p.add("inode table", format!("inode table block {block}: {e}"));
                    continue;
                }
            };
            match inode::slot_kind(&slot) {
                Ok(None) => continue,
                Ok(Some(_)) => {}
                Err(why) => {
                    p.add("inode", format!("inode {ino}: {why}"));
                    continue;
                }
            }
            let list = match inode::slot_list_block(&slot) {
                Some(l) if inode::in_data(&sb, Run { start: l, blocks: 1 }) => {
                    let mut b = [0u8; BLOCK_SIZE];
                    if self.store.read(l, &mut b).is_err() {
                        p.add("io", format!("inode {ino}: its extent list block {l} is unreadable"));
                        continue;
                    }
                    let b = self.meta.get(&l).map_or(b, |m| *m.data);
                    if let Err(e) = MetaHeader::verify(&b, MetaKind::ExtentList, l) {
                        p.add("extent list", format!("inode {ino}: extent list block {l}: {e}"));
                        continue;
                    }
                    Some(b)
                }
                _ => None,
            };
            match inode::decode(&sb, &slot, list.as_ref()) {
                Ok(i) => {
                    let mut runs = i.extents.clone();
                    if i.list_block != 0 {
                        runs.push(Run {
                            start: i.list_block,
                            blocks: 1,
                        });
                    }
                    for r in runs {
                        for b in r.start..r.end() {
                            if bit(&seen, b) {
                                p.add("shared", format!("block {b} of inode {ino} is also used elsewhere"));
                            }
                            set_bit(&mut seen, b, true);
                        }
                    }
                    inodes.insert(ino, i);
                }
                Err(why) => p.add("inode", format!("inode {ino}: {why}")),
            }
        }
        // The tree from the root: every entry names a used inode of its
        // kind; every directory is reached once.
        let mut refs: BTreeMap<u64, u32> = BTreeMap::new();
        let mut visited = BTreeSet::new();
        let mut queue = VecDeque::from([sb.root_inode]);
        visited.insert(sb.root_inode);
        while let Some(d) = queue.pop_front() {
            let Some(dinode) = inodes.get(&d).cloned() else {
                p.add("dir", format!("directory inode {d} is not a valid inode"));
                continue;
            };
            if dinode.kind != FileKind::Dir {
                p.add("dir", format!("inode {d} is listed as a directory but is a file"));
                continue;
            }
            for fb in 0..dinode.blocks() {
                let Some((db, _)) = dinode.map(fb) else { continue };
                let block = match self.meta_ref(db, MetaKind::Directory) {
                    Ok(b) => *b,
                    Err(e) => {
                        p.add("dir", format!("directory {d}: block {db}: {e}"));
                        continue;
                    }
                };
                let entries = match dir::entries(&block) {
                    Ok(e) => e,
                    Err(why) => {
                        p.add("dir", format!("directory {d}: block {db}: {why}"));
                        continue;
                    }
                };
                let mut names = BTreeSet::new();
                for e in entries {
                    let name = String::from_utf8_lossy(e.name);
                    if !names.insert(e.name.to_vec()) {
                        p.add("dir", format!("directory {d}: the name {name:?} appears twice"));
                    }
                    let Some(child) = inodes.get(&e.ino) else {
                        p.add(
                            "dangling",
                            format!("directory {d}: {name:?} names inode {} which is not in use", e.ino),
                        );
                        continue;
                    };
                    if child.kind != e.kind {
                        p.add("dir", format!("directory {d}: {name:?} has the wrong kind"));
                    }
                    *refs.entry(e.ino).or_default() += 1;
                    if child.kind == FileKind::Dir {
                        if visited.insert(e.ino) {
                            queue.push_back(e.ino);
                        } else {
                            p.add("dir", format!("directory inode {} is reached twice", e.ino));
                        }
                    }
                }
            }
        }
        for (ino, i) in &inodes {
            let r = refs.get(ino).copied().unwrap_or(0);
            if *ino == sb.root_inode {
                continue;
            }
            if r == 0 {
                p.add("orphan", format!("inode {ino} is in no directory (orphan)"));
            } else if r != i.links {
                p.add("links", format!("inode {ino} has {} links but {r} entries", i.links));
            }
        }
        // The bitmap against what is really used.
        let mut free = 0;
        for b in 0..total {
            let (bm, bitn) = sb.bitmap_position(b);
            let on = match self.meta_ref(bm, MetaKind::Bitmap) {
                Ok(block) => disk::bitmap_bit(block, bitn),
                Err(_) => continue,
            };
            let used = bit(&seen, b);
            if used && !on {
                p.add("free but used", format!("block {b} is in use but free in the bitmap"));
            } else if on && !used && !self.pending_free.iter().any(|r| (r.start..r.end()).contains(&b)) {
                p.add("leaked", format!("block {b} is marked used but nothing uses it"));
            }
            if !on {
                free += 1;
            }
        }
        if free != self.free_blocks && self.pending_free.is_empty() {
            p.add(
                "count",
                format!(
                    "{free} blocks are free in the bitmap, the allocator counts {}",
                    self.free_blocks
                ),
            );
        }
        p.finish()
    }
}
