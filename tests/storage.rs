//! The block layer against a disk image the host writes: every sector names
//! itself (its number and a tag, then a pattern), the kernel tests read it
//! through virtio-blk, write one sector and flush, and the host checks the
//! sector in the file afterwards; attached read-only, writes are refused.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aether_abi::boot::{BootArgs, LogLevel, Mode, OnPanic};
use aetheros::runner::{Firmware, KtestReport, Session};

use aether_abi::ktest::storage::{SECTOR, WRITE_FILL, WRITE_SECTOR, WRITE_TAG, sector};

/// 4 MiB.
const SECTORS: u64 = 8192;
const LIMIT: Duration = Duration::from_secs(90);

/// A fresh image for one test (removed on drop).
struct Image(PathBuf);

impl Image {
    fn new(name: &str) -> Image {
        let path = std::env::temp_dir().join(format!("aether-{name}-{}.img", std::process::id()));
        let mut f = std::fs::File::create(&path).expect("the image");
        for i in 0..SECTORS {
            f.write_all(&sector(i)).expect("write the image");
        }
        Image(path)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run(test: &str, image: &Path, read_only: bool) -> KtestReport {
    run_on(Firmware::Bios, test, image, read_only)
}

fn run_on(firmware: Firmware, test: &str, image: &Path, read_only: bool) -> KtestReport {
    let args = BootArgs {
        mode: Mode::Test(Some(test)),
        on_panic: OnPanic::Exit,
        log: LogLevel::Info,
    };
    let s = common::boot_with_devices(
        firmware,
        &args.to_string(),
        aetheros::runner::blk_device_args(image, read_only),
    );
    let (status, output) = s.wait(LIMIT).unwrap_or_else(|e| panic!("{e}"));
    KtestReport::parse(output, status.code())
}

#[test]
fn the_guest_reads_every_sector_as_written_and_its_write_reaches_the_file() {
    let image = Image::new("blk-rw");
    let r = run("virtio_blk_reads_writes_and_flushes", &image.0, false);
    if let Err(e) = r.verdict() {
        panic!("{e}");
    }
    assert_eq!(r.passed, ["virtio_blk_reads_writes_and_flushes"], "{}", r.output);
    assert!(r.output.contains("virtio-blk: 4 MiB, MSI-X"), "{}", r.output);
    let bytes = std::fs::read(&image.0).expect("read the image");
    let at = WRITE_SECTOR as usize * SECTOR;
    let written = &bytes[at..at + SECTOR];
    assert_eq!(&written[..8], WRITE_TAG);
    assert!(written[8..].iter().all(|&b| b == WRITE_FILL));
    // Nothing else changed.
    for i in [0, 1, WRITE_SECTOR - 1, WRITE_SECTOR + 1, SECTORS - 1] {
        let at = i as usize * SECTOR;
        assert_eq!(bytes[at..at + SECTOR], sector(i), "sector {i}");
    }
}

#[test]
fn a_read_only_disk_is_read_and_refuses_writes() {
    let image = Image::new("blk-ro");
    let r = run("virtio_blk_read_only_refuses_writes", &image.0, true);
    if let Err(e) = r.verdict() {
        panic!("{e}");
    }
    assert!(r.output.contains("read-only"), "{}", r.output);
    let bytes = std::fs::read(&image.0).expect("read the image");
    let at = WRITE_SECTOR as usize * SECTOR;
    assert_eq!(bytes[at..at + SECTOR], sector(WRITE_SECTOR));
}

/// OVMF places the BARs above 4 GiB (TOOLCHAIN.md): the driver maps them
/// itself.
#[test]
fn the_disk_works_under_uefi() {
    let image = Image::new("blk-uefi");
    let r = run_on(Firmware::Uefi, "virtio_blk_reads_writes_and_flushes", &image.0, false);
    if let Err(e) = r.verdict() {
        panic!("{e}");
    }
    assert_eq!(r.passed, ["virtio_blk_reads_writes_and_flushes"], "{}", r.output);
}

/// Boots the console with `image` attached; the output up to the prompt
/// and the session.
fn boot_console_with(image: &Path) -> (String, Session) {
    let mut s = common::boot_with_devices(
        Firmware::Bios,
        &common::console_cmdline(),
        aetheros::runner::blk_device_args(image, false),
    );
    let text = s
        .expect(aether_abi::boot::PROMPT, LIMIT)
        .unwrap_or_else(|e| panic!("{e}"));
    (text, s)
}

fn flip(path: &Path, byte: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, byte).unwrap();
    b[0] ^= 0x40;
    f.write_all_at(&b, byte).unwrap();
}

#[test]
fn a_fresh_file_system_mounts_a_damaged_one_uses_its_copy_and_a_ruined_one_is_refused() {
    let path = std::env::temp_dir().join(format!("aether-fs-{}.img", std::process::id()));
    let image = Image(path.clone());
    aether_disk::mkfs(&image.0, 16 << 20).expect("mkfs");
    let (text, s) = boot_console_with(&image.0);
    drop(s);
    assert!(
        text.contains("disk: AetherOS file system v1, 4096 blocks (16 MiB)"),
        "{text}"
    );

    // Block 0 damaged: mounted from the copy, with a warning.
    flip(&image.0, 30);
    let (text, s) = boot_console_with(&image.0);
    drop(s);
    assert!(text.contains("mounted from the superblock's copy"), "{text}");
    assert!(text.contains("disk: AetherOS file system v1"), "{text}");
    // ...and block 0 rewritten from the copy.
    aether_disk::check(&image.0).expect("block 0 repaired by the mount");

    // Both damaged: refused with the reason, and the console works.
    flip(&image.0, 30);
    flip(&image.0, (16 << 20) - 4096 + 30);
    let (text, mut s) = boot_console_with(&image.0);
    assert!(
        text.contains("disk: mount refused: block 0: superblock checksum"),
        "{text}"
    );
    assert!(!text.contains("disk: AetherOS file system v1"), "{text}");
    let out = s
        .command("echo still here", aether_abi::boot::PROMPT, Duration::from_secs(10))
        .expect("the console");
    assert!(out.contains("still here"), "{out}");

    // A disk that is not a file system at all.
    drop(s);
    let raw = Image::new("fs-raw");
    let (text, _s) = boot_console_with(&raw.0);
    assert!(text.contains("not an AetherOS file system"), "{text}");
}

#[test]
fn two_kernel_tasks_read_through_the_request_queue_at_once() {
    let image = Image::new("blk-queue");
    let r = run("virtio_blk_request_queue_serves_two_readers", &image.0, true);
    if let Err(e) = r.verdict() {
        panic!("{e}");
    }
    assert_eq!(
        r.passed,
        ["virtio_blk_request_queue_serves_two_readers"],
        "{}",
        r.output
    );
}
