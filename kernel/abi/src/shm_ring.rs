//! The link's shared-memory transport (docs/jobs.md, "The link"): the
//! layout of the `ivshmem` region and single-producer single-consumer byte
//! rings in it. The guest kernel and the host bridge both run this code
//! over their own mapping of the same memory, through [`Shared`].
//!
//! # Layout (all integers little-endian `u64`, at 8-byte aligned offsets)
//!
//! | offset | field |
//! | --- | --- |
//! | 0 | magic [`MAGIC`] |
//! | 8 | layout version ([`VERSION`]) |
//! | 16 | ring size in bytes (a power of two, the same for both rings) |
//! | 64 | ring 0 (guest -> host): `head` (bytes ever written) |
//! | 128 | ring 0: `tail` (bytes ever read) |
//! | 192 | ring 1 (host -> guest): `head` |
//! | 256 | ring 1: `tail` |
//! | [`DATA`] | ring 0's data, then ring 1's |
//!
//! `head` and `tail` only grow (wrapping at 2^64); the byte at stream
//! position `p` lives at `data + p % size`. The producer writes the bytes,
//! then publishes them by storing `head` (release); the consumer loads
//! `head` (acquire), copies, then stores `tail`. Each counter sits in its own
//! cache line. The peer is not trusted: a `head` or `tail` that makes the
//! fill level exceed the ring is reported ([`RingError::Corrupt`]), and every
//! index is reduced modulo the size, so nothing reads or writes out of the
//! region whatever the other side stores.

/// First word of an initialised region: "AETHSHM" + layout version 1.
pub const MAGIC: u64 = u64::from_le_bytes(*b"AETHSHM1");
pub const VERSION: u64 = 1;
/// Where ring data starts (one page of header).
pub const DATA: usize = 4096;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_SIZE: usize = 16;
const OFF_HEAD: [usize; 2] = [64, 192];
const OFF_TAIL: [usize; 2] = [128, 256];

/// A mapping of the shared region, as each side has it. Offsets are from
/// the region's start; implementations check nothing (the ring code keeps
/// every access inside [`Shared::size`]).
pub trait Shared {
    /// The region's size in bytes.
    fn size(&self) -> usize;
    /// An aligned 8-byte load with acquire ordering.
    fn load(&self, off: usize) -> u64;
    /// An aligned 8-byte store with release ordering.
    fn store(&self, off: usize, value: u64);
    fn read(&self, off: usize, dst: &mut [u8]);
    fn write(&self, off: usize, src: &[u8]);
}

/// Which ring: the direction of the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    GuestToHost = 0,
    HostToGuest = 1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// No initialised region (magic or version wrong).
    NotInitialised,
    /// The region is too small for two rings of at least one page.
    TooSmall,
    /// The peer's counters are inconsistent (fill level above the size).
    Corrupt { head: u64, tail: u64 },
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RingError::NotInitialised => f.write_str("shared region not initialised"),
            RingError::TooSmall => f.write_str("shared region too small"),
            RingError::Corrupt { head, tail } => write!(f, "ring counters corrupt: head {head}, tail {tail}"),
        }
    }
}

/// The ring size that fits a region of `len` bytes: the largest power of
/// two with two of them after the header page.
pub fn ring_size_for(len: usize) -> Result<usize, RingError> {
    let room = len.checked_sub(DATA).ok_or(RingError::TooSmall)? / 2;
    if room < 4096 {
        return Err(RingError::TooSmall);
    }
    Ok(1usize << (usize::BITS - 1 - room.leading_zeros()))
}

/// Lays out an empty region (the guest does this once at start; the host
/// then attaches). Both rings start empty.
pub fn initialise(mem: &impl Shared) -> Result<usize, RingError> {
    let size = ring_size_for(mem.size())?;
    for ring in 0..2 {
        mem.store(OFF_HEAD[ring], 0);
        mem.store(OFF_TAIL[ring], 0);
    }
    mem.store(OFF_SIZE, size as u64);
    mem.store(OFF_VERSION, VERSION);
    mem.store(OFF_MAGIC, MAGIC);
    Ok(size)
}

/// Checks an initialised region and returns its ring size.
pub fn attach(mem: &impl Shared) -> Result<usize, RingError> {
    if mem.size() < DATA || mem.load(OFF_MAGIC) != MAGIC || mem.load(OFF_VERSION) != VERSION {
        return Err(RingError::NotInitialised);
    }
    let size = mem.load(OFF_SIZE);
    let fits = size
        .checked_mul(2)
        .and_then(|both| both.checked_add(DATA as u64))
        .is_some_and(|end| end <= mem.size() as u64);
    if !size.is_power_of_two() || size < 4096 || !fits {
        return Err(RingError::NotInitialised);
    }
    Ok(size as usize)
}

