//! ELF64 user-program validation (System V gABI, x86-64 psABI): turns the
//! untrusted bytes of an `x86_64` executable into a [`LoadPlan`] the kernel
//! can map and copy without further checks.
//!
//! Accepted input is what rustc/lld emit for `x86_64-unknown-none`: a
//! static-PIE `ET_DYN` whose only dynamic relocations are
//! `R_X86_64_RELATIVE`, or a non-PIE `ET_EXEC`. Everything is read by hand
//! with bounds-checked slicing and checked arithmetic; malformed input gives
//! an [`ElfError`], never a panic.
//!
//! What [`LoadPlan::parse`] guarantees on success:
//! - between 1 and [`MAX_SEGMENTS`] non-empty `PT_LOAD` segments, each with
//!   its file bytes inside the image, `file_size <= mem_size`, and no segment
//!   both writable and executable;
//! - every page of every segment lies inside the caller's user range, and no
//!   two segments touch the same 4 KiB page;
//! - the entry point lies inside an executable segment;
//! - (for `ET_DYN`) every dynamic relocation is `R_X86_64_RELATIVE` (or
//!   `R_X86_64_NONE`, skipped) and patches 8 bytes inside one writable
//!   segment. Relocation validation is eager: a bad relocation makes `parse`
//!   fail, so [`LoadPlan::relocations`] cannot.
//!
//! The kernel's order is: map every segment's pages, zero them, copy
//! [`LoadPlan::segment_bytes`] to `vaddr`, then apply the relocations (a
//! relocation may patch a segment's zero-filled tail), then apply the final
//! page permissions.
//!
//! Program header types other than `PT_LOAD`, `PT_DYNAMIC` and `PT_INTERP`
//! (`PT_NOTE`, `PT_PHDR`, `PT_TLS`, `PT_GNU_STACK`, `PT_GNU_RELRO`, ...) are
//! ignored. `ET_EXEC` images are loaded at their link addresses and their
//! `PT_DYNAMIC`, if any, is not read.

use core::fmt;
use core::ops::Range;

pub const PAGE_SIZE: u64 = 4096;
/// Most `PT_LOAD` segments a plan holds.
pub const MAX_SEGMENTS: usize = 16;

const EHDR_LEN: usize = 64;
const PHDR_LEN: usize = 56;
const DYN_LEN: usize = 16;
const RELA_LEN: usize = 24;

const MAGIC: [u8; 4] = [0x7F, b'E', b'L', b'F'];
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EV_CURRENT: u8 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
/// `e_phnum` value meaning "the real count is in section header 0".
const PN_XNUM: u16 = 0xFFFF;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;

const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

const DT_NULL: u64 = 0;
const DT_PLTRELSZ: u64 = 2;
const DT_RELA: u64 = 7;
const DT_RELASZ: u64 = 8;
const DT_RELAENT: u64 = 9;
const DT_REL: u64 = 17;
const DT_RELSZ: u64 = 18;
const DT_RELENT: u64 = 19;
const DT_PLTREL: u64 = 20;
const DT_JMPREL: u64 = 23;
const DT_RELRSZ: u64 = 35;
const DT_RELR: u64 = 36;
const DT_RELRENT: u64 = 37;

const R_X86_64_NONE: u32 = 0;
const R_X86_64_RELATIVE: u32 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than an ELF64 header.
    TooShort,
    BadMagic,
    NotElf64,
    NotLittleEndian,
    /// `e_ident[EI_VERSION]` or `e_version` is not 1.
    BadVersion,
    NotX86_64,
    /// `e_type` is neither `ET_EXEC` nor `ET_DYN`, or the image wants an
    /// interpreter (`PT_INTERP`).
    NotExecutable,
    /// `e_ehsize` is not 64 or `e_phentsize` is not 56.
    BadHeaderSize,
    ProgramHeadersOutOfBounds,
    /// More than [`MAX_SEGMENTS`] non-empty `PT_LOAD`s (or `e_phnum` is
    /// `PN_XNUM`).
    TooManySegments,
    NoLoadableSegments,
    /// A segment's (or `PT_DYNAMIC`'s) file bytes run past the end of the image.
    SegmentOutOfFile,
    FileSizeExceedsMemSize,
    /// `p_align` is not a power of two, `p_vaddr` and `p_offset` disagree
    /// modulo `p_align`, or the load base is not page aligned.
    Misaligned,
    WritableAndExecutable,
    /// Two `PT_LOAD`s touch the same 4 KiB page.
    OverlappingSegments,
    OutsideUserRange,
    EntryNotInExecutableSegment,
    /// Malformed dynamic section or relocation table description, or a
    /// relocation format this loader does not apply (`DT_REL`, `DT_RELR`).
    BadDynamic,
    /// A relocation of this type (neither `R_X86_64_RELATIVE` nor `NONE`).
    UnsupportedRelocation(u32),
    /// A relocation patches bytes outside every writable segment.
    RelocationOutOfRange,
    /// An address or size computation overflowed `u64`/`usize`.
    Overflow,
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ElfError::TooShort => "file too short for an ELF header",
            ElfError::BadMagic => "not an ELF file (bad magic)",
            ElfError::NotElf64 => "not a 64-bit ELF",
            ElfError::NotLittleEndian => "not little-endian",
            ElfError::BadVersion => "unknown ELF version",
            ElfError::NotX86_64 => "not an x86_64 binary",
            ElfError::NotExecutable => "not a static executable",
            ElfError::BadHeaderSize => "unexpected ELF or program header size",
            ElfError::ProgramHeadersOutOfBounds => "program headers outside the file",
            ElfError::TooManySegments => "too many loadable segments",
            ElfError::NoLoadableSegments => "no loadable segments",
            ElfError::SegmentOutOfFile => "segment data outside the file",
            ElfError::FileSizeExceedsMemSize => "segment file size exceeds its memory size",
            ElfError::Misaligned => "misaligned segment or load base",
            ElfError::WritableAndExecutable => "segment is both writable and executable",
            ElfError::OverlappingSegments => "segments share a page",
            ElfError::OutsideUserRange => "segment outside the user address range",
            ElfError::EntryNotInExecutableSegment => "entry point not in an executable segment",
            ElfError::BadDynamic => "malformed dynamic section",
            ElfError::UnsupportedRelocation(t) => return write!(f, "unsupported relocation type {t}"),
            ElfError::RelocationOutOfRange => "relocation outside a writable segment",
            ElfError::Overflow => "address arithmetic overflow",
        };
        f.write_str(s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentFlags {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

/// One `PT_LOAD` segment: `file_size` bytes from `file_offset` go to
/// `vaddr`, the rest of `mem_size` is zero-filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Virtual address, with the load base already added.
    pub vaddr: u64,
    pub mem_size: u64,
    pub file_offset: u64,
    pub file_size: u64,
    pub flags: SegmentFlags,
}

impl Segment {
    const EMPTY: Segment = Segment {
        vaddr: 0,
        mem_size: 0,
        file_offset: 0,
        file_size: 0,
        flags: SegmentFlags {
            read: false,
            write: false,
            execute: false,
        },
    };

    /// `(first page address, end page address)`, the end exclusive: the pages
    /// the segment touches. Exact for every segment of a [`LoadPlan`]; for a
    /// hand-built segment whose end does not fit in `u64` the end saturates
    /// at the last page.
    pub fn page_range(&self) -> (u64, u64) {
        self.checked_page_range()
            .unwrap_or((page_floor(self.vaddr), page_floor(u64::MAX)))
    }

    fn checked_page_range(&self) -> Option<(u64, u64)> {
        let end = self
            .vaddr
            .checked_add(self.mem_size)?
            .checked_next_multiple_of(PAGE_SIZE)?;
        Some((page_floor(self.vaddr), end))
    }

    /// Whether `[addr, addr + len)` lies inside `[vaddr, vaddr + mem_size)`.
    fn contains_range(&self, addr: u64, len: u64) -> bool {
        let (Some(end), Some(seg_end)) = (addr.checked_add(len), self.vaddr.checked_add(self.mem_size)) else {
            return false;
        };
        addr >= self.vaddr && end <= seg_end
    }
}

fn page_floor(addr: u64) -> u64 {
    addr & !(PAGE_SIZE - 1)
}

/// One `R_X86_64_RELATIVE` fix-up: write `value` as a little-endian `u64`
/// at virtual address `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relocation {
    /// Virtual address to patch, with the load base added.
    pub offset: u64,
    /// Load base plus addend.
    pub value: u64,
}

