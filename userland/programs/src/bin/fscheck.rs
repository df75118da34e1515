//! `fscheck DIR`: checks of mmap and async IO from ring 3, and of their bad
//! input, in files under DIR (created). One line per check, `ok NAME` or
//! `FAIL NAME: what`, then `fscheck: N failed`; the exit code is N. The
//! integration tests run it on a fresh disk (tests/files.rs).
//!
//! `fscheck --leak FILE`: maps FILE, touches it and exits without
//! unmapping (what the kernel must clean up after).
#![no_std]
#![no_main]

extern crate alloc;

use aether_abi::fs::{AioOp, FsError, FsRequest, MAP_ALL, MAP_WRITE, O_READ, O_TRUNC, O_WRITE, Sqe};
use aether_rt::fs::{self, File, Mapping};
use aether_rt::{Args, entry, println};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

entry!(main);

type Check = Result<(), String>;
/// A named check over the directory.
type Named = (&'static str, fn(&str) -> Check);

fn ensure(cond: bool, what: &str) -> Check {
    if cond { Ok(()) } else { Err(what.into()) }
}

fn expect_err<T>(r: Result<T, FsError>, want: FsError, what: &str) -> Check {
    match r {
        Err(e) if e == want => Ok(()),
        Err(e) => Err(format!("{what}: {e:?}, expected {want:?}")),
        Ok(_) => Err(format!("{what}: succeeded, expected {want:?}")),
    }
}

fn e(err: FsError) -> String {
    format!("{err:?}")
}

/// Bytes `i` of the test file: a pattern that differs page to page.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
}

const LEN: usize = 3 * 4096 + 100;

fn make(path: &str, data: &[u8]) -> Result<(), String> {
    let mut f = File::create(path).map_err(e)?;
    f.write(data).map_err(e)?;
    f.fsync().map_err(e)
}

fn raw_mmap(fd: Option<u32>, offset: u64, len: u64, flags: u32) -> Result<(), FsError> {
    fs::request(&FsRequest::Mmap { fd, offset, len, flags }).map(|_| ())
}

fn mmap_shared_reads_the_file(dir: &str) -> Check {
    let path = format!("{dir}/a");
    let data = pattern(LEN);
    make(&path, &data)?;
    let f = File::open(&path).map_err(e)?;
    let m = Mapping::file(&f, 0, LEN).map_err(e)?;
    ensure(m.as_slice() == &data[..], "the mapping's bytes differ from the file's")?;
    // The same pages from a second offset.
    let m2 = Mapping::file(&f, 4096, LEN - 4096).map_err(e)?;
    ensure(m2.as_slice() == &data[4096..], "a mapping from page 1 differs")
}

fn mmap_private_copies_on_write(dir: &str) -> Check {
    let path = format!("{dir}/a");
    let f = File::open(&path).map_err(e)?;
    let mut m = Mapping::file_private(&f, 0, LEN).map_err(e)?;
    let shared = Mapping::file(&f, 0, LEN).map_err(e)?;
    let bytes = m.as_mut_slice().ok_or("a private mapping is not writable")?;
    bytes[5000] ^= 0xff;
    let mine = bytes[5000];
    ensure(
        shared.as_slice()[5000] != mine,
        "a private write reached the shared mapping",
    )?;
    let mut back = [0u8; 1];
    f.pread(&mut back, 5000).map_err(e)?;
    ensure(back[0] == pattern(LEN)[5000], "a private write reached the file")?;
    ensure(m.as_slice()[5000] == mine, "the private write is not there")
}

fn mmap_anonymous_is_zeroed_and_writable(_: &str) -> Check {
    let mut m = Mapping::anonymous(64 << 20).map_err(e)?;
    ensure(
        m.as_slice().iter().step_by(4096).all(|&b| b == 0),
        "anonymous memory is not zero",
    )?;
    let bytes = m.as_mut_slice().ok_or("anonymous memory is not writable")?;
    bytes[12345] = 7;
    ensure(m.as_slice()[12345] == 7, "a write to anonymous memory was lost")
}

fn mmap_bad_requests_are_refused(dir: &str) -> Check {
    let path = format!("{dir}/a");
    let f = File::open(&path).map_err(e)?;
    let fd = Some(f.fd());
    let inv = FsError::InvalidArgument;
    expect_err(raw_mmap(fd, 100, 4096, 0), inv, "an unaligned offset")?;
    expect_err(raw_mmap(fd, 0, 0, 0), inv, "an empty mapping")?;
    expect_err(raw_mmap(fd, 0, 5 * 4096, 0), inv, "a mapping past the file")?;
    expect_err(raw_mmap(fd, 0, 4096, MAP_WRITE), inv, "a shared writable file mapping")?;
    expect_err(raw_mmap(fd, 0, 4096, MAP_ALL + 1), inv, "unknown flags")?;
    expect_err(raw_mmap(Some(99), 0, 4096, 0), FsError::BadFd, "a bad descriptor")?;
    expect_err(raw_mmap(None, 0, 2 << 30, MAP_WRITE), inv, "a mapping over the limit")?;
    let m = Mapping::anonymous(8192).map_err(e)?;
    expect_err(
        fs::request(&FsRequest::Munmap {
            addr: m.addr(),
            len: 4096,
        }),
        inv,
        "a partial munmap",
    )?;
    expect_err(
        fs::request(&FsRequest::Munmap {
            addr: 0x1234_0000,
            len: 4096,
        }),
        inv,
        "munmap of nothing",
    )
}

