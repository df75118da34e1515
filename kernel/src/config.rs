//! The boot arguments: read once from fw_cfg (see `aether_abi::boot`),
//! parsed, and kept for the rest of the kernel's life.

use aether_abi::boot::{BootArgs, CMDLINE_MAX, FW_CFG_CMDLINE};
use spin::Once;

use crate::arch::fwcfg;

static CMDLINE: Once<heapless::String<CMDLINE_MAX>> = Once::new();
static ARGS: Once<BootArgs<'static>> = Once::new();

/// Why the command line was not used (logged once logging is up).
pub enum Problem {
    NotUtf8,
    Invalid(aether_abi::boot::CmdlineError<'static>),
}

/// Reads and parses the command line; on a bad one, the defaults apply and
/// the problem is returned for logging.
pub fn load() -> (BootArgs<'static>, Option<Problem>) {
    let line = CMDLINE.call_once(|| {
        let mut buf = [0u8; CMDLINE_MAX];
        let len = fwcfg::read_file(FW_CFG_CMDLINE, &mut buf).unwrap_or(0);
        let mut s = heapless::String::new();
        match core::str::from_utf8(&buf[..len]) {
            Ok(text) => {
                let _ = s.push_str(text.trim_end_matches('\0'));
            }
            Err(_) => {
                let _ = s.push_str("\u{fffd}");
            }
        }
        s
    });
    let (args, problem) = if line.as_str() == "\u{fffd}" {
        (BootArgs::default(), Some(Problem::NotUtf8))
    } else {
        match BootArgs::parse(line) {
            Ok(a) => (a, None),
            Err(e) => (BootArgs::default(), Some(Problem::Invalid(e))),
        }
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
