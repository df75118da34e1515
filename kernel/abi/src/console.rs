//! Console reports: the documents console commands print with `--json`, one
//! per line, parsed back by tests and scripts.

use serde::{Deserialize, Serialize};

/// `uptime --json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UptimeReport {
    /// Monotonic nanoseconds since kernel entry.
    pub uptime_ns: u64,
    /// Wall-clock time of kernel entry (CMOS RTC, UTC), Unix seconds.
    pub boot_unix_s: u64,
}

/// `mem --json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemReport {
    pub frame_size: u64,
    pub frames_total: u64,
    pub frames_used: u64,
    pub frames_free: u64,
    /// Bytes of heap currently mapped (it grows on demand).
    pub heap_size: u64,
    pub heap_used: u64,
    pub heap_free: u64,
    /// The most the heap may grow to.
    pub heap_limit: u64,
    /// Free memory is still being written once after boot (docs/boot.md).
    pub memory_warming: bool,
}

/// `help --json`: one document per command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandHelp<'a> {
    pub name: &'a str,
    pub usage: &'a str,
    pub summary: &'a str,
}