/// A validated ELF image: what to map where, and what to patch.
#[derive(Clone, Debug)]
pub struct LoadPlan<'a> {
    bytes: &'a [u8],
    base: u64,
    entry: u64,
    segments: [Segment; MAX_SEGMENTS],
    len: usize,
    /// `DT_RELA` and `DT_JMPREL` tables (already validated), possibly empty.
    rela: [&'a [u8]; 2],
}

/// Fields of a program header that the loader uses.
#[derive(Clone, Copy)]
struct Phdr {
    p_type: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

fn field<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    let end = off.checked_add(N)?;
    <[u8; N]>::try_from(b.get(off..end)?).ok()
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    field(b, off).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    field(b, off).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    field(b, off).map(u64::from_le_bytes)
}

fn to_usize(v: u64) -> Result<usize, ElfError> {
    usize::try_from(v).map_err(|_| ElfError::Overflow)
}

impl Phdr {
    fn read(raw: &[u8]) -> Result<Phdr, ElfError> {
        let get = |off| u64_at(raw, off).ok_or(ElfError::ProgramHeadersOutOfBounds);
        Ok(Phdr {
            p_type: u32_at(raw, 0).ok_or(ElfError::ProgramHeadersOutOfBounds)?,
            flags: u32_at(raw, 4).ok_or(ElfError::ProgramHeadersOutOfBounds)?,
            offset: get(8)?,
            vaddr: get(16)?,
            filesz: get(32)?,
            memsz: get(40)?,
            align: get(48)?,
        })
    }
}

/// The ELF header fields the loader uses, after validation.
struct Header {
    e_type: u16,
    entry: u64,
    phoff: u64,
    phnum: u16,
}

fn parse_header(bytes: &[u8]) -> Result<Header, ElfError> {
    let ident: [u8; 16] = field(bytes, 0).ok_or(ElfError::TooShort)?;
    if bytes.len() < EHDR_LEN {
        return Err(ElfError::TooShort);
    }
    if ident[..4] != MAGIC {
        return Err(ElfError::BadMagic);
    }
    if ident[4] != ELFCLASS64 {
        return Err(ElfError::NotElf64);
    }
    if ident[5] != ELFDATA2LSB {
        return Err(ElfError::NotLittleEndian);
    }
    let h16 = |off| u16_at(bytes, off).ok_or(ElfError::TooShort);
    let h64 = |off| u64_at(bytes, off).ok_or(ElfError::TooShort);
    if ident[6] != EV_CURRENT || u32_at(bytes, 20).ok_or(ElfError::TooShort)? != u32::from(EV_CURRENT) {
        return Err(ElfError::BadVersion);
    }
    if h16(18)? != EM_X86_64 {
        return Err(ElfError::NotX86_64);
    }
    let e_type = h16(16)?;
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(ElfError::NotExecutable);
    }
    if usize::from(h16(52)?) != EHDR_LEN || usize::from(h16(54)?) != PHDR_LEN {
        return Err(ElfError::BadHeaderSize);
    }
    let phnum = h16(56)?;
    if phnum == PN_XNUM {
        return Err(ElfError::TooManySegments);
    }
    Ok(Header {
        e_type,
        entry: h64(24)?,
        phoff: h64(32)?,
        phnum,
    })
}

/// A relocation table found through the dynamic section: link-time address
/// and byte size.
#[derive(Default)]
struct RelaDesc {
    vaddr: Option<u64>,
    size: Option<u64>,
}

/// Decodes one 24-byte `Elf64_Rela`: `Ok(None)` for `R_X86_64_NONE`.
fn decode_rela(raw: &[u8], base: u64) -> Result<Option<Relocation>, ElfError> {
    let (Some(r_offset), Some(info), Some(addend)) = (u64_at(raw, 0), u64_at(raw, 8), u64_at(raw, 16)) else {
        return Err(ElfError::BadDynamic);
    };
    // ELF64_R_TYPE: the low 32 bits of r_info.
    let r_type = (info & 0xFFFF_FFFF) as u32;
    match r_type {
        R_X86_64_NONE => Ok(None),
        R_X86_64_RELATIVE => {
            let offset = r_offset.checked_add(base).ok_or(ElfError::Overflow)?;
            let value = base.checked_add_signed(addend as i64).ok_or(ElfError::Overflow)?;
            Ok(Some(Relocation { offset, value }))
        }
        other => Err(ElfError::UnsupportedRelocation(other)),
    }
}

impl<'a> LoadPlan<'a> {
    /// Validates `bytes` as a user executable.
    ///
    /// `base` is added to every address of an `ET_DYN` image (it must be page
    /// aligned, else [`ElfError::Misaligned`]); it is ignored (treated as 0)
    /// for `ET_EXEC`. `user_range` is the `[lo, hi)` of allowed virtual
    /// addresses: every page of every segment must lie inside it.
    ///
    /// Relocations are validated here (eagerly), so a plan that parses has
    /// only applicable relocations.
    pub fn parse(bytes: &'a [u8], base: u64, user_range: Range<u64>) -> Result<Self, ElfError> {
        let hdr = parse_header(bytes)?;
        let base = if hdr.e_type == ET_DYN {
            if !base.is_multiple_of(PAGE_SIZE) {
                return Err(ElfError::Misaligned);
            }
            base
        } else {
            0
        };

        let phoff = to_usize(hdr.phoff)?;
        let table_len = usize::from(hdr.phnum).checked_mul(PHDR_LEN).ok_or(ElfError::Overflow)?;
        let table_end = phoff.checked_add(table_len).ok_or(ElfError::Overflow)?;
        let table = bytes.get(phoff..table_end).ok_or(ElfError::ProgramHeadersOutOfBounds)?;

        let mut plan = LoadPlan {
            bytes,
            base,
            entry: 0,
            segments: [Segment::EMPTY; MAX_SEGMENTS],
            len: 0,
            rela: [&[]; 2],
        };
        let mut dynamic = None;
        for raw in table.as_chunks::<PHDR_LEN>().0 {
            let ph = Phdr::read(raw)?;
            match ph.p_type {
                PT_LOAD => plan.add_load(&ph, &user_range)?,
                PT_DYNAMIC => {
                    if dynamic.replace(ph).is_some() {
                        return Err(ElfError::BadDynamic);
                    }
                }
                PT_INTERP => return Err(ElfError::NotExecutable),
                _ => {}
            }
        }
        if plan.len == 0 {
            return Err(ElfError::NoLoadableSegments);
        }

        plan.entry = hdr.entry.checked_add(base).ok_or(ElfError::Overflow)?;
        if !plan
            .segments()
            .iter()
            .any(|s| s.flags.execute && s.contains_range(plan.entry, 1))
        {
            return Err(ElfError::EntryNotInExecutableSegment);
        }

        if hdr.e_type == ET_DYN
            && let Some(d) = dynamic
        {
            plan.rela = plan.read_dynamic(&d)?;
            plan.validate_relocations()?;
        }
        Ok(plan)
    }

