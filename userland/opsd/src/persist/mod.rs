//! Keeping the job table on the disk (docs/jobs.md, "Persistence"): the
//! [`Store`] that opsd's binary implements with file calls, and every
//! decision about it, made here: what is written when, what a reboot
//! brings back ([`Jobs::restore`]), what a damaged file means.
//!
//! # What is written when
//!
//! * **Records** ([`record`], one file per job): replaced whole (written
//!   to `<id>.rec.tmp`, one sync, renamed over `<id>.rec`) before the
//!   input that changed the job's state returns, so a new job is on the
//!   disk before its id is answered or its `Start` goes out, and an ended
//!   job's end before anyone hears of it. Counters alone (log bytes,
//!   metrics, last output) are written at most every
//!   [`RECORD_REFRESH_MS`].
//! * **Logs** (append-only segments per stream): bytes stay in memory (the
//!   stream's log holds them anyway) and are appended to the stream's
//!   newest segment every [`SYNC_EVERY_MS`], when [`WRITE_BATCH`] bytes are
//!   waiting, before the memory's caps would drop them, and before the
//!   job's record is written (a record never says more is on the disk than
//!   is). A segment holds at most `Config::disk_segment_bytes`; when it is
//!   full the next one starts at the stream's end and the oldest of
//!   [`SEGMENTS`] goes, so each stream keeps its newest bytes.
//! * **Events** ([`events`]): one line per state change, appended with the
//!   records; at [`EVENTS_FILE_MAX`] bytes the file becomes `events.1`.
//! * **Syncs**: a sync makes everything written durable (the file system's
//!   sync is global): with every batch of records, and every
//!   [`SYNC_EVERY_MS`] while log bytes or events are unsynced.
//! * **Bounds**: at most `Config::max_jobs` records (evicting a job removes
//!   its files, after the record that took its place is written), two
//!   segments per stream, `Config::disk_log_bytes_total` of logs in all
//!   (beyond it, the logs of the oldest ended jobs go, then the oldest
//!   segment of the largest stream), two events files.
//! * **Failures**: a failed log write seals that stream (nothing more of
//!   it is written; the memory log goes on), a failed record write is
//!   tried again with the next change; a read-only disk stops all writes.
//!   Each is one warning line ([`Jobs::drain_warnings`]), never a panic.
//!   Nothing is made on the disk before the first job starts.

pub mod events;
pub mod layout;
pub mod record;
mod restore;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use aether_abi::fs::FsError;
use aether_abi::job::Stream;

use self::layout::{EVENTS, EVENTS_OLD, JOBS_DIR, OPS_DIR, record_path, record_tmp_path, segment_path, stream_name};
use self::record::StoredJob;
use crate::{Io, Job, Jobs, STREAMS, stream_index};

/// The file calls opsd's persistence needs (opsd's binary: `aether_rt::fs`;
/// the host tests: a model in memory). Paths are absolute; errors are the
/// file system's.
pub trait Store {
    /// The names in directory `dir` (`NotFound` if there is none,
    /// `NoFileSystem` without a disk).
    fn list(&mut self, dir: &str) -> Result<Vec<String>, FsError>;
    fn mkdir(&mut self, dir: &str) -> Result<(), FsError>;
    fn size(&mut self, path: &str) -> Result<u64, FsError>;
    /// Reads at `offset` into `buf`; fewer bytes (0 at the end) near the end.
    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, FsError>;
    /// Appends all of `bytes` at the end of `path`, made if missing.
    fn append(&mut self, path: &str, bytes: &[u8]) -> Result<(), FsError>;
    /// Makes (or empties) `path` and writes all of `bytes`.
    fn write(&mut self, path: &str, bytes: &[u8]) -> Result<(), FsError>;
    /// Atomic, and durable when it returns; replaces `to`.
    fn rename(&mut self, from: &str, to: &str) -> Result<(), FsError>;
    fn remove(&mut self, path: &str) -> Result<(), FsError>;
    /// Everything written so far is durable when it returns.
    fn sync(&mut self) -> Result<(), FsError>;
}

