//! `--storage`: the block layer's figures (docs/storage.md). Boots the
//! kernel test `blk_bench_seq_read` with a 256 MiB random disk (the Linux
//! baseline's size and QEMU flags: `cache=writeback`, the host's page cache
//! warmed first) and checks the page checksum it prints against the
//! host's, so a fast wrong answer does not count.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use aether_abi::boot::{LogLevel, Mode};
use aether_abi::ktest::storage::PageSum;
use aetheros::runner::Qemu;

const DISK_MIB: u64 = 256;
const LIMIT: Duration = Duration::from_secs(300);

/// The disk image: random bytes, made once and kept in the temp directory.
fn disk() -> Result<PathBuf, String> {
    let path = std::env::temp_dir().join(format!("aether-bench-disk-{DISK_MIB}m.img"));
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == DISK_MIB << 20) {
        return Ok(path);
    }
    let mut random = std::fs::File::open("/dev/urandom").map_err(|e| e.to_string())?;
    let mut out = std::fs::File::create(&path).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..DISK_MIB {
        random.read_exact(&mut buf).map_err(|e| e.to_string())?;
        out.write_all(&buf).map_err(|e| e.to_string())?;
    }
    Ok(path)
}

/// The guest's page checksum of the first `bytes` of `data`.
fn page_sum(data: &[u8]) -> u64 {
    let mut sum = PageSum::default();
    sum.add(0, data);
    sum.value()
}

/// One boot's figures.
pub fn once(qemu: &Qemu) -> Result<Vec<(String, f64, String)>, String> {
    let image = disk()?;
    let data = std::fs::read(&image).map_err(|e| e.to_string())?;
    let s = crate::spawn_guest(
        qemu,
        Mode::Test(Some("blk_bench_seq_read")),
        LogLevel::Info,
        aetheros::runner::blk_device_args(&image, true),
        LIMIT,
    )?;
    let (status, out) = s.wait(LIMIT).map_err(|e| e.to_string())?;
    if status.code() != Some(33) {
        return Err(format!("the storage bench failed ({status}):\n{out}"));
    }
    for line in out.lines().filter_map(|l| Some(&l[l.find("BLKSUM ")? + 7..])) {
        let mut w = line.split_whitespace();
        let (name, sum, bytes) = (w.next(), w.next(), w.next().and_then(|b| b.parse::<usize>().ok()));
        let want = format!("{:016x}", page_sum(&data[..bytes.unwrap_or(0).min(data.len())]));
        if sum != Some(want.as_str()) {
            return Err(format!(
                "{name:?}: the guest read other bytes (checksum {sum:?}, host {want})"
            ));
        }
    }
    Ok(crate::bench_lines(&out))
}
