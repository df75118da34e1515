//! [`FileStore`]: an image file as the block store aethfs mounts.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use aether_abi::disk::BLOCK_SIZE;
use aethfs::{Block, IoError, Store};

const BS: u64 = BLOCK_SIZE as u64;

/// An image file of whole 4 KiB blocks (a trailing partial block is not
/// part of the device). Reads and writes are positioned (`pread`/`pwrite`);
/// a run of blocks is one request.
pub struct FileStore {
    file: File,
    blocks: u64,
    read_only: bool,
    /// The host's reason for the last failed request: aethfs only learns
    /// that a request failed ([`IoError`]), the error message wants why.
    error: Option<io::Error>,
}

impl FileStore {
    /// Opens an existing image, read-only unless `writable`; locked, a
    /// writer alone, readers together.
    pub fn open(path: &Path, writable: bool) -> io::Result<FileStore> {
        let file = OpenOptions::new().read(true).write(writable).open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        lock(&file, writable)?;
        Ok(FileStore {
            file,
            blocks: meta.len() / BS,
            read_only: !writable,
            error: None,
        })
    }

    /// Creates (or empties) `path` as an image of `blocks` zero blocks (a
    /// sparse file: the zeros take no room on the host).
    pub fn create(path: &Path, blocks: u64) -> io::Result<FileStore> {
        // Emptied only once locked: an image in use is not clobbered.
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        lock(&file, true)?;
        file.set_len(0)?;
        file.set_len(blocks * BS)?;
        Ok(FileStore {
            file,
            blocks,
            read_only: false,
            error: None,
        })
    }

    /// Why the last request failed, if one did (taken: asked once).
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// Checks that `len` bytes from `block` lie on the device.
    fn in_range(&self, block: u64, len: usize) -> Result<(), IoError> {
        let blocks = (len as u64).div_ceil(BS);
        match block.checked_add(blocks) {
            Some(end) if end <= self.blocks => Ok(()),
            _ => Err(IoError),
        }
    }

    fn failed(&mut self, e: io::Error) -> IoError {
        self.error = Some(e);
        IoError
    }
}

/// Takes `file`'s advisory lock (`flock`): alone to write, shared to read,
/// so two tools never change one image at once, nor read it mid-change.
///
/// A lock held for a moment is waited for (200 ms at most): a process that
/// forks while this one holds the image open keeps the lock until its
/// child execs (a test harness starting QEMU beside a test's `mkfs` made a
/// `check` right after fail in CI).
fn lock(file: &File, writable: bool) -> io::Result<()> {
    for _ in 0..100 {
        let locked = if writable {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match locked {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => std::thread::sleep(std::time::Duration::from_millis(2)),
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::ResourceBusy,
        "in use by another aether-disk",
    ))
}

impl Store for FileStore {
    fn blocks(&self) -> u64 {
        self.blocks
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read(&mut self, block: u64, buf: &mut Block) -> Result<(), IoError> {
        self.read_run(block, buf)
    }

    fn write(&mut self, block: u64, buf: &Block) -> Result<(), IoError> {
        self.write_run(block, buf)
    }

    fn flush(&mut self) -> Result<(), IoError> {
        if self.read_only {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| self.failed(e))
    }

    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    fn read_run(&mut self, block: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.in_range(block, buf.len())?;
        self.file.read_exact_at(buf, block * BS).map_err(|e| self.failed(e))
    }

    fn write_run(&mut self, block: u64, data: &[u8]) -> Result<(), IoError> {
        if self.read_only {
            return Err(IoError);
        }
        self.in_range(block, data.len())?;
        self.file.write_all_at(data, block * BS).map_err(|e| self.failed(e))
    }
}
