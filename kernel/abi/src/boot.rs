//! Boot arguments (the kernel command line) and the serial markers the host
//! waits for.
//!
//! The host passes the command line through QEMU's fw_cfg as the file
//! [`FW_CFG_CMDLINE`] (`-fw_cfg name=opt/aetheros/cmdline,string=...`), so
//! one boot image serves interactive runs, kernel tests and benchmarks.

use core::fmt;

/// fw_cfg file name under which the host passes the kernel command line.
pub const FW_CFG_CMDLINE: &str = "opt/aetheros/cmdline";

/// Longest command line the kernel accepts; longer ones are rejected.
pub const CMDLINE_MAX: usize = 512;

/// The console's prompt.
pub const PROMPT: &str = "aether> ";

/// First word of the line the kernel prints once the console is ready for
/// input, followed by `entry_to_prompt_ns=<n>` (kernel entry to this line, by
/// the TSC). Hosts time "QEMU start -> marker" on it.
pub const CONSOLE_READY_MARKER: &str = "AETHER_CONSOLE_READY";

/// What the kernel does after boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode<'a> {
    /// Serial console (the default).
    #[default]
    Console,
    /// Run the in-kernel tests (all default ones, or the comma-separated
    /// names given), print one result line each, exit QEMU with pass/fail.
    Test(Option<&'a str>),
    /// Print the console-ready marker, then power off (boot benchmark).
    Bench,
}

/// What a panic or unexpected CPU exception does after reporting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnPanic {
    /// Halt the CPU (interactive runs: the report stays on screen).
    #[default]
    Halt,
    /// Exit QEMU through `isa-debug-exit` with the failure code.
    Exit,
}

/// Kernel log verbosity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }
}

/// The parsed kernel command line: space-separated words
/// `mode=console|test|bench`, `tests=NAME[,NAME..]`, `panic=halt|exit`,
/// `log=error|warn|info|debug|trace`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootArgs<'a> {
    pub mode: Mode<'a>,
    pub on_panic: OnPanic,
    pub log: LogLevel,
}

/// Why a command line was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    TooLong(usize),
    UnknownWord(&'a str),
    BadValue {
        key: &'a str,
        value: &'a str,
    },
    /// `tests=` without `mode=test`.
    TestsWithoutTestMode,
}

impl fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdlineError::TooLong(n) => {
                write!(f, "command line is {n} bytes, the limit is {CMDLINE_MAX}")
            }
            CmdlineError::UnknownWord(w) => write!(f, "unknown word '{w}'"),
            CmdlineError::BadValue { key, value } => write!(f, "bad value '{value}' for '{key}'"),
            CmdlineError::TestsWithoutTestMode => f.write_str("'tests=' needs 'mode=test'"),
        }
    }
}

impl<'a> BootArgs<'a> {
    /// Parses a command line. An empty line gives the defaults.
    pub fn parse(line: &'a str) -> Result<Self, CmdlineError<'a>> {
        if line.len() > CMDLINE_MAX {
            return Err(CmdlineError::TooLong(line.len()));
        }
        let mut args = BootArgs::default();
        let mut tests = None;
        for word in line.split_ascii_whitespace() {
            let (key, value) = word.split_once('=').ok_or(CmdlineError::UnknownWord(word))?;
            let bad = CmdlineError::BadValue { key, value };
            match key {
                "mode" => {
                    args.mode = match value {
                        "console" => Mode::Console,
                        "test" => Mode::Test(None),
                        "bench" => Mode::Bench,
                        _ => return Err(bad),
                    }
                }
                "tests" => {
                    let valid = !value.is_empty()
                        && value
                            .split(',')
                            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
                    if !valid {
                        return Err(bad);
                    }
                    tests = Some(value);
                }
                "panic" => {
                    args.on_panic = match value {
                        "halt" => OnPanic::Halt,
                        "exit" => OnPanic::Exit,
                        _ => return Err(bad),
                    }
                }
                "log" => args.log = LogLevel::parse(value).ok_or(bad)?,
                _ => return Err(CmdlineError::UnknownWord(word)),
            }
        }
        if let Some(names) = tests {
            match args.mode {
                Mode::Test(_) => args.mode = Mode::Test(Some(names)),
                _ => return Err(CmdlineError::TestsWithoutTestMode),
            }
        }
        Ok(args)
    }
}

/// Formats as a command line that [`BootArgs::parse`] reads back.
impl fmt::Display for BootArgs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            Mode::Console => f.write_str("mode=console")?,
            Mode::Test(None) => f.write_str("mode=test")?,
            Mode::Test(Some(names)) => write!(f, "mode=test tests={names}")?,
            Mode::Bench => f.write_str("mode=bench")?,
        }
        let panic = match self.on_panic {
            OnPanic::Halt => "halt",
            OnPanic::Exit => "exit",
        };
        write!(f, " panic={panic} log={}", self.log.as_str())
    }
}