fn a_mapped_file_is_not_removed_or_truncated(dir: &str) -> Check {
    let path = format!("{dir}/busy");
    make(&path, &pattern(9000))?;
    {
        let f = File::open(&path).map_err(e)?;
        let m = Mapping::file(&f, 0, 9000).map_err(e)?;
        let _ = m.as_slice()[0];
        drop(f);
        expect_err(fs::unlink(&path), FsError::Busy, "unlink of a mapped file")?;
        expect_err(
            File::open_with(&path, O_WRITE | O_TRUNC),
            FsError::Busy,
            "truncate of a mapped file",
        )?;
        ensure(m.as_slice() == &pattern(9000)[..], "the mapping changed")?;
    }
    fs::unlink(&path).map_err(|err| format!("unlink once unmapped: {err:?}"))
}

fn direct(fd: u32, offset: u64, buf: u64, len: u64) -> Sqe {
    Sqe {
        user_data: offset,
        op: AioOp::ReadDirect,
        fd,
        offset,
        buf,
        len,
    }
}

fn one_completion() -> Result<aether_abi::fs::Cqe, String> {
    let (done, _) = fs::complete(1, 5000).map_err(e)?;
    done.first().copied().ok_or_else(|| "no completion".into())
}

fn aio_direct_reads_what_read_reads(dir: &str) -> Check {
    let path = format!("{dir}/big");
    let data = pattern(3 << 20);
    make(&path, &data)?;
    let f = File::open(&path).map_err(e)?;
    let bufs = Mapping::dma(3 << 20).map_err(e)?;
    let sqes: Vec<Sqe> = (0..3)
        .map(|i| direct(f.fd(), i << 20, bufs.addr() + (i << 20), 1 << 20))
        .collect();
    ensure(fs::submit(&sqes).map_err(e)? == 3, "not every request was taken")?;
    let mut got = 0;
    while got < 3 {
        let (done, _) = fs::complete(1, 5000).map_err(e)?;
        ensure(!done.is_empty(), "no completion")?;
        for c in done {
            ensure(c.result == Ok(1 << 20), "a direct read's result")?;
            got += 1;
        }
    }
    ensure(bufs.as_slice() == &data[..], "direct reads differ from the file")?;
    // Through a bounce buffer (ordinary memory) too.
    let mut heap = vec![0u8; 8192];
    fs::submit(&[direct(f.fd(), 4096, heap.as_mut_ptr() as u64, 8192)]).map_err(e)?;
    ensure(one_completion()?.result == Ok(8192), "a bounced read's result")?;
    ensure(heap[..] == data[4096..4096 + 8192], "a bounced read differs")?;
    // At the end of the file: short, then nothing.
    let tail = direct(f.fd(), (3 << 20) - 512, bufs.addr(), 4096);
    fs::submit(&[tail]).map_err(e)?;
    ensure(one_completion()?.result == Ok(512), "a read over the end")?;
    fs::submit(&[direct(f.fd(), 4 << 20, bufs.addr(), 4096)]).map_err(e)?;
    ensure(one_completion()?.result == Ok(0), "a read past the end")
}

fn aio_bad_requests_complete_with_their_error(dir: &str) -> Check {
    let path = format!("{dir}/big");
    let f = File::open(&path).map_err(e)?;
    let bufs = Mapping::dma(1 << 20).map_err(e)?;
    let cases = [
        (
            direct(f.fd(), 100, bufs.addr(), 4096),
            FsError::InvalidArgument,
            "an unaligned offset",
        ),
        (
            direct(f.fd(), 0, bufs.addr(), 100),
            FsError::InvalidArgument,
            "a length not in sectors",
        ),
        (direct(77, 0, bufs.addr(), 4096), FsError::BadFd, "a bad descriptor"),
        (
            Sqe {
                op: AioOp::Read,
                buf: 0x10,
                ..direct(f.fd(), 0, 0, 4096)
            },
            FsError::InvalidArgument,
            "a cached read into a bad address",
        ),
    ];
    for (sqe, want, what) in cases {
        ensure(fs::submit(&[sqe]).map_err(e)? == 1, what)?;
        let c = one_completion()?;
        ensure(c.result == Err(want), &format!("{what}: {:?}", c.result))?;
    }
    Ok(())
}

