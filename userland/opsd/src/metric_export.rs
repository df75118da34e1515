//! Metric points on the disk (docs/telemetry.md, "Exports"): one JSON
//! line per accepted point in `/ops/metrics/<job>/<name>.jsonl`,
//!
//! ```text
//! {"ts_ms":1796155726603,"step":3,"kind":"gauge","value":0.4,"tags":{"split":"val"}}
//! ```
//!
//! (`value` is a number, or `"NaN"`, `"Infinity"`, `"-Infinity"` as the
//! trainers' lines spell them; `step` may be `null`). Lines are kept in
//! memory and appended about once a second, and at once when a job ends;
//! each job writes at most [`JOB_BYTES_MAX`] (then its points stay in the
//! registry only, counted in `dropped`), and at most [`PENDING_MAX`] bytes
//! wait in memory (beyond: dropped, counted).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use core::fmt::Write as _;

use aether_abi::fs::FsError;
use aether_abi::metric::MetricPoint;

use crate::persist::Store;

pub const METRICS_DIR: &str = "/ops/metrics";
/// Bytes of lines one job writes at most.
pub const JOB_BYTES_MAX: u64 = 16 << 20;
/// Bytes of lines waiting in memory at most.
pub const PENDING_MAX: usize = 4 << 20;
/// How often waiting lines are appended.
pub const FLUSH_EVERY_MS: u64 = 1000;

#[derive(Default)]
pub struct Exports {
    pending: BTreeMap<(u64, String), String>,
    pending_bytes: usize,
    written: BTreeMap<u64, u64>,
    dirs: BTreeSet<u64>,
    due: bool,
    last_flush_ms: u64,
    /// Lines not written (a bound, or a failed write).
    pub dropped: u64,
    /// There is a disk to write to (else nothing is kept).
    pub enabled: bool,
}

/// The file of a job's metric.
pub fn path(job_id: u64, name: &str) -> String {
    format!("{METRICS_DIR}/{job_id}/{name}.jsonl")
}

impl Exports {
    /// An accepted point of a job.
    pub fn add(&mut self, job_id: u64, ts_ms: u64, point: &MetricPoint) {
        if !self.enabled {
            return;
        }
        if self.pending_bytes >= PENDING_MAX || self.written.get(&job_id).copied().unwrap_or(0) >= JOB_BYTES_MAX {
            self.dropped += 1;
            return;
        }
        let mut line = String::with_capacity(96);
        let _ = write!(line, "{{\"ts_ms\":{ts_ms},\"step\":");
        match point.step {
            Some(s) => {
                let _ = write!(line, "{s}");
            }
            None => line.push_str("null"),
        }
        let _ = write!(line, ",\"kind\":\"{}\",\"value\":", point.kind);
        let v = point.value;
        if v.is_nan() {
            line.push_str("\"NaN\"");
        } else if v.is_infinite() {
            line.push_str(if v > 0.0 { "\"Infinity\"" } else { "\"-Infinity\"" });
        } else {
            let _ = write!(line, "{v}");
        }
        line.push_str(",\"tags\":{");
        for (i, t) in point.tags.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            aether_abi::json::string(&mut line, &t.key);
            line.push(':');
            aether_abi::json::string(&mut line, &t.value);
        }
        line.push_str("}}\n");
        self.pending_bytes += line.len();
        self.pending
            .entry((job_id, String::from(point.name.as_str())))
            .or_default()
            .push_str(&line);
    }

    /// A job ended: its lines go out at the next flush.
    pub fn job_ended(&mut self) {
        self.due = true;
    }

    /// Appends what waits, when due (a second since the last time, a job
    /// ended, or much waiting).
    pub fn flush(&mut self, store: &mut dyn Store, now_ms: u64) {
        let due = self.due
            || now_ms.saturating_sub(self.last_flush_ms) >= FLUSH_EVERY_MS
            || self.pending_bytes >= PENDING_MAX / 2;
        if !due || self.pending.is_empty() {
            return;
        }
        self.due = false;
        self.last_flush_ms = now_ms;
        let pending = core::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        for ((job, name), lines) in pending {
            if let Err(_e) = self.append(store, job, &name, &lines) {
                self.dropped += lines.lines().count() as u64;
            }
        }
    }

    fn append(&mut self, store: &mut dyn Store, job: u64, name: &str, lines: &str) -> Result<(), FsError> {
        if !self.dirs.contains(&job) {
            for dir in ["/ops", METRICS_DIR, &format!("{METRICS_DIR}/{job}")] {
                match store.mkdir(dir) {
                    Ok(()) | Err(FsError::Exists) => {}
                    Err(e) => return Err(e),
                }
            }
            self.dirs.insert(job);
        }
        store.append(&path(job, name), lines.as_bytes())?;
        *self.written.entry(job).or_default() += lines.len() as u64;
        Ok(())
    }

    /// A job's record went: its files stay, its count goes.
    pub fn forget_job(&mut self, job_id: u64) {
        self.written.remove(&job_id);
        self.dirs.remove(&job_id);
    }
}
