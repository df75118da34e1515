#![allow(clippy::map_entry)] // the model reads clearer as test-then-insert

use std::collections::BTreeMap;
use std::string::String;
use std::vec::Vec;

use aether_abi::fs::{FileKind, FsError};

use crate::mem::MemStore;
use crate::{Fs, MountError, format};

/// xorshift64*: reproducible cases without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn fresh(blocks: u64) -> Fs<MemStore> {
    format(MemStore::new(blocks), 64, 256, *b"aethfs-test-vol!").unwrap()
}

fn remount(fs: Fs<MemStore>) -> Fs<MemStore> {
    Fs::mount(fs.into_store()).unwrap().0
}

fn read_all(fs: &mut Fs<MemStore>, path: &str) -> Vec<u8> {
    let ino = fs.lookup(path).unwrap();
    let size = fs.stat(ino).unwrap().size as usize;
    let mut buf = std::vec![0u8; size];
    assert_eq!(fs.read(ino, 0, &mut buf).unwrap(), size);
    buf
}

/// Everything below `/`, as the model keeps it: files and their bytes,
/// directories as `None`.
fn tree(fs: &mut Fs<MemStore>) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = std::vec![String::from("")];
    while let Some(dir) = todo.pop() {
        let ino = fs.lookup(if dir.is_empty() { "/" } else { &dir }).unwrap();
        for e in fs.readdir(ino).unwrap() {
            let path = std::format!("{dir}/{}", e.name);
            match e.kind {
                FileKind::Dir => {
                    out.insert(path.clone(), None);
                    todo.push(path);
                }
                FileKind::File => {
                    let data = read_all(fs, &path);
                    out.insert(path, Some(data));
                }
            }
        }
    }
    out
}

#[test]
fn a_fresh_file_system_mounts_empty_and_checks_clean() {
    let mut fs = fresh(1024);
    assert!(fs.readdir(1).unwrap().is_empty());
    assert!(fs.check().is_empty(), "{:?}", fs.check());
    let st = fs.statfs();
    assert_eq!(st.total_blocks, 1024);
    assert_eq!(st.free_blocks, 1024 - fs.superblock().data_start() - 1);
    let mut fs = remount(fs);
    assert!(fs.check().is_empty());
}

#[test]
fn files_and_directories_survive_a_remount() {
    let mut fs = fresh(2048);
    fs.create("/data", FileKind::Dir).unwrap();
    let f = fs.create("/data/a.bin", FileKind::File).unwrap();
    let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    fs.write(f, 0, &body).unwrap();
    // An overwrite in the middle, an append past a gap.
    fs.write(f, 100, b"hello").unwrap();
    fs.write(f, 20_000, b"tail").unwrap();
    fs.commit().unwrap();
    let mut expect = body.clone();
    expect[100..105].copy_from_slice(b"hello");
    expect.resize(20_000, 0);
    expect.extend_from_slice(b"tail");
    let mut fs = remount(fs);
    assert_eq!(read_all(&mut fs, "/data/a.bin"), expect);
    assert!(fs.check().is_empty(), "{:?}", fs.check());
    let st = fs.stat(f).unwrap();
    assert_eq!((st.size, st.blocks, st.kind), (20_004, 5, FileKind::File));
}

#[test]
fn a_large_file_is_one_contiguous_extent() {
    let mut fs = fresh(16 * 1024);
    let f = fs.create("/big", FileKind::File).unwrap();
    let data = Rng(7).bytes(32 << 20);
    fs.write(f, 0, &data).unwrap();
    fs.commit().unwrap();
    assert_eq!(fs.stat(f).unwrap().extents, 1);
    let mut fs = remount(fs);
    assert_eq!(read_all(&mut fs, "/big"), data);
}

