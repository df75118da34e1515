//! `state_dir/state.json`: the jobs a supervisor tracks, so that the next
//! one (after a restart of the bridge) re-adopts them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::records::ExitRecord;

pub const STATE_FILE: &str = "state.json";
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StateFile {
    pub version: u32,
    /// The incarnation of the opsd these jobs were started for (None until
    /// one connected): a different one means opsd restarted and these
    /// jobs are nobody's (docs/jobs.md, "Restarts").
    #[serde(default)]
    pub owner: Option<u64>,
    pub jobs: Vec<JobEntry>,
}

/// One job, as recorded. Offsets are what `poll` has delivered: a new
/// supervisor continues from them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobEntry {
    pub job_id: u64,
    pub job_dir: PathBuf,
    /// 0 while the shim is being started (the entry is written first, so a
    /// crash right then still leaves the job on record; a new supervisor
    /// then reads `shim.json` from the job directory).
    pub shim_pid: i32,
    /// `/proc/<shim_pid>/stat` field 22: tells the shim from a reused pid.
    pub shim_start_time: u64,
    /// The job's pid (= its process group id).
    pub pid: i32,
    pub job_start_time: u64,
    pub started_ms: u64,
    pub stdout_offset: u64,
    pub stderr_offset: u64,
    /// Start of the stdout line the metric parser has not finished (<=
    /// `stdout_offset`).
    pub metric_offset: u64,
    pub stop_requested_ms: Option<u64>,
    pub metrics: u64,
    pub malformed_metrics: u64,
    /// Known once the job has ended (its exit record, or that it was lost).
    pub ended: Option<Ended>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    Exited(ExitRecord),
    /// The shim died without writing `exit.json`.
    Lost {
        detected_ms: u64,
        message: String,
    },
}
