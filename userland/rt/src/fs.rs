//! Files, over the framed [`nr::FS`] call (docs/abi.md, "Files"). Errors
//! are the file system's [`FsError`]; a failure of the call itself (a bad
//! frame or buffer, which these wrappers never make) comes back as
//! [`FsError::InvalidArgument`].

use aether_abi::fs::{
    CacheStats, DirEntry, FS_REQUEST_MAX, FS_RESPONSE_MAX, FsError, FsRequest, FsResponse, FsStat, MAP_DMA,
    MAP_PRIVATE, MAP_WRITE, O_APPEND, O_CREATE, O_READ, O_TRUNC, O_WRITE, Path, Stat,
};
use aether_abi::syscall::{self as abi, Errno, nr};
use alloc::vec;
use alloc::vec::Vec;

pub use aether_abi::fs::{self as fsabi, AIO_BATCH, AioOp, Cqe, FileKind, Sqe};

fn errno(e: Errno) -> FsError {
    match e {
        Errno::NoMemory => FsError::NoMemory,
        _ => FsError::InvalidArgument,
    }
}

/// One request, its answer decoded (`FsResponse::Err` as `Err`).
pub fn request(req: &FsRequest) -> Result<FsResponse, FsError> {
    let mut out = [0u8; FS_REQUEST_MAX];
    let bytes = abi::encode(req, &mut out).map_err(errno)?;
    let mut answer = vec![0u8; FS_RESPONSE_MAX];
    let n = crate::sys::framed(nr::FS, bytes, &mut answer).map_err(errno)?;
    match abi::decode(answer.get(..n).ok_or(FsError::InvalidArgument)?).map_err(errno)? {
        FsResponse::Err(e) => Err(e),
        ok => Ok(ok),
    }
}

fn path(p: &str) -> Result<Path, FsError> {
    Path::try_from(p).map_err(|_| FsError::NameTooLong)
}

fn ok(r: FsResponse) -> Result<(), FsError> {
    match r {
        FsResponse::Ok => Ok(()),
        _ => Err(FsError::InvalidArgument),
    }
}

/// An open file, closed on drop.
pub struct File {
    fd: u32,
    stat: Stat,
}

impl File {
    /// Opens with `O_*` flags.
    pub fn open_with(p: &str, flags: u32) -> Result<File, FsError> {
        match request(&FsRequest::Open { path: path(p)?, flags })? {
            FsResponse::Opened { fd, stat } => Ok(File { fd, stat }),
            _ => Err(FsError::InvalidArgument),
        }
    }

    pub fn open(p: &str) -> Result<File, FsError> {
        File::open_with(p, O_READ)
    }

    /// The whole disk, read-only (raw: what the file system stores).
    pub fn open_disk() -> Result<File, FsError> {
        match request(&FsRequest::OpenDisk)? {
            FsResponse::Opened { fd, stat } => Ok(File { fd, stat }),
            _ => Err(FsError::InvalidArgument),
        }
    }

    /// Created (or emptied) for writing.
    pub fn create(p: &str) -> Result<File, FsError> {
        File::open_with(p, O_WRITE | O_CREATE | O_TRUNC)
    }

    /// Created if missing; every write goes to the end.
    pub fn append(p: &str) -> Result<File, FsError> {
        File::open_with(p, O_WRITE | O_CREATE | O_APPEND)
    }

    pub fn fd(&self) -> u32 {
        self.fd
    }

    /// What `stat` said when it was opened.
    pub fn opened_stat(&self) -> Stat {
        self.stat
    }

    fn io(&self, write: bool, offset: Option<u64>, ptr: u64, len: usize) -> Result<usize, FsError> {
        let (fd, len) = (self.fd, len as u64);
        let req = if write {
            FsRequest::Write {
                fd,
                offset,
                buf: ptr,
                len,
            }
        } else {
            FsRequest::Read {
                fd,
                offset,
                buf: ptr,
                len,
            }
        };
        match request(&req)? {
            FsResponse::Done(n) => Ok(n as usize),
            _ => Err(FsError::InvalidArgument),
        }
    }

    /// Reads at the file position (0 at the end).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, FsError> {
        self.io(false, None, buf.as_mut_ptr() as u64, buf.len())
    }

    pub fn pread(&self, buf: &mut [u8], offset: u64) -> Result<usize, FsError> {
        self.io(false, Some(offset), buf.as_mut_ptr() as u64, buf.len())
    }

    pub fn write(&mut self, data: &[u8]) -> Result<usize, FsError> {
        self.io(true, None, data.as_ptr() as u64, data.len())
    }

    pub fn pwrite(&self, data: &[u8], offset: u64) -> Result<usize, FsError> {
        self.io(true, Some(offset), data.as_ptr() as u64, data.len())
    }

    pub fn stat(&self) -> Result<Stat, FsError> {
        match request(&FsRequest::Fstat { fd: self.fd })? {
            FsResponse::Stat(s) => Ok(s),
            _ => Err(FsError::InvalidArgument),
        }
    }

    /// The data and what it needs are on the disk when this returns.
    pub fn fsync(&self) -> Result<(), FsError> {
        ok(request(&FsRequest::Fsync { fd: self.fd })?)
    }

    /// Everything from the position to the end.
    pub fn read_to_end(&mut self) -> Result<Vec<u8>, FsError> {
        let mut out = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = self.read(&mut chunk)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&chunk[..n]);
        }
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = request(&FsRequest::Close { fd: self.fd });
    }
}

