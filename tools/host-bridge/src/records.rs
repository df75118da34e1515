//! The files a shim and the supervisor exchange in a job directory:
//!
//! | file | written by | content |
//! | --- | --- | --- |
//! | `stdout`, `stderr` | the job itself (append-only) | its output, bytes |
//! | `shim.json` | the shim, once the job runs | [`ShimInfo`] |
//! | `stop` | the supervisor | [`StopRequest`] (then SIGUSR1 to the shim) |
//! | `exit.json` | the shim, last | [`ExitRecord`] |
//! | `shim.log` | the shim's own stderr | diagnostics |
//! | `spec.json` | the supervisor | the job's spec, for the record |
//! | `artifacts/` | the job | `$AETHER_ARTIFACT_DIR` |
//!
//! The JSON files are written atomically (temporary file + rename).

use serde::{Deserialize, Serialize};

pub const STDOUT: &str = "stdout";
pub const STDERR: &str = "stderr";
pub const SHIM_INFO: &str = "shim.json";
pub const STOP: &str = "stop";
pub const EXIT: &str = "exit.json";
pub const SHIM_LOG: &str = "shim.log";
pub const SPEC: &str = "spec.json";
pub const ARTIFACTS: &str = "artifacts";

/// Who runs the job: written by the shim to `shim.json` and, as the ready
/// line, to its stdout (a pipe the supervisor reads in `start`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimInfo {
    pub shim_pid: i32,
    /// `/proc/<shim_pid>/stat` field 22.
    pub shim_start_time: u64,
    /// The job's pid, which is also its process group id.
    pub job_pid: i32,
    pub job_start_time: u64,
    pub started_ms: u64,
}

/// The shim's one line on its stdout once it has tried to start the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ready {
    Started(ShimInfo),
    SpawnError(String),
}

/// A stop request (`DIR/stop`). The shim reads it when woken by SIGUSR1
/// (and, as a safety net, about once a second). A later request with a
/// shorter grace shortens a stop in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRequest {
    pub grace_ms: u64,
    pub requested_ms: u64,
}

/// Why a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// The job's leader exited by itself.
    Exited,
    /// A stop was requested (`DIR/stop`, or SIGTERM/SIGINT to the shim).
    Stopped,
    /// `timeout_ms` passed.
    TimedOut,
    /// The command could not be started (`spawn_error` says why).
    SpawnError,
}

/// `DIR/exit.json`, written by the shim after the job's leader has been
/// reaped and every other process of the job killed and reaped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The leader's exit code, if it exited normally.
    pub exit_code: Option<i32>,
    /// The signal that ended the leader, if one did.
    pub signal: Option<i32>,
    pub ended_ms: u64,
    /// SIGKILL was needed: something of the job was still alive when the
    /// grace of a stop (or timeout) ran out.
    pub forced: bool,
    pub reason: ExitReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawn_error: Option<String>,
    /// Processes other than the leader that the shim SIGKILLed: what was
    /// left when a stop's grace ran out or when the leader ended (group
    /// members, escaped descendants).
    #[serde(default)]
    pub descendants_killed: u32,
    /// Some descendant could not be reaped in time (e.g. stuck in
    /// uninterruptible sleep); it was sent SIGKILL.
    #[serde(default)]
    pub cleanup_incomplete: bool,
}
