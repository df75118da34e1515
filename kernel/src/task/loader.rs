//! Program loading: a program from the boot image's archive becomes a new
//! address space with its segments, relocations, stack and arguments.
//! The ELF is validated by `kcore::elf` (hostile input: a bad file is an
//! error, never a panic).

use aether_abi::initrd::Archive;
use aether_abi::syscall::{ARG_MAX, ARGS_BLOCK_MAX, Errno};
use kcore::elf::LoadPlan;
use spin::Once;

use crate::mm::paging::{Flags, MapError};
use crate::mm::user::{AddressSpace, PAGE, USER_END, USER_START};

/// Where position-independent programs are loaded.
pub const PROGRAM_BASE: u64 = 0x40_0000;
/// The user stack: `STACK_PAGES` pages (256 KiB, mapped up front: framed
/// answers are values of several KiB) below `STACK_TOP`; the page below
/// them is never mapped (a guard: an overflow faults).
pub const STACK_TOP: u64 = 0x7fff_fff0_0000;
pub const STACK_PAGES: u64 = 64;
/// Most a process's heap may grow to.
pub const HEAP_MAX: u64 = 64 << 20;

static ARCHIVE: Once<Option<Archive<'static>>> = Once::new();

/// Registers the boot image's program archive (the bootloader's ramdisk).
pub fn init(ramdisk: Option<&'static [u8]>) {
    ARCHIVE.call_once(|| match ramdisk.map(Archive::parse) {
        Some(Ok(a)) => {
            log::info!("{} programs in the boot image", a.len());
            Some(a)
        }
        Some(Err(e)) => {
            log::error!("boot image program archive: {e}; no programs");
            None
        }
        None => {
            log::error!("no program archive in the boot image");
            None
        }
    });
}

/// A loaded program, ready to enter.
pub struct Loaded {
    pub space: AddressSpace,
    pub entry: u64,
    pub stack_pointer: u64,
    /// `rdi, rsi, rdx` for `_start`: argument block, its length, the count.
    pub args: [u64; 3],
    /// First heap address (the heap starts empty).
    pub heap_start: u64,
}

fn map_err(e: MapError) -> Errno {
    match e {
        MapError::OutOfFrames => Errno::NoMemory,
        _ => Errno::BadProgram,
    }
}

/// The ELF bytes of an archive entry: the entry itself, or, for a compressed
/// one (`aether_abi::initrd::lz4_wrapped`), its contents decompressed into
/// `buf`. A bad header or block is `BadProgram`, never a panic.
pub fn unpack<'a>(name: &str, stored: &'a [u8], buf: &'a mut alloc::vec::Vec<u8>) -> Result<&'a [u8], Errno> {
    match aether_abi::initrd::lz4_wrapped(stored) {
        None => Ok(stored),
        Some(Err(())) => {
            log::warn!("program '{name}': bad compressed entry header");
            Err(Errno::BadProgram)
        }
        Some(Ok((raw_len, block))) => {
            buf.clear();
            buf.try_reserve_exact(raw_len).map_err(|_| Errno::NoMemory)?;
            buf.resize(raw_len, 0);
            match lz4_flex::block::decompress_into(block, buf) {
                Ok(n) if n == raw_len => Ok(&buf[..]),
                other => {
                    log::warn!("program '{name}': does not decompress ({other:?})");
                    Err(Errno::BadProgram)
                }
            }
        }
    }
}

/// Loads `name` with `args` (the name is prepended as argument 0).
pub fn load(name: &str, args: &[&str]) -> Result<Loaded, Errno> {
    let archive = ARCHIVE.get().and_then(|a| a.as_ref()).ok_or(Errno::NoSuchProgram)?;
    let stored = archive.get(name).ok_or(Errno::NoSuchProgram)?.data;
    let mut unpacked = alloc::vec::Vec::new();
    let elf = unpack(name, stored, &mut unpacked)?;
    let plan = LoadPlan::parse(elf, PROGRAM_BASE, USER_START..STACK_TOP - (STACK_PAGES + 1) * PAGE).map_err(|e| {
        log::warn!("program '{name}': {e}");
        Errno::BadProgram
    })?;
    let mut space = AddressSpace::new().map_err(map_err)?;
    for seg in plan.segments() {
        let mut flags = Flags::empty();
        if seg.flags.write {
            flags |= Flags::WRITABLE;
        }
        if seg.flags.execute {
            flags |= Flags::EXECUTABLE;
        }
        let (first, end) = seg.page_range();
        let mut page = first;
        while page < end {
            space.map_zeroed(page, flags).map_err(map_err)?;
            page += PAGE;
        }
        space
            .fill(seg.vaddr, plan.segment_bytes(seg))
            .map_err(|_| Errno::BadProgram)?;
    }
    for r in plan.relocations() {
        space
            .fill(r.offset, &r.value.to_le_bytes())
            .map_err(|_| Errno::BadProgram)?;
    }

    let stack_bottom = STACK_TOP - STACK_PAGES * PAGE;
    let mut page = stack_bottom;
    while page < STACK_TOP {
        space.map_zeroed(page, Flags::WRITABLE).map_err(map_err)?;
        page += PAGE;
    }
    // The argument block at the top of the stack: each argument and a NUL.
    let mut block = [0u8; ARGS_BLOCK_MAX];
    let mut len = 0;
    let mut count = 0u64;
    for a in core::iter::once(name).chain(args.iter().copied()) {
        let bytes = a.as_bytes();
        if bytes.len() > ARG_MAX.max(aether_abi::syscall::NAME_MAX) || len + bytes.len() + 1 > block.len() {
            return Err(Errno::TooLarge);
        }
        block[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len() + 1;
        count += 1;
    }
    let block_at = (STACK_TOP - len as u64) & !15;
    space.write(block_at, &block[..len]).map_err(|_| Errno::NoMemory)?;
    // As if `_start` had been called: rsp + 8 is 16-byte aligned.
    let stack_pointer = block_at - 8;
    let heap_start = (plan.highest_address() + PAGE).next_multiple_of(PAGE);
    debug_assert!(heap_start < USER_END);
    Ok(Loaded {
        space,
        entry: plan.entry(),
        stack_pointer,
        args: [block_at, len as u64, count],
        heap_start,
    })
}
