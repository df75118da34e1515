//! The events file (`/ops/events`): one line per state change, readable
//! with `cat`, each with its own checksum so that a torn last line (or a
//! damaged one) is told apart and skipped by whoever reads the file:
//!
//! ```text
//! <at_ms> <job_id> <FROM> <TO> <crc>\n
//! 1767225600123 3 RUNNING SUCCEEDED 5d0c3a9e
//! ```
//!
//! `FROM` and `TO` are [`JobState::as_str`]; `crc` is the CRC-32 (IEEE)
//! of the line before its last space, as 8 lowercase hex digits.

use alloc::format;
use alloc::string::String;

use aether_abi::job::JobState;
use aether_abi::link::crc32;

use crate::Event;

/// The longest line [`line()`] writes (two u64s, two state names, the CRC).
pub const LINE_MAX: usize = 20 + 1 + 20 + 1 + 9 + 1 + 9 + 1 + 8 + 1;

/// An event's line, `\n` included.
pub fn line(ev: &Event) -> String {
    let text = format!("{} {} {} {}", ev.at_ms, ev.job_id, ev.from.as_str(), ev.to.as_str());
    let crc = crc32(text.as_bytes());
    format!("{text} {crc:08x}\n")
}

/// The event a line (without its `\n`) holds, or `None` if it is not a
/// whole, unchanged one.
pub fn parse(line: &str) -> Option<Event> {
    let (text, crc) = line.rsplit_once(' ')?;
    if crc.len() != 8 || u32::from_str_radix(crc, 16).ok()? != crc32(text.as_bytes()) {
        return None;
    }
    let mut fields = text.split(' ');
    let at_ms = fields.next()?.parse().ok()?;
    let job_id = fields.next()?.parse().ok()?;
    let from = JobState::parse(fields.next()?)?;
    let to = JobState::parse(fields.next()?)?;
    if fields.next().is_some() {
        return None;
    }
    Some(Event {
        job_id,
        from,
        to,
        at_ms,
    })
}
