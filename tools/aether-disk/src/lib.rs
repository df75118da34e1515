//! AetherOS disk images, offline (docs/disk-format.md, "The host tool"):
//! `mkfs` (empty, from a host folder, or with the sample dataset), `check`
//! (fsck), and the file operations `ls`, `cat`, `put`, `get`, `mkdir`,
//! `rm`, `mv`, `df`, `checksum_file`. The file system is `aethfs`, the
//! kernel's own implementation, over the image file ([`FileStore`]).
//!
//! Every command that changes the image commits before it returns. One
//! that fails leaves the image consistent and without a half-written file
//! (`put` keeps the old one); a `mkfs` that fails leaves no usable image.

#![forbid(unsafe_code)]

mod error;
mod import;
mod sample;
mod store;
mod stream;

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use aether_abi::disk::{self, BLOCK_SIZE, Superblock, SuperblockError};
use aether_abi::fs::{Checksum, DirEntry, FileKind, FsError, FsStat, Stat, split_parent};
use aethfs::{FormatError, Fs, Store};

pub use error::{Error, Result};
pub use sample::{SAMPLE_BYTES, SAMPLE_PATH, SAMPLE_README_PATH, sample_bytes, sample_checksum, sample_word};
pub use store::FileStore;
pub use stream::CHUNK;

use error::{fs_at, io_at};
use stream::{open_file, read_out, write_new};

/// The default journal size (4 MiB) and inode count.
pub const JOURNAL_BLOCKS: u64 = 1024;
pub const INODES: u64 = 4096;
/// Where `put` writes a file before renaming it into place.
pub const PUT_TEMP: &str = "/.aether-disk-put";

const BS: u64 = BLOCK_SIZE as u64;

fn volume_id() -> Result<[u8; 16]> {
    let mut id = [0u8; 16];
    let urandom = Path::new("/dev/urandom");
    File::open(urandom)
        .and_then(|mut f| f.read_exact(&mut id))
        .map_err(io_at(urandom))?;
    Ok(id)
}

/// Lays out a new file system on `path` (created, or overwritten) of
/// `bytes`, rounded down to whole blocks.
fn format(path: &Path, bytes: u64) -> Result<Fs<FileStore>> {
    let blocks = bytes / BS;
    // Refused before the file is touched: a bad size clobbers nothing.
    disk::layout(blocks, JOURNAL_BLOCKS, INODES, [0; 16]).map_err(Error::Layout)?;
    let id = volume_id()?;
    let store = FileStore::create(path, blocks).map_err(io_at(path))?;
    aethfs::format(store, JOURNAL_BLOCKS, INODES, id).map_err(|e| match e {
        FormatError::Layout(e) => Error::Layout(e),
        FormatError::Mount(e) => Error::Mount(format!("{}: the new file system does not mount: {e}", path.display())),
        FormatError::ReadOnly | FormatError::Io => Error::Io(
            path.display().to_string(),
            io::Error::other("the image could not be written"),
        ),
    })
}

/// Creates (or overwrites) `path` as an empty file system of `bytes`
/// (rounded down to whole blocks).
pub fn mkfs(path: &Path, bytes: u64) -> Result<Superblock> {
    let fs = format(path, bytes)?;
    Ok(*fs.superblock())
}

