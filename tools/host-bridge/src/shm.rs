//! The host's mapping of the link's shared-memory region: the file QEMU's
//! `memory-backend-file` keeps in `/dev/shm` (docs/jobs.md, "The link"),
//! mapped `MAP_SHARED` so that the guest's stores to the `ivshmem` BAR and
//! ours meet in the same pages.
//!
//! [`ShmRegion`] implements [`Shared`] for `aether_abi::shm_ring`: the
//! counters are `AtomicU64` loads (acquire) and stores (release) on the
//! mapped words, data moves as plain copies (the ring protocol hands each
//! byte range to one side at a time, ordered by the counters). Every access
//! is bounds-checked: an offset outside the mapping (or a misaligned
//! counter) is not a panic but a counted fault ([`ShmRegion::faults`]) that
//! loads zeros and drops stores; the ring code never makes one.
//!
//! What no check can prevent: the file being truncated under the mapping
//! (an access then raises SIGBUS). QEMU never shrinks its backing file.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use aether_abi::shm_ring::{DATA, Shared};

/// The smallest region a ring pair fits in (a header page and two rings of
/// one page; see `shm_ring::ring_size_for`).
pub const REGION_MIN: usize = DATA + 2 * 4096;

/// A shared mapping of a whole file.
pub struct ShmRegion {
    ptr: NonNull<u8>,
    len: usize,
    /// Accesses refused for their offset.
    faults: AtomicU64,
}

// SAFETY: the mapping is plain memory shared with another process anyway;
// every access goes through atomics (counters) or through copies whose
// ranges the ring protocol gives to one side at a time. Nothing in the
// struct is tied to a thread.
unsafe impl Send for ShmRegion {}
// SAFETY: as above: `&ShmRegion` only offers atomic loads/stores and
// bounds-checked copies; `faults` is atomic.
unsafe impl Sync for ShmRegion {}

impl ShmRegion {
    /// Maps an existing file (QEMU's `mem-path`) at its current size, which
    /// must be at least [`REGION_MIN`].
    pub fn open(path: &Path) -> io::Result<ShmRegion> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        let len = usize::try_from(len).map_err(|_| io::Error::other("region too large"))?;
        Self::map(&file, len)
    }

    /// Creates (or truncates) `path` as a zeroed region of `len` bytes and
    /// maps it (tests, and a bridge started before QEMU).
    pub fn create(path: &Path, len: usize) -> io::Result<ShmRegion> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len(len as u64)?;
        Self::map(&file, len)
    }

    fn map(file: &File, len: usize) -> io::Result<ShmRegion> {
        if len < REGION_MIN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("shared region of {len} bytes, at least {REGION_MIN} needed"),
            ));
        }
        // SAFETY: a new mapping (addr null: the kernel chooses) of `len`
        // bytes of a file we opened read-write; nothing of ours is
        // overwritten. The mapping outlives the descriptor (closed when
        // `file` drops), as mmap(2) specifies.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(ShmRegion {
            ptr,
            len,
            faults: AtomicU64::new(0),
        })
    }

    /// Accesses refused because their offset was outside the region (or a
    /// counter was misaligned). Zero unless something is broken.
    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }

    /// The range `off..off + len` if it lies inside the mapping.
    fn check(&self, off: usize, len: usize) -> bool {
        let ok = off.checked_add(len).is_some_and(|end| end <= self.len);
        if !ok {
            self.faults.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// The counter at `off`, if `off` is an aligned word inside the mapping.
    fn word(&self, off: usize) -> Option<&AtomicU64> {
        if off % 8 != 0 {
            self.faults.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if !self.check(off, 8) {
            return None;
        }
        // SAFETY: `off + 8 <= len`, the mapping is page aligned so
        // `ptr + off` is 8-byte aligned, the memory stays mapped for the
        // lifetime of `&self`, and it is only ever accessed as an atomic
        // word by us (the peer uses aligned 8-byte accesses too).
        Some(unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(off).cast::<u64>()) })
    }
}

impl Drop for ShmRegion {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `map`; no reference into it
        // outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

impl Shared for ShmRegion {
    fn size(&self) -> usize {
        self.len
    }

    fn load(&self, off: usize) -> u64 {
        self.word(off).map_or(0, |w| w.load(Ordering::Acquire))
    }

    fn store(&self, off: usize, value: u64) {
        if let Some(w) = self.word(off) {
            w.store(value, Ordering::Release);
        }
    }

    fn read(&self, off: usize, dst: &mut [u8]) {
        if !self.check(off, dst.len()) {
            dst.fill(0);
            return;
        }
        // SAFETY: `off..off + dst.len()` is inside the mapping (checked);
        // `dst` is our own buffer, so the ranges cannot overlap. The ring
        // protocol gives these bytes to the reader alone until it stores
        // `tail` (the acquire load of `head` ordered the peer's writes).
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), dst.as_mut_ptr(), dst.len()) };
    }

    fn write(&self, off: usize, src: &[u8]) {
        if !self.check(off, src.len()) {
            return;
        }
        // SAFETY: `off..off + src.len()` is inside the mapping (checked);
        // `src` is our own buffer. The bytes are free space of the ring,
        // which the peer does not read until our release store of `head`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(off), src.len()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_abi::shm_ring::{self, Consumer, Direction, Producer};

    #[test]
    fn two_mappings_of_one_file_see_each_other_and_bad_offsets_are_faults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("region");
        let a = ShmRegion::create(&path, REGION_MIN * 2).unwrap();
        let b = ShmRegion::open(&path).unwrap();
        assert_eq!(b.size(), REGION_MIN * 2);
        assert!(shm_ring::attach(&b).is_err());
        let size = shm_ring::initialise(&a).unwrap();
        assert_eq!(shm_ring::attach(&b), Ok(size));
        let p = Producer::new(Direction::GuestToHost, size);
        let c = Consumer::new(Direction::GuestToHost, size);
        assert_eq!(p.write(&a, b"hello").unwrap(), 5);
        let mut buf = [0u8; 16];
        assert_eq!(c.read(&b, &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");

        assert_eq!(b.faults(), 0);
        assert_eq!(b.load(b.size()), 0);
        assert_eq!(b.load(3), 0);
        b.store(usize::MAX - 3, 1);
        let mut big = [1u8; 8];
        b.read(b.size() - 4, &mut big);
        assert_eq!(big, [0; 8]);
        b.write(usize::MAX, b"x");
        assert_eq!(b.faults(), 5);
        assert!(ShmRegion::create(&dir.path().join("small"), 100).is_err());
    }
}