/// Log bytes and events are synced at most this often (and with every
/// record).
pub const SYNC_EVERY_MS: u64 = 200;
/// A record whose counters alone changed is written at most this often.
pub const RECORD_REFRESH_MS: u64 = 2_000;
/// Log bytes waiting in memory beyond which they are written at once.
pub const WRITE_BATCH: u64 = 64 * 1024;
/// Segments kept per stream.
pub const SEGMENTS: usize = 2;
/// The events file's size at which it becomes `events.1`.
pub const EVENTS_FILE_MAX: u64 = 256 * 1024;
/// Event lines waiting to be written, at most (beyond: dropped, counted).
const EVENT_LINES_MAX: usize = 64 * 1024;
/// Warning lines waiting for the binary, at most (beyond: counted).
pub const WARNINGS_MAX: usize = 64;

/// What the disk side did since the table was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Jobs loaded at [`Jobs::restore`].
    pub restored: u64,
    /// Of them, live ones that came back LOST.
    pub lost_at_restore: u64,
    /// Record files skipped at restore (damaged or unreadable).
    pub damaged_records: u64,
    pub records_written: u64,
    pub log_bytes_written: u64,
    /// Log bytes on the disk now, all jobs.
    pub log_bytes_on_disk: u64,
    pub syncs: u64,
    /// Failed file calls.
    pub errors: u64,
    pub event_lines_dropped: u64,
    pub warnings_dropped: u64,
}

/// One stream's log on the disk: contiguous segments, oldest first, the
/// newest ending at `end`.
#[derive(Debug, Default)]
pub(crate) struct StreamDisk {
    /// The offsets the segments start at (each the previous one's end).
    segments: heapless::Vec<u64, SEGMENTS>,
    /// One past the last byte written.
    pub(crate) end: u64,
    /// Nothing more is written: a write failed, or the stream was restored
    /// (it belongs to an earlier boot).
    sealed: bool,
}

impl StreamDisk {
    /// The oldest byte on the disk (`end` when there is none).
    pub(crate) fn start(&self) -> u64 {
        self.segments.first().copied().unwrap_or(self.end)
    }

    fn bytes(&self) -> u64 {
        self.end - self.start()
    }

    /// The segment holding byte `at`: its start and end.
    fn segment_of(&self, at: u64) -> Option<(u64, u64)> {
        let k = self.segments.iter().rposition(|&s| s <= at)?;
        let end = self.segments.get(k + 1).copied().unwrap_or(self.end);
        (at < end).then_some((self.segments[k], end))
    }
}

/// What the disk side keeps per job.
#[derive(Debug, Default)]
pub(crate) struct JobDisk {
    /// In [`Disk::records_due`].
    due: bool,
    /// Counters changed since the record was written.
    pub(crate) changed: bool,
    /// When the record was last written (or tried); `None`: never.
    written_ms: Option<u64>,
    pub(crate) streams: [StreamDisk; 2],
}

/// The table's disk: the store, and what is waiting for it.
pub(crate) struct Disk {
    store: Box<dyn Store>,
    /// Writes are made (false after a read-only disk, or a directory that
    /// could not be read or made); reads go on.
    writable: bool,
    /// `/ops/jobs` exists.
    dirs_made: bool,
    segment_bytes: u64,
    log_bytes_total: u64,
    /// Log bytes on the disk, all jobs.
    log_bytes: u64,
    events_bytes: u64,
    event_lines: String,
    /// Jobs whose record is due before the current input returns.
    records_due: Vec<u64>,
    /// Files of evicted jobs, removed after the records due are written.
    remove: Vec<String>,
    /// Written since the last sync.
    unsynced: bool,
    /// Some stream has bytes in memory not written yet.
    pending_logs: bool,
    last_sync_ms: u64,
    last_record_error: Option<FsError>,
    last_sync_error: Option<FsError>,
    last_read_error: Option<FsError>,
    last_events_error: Option<FsError>,
    warnings: VecDeque<String>,
    stats: DiskStats,
}

impl Disk {
    pub(crate) fn store_mut(&mut self) -> &mut dyn Store {
        &mut *self.store
    }