#[test]
fn bad_names_and_paths_are_refused() {
    let mut fs = fresh(1024);
    let long = std::format!("/{}", "n".repeat(256));
    assert_eq!(fs.create(&long, FileKind::File), Err(FsError::NameTooLong));
    assert_eq!(fs.create("/a/../b", FileKind::File), Err(FsError::InvalidPath));
    assert_eq!(fs.create("relative", FileKind::File), Err(FsError::InvalidPath));
    assert_eq!(fs.create("/", FileKind::Dir), Err(FsError::InvalidPath));
    assert_eq!(fs.create("/missing/x", FileKind::File), Err(FsError::NotFound));
    fs.create("/f", FileKind::File).unwrap();
    assert_eq!(fs.create("/f", FileKind::File), Err(FsError::Exists));
    assert_eq!(fs.create("/f/x", FileKind::File), Err(FsError::NotDir));
    assert_eq!(fs.lookup("/f/x"), Err(FsError::NotDir));
    let ok = std::format!("/{}", "n".repeat(255));
    fs.create(&ok, FileKind::File).unwrap();
    assert!(fs.check().is_empty());
}

#[test]
fn unlink_and_rename_keep_the_tree_consistent() {
    let mut fs = fresh(2048);
    fs.create("/d", FileKind::Dir).unwrap();
    let a = fs.create("/d/a", FileKind::File).unwrap();
    fs.write(a, 0, &[1; 9000]).unwrap();
    let b = fs.create("/b", FileKind::File).unwrap();
    fs.write(b, 0, b"bee").unwrap();
    let free = fs.statfs().free_blocks;
    assert_eq!(fs.unlink("/d"), Err(FsError::NotEmpty));
    // Rename over an existing file replaces it (its blocks freed).
    fs.rename("/b", "/d/a").unwrap();
    assert_eq!(read_all(&mut fs, "/d/a"), b"bee");
    assert_eq!(fs.lookup("/b"), Err(FsError::NotFound));
    assert_eq!(fs.statfs().free_blocks, free + 3);
    assert_eq!(fs.rename("/d", "/d/inner"), Err(FsError::Busy));
    fs.create("/e", FileKind::Dir).unwrap();
    fs.rename("/d", "/e/d").unwrap();
    assert_eq!(read_all(&mut fs, "/e/d/a"), b"bee");
    assert_eq!(fs.rename("/e/d/a", "/e"), Err(FsError::IsDir));
    fs.unlink("/e/d/a").unwrap();
    fs.unlink("/e/d").unwrap();
    let mut fs = remount(fs);
    assert!(fs.check().is_empty(), "{:?}", fs.check());
    assert_eq!(tree(&mut fs).keys().collect::<Vec<_>>(), ["/e"]);
}

#[test]
fn a_full_disk_says_no_space_and_loses_nothing() {
    let mut fs = fresh(1024);
    let keep = fs.create("/keep", FileKind::File).unwrap();
    fs.write(keep, 0, b"precious").unwrap();
    let f = fs.create("/fill", FileKind::File).unwrap();
    let mut written = 0u64;
    let chunk = std::vec![0xAB; 64 * 1024];
    loop {
        match fs.write(f, written, &chunk) {
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e, FsError::NoSpace);
                break;
            }
        }
    }
    assert!(written > 0);
    assert_eq!(fs.stat(f).unwrap().size, written);
    fs.commit().unwrap();
    assert_eq!(
        fs.create("/more", FileKind::Dir).err().is_some(),
        fs.statfs().free_blocks == 0
    );
    let mut fs = remount(fs);
    assert!(fs.check().is_empty(), "{:?}", fs.check());
    assert_eq!(read_all(&mut fs, "/keep"), b"precious");
    assert_eq!(read_all(&mut fs, "/fill").len() as u64, written);
    // Space comes back when the file goes.
    fs.unlink("/fill").unwrap();
    assert!(fs.statfs().free_blocks > written / 4096);
    assert!(fs.check().is_empty());
}