    /// The entry point, with the load base added.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// The non-empty `PT_LOAD` segments, in file order.
    pub fn segments(&self) -> &[Segment] {
        self.segments.get(..self.len).unwrap_or(&[])
    }

    /// The file bytes of `s` (`file_size` long). Empty if `s` does not
    /// describe bytes of this image (it cannot for a segment of this plan).
    pub fn segment_bytes(&self, s: &Segment) -> &'a [u8] {
        self.file_slice(s.file_offset, s.file_size).unwrap_or(&[])
    }

    /// The `R_X86_64_RELATIVE` fix-ups to apply after the segments are
    /// copied. Already validated by [`LoadPlan::parse`]: every one patches 8
    /// bytes inside a writable segment. Empty for `ET_EXEC` or an image
    /// without `PT_DYNAMIC`.
    pub fn relocations(&self) -> Relocations<'a> {
        let [current, next] = self.rela;
        Relocations {
            current,
            next,
            base: self.base,
        }
    }

    /// The end (exclusive, page aligned) of the highest segment page: a heap
    /// may start here.
    pub fn highest_address(&self) -> u64 {
        self.segments().iter().map(|s| s.page_range().1).max().unwrap_or(0)
    }

    fn file_slice(&self, offset: u64, size: u64) -> Option<&'a [u8]> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        self.bytes.get(start..end)
    }

    fn add_load(&mut self, ph: &Phdr, user_range: &Range<u64>) -> Result<(), ElfError> {
        if ph.filesz > ph.memsz {
            return Err(ElfError::FileSizeExceedsMemSize);
        }
        if ph.memsz == 0 {
            return Ok(());
        }
        let file_end = ph.offset.checked_add(ph.filesz).ok_or(ElfError::Overflow)?;
        if file_end > u64::try_from(self.bytes.len()).map_err(|_| ElfError::Overflow)? {
            return Err(ElfError::SegmentOutOfFile);
        }
        // p_align 0 and 1 both mean "no alignment constraint".
        if ph.align > 1 && (!ph.align.is_power_of_two() || ph.vaddr % ph.align != ph.offset % ph.align) {
            return Err(ElfError::Misaligned);
        }
        let flags = SegmentFlags {
            read: ph.flags & PF_R != 0,
            write: ph.flags & PF_W != 0,
            execute: ph.flags & PF_X != 0,
        };
        if flags.write && flags.execute {
            return Err(ElfError::WritableAndExecutable);
        }
        let seg = Segment {
            vaddr: ph.vaddr.checked_add(self.base).ok_or(ElfError::Overflow)?,
            mem_size: ph.memsz,
            file_offset: ph.offset,
            file_size: ph.filesz,
            flags,
        };
        let (first, end) = seg.checked_page_range().ok_or(ElfError::Overflow)?;
        if first < user_range.start || end > user_range.end {
            return Err(ElfError::OutsideUserRange);
        }
        for other in self.segments() {
            let (other_first, other_end) = other.page_range();
            if first < other_end && other_first < end {
                return Err(ElfError::OverlappingSegments);
            }
        }
        let slot = self.segments.get_mut(self.len).ok_or(ElfError::TooManySegments)?;
        *slot = seg;
        self.len += 1;
        Ok(())
    }

    /// Reads `PT_DYNAMIC` and returns the `DT_RELA` and `DT_JMPREL` tables.
    fn read_dynamic(&self, d: &Phdr) -> Result<[&'a [u8]; 2], ElfError> {
        d.offset.checked_add(d.filesz).ok_or(ElfError::Overflow)?;
        let entries = self.file_slice(d.offset, d.filesz).ok_or(ElfError::SegmentOutOfFile)?;

        let mut rela = RelaDesc::default();
        let mut plt = RelaDesc::default();
        let mut relaent = None;
        let mut pltrel = None;
        let mut terminated = false;
        for e in entries.as_chunks::<DYN_LEN>().0 {
            let (Some(tag), Some(val)) = (u64_at(e, 0), u64_at(e, 8)) else {
                return Err(ElfError::BadDynamic);
            };
            let slot = match tag {
                DT_NULL => {
                    terminated = true;
                    break;
                }
                DT_RELA => &mut rela.vaddr,
                DT_RELASZ => &mut rela.size,
                DT_RELAENT => &mut relaent,
                DT_JMPREL => &mut plt.vaddr,
                DT_PLTRELSZ => &mut plt.size,
                DT_PLTREL => &mut pltrel,
                // Relocation formats this loader does not apply: refuse
                // rather than leave the program half-relocated.
                DT_REL | DT_RELSZ | DT_RELENT | DT_RELR | DT_RELRSZ | DT_RELRENT => return Err(ElfError::BadDynamic),
                _ => continue,
            };
            if slot.replace(val).is_some() {
                return Err(ElfError::BadDynamic);
            }
        }
        if !terminated {
            return Err(ElfError::BadDynamic);
        }
        let entry_ok = |ent: Option<u64>| ent.is_none_or(|e| e == RELA_LEN as u64);
        if !entry_ok(relaent) {
            return Err(ElfError::BadDynamic);
        }
        let main = match rela {
            RelaDesc {
                vaddr: None,
                size: None,
            } => &[][..],
            RelaDesc {
                vaddr: Some(v),
                size: Some(s),
            } if relaent.is_some() => self.rela_table(v, s)?,
            _ => return Err(ElfError::BadDynamic),
        };
        let jmprel = match plt {
            RelaDesc {
                vaddr: None,
                size: None,
            } => &[][..],
            RelaDesc {
                vaddr: Some(v),
                size: Some(s),
            } if pltrel == Some(DT_RELA) => self.rela_table(v, s)?,
            _ => return Err(ElfError::BadDynamic),
        };
        Ok([main, jmprel])
    }

    /// The file bytes of the relocation table at link-time address `vaddr`,
    /// found through the `PT_LOAD` whose file bytes hold all of it.
    fn rela_table(&self, vaddr: u64, size: u64) -> Result<&'a [u8], ElfError> {
        if !size.is_multiple_of(RELA_LEN as u64) {
            return Err(ElfError::BadDynamic);
        }
        if size == 0 {
            return Ok(&[]);
        }
        let end = vaddr.checked_add(size).ok_or(ElfError::Overflow)?;
        for s in self.segments() {
            let link = s.vaddr.checked_sub(self.base).ok_or(ElfError::Overflow)?;
            let link_file_end = link.checked_add(s.file_size).ok_or(ElfError::Overflow)?;
            if vaddr >= link && end <= link_file_end {
                let offset = s.file_offset.checked_add(vaddr - link).ok_or(ElfError::Overflow)?;
                return self.file_slice(offset, size).ok_or(ElfError::SegmentOutOfFile);
            }
        }
        Err(ElfError::BadDynamic)
    }

    fn validate_relocations(&self) -> Result<(), ElfError> {
        for table in self.rela {
            for raw in table.as_chunks::<RELA_LEN>().0 {
                if let Some(r) = decode_rela(raw, self.base)? {
                    let inside = self
                        .segments()
                        .iter()
                        .any(|s| s.flags.write && s.contains_range(r.offset, 8));
                    if !inside {
                        return Err(ElfError::RelocationOutOfRange);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Iterator over a plan's validated `R_X86_64_RELATIVE` relocations
/// (`R_X86_64_NONE` entries are skipped).
#[derive(Clone, Debug)]
pub struct Relocations<'a> {
    current: &'a [u8],
    next: &'a [u8],
    base: u64,
}

impl Iterator for Relocations<'_> {
    type Item = Relocation;

    fn next(&mut self) -> Option<Relocation> {
        loop {
            let Some((raw, rest)) = self.current.split_at_checked(RELA_LEN) else {
                if self.next.is_empty() {
                    return None;
                }
                self.current = core::mem::take(&mut self.next);
                continue;
            };
            self.current = rest;
            // Errors cannot occur: parse() validated every entry.
            if let Ok(Some(r)) = decode_rela(raw, self.base) {
                return Some(r);
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some((self.current.len() + self.next.len()) / RELA_LEN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    const PT_NOTE: u32 = 4;
    const PT_GNU_STACK: u32 = 0x6474_E551;
    const PT_GNU_RELRO: u32 = 0x6474_E552;
    const RX: u32 = PF_R | PF_X;
    const RW: u32 = PF_R | PF_W;
    const BASE: u64 = 0x40_0000;

    fn user() -> Range<u64> {
        0x1000..0x8000_0000_0000
    }

    #[derive(Clone, Copy)]
    struct Ph {
        ty: u32,
        flags: u32,
        offset: u64,
        vaddr: u64,
        filesz: u64,
        memsz: u64,
        align: u64,
    }

    fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Ph {
        Ph {
            ty: PT_LOAD,
            flags,
            offset,
            vaddr,
            filesz,
            memsz,
            align: 0x1000,
        }
    }

    fn other(ty: u32, offset: u64, vaddr: u64, size: u64) -> Ph {
        Ph {
            ty,
            flags: PF_R,
            offset,
            vaddr,
            filesz: size,
            memsz: size,
            align: 8,
        }
    }

    /// Test-only ELF writer: header at 0, program headers at 64, then
    /// `blobs` copied at their file offsets into a zeroed file of `len` bytes.
    #[derive(Clone)]
    struct Image {
        e_type: u16,
        entry: u64,
        phdrs: Vec<Ph>,
        len: usize,
        blobs: Vec<(usize, Vec<u8>)>,
    }

    fn put(buf: &mut [u8], off: usize, v: &[u8]) {
        buf[off..off + v.len()].copy_from_slice(v);
    }

    impl Image {
        fn build(&self) -> Vec<u8> {
            let phend = EHDR_LEN + PHDR_LEN * self.phdrs.len();
            let mut b = vec![0u8; self.len.max(phend)];
            put(&mut b, 0, &MAGIC);
            b[4] = ELFCLASS64;
            b[5] = ELFDATA2LSB;
            b[6] = EV_CURRENT;
            put(&mut b, 16, &self.e_type.to_le_bytes());
            put(&mut b, 18, &EM_X86_64.to_le_bytes());
            put(&mut b, 20, &1u32.to_le_bytes());
            put(&mut b, 24, &self.entry.to_le_bytes());
            put(&mut b, 32, &(EHDR_LEN as u64).to_le_bytes());
            put(&mut b, 52, &(EHDR_LEN as u16).to_le_bytes());
            put(&mut b, 54, &(PHDR_LEN as u16).to_le_bytes());
            put(&mut b, 56, &(self.phdrs.len() as u16).to_le_bytes());
            put(&mut b, 58, &64u16.to_le_bytes()); // e_shentsize
            for (i, p) in self.phdrs.iter().enumerate() {
                let o = EHDR_LEN + i * PHDR_LEN;
                put(&mut b, o, &p.ty.to_le_bytes());
                put(&mut b, o + 4, &p.flags.to_le_bytes());
                put(&mut b, o + 8, &p.offset.to_le_bytes());
                put(&mut b, o + 16, &p.vaddr.to_le_bytes());
                put(&mut b, o + 24, &p.vaddr.to_le_bytes()); // p_paddr
                put(&mut b, o + 32, &p.filesz.to_le_bytes());
                put(&mut b, o + 40, &p.memsz.to_le_bytes());
                put(&mut b, o + 48, &p.align.to_le_bytes());
            }
            for (off, blob) in &self.blobs {
                put(&mut b, *off, blob);
            }
            b
        }
    }

    fn dynamic(entries: &[(u64, u64)]) -> Vec<u8> {
        entries
            .iter()
            .flat_map(|&(t, v)| t.to_le_bytes().into_iter().chain(v.to_le_bytes()))
            .collect()
    }

    fn rela(entries: &[(u64, u32, i64)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(off, ty, addend) in entries {
            out.extend_from_slice(&off.to_le_bytes());
            out.extend_from_slice(&u64::from(ty).to_le_bytes());
            out.extend_from_slice(&addend.to_le_bytes());
        }
        out
    }

    /// Non-PIE: text R+X at 0x20_1000 (0x100 bytes), data R+W at 0x20_2000
    /// (0x10 file bytes, 0x2000 in memory), plus a PT_GNU_STACK.
    fn exec_image() -> Image {
        Image {
            e_type: ET_EXEC,
            entry: 0x20_1010,
            phdrs: vec![
                load(RX, 0x1000, 0x20_1000, 0x100, 0x100),
                load(RW, 0x2000, 0x20_2000, 0x10, 0x2000),
                Ph {
                    ty: PT_GNU_STACK,
                    flags: RW,
                    offset: 0,
                    vaddr: 0,
                    filesz: 0,
                    memsz: 0,
                    align: 16,
                },
            ],
            len: 0x2010,
            blobs: vec![(0x1000, vec![0xCC; 0x100]), (0x2000, (0u8..0x10).collect())],
        }
    }

    /// Static PIE linked at 0: text R+X at 0x1000, data R+W at 0x2000 (0x100
    /// file bytes, one page in memory) holding the dynamic section at 0x2000
    /// and a RELA table at 0x2080 with two RELATIVE entries and one NONE.
    const DYN_AT: usize = 0x2000;
    const RELA_AT: u64 = 0x2080;

    fn dyn_entries(relasz: u64) -> Vec<(u64, u64)> {
        vec![(DT_RELA, RELA_AT), (DT_RELASZ, relasz), (DT_RELAENT, 24), (DT_NULL, 0)]
    }

    fn dyn_image_with(dyns: &[(u64, u64)], relas: &[(u64, u32, i64)]) -> Image {
        let dyn_bytes = dynamic(dyns);
        Image {
            e_type: ET_DYN,
            entry: 0x1000,
            phdrs: vec![
                other(6, 64, 64, 5 * PHDR_LEN as u64), // PT_PHDR
                load(RX, 0x1000, 0x1000, 0x100, 0x100),
                load(RW, 0x2000, 0x2000, 0x100, 0x1000),
                other(PT_DYNAMIC, DYN_AT as u64, DYN_AT as u64, dyn_bytes.len() as u64),
                other(PT_GNU_RELRO, 0x2000, 0x2000, 0x80),
            ],
            len: 0x2100,
            blobs: vec![(DYN_AT, dyn_bytes), (RELA_AT as usize, rela(relas))],
        }
    }

    fn good_relas() -> Vec<(u64, u32, i64)> {
        vec![
            (0x2040, R_X86_64_RELATIVE, 0x1010),
            (0, R_X86_64_NONE, 0),
            (0x2048, R_X86_64_RELATIVE, 0x2000),
        ]
    }

    fn dyn_image() -> Image {
        dyn_image_with(&dyn_entries(72), &good_relas())
    }

    fn parse(img: &Image) -> Result<LoadPlan<'static>, ElfError> {
        let bytes: &'static [u8] = Vec::leak(img.build());
        LoadPlan::parse(bytes, BASE, user())
    }

    fn parse_bytes(bytes: &[u8]) -> Result<LoadPlan<'_>, ElfError> {
        LoadPlan::parse(bytes, BASE, user())
    }

    fn set16(b: &mut [u8], off: usize, v: u16) {
        put(b, off, &v.to_le_bytes());
    }

    fn set64(b: &mut [u8], off: usize, v: u64) {
        put(b, off, &v.to_le_bytes());
    }

    fn dyn_err(dyns: &[(u64, u64)], relas: &[(u64, u32, i64)]) -> ElfError {
        parse(&dyn_image_with(dyns, relas)).unwrap_err()
    }

    #[test]
    fn valid_exec() {
        let bytes = exec_image().build();
        // The base is ignored for ET_EXEC.
        for base in [0, BASE, 0x123] {
            let plan = LoadPlan::parse(&bytes, base, user()).unwrap();
            assert_eq!(plan.entry(), 0x20_1010);
            let r = SegmentFlags {
                read: true,
                write: false,
                execute: true,
            };
            let w = SegmentFlags {
                read: true,
                write: true,
                execute: false,
            };
            assert_eq!(
                plan.segments(),
                &[
                    Segment {
                        vaddr: 0x20_1000,
                        mem_size: 0x100,
                        file_offset: 0x1000,
                        file_size: 0x100,
                        flags: r
                    },
                    Segment {
                        vaddr: 0x20_2000,
                        mem_size: 0x2000,
                        file_offset: 0x2000,
                        file_size: 0x10,
                        flags: w
                    },
                ]
            );
            let [text, data] = plan.segments() else { panic!() };
            assert_eq!(plan.segment_bytes(text), &[0xCC; 0x100][..]);
            assert_eq!(plan.segment_bytes(data), &(0u8..0x10).collect::<Vec<_>>()[..]);
            assert_eq!(text.page_range(), (0x20_1000, 0x20_2000));
            assert_eq!(data.page_range(), (0x20_2000, 0x20_4000));
            assert_eq!(plan.highest_address(), 0x20_4000);
            assert_eq!(plan.relocations().count(), 0);
        }
    }

    #[test]
    fn exec_dynamic_is_not_read() {
        let mut img = exec_image();
        // A PT_DYNAMIC full of garbage: ignored for ET_EXEC.
        img.phdrs.push(other(PT_DYNAMIC, 0x1000, 0x20_1000, 0x40));
        let plan = parse(&img).unwrap();
        assert_eq!(plan.relocations().count(), 0);
    }

    #[test]
    fn valid_dyn_with_relocations() {
        let plan = parse(&dyn_image()).unwrap();
        assert_eq!(plan.entry(), BASE + 0x1000);
        let vaddrs: Vec<_> = plan
            .segments()
            .iter()
            .map(|s| (s.vaddr, s.mem_size, s.file_offset))
            .collect();
        assert_eq!(
            vaddrs,
            [(BASE + 0x1000, 0x100, 0x1000), (BASE + 0x2000, 0x1000, 0x2000)]
        );
        assert_eq!(plan.highest_address(), BASE + 0x3000);
        let relocs: Vec<_> = plan.relocations().collect();
        assert_eq!(
            relocs,
            [
                Relocation {
                    offset: BASE + 0x2040,
                    value: BASE + 0x1010
                },
                Relocation {
                    offset: BASE + 0x2048,
                    value: BASE + 0x2000
                },
            ]
        );
        // Base 0 is allowed as long as the pages are in the user range.
        let bytes = dyn_image().build();
        let plan = LoadPlan::parse(&bytes, 0, user()).unwrap();
        assert_eq!(
            plan.relocations().next(),
            Some(Relocation {
                offset: 0x2040,
                value: 0x1010
            })
        );
    }

    #[test]
    fn dyn_without_dynamic_or_relocs() {
        let mut img = dyn_image();
        img.phdrs.retain(|p| p.ty != PT_DYNAMIC);
        assert_eq!(parse(&img).unwrap().relocations().count(), 0);
        // An empty dynamic section, and an empty RELA table.
        assert_eq!(
            parse(&dyn_image_with(&[(DT_NULL, 0)], &[]))
                .unwrap()
                .relocations()
                .count(),
            0
        );
        assert_eq!(
            parse(&dyn_image_with(&dyn_entries(0), &[]))
                .unwrap()
                .relocations()
                .count(),
            0
        );
    }

    #[test]
    fn jmprel_table_is_validated_too() {
        let relas = good_relas();
        // The PLT table is the last RELA entry on its own.
        let dyns = [
            (DT_RELA, RELA_AT),
            (DT_RELASZ, 48),
            (DT_RELAENT, 24),
            (DT_JMPREL, RELA_AT + 48),
            (DT_PLTRELSZ, 24),
            (DT_PLTREL, DT_RELA),
            (DT_NULL, 0),
        ];
        let plan = parse(&dyn_image_with(&dyns, &relas)).unwrap();
        assert_eq!(plan.relocations().count(), 2);
        let mut jump_slot = relas.clone();
        jump_slot[2].1 = 7;
        assert_eq!(dyn_err(&dyns, &jump_slot), ElfError::UnsupportedRelocation(7));
        let mut rel_plt = dyns;
        rel_plt[5].1 = DT_REL;
        assert_eq!(dyn_err(&rel_plt, &relas), ElfError::BadDynamic);
    }

    #[test]
    fn dyn_base_must_be_page_aligned() {
        let bytes = dyn_image().build();
        assert_eq!(
            LoadPlan::parse(&bytes, 0x40_0010, user()).unwrap_err(),
            ElfError::Misaligned
        );
    }

    #[test]
    fn header_errors() {
        let good = exec_image().build();
        assert_eq!(parse_bytes(&[]).unwrap_err(), ElfError::TooShort);
        assert_eq!(parse_bytes(&good[..63]).unwrap_err(), ElfError::TooShort);
        assert_eq!(parse_bytes(&good[..16]).unwrap_err(), ElfError::TooShort);

        let cases: [(usize, u8, ElfError); 7] = [
            (1, b'F', ElfError::BadMagic),
            (0, 0, ElfError::BadMagic),
            (4, 1, ElfError::NotElf64),
            (5, 2, ElfError::NotLittleEndian),
            (6, 0, ElfError::BadVersion),
            (20, 2, ElfError::BadVersion),
            (18, 3, ElfError::NotX86_64),
        ];
        for (off, v, err) in cases {
            let mut b = good.clone();
            b[off] = v;
            assert_eq!(parse_bytes(&b).unwrap_err(), err, "byte {off} = {v}");
        }
        for (e_type, ok) in [
            (0u16, false),
            (1, false),
            (2, true),
            (3, true),
            (4, false),
            (0xFE00, false),
        ] {
            let mut b = good.clone();
            set16(&mut b, 16, e_type);
            assert_eq!(parse_bytes(&b).is_ok(), ok, "e_type {e_type}");
            if !ok {
                assert_eq!(parse_bytes(&b).unwrap_err(), ElfError::NotExecutable);
            }
        }
        for (off, v) in [(52, 52u16), (54, 32), (54, 64)] {
            let mut b = good.clone();
            set16(&mut b, off, v);
            assert_eq!(parse_bytes(&b).unwrap_err(), ElfError::BadHeaderSize);
        }
    }

    #[test]
    fn interpreter_is_refused() {
        let mut img = exec_image();
        img.phdrs.insert(0, other(PT_INTERP, 0x1000, 0x20_1000, 0x10));
        assert_eq!(parse(&img).unwrap_err(), ElfError::NotExecutable);
    }

    #[test]
    fn program_headers_out_of_bounds() {
        let good = exec_image().build();
        let mut b = good.clone();
        set16(&mut b, 56, 200); // 200 * 56 bytes > file
        assert_eq!(parse_bytes(&b).unwrap_err(), ElfError::ProgramHeadersOutOfBounds);
        let mut b = good.clone();
        set64(&mut b, 32, good.len() as u64 - 10);
        assert_eq!(parse_bytes(&b).unwrap_err(), ElfError::ProgramHeadersOutOfBounds);
        let mut b = good.clone();
        set16(&mut b, 56, PN_XNUM);
        assert_eq!(parse_bytes(&b).unwrap_err(), ElfError::TooManySegments);
        // Headers cut off by the end of the file.
        let phend = EHDR_LEN + 3 * PHDR_LEN;
        assert_eq!(
            parse_bytes(&good[..phend - 1]).unwrap_err(),
            ElfError::ProgramHeadersOutOfBounds
        );
        let mut b = good.clone();
        set64(&mut b, 32, u64::MAX);
        assert_eq!(parse_bytes(&b).unwrap_err(), ElfError::Overflow);
    }

    fn many_loads(n: u64) -> Image {
        let mut img = exec_image();
        img.phdrs = (0..n)
            .map(|i| load(PF_R, 0x1000, 0x10_0000 + i * 0x1000, 0x10, 0x10))
            .collect();
        img.phdrs[0].flags = RX;
        img.entry = 0x10_0000;
        img
    }

    #[test]
    fn segment_count_limits() {
        assert_eq!(parse(&many_loads(16)).unwrap().segments().len(), 16);
        assert_eq!(parse(&many_loads(17)).unwrap_err(), ElfError::TooManySegments);
        // Empty PT_LOADs do not count and are skipped.
        let mut img = many_loads(16);
        img.phdrs.push(load(PF_R, 0, 0x90_0000, 0, 0));
        assert_eq!(parse(&img).unwrap().segments().len(), 16);
        let mut img = exec_image();
        img.phdrs.insert(1, load(RW, 0, 0, 0, 0));
        assert_eq!(parse(&img).unwrap().segments().len(), 2);
    }

    #[test]
    fn no_loadable_segments() {
        let mut img = exec_image();
        img.phdrs.retain(|p| p.ty != PT_LOAD);
        assert_eq!(parse(&img).unwrap_err(), ElfError::NoLoadableSegments);
        img.phdrs.push(load(RX, 0x1000, 0x20_1000, 0, 0));
        img.phdrs.push(other(PT_NOTE, 0x1000, 0x20_1000, 0x10));
        assert_eq!(parse(&img).unwrap_err(), ElfError::NoLoadableSegments);
        let mut b = exec_image().build();
        set16(&mut b, 56, 0);
        assert_eq!(parse_bytes(&b).unwrap_err(), ElfError::NoLoadableSegments);
    }

    fn exec_with(f: impl FnOnce(&mut Image)) -> Result<LoadPlan<'static>, ElfError> {
        let mut img = exec_image();
        f(&mut img);
        parse(&img)
    }

    #[test]
    fn segment_errors() {
        assert_eq!(
            exec_with(|i| i.phdrs[1].filesz = 0x11).unwrap_err(),
            ElfError::SegmentOutOfFile
        );
        assert_eq!(
            exec_with(|i| i.phdrs[1].offset = 0x3000).unwrap_err(),
            ElfError::SegmentOutOfFile
        );
        assert_eq!(
            exec_with(|i| i.phdrs[0].memsz = 0xFF).unwrap_err(),
            ElfError::FileSizeExceedsMemSize
        );
        // filesz > memsz is an error even when memsz is 0.
        assert_eq!(
            exec_with(|i| i.phdrs[1].memsz = 0).unwrap_err(),
            ElfError::FileSizeExceedsMemSize
        );
        assert_eq!(
            exec_with(|i| i.phdrs[0].flags = PF_R | PF_W | PF_X).unwrap_err(),
            ElfError::WritableAndExecutable
        );
        assert_eq!(
            exec_with(|i| i.phdrs[1].flags = PF_W | PF_X).unwrap_err(),
            ElfError::WritableAndExecutable
        );
    }

    #[test]
    fn alignment() {
        assert_eq!(
            exec_with(|i| i.phdrs[0].vaddr = 0x20_1010).unwrap_err(),
            ElfError::Misaligned
        );
        assert_eq!(exec_with(|i| i.phdrs[0].align = 3).unwrap_err(), ElfError::Misaligned);
        assert_eq!(
            exec_with(|i| i.phdrs[0].align = 0x3000).unwrap_err(),
            ElfError::Misaligned
        );
        // Congruent modulo a large alignment.
        assert!(exec_with(|i| i.phdrs[0].align = 0x1000).is_ok());
        // 0x20_3000 and 0x2000 agree modulo 0x1000 but not modulo 0x2000.
        assert!(exec_with(|i| i.phdrs[1].vaddr = 0x20_3000).is_ok());
        let err = exec_with(|i| {
            i.phdrs[1].vaddr = 0x20_3000;
            i.phdrs[1].align = 0x2000;
        });
        assert_eq!(err.unwrap_err(), ElfError::Misaligned);
        // p_align 0 and 1 impose nothing.
        for align in [0, 1] {
            let plan = exec_with(|i| {
                i.phdrs[0].align = align;
                i.phdrs[0].vaddr = 0x20_1010;
            })
            .unwrap();
            assert_eq!(plan.segments()[0].page_range(), (0x20_1000, 0x20_2000));
        }
    }

    #[test]
    fn overlapping_pages() {
        // Text ends mid-page 0x20_1000; data starts in that same page.
        let err = exec_with(|i| {
            i.phdrs[1].vaddr = 0x20_1800;
            i.phdrs[1].align = 1;
        });
        assert_eq!(err.unwrap_err(), ElfError::OverlappingSegments);
        // Text spills into the data page.
        let err = exec_with(|i| i.phdrs[0].memsz = 0x1001);
        assert_eq!(err.unwrap_err(), ElfError::OverlappingSegments);
        // Data contains text entirely (listed after it).
        let err = exec_with(|i| i.phdrs[1].vaddr = 0x20_0000);
        assert_eq!(err.unwrap_err(), ElfError::OverlappingSegments);
        // Identical segments.
        let err = exec_with(|i| i.phdrs[1] = i.phdrs[0]);
        assert_eq!(err.unwrap_err(), ElfError::OverlappingSegments);
        // Adjacent pages are fine (the valid image), and so is file order
        // that is not address order.
        assert!(exec_with(|i| i.phdrs.swap(0, 1)).is_ok());
    }

    #[test]
    fn user_range() {
        let err = |f: fn(&mut Image)| exec_with(f).unwrap_err();
        // Page 0 is below the range.
        assert_eq!(
            err(|i| {
                i.phdrs[0].vaddr = 0;
                i.entry = 0x10;
            }),
            ElfError::OutsideUserRange
        );
        // Data runs past the top of the lower half.
        assert_eq!(err(|i| i.phdrs[1].vaddr = 0x7FFF_FFFF_F000), ElfError::OutsideUserRange);
        assert_eq!(
            err(|i| i.phdrs[1].vaddr = 0xFFFF_8000_0000_0000),
            ElfError::OutsideUserRange
        );
        // Ending exactly at the top is fine.
        let plan = exec_with(|i| i.phdrs[1].vaddr = 0x7FFF_FFFF_E000).unwrap();
        assert_eq!(plan.highest_address(), 0x8000_0000_0000);
        // A base that pushes a PIE out of range.
        let bytes = dyn_image().build();
        assert_eq!(
            LoadPlan::parse(&bytes, 0x7FFF_FFFF_E000, user()).unwrap_err(),
            ElfError::OutsideUserRange
        );
        // An empty user range admits nothing.
        assert_eq!(
            LoadPlan::parse(&bytes, BASE, 0x1000..0x1000).unwrap_err(),
            ElfError::OutsideUserRange
        );
    }

    #[test]
    fn entry_must_be_executable() {
        for entry in [0, 0x20_0FFF, 0x20_1100, 0x20_2000, 0x20_3FFF, u64::MAX] {
            assert_eq!(
                exec_with(|i| i.entry = entry).unwrap_err(),
                ElfError::EntryNotInExecutableSegment
            );
        }
        assert!(exec_with(|i| i.entry = 0x20_1000).is_ok());
        assert!(exec_with(|i| i.entry = 0x20_10FF).is_ok());
        // Text marked R only.
        assert_eq!(
            exec_with(|i| i.phdrs[0].flags = PF_R).unwrap_err(),
            ElfError::EntryNotInExecutableSegment
        );
    }

    #[test]
    fn relocation_errors() {
        let d = dyn_entries(72);
        let with = |i: usize, r: (u64, u32, i64)| {
            let mut relas = good_relas();
            relas[i] = r;
            dyn_err(&d, &relas)
        };
        assert_eq!(with(0, (0x2040, 1, 0)), ElfError::UnsupportedRelocation(1)); // R_X86_64_64
        assert_eq!(with(2, (0x2040, 37, 0)), ElfError::UnsupportedRelocation(37)); // IRELATIVE
        assert_eq!(with(1, (0, 6, 0)), ElfError::UnsupportedRelocation(6)); // GLOB_DAT
        // Into the read-only text segment, below and above the data segment,
        // and straddling its end.
        assert_eq!(with(0, (0x1000, 8, 0)), ElfError::RelocationOutOfRange);
        assert_eq!(with(0, (0x1FFC, 8, 0)), ElfError::RelocationOutOfRange);
        assert_eq!(with(0, (0x2FF9, 8, 0)), ElfError::RelocationOutOfRange);
        assert_eq!(with(0, (0x3000, 8, 0)), ElfError::RelocationOutOfRange);
        // The last 8 bytes of data memory (past the file bytes) are fine.
        let mut relas = good_relas();
        relas[0] = (0x2FF8, R_X86_64_RELATIVE, -0x1000);
        let plan = parse(&dyn_image_with(&d, &relas)).unwrap();
        assert_eq!(
            plan.relocations().next(),
            Some(Relocation {
                offset: BASE + 0x2FF8,
                value: BASE - 0x1000
            })
        );
        // The symbol index in r_info is ignored for RELATIVE.
        let mut img = dyn_image();
        img.blobs[1].1[12] = 5;
        assert_eq!(parse(&img).unwrap().relocations().count(), 2);
    }

    #[test]
    fn dynamic_errors() {
        let r = good_relas();
        let bad = |dyns: &[(u64, u64)]| dyn_err(dyns, &r);
        assert_eq!(
            bad(&[(DT_RELA, RELA_AT), (DT_RELASZ, 72), (DT_RELAENT, 16), (DT_NULL, 0)]),
            ElfError::BadDynamic
        );
        assert_eq!(
            bad(&[(DT_RELA, RELA_AT), (DT_RELASZ, 72), (DT_NULL, 0)]),
            ElfError::BadDynamic
        );
        assert_eq!(
            bad(&[(DT_RELA, RELA_AT), (DT_RELAENT, 24), (DT_NULL, 0)]),
            ElfError::BadDynamic
        );
        assert_eq!(
            bad(&[(DT_RELASZ, 72), (DT_RELAENT, 24), (DT_NULL, 0)]),
            ElfError::BadDynamic
        );
        assert_eq!(
            bad(&[(DT_RELA, RELA_AT), (DT_RELASZ, 70), (DT_RELAENT, 24), (DT_NULL, 0)]),
            ElfError::BadDynamic
        );
        // Not terminated by DT_NULL.
        assert_eq!(
            bad(&[(DT_RELA, RELA_AT), (DT_RELASZ, 72), (DT_RELAENT, 24)]),
            ElfError::BadDynamic
        );
        // Duplicate tag.
        let dup = [
            (DT_RELA, RELA_AT),
            (DT_RELA, RELA_AT),
            (DT_RELASZ, 72),
            (DT_RELAENT, 24),
            (DT_NULL, 0),
        ];
        assert_eq!(bad(&dup), ElfError::BadDynamic);
        // Table not inside any segment's file bytes (in the text segment's
        // zero tail, in a gap, or running past the data file bytes).
        for at in [0x1100, 0x9000, 0x20C0] {
            assert_eq!(
                bad(&[(DT_RELA, at), (DT_RELASZ, 72), (DT_RELAENT, 24), (DT_NULL, 0)]),
                ElfError::BadDynamic
            );
        }
        // Other relocation formats.
        for tag in [DT_REL, DT_RELR, DT_RELRSZ] {
            let mut d = dyn_entries(72);
            d.insert(0, (tag, 0));
            assert_eq!(bad(&d), ElfError::BadDynamic);
        }
        // Two PT_DYNAMIC.
        let mut img = dyn_image();
        let d = img.phdrs[3];
        img.phdrs.push(d);
        assert_eq!(parse(&img).unwrap_err(), ElfError::BadDynamic);
        // PT_DYNAMIC past the end of the file.
        let mut img = dyn_image();
        img.phdrs[3].filesz = 0x200;
        assert_eq!(parse(&img).unwrap_err(), ElfError::SegmentOutOfFile);
        // Unknown tags are ignored.
        let mut d = dyn_entries(72);
        d.insert(0, (0x6FFF_FFFB, 0x0800_0001)); // DT_FLAGS_1
        d.insert(0, (30, 4)); // DT_FLAGS
        assert!(parse(&dyn_image_with(&d, &r)).is_ok());
    }

    #[test]
    fn overflow_is_caught() {
        let o = ElfError::Overflow;
        assert_eq!(
            exec_with(|i| {
                i.phdrs[1].vaddr = u64::MAX - 0xFFF;
                i.phdrs[1].offset = 0x1000;
                i.phdrs[1].filesz = 0;
            })
            .unwrap_err(),
            o
        );
        assert_eq!(exec_with(|i| i.phdrs[1].memsz = u64::MAX).unwrap_err(), o);
        assert_eq!(
            exec_with(|i| {
                i.phdrs[1].offset = u64::MAX;
                i.phdrs[1].align = 0;
            })
            .unwrap_err(),
            o
        );
        assert_eq!(
            exec_with(|i| {
                i.phdrs[1].filesz = u64::MAX;
                i.phdrs[1].memsz = u64::MAX;
            })
            .unwrap_err(),
            o
        );
        // vaddr + mem_size fits but rounding up to a page does not.
        assert_eq!(
            exec_with(|i| {
                i.phdrs[1].vaddr = u64::MAX - 0x1FFF;
                i.phdrs[1].memsz = 0x1001;
            })
            .unwrap_err(),
            o
        );
        let bytes = dyn_image().build();
        assert_eq!(LoadPlan::parse(&bytes, 0xFFFF_FFFF_FFFF_F000, user()).unwrap_err(), o);
        let mut img = dyn_image();
        img.entry = u64::MAX;
        assert_eq!(parse(&img).unwrap_err(), o);
        // Relocation offset + base, base + negative addend.
        let d = dyn_entries(72);
        let mut relas = good_relas();
        relas[0].0 = u64::MAX - 0x1000;
        assert_eq!(dyn_err(&d, &relas), o);
        let mut relas = good_relas();
        relas[0].2 = -(BASE as i64) - 1;
        assert_eq!(dyn_err(&d, &relas), o);
        let mut relas = good_relas();
        relas[0].2 = i64::MIN;
        assert_eq!(dyn_err(&d, &relas), o);
        // Table address + size.
        assert_eq!(
            dyn_err(
                &[(DT_RELA, u64::MAX - 8), (DT_RELASZ, 24), (DT_RELAENT, 24), (DT_NULL, 0)],
                &relas
            ),
            o
        );
        // PT_DYNAMIC offset + size.
        let mut img = dyn_image();
        img.phdrs[3].offset = u64::MAX;
        assert_eq!(parse(&img).unwrap_err(), o);
    }

    #[test]
    fn hand_built_segment_page_range_saturates() {
        let flags = SegmentFlags {
            read: true,
            write: false,
            execute: false,
        };
        let s = Segment {
            vaddr: u64::MAX - 5,
            mem_size: 100,
            file_offset: u64::MAX,
            file_size: u64::MAX,
            flags,
        };
        assert_eq!(s.page_range(), (!0xFFF, !0xFFF));
        let plan = parse(&exec_image()).unwrap();
        assert!(plan.segment_bytes(&s).is_empty());
    }

    #[test]
    fn display_phrases() {
        use std::string::ToString;
        assert_eq!(
            ElfError::UnsupportedRelocation(7).to_string(),
            "unsupported relocation type 7"
        );
        assert_eq!(ElfError::BadMagic.to_string(), "not an ELF file (bad magic)");
        let all = [
            ElfError::TooShort,
            ElfError::BadMagic,
            ElfError::NotElf64,
            ElfError::NotLittleEndian,
            ElfError::BadVersion,
            ElfError::NotX86_64,
            ElfError::NotExecutable,
            ElfError::BadHeaderSize,
            ElfError::ProgramHeadersOutOfBounds,
            ElfError::TooManySegments,
            ElfError::NoLoadableSegments,
            ElfError::SegmentOutOfFile,
            ElfError::FileSizeExceedsMemSize,
            ElfError::Misaligned,
            ElfError::WritableAndExecutable,
            ElfError::OverlappingSegments,
            ElfError::OutsideUserRange,
            ElfError::EntryNotInExecutableSegment,
            ElfError::BadDynamic,
            ElfError::UnsupportedRelocation(0),
            ElfError::RelocationOutOfRange,
            ElfError::Overflow,
        ];
        let texts: Vec<_> = all.iter().map(|e| e.to_string()).collect();
        for (i, t) in texts.iter().enumerate() {
            assert!(!t.is_empty());
            assert!(!texts[..i].contains(t), "duplicate phrase {t}");
        }
    }

    /// Checks every guarantee `parse` documents, on whatever it accepted.
    fn check_invariants(bytes: &[u8], user: &Range<u64>) {
        let Ok(plan) = LoadPlan::parse(bytes, BASE, user.clone()) else {
            return;
        };
        let segs = plan.segments();
        assert!(!segs.is_empty() && segs.len() <= MAX_SEGMENTS);
        for (i, s) in segs.iter().enumerate() {
            let (first, end) = s.page_range();
            assert!(first >= user.start && end <= user.end && first < end);
            assert!(!(s.flags.write && s.flags.execute));
            assert!(s.file_size <= s.mem_size);
            assert_eq!(plan.segment_bytes(s).len() as u64, s.file_size);
            for t in &segs[..i] {
                let (tf, te) = t.page_range();
                assert!(end <= tf || te <= first);
            }
        }
        assert!(
            segs.iter()
                .any(|s| s.flags.execute && s.contains_range(plan.entry(), 1))
        );
        assert!(plan.highest_address() <= user.end);
        for r in plan.relocations() {
            assert!(segs.iter().any(|s| s.flags.write && s.contains_range(r.offset, 8)));
        }
    }

    #[test]
    fn byte_flips_never_panic() {
        let u = user();
        for img in [dyn_image(), exec_image()] {
            let good = img.build();
            check_invariants(&good, &u);
            let mut b = good.clone();
            for i in 0..good.len() {
                let orig = good[i];
                for v in [
                    0x00,
                    0xFF,
                    0x01,
                    0x7F,
                    0x80,
                    orig ^ 0x01,
                    orig ^ 0x10,
                    orig ^ 0x80,
                    orig.wrapping_add(1),
                ] {
                    b[i] = v;
                    check_invariants(&b, &u);
                }
                b[i] = orig;
            }
        }
    }

    #[test]
    fn wide_stomps_and_truncations_never_panic() {
        let u = user();
        let extremes = [
            0,
            1,
            8,
            0xFFF,
            0x1000,
            0x40_0000,
            i64::MAX as u64,
            1 << 63,
            u64::MAX - 0xFFF,
            u64::MAX,
        ];
        for img in [dyn_image(), exec_image()] {
            let good = img.build();
            for len in 0..good.len() {
                check_invariants(&good[..len], &u);
            }
            // Extreme u64 values at every 4-byte step of the headers, the
            // dynamic section and the RELA table.
            let regions = [0..EHDR_LEN + PHDR_LEN * img.phdrs.len(), DYN_AT..good.len()];
            let mut b = good.clone();
            for region in regions {
                for off in region.step_by(4) {
                    if off + 8 > good.len() {
                        break;
                    }
                    for v in extremes {
                        set64(&mut b, off, v);
                        check_invariants(&b, &u);
                    }
                    b[off..off + 8].copy_from_slice(&good[off..off + 8]);
                }
            }
        }
    }

    #[test]
    fn random_mutations_never_panic() {
        let u = user();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for img in [dyn_image(), exec_image()] {
            let good = img.build();
            // Most interesting bytes are in the first 0x200 and the tail.
            let hot = |r: u64| {
                let r = r as usize;
                if r % 2 == 0 {
                    r / 2 % 0x200
                } else {
                    DYN_AT.min(good.len() - 1) + r / 2 % 0x100
                }
            };
            for _ in 0..20_000 {
                let mut b = good.clone();
                for _ in 0..(1 + rand() % 6) {
                    let at = hot(rand()).min(b.len() - 1);
                    b[at] = rand() as u8;
                }
                check_invariants(&b, &u);
            }
        }
    }
}
