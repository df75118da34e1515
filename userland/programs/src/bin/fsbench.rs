//! `fsbench --disk | fsbench PATH`: read benchmarks over the raw disk (its
//! first 256 MiB, as the Linux guest's `/dev/vda`) or over the file PATH,
//! as `BENCH <name> <value> <unit>` lines with the Linux guest baseline's
//! names (`/work/shared/bench/linux-guest`; over a file each name ends in
//! `_file`), then `BENCH_DONE`:
//!
//! * `blk_seq_read_direct_c`: the whole file by direct async reads of
//!   1 MiB, 16 in flight, into a DMA mapping (Linux: `lbbench blkread
//!   direct`, O_DIRECT reads of 1 MiB one at a time);
//! * `blk_seq_read_buffered_cold_dd`: the whole file by read() of 1 MiB
//!   after the page cache was emptied (Linux: `dd bs=1M` after
//!   `drop_caches`);
//! * `blk_seq_read_buffered_hot_c`: the same again, from the cache;
//! * `mmap_vda_cold` / `mmap_vda_hot` (`mmap_file_*`): the first 64 MiB
//!   mapped, one byte read per 4 KiB page, after emptying the cache and
//!   again, in MiB/s, then `_faults` (per second) and `_nfaults` (a fault maps the
//!   32 pages around it).
//!
//! The bytes are not looked at (as Linux's `lbbench blkread`); `probe`
//! checks them. A failure prints `BENCHERR <name> <what>` and the exit
//! code is 1.
#![no_std]
#![no_main]

extern crate alloc;

use aether_abi::fs::FsError;
use aether_rt::fs::{self, AioOp, File, Mapping, Sqe};
use aether_rt::{Args, entry, println, sys};
use alloc::vec;

entry!(main);

const CHUNK: usize = 1 << 20;
/// The mapping of the mmap figures (Linux's: 64 MiB).
const MMAP_BYTES: usize = 64 << 20;

/// What is read: the disk's first 256 MiB (Linux's disk), or a file.
#[derive(Clone, Copy)]
enum Target<'a> {
    Disk,
    File(&'a str),
}

impl Target<'_> {
    fn open(self) -> Result<File, FsError> {
        match self {
            Target::Disk => File::open_disk(),
            Target::File(p) => File::open(p),
        }
    }

    /// The figure's name: the baseline's, or with `_file` after it.
    fn name(self, disk_name: &str, file_name: &str) -> alloc::string::String {
        match self {
            Target::Disk => disk_name.into(),
            Target::File(_) => file_name.into(),
        }
    }
}

/// The most read of the target (the Linux guest's disk is 256 MiB).
const BENCH_BYTES: u64 = 256 << 20;

fn main(args: Args) -> i32 {
    let target = match args.get(1) {
        Some("--disk") => Target::Disk,
        Some(p) if !p.starts_with('-') => Target::File(p),
        _ => {
            println!("usage: fsbench --disk | fsbench PATH");
            return 2;
        }
    };
    let mut failed = false;
    let direct = target.name("blk_seq_read_direct_c", "blk_seq_read_direct_c_file");
    match read_direct(target) {
        Ok((bytes, ns)) => println!("BENCH {direct} {} MiB/s", mib_per_s(bytes, ns)),
        Err(e) => {
            println!("BENCHERR {direct} {e:?}");
            failed = true;
        }
    }
    if let Err(e) = fs::drop_caches() {
        println!("BENCHERR blk_seq_read_buffered_cold_dd drop_caches:{e:?}");
        failed = true;
    }
    let names = [
        target.name("blk_seq_read_buffered_cold_dd", "blk_seq_read_buffered_cold_dd_file"),
        target.name("blk_seq_read_buffered_hot_c", "blk_seq_read_buffered_hot_c_file"),
    ];
    for name in names {
        match read_all(target) {
            Ok((bytes, ns)) => println!("BENCH {name} {} MiB/s", mib_per_s(bytes, ns)),
            Err(e) => {
                println!("BENCHERR {name} {e:?}");
                failed = true;
            }
        }
    }
    if let Err(e) = fs::drop_caches() {
        println!("BENCHERR mmap_file_cold drop_caches:{e:?}");
        failed = true;
    }
    let names = [
        target.name("mmap_vda_cold", "mmap_file_cold"),
        target.name("mmap_vda_hot", "mmap_file_hot"),
    ];
    for name in names {
        match touch_mapped(target, MMAP_BYTES) {
            Ok((bytes, ns, faults)) => {
                println!("BENCH {name} {} MiB/s", mib_per_s(bytes, ns));
                println!(
                    "BENCH {name}_faults {} faults/s",
                    faults as u128 * 1_000_000_000 / ns.max(1) as u128
                );
                println!("BENCH {name}_nfaults {faults} faults");
            }
            Err(e) => {
                println!("BENCHERR {name} {e:?}");
                failed = true;
            }
        }
    }
    println!("BENCH_DONE");
    i32::from(failed)
}