#[test]
fn a_read_only_device_reads_but_refuses_changes() {
    let mut fs = fresh(1024);
    let f = fs.create("/f", FileKind::File).unwrap();
    fs.write(f, 0, b"ro").unwrap();
    fs.commit().unwrap();
    let mut store = fs.into_store();
    store.read_only = true;
    let (mut fs, _) = Fs::mount(store).unwrap();
    assert_eq!(read_all(&mut fs, "/f"), b"ro");
    assert_eq!(fs.create("/g", FileKind::File), Err(FsError::ReadOnly));
    assert_eq!(fs.write(f, 0, b"x"), Err(FsError::ReadOnly));
    assert_eq!(fs.unlink("/f"), Err(FsError::ReadOnly));
    assert_eq!(fs.rename("/f", "/h"), Err(FsError::ReadOnly));
}

#[test]
fn corrupt_metadata_is_refused_or_reported_never_trusted() {
    let mut fs = fresh(1024);
    fs.create("/d", FileKind::Dir).unwrap();
    let f = fs.create("/d/f", FileKind::File).unwrap();
    fs.write(f, 0, b"x").unwrap();
    fs.commit().unwrap();
    // The last transaction (replayed at mount, repairing what it holds)
    // touches neither the bitmap nor /d's directory block.
    fs.create("/z", FileKind::File).unwrap();
    let sb = *fs.superblock();
    let d = fs.lookup("/d").unwrap();
    let dir_block = fs.map(d, 0).unwrap().unwrap().0;
    let clean = fs.into_store();
    // An inode table block: the mount is refused, naming it.
    let mut s = clean.clone();
    s.corrupt(sb.inode_table.start + 1, 300);
    match Fs::mount(s) {
        Err(MountError::Metadata { block, .. }) => assert_eq!(block, sb.inode_table.start + 1),
        other => panic!("mounted a corrupt inode table: {:?}", other.err()),
    }
    // A bitmap block.
    let mut s = clean.clone();
    s.corrupt(sb.bitmap.start, 100);
    assert!(matches!(Fs::mount(s), Err(MountError::Metadata { .. })));
    // Both superblocks.
    let mut s = clean.clone();
    s.corrupt(0, 20);
    s.corrupt(sb.copy_block(), 20);
    assert!(matches!(Fs::mount(s), Err(MountError::Superblock { .. })));
    // Block 0 alone: mounted from the copy, and block 0 repaired.
    let mut s = clean.clone();
    s.corrupt(0, 20);
    let (fs, report) = Fs::mount(s).unwrap();
    assert!(report.used_copy);
    assert!(!Fs::mount(fs.into_store()).unwrap().1.used_copy);
    // A directory block: lookups through it fail as corrupt, fsck names it.
    let mut s = clean.clone();
    s.corrupt(dir_block, 40);
    let (mut fs, _) = Fs::mount(s).unwrap();
    assert_eq!(fs.lookup("/d/f"), Err(FsError::Corrupt));
    let problems = fs.check();
    assert!(
        problems.iter().any(|p| p.contains(&std::format!("block {dir_block}"))),
        "{problems:?}"
    );
}

