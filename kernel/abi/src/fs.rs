//! Files: the framed [`crate::syscall::nr::FS`] call (served by the kernel:
//! the page cache and mmap are kernel business), its errors and records,
//! shared by the kernel, the userland runtime and the host tool
//! (docs/abi.md, "Files"; the on-disk side is [`crate::disk`]).
//!
//! Paths are absolute (`/data/train.bin`), components separated by `/`;
//! a component is 1..=[`NAME_MAX`] bytes, not `.` or `..`, without NUL.
//! Data moves between the file and the caller's own memory: `Read` and
//! `Write` carry a user pointer and length, so a read is one copy from a
//! cache page (or none, by DMA, for direct reads).

use heapless::{String, Vec};
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

/// The longest name of one path component (the on-disk limit).
pub const NAME_MAX: usize = 255;
/// The longest path a request carries (two fit in one request: `Rename`).
pub const PATH_MAX: usize = 400;
/// Directory entries per `Readdir` answer.
pub const DIR_PAGE: usize = 8;
/// Files one process may have open at once.
pub const OPEN_MAX: usize = 64;

pub type Path = String<PATH_MAX>;

/// `Open` flags.
pub const O_READ: u32 = 1;
pub const O_WRITE: u32 = 2;
/// Create the file if it does not exist.
pub const O_CREATE: u32 = 4;
/// With `O_CREATE`: fail with [`FsError::Exists`] if it does.
pub const O_EXCL: u32 = 8;
/// Empty the file on open (needs `O_WRITE`).
pub const O_TRUNC: u32 = 16;
/// Every write goes to the end of the file.
pub const O_APPEND: u32 = 32;
pub const O_ALL: u32 = 63;

/// `Mmap` flags: pages may be written (anonymous memory, or a private
/// file mapping: copy-on-write, the file never changes).
pub const MAP_WRITE: u32 = 1;
/// A private file mapping (writes, if allowed, go to copies). Without it a
/// file mapping is shared and read-only: the page cache's own pages.
pub const MAP_PRIVATE: u32 = 2;
/// An anonymous mapping of physically contiguous memory the device can
/// read into directly: the buffers of direct async reads (io_uring's
/// registered buffers). At most [`DMA_MAP_MAX`]; mapped at once.
pub const MAP_DMA: u32 = 4;
pub const MAP_ALL: u32 = 7;
/// The most one `MAP_DMA` mapping may be (16 MiB).
pub const DMA_MAP_MAX: u64 = 16 << 20;

/// Entries per `Submit` or `Complete` call.
pub const AIO_BATCH: usize = 16;
/// Requests a process may have in flight.
pub const AIO_INFLIGHT_MAX: usize = 64;

/// One async request (a submission queue entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct Sqe {
    /// Given back in the completion.
    pub user_data: u64,
    pub op: AioOp,
    pub fd: u32,
    pub offset: u64,
    /// The caller's memory: `len` bytes at `buf`.
    pub buf: u64,
    pub len: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum AioOp {
    /// Through the page cache (done at once; the completion follows).
    Read,
    Write,
    /// Bypasses the cache: the device writes the caller's memory. `offset`
    /// and `len` in whole 512-byte sectors; into a `MAP_DMA` mapping the
    /// device writes straight into it, elsewhere through a bounce buffer.
    ReadDirect,
}

/// One completion: bytes moved, or why not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct Cqe {
    pub user_data: u64,
    pub result: Result<u64, FsError>,
}
/// The most one mapping may be (1 GiB).
pub const MAP_MAX: u64 = 1 << 30;

/// Why a file call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum FsError {
    /// No disk, or its file system was not mounted (the log says why).
    NoFileSystem,
    NotFound,
    Exists,
    NotDir,
    IsDir,
    NotEmpty,
    /// The disk is full (nothing already written is lost).
    NoSpace,
    /// The inode table is full.
    NoInodes,
    /// Out of memory for this request (buffers, mappings).
    NoMemory,
    /// A read-only disk (a descriptor opened without `O_WRITE` is `BadFd`).
    ReadOnly,
    /// A component longer than [`NAME_MAX`] or a path than [`PATH_MAX`].
    NameTooLong,
    /// A component that is empty, `.`, `..` or has a NUL; a relative path.
    InvalidPath,
    /// A file past the format's limits (extents, size).
    FileTooLarge,
    /// A metadata block failed its checks (the log names it).
    Corrupt,
    /// The device failed a request.
    Io,
    BadFd,
    /// [`OPEN_MAX`] files already open.
    TooManyOpen,
    /// The file is open or mapped (unlink, rename over it), mapped (a
    /// truncate, a write growing its mapped last folio), a `MAP_DMA`
    /// mapping still being read into (munmap), or a directory moved into
    /// itself.
    Busy,
    InvalidArgument,
}

