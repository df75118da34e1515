//! `probe PATH [--read] [--mmap] [--aio] [--chunk KIB]`: reads a file and prints its
//! checksum (`aether_abi::fs::Checksum`, the one `aether-disk sum` prints
//! on the host) and the throughput, one line per method:
//!
//! `probe read PATH: BYTES bytes, checksum HEX, MS ms, MIBS MiB/s`
//!
//! Methods: `--read` (read() through the page cache, in chunks of
//! `--chunk` KiB, default 1024), `--mmap` (the whole file mapped: the
//! cache's pages, no copy), `--aio` (direct async reads of 1 MiB, 16 in
//! flight, into a DMA mapping: the device writes the buffers, no copy and
//! no cache). With no method flag, every method runs.
//! Exit 0 when every method read the whole file with the same checksum.
#![no_std]
#![no_main]

extern crate alloc;

use aether_abi::fs::Checksum;
use aether_rt::fs::{self, AioOp, File, Mapping, Sqe};
use aether_rt::{Args, entry, println, sys};
use alloc::vec;

entry!(main);

fn usage() -> i32 {
    println!("usage: probe PATH [--read] [--mmap] [--aio] [--chunk KIB]");
    2
}

fn main(args: Args) -> i32 {
    let mut path = None;
    let mut read = false;
    let mut mmap = false;
    let mut aio = false;
    let mut chunk_kib = 1024usize;
    let mut i = 1;
    while let Some(a) = args.get(i) {
        match a {
            "--read" => read = true,
            "--mmap" => mmap = true,
            "--aio" => aio = true,
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
    let all = !read && !mmap && !aio;
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
    if aio || all {
        match by_aio(path) {
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

/// Requests in flight and their size for `--aio`.
const AIO_DEPTH: usize = 16;
const AIO_REQ: usize = 1 << 20;

fn by_aio(path: &str) -> Option<u64> {
    let fail = |what: &str, e: aether_abi::fs::FsError| {
        println!("error: probe: {path}: {what}: {e}");
        None
    };
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) => return fail("open", e),
    };
    let size = f.opened_stat().size;
    let bufs = match Mapping::dma(AIO_DEPTH * AIO_REQ) {
        Ok(m) => m,
        Err(e) => return fail("DMA mapping", e),
    };
    let mut sum = Checksum::default();
    let t0 = sys::clock_ns();
    // Slot i reads the requests i, i + DEPTH, ...; results are taken in
    // file order (the checksum's), whatever order they complete in.
    let requests = size.div_ceil(AIO_REQ as u64);
    let sqe = |n: u64| Sqe {
        user_data: n,
        op: AioOp::ReadDirect,
        fd: f.fd(),
        offset: n * AIO_REQ as u64,
        buf: bufs.addr() + (n as usize % AIO_DEPTH * AIO_REQ) as u64,
        len: AIO_REQ as u64,
    };
    let first: heapless::Vec<Sqe, AIO_DEPTH> = (0..requests.min(AIO_DEPTH as u64)).map(sqe).collect();
    match fs::submit(&first) {
        Ok(n) if n == first.len() => {}
        Ok(_) => return fail("submit", aether_abi::fs::FsError::InvalidArgument),
        Err(e) => return fail("submit", e),
    }
    let mut done = [None::<u64>; AIO_DEPTH];
    let mut next = 0u64;
    let mut bytes = 0u64;
    while next < requests {
        let (cqes, _) = match fs::complete(1, 10_000) {
            Ok(c) => c,
            Err(e) => return fail("complete", e),
        };
        if cqes.is_empty() {
            return fail("complete", aether_abi::fs::FsError::Io);
        }
        for c in cqes {
            match c.result {
                Ok(n) => done[c.user_data as usize % AIO_DEPTH] = Some(n),
                Err(e) => return fail("read", e),
            }
        }
        while let Some(n) = done[next as usize % AIO_DEPTH].take() {
            let slot = next as usize % AIO_DEPTH * AIO_REQ;
            sum.add(&bufs.as_slice()[slot..slot + n as usize]);
            bytes += n;
            let again = next + AIO_DEPTH as u64;
            if again < requests && fs::submit(&[sqe(again)]) != Ok(1) {
                return fail("submit", aether_abi::fs::FsError::Io);
            }
            next += 1;
            if next == requests {
                break;
            }
        }
    }
    let ns = sys::clock_ns() - t0;
    if bytes != size {
        println!("error: probe: {path}: aio read {bytes} bytes of {size}");
        return None;
    }
    report("aio", path, bytes, sum.value(), ns);
    Some(sum.value())
}