/// Random operations against a model; committed and remounted every 50
/// steps, the tree always equals the model and checks clean.
#[test]
fn random_operations_match_a_model() {
    for seed in 1..=6u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut fs = fresh(4096);
        let mut model: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
        let names = ["a", "b", "c", "d"];
        for step in 0..300 {
            let dirs: Vec<String> = core::iter::once(String::new())
                .chain(model.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k.clone()))
                .collect();
            let parent = &dirs[rng.below(dirs.len() as u64) as usize];
            let path = std::format!("{parent}/{}", names[rng.below(4) as usize]);
            match rng.below(10) {
                0..=2 => {
                    let r = fs.create(&path, FileKind::File);
                    if model.contains_key(&path) {
                        assert_eq!(r, Err(FsError::Exists));
                    } else {
                        r.unwrap();
                        model.insert(path, Some(Vec::new()));
                    }
                }
                3 => {
                    let r = fs.create(&path, FileKind::Dir);
                    if model.contains_key(&path) {
                        assert_eq!(r, Err(FsError::Exists));
                    } else {
                        r.unwrap();
                        model.insert(path, None);
                    }
                }
                4..=6 => {
                    if let Some(Some(data)) = model.get_mut(&path) {
                        let off = rng.below(data.len() as u64 + 9000);
                        let len = rng.below(12_000) as usize;
                        let bytes = rng.bytes(len);
                        let ino = fs.lookup(&path).unwrap();
                        fs.write(ino, off, &bytes).unwrap();
                        let end = off as usize + bytes.len();
                        if data.len() < end {
                            data.resize(end, 0);
                        }
                        data[off as usize..end].copy_from_slice(&bytes);
                    }
                }
                7 => {
                    let r = fs.unlink(&path);
                    let has_children = model.keys().any(|k| k.starts_with(&std::format!("{path}/")));
                    match model.get(&path) {
                        None => assert_eq!(r, Err(FsError::NotFound)),
                        Some(None) if has_children => assert_eq!(r, Err(FsError::NotEmpty)),
                        Some(_) => {
                            r.unwrap();
                            model.remove(&path);
                        }
                    }
                }
                8 => {
                    let to = std::format!("/{}", names[rng.below(4) as usize]);
                    let r = fs.rename(&path, &to);
                    let under = |m: &BTreeMap<String, Option<Vec<u8>>>, p: &str| {
                        m.keys()
                            .filter(|k| k.starts_with(&std::format!("{p}/")))
                            .cloned()
                            .collect::<Vec<_>>()
                    };
                    let expect = match (model.get(&path), model.get(&to)) {
                        (None, _) => Err(FsError::NotFound),
                        _ if path == to => Ok(()),
                        (Some(Some(_)), Some(None)) => Err(FsError::IsDir),
                        (Some(None), Some(Some(_))) => Err(FsError::NotDir),
                        (Some(None), Some(None)) if !under(&model, &to).is_empty() => Err(FsError::NotEmpty),
                        _ => Ok(()),
                    };
                    assert_eq!(r, expect, "rename {path} {to}");
                    if r.is_ok() && path != to {
                        let v = model.remove(&path).unwrap();
                        model.insert(to.clone(), v);
                        for k in under(&model, &path) {
                            let v = model.remove(&k).unwrap();
                            model.insert(std::format!("{to}{}", &k[path.len()..]), v);
                        }
                    }
                }
                _ => {
                    if let Some(Some(data)) = model.get_mut(&path) {
                        let size = rng.below(data.len() as u64 + 1);
                        let ino = fs.lookup(&path).unwrap();
                        fs.truncate(ino, size).unwrap();
                        data.truncate(size as usize);
                    }
                }
            }
            if step % 50 == 49 {
                fs.commit().unwrap();
                fs = remount(fs);
                let problems = fs.check();
                assert!(problems.is_empty(), "seed {seed} step {step}: {problems:?}");
                assert_eq!(tree(&mut fs), model, "seed {seed} step {step}");
            }
        }
    }
}