impl FsError {
    pub const fn as_str(self) -> &'static str {
        match self {
            FsError::NoFileSystem => "no file system mounted",
            FsError::NotFound => "no such file or directory",
            FsError::Exists => "file exists",
            FsError::NotDir => "not a directory",
            FsError::IsDir => "is a directory",
            FsError::NotEmpty => "directory not empty",
            FsError::NoSpace => "no space left on the disk",
            FsError::NoInodes => "no free inodes",
            FsError::NoMemory => "out of memory",
            FsError::ReadOnly => "read-only",
            FsError::NameTooLong => "name too long",
            FsError::InvalidPath => "invalid path",
            FsError::FileTooLarge => "file too large",
            FsError::Corrupt => "corrupt metadata",
            FsError::Io => "I/O error",
            FsError::BadFd => "bad file descriptor",
            FsError::TooManyOpen => "too many open files",
            FsError::Busy => "busy",
            FsError::InvalidArgument => "invalid argument",
        }
    }
}

impl core::fmt::Display for FsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
}

/// What `stat` says of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct Stat {
    pub ino: u64,
    pub kind: FileKind,
    pub size: u64,
    /// Blocks allocated (4 KiB each).
    pub blocks: u64,
    pub links: u32,
    /// Contiguous runs the data is stored in.
    pub extents: u32,
    /// Unix milliseconds.
    pub mtime_ms: u64,
    pub ctime_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct DirEntry {
    pub name: String<NAME_MAX>,
    pub ino: u64,
    pub kind: FileKind,
}

/// The file system as a whole (`df`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct FsStat {
    pub block_size: u32,
    pub total_blocks: u64,
    pub free_blocks: u64,
    pub inodes: u64,
    pub free_inodes: u64,
    pub read_only: bool,
}

/// The page cache's counters since boot (`cache`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct CacheStats {
    /// Pages held now, and the most it may hold.
    pub pages: u64,
    pub capacity: u64,
    pub hits: u64,
    pub misses: u64,
    /// Folios read ahead of the reader, and of those, how many were used
    /// (by a read or a mapping fault) and how many evicted unused.
    pub readahead: u64,
    pub readahead_used: u64,
    pub readahead_wasted: u64,
    pub evictions: u64,
    /// Dirty pages now, and pages written back so far.
    pub dirty: u64,
    pub written_back: u64,
    /// Device requests issued for reads, and their pages.
    pub read_requests: u64,
    pub read_pages: u64,
    /// Page faults of file mappings served, and the pages they mapped.
    pub map_faults: u64,
    pub mapped_pages: u64,
}

