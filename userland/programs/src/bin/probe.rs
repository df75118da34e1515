//! `probe PATH [--read] [--mmap] [--chunk KIB]`: reads a file and prints its
//! checksum (`aether_abi::fs::Checksum`, the one `aether-disk sum` prints
//! on the host) and the throughput, one line per method:
//!
//! `probe read PATH: BYTES bytes, checksum HEX, MS ms, MIBS MiB/s`
//!
//! Methods: `--read` (read() through the page cache, in chunks of
//! `--chunk` KiB, default 1024), `--mmap` (the whole file mapped: the
//! cache's pages, no copy). With no method flag, every method runs.
//! Exit 0 when every method read the whole file with the same checksum.
#![no_std]
#![no_main]

extern crate alloc;

use aether_abi::fs::Checksum;
use aether_rt::fs::{File, Mapping};
use aether_rt::{Args, entry, println, sys};
use alloc::vec;

entry!(main);

fn usage() -> i32 {
    println!("usage: probe PATH [--read] [--mmap] [--chunk KIB]");
    2
}

fn main(args: Args) -> i32 {
    let mut path = None;
    let mut read = false;
    let mut mmap = false;
    let mut chunk_kib = 1024usize;
    let mut i = 1;
    while let Some(a) = args.get(i) {
        match a {
            "--read" => read = true,
            "--mmap" => mmap = true,
            "--chunk" => {
                i += 1;
                match args.get(i).and_then(|v| v.parse::<usize>().ok()) {
                    Some(k) if (1..=16 * 1024).contains(&k) => chunk_kib = k,
                    _ => {
                        println!("error: probe: --chunk takes 1..=16384 (KiB)");
                        return 2;
                    }
                }
            }
            p if !p.starts_with('-') && path.is_none() => path = Some(p),
            other => {
                println!("error: probe: unexpected argument '{other}'");
                return usage();
            }
        }
        i += 1;
    }
    let Some(path) = path else { return usage() };
    let all = !read && !mmap;
    let mut sums = heapless::Vec::<u64, 4>::new();
    if read || all {
        match by_read(path, chunk_kib * 1024) {
            Some(sum) => {
                let _ = sums.push(sum);
            }
            None => return 1,
        }
    }
    if mmap || all {
        match by_mmap(path) {
            Some(sum) => {
                let _ = sums.push(sum);
            }
            None => return 1,
        }
    }
    if sums.windows(2).any(|w| w[0] != w[1]) {
        println!("error: probe: the methods disagree");
        return 1;
    }
    0
}

fn report(method: &str, path: &str, bytes: u64, sum: u64, ns: u64) {
    let ns = ns.max(1);
    let mibs = bytes as u128 * 1_000_000_000 / ns as u128 / (1 << 20);
    println!(
        "probe {method} {path}: {bytes} bytes, checksum {sum:016x}, {}.{:03} ms, {mibs} MiB/s",
        ns / 1_000_000,
        ns / 1000 % 1000
    );
}

fn by_read(path: &str, chunk: usize) -> Option<u64> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            println!("error: probe: {path}: {e}");
            return None;
        }
    };
    let mut buf = vec![0u8; chunk];
    let mut sum = Checksum::default();
    let mut bytes = 0u64;
    let t0 = sys::clock_ns();
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                sum.add(&buf[..n]);
                bytes += n as u64;
            }
            Err(e) => {
                println!("error: probe: {path}: read at {bytes}: {e}");
                return None;
            }
        }
    }
    let ns = sys::clock_ns() - t0;
    let size = f.opened_stat().size;
    if bytes != size {
        println!("error: probe: {path}: read {bytes} bytes of {size}");
        return None;
    }
    report("read", path, bytes, sum.value(), ns);
    Some(sum.value())
}

fn by_mmap(path: &str) -> Option<u64> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            println!("error: probe: {path}: {e}");
            return None;
        }
    };
    let size = f.opened_stat().size;
    let mut sum = Checksum::default();
    let t0 = sys::clock_ns();
    if size > 0 {
        let map = match Mapping::file(&f, 0, size as usize) {
            Ok(m) => m,
            Err(e) => {
                println!("error: probe: {path}: mmap: {e}");
                return None;
            }
        };
        sum.add(map.as_slice());
    }
    let ns = sys::clock_ns() - t0;
    report("mmap", path, size, sum.value(), ns);
    Some(sum.value())
}
