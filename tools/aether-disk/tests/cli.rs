//! The `aether-disk` binary: what it prints, and for every kind of wrong
//! input one line on stderr, `aether-disk CMD: ...`, and exit code 1 (never
//! a panic).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aether-disk"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail; its one stderr line, which must start
/// `aether-disk CMD: ` and contain `message`.
fn fails(args: &[&str], message: &str) -> String {
    let out = run(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(
        stderr.starts_with(&format!("aether-disk {}: ", args[0])),
        "{args:?}: {stderr}"
    );
    assert!(stderr.contains(message), "{args:?}: {stderr:?} lacks {message:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("disk.img");
    ok(&["mkfs", s(&img), "--size-mib", "16"]);
    (d, img)
}

#[test]
fn the_commands_do_what_they_say() {
    let (d, img) = setup();
    let i = s(&img);
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("hello.txt"), b"hello\n").unwrap();
    let out = ok(&["mkfs", i, "--size-mib", "16", "--from", s(&src)]);
    assert!(out.starts_with(&format!("{i}: 4096 blocks")), "{out}");
    assert_eq!(ok(&["ls", i]), "hello.txt\n");
    assert_eq!(ok(&["cat", i, "/hello.txt"]), "hello\n");
    ok(&["mkdir", i, "/d"]);
    ok(&["put", i, s(&src.join("hello.txt")), "/d/h"]);
    ok(&["mv", i, "/d/h", "/d/g"]);
    let long = ok(&["ls", i, "/d", "-l"]);
    let fields: Vec<&str> = long.split_whitespace().collect();
    assert_eq!(fields, ["file", "6", "1", "g"], "{long}");
    let back = d.path().join("back");
    ok(&["get", i, "/d/g", s(&back)]);
    assert_eq!(std::fs::read(&back).unwrap(), b"hello\n");
    let sum = ok(&["sum", i, "/d/g"]);
    let expected = aether_disk::checksum_file(&img, "/d/g").unwrap();
    assert_eq!(sum, format!("{expected:016x}\n"));
    ok(&["rm", i, "/d/g"]);
    assert_eq!(ok(&["ls", i, "/d"]), "");
    assert_eq!(ok(&["check", i]), format!("{i}: clean\n"));
    let df = ok(&["df", i]);
    assert!(df.contains("(4096 blocks)") && df.contains("free"), "{df}");
    let info = ok(&["info", i]);
    assert!(
        info.contains("journal") && info.contains("inode table") && info.contains("free"),
        "{info}"
    );
}

#[test]
fn a_missing_image_is_one_line() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("nope.img");
    let m = s(&missing);
    for args in [
        vec!["ls", m],
        vec!["cat", m, "/x"],
        vec!["check", m],
        vec!["info", m],
        vec!["df", m],
        vec!["mkdir", m, "/x"],
        vec!["sum", m, "/x"],
    ] {
        fails(&args, &format!("{m}: No such file or directory"));
    }
}

#[test]
fn wrong_paths_are_refused_with_the_reason() {
    let (d, img) = setup();
    let i = s(&img);
    ok(&["mkdir", i, "/dir"]);
    fails(&["cat", i, "/dir"], "/dir: is a directory");
    fails(&["cat", i, "/nope"], "/nope: no such file or directory");
    fails(&["cat", i, "a/b"], "a/b: invalid path");
    fails(&["ls", i, "/a/../b"], "/a/../b: invalid path");
    fails(&["mkdir", i, "/dir"], "/dir: file exists");
    let long = format!("/{}", "n".repeat(300));
    fails(&["mkdir", i, &long], "name too long");
    let host = d.path().join("h");
    std::fs::write(&host, b"h").unwrap();
    fails(&["put", i, s(&host), &long], "name too long");
    fails(&["put", i, s(&host), "/dir"], "/dir: is a directory");
    fails(&["put", i, s(&host), "/nodir/x"], "/nodir: no such file or directory");
    fails(&["get", i, "/dir", s(&d.path().join("out"))], "/dir: is a directory");
    assert!(!d.path().join("out").exists());
    fails(&["rm", i, "/"], "/: invalid path");
    fails(&["mv", i, "/dir", "/dir/sub"], "/dir -> /dir/sub: busy");
    assert_eq!(ok(&["check", i]), format!("{i}: clean\n"));
}

#[test]
fn host_files_and_sizes_that_do_not_work() {
    let (d, img) = setup();
    let i = s(&img);
    let missing = d.path().join("missing");
    fails(
        &["put", i, s(&missing), "/x"],
        &format!("{}: No such file", s(&missing)),
    );
    fails(&["put", i, s(d.path()), "/x"], "is a directory");
    fails(&["mkfs", s(&d.path().join("tiny.img")), "--size-mib", "0"], "too few");
    fails(&["mkfs", i, "--size-mib", "99999999999999999"], "too large");
    fails(&["mkfs", i, "--size-mib", "16", "--from", s(&missing)], "No such file");
    let file = d.path().join("file");
    std::fs::write(&file, b"f").unwrap();
    fails(&["mkfs", i, "--size-mib", "16", "--from", s(&file)], "not a directory");
    let big = d.path().join("big");
    std::fs::write(&big, vec![7u8; 17 << 20]).unwrap();
    fails(&["put", i, s(&big), "/big"], "/big: no space left on the disk");
    assert_eq!(ok(&["check", i]), format!("{i}: clean\n"));
}

#[test]
fn a_damaged_image_is_reported_not_mounted() {
    let d = tempfile::tempdir().unwrap();
    let junk = d.path().join("junk.img");
    std::fs::write(&junk, vec![0xa5u8; 1 << 20]).unwrap();
    let j = s(&junk);
    fails(&["ls", j], "does not mount");
    fails(&["mkdir", j, "/x"], "does not mount");
    fails(&["info", j], "block 0");
    // check: each problem a line, naming the image, exit 1.
    let out = run(&["check", j]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.lines().count() >= 1);
    for line in stderr.lines() {
        assert!(line.starts_with(&format!("aether-disk check: {j}: ")), "{stderr}");
    }
    assert!(stderr.contains("block 0"), "{stderr}");
    std::fs::write(&junk, b"").unwrap();
    fails(&["ls", j], "smaller than a block");
    fails(&["check", j], "smaller than a block");
}