    fn new(store: Box<dyn Store>, config: &crate::Config) -> Disk {
        Disk {
            store,
            writable: true,
            dirs_made: false,
            segment_bytes: config.disk_segment_bytes.max(1) as u64,
            log_bytes_total: config.disk_log_bytes_total,
            log_bytes: 0,
            events_bytes: 0,
            event_lines: String::new(),
            records_due: Vec::new(),
            remove: Vec::new(),
            unsynced: false,
            pending_logs: false,
            last_sync_ms: 0,
            last_record_error: None,
            last_sync_error: None,
            last_read_error: None,
            last_events_error: None,
            warnings: VecDeque::new(),
            stats: DiskStats::default(),
        }
    }

    fn warn(&mut self, line: String) {
        if self.warnings.len() >= WARNINGS_MAX {
            self.stats.warnings_dropped += 1;
        } else {
            self.warnings.push_back(line);
        }
    }

    /// A failed write: counted and told; a disk that takes no writes at
    /// all stops them for good.
    fn write_failed(&mut self, what: &str, e: FsError) {
        self.stats.errors += 1;
        if matches!(e, FsError::ReadOnly | FsError::NoFileSystem) {
            if self.writable {
                self.writable = false;
                self.warn(format!("{what}: {e}: jobs are no longer stored on the disk"));
            }
        } else {
            self.warn(format!("{what}: {e}"));
        }
    }

    /// `/ops/jobs` exists (made on the first write): whether writes go on.
    fn ensure_dirs(&mut self) -> bool {
        if self.writable && !self.dirs_made {
            for dir in [OPS_DIR, JOBS_DIR] {
                match self.store.mkdir(dir) {
                    Ok(()) | Err(FsError::Exists) => {}
                    Err(e) => {
                        self.write_failed(&format!("cannot make {dir}"), e);
                        if self.writable {
                            self.writable = false;
                            self.warn(format!("jobs are not stored on the disk (no {JOBS_DIR})"));
                        }
                        return false;
                    }
                }
            }
            self.dirs_made = true;
        }
        self.writable
    }

    fn remove_file(&mut self, path: &str) {
        match self.store.remove(path) {
            Ok(()) | Err(FsError::NotFound) => {}
            Err(e) => self.write_failed(&format!("cannot remove {path}"), e),
        }
    }

    fn sync(&mut self, now_ms: u64) -> bool {
        self.last_sync_ms = now_ms;
        match self.store.sync() {
            Ok(()) => {
                self.unsynced = false;
                self.last_sync_error = None;
                self.stats.syncs += 1;
                true
            }
            Err(e) => {
                if self.last_sync_error != Some(e) {
                    self.last_sync_error = Some(e);
                    self.write_failed("sync", e);
                } else {
                    self.stats.errors += 1;
                }
                false
            }
        }
    }

    /// Starts a new segment at the stream's end, the oldest going if there
    /// are [`SEGMENTS`] already.
    fn roll(&mut self, job_id: u64, stream: Stream, sd: &mut StreamDisk) {
        if sd.segments.is_full() {
            let oldest = sd.segments.remove(0);
            let next = sd.segments.first().copied().unwrap_or(sd.end);
            self.log_bytes -= next - oldest;
            self.remove_file(&segment_path(job_id, stream, oldest));
        }
        // Room was made above.
        let _ = sd.segments.push(sd.end);
    }

    /// Removes every segment of a stream (a budget, or a gap it cannot
    /// bridge).
    fn drop_segments(&mut self, job_id: u64, stream: Stream, sd: &mut StreamDisk) {
        self.log_bytes -= sd.bytes();
        for start in core::mem::take(&mut sd.segments) {
            self.remove_file(&segment_path(job_id, stream, start));
        }
    }

    /// Appends `bytes` at the stream's end on the disk, across segments.
    fn append_log(&mut self, job_id: u64, stream: Stream, sd: &mut StreamDisk, mut bytes: &[u8]) {
        while !bytes.is_empty() && !sd.sealed && self.ensure_dirs() {
            if sd.segments.last().is_none_or(|&s| sd.end - s >= self.segment_bytes) {
                self.roll(job_id, stream, sd);
            }
            let Some(&start) = sd.segments.last() else { break };
            let room = self.segment_bytes - (sd.end - start);
            let n = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
            match self.store.append(&segment_path(job_id, stream, start), &bytes[..n]) {
                Ok(()) => {
                    sd.end += n as u64;
                    self.log_bytes += n as u64;
                    self.stats.log_bytes_written += n as u64;
                    self.unsynced = true;
                    bytes = &bytes[n..];
                }
                Err(e) => {
                    sd.sealed = true;
                    let what = format!("job {job_id} {}: not stored past byte {}", stream_name(stream), sd.end);
                    self.write_failed(&what, e);
                }
            }
        }
    }

