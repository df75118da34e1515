//! `--files`: the file and page-cache figures of issue 5 (docs/storage.md),
//! with the Linux baseline's names. Boots the console with a disk holding
//! the sample dataset (made once in the temp directory, the host's page
//! cache warmed first, as the Linux run's disk is), waits while the kernel
//! warms its free memory, checks with `probe` that read, mmap and
//! async IO give the host's checksum (a fast wrong answer does not count),
//! then runs `fsbench --disk` (the raw disk's first 256 MiB: the figures
//! compared with Linux's `/dev/vda`) and `fsbench` over the dataset file
//! (the same names ending in `_file`).

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use aether_abi::boot::{LogLevel, Mode, PROMPT};
use aetheros::runner::Qemu;

const LIMIT: Duration = Duration::from_secs(300);
/// The figures with their target ratio against Linux (issue 5).
pub const TARGETS: &[(&str, &str, f64)] = &[
    ("blk_seq_read_buffered_cold_dd", "blk_seq_read_buffered_cold_dd", 5.0),
    ("blk_seq_read_buffered_hot_c", "blk_seq_read_buffered_hot_c", 1.0),
    ("mmap_vda_cold", "mmap_vda_cold", 3.0),
    ("mmap_vda_hot", "mmap_vda_hot", 2.0),
    ("blk_seq_read_direct_c", "blk_seq_read_direct_c", 0.8),
    (
        "blk_seq_read_buffered_cold_dd_file",
        "blk_seq_read_buffered_cold_dd",
        5.0,
    ),
    ("blk_seq_read_buffered_hot_c_file", "blk_seq_read_buffered_hot_c", 1.0),
    ("mmap_file_cold", "mmap_vda_cold", 3.0),
    ("mmap_file_hot", "mmap_vda_hot", 2.0),
    ("blk_seq_read_direct_c_file", "blk_seq_read_direct_c", 0.8),
];

/// The disk: the default disk's layout (512 MiB, the 256 MiB sample
/// dataset), made once.
fn disk() -> Result<PathBuf, String> {
    let path = std::env::temp_dir().join("aether-bench-files-512m.img");
    if aether_disk::checksum_file(&path, aether_disk::SAMPLE_PATH).ok()
        != Some(aether_disk::sample_checksum(aether_disk::SAMPLE_BYTES))
    {
        aether_disk::default_disk(&path, 512 << 20).map_err(|e| e.to_string())?;
    }
    // In the host's page cache, as the Linux run's disk is after its
    // first pass.
    let mut f = std::fs::File::open(&path).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf).map_err(|e| e.to_string())? > 0 {}
    Ok(path)
}

/// One boot's figures.
pub fn once(qemu: &Qemu) -> Result<Vec<(String, f64, String)>, String> {
    let image = disk()?;
    let mut s = crate::spawn_guest(
        qemu,
        Mode::Console,
        LogLevel::Info,
        aetheros::runner::blk_device_args(&image, true),
        LIMIT,
    )?;
    s.expect(PROMPT, LIMIT).map_err(|e| e.to_string())?;
    // The figures are taken after the idle loop has warmed free memory
    // (docs/storage.md, "Reading").
    crate::settle(&mut s)?;
    let want = format!("{:016x}", aether_disk::sample_checksum(aether_disk::SAMPLE_BYTES));
    let probe = s
        .command(
            &format!("run --prio 1 probe {}", aether_disk::SAMPLE_PATH),
            PROMPT,
            LIMIT,
        )
        .map_err(|e| e.to_string())?;
    for method in ["read", "mmap", "aio"] {
        let ok = probe
            .lines()
            .any(|l| l.starts_with(&format!("probe {method} ")) && l.contains(&format!("checksum {want}")));
        if !ok {
            return Err(format!(
                "probe {method} did not give the host's checksum {want}:\n{probe}"
            ));
        }
    }
    let mut lines = Vec::new();
    for run in [
        "fsbench --disk".to_string(),
        format!("fsbench {}", aether_disk::SAMPLE_PATH),
    ] {
        let text = s
            .command(&format!("run --prio 1 {run}"), PROMPT, LIMIT)
            .map_err(|e| e.to_string())?;
        if !text.contains("BENCH_DONE") || text.contains("BENCHERR") {
            return Err(format!("`{run}` failed:\n{text}"));
        }
        lines.extend(crate::bench_lines(&text));
    }
    Ok(lines)
}
