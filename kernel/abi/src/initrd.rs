//! The initial archive: the user programs the bootloader loads as a ramdisk,
//! packed by the root package's `build.rs` ([`pack`], host side) and read in
//! place by the kernel ([`Archive::parse`], no allocation).
//!
//! # Format
//!
//! All integers are little-endian.
//!
//! | offset | size | field                                                  |
//! |-------:|-----:|--------------------------------------------------------|
//! |      0 |    8 | magic [`MAGIC`] (`b"AETHRD01"`)                         |
//! |      8 |    4 | `u32` entry count (at most [`MAX_ENTRIES`])             |
//! |     12 |    4 | `u32` header + table size in bytes (`16 + 48 * count`)  |
//! |     16 | 48 * count | the entry table                                  |
//! |    ... |  ... | entry data                                             |
//!
//! Each table entry is [`ENTRY_SIZE`] (48) bytes:
//!
//! | offset | size | field                                                  |
//! |-------:|-----:|--------------------------------------------------------|
//! |      0 |   32 | name: 1..=[`NAME_MAX`] bytes of `[a-z0-9_-]`, NUL-padded |
//! |     32 |    8 | `u64` data offset from the start of the archive         |
//! |     40 |    8 | `u64` data length in bytes                              |
//!
//! Each entry's data starts at a [`DATA_ALIGN`] (16) byte aligned offset at
//! or after the end of the table; the gaps are zero padding. Bytes after the
//! last entry's data (the ramdisk rounded up to a page, say) are ignored.
//!
//! # Compressed entries
//!
//! An entry's data may be LZ4-compressed ([`lz4_wrapped`]): [`LZ4_MAGIC`]
//! (`b"AELZ"`), the uncompressed length as a `u64`, then one LZ4 block
//! (the LZ4 block format, no frame). `build.rs` compresses a program when
//! that makes it smaller: the bootloader reads the ramdisk through slow
//! BIOS disk calls (docs/benchmarks.md), and the kernel decompresses one
//! program when it is spawned. An uncompressed entry is an ELF file, whose
//! first bytes (`7f 45 4c 46`) can never be mistaken for the magic.
//!
//! The archive comes from the boot medium, so the kernel treats it as hostile:
//! [`Archive::parse`] checks all of the above up front (magic, entry count,
//! table size, every name valid and unique, every data range inside the
//! archive, after the table and aligned) and reports the first violation as
//! an [`ArchiveError`]; it never panics, whatever the bytes.

use core::fmt;

/// First eight bytes of every archive.
pub const MAGIC: [u8; 8] = *b"AETHRD01";

/// First bytes of a compressed entry (see the module docs).
pub const LZ4_MAGIC: [u8; 4] = *b"AELZ";
/// The largest uncompressed entry the kernel accepts.
pub const RAW_MAX: u64 = 16 << 20;

/// If `data` is a compressed entry: its uncompressed length and the LZ4
/// block. A wrapped entry that claims more than [`RAW_MAX`] bytes is
/// `Err(())`, as is a truncated header; anything else is not wrapped (`None`).
pub fn lz4_wrapped(data: &[u8]) -> Option<Result<(usize, &[u8]), ()>> {
    if data.get(..4)? != LZ4_MAGIC {
        return None;
    }
    let Some(len) = data.get(4..12) else {
        return Some(Err(()));
    };
    let mut raw = [0u8; 8];
    raw.copy_from_slice(len);
    let raw = u64::from_le_bytes(raw);
    if raw == 0 || raw > RAW_MAX {
        return Some(Err(()));
    }
    Some(Ok((raw as usize, data.get(12..).unwrap_or_default())))
}

/// The header of a compressed entry of `raw_len` bytes (the LZ4 block
/// follows it).
pub fn lz4_header(raw_len: u64) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[..4].copy_from_slice(&LZ4_MAGIC);
    h[4..].copy_from_slice(&raw_len.to_le_bytes());
    h
}

/// Most entries an archive may hold.
pub const MAX_ENTRIES: usize = 64;

/// Longest entry name in bytes (the size of the name field).
pub const NAME_MAX: usize = 32;

/// Size of the header: magic, entry count, table size.
pub const HEADER_SIZE: usize = 16;

