//! Files through the console on a real disk image: the file commands, what
//! survives a reboot, the host tool's view of what the guest wrote, and
//! every class of bad input (docs/console.md, "Files").

mod common;

use std::path::{Path, PathBuf};

use aetheros::runner::{Firmware, Session};
use common::run;

/// A fresh file system image for one test (removed on drop).
struct Image(PathBuf);

impl Image {
    fn new(name: &str, mib: u64) -> Image {
        let path = std::env::temp_dir().join(format!("aether-files-{name}-{}.img", std::process::id()));
        aether_disk::mkfs(&path, mib << 20).expect("mkfs");
        Image(path)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn boot(image: &Path, read_only: bool) -> Session {
    let mut s = common::boot_with_devices(
        Firmware::Bios,
        &common::console_cmdline(),
        aetheros::runner::blk_device_args(image, read_only),
    );
    s.expect(aether_abi::boot::PROMPT, common::BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    s
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn files_written_at_the_console_are_there_after_a_reboot_and_on_the_host() {
    let image = Image::new("reboot", 16);
    let mut s = boot(&image.0, false);
    assert!(run(&mut s, "mkdir /data").is_empty());
    assert_eq!(
        run(&mut s, "write /data/notes first line"),
        ["11 bytes written to /data/notes"]
    );
    // The text is as typed after the path (inner spacing kept).
    assert_eq!(
        run(&mut s, "write --append /data/notes   second   line"),
        ["14 bytes written to /data/notes"]
    );
    assert_eq!(run(&mut s, "cat /data/notes"), ["first line", "second   line"]);
    assert!(run(&mut s, "mv /data/notes /data/kept").is_empty());
    let ls = run(&mut s, "ls /data --json");
    assert_eq!(ls.len(), 1, "{ls:?}");
    let e = json(&ls[0]);
    assert_eq!(
        (e["name"].as_str(), e["kind"].as_str(), e["size"].as_u64()),
        (Some("kept"), Some("file"), Some(25))
    );
    let st = json(&run(&mut s, "stat /data/kept --json")[0]);
    assert_eq!(
        (st["size"].as_u64(), st["blocks"].as_u64(), st["extents"].as_u64()),
        (Some(25), Some(1), Some(1))
    );
    let df = json(&run(&mut s, "df --json")[0]);
    assert_eq!(df["total_blocks"].as_u64(), Some(4096));
    let free_before = df["free_blocks"].as_u64().unwrap();
    // A file removed gives its block back.
    run(&mut s, "write /tmpfile x");
    run(&mut s, "rm /tmpfile");
    let df = json(&run(&mut s, "df --json")[0]);
    assert_eq!(df["free_blocks"].as_u64(), Some(free_before));
    let cache = json(&run(&mut s, "cache --json")[0]);
    assert!(cache["written_back"].as_u64().unwrap() >= 1, "{cache}");
    drop(s);

    // The host reads what the guest wrote, and the image checks clean.
    aether_disk::check(&image.0).unwrap_or_else(|e| panic!("fsck after the guest: {e}"));
    assert_eq!(
        aether_disk::cat(&image.0, "/data/kept").expect("cat on the host"),
        b"first line\nsecond   line\n"
    );

    // Reboot: everything is there.
    let mut s = boot(&image.0, false);
    assert_eq!(run(&mut s, "cat /data/kept"), ["first line", "second   line"]);
    assert_eq!(run(&mut s, "ls /"), ["dir          4096  data/"]);
}

#[test]
fn bad_file_requests_get_one_clear_error_each_and_lose_nothing() {
    let image = Image::new("bad", 16);
    let mut s = boot(&image.0, false);
    run(&mut s, "mkdir /d");
    run(&mut s, "write /d/f precious");
    let long = "n".repeat(300);
    for (line, expect) in [
        ("cat /nope", "error: cat: /nope: no such file or directory"),
        ("cat /d", "error: cat: /d: is a directory"),
        ("ls /nope", "error: ls: /nope: no such file or directory"),
        ("rm /d", "error: rm: /d: directory not empty"),
        ("mkdir /d", "error: mkdir: /d: file exists"),
        ("mkdir /nope/x", "error: mkdir: /nope/x: no such file or directory"),
        ("write /d/f/x y", "error: write: /d/f/x: not a directory"),
        ("write /a/../b x", "error: write: /a/../b: invalid path"),
        ("write /./b x", "error: write: /./b: invalid path"),
        ("mv /d /d/inside", "error: mv: /d -> /d/inside: busy"),
        ("mv /d/f /d", "error: mv: /d/f -> /d: is a directory"),
        ("rm /", "error: rm: /: invalid path"),
    ] {
        assert_eq!(run(&mut s, line), [expect], "{line}");
    }
    let out = run(&mut s, &format!("write /{long} x"));
    assert_eq!(out, [format!("error: write: /{long}: name too long")]);
    // Through it all, nothing already written was lost.
    assert_eq!(run(&mut s, "cat /d/f"), ["precious"]);
    drop(s);
    aether_disk::check(&image.0).unwrap_or_else(|e| panic!("fsck: {e}"));
}

#[test]
fn a_read_only_disk_is_read_and_refuses_every_change() {
    let image = Image::new("ro", 16);
    let mut s = boot(&image.0, false);
    run(&mut s, "write /f kept");
    drop(s);
    let mut s = boot(&image.0, true);
    assert_eq!(run(&mut s, "cat /f"), ["kept"]);
    for (line, expect) in [
        ("write /f x", "error: write: /f: read-only"),
        ("write /g x", "error: write: /g: read-only"),
        ("mkdir /d", "error: mkdir: /d: read-only"),
        ("rm /f", "error: rm: /f: read-only"),
        ("mv /f /g", "error: mv: /f -> /g: read-only"),
    ] {
        assert_eq!(run(&mut s, line), [expect], "{line}");
    }
    let df = json(&run(&mut s, "df --json")[0]);
    assert_eq!(df["read_only"].as_bool(), Some(true));
    assert_eq!(run(&mut s, "cat /f"), ["kept"]);
}

#[test]
fn without_a_disk_the_file_commands_say_so() {
    let mut s = common::boot_console(Firmware::Bios);
    assert_eq!(run(&mut s, "ls"), ["error: ls: /: no file system mounted"]);
    assert_eq!(run(&mut s, "df"), ["error: df: no file system mounted"]);
}

#[test]
fn probe_reads_the_sample_dataset_by_read_mmap_and_async_io_with_the_host_checksum() {
    let path = std::env::temp_dir().join(format!("aether-files-probe-{}.img", std::process::id()));
    let image = Image(path);
    aether_disk::default_disk(&image.0, 300 << 20).expect("the default disk");
    let want = format!("{:016x}", aether_disk::sample_checksum(aether_disk::SAMPLE_BYTES));
    assert_eq!(
        aether_disk::checksum_file(&image.0, aether_disk::SAMPLE_PATH).unwrap(),
        aether_disk::sample_checksum(aether_disk::SAMPLE_BYTES)
    );
    let mut s = boot(&image.0, false);
    let out = s
        .command(
            &format!("run probe {}", aether_disk::SAMPLE_PATH),
            aether_abi::boot::PROMPT,
            std::time::Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    for method in ["read", "mmap", "aio"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("probe {method} ")))
            .unwrap_or_else(|| panic!("no {method} line: {out}"));
        assert!(line.contains(&format!("268435456 bytes, checksum {want}")), "{line}");
    }
    assert!(out.contains("exited with code 0"), "{out}");
}

#[test]
fn mmap_and_async_io_work_from_ring_3_and_refuse_bad_requests() {
    let image = Image::new("fscheck", 32);
    let mut s = boot(&image.0, false);
    let out = s
        .command(
            "run fscheck /fc",
            aether_abi::boot::PROMPT,
            std::time::Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("fscheck: 0 failed"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    assert_eq!(
        out.matches("\nok ").count() + usize::from(out.starts_with("ok ")),
        10,
        "{out}"
    );
    // A process that ends with a file mapped: its pins go, the file can be
    // removed, and the cache drops it.
    let out = run(&mut s, "run fscheck --leak /fc/a");
    assert!(out.iter().any(|l| l.starts_with("mapped 12388 bytes")), "{out:?}");
    assert_eq!(run(&mut s, "rm /fc/a"), Vec::<String>::new());
    assert!(run(&mut s, "cache --drop").is_empty());
    let cache = json(&run(&mut s, "cache --json")[0]);
    assert_eq!(cache["pages"].as_u64(), Some(0), "{cache}");
}

#[test]
fn a_disk_with_damaged_metadata_is_refused_with_the_block_named_and_the_kernel_runs_on() {
    let image = Image::new("damaged", 16);
    let (sb, _) = aether_disk::superblock(&image.0).expect("the superblock");
    // An inode table block past the root's (no transaction in the journal
    // holds it: mkfs leaves the journal empty).
    let block = sb.inode_table.start + 1;
    let at = block * 4096 + 300;
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&image.0)
            .unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).unwrap();
        b[0] ^= 0x40;
        f.write_all_at(&b, at).unwrap();
    }
    let mut s = common::boot_with_devices(
        Firmware::Bios,
        &common::console_cmdline(),
        aetheros::runner::blk_device_args(&image.0, false),
    );
    let text = s
        .expect(aether_abi::boot::PROMPT, common::BOOT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        text.contains(&format!(
            "disk: mount refused: inode table block {block}: metadata checksum"
        )),
        "{text}"
    );
    assert_eq!(run(&mut s, "df"), ["error: df: no file system mounted"]);
    assert_eq!(run(&mut s, "echo still here"), ["still here"]);
}
