//! The file commands: `ls`, `cat`, `stat`, `df`, `cache`, `mkdir`, `rm`,
//! `mv`, `write`, `sync` (docs/console.md, "Files").

use aether_abi::fs::{FileKind, FsError, Stat};
use aether_rt::fs::{self, File};
use aether_rt::{println, sys};
use serde::Serialize;

use super::{interrupted, json_line};

/// One `ls --json` line.
#[derive(Serialize)]
struct LsEntry<'a> {
    name: &'a str,
    ino: u64,
    kind: &'static str,
    size: u64,
    extents: u32,
}

fn kind(k: FileKind) -> &'static str {
    match k {
        FileKind::File => "file",
        FileKind::Dir => "dir",
    }
}

fn fail(cmd: &str, path: &str, e: FsError) {
    println!("error: {cmd}: {path}: {e}");
}

/// `PATH` made absolute (the console has no working directory: `/`).
fn absolute(path: &str) -> alloc::string::String {
    if path.starts_with('/') {
        path.into()
    } else {
        alloc::format!("/{path}")
    }
}

pub fn ls(path: &str, json: bool) {
    let path = absolute(path);
    let entries = match fs::read_dir(&path) {
        Ok(e) => e,
        // A file: itself, as `ls` does.
        Err(FsError::NotDir) => {
            return match fs::stat(&path) {
                Ok(st) => print_entry(&path, &st, json),
                Err(e) => fail("ls", &path, e),
            };
        }
        Err(e) => return fail("ls", &path, e),
    };
    for e in &entries {
        let full = if path.ends_with('/') {
            alloc::format!("{path}{}", e.name)
        } else {
            alloc::format!("{path}/{}", e.name)
        };
        match fs::stat(&full) {
            Ok(st) => print_entry(&e.name, &st, json),
            Err(err) => fail("ls", &full, err),
        }
    }
}

fn print_entry(name: &str, st: &Stat, json: bool) {
    if json {
        json_line(&LsEntry {
            name,
            ino: st.ino,
            kind: kind(st.kind),
            size: st.size,
            extents: st.extents,
        });
    } else {
        let mark = if st.kind == FileKind::Dir { "/" } else { "" };
        println!("{:<4} {:>12}  {name}{mark}", kind(st.kind), st.size);
    }
}

pub fn cat(path: &str) {
    let path = absolute(path);
    let mut f = match File::open(&path) {
        Ok(f) => f,
        Err(e) => return fail("cat", &path, e),
    };
    let mut buf = [0u8; 2048];
    let mut last = b'\n';
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return fail("cat", &path, e),
        };
        // LF as CR LF on the serial line.
        for line in buf[..n].split_inclusive(|&b| b == b'\n') {
            match line.strip_suffix(b"\n") {
                Some(body) => {
                    let _ = sys::console_write(body);
                    let _ = sys::console_write(b"\r\n");
                }
                None => {
                    let _ = sys::console_write(line);
                }
            }
        }
        last = buf[n - 1];
        if interrupted() {
            println!();
            return println!("^C");
        }
    }
    if last != b'\n' {
        println!();
    }
}

pub fn stat(path: &str, json: bool) {
    let path = absolute(path);
    let st = match fs::stat(&path) {
        Ok(st) => st,
        Err(e) => return fail("stat", &path, e),
    };
    if json {
        return json_line(&st);
    }
    println!(
        "{path}: {} ino {}, {} bytes, {} blocks in {} extent(s), {} link(s), modified {} ms, created {} ms (unix)",
        kind(st.kind),
        st.ino,
        st.size,
        st.blocks,
        st.extents,
        st.links,
        st.mtime_ms,
        st.ctime_ms
    );
}

pub fn df(json: bool) {
    let st = match fs::statfs() {
        Ok(st) => st,
        Err(e) => return println!("error: df: {e}"),
    };
    if json {
        return json_line(&st);
    }
    let kib = |b: u64| b * st.block_size as u64 / 1024;
    let used = st.total_blocks - st.free_blocks;
    println!(
        "blocks: {} KiB used, {} KiB free, {} KiB total ({} blocks of {} bytes){}",
        kib(used),
        kib(st.free_blocks),
        kib(st.total_blocks),
        st.total_blocks,
        st.block_size,
        if st.read_only { ", read-only" } else { "" }
    );
    println!("inodes: {} used, {} free", st.inodes - st.free_inodes, st.free_inodes);
}

pub fn cache(json: bool) {
    let c = match fs::cache_stats() {
        Ok(c) => c,
        Err(e) => return println!("error: cache: {e}"),
    };
    if json {
        return json_line(&c);
    }
    println!("pages: {} of {} ({} dirty)", c.pages, c.capacity, c.dirty);
    println!("folio hits {}, misses {}; evictions {}", c.hits, c.misses, c.evictions);
    println!(
        "readahead folios: {} read, {} used, {} wasted",
        c.readahead, c.readahead_used, c.readahead_wasted
    );
    println!(
        "device reads: {} requests, {} pages; pages written back {}",
        c.read_requests, c.read_pages, c.written_back
    );
    println!("mapping faults: {} ({} pages mapped)", c.map_faults, c.mapped_pages);
}

pub fn drop_cache() {
    if let Err(e) = fs::drop_caches() {
        println!("error: cache: {e}");
    }
}

pub fn mkdir(path: &str) {
    let path = absolute(path);
    if let Err(e) = fs::mkdir(&path) {
        fail("mkdir", &path, e);
    }
}

pub fn rm(path: &str) {
    let path = absolute(path);
    if let Err(e) = fs::unlink(&path) {
        fail("rm", &path, e);
    }
}

pub fn mv(from: &str, to: &str) {
    let (from, to) = (absolute(from), absolute(to));
    if let Err(e) = fs::rename(&from, &to) {
        println!("error: mv: {from} -> {to}: {e}");
    }
}

pub fn write(path: &str, append: bool, text: &str) {
    let path = absolute(path);
    let opened = if append {
        File::append(&path)
    } else {
        File::create(&path)
    };
    let mut f = match opened {
        Ok(f) => f,
        Err(e) => return fail("write", &path, e),
    };
    let mut line = alloc::vec::Vec::with_capacity(text.len() + 1);
    line.extend_from_slice(text.as_bytes());
    line.push(b'\n');
    match f.write(&line).and_then(|_| f.fsync()) {
        Ok(()) => println!("{} bytes written to {path}", line.len()),
        Err(e) => fail("write", &path, e),
    }
}

pub fn sync() {
    if let Err(e) = fs::sync() {
        println!("error: sync: {e}");
    }
}
