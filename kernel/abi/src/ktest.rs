//! The in-kernel test protocol: the lines a test-mode kernel prints and the
//! QEMU exit codes it ends with, read back by the host harness.
//!
//! One line per test, `KTEST ok <name> <micros>us` or
//! `KTEST FAIL <name> <message>`, then `KTEST DONE passed=<n> failed=<m>`.

use core::fmt;

/// Value written to QEMU's `isa-debug-exit` port (0xf4); QEMU exits with
/// status `(value << 1) | 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum QemuExitCode {
    Success = 0x10,
    Failure = 0x11,
}

impl QemuExitCode {
    /// I/O port of the `isa-debug-exit` device the runner adds.
    pub const PORT: u16 = 0xf4;

    /// The status the QEMU process exits with.
    pub const fn process_status(self) -> i32 {
        ((self as i32) << 1) | 1
    }

    pub fn from_process_status(status: i32) -> Option<Self> {
        [QemuExitCode::Success, QemuExitCode::Failure]
            .into_iter()
            .find(|c| c.process_status() == status)
    }
}

pub const LINE_PREFIX: &str = "KTEST";

/// One parsed line of test output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KtestLine<'a> {
    Passed { name: &'a str, micros: u64 },
    Failed { name: &'a str, message: &'a str },
    Done { passed: u32, failed: u32 },
}

impl<'a> KtestLine<'a> {
    /// Parses one line of serial output; `None` for anything that is not a
    /// well-formed test line (logs, firmware noise).
    pub fn parse(line: &'a str) -> Option<Self> {
        let rest = line.trim_end().strip_prefix(LINE_PREFIX)?.strip_prefix(' ')?;
        let (tag, rest) = rest.split_once(' ')?;
        match tag {
            "ok" => {
                let (name, micros) = rest.split_once(' ')?;
                let micros = micros.strip_suffix("us")?.parse().ok()?;
                Some(KtestLine::Passed { name, micros })
            }
            "FAIL" => {
                let (name, message) = rest.split_once(' ').unwrap_or((rest, ""));
                Some(KtestLine::Failed { name, message })
            }
            "DONE" => {
                let (p, f) = rest.split_once(' ')?;
                let passed = p.strip_prefix("passed=")?.parse().ok()?;
                let failed = f.strip_prefix("failed=")?.parse().ok()?;
                Some(KtestLine::Done { passed, failed })
            }
            _ => None,
        }
    }
}