/// Size of one entry in the table: name, data offset, data length.
pub const ENTRY_SIZE: usize = NAME_MAX + 8 + 8;

/// Alignment of every entry's data offset.
pub const DATA_ALIGN: usize = 16;

/// Why an archive was rejected (by [`Archive::parse`]) or could not be built
/// (by [`pack`]). `index` is the position of the offending entry in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveError {
    /// Shorter than its header, or than the table the header announces.
    TooShort,
    BadMagic,
    /// More than [`MAX_ENTRIES`] entries (the count given).
    TooManyEntries(u32),
    /// The table size field is not `16 + 48 * count`.
    BadTableSize,
    /// Empty, too long, not NUL-padded, or a character outside `[a-z0-9_-]`.
    BadName {
        index: u32,
    },
    /// The same name as an earlier entry.
    DuplicateName {
        index: u32,
    },
    /// The data range overflows, ends past the archive or starts inside the
    /// header or table.
    DataOutOfBounds {
        index: u32,
    },
    /// The data offset is not a multiple of [`DATA_ALIGN`].
    Misaligned {
        index: u32,
    },
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveError::TooShort => f.write_str("archive is truncated"),
            ArchiveError::BadMagic => f.write_str("bad magic, not an initial archive"),
            ArchiveError::TooManyEntries(n) => write!(f, "{n} entries, the limit is {MAX_ENTRIES}"),
            ArchiveError::BadTableSize => f.write_str("table size does not match the entry count"),
            ArchiveError::BadName { index } => write!(f, "entry {index} has an invalid name"),
            ArchiveError::DuplicateName { index } => write!(f, "entry {index} repeats an earlier name"),
            ArchiveError::DataOutOfBounds { index } => write!(f, "entry {index} data lies outside the archive"),
            ArchiveError::Misaligned { index } => {
                write!(f, "entry {index} data is not {DATA_ALIGN}-byte aligned")
            }
        }
    }
}

/// A validated archive, borrowing the bytes it was parsed from.
#[derive(Clone, Copy)]
pub struct Archive<'a> {
    bytes: &'a [u8],
    count: usize,
}

/// Shows the sizes, not the (possibly megabytes of) bytes.
impl fmt::Debug for Archive<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Archive")
            .field("bytes_len", &self.bytes.len())
            .field("count", &self.count)
            .finish()
    }
}

/// One file in an archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

impl<'a> Archive<'a> {
    /// Validates everything up front (so the accessors below cannot fail).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ArchiveError> {
        if bytes.get(..MAGIC.len()).ok_or(ArchiveError::TooShort)? != MAGIC {
            return Err(ArchiveError::BadMagic);
        }
        let count = read_u32(bytes, 8).ok_or(ArchiveError::TooShort)?;
        let table_size = read_u32(bytes, 12).ok_or(ArchiveError::TooShort)?;
        let n = usize::try_from(count)
            .ok()
            .filter(|&n| n <= MAX_ENTRIES)
            .ok_or(ArchiveError::TooManyEntries(count))?;
        // Cannot overflow: n <= MAX_ENTRIES.
        let table_end = HEADER_SIZE + ENTRY_SIZE * n;
        if usize::try_from(table_size) != Ok(table_end) {
            return Err(ArchiveError::BadTableSize);
        }
        if bytes.len() < table_end {
            return Err(ArchiveError::TooShort);
        }
        for i in 0..n {
            let entry = read_entry(bytes, i, table_end)?;
            for j in 0..i {
                if read_entry(bytes, j, table_end)?.name == entry.name {
                    return Err(ArchiveError::DuplicateName { index: index_u32(i) });
                }
            }
        }
        Ok(Archive { bytes, count: n })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The entry called `name`, if any.
    pub fn get(&self, name: &str) -> Option<Entry<'a>> {
        self.iter().find(|e| e.name == name)
    }

    /// All entries, in table order. The iterator borrows the archive's bytes,
    /// not `self`.
    pub fn iter(&self) -> impl Iterator<Item = Entry<'a>> + use<'a> {
        let Archive { bytes, count } = *self;
        // Cannot overflow: count <= MAX_ENTRIES was checked by `parse`.
        let table_end = HEADER_SIZE + ENTRY_SIZE * count;
        // Every entry was validated by `parse`, so `ok()` drops nothing.
        (0..count).filter_map(move |i| read_entry(bytes, i, table_end).ok())
    }
}

