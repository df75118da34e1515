//! The boot arguments: read once from fw_cfg (see `aether_abi::boot`),
//! parsed, and kept for the rest of the kernel's life.

use core::fmt;

use aether_abi::boot::{BootArgs, CMDLINE_MAX, FW_CFG_CMDLINE};
use spin::Once;

use crate::arch::fwcfg::{self, FwCfgError};

static CMDLINE: Once<heapless::String<CMDLINE_MAX>> = Once::new();
static ARGS: Once<BootArgs<'static>> = Once::new();

/// Why the command line was not used (logged once logging is up).
pub enum Problem {
    NotUtf8,
    TooLong(u32),
    Invalid(aether_abi::boot::CmdlineError<'static>),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotUtf8 => f.write_str("kernel command line is not UTF-8"),
            Problem::TooLong(n) => write!(f, "kernel command line is {n} bytes, the limit is {CMDLINE_MAX}"),
            Problem::Invalid(e) => write!(f, "kernel command line '{}': {e}", cmdline()),
        }
    }
}

/// Reads and parses the command line (once); on a bad one, the defaults
/// apply and the problem is returned for logging. No command line at all
/// (not under our runner) means the defaults, silently.
pub fn load() -> (BootArgs<'static>, Option<Problem>) {
    let mut problem = None;
    let line = CMDLINE.call_once(|| {
        let mut buf = [0u8; CMDLINE_MAX];
        let len = match fwcfg::read_file(FW_CFG_CMDLINE, &mut buf) {
            Ok(n) => n,
            Err(FwCfgError::TooLarge(n)) => {
                problem = Some(Problem::TooLong(n));
                0
            }
            Err(FwCfgError::NoDevice | FwCfgError::NotFound) => 0,
        };
        let mut s = heapless::String::new();
        match core::str::from_utf8(&buf[..len]) {
            // Fits: `len <= CMDLINE_MAX`.
            Ok(text) => {
                let _ = s.push_str(text.trim_end_matches('\0'));
            }
            Err(_) => problem = Some(Problem::NotUtf8),
        }
        s
    });
    let args = match (&problem, BootArgs::parse(line)) {
        (None, Ok(a)) => a,
        (None, Err(e)) => {
            problem = Some(Problem::Invalid(e));
            BootArgs::default()
        }
        (Some(_), _) => BootArgs::default(),
    };
    (*ARGS.call_once(|| args), problem)
}

/// The boot arguments (defaults before [`load`]).
pub fn args() -> BootArgs<'static> {
    ARGS.get().copied().unwrap_or_default()
}

pub fn cmdline() -> &'static str {
    CMDLINE.get().map_or("", |s| s.as_str())
}
