//! mkfs then check, and every kind of damage `check` must report.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use aether_abi::disk::BLOCK_SIZE;
use aether_disk::{Error, check, mkfs, superblock};

fn image() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    mkfs(&path, 64 << 20).expect("mkfs");
    (dir, path)
}

fn flip(path: &std::path::Path, byte: u64) {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, byte).unwrap();
    b[0] ^= 0x10;
    f.write_all_at(&b, byte).unwrap();
}

fn problems(r: Result<aether_abi::disk::Superblock, Error>) -> Vec<String> {
    match r {
        Err(Error::Inconsistent(p)) => p,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn a_fresh_image_is_clean() {
    let (_d, path) = image();
    let sb = check(&path).expect("clean");
    assert_eq!(sb.total_blocks, (64 << 20) / BLOCK_SIZE as u64);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 64 << 20);
}

#[test]
fn a_bad_block_0_is_reported_and_the_copy_serves() {
    let (_d, path) = image();
    flip(&path, 20);
    let (sb, why) = superblock(&path).expect("the copy");
    assert!(why.is_some());
    assert_eq!(sb.total_blocks, (64 << 20) / BLOCK_SIZE as u64);
    let p = problems(check(&path));
    assert!(p[0].contains("block 0") && p[0].contains("checksum"), "{p:?}");
}

#[test]
fn both_superblocks_bad_is_refused() {
    let (_d, path) = image();
    flip(&path, 20);
    flip(&path, (64 << 20) - BLOCK_SIZE as u64 + 20);
    assert!(matches!(superblock(&path), Err(Error::Inconsistent(_))));
}

#[test]
fn damaged_metadata_blocks_are_named() {
    let (_d, path) = image();
    let sb = check(&path).unwrap();
    // A bitmap block's payload, an inode table block's header.
    flip(&path, sb.bitmap.start * BLOCK_SIZE as u64 + 100);
    flip(&path, (sb.inode_table.start + 3) * BLOCK_SIZE as u64 + 9);
    let p = problems(check(&path));
    assert!(
        p.iter()
            .any(|l| l.starts_with(&format!("bitmap block {}", sb.bitmap.start))),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|l| l.starts_with(&format!("inode table block {}", sb.inode_table.start + 3))),
        "{p:?}"
    );
}

#[test]
fn a_truncated_image_and_a_foreign_file_are_refused() {
    let (_d, path) = image();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(32 << 20).unwrap();
    let p = problems(check(&path));
    assert!(p.iter().any(|l| l.contains("blocks")), "{p:?}");
    let junk = path.with_file_name("junk");
    std::fs::write(&junk, vec![0xa5u8; 1 << 20]).unwrap();
    assert!(matches!(check(&junk), Err(Error::Inconsistent(_))));
    assert!(matches!(mkfs(&junk, 100 * 1024), Err(Error::Layout(_))), "too small");
}
