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