    /// Up to `max` bytes of a stream from the disk, from `at` (which is in
    /// one of its segments), or `None` if they cannot be read.
    fn read_log(&mut self, job_id: u64, stream: Stream, sd: &StreamDisk, at: u64, max: usize) -> Option<Vec<u8>> {
        let (start, end) = sd.segment_of(at)?;
        let n = usize::try_from(end - at).unwrap_or(usize::MAX).min(max);
        if n == 0 {
            return Some(Vec::new());
        }
        let mut buf = vec![0u8; n];
        let path = segment_path(job_id, stream, start);
        match self.store.read_at(&path, at - start, &mut buf) {
            Ok(got) if got > 0 => {
                buf.truncate(got);
                self.last_read_error = None;
                Some(buf)
            }
            Ok(_) => {
                self.warn(format!("{path}: ends before byte {at}"));
                None
            }
            Err(e) => {
                self.stats.errors += 1;
                if self.last_read_error != Some(e) {
                    self.last_read_error = Some(e);
                    self.warn(format!("cannot read {path}: {e}"));
                }
                None
            }
        }
    }

    /// Writes the event lines waiting (the file becomes `events.1` at
    /// [`EVENTS_FILE_MAX`]).
    fn write_events(&mut self) {
        if self.event_lines.is_empty() || !self.ensure_dirs() {
            return;
        }
        let lines = core::mem::take(&mut self.event_lines);
        if self.events_bytes > 0 && self.events_bytes + lines.len() as u64 > EVENTS_FILE_MAX {
            match self.store.rename(EVENTS, EVENTS_OLD) {
                Ok(()) | Err(FsError::NotFound) => self.events_bytes = 0,
                Err(e) => self.write_failed(&format!("cannot rename {EVENTS}"), e),
            }
        }
        match self.store.append(EVENTS, lines.as_bytes()) {
            Ok(()) => {
                self.events_bytes += lines.len() as u64;
                self.unsynced = true;
                self.last_events_error = None;
            }
            Err(e) if self.last_events_error == Some(e) => self.stats.errors += 1,
            Err(e) => {
                self.last_events_error = Some(e);
                self.write_failed(&format!("cannot write {EVENTS}"), e);
            }
        }
    }

    /// Writes a record to its temporary; whether it is there.
    fn write_record_tmp(&mut self, stored: &StoredJob) -> bool {
        let job_id = stored.record.job_id;
        let Some(bytes) = record::encode(stored) else {
            self.warn(format!("job {job_id}: the record does not encode"));
            return false;
        };
        match self.store.write(&record_tmp_path(job_id), &bytes) {
            Ok(()) => true,
            Err(e) => {
                self.record_failed(job_id, e);
                false
            }
        }
    }

    fn record_failed(&mut self, job_id: u64, e: FsError) {
        if self.last_record_error != Some(e) {
            self.last_record_error = Some(e);
            self.write_failed(&format!("job {job_id}: the record is not stored"), e);
        } else {
            self.stats.errors += 1;
        }
    }
}

/// The record file's contents for `job`.
fn stored(job: &Job) -> StoredJob {
    let range = |sd: &StreamDisk| (sd.start(), sd.end);
    StoredJob {
        record: job.record.clone(),
        kind: job.kind,
        grace_ms: job.grace_ms,
        timeout_ms: job.timeout_ms,
        stall_ms: job.stall_ms,
        max_retries: job.max_retries,
        logs: [range(&job.disk.streams[0]), range(&job.disk.streams[1])],
    }
}

impl Io {
    /// Whether a stream's bytes go to the disk.
    fn persisting(&self, job: &Job, i: usize) -> bool {
        self.disk.as_ref().is_some_and(|d| d.writable) && !job.disk.streams[i].sealed
    }

