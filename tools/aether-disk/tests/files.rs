//! The file commands on an image: what goes in comes out, space comes
//! back, a full disk loses nothing, the checksum matches the guest's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aether_abi::fs::{Checksum, FileKind, FsError};
use aether_disk::{
    Error, PUT_TEMP, SAMPLE_BYTES, SAMPLE_PATH, SAMPLE_README_PATH, cat, check, checksum_file, default_disk, df, get,
    ls, mkdir, mkfs, mkfs_from, mv, put, rm, sample_checksum, stat,
};

fn image(mib: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    mkfs(&path, mib << 20).expect("mkfs");
    (dir, path)
}

/// Bytes that differ by `seed` and position (xorshift64*).
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn host_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// Everything in the image below `/`: files with their bytes, directories
/// as `None`.
fn tree(image: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![String::new()];
    while let Some(dir) = todo.pop() {
        let at = if dir.is_empty() { "/" } else { &dir };
        for (e, st) in ls(image, at).unwrap() {
            let path = format!("{dir}/{}", e.name);
            assert_eq!(st.kind, e.kind);
            match e.kind {
                FileKind::Dir => {
                    out.insert(path.clone(), None);
                    todo.push(path);
                }
                FileKind::File => {
                    let data = cat(image, &path).unwrap();
                    assert_eq!(data.len() as u64, st.size);
                    out.insert(path, Some(data));
                }
            }
        }
    }
    out
}

#[test]
fn mkfs_from_a_folder_copies_its_tree_and_skips_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let mut expected = BTreeMap::new();
    for d in ["data", "data/train", "empty", "logs"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
        expected.insert(format!("/{d}"), None);
    }
    for (i, (name, len)) in [
        ("data/train/part-0.bin", 1_500_000),
        ("data/train/part-1.bin", 4096),
        ("data/labels.csv", 4097),
        ("logs/empty.log", 0),
        ("README", 1),
    ]
    .into_iter()
    .enumerate()
    {
        let data = bytes(len, i as u64 + 1);
        std::fs::write(src.join(name), &data).unwrap();
        expected.insert(format!("/{name}"), Some(data));
    }
    std::os::unix::fs::symlink("README", src.join("link")).unwrap();

    let image = dir.path().join("disk.img");
    let (sb, skipped) = mkfs_from(&image, 32 << 20, &src).unwrap();
    assert_eq!(sb.total_blocks, (32 << 20) / 4096);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        skipped[0].contains("link") && skipped[0].contains("symbolic link"),
        "{skipped:?}"
    );
    assert_eq!(tree(&image), expected);
    check(&image).unwrap();
    // Not a folder: refused before the image is made.
    let not_dir = src.join("README");
    assert!(matches!(
        mkfs_from(&dir.path().join("x.img"), 32 << 20, &not_dir),
        Err(Error::Io(..))
    ));
    assert!(!dir.path().join("x.img").exists());
}

#[test]
fn put_and_get_of_8_mib_round_trip_in_at_most_2_extents_and_put_replaces() {
    let (d, image) = image(64);
    let data = bytes(8 << 20, 7);
    let src = host_file(d.path(), "big", &data);
    mkdir(&image, "/data").unwrap();
    let st = put(&image, &src, "/data/big.bin").unwrap();
    assert_eq!(st.size, 8 << 20);
    assert!(st.extents <= 2, "{st:?}");
    let out = d.path().join("out");
    assert_eq!(get(&image, "/data/big.bin", &out).unwrap(), 8 << 20);
    assert!(std::fs::read(&out).unwrap() == data, "get gave other bytes");
    // Replaced by a smaller file: the new bytes, no temporary file left.
    let small = bytes(10_000, 8);
    put(&image, &host_file(d.path(), "small", &small), "/data/big.bin").unwrap();
    assert_eq!(cat(&image, "/data/big.bin").unwrap(), small);
    assert_eq!(stat(&image, "/data/big.bin").unwrap().size, 10_000);
    assert_eq!(ls(&image, "/").unwrap().len(), 1, "{:?}", ls(&image, "/"));
    // ls of a file: its own entry.
    let one = ls(&image, "/data/big.bin").unwrap();
    assert_eq!((one.len(), one[0].0.name.as_str()), (1, "big.bin"));
    check(&image).unwrap();
}

#[test]
fn rm_gives_the_space_back() {
    let (d, image) = image(64);
    put(&image, &host_file(d.path(), "keep", b"kept"), "/keep").unwrap();
    let before = df(&image).unwrap();
    put(&image, &host_file(d.path(), "big", &bytes(8 << 20, 3)), "/big").unwrap();
    let during = df(&image).unwrap();
    assert_eq!(during.free_blocks, before.free_blocks - 2048);
    assert_eq!(during.free_inodes, before.free_inodes - 1);
    rm(&image, "/big").unwrap();
    assert_eq!(df(&image).unwrap(), before);
    assert!(matches!(stat(&image, "/big"), Err(Error::Fs(FsError::NotFound, _))));
    // A directory goes only when empty.
    mkdir(&image, "/d").unwrap();
    put(&image, &host_file(d.path(), "f", b"f"), "/d/f").unwrap();
    assert!(matches!(rm(&image, "/d"), Err(Error::Fs(FsError::NotEmpty, _))));
    rm(&image, "/d/f").unwrap();
    rm(&image, "/d").unwrap();
    assert_eq!(df(&image).unwrap().free_inodes, before.free_inodes);
    check(&image).unwrap();
}

