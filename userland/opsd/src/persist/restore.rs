//! What a boot brings back from `/ops/jobs` ([`Jobs::restore`]), and what
//! each kind of damage means.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use aether_abi::fs::FsError;
use aether_abi::job::{JobState, Stream, TerminationReason};

use super::layout::{self, EVENTS, JOBS_DIR, Name, record_path, segment_path, stream_name};
use super::record::{self, Damage, RECORD_FILE_MAX, StoredJob};
use super::{Disk, JobDisk, SEGMENTS, Store, StreamDisk};
use crate::log::StreamLog;
use crate::{Config, Io, Job, Jobs, Queued, STREAMS, message, stream_index};

/// Why a record file was not taken.
enum Skip {
    Damaged(Damage),
    Unreadable(FsError),
}

impl Jobs {
    /// A table kept on the disk behind `store` (docs/jobs.md,
    /// "Persistence"), with the jobs stored there:
    ///
    /// * ended jobs come back as they were (status, exit code, runtime,
    ///   counters), their logs read from the disk when asked (nothing of
    ///   them is loaded);
    /// * jobs that were live (PENDING, RUNNING, STOPPING) come back LOST,
    ///   "lost: reboot", ended now (their runtime unknown);
    /// * ids go on after the highest id any file in `/ops/jobs` names;
    /// * a damaged, truncated or unreadable record is skipped with a
    ///   warning and its files are left as they are (and its id is not
    ///   reused); a log shorter than its record says ends where the disk's
    ///   bytes end (a warning); a segment that does not reach the next is
    ///   removed (a warning); a temporary record is removed; names that are
    ///   not opsd's are left alone (a warning);
    /// * more jobs than `max_jobs`: the oldest are evicted (files removed).
    ///
    /// Without a file system (`NoFileSystem`) the table is memory only,
    /// as [`Jobs::new`]; if `/ops/jobs` cannot be read it is memory only
    /// too, with a warning. Nothing is written until there is something to
    /// write (no `/ops` on a disk that never ran a job).
    pub fn restore(config: Config, store: Box<dyn Store>, now_ms: u64) -> Jobs {
        let mut jobs = Jobs::new(config);
        jobs.io.now_ms = now_ms;
        let mut disk = Disk::new(store, &jobs.io.config);
        disk.last_sync_ms = now_ms;
        let names = match disk.store.list(JOBS_DIR) {
            Ok(names) => {
                disk.dirs_made = true;
                names
            }
            Err(FsError::NotFound) => Vec::new(),
            Err(FsError::NoFileSystem) => return jobs,
            Err(e) => {
                disk.writable = false;
                disk.warn(format!("cannot read {JOBS_DIR}: {e}: jobs are kept in memory only"));
                jobs.io.disk = Some(disk);
                return jobs;
            }
        };
        let mut records = BTreeSet::new();
        let mut segments: BTreeMap<(u64, usize), Vec<u64>> = BTreeMap::new();
        let mut max_id = 0;
        for name in &names {
            let Some(parsed) = layout::parse(name) else {
                disk.warn(format!("{}: not opsd's: left alone", layout::in_jobs_dir(name)));
                continue;
            };
            max_id = max_id.max(parsed.job_id());
            match parsed {
                Name::Record(id) => {
                    records.insert(id);
                }
                // An interrupted replace: the `.rec` is the last whole one.
                Name::RecordTmp(_) => disk.remove_file(&layout::in_jobs_dir(name)),
                Name::Segment { job_id, stream, start } => {
                    segments.entry((job_id, stream_index(stream))).or_default().push(start);
                }
            }
        }
        jobs.next_id = max_id.saturating_add(1).max(1);
        disk.events_bytes = disk.store.size(EVENTS).unwrap_or(0);
        for &job_id in &records {
            match load(&mut *disk.store, job_id) {
                Ok(stored) => {
                    let streams = STREAMS.map(|s| {
                        let starts = segments.remove(&(job_id, stream_index(s))).unwrap_or_default();
                        let on_record = stored.logs[stream_index(s)];
                        stream_on_disk(&mut disk, job_id, s, starts, on_record)
                    });
                    jobs.table.insert(job_id, restored(stored, streams, now_ms));
                    disk.stats.restored += 1;
                }
                Err(skip) => {
                    disk.stats.damaged_records += 1;
                    let why = match skip {
                        Skip::Damaged(d) => format!("damaged ({d})"),
                        Skip::Unreadable(e) => format!("unreadable ({e})"),
                    };
                    disk.warn(format!("{}: {why}: job {job_id} skipped", record_path(job_id)));
                    segments.retain(|&(id, _), _| id != job_id);
                }
            }
        }
        let orphans: BTreeSet<u64> = segments.keys().map(|&(id, _)| id).collect();
        for id in orphans {
            disk.warn(format!("{JOBS_DIR}/{id}.*: logs without a record: left alone"));
        }
        disk.log_bytes = jobs
            .table
            .values()
            .flat_map(|j| j.disk.streams.iter())
            .map(StreamDisk::bytes)
            .sum();
        jobs.io.disk = Some(disk);
        if let Some(d) = jobs.io.disk.as_mut() {
            jobs.io.artifacts.restore(d.store_mut(), now_ms);
            jobs.io.telemetry.set_disk(true);
        }
        jobs.lose_live_jobs(now_ms);
        while jobs.table.len() > jobs.io.config.max_jobs && jobs.evict_one() {}
        jobs.enforce_disk_budget();
        jobs.write_due();
        jobs
    }