    /// A job's state changed (`event`), or it is new (`None`): its record
    /// is written before the input returns.
    pub(crate) fn record_due(&mut self, job: &mut Job, event: Option<&crate::Event>) {
        let Some(disk) = self.disk.as_mut().filter(|d| d.writable) else {
            return;
        };
        if !job.disk.due {
            job.disk.due = true;
            disk.records_due.push(job.record.job_id);
        }
        if let Some(ev) = event {
            if disk.event_lines.len() + events::LINE_MAX <= EVENT_LINES_MAX {
                disk.event_lines.push_str(&events::line(ev));
            } else {
                disk.stats.event_lines_dropped += 1;
            }
        }
    }

    /// Before `bytes` are appended to a stream in memory: writes what is
    /// waiting and `bytes` themselves when the batch is full or the memory
    /// would drop bytes not on the disk yet.
    pub(crate) fn before_append(&mut self, job: &mut Job, i: usize, bytes: &[u8]) {
        if bytes.is_empty() || !self.persisting(job, i) {
            return;
        }
        let log = &job.logs[i];
        let waiting = log.end() - job.disk.streams[i].end.min(log.end());
        let drops = log.kept() + bytes.len() > self.config.log_bytes_per_stream;
        if drops || waiting + bytes.len() as u64 >= WRITE_BATCH {
            self.flush_stream(job, i);
            if let Some(disk) = self.disk.as_mut() {
                disk.append_log(job.record.job_id, STREAMS[i], &mut job.disk.streams[i], bytes);
            }
        } else if let Some(disk) = self.disk.as_mut() {
            disk.pending_logs = true;
        }
    }

    /// Writes a stream's bytes that are in memory and not on the disk yet.
    pub(crate) fn flush_stream(&mut self, job: &mut Job, i: usize) {
        if !self.persisting(job, i) {
            return;
        }
        let Some(disk) = self.disk.as_mut() else { return };
        let (log, sd) = (&job.logs[i], &mut job.disk.streams[i]);
        let (job_id, stream) = (job.record.job_id, STREAMS[i]);
        if sd.end >= log.end() {
            return;
        }
        if sd.end < log.start() {
            // Bytes the disk never had are gone from memory too (cannot
            // happen: they are written before memory drops them). The
            // segments could not be contiguous: start again at what is kept.
            disk.drop_segments(job_id, stream, sd);
            sd.end = log.start();
        }
        let (a, b) = log.kept_from(sd.end);
        disk.append_log(job_id, stream, sd, a);
        disk.append_log(job_id, stream, sd, b);
    }

    /// A job leaves the table: its files go once the records due are
    /// written.
    pub(crate) fn forget_files(&mut self, job: &Job) {
        let Some(disk) = self.disk.as_mut() else { return };
        let job_id = job.record.job_id;
        if job.disk.written_ms.is_some() {
            disk.remove.push(record_path(job_id));
        }
        for (i, sd) in job.disk.streams.iter().enumerate() {
            disk.log_bytes -= sd.bytes();
            for &start in &sd.segments {
                disk.remove.push(segment_path(job_id, STREAMS[i], start));
            }
        }
    }

    /// The bytes of a stream at `offset` when the memory no longer has
    /// them and the disk does: where they start, and up to `max` of them.
    pub(crate) fn read_disk_log(&mut self, job: &Job, i: usize, offset: u64, max: usize) -> Option<(u64, Vec<u8>)> {
        let log = &job.logs[i];
        let sd = &job.disk.streams[i];
        // Where the disk's bytes from `offset` begin; the memory answers
        // when it has them (or has the earliest ones).
        let from = offset.max(sd.start());
        if from >= log.start() || from >= sd.end || sd.segments.is_empty() {
            return None;
        }
        let disk = self.disk.as_mut()?;
        let bytes = disk.read_log(job.record.job_id, STREAMS[i], sd, from, max)?;
        Some((from, bytes))
    }
}

impl Jobs {
    /// Whether the table is kept on a disk that takes writes.
    pub fn is_persistent(&self) -> bool {
        self.io.disk.as_ref().is_some_and(|d| d.writable)
    }