pub fn stat(p: &str) -> Result<Stat, FsError> {
    match request(&FsRequest::Stat { path: path(p)? })? {
        FsResponse::Stat(s) => Ok(s),
        _ => Err(FsError::InvalidArgument),
    }
}

/// Every entry of a directory.
pub fn read_dir(p: &str) -> Result<Vec<DirEntry>, FsError> {
    let path = path(p)?;
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        match request(&FsRequest::Readdir {
            path: path.clone(),
            start,
        })? {
            FsResponse::Dir { entries, next } => {
                out.extend(entries);
                match next {
                    Some(n) if n > start => start = n,
                    _ => return Ok(out),
                }
            }
            _ => return Err(FsError::InvalidArgument),
        }
    }
}

pub fn mkdir(p: &str) -> Result<(), FsError> {
    ok(request(&FsRequest::Mkdir { path: path(p)? })?)
}

pub fn unlink(p: &str) -> Result<(), FsError> {
    ok(request(&FsRequest::Unlink { path: path(p)? })?)
}

pub fn rename(from: &str, to: &str) -> Result<(), FsError> {
    ok(request(&FsRequest::Rename {
        from: path(from)?,
        to: path(to)?,
    })?)
}

pub fn sync() -> Result<(), FsError> {
    ok(request(&FsRequest::Sync)?)
}

pub fn statfs() -> Result<FsStat, FsError> {
    match request(&FsRequest::StatFs)? {
        FsResponse::FsStat(s) => Ok(s),
        _ => Err(FsError::InvalidArgument),
    }
}

pub fn cache_stats() -> Result<CacheStats, FsError> {
    match request(&FsRequest::CacheStats)? {
        FsResponse::Cache(s) => Ok(s),
        _ => Err(FsError::InvalidArgument),
    }
}

/// Empties the page cache (what is dirty is written back first).
pub fn drop_caches() -> Result<(), FsError> {
    ok(request(&FsRequest::DropCaches)?)
}

/// A mapping (`mmap`), unmapped on drop.
pub struct Mapping {
    addr: u64,
    len: usize,
    writable: bool,
}

impl Mapping {
    fn new(fd: Option<u32>, offset: u64, len: usize, flags: u32) -> Result<Mapping, FsError> {
        let req = FsRequest::Mmap {
            fd,
            offset,
            len: len as u64,
            flags,
        };
        match request(&req)? {
            FsResponse::Mapped { addr } => Ok(Mapping {
                addr,
                len,
                writable: flags & MAP_WRITE != 0,
            }),
            _ => Err(FsError::InvalidArgument),
        }
    }

    /// `len` bytes of `file` from `offset` (a multiple of 4096), shared and
    /// read-only: the page cache's own pages.
    pub fn file(file: &File, offset: u64, len: usize) -> Result<Mapping, FsError> {
        Mapping::new(Some(file.fd), offset, len, 0)
    }

    /// A private, writable copy-on-write mapping of `file`.
    pub fn file_private(file: &File, offset: u64, len: usize) -> Result<Mapping, FsError> {
        Mapping::new(Some(file.fd), offset, len, MAP_PRIVATE | MAP_WRITE)
    }

    /// `len` bytes of zeroed memory.
    pub fn anonymous(len: usize) -> Result<Mapping, FsError> {
        Mapping::new(None, 0, len, MAP_WRITE)
    }

    /// `len` bytes (at most `DMA_MAP_MAX`) of zeroed memory the device can
    /// fill directly: buffers for direct async reads.
    pub fn dma(len: usize) -> Result<Mapping, FsError> {
        Mapping::new(None, 0, len, MAP_WRITE | MAP_DMA)
    }

    pub fn addr(&self) -> u64 {
        self.addr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the kernel mapped `len` bytes at `addr` readable for this
        // process until the `Munmap` in `drop`; nothing in this process
        // writes them but through `as_mut_slice`, which takes `&mut self`.
        unsafe { core::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }

    /// `None` for a read-only mapping.
    pub fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        // SAFETY: as in `as_slice`, mapped writable (`MAP_WRITE`), and
        // `&mut self` makes the access unique.
        self.writable
            .then(|| unsafe { core::slice::from_raw_parts_mut(self.addr as *mut u8, self.len) })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let _ = request(&FsRequest::Munmap {
            addr: self.addr,
            len: self.len as u64,
        });
    }
}

/// Queues async requests; how many were taken (fewer when the queue is
/// full: collect completions, then submit the rest).
pub fn submit(entries: &[Sqe]) -> Result<usize, FsError> {
    let mut taken = 0;
    for chunk in entries.chunks(AIO_BATCH) {
        let batch = heapless::Vec::from_slice(chunk).map_err(|_| FsError::InvalidArgument)?;
        match request(&FsRequest::Submit { entries: batch })? {
            FsResponse::Submitted(n) => {
                taken += n as usize;
                if (n as usize) < chunk.len() {
                    break;
                }
            }
            _ => return Err(FsError::InvalidArgument),
        }
    }
    Ok(taken)
}

/// Completions: waits for at least `min` (0: does not wait) for
/// `timeout_ms` at most; also how many are still pending.
pub fn complete(min: u32, timeout_ms: u32) -> Result<(heapless::Vec<Cqe, AIO_BATCH>, u32), FsError> {
    match request(&FsRequest::Complete { min, timeout_ms })? {
        FsResponse::Completions { entries, pending } => Ok((entries, pending)),
        _ => Err(FsError::InvalidArgument),
    }
}
