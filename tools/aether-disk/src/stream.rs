//! Bytes into and out of files of a mounted image, [`CHUNK`] at a time:
//! no file has to fit in memory.

use std::io::{self, Read};

use aether_abi::fs::{FileKind, FsError};
use aethfs::Fs;

use crate::error::{Error, Result, fs_at};
use crate::store::FileStore;

/// Files move in and out in pieces of this size.
pub const CHUNK: usize = 1 << 20;

/// Reads until `buf` is full or the input ends (so writes stay whole
/// blocks, and extents long).
fn fill(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Creates file `path` (it must not exist) with what `input` (named
/// `input_name` in errors) holds, [`CHUNK`] at a time; its size. On an
/// error the file is removed again. Not committed.
pub(crate) fn write_new(fs: &mut Fs<FileStore>, path: &str, input: &mut impl Read, input_name: &str) -> Result<u64> {
    let ino = fs.create(path, FileKind::File).map_err(fs_at(path))?;
    let mut buf = vec![0u8; CHUNK];
    let mut copy = || -> Result<u64> {
        let mut at = 0u64;
        loop {
            let n = fill(input, &mut buf).map_err(|e| Error::Io(input_name.into(), e))?;
            if n == 0 {
                return Ok(at);
            }
            fs.write(ino, at, &buf[..n]).map_err(fs_at(path))?;
            at += n as u64;
        }
    };
    let copied = copy();
    if copied.is_err() {
        // Its blocks back; the error to report is the first one.
        let _ = fs.unlink(path);
    }
    copied
}

/// File `path` of `fs`: its inode and size (a directory is refused).
pub(crate) fn open_file(fs: &mut Fs<FileStore>, path: &str) -> Result<(u64, u64)> {
    let ino = fs.lookup(path).map_err(fs_at(path))?;
    let st = fs.stat(ino).map_err(fs_at(path))?;
    if st.kind == FileKind::Dir {
        return Err(Error::Fs(FsError::IsDir, path.into()));
    }
    Ok((ino, st.size))
}

/// Streams file `ino` (`path`, `size` bytes) into `out` (named `out_name`
/// in errors), [`CHUNK`] at a time; the bytes copied.
pub(crate) fn read_out(
    fs: &mut Fs<FileStore>,
    (ino, size): (u64, u64),
    path: &str,
    out: &mut impl FnMut(&[u8]) -> io::Result<()>,
    out_name: &str,
) -> Result<u64> {
    let mut buf = vec![0u8; CHUNK.min(size as usize)];
    let mut at = 0u64;
    while at < size {
        let n = fs.read(ino, at, &mut buf).map_err(fs_at(path))?;
        if n == 0 {
            // The inode said more: only a corrupt file stops early.
            return Err(Error::Fs(FsError::Corrupt, path.into()));
        }
        out(&buf[..n]).map_err(|e| Error::Io(out_name.into(), e))?;
        at += n as u64;
    }
    Ok(at)
}