/// One side's handle on one ring.
#[derive(Clone, Copy, Debug)]
struct Ring {
    index: usize,
    data: usize,
    size: usize,
}

impl Ring {
    fn new(dir: Direction, size: usize) -> Self {
        let index = dir as usize;
        Ring {
            index,
            data: DATA + index * size,
            size,
        }
    }

    /// `(head, tail, used)`, checked.
    fn counters(&self, mem: &impl Shared) -> Result<(u64, u64, usize), RingError> {
        let head = mem.load(OFF_HEAD[self.index]);
        let tail = mem.load(OFF_TAIL[self.index]);
        let used = head.wrapping_sub(tail);
        if used > self.size as u64 {
            return Err(RingError::Corrupt { head, tail });
        }
        Ok((head, tail, used as usize))
    }

    /// Copies between `buf` and the ring bytes at stream position `pos`,
    /// in up to two pieces (the ring wraps).
    fn copy(&self, pos: u64, len: usize, mut piece: impl FnMut(usize, usize, usize)) {
        let start = (pos % self.size as u64) as usize;
        let first = len.min(self.size - start);
        piece(self.data + start, 0, first);
        if first < len {
            piece(self.data, first, len - first);
        }
    }
}

/// The writing end of a ring.
#[derive(Clone, Copy, Debug)]
pub struct Producer {
    ring: Ring,
}

impl Producer {
    pub fn new(dir: Direction, ring_size: usize) -> Self {
        Producer {
            ring: Ring::new(dir, ring_size),
        }
    }

    /// Writes as much of `bytes` as fits; returns how many (0 when full:
    /// backpressure, nothing is dropped).
    pub fn write(&self, mem: &impl Shared, bytes: &[u8]) -> Result<usize, RingError> {
        let (head, _, used) = self.ring.counters(mem)?;
        let n = bytes.len().min(self.ring.size - used);
        self.ring
            .copy(head, n, |off, at, len| mem.write(off, &bytes[at..at + len]));
        mem.store(OFF_HEAD[self.ring.index], head.wrapping_add(n as u64));
        Ok(n)
    }

    /// Room left, in bytes.
    pub fn free(&self, mem: &impl Shared) -> Result<usize, RingError> {
        Ok(self.ring.size - self.ring.counters(mem)?.2)
    }
}

/// The reading end of a ring.
#[derive(Clone, Copy, Debug)]
pub struct Consumer {
    ring: Ring,
}

impl Consumer {
    pub fn new(dir: Direction, ring_size: usize) -> Self {
        Consumer {
            ring: Ring::new(dir, ring_size),
        }
    }

    /// Reads up to `buf.len()` bytes; returns how many (0 when empty).
    pub fn read(&self, mem: &impl Shared, buf: &mut [u8]) -> Result<usize, RingError> {
        let (_, tail, used) = self.ring.counters(mem)?;
        let n = buf.len().min(used);
        self.ring
            .copy(tail, n, |off, at, len| mem.read(off, &mut buf[at..at + len]));
        mem.store(OFF_TAIL[self.ring.index], tail.wrapping_add(n as u64));
        Ok(n)
    }