    /// Warning lines about the disk (damaged files at restore, failed
    /// writes), for the console log.
    pub fn drain_warnings(&mut self) -> impl Iterator<Item = String> + '_ {
        let io = &mut self.io;
        if let Some(d) = io.disk.as_mut() {
            for w in io.artifacts.drain_warnings() {
                d.warn(w);
            }
        }
        let warnings = io.disk.as_mut().map(|d| core::mem::take(&mut d.warnings));
        warnings.into_iter().flatten()
    }

    pub fn disk_stats(&self) -> Option<DiskStats> {
        self.io.disk.as_ref().map(|d| DiskStats {
            log_bytes_on_disk: d.log_bytes,
            ..d.stats
        })
    }

    /// A stream's bytes on the disk: the offsets of the oldest and one past
    /// the newest (equal when there are none).
    pub fn disk_log_range(&self, job_id: u64, stream: Stream) -> Option<(u64, u64)> {
        self.io.disk.as_ref()?;
        let sd = &self.table.get(&job_id)?.disk.streams[stream_index(stream)];
        Some((sd.start(), sd.end))
    }

    /// When [`Jobs::tick`] has disk work to do (a sync, a record refresh).
    pub(crate) fn disk_deadline(&self) -> Option<u64> {
        let disk = self.io.disk.as_ref().filter(|d| d.writable)?;
        let sync = (disk.pending_logs || disk.unsynced).then_some(disk.last_sync_ms + SYNC_EVERY_MS);
        let refresh = self
            .table
            .values()
            .filter(|j| j.disk.changed)
            .map(|j| j.disk.written_ms.map_or(0, |t| t + RECORD_REFRESH_MS))
            .min();
        [sync, refresh].into_iter().flatten().min()
    }

    /// The records due, the events, the files of evicted jobs: written
    /// before the current input returns (one sync for all of them).
    pub(crate) fn write_due(&mut self) {
        let Some(disk) = self.io.disk.as_mut() else { return };
        if disk.records_due.is_empty() && disk.event_lines.is_empty() && disk.remove.is_empty() {
            return;
        }
        let due = core::mem::take(&mut disk.records_due);
        let now = self.io.now_ms;
        // Their logs first: a record never says more is on the disk than is.
        for id in &due {
            if let Some(job) = self.table.get_mut(id) {
                job.disk.due = false;
                for i in 0..STREAMS.len() {
                    self.io.flush_stream(job, i);
                }
            }
        }
        let Some(disk) = self.io.disk.as_mut() else { return };
        if !disk.ensure_dirs() {
            disk.event_lines.clear();
            disk.remove.clear();
            return;
        }
        disk.write_events();
        let mut written = Vec::new();
        for id in due {
            if let Some(job) = self.table.get_mut(&id) {
                job.disk.written_ms = Some(now);
                if disk.write_record_tmp(&stored(job)) {
                    written.push(id);
                } else {
                    // Tried again with the next change or refresh.
                    job.disk.changed = true;
                }
            }
        }
        if !disk.sync(now) {
            // Not renamed over a whole record: the temporaries wait (a
            // restore removes them) and are written again.
            for id in written {
                if let Some(job) = self.table.get_mut(&id) {
                    job.disk.changed = true;
                }
            }
            return;
        }
        for id in written {
            match disk.store.rename(&record_tmp_path(id), &record_path(id)) {
                Ok(()) => {
                    disk.stats.records_written += 1;
                    disk.last_record_error = None;
                    if let Some(job) = self.table.get_mut(&id) {
                        job.disk.changed = false;
                    }
                }
                Err(e) => disk.record_failed(id, e),
            }
        }
        let remove = core::mem::take(&mut disk.remove);
        if !remove.is_empty() {
            for path in &remove {
                disk.remove_file(path);
            }
            // Gone for good once the input that evicted them returns.
            disk.sync(now);
        }
    }

    /// The disk's timers ([`Jobs::tick`]): log bytes written and synced
    /// every [`SYNC_EVERY_MS`], records whose counters changed every
    /// [`RECORD_REFRESH_MS`], the disk budget.
    pub(crate) fn disk_tick(&mut self, now_ms: u64) {
        // Nothing is due on a disk that takes no writes.
        let Some(disk) = self.io.disk.as_ref().filter(|d| d.writable) else {
            return;
        };
        // `abs_diff`: a clock that went back does not hold the sync off.
        if (disk.pending_logs || disk.unsynced) && now_ms.abs_diff(disk.last_sync_ms) >= SYNC_EVERY_MS {
            for job in self.table.values_mut() {
                for i in 0..STREAMS.len() {
                    self.io.flush_stream(job, i);
                }
            }
            if let Some(disk) = self.io.disk.as_mut() {
                disk.pending_logs = false;
                disk.sync(now_ms);
            }
        }
        for job in self.table.values_mut() {
            let stale = job
                .disk
                .written_ms
                .is_none_or(|t| now_ms.abs_diff(t) >= RECORD_REFRESH_MS);
            if job.disk.changed && stale {
                self.io.record_due(job, None);
            }
        }
        self.enforce_disk_budget();
        self.write_due();
    }

    /// Keeps the logs on the disk within `disk_log_bytes_total`: the logs
    /// of the oldest ended jobs go first, then the oldest segment of the
    /// largest stream (a stream keeps its newest segment).
    pub(crate) fn enforce_disk_budget(&mut self) {
        while let Some(disk) = self.io.disk.as_mut().filter(|d| d.log_bytes > d.log_bytes_total) {
            let ended = self
                .table
                .values_mut()
                .find(|j| !j.is_live() && j.disk.streams.iter().any(|sd| sd.bytes() > 0));
            if let Some(job) = ended {
                let job_id = job.record.job_id;
                for (i, sd) in job.disk.streams.iter_mut().enumerate() {
                    disk.drop_segments(job_id, STREAMS[i], sd);
                    sd.sealed = true;
                }
                // Its record says where its logs are.
                if !job.disk.due {
                    job.disk.due = true;
                    disk.records_due.push(job_id);
                }
                continue;
            }
            let largest = self
                .table
                .values_mut()
                .flat_map(|j| {
                    let job_id = j.record.job_id;
                    j.disk
                        .streams
                        .iter_mut()
                        .enumerate()
                        .map(move |(i, sd)| (job_id, i, sd))
                })
                .filter(|(_, _, sd)| sd.segments.len() > 1)
                // The first of the largest (the lowest job id).
                .min_by_key(|(_, _, sd)| core::cmp::Reverse(sd.bytes()));
            let Some((job_id, i, sd)) = largest else { return };
            let oldest = sd.segments.remove(0);
            disk.log_bytes -= sd.start() - oldest;
            disk.remove_file(&segment_path(job_id, STREAMS[i], oldest));
        }
    }
}