/// The console-ready line: `AETHER_CONSOLE_READY entry_to_prompt_ns=<n>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsoleReady {
    pub entry_to_prompt_ns: u64,
}

impl ConsoleReady {
    /// Finds and parses the marker in one line of serial output (which may
    /// carry escape codes or a timestamp before it).
    pub fn find_in(line: &str) -> Option<Self> {
        let at = line.find(CONSOLE_READY_MARKER)?;
        let rest = line[at + CONSOLE_READY_MARKER.len()..].trim();
        let ns = rest.strip_prefix("entry_to_prompt_ns=")?;
        let ns = ns.split_ascii_whitespace().next()?.parse().ok()?;
        Some(ConsoleReady { entry_to_prompt_ns: ns })
    }
}

impl fmt::Display for ConsoleReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{CONSOLE_READY_MARKER} entry_to_prompt_ns={}",
            self.entry_to_prompt_ns
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    #[test]
    fn empty_line_is_console_mode_with_defaults() {
        assert_eq!(BootArgs::parse("").unwrap(), BootArgs::default());
        assert_eq!(BootArgs::parse("  \t ").unwrap().mode, Mode::Console);
    }

    #[test]
    fn display_round_trips() {
        for args in [
            BootArgs::default(),
            BootArgs {
                mode: Mode::Test(Some("a,b_c")),
                on_panic: OnPanic::Exit,
                log: LogLevel::Debug,
            },
            BootArgs {
                mode: Mode::Test(None),
                on_panic: OnPanic::Exit,
                log: LogLevel::Warn,
            },
            BootArgs {
                mode: Mode::Bench,
                on_panic: OnPanic::Halt,
                log: LogLevel::Error,
            },
        ] {
            let line = args.to_string();
            assert_eq!(BootArgs::parse(&line).unwrap(), args, "{line}");
        }
    }

    #[test]
    fn rejects_bad_input_with_the_offending_word() {
        assert_eq!(BootArgs::parse("quiet"), Err(CmdlineError::UnknownWord("quiet")));
        assert_eq!(BootArgs::parse("foo=1"), Err(CmdlineError::UnknownWord("foo=1")));
        assert_eq!(
            BootArgs::parse("mode=fast"),
            Err(CmdlineError::BadValue {
                key: "mode",
                value: "fast"
            })
        );
        assert_eq!(
            BootArgs::parse("mode=test tests=a,,b"),
            Err(CmdlineError::BadValue {
                key: "tests",
                value: "a,,b"
            })
        );
        assert_eq!(
            BootArgs::parse("mode=test tests=a;b"),
            Err(CmdlineError::BadValue {
                key: "tests",
                value: "a;b"
            })
        );
        assert_eq!(BootArgs::parse("tests=a"), Err(CmdlineError::TestsWithoutTestMode));
        let long = "log=info ".repeat(100);
        assert_eq!(BootArgs::parse(&long), Err(CmdlineError::TooLong(long.len())));
    }

    #[test]
    fn tests_before_mode_is_accepted() {
        let args = BootArgs::parse("tests=x mode=test").unwrap();
        assert_eq!(args.mode, Mode::Test(Some("x")));
    }

    #[test]
    fn console_ready_marker_round_trips_and_ignores_noise() {
        let m = ConsoleReady {
            entry_to_prompt_ns: 1_234_567,
        };
        let line = m.to_string();
        assert_eq!(ConsoleReady::find_in(&line), Some(m));
        let noisy = std::format!("\x1b[2J\x1b[01;01H{line}\r");
        assert_eq!(ConsoleReady::find_in(&noisy), Some(m));
        assert_eq!(ConsoleReady::find_in("AETHER_CONSOLE_READY entry_to_prompt_ns=x"), None);
        assert_eq!(ConsoleReady::find_in("hello"), None);
    }
}
