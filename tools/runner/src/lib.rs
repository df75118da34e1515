//! Host-side QEMU runner: finds QEMU and firmware, builds the command lines
//! (interactive, test, benchmark), and drives a QEMU whose serial port is a
//! pipe, with a hard deadline on every run. Used by `cargo run`, the
//! integration tests in `tests/` and the boot benchmark.

mod ktest;
mod qemu;
mod session;

pub use ktest::{KtestReport, checked_cmdline, run_ktests, run_ktests_on};
pub use qemu::{Cpu, Firmware, Images, Launch, Qemu, Serial, blk_device_args, find_ovmf, link_device_args};
pub use session::{Session, SessionError};

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum RunnerError {
    /// `qemu-system-x86_64` is not on PATH.
    QemuMissing,
    /// `$AETHER_QEMU` names a file that does not exist.
    QemuNotAt(PathBuf),
    /// No OVMF firmware for UEFI boots.
    OvmfMissing(Vec<PathBuf>),
    /// The boot arguments would not parse in the kernel (which would then
    /// fall back to its defaults instead of doing what was asked).
    InvalidBootArgs(String),
    Spawn(std::io::Error),
    Session(SessionError),
}

impl fmt::Display for RunnerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunnerError::QemuMissing => f.write_str(
                "qemu-system-x86_64 was not found on PATH.\n\
                 Install it with:  sudo apt-get install -y qemu-system-x86 ovmf\n\
                 (or point AETHER_QEMU at a qemu-system-x86_64 binary)",
            ),
            RunnerError::QemuNotAt(p) => {
                write!(
                    f,
                    "AETHER_QEMU is {}, which is not a file; unset it to use qemu-system-x86_64 from PATH",
                    p.display()
                )
            }
            RunnerError::OvmfMissing(looked) => {
                write!(f, "no OVMF firmware for UEFI boot (looked at:")?;
                for p in looked {
                    write!(f, " {}", p.display())?;
                }
                f.write_str(").\nInstall it with:  sudo apt-get install -y ovmf\n(or set AETHER_OVMF)")
            }
            RunnerError::InvalidBootArgs(e) => write!(f, "invalid kernel command line: {e}"),
            RunnerError::Spawn(e) => write!(f, "could not start QEMU: {e}"),
            RunnerError::Session(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RunnerError {}

impl From<SessionError> for RunnerError {
    fn from(e: SessionError) -> Self {
        RunnerError::Session(e)
    }
}
