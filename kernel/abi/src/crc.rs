//! Table-driven reflected CRC-32s: the IEEE one (the link's frames) and
//! Castagnoli's (the disk's blocks), from one table generator.

/// The 256-entry table of the reflected CRC-32 with reversed polynomial
/// `poly`.
pub const fn table(poly: u32) -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { poly ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// Feeds `bytes` into a running CRC `c` (start with `!0`, finish with `!`).
pub fn update(table: &[u32; 256], mut c: u32, bytes: impl IntoIterator<Item = u8>) -> u32 {
    for b in bytes {
        c = table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    c
}

/// CRC-32 (IEEE 802.3, as zlib): `crc32(b"123456789") == 0xCBF4_3926`.
pub const IEEE: [u32; 256] = table(0xEDB8_8320);
/// CRC-32C (Castagnoli, as iSCSI and ext4): `0xE306_9283` for the same.
pub const CASTAGNOLI: [u32; 256] = table(0x82F6_3B78);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values() {
        assert_eq!(!update(&IEEE, !0, *b"123456789"), 0xCBF4_3926);
        assert_eq!(!update(&CASTAGNOLI, !0, *b"123456789"), 0xE306_9283);
    }
}
