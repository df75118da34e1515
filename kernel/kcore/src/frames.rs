//! Physical frame bookkeeping: a bitmap over the usable RAM the firmware
//! reported, one bit per 4 KiB frame (1 = in use or not RAM).
//!
//! The allocator does not touch the frames themselves; the kernel's `mm`
//! layer supplies the bitmap storage (carved from usable RAM at boot and then
//! [`FrameBitmap::reserve`]d) and maps what it allocates.

use core::fmt;

pub const FRAME_SIZE: u64 = 4096;
/// Most separate usable regions tracked (enough for any firmware map seen
/// under QEMU; more are reported as an error, not dropped).
pub const MAX_REGIONS: usize = 128;
/// Allocation starts here and wraps around: memory below it (legacy low
/// memory, where firmware and the bootloader ran) is used last. Under TCG,
/// the first write to a page that once held executed code costs tens of
/// microseconds (QEMU drops the translated code): mapping the first heap
/// megabyte from low memory took 10x longer (docs/benchmarks.md).
pub const PREFERRED_START: u64 = 16 << 20;

/// A half-open physical address range `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
}

impl Region {
    pub const fn new(start: u64, end: u64) -> Self {
        Region { start, end }
    }

    /// The whole frames inside the range: `(first frame, frame count)`.
    fn frames(&self) -> (u64, u64) {
        let first = self.start.div_ceil(FRAME_SIZE);
        let last = self.end / FRAME_SIZE;
        (first, last.saturating_sub(first))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    NoUsableMemory,
    TooManyRegions,
    /// The bitmap storage given holds fewer words than needed.
    StorageTooSmall {
        needed: usize,
        given: usize,
    },
    Unaligned(u64),
    /// The frame is not usable RAM (outside every usable region).
    NotUsable(u64),
    DoubleFree(u64),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::NoUsableMemory => f.write_str("no usable memory in the memory map"),
            FrameError::TooManyRegions => write!(f, "more than {MAX_REGIONS} usable regions"),
            FrameError::StorageTooSmall { needed, given } => {
                write!(f, "bitmap needs {needed} words, {given} given")
            }
            FrameError::Unaligned(a) => write!(f, "frame address {a:#x} is not 4 KiB aligned"),
            FrameError::NotUsable(a) => write!(f, "frame {a:#x} is not usable RAM"),
            FrameError::DoubleFree(a) => write!(f, "frame {a:#x} freed twice"),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Usable frames in the memory map.
    pub total: u64,
    pub used: u64,
    pub free: u64,
}

/// The span of frame numbers the bitmap must cover and its size in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub base_frame: u64,
    pub frames: u64,
    pub words: usize,
}

impl Layout {
    pub fn for_regions(regions: impl Iterator<Item = Region>) -> Result<Self, FrameError> {
        let (mut lo, mut hi) = (u64::MAX, 0);
        for r in regions {
            let (first, count) = r.frames();
            if count > 0 {
                lo = lo.min(first);
                hi = hi.max(first + count);
            }
        }
        if hi == 0 {
            return Err(FrameError::NoUsableMemory);
        }
        let frames = hi - lo;
        Ok(Layout {
            base_frame: lo,
            frames,
            words: frames.div_ceil(64) as usize,
        })
    }

    pub const fn bytes(&self) -> u64 {
        self.words as u64 * 8
    }
}

pub struct FrameBitmap<'a> {
    words: &'a mut [u64],
    layout: Layout,
    usable: [Region; MAX_REGIONS],
    regions: usize,
    total: u64,
    used: u64,
    /// Word index where the next search starts (next fit).
    hint: usize,
    /// Frame number where the next contiguous search starts (next fit: a
    /// cache allocating thousands of folios does not rescan what it took).
    contig_hint: u64,
}