/// A request on [`crate::syscall::nr::FS`]. (Paths inline: a request is
/// decoded once per call, and moved no further.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum FsRequest {
    /// Flags `O_*`; the answer is [`FsResponse::Opened`].
    Open {
        path: Path,
        flags: u32,
    },
    /// The whole disk as a read-only file (raw: what the file system
    /// stores, metadata included), for benchmarks; [`FsResponse::Opened`].
    OpenDisk,
    Close {
        fd: u32,
    },
    /// Reads up to `len` bytes at `offset` (or the file position, which
    /// then moves) into the caller's memory at `buf`:
    /// [`FsResponse::Done`] with the count, 0 at the end of the file.
    Read {
        fd: u32,
        offset: Option<u64>,
        buf: u64,
        len: u64,
    },
    /// Writes `len` bytes from `buf` at `offset` (or the position; the
    /// end with `O_APPEND`): [`FsResponse::Done`].
    Write {
        fd: u32,
        offset: Option<u64>,
        buf: u64,
        len: u64,
    },
    Stat {
        path: Path,
    },
    Fstat {
        fd: u32,
    },
    /// Entries of a directory from index `start`, [`DIR_PAGE`] at a time.
    Readdir {
        path: Path,
        start: u32,
    },
    Mkdir {
        path: Path,
    },
    /// A file or an empty directory.
    Unlink {
        path: Path,
    },
    /// Atomic: afterwards `to` names what `from` named (a file at `to` is
    /// replaced), even across a power cut.
    Rename {
        from: Path,
        to: Path,
    },
    /// The file's data and the metadata it needs are on the disk when this
    /// returns.
    Fsync {
        fd: u32,
    },
    /// Everything written so far is on the disk when this returns.
    Sync,
    StatFs,
    CacheStats,
    /// Writes back what is dirty, then empties the page cache (benchmarks
    /// of cold reads; Linux's `drop_caches`).
    DropCaches,
    /// Maps `len` bytes (rounded up to pages) of the file `fd` from
    /// `offset` (a multiple of 4096), or anonymous zeroed memory when `fd`
    /// is `None`; `MAP_*` flags. Pages come in on first touch (a file's
    /// straight from the page cache, no copy).
    Mmap {
        fd: Option<u32>,
        offset: u64,
        len: u64,
        flags: u32,
    },
    /// Unmaps a whole mapping (`addr` and `len` as `Mmap` gave and took).
    Munmap {
        addr: u64,
        len: u64,
    },
    /// Queues requests: [`FsResponse::Submitted`] with how many were taken
    /// (the rest: the queue is full; a bad entry completes with its error).
    Submit {
        entries: Vec<Sqe, AIO_BATCH>,
    },
    /// Completions: waits until at least `min` are there (0: never waits;
    /// no more than are pending), `timeout_ms` at most.
    Complete {
        min: u32,
        timeout_ms: u32,
    },
}

/// The kernel's answer.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum FsResponse {
    Opened {
        fd: u32,
        stat: Stat,
    },
    Done(u64),
    Stat(Stat),
    /// `next`: the index to ask for next, `None` at the end.
    Dir {
        entries: Vec<DirEntry, DIR_PAGE>,
        next: Option<u32>,
    },
    FsStat(FsStat),
    Cache(CacheStats),
    Mapped {
        addr: u64,
    },
    Submitted(u32),
    /// `pending`: requests still in flight or not yet collected.
    Completions {
        entries: Vec<Cqe, AIO_BATCH>,
        pending: u32,
    },
    Ok,
    Err(FsError),
}

/// The most an encoded request / response may be.
pub const FS_REQUEST_MAX: usize = <FsRequest as MaxSize>::POSTCARD_MAX_SIZE;
pub const FS_RESPONSE_MAX: usize = <FsResponse as MaxSize>::POSTCARD_MAX_SIZE;
const _: () = assert!(FS_REQUEST_MAX <= crate::syscall::REQUEST_MAX);

/// Checks one path component.
pub fn check_name(name: &[u8]) -> Result<(), FsError> {
    if name.len() > NAME_MAX {
        return Err(FsError::NameTooLong);
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&0) || name.contains(&b'/') {
        return Err(FsError::InvalidPath);
    }
    Ok(())
}

/// Splits an absolute path into its components (repeated `/` are one);
/// `/` itself has none.
pub fn components(path: &str) -> Result<impl Iterator<Item = &str>, FsError> {
    if path.len() > PATH_MAX {
        return Err(FsError::NameTooLong);
    }
    let rest = path.strip_prefix('/').ok_or(FsError::InvalidPath)?;
    for c in rest.split('/').filter(|c| !c.is_empty()) {
        check_name(c.as_bytes())?;
    }
    Ok(rest.split('/').filter(|c| !c.is_empty()))
}

/// A path's parent and last component: `/a/b` -> (`/a`, `b`); `/` has
/// none ([`FsError::InvalidPath`]).
pub fn split_parent(path: &str) -> Result<(&str, &str), FsError> {
    let _ = components(path)?;
    let trimmed = path.trim_end_matches('/');
    let at = trimmed.rfind('/').ok_or(FsError::InvalidPath)?;
    let name = &trimmed[at + 1..];
    if name.is_empty() {
        return Err(FsError::InvalidPath);
    }
    let parent = if at == 0 { "/" } else { &trimmed[..at] };
    Ok((parent, name))
}