impl fmt::Display for KtestLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KtestLine::Passed { name, micros } => write!(f, "{LINE_PREFIX} ok {name} {micros}us"),
            KtestLine::Failed { name, message } => write!(f, "{LINE_PREFIX} FAIL {name} {message}"),
            KtestLine::Done { passed, failed } => {
                write!(f, "{LINE_PREFIX} DONE passed={passed} failed={failed}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    #[test]
    fn exit_codes_match_qemu_convention() {
        assert_eq!(QemuExitCode::Success.process_status(), 33);
        assert_eq!(QemuExitCode::Failure.process_status(), 35);
        assert_eq!(QemuExitCode::from_process_status(35), Some(QemuExitCode::Failure));
        assert_eq!(QemuExitCode::from_process_status(1), None);
    }

    #[test]
    fn lines_round_trip() {
        for l in [
            KtestLine::Passed {
                name: "heap_grow",
                micros: 12,
            },
            KtestLine::Failed {
                name: "x",
                message: "expected 3, got 2",
            },
            KtestLine::Done { passed: 9, failed: 1 },
        ] {
            assert_eq!(KtestLine::parse(&l.to_string()), Some(l));
        }
        assert_eq!(
            KtestLine::parse("KTEST FAIL lonely"),
            Some(KtestLine::Failed {
                name: "lonely",
                message: ""
            })
        );
    }

    #[test]
    fn noise_is_not_a_test_line() {
        for l in [
            "",
            "KTEST",
            "KTEST ok",
            "KTEST ok a b",
            "KTESTok a 1us",
            "INFO KTEST ok a 1us",
            "KTEST DONE passed=1",
        ] {
            assert_eq!(KtestLine::parse(l), None, "{l:?}");
        }
    }
}

/// The disk images of the storage tests (tests/storage.rs writes them, the
/// kernel tests check them) and the page checksum of the storage benchmark
/// (the kernel prints it, the bench recomputes it on the host).
pub mod storage {
    pub const SECTOR: usize = 512;
    /// Where the read-write test writes, and what its sector starts with.
    pub const WRITE_SECTOR: u64 = 2000;
    pub const WRITE_TAG: &[u8; 8] = b"GUESTWR1";
    /// The byte the rest of the written sector is filled with.
    pub const WRITE_FILL: u8 = 0x5a;
    /// Each sector of a test image starts with this after its number.
    pub const TAG: &[u8; 8] = b"AETHBLK1";

    /// Sector `i` of a test image: `i` (u64 LE), [`TAG`], then the bytes
    /// `(i * 7 + j) % 251`.
    pub fn sector(i: u64) -> [u8; SECTOR] {
        let mut s = [0u8; SECTOR];
        for (j, b) in s.iter_mut().enumerate() {
            *b = ((i.wrapping_mul(7).wrapping_add(j as u64)) % 251) as u8;
        }
        s[..8].copy_from_slice(&i.to_le_bytes());
        s[8..16].copy_from_slice(TAG);
        s
    }

    /// A sparse checksum of a stream: FNV-1a over the first 8 bytes of
    /// every 4 KiB page, with its offset (cheap under TCG; a misplaced,
    /// missing or repeated page changes it).
    pub struct PageSum(u64);

    impl Default for PageSum {
        fn default() -> Self {
            PageSum(0xcbf2_9ce4_8422_2325)
        }
    }

    impl PageSum {
        /// Adds `bytes`, which sit at `offset` of the stream (a multiple of
        /// 4 KiB).
        pub fn add(&mut self, offset: u64, bytes: &[u8]) {
            let mut at = 0;
            while at + 8 <= bytes.len() {
                let mut word = [0u8; 8];
                word.copy_from_slice(&bytes[at..at + 8]);
                let word = u64::from_le_bytes(word) ^ offset.wrapping_add(at as u64);
                for b in word.to_le_bytes() {
                    self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
                }
                at += 4096;
            }
        }

        pub fn value(&self) -> u64 {
            self.0
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn sectors_name_themselves_and_page_sums_see_order() {
            let s = sector(300);
            assert_eq!((&s[..8], &s[8..16]), (&300u64.to_le_bytes()[..], &TAG[..]));
            assert_ne!(sector(1), sector(2));
            let (a, b) = ([1u8; 4096], [2u8; 4096]);
            let mut one = PageSum::default();
            one.add(0, &a);
            one.add(4096, &b);
            let mut two = PageSum::default();
            two.add(0, &b);
            two.add(4096, &a);
            assert_ne!(one.value(), two.value());
            // Whole stream at once or page by page: the same.
            let mut whole = PageSum::default();
            whole.add(0, &[a, b].concat());
            assert_eq!(whole.value(), one.value());
        }
    }
}

/// The power-cut test's write storm (`userland/programs/src/bin/storm.rs`,
/// `tests/powercut.rs`): the record both write and check.
pub mod storm {
    use alloc::format;

    use crate::fs::Checksum;

    /// Bytes per record.
    pub const RECORD: usize = 64;

    /// Record `seq`: `seq NNNNNNNNNN sum HHHHHHHHHHHHHHHH` (the sum is the
    /// [`Checksum`] of the `seq ...` part), padded with `.`, ended by a
    /// newline.
    pub fn record(seq: u64) -> [u8; RECORD] {
        let head = format!("seq {seq:010}");
        let mut sum = Checksum::default();
        sum.add(head.as_bytes());
        let text = format!("{head} sum {:016x}", sum.value());
        let mut r = [b'.'; RECORD];
        r[..text.len()].copy_from_slice(text.as_bytes());
        r[RECORD - 1] = b'\n';
        r
    }
}