#[test]
fn mv_renames_replaces_and_refuses_a_directory_into_itself() {
    let (d, image) = image(16);
    mkdir(&image, "/a").unwrap();
    mkdir(&image, "/b").unwrap();
    put(&image, &host_file(d.path(), "x", b"x bytes"), "/a/x").unwrap();
    put(&image, &host_file(d.path(), "y", b"y bytes"), "/b/y").unwrap();
    mv(&image, "/a/x", "/b/x").unwrap();
    assert_eq!(cat(&image, "/b/x").unwrap(), b"x bytes");
    assert!(matches!(cat(&image, "/a/x"), Err(Error::Fs(FsError::NotFound, _))));
    mv(&image, "/b/x", "/b/y").unwrap();
    assert_eq!(cat(&image, "/b/y").unwrap(), b"x bytes");
    assert_eq!(ls(&image, "/b").unwrap().len(), 1);
    mv(&image, "/b", "/a/b").unwrap();
    assert_eq!(cat(&image, "/a/b/y").unwrap(), b"x bytes");
    assert!(matches!(mv(&image, "/a", "/a/b/a"), Err(Error::Fs(FsError::Busy, _))));
    assert!(matches!(
        mv(&image, "/nope", "/z"),
        Err(Error::Fs(FsError::NotFound, _))
    ));
    check(&image).unwrap();
}

#[test]
fn a_full_image_gives_no_space_and_keeps_what_is_there() {
    let (d, image) = image(16);
    let keep = bytes(1 << 20, 11);
    put(&image, &host_file(d.path(), "keep", &keep), "/keep").unwrap();
    let before = df(&image).unwrap();
    let too_big = host_file(d.path(), "too-big", &bytes(16 << 20, 12));
    for target in ["/new", "/keep"] {
        match put(&image, &too_big, target) {
            Err(e @ Error::Fs(FsError::NoSpace, _)) => {
                assert_eq!(e.to_string(), format!("{target}: no space left on the disk"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(cat(&image, "/keep").unwrap(), keep, "after a put to {target}");
        assert!(matches!(stat(&image, "/new"), Err(Error::Fs(FsError::NotFound, _))));
        assert!(matches!(stat(&image, PUT_TEMP), Err(Error::Fs(FsError::NotFound, _))));
        assert_eq!(df(&image).unwrap(), before);
        check(&image).unwrap();
    }
    // What fits still goes in.
    let fits = bytes((before.free_blocks as usize - 16) * 4096, 13);
    put(&image, &host_file(d.path(), "fits", &fits), "/fits").unwrap();
    assert!(cat(&image, "/fits").unwrap() == fits);
    check(&image).unwrap();
}

#[test]
fn checksum_file_is_the_checksum_of_the_bytes() {
    let (d, image) = image(16);
    for (i, len) in [0usize, 1, 7, 8, 4096, 1 << 20, (1 << 20) + 3].into_iter().enumerate() {
        let data = bytes(len, 20 + i as u64);
        let path = format!("/f{i}");
        put(&image, &host_file(d.path(), "f", &data), &path).unwrap();
        let mut sum = Checksum::default();
        sum.add(&data);
        assert_eq!(checksum_file(&image, &path).unwrap(), sum.value(), "{len} bytes");
    }
    assert!(matches!(checksum_file(&image, "/"), Err(Error::Fs(FsError::IsDir, _))));
}

#[test]
fn the_default_disk_holds_the_256_mib_sample_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    default_disk(&image, 320 << 20).unwrap();
    let st = stat(&image, SAMPLE_PATH).unwrap();
    assert_eq!(st.size, SAMPLE_BYTES);
    assert!(st.extents <= 2, "{st:?}");
    let sum = sample_checksum(SAMPLE_BYTES);
    assert_eq!(checksum_file(&image, SAMPLE_PATH).unwrap(), sum);
    // The value docs/disk-format.md gives.
    assert_eq!(sum, 0x00fa_a363_76a4_176a);
    let readme = String::from_utf8(cat(&image, SAMPLE_README_PATH).unwrap()).unwrap();
    assert!(readme.contains(&format!("{sum:016x}")), "{readme}");
    check(&image).unwrap();
}

#[test]
fn an_image_being_changed_is_not_opened_again() {
    let (_d, image) = image(16);
    let writer = aether_disk::mount(&image, true).unwrap();
    for refused in [
        ls(&image, "/").map(|_| ()),
        mkdir(&image, "/x"),
        mkfs(&image, 16 << 20).map(|_| ()),
    ] {
        match refused {
            Err(e @ Error::Io(..)) => assert!(e.to_string().contains("in use"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
    drop(writer);
    // Readers share the image.
    let reader = aether_disk::mount(&image, false).unwrap();
    assert!(ls(&image, "/").unwrap().is_empty());
    assert!(mkdir(&image, "/x").is_err());
    drop(reader);
    mkdir(&image, "/x").unwrap();
}
