//! The sample dataset `default_disk` puts on a new disk: bytes anyone can
//! regenerate from their offset, so the guest's `probe` checksum can be
//! compared with the host's without shipping the data twice.

use std::io;

use aether_abi::fs::Checksum;

/// The sample dataset's size: 256 MiB.
pub const SAMPLE_BYTES: u64 = 256 << 20;
/// Where `default_disk` puts it, and the note about it.
pub const SAMPLE_PATH: &str = "/datasets/sample.bin";
pub const SAMPLE_README_PATH: &str = "/datasets/README";

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Word `i` of the dataset: the `i`-th output (from 0) of the splitmix64
/// generator seeded with 0 (Steele, Lea, Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014; the constants of
/// Vigna's reference `splitmix64.c`).
pub fn sample_word(i: u64) -> u64 {
    let mut z = i.wrapping_add(1).wrapping_mul(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `buf` with the dataset's bytes from `offset`: byte `o` is byte
/// `o % 8` of `sample_word(o / 8)` in little-endian order. The stream has
/// no end; [`SAMPLE_BYTES`] of it are stored.
pub fn sample_bytes(offset: u64, buf: &mut [u8]) {
    // The head up to a word boundary, then whole words, then the tail.
    let head = ((8 - offset % 8) % 8).min(buf.len() as u64) as usize;
    let (first, rest) = buf.split_at_mut(head);
    if head > 0 {
        let w = sample_word(offset / 8).to_le_bytes();
        let at = (offset % 8) as usize;
        first.copy_from_slice(&w[at..at + head]);
    }
    let word0 = (offset + head as u64) / 8;
    let (words, tail) = rest.as_chunks_mut::<8>();
    for (k, w) in words.iter_mut().enumerate() {
        *w = sample_word(word0 + k as u64).to_le_bytes();
    }
    if !tail.is_empty() {
        let w = sample_word(word0 + words.len() as u64).to_le_bytes();
        tail.copy_from_slice(&w[..tail.len()]);
    }
}

/// The [`Checksum`] of the first `len` bytes of the dataset.
pub fn sample_checksum(len: u64) -> u64 {
    let mut sum = Checksum::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        sample_bytes(at, &mut buf[..n]);
        sum.add(&buf[..n]);
        at += n as u64;
    }
    sum.value()
}

/// The first `len` bytes of the dataset as a reader (streamed into the
/// image), summed as they are read.
pub(crate) struct SampleReader {
    at: u64,
    len: u64,
    sum: Checksum,
}

impl SampleReader {
    pub fn new(len: u64) -> SampleReader {
        SampleReader {
            at: 0,
            len,
            sum: Checksum::default(),
        }
    }

    /// The checksum of what has been read.
    pub fn checksum(&self) -> u64 {
        self.sum.value()
    }
}

impl io::Read for SampleReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.len - self.at).min(buf.len() as u64) as usize;
        sample_bytes(self.at, &mut buf[..n]);
        self.sum.add(&buf[..n]);
        self.at += n as u64;
        Ok(n)
    }
}

/// What `/datasets/README` says.
pub(crate) fn readme(len: u64, checksum: u64) -> String {
    format!(
        "sample.bin: {len} bytes of generated data, AetherOS's sample dataset. Byte o is byte o % 8 \
         (little-endian) of the splitmix64 generator's output number o / 8, seeded with 0 \
         (aether_disk::sample_bytes). Its checksum (aether_abi::fs::Checksum, as probe prints it) \
         is {checksum:016x}.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_splitmix64_seeded_with_0() {
        // The first outputs of Vigna's splitmix64.c with x = 0.
        assert_eq!(sample_word(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(sample_word(1), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(sample_word(2), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn bytes_do_not_depend_on_how_they_are_asked_for() {
        let mut whole = vec![0u8; 1000];
        sample_bytes(0, &mut whole);
        for (off, len) in [(0, 1), (3, 5), (5, 19), (8, 8), (13, 987), (999, 1), (0, 1000)] {
            let mut part = vec![0u8; len];
            sample_bytes(off as u64, &mut part);
            assert_eq!(part, whole[off..off + len], "offset {off}, {len} bytes");
        }
        let mut sum = Checksum::default();
        sum.add(&whole);
        assert_eq!(sample_checksum(1000), sum.value());
    }
}
