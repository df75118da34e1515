//! QEMU fw_cfg file directory decoding (QEMU docs/specs/fw_cfg.rst).
//!
//! The directory (selector 0x0019) is a big-endian `u32` count followed by
//! 64-byte entries: `u32 size`, `u16 select`, `u16 reserved`, `name[56]`
//! (NUL-terminated).

/// Selector of the signature ("QEMU").
pub const SELECT_SIGNATURE: u16 = 0x0000;
/// Selector of the file directory.
pub const SELECT_FILE_DIR: u16 = 0x0019;
pub const SIGNATURE: [u8; 4] = *b"QEMU";
pub const DIR_ENTRY_LEN: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub size: u32,
    pub select: u16,
}

/// Decodes one directory entry and returns it if its name is `name`.
pub fn match_entry(entry: &[u8; DIR_ENTRY_LEN], name: &str) -> Option<FileEntry> {
    let raw = &entry[8..];
    let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    (&raw[..len] == name.as_bytes()).then(|| FileEntry {
        size: u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]),
        select: u16::from_be_bytes([entry[4], entry[5]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(size: u32, select: u16, name: &[u8]) -> [u8; DIR_ENTRY_LEN] {
        let mut e = [0u8; DIR_ENTRY_LEN];
        e[..4].copy_from_slice(&size.to_be_bytes());
        e[4..6].copy_from_slice(&select.to_be_bytes());
        e[8..8 + name.len()].copy_from_slice(name);
        e
    }

    #[test]
    fn matches_exact_names_only() {
        let e = entry(17, 0x0021, b"opt/aetheros/cmdline");
        assert_eq!(
            match_entry(&e, "opt/aetheros/cmdline"),
            Some(FileEntry { size: 17, select: 0x21 })
        );
        assert_eq!(match_entry(&e, "opt/aetheros"), None);
        assert_eq!(match_entry(&e, "opt/aetheros/cmdline2"), None);
    }

    #[test]
    fn unterminated_name_uses_all_56_bytes() {
        let e = entry(1, 2, &[b'a'; 56]);
        let name: std::string::String = std::iter::repeat_n('a', 56).collect();
        assert!(match_entry(&e, &name).is_some());
    }
}