    /// Jobs that were live when the machine went down: LOST, for the
    /// reboot (nothing here runs them any more; the bridge stops an
    /// earlier opsd's host jobs).
    fn lose_live_jobs(&mut self, now_ms: u64) {
        let io = &mut self.io;
        for job in self.table.values_mut().filter(|j| j.is_live()) {
            let was = job.status();
            if !io.transition(job, JobState::Lost, now_ms) {
                continue;
            }
            if let Some(disk) = io.disk.as_mut() {
                disk.stats.lost_at_restore += 1;
            }
            let r = &mut job.record;
            r.ended_ms = Some(now_ms);
            r.runtime_ms = None;
            r.exit_code = None;
            r.signal = None;
            r.forced_kill = false;
            r.termination_reason = Some(TerminationReason::Lost);
            r.message = message(format_args!("lost: reboot (it was {was} when opsd went down)"));
            Io::finalize(job);
        }
    }
}

/// A record file's job, or why not.
fn load(store: &mut dyn Store, job_id: u64) -> Result<StoredJob, Skip> {
    let path = record_path(job_id);
    let size = store.size(&path).map_err(Skip::Unreadable)?;
    if size > RECORD_FILE_MAX as u64 {
        return Err(Skip::Damaged(Damage::TooLarge));
    }
    let mut bytes = vec![0u8; size as usize];
    let mut got = 0;
    while got < bytes.len() {
        match store.read_at(&path, got as u64, &mut bytes[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(Skip::Unreadable(e)),
        }
    }
    bytes.truncate(got);
    let stored = record::decode(&bytes).map_err(Skip::Damaged)?;
    if stored.record.job_id != job_id {
        return Err(Skip::Damaged(Damage::OtherJob(stored.record.job_id)));
    }
    Ok(stored)
}

/// A restored stream's segments: the newest contiguous run of at most
/// [`SEGMENTS`] (older ones removed), and where they end, checked against
/// the bytes its record says were on the disk (`on_record`).
fn stream_on_disk(
    disk: &mut Disk,
    job_id: u64,
    stream: Stream,
    mut starts: Vec<u64>,
    on_record: (u64, u64),
) -> StreamDisk {
    starts.sort_unstable();
    let sizes: Vec<Option<u64>> = starts
        .iter()
        .map(|&s| disk.store.size(&segment_path(job_id, stream, s)).ok())
        .collect();
    // From the newest back, while each reaches the next one's start.
    let mut kept: Vec<(u64, u64)> = Vec::new();
    for (&start, &size) in starts.iter().zip(&sizes).rev() {
        let Some(size) = size else { break };
        let reaches = kept
            .first()
            .is_none_or(|&(next, _)| start.checked_add(size) == Some(next));
        if kept.len() == SEGMENTS || !reaches {
            break;
        }
        kept.insert(0, (start, size));
    }
    let older = starts.len() - kept.len();
    for (k, (&start, size)) in starts.iter().zip(&sizes).take(older).enumerate() {
        let path = segment_path(job_id, stream, start);
        let next = starts.get(k + 1).copied().unwrap_or(u64::MAX);
        match size {
            None => disk.warn(format!("{path}: unreadable: left alone")),
            Some(size) => {
                let why = if start.checked_add(*size) == Some(next) {
                    "older than the segments kept"
                } else {
                    "does not reach the next segment"
                };
                disk.warn(format!("{path}: {why}: removed"));
                disk.remove_file(&path);
            }
        }
    }
    let end = kept.last().map_or(0, |&(start, size)| start.saturating_add(size));
    let (record_start, record_end) = on_record;
    if record_start < record_end && end < record_end {
        disk.warn(format!(
            "job {job_id} {}: {end} bytes on the disk, its record says {record_end}: the log ends there",
            stream_name(stream)
        ));
    }
    let mut sd = StreamDisk {
        end,
        sealed: true,
        ..StreamDisk::default()
    };
    for (start, _) in kept {
        // At most SEGMENTS.
        let _ = sd.segments.push(start);
    }
    sd
}

/// A job as a restore brings it back: ended as it was stored (or live, to
/// be made LOST), nothing of its logs in memory, its streams' ends where
/// the record or the disk's bytes say, whichever is later.
fn restored(stored: StoredJob, streams: [StreamDisk; 2], now_ms: u64) -> Job {
    let StoredJob {
        mut record,
        kind,
        grace_ms,
        timeout_ms,
        stall_ms,
        max_retries,
        logs: _,
    } = stored;
    record.stdout_bytes = record.stdout_bytes.max(streams[0].end);
    record.stderr_bytes = record.stderr_bytes.max(streams[1].end);
    let logs = [
        StreamLog::restored(record.stdout_bytes),
        StreamLog::restored(record.stderr_bytes),
    ];
    Job {
        record,
        kind,
        spec: None,
        grace_ms,
        timeout_ms,
        stall_ms,
        max_retries,
        logs,
        dispatched: false,
        start_sent: false,
        stop_cause: None,
        running_since_ms: None,
        pid: None,
        queued: Queued::default(),
        disk: JobDisk {
            written_ms: Some(now_ms),
            streams,
            ..JobDisk::default()
        },
    }
}
