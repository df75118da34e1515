//! The host bridge's process supervisor (docs/jobs.md, "Host bridge").
//!
//! * [`shim`]: `host-bridge shim`, one per job, in its own session. It runs
//!   the job as the leader of its own process group with stdout and stderr
//!   going straight to append-only files, is a child subreaper (escaped
//!   descendants are reparented to it and killed at the end), handles stop
//!   and timeout (SIGTERM to the group, grace, SIGKILL) and writes the exit
//!   record atomically. It survives the bridge.
//! * [`Supervisor`]: the library API used by the HTTP and link layers:
//!   start, stop, poll (exits, log bytes with offsets, metric points),
//!   status, and a state file so that a new supervisor re-adopts running
//!   jobs and reports the ones that ended (or were lost) while none ran.
//! * [`shm`]: [`ShmRegion`], the mapping of the link's shared region
//!   (`/dev/shm/...`, QEMU's `memory-backend-file`).
//! * [`link`]: [`LinkPump`], an `aether_link::Endpoint` over the region's
//!   two byte rings.
//! * [`bridge`]: [`Bridge`], opsd's link messages turned into supervisor
//!   calls and the supervisor's events into link messages.
//! * [`metric`]: the metric line format (`{"aether_metric": {...}}`).
//! * [`artifacts`]: [`Artifacts`], the files jobs make offered to opsd and
//!   sent over the link; the announce line; the HTTP downloads.
//! * [`http`]: the HTTP API, answered by opsd over the link; [`export`]:
//!   the metrics' exposition text gathered from opsd's parts.
//! * [`webhook`]: [`Webhooks`], opsd's alert notifications POSTed to their
//!   `http://` or `https://` receivers (retries, backoff, bounded), off the
//!   bridge's loop.
//!
//! Linux only: it relies on `/proc`, process groups, sessions and
//! `PR_SET_CHILD_SUBREAPER`.

pub mod artifacts;
pub mod bridge;
pub mod export;
pub mod http;
pub mod link;
pub mod metric;
pub mod procfs;
pub mod records;
pub mod shim;
pub mod shm;
mod state;
mod supervisor;
mod util;
pub mod webhook;

pub use artifacts::Artifacts;
pub use bridge::Bridge;
pub use link::{LinkPump, Side};
pub use metric::JobMetric;
pub use records::{ExitReason, ExitRecord};
pub use shm::ShmRegion;
pub use supervisor::{
    DEFAULT_GRACE_MS, Error, Event, JobSpec, JobState, JobStatus, LOG_CHUNK_MAX, Started, Stream, Supervisor,
};
pub use util::now_ms;
pub use webhook::{WebhookConfig, Webhooks};