/// Reads and checks table entry `i` (whose 48 bytes must lie in `bytes`)
/// of a table ending at `table_end`.
fn read_entry(bytes: &[u8], i: usize, table_end: usize) -> Result<Entry<'_>, ArchiveError> {
    let index = index_u32(i);
    let base = i
        .checked_mul(ENTRY_SIZE)
        .and_then(|o| o.checked_add(HEADER_SIZE))
        .ok_or(ArchiveError::TooShort)?;
    let name_end = base.checked_add(NAME_MAX).ok_or(ArchiveError::TooShort)?;
    let name_field = bytes.get(base..name_end).ok_or(ArchiveError::TooShort)?;
    let offset = read_u64(bytes, name_end).ok_or(ArchiveError::TooShort)?;
    let len = read_u64(bytes, name_end.saturating_add(8)).ok_or(ArchiveError::TooShort)?;

    let name = parse_name_field(name_field).ok_or(ArchiveError::BadName { index })?;

    let out = ArchiveError::DataOutOfBounds { index };
    let start = usize::try_from(offset).map_err(|_| out)?;
    let len = usize::try_from(len).map_err(|_| out)?;
    let end = start.checked_add(len).ok_or(out)?;
    if start < table_end {
        return Err(out);
    }
    let data = bytes.get(start..end).ok_or(out)?;
    if start % DATA_ALIGN != 0 {
        return Err(ArchiveError::Misaligned { index });
    }
    Ok(Entry { name, data })
}

/// The name in a NUL-padded name field, if valid.
fn parse_name_field(field: &[u8]) -> Option<&str> {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let (name, padding) = field.split_at_checked(len)?;
    if !padding.iter().all(|&b| b == 0) {
        return None;
    }
    core::str::from_utf8(name).ok().filter(|n| is_valid_name(n))
}

/// Whether `name` may name an entry: 1..=[`NAME_MAX`] bytes of `[a-z0-9_-]`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=NAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let field = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(field.try_into().ok()?))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(field.try_into().ok()?))
}

/// An entry index for an error (indices beyond `u32` saturate; they cannot
/// occur, as there are at most [`MAX_ENTRIES`]).
fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// Packs entries, in the given order, into an archive (host side). Errors on
/// a bad or duplicate name or too many entries.
#[cfg(feature = "std")]
pub fn pack(entries: &[(&str, &[u8])]) -> Result<std::vec::Vec<u8>, ArchiveError> {
    let count = entries.len();
    if count > MAX_ENTRIES {
        return Err(ArchiveError::TooManyEntries(index_u32(count)));
    }
    for (i, (name, _)) in entries.iter().enumerate() {
        let index = index_u32(i);
        if !is_valid_name(name) {
            return Err(ArchiveError::BadName { index });
        }
        if entries[..i].iter().any(|(earlier, _)| earlier == name) {
            return Err(ArchiveError::DuplicateName { index });
        }
    }
    let table_end = HEADER_SIZE + ENTRY_SIZE * count;
    let mut table = std::vec::Vec::with_capacity(table_end);
    table.extend_from_slice(&MAGIC);
    table.extend_from_slice(&index_u32(count).to_le_bytes());
    table.extend_from_slice(&index_u32(table_end).to_le_bytes());
    let mut data = std::vec::Vec::new();
    for (name, bytes) in entries {
        let mut field = [0u8; NAME_MAX];
        field[..name.len()].copy_from_slice(name.as_bytes());
        let offset = (table_end + data.len()).next_multiple_of(DATA_ALIGN);
        data.resize(offset - table_end, 0);
        data.extend_from_slice(bytes);
        table.extend_from_slice(&field);
        table.extend_from_slice(&(offset as u64).to_le_bytes());
        table.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    }
    table.extend_from_slice(&data);
    Ok(table)
}