impl<'a> FrameBitmap<'a> {
    /// Builds the bitmap over `regions` (usable RAM), all frames free.
    pub fn new(words: &'a mut [u64], regions: impl Iterator<Item = Region> + Clone) -> Result<Self, FrameError> {
        let layout = Layout::for_regions(regions.clone())?;
        if words.len() < layout.words {
            return Err(FrameError::StorageTooSmall {
                needed: layout.words,
                given: words.len(),
            });
        }
        let words = &mut words[..layout.words];
        words.fill(!0);
        let mut bitmap = FrameBitmap {
            words,
            layout,
            usable: [Region::default(); MAX_REGIONS],
            regions: 0,
            total: 0,
            used: 0,
            hint: 0,
            contig_hint: 0,
        };
        for r in regions {
            let (first, count) = r.frames();
            if count == 0 {
                continue;
            }
            if bitmap.regions == MAX_REGIONS {
                return Err(FrameError::TooManyRegions);
            }
            bitmap.usable[bitmap.regions] = Region::new(first * FRAME_SIZE, (first + count) * FRAME_SIZE);
            bitmap.regions += 1;
            let lo = (first - layout.base_frame) as usize;
            bitmap.total += bitmap.clear_range(lo, lo + count as usize);
        }
        let preferred = PREFERRED_START / FRAME_SIZE;
        if preferred > layout.base_frame && preferred < layout.base_frame + layout.frames {
            bitmap.hint = ((preferred - layout.base_frame) / 64) as usize;
        }
        Ok(bitmap)
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn stats(&self) -> FrameStats {
        FrameStats {
            total: self.total,
            used: self.used,
            free: self.total - self.used,
        }
    }

    /// Marks the usable frames overlapping `[start, end)` as used (for
    /// memory taken before the allocator existed). Returns how many frames
    /// changed state.
    pub fn reserve(&mut self, start: u64, end: u64) -> u64 {
        let mut changed = 0;
        let mut frame = start / FRAME_SIZE;
        while frame * FRAME_SIZE < end {
            if let Some(idx) = self.index_of_usable(frame)
                && !self.bit(idx)
            {
                self.set(idx);
                self.used += 1;
                changed += 1;
            }
            frame += 1;
        }
        changed
    }

    /// One free frame's physical address.
    pub fn alloc(&mut self) -> Option<u64> {
        let n = self.words.len();
        for step in 0..n {
            let w = (self.hint + step) % n;
            let word = self.words[w];
            if word != !0 {
                let idx = w * 64 + (!word).trailing_zeros() as usize;
                self.set(idx);
                self.used += 1;
                self.hint = w;
                return Some((self.layout.base_frame + idx as u64) * FRAME_SIZE);
            }
        }
        None
    }

    /// `count` physically contiguous free frames whose first frame number is
    /// a multiple of `align` (in frames, a power of two); returns the first
    /// frame's address. For DMA buffers and large mappings.
    pub fn alloc_contiguous(&mut self, count: u64, align: u64) -> Option<u64> {
        if count == 0 || !align.is_power_of_two() {
            return None;
        }
        // From where the last one ended, then from PREFERRED_START up (as
        // `alloc` does), then from the bottom.
        let preferred = (PREFERRED_START / FRAME_SIZE).max(self.layout.base_frame);
        let hint = self.contig_hint.max(preferred);
        self.alloc_contiguous_from(hint, count, align)
            .or_else(|| self.alloc_contiguous_from(preferred, count, align))
            .or_else(|| self.alloc_contiguous_from(self.layout.base_frame, count, align))
    }

    fn alloc_contiguous_from(&mut self, first_frame: u64, count: u64, align: u64) -> Option<u64> {
        let frames = self.layout.frames;
        let base = self.layout.base_frame;
        let mut start = first_frame.next_multiple_of(align).checked_sub(base)?;
        while start + count <= frames {
            // A whole word in use: past it at once.
            if start.is_multiple_of(64) && self.words[start as usize / 64] == !0 {
                start = (base + start + 64).next_multiple_of(align) - base;
                continue;
            }
            match (start..start + count).find(|&i| self.bit(i as usize)) {
                None => {
                    for i in start..start + count {
                        self.set(i as usize);
                    }
                    self.used += count;
                    self.contig_hint = base + start + count;
                    return Some((base + start) * FRAME_SIZE);
                }
                Some(busy) => start = (base + busy + 1).next_multiple_of(align) - base,
            }
        }
        None
    }

    /// Returns a frame from [`alloc`](Self::alloc) or
    /// [`alloc_contiguous`](Self::alloc_contiguous).
    pub fn free(&mut self, addr: u64) -> Result<(), FrameError> {
        if !addr.is_multiple_of(FRAME_SIZE) {
            return Err(FrameError::Unaligned(addr));
        }
        let idx = self
            .index_of_usable(addr / FRAME_SIZE)
            .ok_or(FrameError::NotUsable(addr))?;
        if !self.bit(idx) {
            return Err(FrameError::DoubleFree(addr));
        }
        self.clear(idx);
        self.used -= 1;
        self.hint = idx / 64;
        Ok(())
    }

    /// The address of the first free frame at or after frame index `from`
    /// (an index into the bitmap, as [`FrameBitmap::layout`] counts), and
    /// its index; `None` past the last.
    pub fn next_free(&self, from: u64) -> Option<(u64, u64)> {
        let mut i = from;
        while i < self.layout.frames {
            let w = self.words[(i / 64) as usize];
            if i.is_multiple_of(64) && w == !0 {
                i += 64;
                continue;
            }
            if w & (1 << (i % 64)) == 0 {
                return Some(((self.layout.base_frame + i) * FRAME_SIZE, i));
            }
            i += 1;
        }
        None
    }

    pub fn is_used(&self, addr: u64) -> Option<bool> {
        self.index_of_usable(addr / FRAME_SIZE).map(|i| self.bit(i))
    }

    fn index_of_usable(&self, frame: u64) -> Option<usize> {
        let addr = frame.checked_mul(FRAME_SIZE)?;
        self.usable[..self.regions]
            .iter()
            .any(|r| (r.start..r.end).contains(&addr))
            .then(|| (frame - self.layout.base_frame) as usize)
    }

    /// Clears bits `lo..hi` a word at a time; returns how many were set.
    fn clear_range(&mut self, lo: usize, hi: usize) -> u64 {
        let mut cleared = 0;
        let mut i = lo;
        while i < hi {
            let w = i / 64;
            let start = i % 64;
            let end = (hi - w * 64).min(64);
            let mask = if end - start == 64 {
                !0
            } else {
                ((1u64 << (end - start)) - 1) << start
            };
            cleared += (self.words[w] & mask).count_ones() as u64;
            self.words[w] &= !mask;
            i = w * 64 + end;
        }
        cleared
    }

    fn bit(&self, idx: usize) -> bool {
        self.words[idx / 64] & (1 << (idx % 64)) != 0
    }

    fn set(&mut self, idx: usize) {
        self.words[idx / 64] |= 1 << (idx % 64);
    }

    fn clear(&mut self, idx: usize) {
        self.words[idx / 64] &= !(1 << (idx % 64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn regions() -> [Region; 2] {
        // 1 MiB at 1 MiB, and 2 MiB + a ragged unaligned edge at 8 MiB.
        [Region::new(MIB, 2 * MIB), Region::new(8 * MIB + 100, 10 * MIB + 4095)]
    }

    #[test]
    fn layout_covers_usable_frames_only() {
        let l = Layout::for_regions(regions().into_iter()).unwrap();
        assert_eq!(l.base_frame, 256);
        assert_eq!(l.frames, 10 * 256 - 256);
        assert_eq!(l.words, (l.frames as usize).div_ceil(64));
        assert_eq!(
            Layout::for_regions([Region::new(0, 4095)].into_iter()),
            Err(FrameError::NoUsableMemory)
        );
    }

    #[test]
    fn counts_whole_frames_and_allocates_only_usable_ones() {
        let mut words = [0u64; 64];
        let mut b = FrameBitmap::new(&mut words, regions().into_iter()).unwrap();
        // 256 frames + (2 MiB - 1 partial frame at the start) = 256 + 511.
        assert_eq!(
            b.stats(),
            FrameStats {
                total: 767,
                used: 0,
                free: 767
            }
        );
        let mut seen = std::collections::BTreeSet::new();
        while let Some(f) = b.alloc() {
            assert!(f % FRAME_SIZE == 0);
            assert!(
                (MIB..2 * MIB).contains(&f) || (8 * MIB + 4096..10 * MIB).contains(&f),
                "{f:#x}"
            );
            assert!(seen.insert(f), "{f:#x} handed out twice");
        }
        assert_eq!(seen.len(), 767);
        assert_eq!(b.stats().free, 0);
    }

    #[test]
    fn allocation_prefers_memory_above_16_mib_then_wraps() {
        let mut words = [0u64; 512];
        let regions = [Region::new(MIB, 2 * MIB), Region::new(8 * MIB, 24 * MIB)];
        let mut b = FrameBitmap::new(&mut words, regions.into_iter()).unwrap();
        assert_eq!(b.alloc(), Some(PREFERRED_START));
        let mut last = 0;
        while let Some(f) = b.alloc() {
            last = f;
        }
        assert!(
            last < PREFERRED_START,
            "memory below 16 MiB is handed out last: {last:#x}"
        );
    }

    #[test]
    fn contiguous_allocation_prefers_memory_above_16_mib_then_falls_back() {
        let mut words = [0u64; 512];
        let regions = [Region::new(MIB, 2 * MIB), Region::new(8 * MIB, 24 * MIB)];
        let mut b = FrameBitmap::new(&mut words, regions.into_iter()).unwrap();
        assert_eq!(b.alloc_contiguous(16, 1), Some(PREFERRED_START));
        // 8 MiB no longer fits above 16 MiB (64 KiB of it is taken): found
        // lower down.
        let low = b.alloc_contiguous(2048, 1).unwrap();
        assert!((8 * MIB..PREFERRED_START).contains(&low), "{low:#x}");
    }

    #[test]
    fn contiguous_allocation_goes_on_from_the_last_and_wraps_to_freed_runs() {
        let mut words = [0u64; 512];
        let regions = [Region::new(16 * MIB, 17 * MIB)];
        let mut b = FrameBitmap::new(&mut words, regions.into_iter()).unwrap();
        // 256 frames: 16 runs of 16.
        let runs: [u64; 16] = core::array::from_fn(|_| b.alloc_contiguous(16, 1).unwrap());
        for w in runs.windows(2) {
            assert_eq!(w[1], w[0] + 16 * FRAME_SIZE);
        }
        assert_eq!(b.alloc_contiguous(16, 1), None);
        for i in 0..16 {
            b.free(runs[3] + i * FRAME_SIZE).unwrap();
        }
        // Past the end there is nothing: the search wraps to the freed run.
        assert_eq!(b.alloc_contiguous(16, 1), Some(runs[3]));
        assert_eq!(b.stats().free, 0);
    }

    #[test]
    fn next_free_walks_the_free_frames_in_order() {
        let mut words = [0u64; 64];
        let mut b = FrameBitmap::new(&mut words, regions().into_iter()).unwrap();
        let total = b.stats().free;
        let mut seen = 0;
        let mut at = 0;
        while let Some((addr, i)) = b.next_free(at) {
            assert_eq!(b.is_used(addr), Some(false));
            seen += 1;
            at = i + 1;
        }
        assert_eq!(seen, total);
        let first = b.alloc().unwrap();
        assert_ne!(b.next_free(0).map(|(a, _)| a), Some(first));
    }

    #[test]
    fn overlapping_regions_count_frames_once() {
        let mut words = [0u64; 64];
        let regions = [Region::new(MIB, 3 * MIB), Region::new(2 * MIB, 4 * MIB)];
        let b = FrameBitmap::new(&mut words, regions.into_iter()).unwrap();
        assert_eq!(b.stats().total, 3 * 256);
    }

    #[test]
    fn free_returns_frames_and_catches_misuse() {
        let mut words = [0u64; 64];
        let mut b = FrameBitmap::new(&mut words, regions().into_iter()).unwrap();
        let f = b.alloc().unwrap();
        assert_eq!(b.stats().used, 1);
        assert_eq!(b.free(f + 1), Err(FrameError::Unaligned(f + 1)));
        assert_eq!(b.free(4 * MIB), Err(FrameError::NotUsable(4 * MIB)));
        assert_eq!(b.free(f), Ok(()));
        assert_eq!(b.free(f), Err(FrameError::DoubleFree(f)));
        assert_eq!(b.stats().used, 0);
        assert_eq!(b.alloc(), Some(f), "next fit reuses the freed frame");
    }

    #[test]
    fn reserve_marks_only_usable_frames_once() {
        let mut words = [0u64; 64];
        let mut b = FrameBitmap::new(&mut words, regions().into_iter()).unwrap();
        assert_eq!(b.reserve(0, MIB + 2 * FRAME_SIZE), 2);
        assert_eq!(b.reserve(MIB, MIB + 3 * FRAME_SIZE), 1);
        assert_eq!(b.stats().used, 3);
        assert_eq!(b.is_used(MIB), Some(true));
        assert_eq!(b.is_used(MIB + 3 * FRAME_SIZE), Some(false));
        assert_eq!(b.is_used(5 * MIB), None);
    }

    #[test]
    fn contiguous_allocation_respects_alignment_and_holes() {
        let mut words = [0u64; 64];
        let mut b = FrameBitmap::new(&mut words, regions().into_iter()).unwrap();
        // 512 aligned frames (2 MiB) only fit in... nowhere: the second
        // region starts one frame late.
        assert_eq!(b.alloc_contiguous(512, 512), None);
        let a = b.alloc_contiguous(16, 16).unwrap();
        assert_eq!(a % (16 * FRAME_SIZE), 0);
        for i in 0..16 {
            assert_eq!(b.is_used(a + i * FRAME_SIZE), Some(true));
        }
        // A range spanning the gap between regions is never returned.
        let big = b.alloc_contiguous(300, 1).unwrap();
        assert!(big >= 8 * MIB, "{big:#x}");
        assert_eq!(b.stats().used, 316);
        assert_eq!(b.alloc_contiguous(0, 1), None);
        assert_eq!(b.alloc_contiguous(1, 3), None);
    }

    #[test]
    fn rejects_small_storage_and_too_many_regions() {
        let mut small = [0u64; 2];
        assert!(matches!(
            FrameBitmap::new(&mut small, regions().into_iter()),
            Err(FrameError::StorageTooSmall { given: 2, .. })
        ));
        let many: std::vec::Vec<_> = (0..MAX_REGIONS as u64 + 1)
            .map(|i| Region::new(i * 2 * FRAME_SIZE, i * 2 * FRAME_SIZE + FRAME_SIZE))
            .collect();
        let mut words = [0u64; 8];
        assert!(matches!(
            FrameBitmap::new(&mut words, many.into_iter()),
            Err(FrameError::TooManyRegions)
        ));
    }
}