/// `mkfs`, then the files and directories under host directory `dir`
/// copied in. The lines returned name what was skipped (symlinks, special
/// files, names that are not UTF-8). On an error (the tree does not fit)
/// the image holds part of the tree.
pub fn mkfs_from(path: &Path, bytes: u64, dir: &Path) -> Result<(Superblock, Vec<String>)> {
    if !std::fs::metadata(dir).map_err(io_at(dir))?.is_dir() {
        return Err(Error::Io(
            dir.display().to_string(),
            io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    let mut fs = format(path, bytes)?;
    let mut warnings = Vec::new();
    let copied = import::copy_tree(&mut fs, dir, "/", &mut warnings).and_then(|()| commit(&mut fs));
    copied.map_err(|e| explain(e, &mut fs, path))?;
    Ok((*fs.superblock(), warnings))
}

/// The disk `cargo run` gives the console: `mkfs` plus the sample
/// dataset ([`put_sample`]).
pub fn default_disk(path: &Path, bytes: u64) -> Result<Superblock> {
    default_disk_with(path, bytes, SAMPLE_BYTES)
}

fn default_disk_with(path: &Path, bytes: u64, sample_len: u64) -> Result<Superblock> {
    let mut fs = format(path, bytes)?;
    write_sample(&mut fs, sample_len).map_err(|e| explain(e, &mut fs, path))?;
    Ok(*fs.superblock())
}

/// Adds the sample dataset to `image`: [`SAMPLE_PATH`], [`SAMPLE_BYTES`]
/// of [`sample_bytes`], and [`SAMPLE_README_PATH`], a line saying what it
/// is and its checksum. Either replaces what was there.
pub fn put_sample(image: &Path) -> Result<()> {
    with_fs(image, true, |fs| write_sample(fs, SAMPLE_BYTES))
}

fn write_sample(fs: &mut Fs<FileStore>, len: u64) -> Result<()> {
    let (dir, _) = split_parent(SAMPLE_PATH).map_err(fs_at(SAMPLE_PATH))?;
    match fs.create(dir, FileKind::Dir) {
        Ok(_) | Err(FsError::Exists) => {}
        Err(e) => return Err(Error::Fs(e, dir.into())),
    }
    for path in [SAMPLE_PATH, SAMPLE_README_PATH] {
        match fs.unlink(path) {
            Ok(()) | Err(FsError::NotFound) => {}
            Err(e) => return Err(Error::Fs(e, path.into())),
        }
    }
    let mut data = sample::SampleReader::new(len);
    write_new(fs, SAMPLE_PATH, &mut data, "the sample dataset")?;
    let note = sample::readme(len, data.checksum());
    write_new(fs, SAMPLE_README_PATH, &mut note.as_bytes(), "the README")?;
    commit(fs)
}

/// The superblock of `path`: block 0's, or its copy's when block 0 is bad
/// (then `Some(why)`). Only the superblock is read: this works on an image
/// that does not mount.
pub fn superblock(path: &Path) -> Result<(Superblock, Option<SuperblockError>)> {
    let mut store = FileStore::open(path, false).map_err(io_at(path))?;
    let mut block = [0u8; BLOCK_SIZE];
    let read = |store: &mut FileStore, n: u64, block: &mut [u8; BLOCK_SIZE]| {
        store.read(n, block).map_err(|_| match store.take_error() {
            Some(e) => Error::Io(path.display().to_string(), e),
            None => Error::Inconsistent(vec![format!("block {n} is past the image's end: not an AetherOS disk")]),
        })
    };
    read(&mut store, 0, &mut block)?;
    let first = match Superblock::decode(&block) {
        Ok(sb) => return Ok((sb, None)),
        Err(e) => e,
    };
    let last = store.blocks() - 1;
    read(&mut store, last, &mut block)?;
    match Superblock::decode(&block) {
        Ok(sb) if sb.copy_block() == last => Ok((sb, Some(first))),
        Ok(_) => Err(Error::Inconsistent(vec![format!(
            "block 0: {first}; the copy in the last block is for another size"
        )])),
        Err(copy) => Err(Error::Inconsistent(vec![format!(
            "block 0: {first}; the copy in the last block: {copy}"
        )])),
    }
}

/// Checks `path` (fsck, read-only: nothing is repaired): the mount's checks
/// (superblock, journal, bitmap and inode table blocks), then every inode,
/// directory and extent, and the bitmap against what is used. The
/// superblock if clean; otherwise every problem, a line each. A bad block 0
/// with a good copy mounts, and is reported.
pub fn check(path: &Path) -> Result<Superblock> {
    let store = FileStore::open(path, false).map_err(io_at(path))?;
    let device = store.blocks();
    if device == 0 {
        return Err(Error::Inconsistent(vec![
            "the image is smaller than a block: not an AetherOS disk".into(),
        ]));
    }
    let (mut fs, report) = Fs::mount(store).map_err(|e| Error::Inconsistent(vec![e.to_string()]))?;
    let sb = *fs.superblock();
    let mut problems = Vec::new();
    if report.used_copy {
        let mut block = [0u8; BLOCK_SIZE];
        let why = match fs.store().read(0, &mut block) {
            Ok(()) => Superblock::decode(&block).err().map_or("bad".into(), |e| e.to_string()),
            Err(_) => "unreadable".to_string(),
        };
        problems.push(format!("block 0: {why} (the superblock's copy is good)"));
    }
    if device != sb.total_blocks {
        problems.push(format!(
            "the image has {device} blocks, the file system {}: the superblock's copy is not in the last block",
            sb.total_blocks
        ));
    }
    problems.extend(fs.check());
    if problems.is_empty() {
        Ok(sb)
    } else {
        Err(Error::Inconsistent(problems))
    }
}

/// Mounts `image` (read-only unless `writable`). Give it back through
/// [`Fs::commit`] if anything changed.
pub fn mount(image: &Path, writable: bool) -> Result<Fs<FileStore>> {
    let store = FileStore::open(image, writable).map_err(io_at(image))?;
    if store.blocks() == 0 {
        return Err(Error::Mount(format!(
            "{}: smaller than a block: not an AetherOS disk",
            image.display()
        )));
    }
    Fs::mount(store)
        .map(|(fs, _)| fs)
        .map_err(|e| Error::Mount(format!("{}: does not mount: {e}", image.display())))
}

fn commit(fs: &mut Fs<FileStore>) -> Result<()> {
    fs.commit().map_err(|e| Error::Fs(e, "commit".into()))
}

/// A failed device request's host error in place of aethfs's bare
/// [`FsError::Io`].
fn explain(e: Error, fs: &mut Fs<FileStore>, image: &Path) -> Error {
    match e {
        Error::Fs(FsError::Io, what) => match fs.store().take_error() {
            Some(io) => Error::Io(image.display().to_string(), io),
            None => Error::Fs(FsError::Io, what),
        },
        e => e,
    }
}

/// Runs `op` on `image` mounted, and commits what it changed; on an error
/// nothing more is committed (what `op` left uncommitted is dropped).
fn with_fs<T>(image: &Path, writable: bool, op: impl FnOnce(&mut Fs<FileStore>) -> Result<T>) -> Result<T> {
    let mut fs = mount(image, writable)?;
    let done = op(&mut fs).and_then(|v| commit(&mut fs).map(|()| v));
    done.map_err(|e| explain(e, &mut fs, image))
}

/// What `path` in `image` is.
pub fn stat(image: &Path, path: &str) -> Result<Stat> {
    with_fs(image, false, |fs| {
        let ino = fs.lookup(path).map_err(fs_at(path))?;
        fs.stat(ino).map_err(fs_at(path))
    })
}

/// The entries of directory `path` (in stored order) with what each is;
/// a file's own entry when `path` is a file.
pub fn ls(image: &Path, path: &str) -> Result<Vec<(DirEntry, Stat)>> {
    with_fs(image, false, |fs| {
        let ino = fs.lookup(path).map_err(fs_at(path))?;
        let st = fs.stat(ino).map_err(fs_at(path))?;
        let entries = match st.kind {
            FileKind::Dir => fs.readdir(ino).map_err(fs_at(path))?,
            FileKind::File => {
                let (parent, name) = split_parent(path).map_err(fs_at(path))?;
                let pino = fs.lookup(parent).map_err(fs_at(parent))?;
                let all = fs.readdir(pino).map_err(fs_at(parent))?;
                all.into_iter().filter(|e| e.name == name).collect()
            }
        };
        entries
            .into_iter()
            .map(|e| {
                let st = fs.stat(e.ino).map_err(fs_at(path))?;
                Ok((e, st))
            })
            .collect()
    })
}

/// File `path`'s bytes, all in memory (for small files; see [`cat_to`]).
pub fn cat(image: &Path, path: &str) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    cat_to(image, path, &mut data)?;
    Ok(data)
}

/// Writes file `path`'s bytes to `out`, [`CHUNK`] at a time; their count.
pub fn cat_to(image: &Path, path: &str, out: &mut impl Write) -> Result<u64> {
    with_fs(image, false, |fs| {
        let file = open_file(fs, path)?;
        read_out(fs, file, path, &mut |b| out.write_all(b), "the output")
    })
}

/// Copies host file `host_file` to `path` in `image`, creating it or
/// replacing what is there, [`CHUNK`] at a time (a file of any size, in
/// little memory). The data goes to [`PUT_TEMP`] first and is renamed into
/// place when complete, so a failure (a full disk) leaves the old file,
/// and a replaced file needs room for both until the rename. What the
/// file is then.
pub fn put(image: &Path, host_file: &Path, path: &str) -> Result<Stat> {
    let mut input = File::open(host_file).map_err(io_at(host_file))?;
    if input.metadata().map_err(io_at(host_file))?.is_dir() {
        return Err(Error::Io(
            host_file.display().to_string(),
            io::Error::new(io::ErrorKind::IsADirectory, "is a directory"),
        ));
    }
    with_fs(image, true, |fs| {
        // The destination is checked first: a bad path costs no copy.
        let (parent, _) = split_parent(path).map_err(fs_at(path))?;
        let pino = fs.lookup(parent).map_err(fs_at(parent))?;
        if fs.stat(pino).map_err(fs_at(parent))?.kind != FileKind::Dir {
            return Err(Error::Fs(FsError::NotDir, parent.into()));
        }
        match fs.lookup(path) {
            Ok(ino) if fs.stat(ino).map_err(fs_at(path))?.kind == FileKind::Dir => {
                return Err(Error::Fs(FsError::IsDir, path.into()));
            }
            Ok(_) | Err(FsError::NotFound) => {}
            Err(e) => return Err(Error::Fs(e, path.into())),
        }
        // A temporary file left by a put that was killed.
        match fs.unlink(PUT_TEMP) {
            Ok(()) | Err(FsError::NotFound) => {}
            Err(e) => return Err(Error::Fs(e, PUT_TEMP.into())),
        }
        write_new(fs, PUT_TEMP, &mut input, &host_file.display().to_string()).map_err(|e| match e {
            // The user asked for `path`, not the temporary file.
            Error::Fs(e, _) => Error::Fs(e, path.into()),
            e => e,
        })?;
        if let Err(e) = fs.rename(PUT_TEMP, path) {
            let _ = fs.unlink(PUT_TEMP);
            return Err(Error::Fs(e, path.into()));
        }
        let ino = fs.lookup(path).map_err(fs_at(path))?;
        fs.stat(ino).map_err(fs_at(path))
    })
}

/// Copies file `path` of `image` to host file `host_file` (created or
/// replaced); the bytes copied.
pub fn get(image: &Path, path: &str, host_file: &Path) -> Result<u64> {
    with_fs(image, false, |fs| {
        // Checked before the host file is created: a bad path leaves none.
        let file = open_file(fs, path)?;
        let mut out = File::create(host_file).map_err(io_at(host_file))?;
        let name = host_file.display().to_string();
        let n = read_out(fs, file, path, &mut |b| out.write_all(b), &name)?;
        out.sync_all().map_err(io_at(host_file))?;
        Ok(n)
    })
}

/// Creates directory `path`.
pub fn mkdir(image: &Path, path: &str) -> Result<()> {
    with_fs(image, true, |fs| {
        fs.create(path, FileKind::Dir).map(|_| ()).map_err(fs_at(path))
    })
}

/// Removes file `path` (its blocks freed) or an empty directory.
pub fn rm(image: &Path, path: &str) -> Result<()> {
    with_fs(image, true, |fs| fs.unlink(path).map_err(fs_at(path)))
}

/// Renames `from` to `to` (a file at `to` is replaced), atomically.
pub fn mv(image: &Path, from: &str, to: &str) -> Result<()> {
    with_fs(image, true, |fs| {
        fs.rename(from, to).map_err(|e| Error::Fs(e, format!("{from} -> {to}")))
    })
}

/// Space and inodes, total and free. (`read_only` is true: the image is
/// opened read-only to look.)
pub fn df(image: &Path) -> Result<FsStat> {
    with_fs(image, false, |fs| Ok(fs.statfs()))
}

/// The [`Checksum`] of file `path`'s bytes: what the guest's `probe` prints
/// for it.
pub fn checksum_file(image: &Path, path: &str) -> Result<u64> {
    let mut sum = Checksum::default();
    with_fs(image, false, |fs| {
        let file = open_file(fs, path)?;
        read_out(
            fs,
            file,
            path,
            &mut |b| {
                sum.add(b);
                Ok(())
            },
            "the checksum",
        )
    })?;
    Ok(sum.value())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_disk_holds_the_sample_and_its_readme() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        let len = 3 * CHUNK as u64 + 12_345;
        default_disk_with(&image, 64 << 20, len).unwrap();
        assert_eq!(checksum_file(&image, SAMPLE_PATH).unwrap(), sample_checksum(len));
        let data = cat(&image, SAMPLE_PATH).unwrap();
        let mut expected = vec![0u8; len as usize];
        sample_bytes(0, &mut expected);
        assert!(data == expected, "the sample's bytes differ");
        assert_eq!(stat(&image, SAMPLE_PATH).unwrap().extents, 1);
        let readme = String::from_utf8(cat(&image, SAMPLE_README_PATH).unwrap()).unwrap();
        assert!(readme.contains(&format!("{:016x}", sample_checksum(len))), "{readme}");
        assert!(readme.contains(&format!("{len} bytes")), "{readme}");
        check(&image).unwrap();
    }
}