/// What holds between inputs (the host tests check it after each one).
#[cfg(test)]
pub(crate) fn check_invariants(jobs: &Jobs) {
    let Some(disk) = &jobs.io.disk else { return };
    assert!(
        disk.records_due.is_empty(),
        "records due after an input: {:?}",
        disk.records_due
    );
    assert!(disk.remove.is_empty(), "{:?}", disk.remove);
    assert!(disk.warnings.len() <= WARNINGS_MAX);
    let mut total = 0;
    for (&id, job) in &jobs.table {
        assert!(!job.disk.due, "job {id}");
        for (i, sd) in job.disk.streams.iter().enumerate() {
            let log = &job.logs[i];
            assert!(
                sd.segments.windows(2).all(|w| w[0] < w[1]),
                "job {id}: {:?}",
                sd.segments
            );
            assert!(sd.segments.last().is_none_or(|&s| s <= sd.end), "job {id}: {sd:?}");
            assert!(sd.end <= log.end(), "job {id} stream {i}: {sd:?}, {} in all", log.end());
            if disk.writable && !sd.sealed {
                // Every byte is on the disk or still in memory.
                assert!(
                    sd.end >= log.start(),
                    "job {id} stream {i}: {sd:?}, memory from {}",
                    log.start()
                );
                for (k, &start) in sd.segments.iter().enumerate() {
                    let end = sd.segments.get(k + 1).copied().unwrap_or(sd.end);
                    assert!(end - start <= disk.segment_bytes, "job {id} stream {i}: {sd:?}");
                }
            }
            total += sd.bytes();
        }
    }
    assert_eq!(total, disk.log_bytes);
}