#[cfg(all(test, feature = "std"))]
mod tests {
    #[test]
    fn compressed_entries_are_recognised_and_bounded() {
        use super::{RAW_MAX, lz4_header, lz4_wrapped};
        let lz4_wrap = |raw: usize, block: &[u8]| [&lz4_header(raw as u64)[..], block].concat();
        let w = lz4_wrap(1000, b"block");
        assert_eq!(lz4_wrapped(&w), Some(Ok((1000, &b"block"[..]))));
        // An ELF is not wrapped; neither is anything short of the magic.
        assert_eq!(lz4_wrapped(b"\x7fELF\x02\x01"), None);
        assert_eq!(lz4_wrapped(b"AEL"), None);
        // Truncated header, zero or oversized length: refused.
        assert_eq!(lz4_wrapped(&w[..11]), Some(Err(())));
        assert_eq!(lz4_wrapped(&lz4_wrap(0, b"")), Some(Err(())));
        assert_eq!(lz4_wrapped(&lz4_wrap(RAW_MAX as usize + 1, b"x")), Some(Err(())));
        assert_eq!(
            lz4_wrapped(&lz4_wrap(RAW_MAX as usize, b"")),
            Some(Ok((RAW_MAX as usize, &b""[..])))
        );
    }

    use super::*;
    use std::string::{String, ToString};
    use std::vec::Vec;

    fn sample() -> Vec<u8> {
        pack(&[
            ("init", b"\x7fELF init program"),
            ("empty", b""),
            ("sh-2_x", &[0xab; 33]),
            ("a", b"x"),
        ])
        .unwrap()
    }

    fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
        bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
        bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    fn entry_at(i: usize) -> usize {
        HEADER_SIZE + ENTRY_SIZE * i
    }

    fn offset_at(i: usize) -> usize {
        entry_at(i) + NAME_MAX
    }

    fn len_at(i: usize) -> usize {
        offset_at(i) + 8
    }

    #[test]
    fn round_trips_in_table_order() {
        let long_name = "z".repeat(NAME_MAX);
        let odd: Vec<u8> = (0..=250).collect();
        let input: [(&str, &[u8]); 5] = [
            ("init", b"\x7fELF"),
            ("empty", b""),
            ("odd-len_7", &odd),
            (&long_name, b"abc"),
            ("last_empty", b""),
        ];
        let bytes = pack(&input).unwrap();
        let archive = Archive::parse(&bytes).unwrap();
        assert_eq!(archive.len(), input.len());
        assert!(!archive.is_empty());
        let got: Vec<(&str, &[u8])> = archive.iter().map(|e| (e.name, e.data)).collect();
        assert_eq!(got, input);
        for i in 0..input.len() {
            let offset = u64::from_le_bytes(bytes[offset_at(i)..offset_at(i) + 8].try_into().unwrap());
            assert_eq!(offset % DATA_ALIGN as u64, 0);
            assert!(offset >= entry_at(input.len()) as u64);
        }
    }

    #[test]
    fn empty_archive() {
        let bytes = pack(&[]).unwrap();
        assert_eq!(bytes.len(), HEADER_SIZE);
        let archive = Archive::parse(&bytes).unwrap();
        assert!(archive.is_empty());
        assert_eq!(archive.iter().next(), None);
        assert_eq!(archive.get("init"), None);
    }

    #[test]
    fn get_hits_and_misses() {
        let bytes = sample();
        let archive = Archive::parse(&bytes).unwrap();
        assert_eq!(
            archive.get("init"),
            Some(Entry {
                name: "init",
                data: b"\x7fELF init program"
            })
        );
        assert_eq!(archive.get("empty").unwrap().data, b"");
        assert_eq!(archive.get("sh-2_x").unwrap().data, &[0xab; 33]);
        assert_eq!(archive.get("a").unwrap().data, b"x");
        for miss in ["", "ini", "init2", "INIT", "init\0"] {
            assert_eq!(archive.get(miss), None, "{miss:?}");
        }
    }

    #[test]
    fn iterator_outlives_the_archive_value() {
        let bytes = sample();
        let names: Vec<&str> = {
            let it = Archive::parse(&bytes).unwrap().iter();
            it.map(|e| e.name).collect()
        };
        assert_eq!(names, ["init", "empty", "sh-2_x", "a"]);
    }

    #[test]
    fn trailing_bytes_are_ignored() {
        let mut bytes = sample();
        bytes.resize(4096, 0xee);
        assert_eq!(Archive::parse(&bytes).unwrap().get("a").unwrap().data, b"x");
    }