/// The content checksum `probe` prints and the host tool computes for a
/// file: a 64-bit multiply-xor hash over the bytes as little-endian words,
/// the last partial word zero-padded, the length mixed in at the end. Cheap
/// under TCG (one multiply per 8 bytes), and the same however the bytes
/// are split into calls.
#[derive(Clone, Debug)]
pub struct Checksum {
    h: u64,
    len: u64,
    tail: [u8; 8],
    tail_len: usize,
}

impl Default for Checksum {
    fn default() -> Self {
        Checksum {
            h: 0x243F_6A88_85A3_08D3,
            len: 0,
            tail: [0; 8],
            tail_len: 0,
        }
    }
}

const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

impl Checksum {
    fn word(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(MIX).rotate_left(29);
    }

    pub fn add(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.tail_len > 0 {
            let take = (8 - self.tail_len).min(bytes.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&bytes[..take]);
            self.tail_len += take;
            bytes = &bytes[take..];
            if self.tail_len < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.tail));
            self.tail_len = 0;
        }
        let (words, rest) = bytes.as_chunks::<8>();
        for w in words {
            self.word(u64::from_le_bytes(*w));
        }
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    pub fn value(&self) -> u64 {
        let mut c = self.clone();
        if c.tail_len > 0 {
            c.tail[c.tail_len..].fill(0);
            c.word(u64::from_le_bytes(c.tail));
        }
        c.word(c.len);
        c.h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_and_refuse_what_they_must() {
        assert_eq!(components("/").unwrap().count(), 0);
        assert_eq!(
            components("//a///b/").unwrap().collect::<alloc::vec::Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(components("a/b").err(), Some(FsError::InvalidPath));
        assert_eq!(components("/a/../b").err(), Some(FsError::InvalidPath));
        assert_eq!(components("/a/./b").err(), Some(FsError::InvalidPath));
        assert_eq!(components("/a\0").err(), Some(FsError::InvalidPath));
        let long = alloc::format!("/{}", "x".repeat(256));
        assert_eq!(components(&long).err(), Some(FsError::NameTooLong));
        let ok = alloc::format!("/{}", "x".repeat(255));
        assert_eq!(components(&ok).unwrap().count(), 1);
        assert_eq!(split_parent("/a/b").unwrap(), ("/a", "b"));
        assert_eq!(split_parent("/a/").unwrap(), ("/", "a"));
        assert_eq!(split_parent("/").err(), Some(FsError::InvalidPath));
        assert_eq!(split_parent("/a/..").err(), Some(FsError::InvalidPath));
    }

    #[test]
    fn requests_round_trip_within_the_kernel_buffer() {
        let long: Path = Path::try_from("/".repeat(PATH_MAX).as_str()).unwrap();
        let req = FsRequest::Rename {
            from: long.clone(),
            to: long,
        };
        let mut buf = [0u8; crate::syscall::REQUEST_MAX];
        let bytes = postcard::to_slice(&req, &mut buf).unwrap();
        let back: FsRequest = postcard::from_bytes(bytes).unwrap();
        assert_eq!(back, req);
        assert!(postcard::from_bytes::<FsRequest>(&[0xff, 0xff]).is_err());
    }

    #[test]
    fn the_checksum_does_not_depend_on_how_the_bytes_are_split() {
        let data: alloc::vec::Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut whole = Checksum::default();
        whole.add(&data);
        for split in [1, 3, 7, 8, 9, 500, 999] {
            let mut parts = Checksum::default();
            for chunk in data.chunks(split) {
                parts.add(chunk);
            }
            assert_eq!(parts.value(), whole.value(), "split {split}");
        }
        // Length and content both count: a trailing zero changes it.
        let mut longer = Checksum::default();
        longer.add(&data);
        longer.add(&[0]);
        assert_ne!(longer.value(), whole.value());
        let mut swapped = data.clone();
        swapped.swap(0, 8);
        let mut other = Checksum::default();
        other.add(&swapped);
        assert_ne!(other.value(), whole.value());
    }
}
