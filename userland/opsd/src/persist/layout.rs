//! Where opsd keeps its jobs on the disk (docs/jobs.md, "Persistence"):
//! the paths under `/ops`, and what a name in `/ops/jobs` says.
//!
//! ```text
//! /ops/jobs/<id>.rec               the job's record (record.rs), replaced whole
//! /ops/jobs/<id>.rec.tmp           a record being written (renamed over .rec)
//! /ops/jobs/<id>.stdout.<start>    a log segment: the stream's bytes from offset <start>
//! /ops/jobs/<id>.stderr.<start>
//! /ops/events                      state changes, one checksummed line each (events.rs)
//! /ops/events.1                    the previous events file
//! ```
//!
//! Numbers are decimal without leading zeros, so every id and offset has
//! exactly one name (`01.rec` is not opsd's).

use alloc::format;
use alloc::string::String;

use aether_abi::job::Stream;

pub const OPS_DIR: &str = "/ops";
pub const JOBS_DIR: &str = "/ops/jobs";
pub const EVENTS: &str = "/ops/events";
pub const EVENTS_OLD: &str = "/ops/events.1";

/// What a name in [`JOBS_DIR`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name {
    Record(u64),
    /// Left by a replace that did not finish (the `.rec` is the last whole
    /// one).
    RecordTmp(u64),
    /// The bytes of `stream` from offset `start` on.
    Segment {
        job_id: u64,
        stream: Stream,
        start: u64,
    },
}

impl Name {
    pub fn job_id(self) -> u64 {
        match self {
            Name::Record(id) | Name::RecordTmp(id) => id,
            Name::Segment { job_id, .. } => job_id,
        }
    }
}

pub const fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }
}

/// A decimal number as this layout writes it (no sign, no leading zero).
fn number(s: &str) -> Option<u64> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// What `name` (an entry of [`JOBS_DIR`]) is, or `None` if it is not one
/// of opsd's names. Job ids start at 1.
pub fn parse(name: &str) -> Option<Name> {
    let (id, rest) = name.split_once('.')?;
    let job_id = number(id).filter(|&id| id > 0)?;
    match rest {
        "rec" => Some(Name::Record(job_id)),
        "rec.tmp" => Some(Name::RecordTmp(job_id)),
        _ => {
            let (stream, start) = rest.split_once('.')?;
            let stream = match stream {
                "stdout" => Stream::Stdout,
                "stderr" => Stream::Stderr,
                _ => return None,
            };
            Some(Name::Segment {
                job_id,
                stream,
                start: number(start)?,
            })
        }
    }
}

pub fn record_path(job_id: u64) -> String {
    format!("{JOBS_DIR}/{job_id}.rec")
}

pub fn record_tmp_path(job_id: u64) -> String {
    format!("{JOBS_DIR}/{job_id}.rec.tmp")
}

pub fn segment_path(job_id: u64, stream: Stream, start: u64) -> String {
    format!("{JOBS_DIR}/{job_id}.{}.{start}", stream_name(stream))
}

/// The path of an entry of [`JOBS_DIR`].
pub fn in_jobs_dir(name: &str) -> String {
    format!("{JOBS_DIR}/{name}")
}