    #[test]
    fn truncated_and_bad_header() {
        let good = sample();
        assert_eq!(Archive::parse(&[]).unwrap_err(), ArchiveError::TooShort);
        assert_eq!(Archive::parse(&good[..7]).unwrap_err(), ArchiveError::TooShort);
        assert_eq!(Archive::parse(&good[..15]).unwrap_err(), ArchiveError::TooShort);
        // The header is whole but the table it announces is not.
        assert_eq!(
            Archive::parse(&good[..entry_at(4) - 1]).unwrap_err(),
            ArchiveError::TooShort
        );

        let mut bytes = good.clone();
        bytes[0] ^= 0x20;
        assert_eq!(Archive::parse(&bytes).unwrap_err(), ArchiveError::BadMagic);
        assert_eq!(
            Archive::parse(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0").unwrap_err(),
            ArchiveError::BadMagic
        );
        assert_eq!(Archive::parse(b"\x7fELF").unwrap_err(), ArchiveError::TooShort);

        for count in [65, u32::MAX] {
            let mut bytes = good.clone();
            put_u32(&mut bytes, 8, count);
            assert_eq!(Archive::parse(&bytes).unwrap_err(), ArchiveError::TooManyEntries(count));
        }

        for table_size in [0, entry_at(4) as u32 - 1, entry_at(4) as u32 + 1, u32::MAX] {
            let mut bytes = good.clone();
            put_u32(&mut bytes, 12, table_size);
            assert_eq!(Archive::parse(&bytes).unwrap_err(), ArchiveError::BadTableSize);
        }
        // A smaller count with the table size kept is inconsistent too.
        let mut bytes = good.clone();
        put_u32(&mut bytes, 8, 3);
        assert_eq!(Archive::parse(&bytes).unwrap_err(), ArchiveError::BadTableSize);
        // ... but consistent fields for fewer entries give a valid prefix.
        put_u32(&mut bytes, 12, entry_at(3) as u32);
        assert_eq!(Archive::parse(&bytes).unwrap().len(), 3);
    }

    #[test]
    fn bad_names() {
        let good = sample();
        let edits: [(usize, u8); 6] = [
            (0, 0),     // empty
            (0, b'A'),  // upper case
            (1, b'.'),  // punctuation
            (2, b'/'),  // path separator
            (31, b'x'), // garbage after the NUL padding
            (3, 0xc3),  // non-ASCII
        ];
        for (at, value) in edits {
            let mut bytes = good.clone();
            bytes[entry_at(2) + at] = value;
            assert_eq!(
                Archive::parse(&bytes).unwrap_err(),
                ArchiveError::BadName { index: 2 },
                "byte {at} = {value:#x}"
            );
        }
        // A NUL inside ("in\0t") leaves garbage after the first NUL.
        let mut bytes = good.clone();
        bytes[entry_at(0) + 2] = 0;
        assert_eq!(Archive::parse(&bytes).unwrap_err(), ArchiveError::BadName { index: 0 });
        // A full 32-byte name without NUL is fine.
        let mut bytes = good.clone();
        bytes[entry_at(1)..entry_at(1) + NAME_MAX].fill(b'q');
        assert_eq!(Archive::parse(&bytes).unwrap().get(&"q".repeat(32)).unwrap().data, b"");
    }

    #[test]
    fn duplicate_names() {
        let mut bytes = sample();
        bytes.copy_within(entry_at(0)..entry_at(0) + NAME_MAX, entry_at(2));
        assert_eq!(
            Archive::parse(&bytes).unwrap_err(),
            ArchiveError::DuplicateName { index: 2 }
        );
    }

    #[test]
    fn data_out_of_bounds() {
        let good = sample();
        let total = good.len() as u64;
        let table_end = entry_at(4) as u64;
        let cases: [(usize, u64, u64); 7] = [
            (0, 0, 4),                          // over the header
            (1, table_end - 16, 0),             // inside the table, even if empty
            (3, total, 1),                      // one past the end
            (3, total.next_multiple_of(16), 0), // empty, starting past the end
            (2, table_end, total),              // too long
            (2, table_end, u64::MAX),           // offset + length overflows
            (2, u64::MAX - 15, 32),             // huge offset
        ];
        for (i, offset, len) in cases {
            let mut bytes = good.clone();
            put_u64(&mut bytes, offset_at(i), offset);
            put_u64(&mut bytes, len_at(i), len);
            assert_eq!(
                Archive::parse(&bytes).unwrap_err(),
                ArchiveError::DataOutOfBounds { index: i as u32 },
                "entry {i} at {offset} len {len}"
            );
        }
        // An empty entry exactly at the end is in bounds.
        let mut bytes = good.clone();
        let end = total.next_multiple_of(16);
        bytes.resize(end as usize, 0);
        put_u64(&mut bytes, offset_at(1), end);
        assert_eq!(Archive::parse(&bytes).unwrap().get("empty").unwrap().data, b"");
    }

    #[test]
    fn misaligned_data() {
        let good = sample();
        for delta in [1, 8, 15] {
            let mut bytes = good.clone();
            let offset = u64::from_le_bytes(bytes[offset_at(0)..offset_at(0) + 8].try_into().unwrap());
            put_u64(&mut bytes, offset_at(0), offset + delta);
            assert_eq!(
                Archive::parse(&bytes).unwrap_err(),
                ArchiveError::Misaligned { index: 0 }
            );
        }
    }

    #[test]
    fn pack_rejects_what_parse_would() {
        let long = "a".repeat(NAME_MAX + 1);
        for name in ["", "Init", "a b", "a/b", "a\0b", "é", long.as_str()] {
            assert_eq!(
                pack(&[("ok", b""), (name, b"")]).unwrap_err(),
                ArchiveError::BadName { index: 1 },
                "{name:?}"
            );
        }
        assert_eq!(
            pack(&[("a", b"1"), ("b", b"2"), ("a", b"3")]).unwrap_err(),
            ArchiveError::DuplicateName { index: 2 }
        );
        let names: Vec<String> = (0..=MAX_ENTRIES).map(|i| std::format!("p{i}")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"elf"[..])).collect();
        assert_eq!(pack(&entries).unwrap_err(), ArchiveError::TooManyEntries(65));
        let bytes = pack(&entries[..MAX_ENTRIES]).unwrap();
        let archive = Archive::parse(&bytes).unwrap();
        assert_eq!(archive.len(), MAX_ENTRIES);
        assert_eq!(archive.get("p63").unwrap().data, b"elf");
    }

