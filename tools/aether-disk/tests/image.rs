//! mkfs then check, and the damage `check` (aethfs's mount and fsck)
//! reports.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use aether_abi::disk::{BLOCK_SIZE, Superblock};
use aether_disk::{Error, check, mkdir, mkfs, mount, put, superblock};

const BS: u64 = BLOCK_SIZE as u64;

fn image() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    mkfs(&path, 64 << 20).expect("mkfs");
    (dir, path)
}

fn flip(path: &Path, byte: u64) {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, byte).unwrap();
    b[0] ^= 0x10;
    f.write_all_at(&b, byte).unwrap();
}

fn problems(r: Result<Superblock, Error>) -> Vec<String> {
    match r {
        Err(Error::Inconsistent(p)) => p,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn a_fresh_image_is_clean() {
    let (_d, path) = image();
    let sb = check(&path).expect("clean");
    assert_eq!(sb.total_blocks, (64 << 20) / BS);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 64 << 20);
    assert_eq!(superblock(&path).unwrap(), (sb, None));
}

#[test]
fn a_bad_block_0_is_reported_the_copy_serves_and_a_write_repairs_it() {
    let (_d, path) = image();
    flip(&path, 20);
    let (sb, why) = superblock(&path).expect("the copy");
    assert!(why.is_some());
    assert_eq!(sb.total_blocks, (64 << 20) / BS);
    // The image mounts from the copy; check (read-only) reports block 0
    // and changes nothing.
    let p = problems(check(&path));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("block 0: ") && p[0].contains("checksum"), "{p:?}");
    assert!(p[0].contains("copy is good"), "{p:?}");
    assert!(superblock(&path).unwrap().1.is_some(), "check wrote to the image");
    // A mount for writing rewrites block 0 from the copy.
    mkdir(&path, "/d").unwrap();
    assert_eq!(superblock(&path).unwrap().1, None);
    check(&path).expect("clean after the repair");
}

#[test]
fn both_superblocks_bad_is_refused() {
    let (_d, path) = image();
    flip(&path, 20);
    flip(&path, (64 << 20) - BS + 20);
    assert!(matches!(superblock(&path), Err(Error::Inconsistent(_))));
    let p = problems(check(&path));
    assert!(p[0].starts_with("block 0: ") && p[0].contains("copy"), "{p:?}");
    match mkdir(&path, "/d") {
        Err(e @ Error::Mount(_)) => assert!(e.to_string().contains("does not mount"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_damaged_bitmap_block_refuses_the_mount_and_is_named() {
    let (_d, path) = image();
    let sb = check(&path).unwrap();
    flip(&path, sb.bitmap.start * BS + 100);
    let p = problems(check(&path));
    assert!(p[0].starts_with(&format!("bitmap block {}", sb.bitmap.start)), "{p:?}");
}

#[test]
fn a_damaged_inode_table_block_refuses_the_mount_and_is_named() {
    let (_d, path) = image();
    let sb = check(&path).unwrap();
    flip(&path, (sb.inode_table.start + 3) * BS + 9);
    let p = problems(check(&path));
    assert!(
        p[0].starts_with(&format!("inode table block {}", sb.inode_table.start + 3)),
        "{p:?}"
    );
}

#[test]
fn a_damaged_directory_block_is_found_by_the_fsck() {
    let (d, path) = image();
    let host = d.path().join("f");
    std::fs::write(&host, b"data").unwrap();
    mkdir(&path, "/dir").unwrap();
    put(&path, &host, "/dir/f").unwrap();
    // Another transaction, so the journal's last one (replayed at each
    // mount, in memory on a read-only one) holds no copy of /dir's block.
    mkdir(&path, "/other").unwrap();
    let block = {
        let mut fs = mount(&path, false).unwrap();
        let ino = fs.lookup("/dir").unwrap();
        fs.map(ino, 0).unwrap().expect("a block").0
    };
    // The mount does not read directories: it succeeds, the fsck finds it.
    flip(&path, block * BS + 40);
    let p = problems(check(&path));
    assert!(
        p.iter()
            .any(|l| l.contains(&format!("block {block}")) && l.starts_with("directory")),
        "{p:?}"
    );
    assert!(aether_disk::cat(&path, "/dir/f").is_err());
}

#[test]
fn a_truncated_or_grown_image_and_a_foreign_file_are_refused() {
    let (_d, path) = image();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(32 << 20).unwrap();
    let p = problems(check(&path));
    assert!(p[0].contains("16384 blocks") && p[0].contains("8192"), "{p:?}");
    // Larger than the file system (a fresh image, grown): it mounts, but
    // the superblock's copy is no longer in the last block.
    mkfs(&path, 64 << 20).unwrap();
    f.set_len(65 << 20).unwrap();
    let p = problems(check(&path));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("the image has 16640 blocks"), "{p:?}");

    let junk = path.with_file_name("junk");
    std::fs::write(&junk, vec![0xa5u8; 1 << 20]).unwrap();
    assert!(matches!(check(&junk), Err(Error::Inconsistent(_))));
    std::fs::write(&junk, b"").unwrap();
    assert!(matches!(check(&junk), Err(Error::Inconsistent(_))));
    assert!(matches!(mkfs(&junk, 100 * 1024), Err(Error::Layout(_))), "too small");
    assert_eq!(
        std::fs::metadata(&junk).unwrap().len(),
        0,
        "a refused mkfs touches nothing"
    );
}