/// Power cuts at random moments of a write storm: after each, the mount
/// replays the journal, fsck is clean, and every write that was committed
/// before the cut is there; the one in progress is wholly there or not.
#[test]
fn power_cuts_lose_nothing_that_was_committed() {
    for seed in 1..=120u64 {
        let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
        let mut fs = fresh(2048);
        let mut committed: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
        // Run operations on a device that dies after a random number of
        // writes; the cut keeps a random subset of the unflushed ones.
        let dies_after = 1 + rng.below(400);
        fs.store().fail_after = Some(dies_after);
        let mut in_progress: Option<BTreeMap<String, Option<Vec<u8>>>> = None;
        for i in 0..200 {
            let mut next = committed.clone();
            let name = std::format!("/f{}", rng.below(6));
            // What the operation will leave, decided first (so that a
            // failure in the middle can be compared with it).
            enum Op {
                Create,
                Unlink,
                Rename(String),
                Append(Vec<u8>),
                Nothing,
            }
            let op = match rng.below(4) {
                0 if !next.contains_key(&name) => Op::Create,
                1 if next.contains_key(&name) => Op::Unlink,
                2 if next.contains_key(&name) => Op::Rename(std::format!("/g{i}")),
                _ if next.contains_key(&name) => {
                    let len = 1 + rng.below(9000) as usize;
                    Op::Append(rng.bytes(len))
                }
                _ => Op::Nothing,
            };
            let r: Result<(), FsError> = match &op {
                Op::Create => {
                    next.insert(name.clone(), Some(Vec::new()));
                    fs.create(&name, FileKind::File).map(|_| ())
                }
                Op::Unlink => {
                    next.remove(&name);
                    fs.unlink(&name)
                }
                Op::Rename(to) => {
                    let v = next.remove(&name).unwrap();
                    next.insert(to.clone(), v);
                    fs.rename(&name, to)
                }
                Op::Append(bytes) => {
                    let data = next.get_mut(&name).unwrap().as_mut().unwrap();
                    let at = data.len() as u64;
                    data.extend_from_slice(bytes);
                    (|| {
                        let ino = fs.lookup(&name)?;
                        fs.write(ino, at, bytes)?;
                        fs.commit()
                    })()
                }
                Op::Nothing => Ok(()),
            };
            match r {
                Ok(()) => committed = next,
                Err(e) => {
                    assert_eq!(e, FsError::Io, "seed {seed}");
                    in_progress = Some(next);
                    break;
                }
            }
        }
        let store = fs.into_store();
        let mut keep_rng = Rng(seed + 99);
        let cut = store.power_cut(|_| keep_rng.below(2) == 0);
        let (mut fs, _) = Fs::mount(cut).unwrap_or_else(|e| panic!("seed {seed}: mount after the cut: {e}"));
        let problems = fs.check();
        assert!(problems.is_empty(), "seed {seed}: {problems:?}");
        let now = tree(&mut fs);
        assert!(
            now == committed || in_progress.as_ref() == Some(&now),
            "seed {seed}: after the cut {:?}\ncommitted {:?}\nin progress {:?}",
            now.iter()
                .map(|(k, v)| (k, v.as_ref().map(|d| d.len())))
                .collect::<Vec<_>>(),
            committed
                .iter()
                .map(|(k, v)| (k, v.as_ref().map(|d| d.len())))
                .collect::<Vec<_>>(),
            in_progress.map(|m| m.into_iter().map(|(k, v)| (k, v.map(|d| d.len()))).collect::<Vec<_>>()),
        );
    }
}