    #[test]
    fn errors_display_a_phrase() {
        for (e, text) in [
            (ArchiveError::TooShort, "archive is truncated"),
            (ArchiveError::TooManyEntries(70), "70 entries, the limit is 64"),
            (ArchiveError::BadName { index: 3 }, "entry 3 has an invalid name"),
            (
                ArchiveError::Misaligned { index: 1 },
                "entry 1 data is not 16-byte aligned",
            ),
        ] {
            assert_eq!(e.to_string(), text);
        }
        for e in [
            ArchiveError::BadMagic,
            ArchiveError::BadTableSize,
            ArchiveError::DuplicateName { index: 0 },
            ArchiveError::DataOutOfBounds { index: 0 },
        ] {
            assert!(!e.to_string().is_empty());
        }
    }

    /// Parses arbitrary bytes; when they are accepted, checks that every entry
    /// lies inside them and that the accessors agree.
    fn check(bytes: &[u8]) {
        let Ok(archive) = Archive::parse(bytes) else {
            return;
        };
        let range = bytes.as_ptr_range();
        let (lo, hi) = (range.start as usize, range.end as usize);
        let mut n = 0;
        for e in archive.iter() {
            let d = e.data.as_ptr_range();
            assert!(lo <= d.start as usize && d.end as usize <= hi);
            assert!(is_valid_name(e.name));
            assert_eq!(archive.get(e.name), Some(e));
            n += 1;
        }
        assert_eq!(n, archive.len());
    }

    #[test]
    fn never_panics_on_corruption() {
        let good = sample();
        for len in 0..=good.len() {
            check(&good[..len]);
        }
        let mut bytes = good.clone();
        for at in 0..good.len() {
            let orig = good[at];
            for value in [
                0,
                0xff,
                0x80,
                0x7f,
                0x0f,
                0x10,
                orig ^ 1,
                orig ^ 0x80,
                orig.wrapping_add(16),
            ] {
                bytes[at] = value;
                check(&bytes);
                check(&bytes[..at]);
            }
            bytes[at] = orig;
        }
        assert_eq!(bytes, good);
    }
}