/// MiB/s with one decimal.
fn mib_per_s(bytes: u64, ns: u64) -> alloc::string::String {
    let tenths = bytes as u128 * 10_000_000_000 / ns.max(1) as u128 / (1 << 20);
    alloc::format!("{}.{}", tenths / 10, tenths % 10)
}

fn read_all(target: Target) -> Result<(u64, u64), FsError> {
    let mut f = target.open()?;
    let mut buf = vec![0u8; CHUNK];
    let mut bytes = 0;
    let t0 = sys::clock_ns();
    while bytes < BENCH_BYTES {
        match f.read(&mut buf)? {
            0 => break,
            n => bytes += n as u64,
        }
    }
    Ok((bytes, sys::clock_ns() - t0))
}

/// Maps `len` bytes of the file and reads one byte of every page: bytes,
/// ns and the mapping faults it took.
fn touch_mapped(target: Target, len: usize) -> Result<(u64, u64, u64), FsError> {
    let f = target.open()?;
    let len = len.min(f.opened_stat().size as usize);
    let faults0 = fs::cache_stats()?.map_faults;
    let t0 = sys::clock_ns();
    let map = Mapping::file(&f, 0, len)?;
    let bytes = map.as_slice();
    let mut sum = 0u8;
    let mut at = 0;
    while at < bytes.len() {
        sum = sum.wrapping_add(bytes[at]);
        at += 4096;
    }
    core::hint::black_box(sum);
    let ns = sys::clock_ns() - t0;
    drop(map);
    Ok((len as u64, ns, fs::cache_stats()?.map_faults - faults0))
}

const DEPTH: usize = 16;

/// Direct async reads of [`CHUNK`], [`DEPTH`] in flight: bytes and ns.
fn read_direct(target: Target) -> Result<(u64, u64), FsError> {
    let f = target.open()?;
    let size = f.opened_stat().size.min(BENCH_BYTES);
    let bufs = Mapping::dma(DEPTH * CHUNK)?;
    let requests = size.div_ceil(CHUNK as u64);
    let sqe = |n: u64| Sqe {
        user_data: n,
        op: AioOp::ReadDirect,
        fd: f.fd(),
        offset: n * CHUNK as u64,
        buf: bufs.addr() + (n as usize % DEPTH * CHUNK) as u64,
        len: CHUNK as u64,
    };
    let t0 = sys::clock_ns();
    let mut next = 0u64;
    let mut bytes = 0u64;
    let mut inflight = 0usize;
    loop {
        // Keep DEPTH in flight; a slot is free again once its read is in.
        let batch: heapless::Vec<Sqe, DEPTH> = (next..requests).take(DEPTH - inflight).map(sqe).collect();
        let taken = fs::submit(&batch)?;
        next += taken as u64;
        inflight += taken;
        if inflight == 0 {
            break;
        }
        let (done, _) = fs::complete(1, 10_000)?;
        if done.is_empty() {
            return Err(FsError::Io);
        }
        for c in &done {
            bytes += c.result?;
        }
        inflight -= done.len();
    }
    Ok((bytes, sys::clock_ns() - t0))
}