/// Damaged images, at random bytes of the metadata: mounting and walking
/// them never panics (each either refuses, or reads and reports).
#[test]
fn damaged_images_never_panic() {
    let mut fs = fresh(1024);
    fs.create("/d", FileKind::Dir).unwrap();
    for n in 0..20 {
        let f = fs.create(&std::format!("/d/f{n}"), FileKind::File).unwrap();
        fs.write(f, 0, &std::vec![n as u8; 5000 * (n + 1)]).unwrap();
    }
    fs.commit().unwrap();
    let sb = *fs.superblock();
    let image = fs.into_store().image();
    let meta_end = (sb.data_start() + 64) as usize * 4096;
    let mut rng = Rng(12345);
    for _ in 0..300 {
        let mut img = image.clone();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(meta_end as u64) as usize;
            img[at] = rng.next() as u8;
        }
        // Some with their checksums made right again: the decoders must
        // hold on their own.
        if rng.below(2) == 0 {
            for b in 1..sb.data_start() + 64 {
                let block: &mut [u8; 4096] = (&mut img[b as usize * 4096..][..4096]).try_into().unwrap();
                if let Ok(h) = aether_abi::disk::MetaHeader::verify_any(block, b) {
                    h.seal(block);
                } else if block[0..4] == aether_abi::disk::META_MAGIC {
                    let kind = u16::from_le_bytes([block[4], block[5]]);
                    if let Some(k) = [1u16, 2, 3, 4].iter().position(|&x| x == kind) {
                        let kinds = [
                            aether_abi::disk::MetaKind::Bitmap,
                            aether_abi::disk::MetaKind::InodeTable,
                            aether_abi::disk::MetaKind::Directory,
                            aether_abi::disk::MetaKind::ExtentList,
                        ];
                        aether_abi::disk::MetaHeader {
                            kind: kinds[k],
                            block: b,
                            seq: 1,
                        }
                        .seal(block);
                    }
                }
            }
        }
        if let Ok((mut fs, _)) = Fs::mount(MemStore::from_image(img)) {
            let _ = fs.check();
            if let Ok(list) = fs.readdir(1) {
                for e in list {
                    let _ = fs.stat(e.ino);
                }
            }
            if let Ok(d) = fs.lookup("/d") {
                let _ = fs.readdir(d);
                if let Ok(f) = fs.lookup("/d/f3") {
                    let mut buf = std::vec![0u8; 30_000];
                    let _ = fs.read(f, 0, &mut buf);
                    let _ = fs.write(f, 100, b"x");
                }
            }
            let _ = fs.create("/new", FileKind::File);
            let _ = fs.commit();
        }
    }
}

/// A cut right after a commit, before any block reached its place: only
/// the journal has the transaction, and the mount replays it.
#[test]
fn the_journal_alone_brings_back_a_commit() {
    let mut fs = fresh(1024);
    fs.create("/d", FileKind::Dir).unwrap();
    let f = fs.create("/d/f", FileKind::File).unwrap();
    fs.write(f, 0, b"journaled").unwrap();
    fs.commit().unwrap();
    let store = fs.into_store();
    // Unflushed now: exactly the in-place writes of the last commit.
    assert!(store.unflushed() > 0);
    let cut = store.power_cut(|_| false);
    let (mut fs, report) = Fs::mount(cut.clone()).unwrap();
    assert!(report.replayed.is_some());
    assert_eq!(read_all(&mut fs, "/d/f"), b"journaled");
    assert!(fs.check().is_empty(), "{:?}", fs.check());
    // Without the journal's descriptor the same cut loses the write's
    // metadata: the replay is what kept it.
    let mut broken = cut;
    broken.corrupt(fs.superblock().journal.start, 8);
    let (mut fs, report) = Fs::mount(broken).unwrap();
    assert!(report.replayed.is_none());
    assert_eq!(read_all(&mut fs, "/d/f"), b"");
}

/// A file grown by truncate reads zeros where it grew, never the bytes of
/// a file deleted before (whose blocks it may get).
#[test]
fn growing_a_file_never_shows_old_data() {
    let mut fs = fresh(2048);
    let a = fs.create("/a", FileKind::File).unwrap();
    let n = (fs.statfs().free_blocks - 8) * 4096;
    fs.write(a, 0, &std::vec![0xAB; n as usize]).unwrap();
    fs.commit().unwrap();
    fs.unlink("/a").unwrap();
    let b = fs.create("/b", FileKind::File).unwrap();
    fs.write(b, 0, b"abc").unwrap();
    // Shrink below a partial block, then grow past it.
    fs.truncate(b, 2).unwrap();
    fs.truncate(b, n).unwrap();
    fs.commit().unwrap();
    let mut buf = std::vec![0u8; n as usize];
    assert_eq!(fs.read(b, 0, &mut buf).unwrap(), n as usize);
    assert_eq!(&buf[..2], b"ab");
    assert!(buf[2..].iter().all(|&x| x == 0), "stale bytes after a grow");
    assert!(fs.check().is_empty());
}