    /// Bytes waiting.
    pub fn available(&self, mem: &impl Shared) -> Result<usize, RingError> {
        Ok(self.ring.counters(mem)?.2)
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    extern crate std;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
    use std::vec::Vec;

    /// Shared memory for tests: bytes as atomics, so two threads may use it.
    struct Mem {
        words: Vec<AtomicU64>,
        bytes: Vec<AtomicU8>,
    }

    impl Mem {
        fn new(len: usize) -> Arc<Self> {
            Arc::new(Mem {
                words: (0..DATA / 8).map(|_| AtomicU64::new(0)).collect(),
                bytes: (0..len).map(|_| AtomicU8::new(0)).collect(),
            })
        }
    }

    impl Shared for Mem {
        fn size(&self) -> usize {
            self.bytes.len()
        }
        fn load(&self, off: usize) -> u64 {
            self.words[off / 8].load(Ordering::Acquire)
        }
        fn store(&self, off: usize, value: u64) {
            self.words[off / 8].store(value, Ordering::Release)
        }
        fn read(&self, off: usize, dst: &mut [u8]) {
            for (i, b) in dst.iter_mut().enumerate() {
                *b = self.bytes[off + i].load(Ordering::Relaxed);
            }
        }
        fn write(&self, off: usize, src: &[u8]) {
            for (i, b) in src.iter().enumerate() {
                self.bytes[off + i].store(*b, Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn sizes_and_attach_checks() {
        assert_eq!(ring_size_for(4 << 20), Ok(1 << 20));
        assert_eq!(ring_size_for(DATA + 2 * 4096), Ok(4096));
        assert_eq!(ring_size_for(DATA + 4096), Err(RingError::TooSmall));
        assert_eq!(ring_size_for(100), Err(RingError::TooSmall));
        let mem = Mem::new(DATA + 2 * 8192);
        assert_eq!(attach(&*mem), Err(RingError::NotInitialised));
        assert_eq!(initialise(&*mem), Ok(8192));
        assert_eq!(attach(&*mem), Ok(8192));
        // A peer that claims a bigger ring than the region holds.
        mem.store(OFF_SIZE, 1 << 40);
        assert_eq!(attach(&*mem), Err(RingError::NotInitialised));
        mem.store(OFF_SIZE, 12288);
        assert_eq!(attach(&*mem), Err(RingError::NotInitialised), "not a power of two");
    }

    #[test]
    fn bytes_come_out_in_order_across_the_wrap_and_full_is_backpressure() {
        let mem = Mem::new(DATA + 2 * 4096);
        let size = initialise(&*mem).unwrap();
        let (p, c) = (
            Producer::new(Direction::GuestToHost, size),
            Consumer::new(Direction::GuestToHost, size),
        );
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let (mut sent, mut got) = (0, Vec::new());
        let mut buf = [0u8; 777];
        while got.len() < data.len() {
            sent += p.write(&*mem, &data[sent..(sent + 3000).min(data.len())]).unwrap();
            assert!(p.free(&*mem).unwrap() <= size);
            let n = c.read(&*mem, &mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, data);
        // Full: the writer gets 0, nothing is lost.
        let fill = [1u8; 5000];
        assert_eq!(p.write(&*mem, &fill).unwrap(), size);
        assert_eq!(p.write(&*mem, &fill).unwrap(), 0);
        assert_eq!(c.available(&*mem).unwrap(), size);
        // The other direction is independent.
        let back = Consumer::new(Direction::HostToGuest, size);
        assert_eq!(back.available(&*mem).unwrap(), 0);
    }

    #[test]
    fn corrupt_counters_are_errors_and_nothing_goes_out_of_bounds() {
        let mem = Mem::new(DATA + 2 * 4096);
        let size = initialise(&*mem).unwrap();
        let c = Consumer::new(Direction::HostToGuest, size);
        let p = Producer::new(Direction::HostToGuest, size);
        // The host claims more bytes than the ring holds.
        mem.store(OFF_HEAD[1], 1 << 20);
        let mut buf = [0u8; 64];
        assert_eq!(
            c.read(&*mem, &mut buf),
            Err(RingError::Corrupt { head: 1 << 20, tail: 0 })
        );
        assert!(p.write(&*mem, b"x").is_err());
        // Huge but consistent counters near the wrap of u64 are fine.
        mem.store(OFF_HEAD[1], u64::MAX - 2);
        mem.store(OFF_TAIL[1], u64::MAX - 2);
        assert_eq!(p.write(&*mem, b"abcdef").unwrap(), 6);
        assert_eq!(c.read(&*mem, &mut buf).unwrap(), 6);
        assert_eq!(&buf[..6], b"abcdef");
    }

    #[test]
    fn two_threads_stream_a_megabyte_through_a_small_ring() {
        let mem = Mem::new(DATA + 2 * 4096);
        let size = initialise(&*mem).unwrap();
        let data: Arc<Vec<u8>> = Arc::new((0..(1u32 << 20)).map(|i| (i ^ (i >> 9)) as u8).collect());
        let (m2, d2) = (mem.clone(), data.clone());
        let writer = std::thread::spawn(move || {
            let p = Producer::new(Direction::GuestToHost, size);
            let mut sent = 0;
            while sent < d2.len() {
                sent += p.write(&*m2, &d2[sent..(sent + 1500).min(d2.len())]).unwrap();
            }
        });
        let c = Consumer::new(Direction::GuestToHost, size);
        let mut got = Vec::with_capacity(data.len());
        let mut buf = [0u8; 1024];
        while got.len() < data.len() {
            let n = c.read(&*mem, &mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        writer.join().unwrap();
        assert!(got == *data, "stream differs");
    }
}
