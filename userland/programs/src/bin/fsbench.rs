//! `fsbench PATH`: file read benchmarks over PATH, as `BENCH <name> <value>
//! <unit>` lines with the Linux guest baseline's names
//! (`/work/shared/bench/linux-guest`), then `BENCH_DONE`:
//!
//! * `blk_seq_read_direct_c`: the whole file by direct async reads of
//!   1 MiB, 16 in flight, into a DMA mapping (Linux: `lbbench blkread
//!   direct`, O_DIRECT reads of 1 MiB one at a time);
//! * `blk_seq_read_buffered_cold_dd`: the whole file by read() of 1 MiB
//!   after the page cache was emptied (Linux: `dd bs=1M` after
//!   `drop_caches`);
//! * `blk_seq_read_buffered_hot_c`: the same again, from the cache;
//! * `mmap_file_cold` / `mmap_file_hot`: the first 64 MiB of the file
//!   mapped, one byte read per 4 KiB page, after emptying the cache and
//!   again (Linux's `mmap_vda_cold` / `_hot` map the device through its
//!   page cache the same way), in MiB/s, then `_faults_per_s` and
//!   `_faults` (a fault maps the 32 pages around it).
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

fn main(args: Args) -> i32 {
    let Some(path) = args.get(1) else {
        println!("usage: fsbench PATH");
        return 2;
    };
    let mut failed = false;
    match read_direct(path) {
        Ok((bytes, ns)) => println!("BENCH blk_seq_read_direct_c {} MiB/s", mib_per_s(bytes, ns)),
        Err(e) => {
            println!("BENCHERR blk_seq_read_direct_c {e:?}");
            failed = true;
        }
    }
    if let Err(e) = fs::drop_caches() {
        println!("BENCHERR blk_seq_read_buffered_cold_dd drop_caches:{e:?}");
        failed = true;
    }
    for name in ["blk_seq_read_buffered_cold_dd", "blk_seq_read_buffered_hot_c"] {
        match read_all(path) {
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
    for name in ["mmap_file_cold", "mmap_file_hot"] {
        match touch_mapped(path, MMAP_BYTES) {
            Ok((bytes, ns, faults)) => {
                println!("BENCH {name} {} MiB/s", mib_per_s(bytes, ns));
                println!(
                    "BENCH {name}_faults_per_s {} faults/s",
                    faults as u128 * 1_000_000_000 / ns.max(1) as u128
                );
                println!("BENCH {name}_faults {faults} faults");
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

fn read_all(path: &str) -> Result<(u64, u64), FsError> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut bytes = 0;
    let t0 = sys::clock_ns();
    loop {
        match f.read(&mut buf)? {
            0 => break,
            n => bytes += n as u64,
        }
    }
    Ok((bytes, sys::clock_ns() - t0))
}

/// Maps `len` bytes of the file and reads one byte of every page: bytes,
/// ns and the mapping faults it took.
fn touch_mapped(path: &str, len: usize) -> Result<(u64, u64, u64), FsError> {
    let f = File::open(path)?;
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
fn read_direct(path: &str) -> Result<(u64, u64), FsError> {
    let f = File::open(path)?;
    let size = f.opened_stat().size;
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
