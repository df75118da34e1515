//! Memory management, part of the hardware base: physical frames (bookkept
//! by `kcore::frames`), the kernel's page tables with a typed map/unmap API,
//! the growable kernel heap, and read-only windows onto physical memory.

pub mod frames;
pub mod heap;
pub mod kstack;
pub mod paging;
pub mod phys;
pub mod user;

use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use kcore::frames::Region;

#[derive(Debug)]
pub enum InitError {
    NoPhysicalMemoryMap,
    Frames(kcore::frames::FrameError),
    NoBitmapSpace,
    Paging(paging::MapError),
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::NoPhysicalMemoryMap => f.write_str("the bootloader did not map physical memory"),
            InitError::Frames(e) => write!(f, "frame allocator: {e}"),
            InitError::NoBitmapSpace => f.write_str("no usable region can hold the frame bitmap"),
            InitError::Paging(e) => write!(f, "paging: {e:?}"),
        }
    }
}

/// Brings up frames, paging and the heap, in that order.
pub fn init(regions: &'static MemoryRegions, physical_memory_offset: Option<u64>) -> Result<(), InitError> {
    let offset = physical_memory_offset.ok_or(InitError::NoPhysicalMemoryMap)?;
    phys::init(offset, regions.iter().map(|r| r.end).max().unwrap_or(0));
    let usable = || {
        regions
            .iter()
            .filter(|r| r.kind == MemoryRegionKind::Usable)
            .map(|r| Region::new(r.start, r.end))
    };
    frames::init(usable)?;
    log::debug!("frames up");
    paging::init(offset).map_err(InitError::Paging)?;
    log::debug!("paging up");
    heap::init().map_err(InitError::Paging)?;
    Ok(())
}