fn aio_cached_writes_then_reads(dir: &str) -> Check {
    let path = format!("{dir}/w");
    let f = File::open_with(&path, O_READ | O_WRITE | aether_abi::fs::O_CREATE).map_err(e)?;
    let data = pattern(10_000);
    let write = Sqe {
        user_data: 1,
        op: AioOp::Write,
        fd: f.fd(),
        offset: 0,
        buf: data.as_ptr() as u64,
        len: data.len() as u64,
    };
    fs::submit(&[write]).map_err(e)?;
    ensure(one_completion()?.result == Ok(10_000), "an async write's result")?;
    let mut back = vec![0u8; 10_000];
    let read = Sqe {
        user_data: 2,
        op: AioOp::Read,
        buf: back.as_mut_ptr() as u64,
        ..write
    };
    fs::submit(&[read]).map_err(e)?;
    ensure(one_completion()?.result == Ok(10_000), "an async read's result")?;
    ensure(back == data, "async read differs from the async write")
}

fn aio_queue_is_bounded(dir: &str) -> Check {
    let path = format!("{dir}/big");
    let f = File::open(&path).map_err(e)?;
    let bufs = Mapping::dma(4096).map_err(e)?;
    let sqes: Vec<Sqe> = (0..80).map(|_| direct(f.fd(), 0, bufs.addr(), 4096)).collect();
    let taken = fs::submit(&sqes).map_err(e)?;
    ensure(taken <= aether_abi::fs::AIO_INFLIGHT_MAX, "more than the limit taken")?;
    let mut left = taken;
    while left > 0 {
        let (done, _) = fs::complete(left as u32, 5000).map_err(e)?;
        ensure(!done.is_empty(), "completions stopped")?;
        left -= done.len();
    }
    Ok(())
}

fn a_full_disk_says_no_space_and_keeps_what_is_there(dir: &str) -> Check {
    let keep = format!("{dir}/keep");
    make(&keep, b"precious")?;
    let fill = format!("{dir}/fill");
    let mut f = File::create(&fill).map_err(e)?;
    let chunk = vec![0x5a; 1 << 20];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(n) => written += n as u64,
            Err(FsError::NoSpace) => break,
            Err(err) => return Err(format!("a write at {written}: {err:?}")),
        }
        ensure(written < 1 << 30, "no NoSpace after 1 GiB")?;
    }
    ensure(written > 0, "nothing fitted")?;
    f.fsync().map_err(e)?;
    // The refused write changed nothing: the size is what was written.
    ensure(f.stat().map_err(e)?.size == written, "the size after NoSpace")?;
    let mut back = [0u8; 8];
    File::open(&keep).map_err(e)?.read(&mut back).map_err(e)?;
    ensure(&back == b"precious", "a file written before was changed")?;
    let free_full = fs::statfs().map_err(e)?.free_blocks;
    drop(f);
    fs::unlink(&fill).map_err(e)?;
    ensure(
        fs::statfs().map_err(e)?.free_blocks >= free_full + written / 4096,
        "the space did not come back",
    )
}

fn main(args: Args) -> i32 {
    let Some(dir) = args.get(1) else {
        println!("usage: fscheck DIR | fscheck --leak FILE");
        return 2;
    };
    if dir == "--leak" {
        let Some(path) = args.get(2) else { return 2 };
        let leaked = File::open(path).and_then(|f| {
            let m = Mapping::file(&f, 0, f.opened_stat().size as usize)?;
            println!("mapped {} bytes, first {}", m.len(), m.as_slice()[0]);
            core::mem::forget(m);
            core::mem::forget(f);
            Ok(())
        });
        return match leaked {
            Ok(()) => 0,
            Err(err) => {
                println!("error: fscheck: {path}: {err}");
                1
            }
        };
    }
    if let Err(err) = fs::mkdir(dir)
        && err != FsError::Exists
    {
        println!("FAIL setup: mkdir {dir}: {err}");
        return 1;
    }
    let checks: [Named; 10] = [
        ("mmap_shared_reads_the_file", mmap_shared_reads_the_file),
        ("mmap_private_copies_on_write", mmap_private_copies_on_write),
        (
            "mmap_anonymous_is_zeroed_and_writable",
            mmap_anonymous_is_zeroed_and_writable,
        ),
        ("mmap_bad_requests_are_refused", mmap_bad_requests_are_refused),
        (
            "a_mapped_file_is_not_removed_or_truncated",
            a_mapped_file_is_not_removed_or_truncated,
        ),
        ("aio_direct_reads_what_read_reads", aio_direct_reads_what_read_reads),
        (
            "aio_bad_requests_complete_with_their_error",
            aio_bad_requests_complete_with_their_error,
        ),
        ("aio_cached_writes_then_reads", aio_cached_writes_then_reads),
        ("aio_queue_is_bounded", aio_queue_is_bounded),
        // Last: it fills the disk (and empties it again).
        (
            "a_full_disk_says_no_space_and_keeps_what_is_there",
            a_full_disk_says_no_space_and_keeps_what_is_there,
        ),
    ];
    let mut failed = 0;
    for (name, check) in checks {
        match check(dir) {
            Ok(()) => println!("ok {name}"),
            Err(why) => {
                println!("FAIL {name}: {why}");
                failed += 1;
            }
        }
    }
    println!("fscheck: {failed} failed");
    failed
}
