//! Persistence ([`crate::persist`]): the file formats, what is written
//! when, what a restore brings back, and each kind of damage, against a
//! model of the file system that can lose power.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::string::{String as StdString, ToString};

use aether_abi::fs::FsError;

use super::*;
use crate::persist::layout::{self, Name};
use crate::persist::record::{self, Damage, RECORD_FILE_MAX, StoredJob};
use crate::persist::{EVENTS_FILE_MAX, RECORD_REFRESH_MS, SYNC_EVERY_MS, Store, events};

/// Files and directories.
#[derive(Clone, Debug, Default)]
struct Tree {
    files: BTreeMap<StdString, StdVec<u8>>,
    dirs: BTreeSet<StdString>,
}

/// The file system behind a [`MemStore`].
#[derive(Default)]
struct Fs {
    now: Tree,
    /// What a power cut leaves: the tree at the last sync or rename.
    durable: Tree,
    /// Writes (mkdir, append, write, rename, remove) fail with this.
    fail_writes: Option<FsError>,
    /// There is no disk.
    no_fs: bool,
    syncs: u64,
}

/// A store in memory, shared with the test (which damages it, cuts its
/// power, and boots a new table on it).
#[derive(Clone, Default)]
pub(super) struct MemStore(Rc<RefCell<Fs>>);

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "",
    }
}

impl Fs {
    fn check_write(&self, path: &str) -> Result<(), FsError> {
        if self.no_fs {
            return Err(FsError::NoFileSystem);
        }
        if let Some(e) = self.fail_writes {
            return Err(e);
        }
        let dir = parent(path);
        if self.now.files.contains_key(dir) {
            return Err(FsError::NotDir);
        }
        if dir != "/" && !self.now.dirs.contains(dir) {
            return Err(FsError::NotFound);
        }
        if self.now.dirs.contains(path) {
            return Err(FsError::IsDir);
        }
        Ok(())
    }

    fn file(&self, path: &str) -> Result<&StdVec<u8>, FsError> {
        if self.no_fs {
            return Err(FsError::NoFileSystem);
        }
        match self.now.files.get(path) {
            Some(f) => Ok(f),
            None if self.now.dirs.contains(path) => Err(FsError::IsDir),
            None => Err(FsError::NotFound),
        }
    }
}

impl Store for MemStore {
    fn list(&mut self, dir: &str) -> Result<StdVec<StdString>, FsError> {
        let fs = self.0.borrow();
        if fs.no_fs {
            return Err(FsError::NoFileSystem);
        }
        if fs.now.files.contains_key(dir) {
            return Err(FsError::NotDir);
        }
        if dir != "/" && !fs.now.dirs.contains(dir) {
            return Err(FsError::NotFound);
        }
        let t = &fs.now;
        Ok(t.files
            .keys()
            .chain(t.dirs.iter())
            .filter(|p| parent(p) == dir)
            .map(|p| p[p.rfind('/').unwrap() + 1..].to_string())
            .collect())
    }

    fn mkdir(&mut self, dir: &str) -> Result<(), FsError> {
        let mut fs = self.0.borrow_mut();
        if fs.now.dirs.contains(dir) || fs.now.files.contains_key(dir) {
            return Err(FsError::Exists);
        }
        fs.check_write(dir)?;
        fs.now.dirs.insert(dir.to_string());
        Ok(())
    }

    fn size(&mut self, path: &str) -> Result<u64, FsError> {
        Ok(self.0.borrow().file(path)?.len() as u64)
    }

    fn read_at(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        let fs = self.0.borrow();
        let f = fs.file(path)?;
        let from = (offset as usize).min(f.len());
        let n = buf.len().min(f.len() - from);
        buf[..n].copy_from_slice(&f[from..from + n]);
        Ok(n)
    }

    fn append(&mut self, path: &str, bytes: &[u8]) -> Result<(), FsError> {
        let mut fs = self.0.borrow_mut();
        fs.check_write(path)?;
        fs.now
            .files
            .entry(path.to_string())
            .or_default()
            .extend_from_slice(bytes);
        Ok(())
    }

    fn write(&mut self, path: &str, bytes: &[u8]) -> Result<(), FsError> {
        let mut fs = self.0.borrow_mut();
        fs.check_write(path)?;
        fs.now.files.insert(path.to_string(), bytes.to_vec());
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), FsError> {
        let mut fs = self.0.borrow_mut();
        fs.check_write(to)?;
        let f = fs.now.files.remove(from).ok_or(FsError::NotFound)?;
        fs.now.files.insert(to.to_string(), f);
        // Atomic and durable when it returns (aethfs writes the data back
        // and commits).
        fs.durable = fs.now.clone();
        Ok(())
    }

    fn remove(&mut self, path: &str) -> Result<(), FsError> {
        let mut fs = self.0.borrow_mut();
        fs.check_write(path)?;
        fs.now.files.remove(path).map(drop).ok_or(FsError::NotFound)
    }

    fn sync(&mut self) -> Result<(), FsError> {
        let mut fs = self.0.borrow_mut();
        if fs.no_fs {
            return Err(FsError::NoFileSystem);
        }
        fs.durable = fs.now.clone();
        fs.syncs += 1;
        Ok(())
    }
}

impl MemStore {
    pub(super) fn file(&self, path: &str) -> Option<StdVec<u8>> {
        self.0.borrow().now.files.get(path).cloned()
    }

    fn durable_file(&self, path: &str) -> Option<StdVec<u8>> {
        self.0.borrow().durable.files.get(path).cloned()
    }

    /// The names in /ops/jobs.
    fn names(&self) -> StdVec<StdString> {
        let mut s = self.clone();
        s.list(layout::JOBS_DIR).unwrap_or_default()
    }

    /// The names in `dir`, sorted (none if there is no such directory).
    pub(super) fn names_in(&self, dir: &str) -> StdVec<StdString> {
        let mut s = self.clone();
        let mut names = s.list(dir).unwrap_or_default();
        names.sort();
        names
    }

    fn stored(&self, job_id: u64) -> StoredJob {
        record::decode(&self.file(&layout::record_path(job_id)).expect("a record file")).expect("a whole record")
    }

    /// Written from outside (the host tool), durably; directories made.
    pub(super) fn put(&self, path: &str, bytes: &[u8]) {
        let mut fs = self.0.borrow_mut();
        let mut dir = parent(path);
        while dir != "/" {
            fs.now.dirs.insert(dir.to_string());
            dir = parent(dir);
        }
        fs.now.files.insert(path.to_string(), bytes.to_vec());
        fs.durable = fs.now.clone();
    }

    fn set_fail(&self, e: Option<FsError>) {
        self.0.borrow_mut().fail_writes = e;
    }

    /// A power cut: what was not synced is gone.
    pub(super) fn cut(&self) {
        let mut fs = self.0.borrow_mut();
        fs.now = fs.durable.clone();
    }

    /// A power cut that keeps some of what was appended since the last
    /// sync (the device wrote part of it): each file that grew keeps a
    /// random part of its new tail.
    fn cut_torn(&self, rng: &mut Rng) {
        let mut fs = self.0.borrow_mut();
        let mut kept = fs.durable.clone();
        for (path, now) in &fs.now.files {
            if let Some(old) = kept.files.get_mut(path)
                && now.len() > old.len()
                && now.starts_with(old)
            {
                let n = old.len() + rng.below((now.len() - old.len()) as u64 + 1) as usize;
                *old = now[..n].to_vec();
            }
        }
        fs.now = kept.clone();
        fs.durable = kept;
    }
}

/// A table booted on `store` at `now`.
pub(super) fn boot(store: &MemStore, config: Config, now: u64) -> H {
    H::with_jobs(Jobs::restore(config, Box::new(store.clone()), now))
}

fn warnings(h: &mut H) -> StdVec<StdString> {
    h.jobs.drain_warnings().collect()
}

fn all_records(h: &H) -> StdVec<JobRecord> {
    h.jobs.table.values().map(|j| j.record.clone()).collect()
}

/// A native job started, spawned and running.
fn running_native(h: &mut H, name: &str, now: u64) -> u64 {
    let id = h.start(native_spec(name), now);
    assert!(h.jobs.drain_actions().count() > 0);
    h.jobs.native_started(id, 100 + id as u32, now);
    h.after();
    id
}

fn output(h: &mut H, id: u64, stream: Stream, bytes: &[u8], now: u64) {
    h.jobs.native_output(id, stream, bytes, now);
    h.after();
}

fn native_end(h: &mut H, id: u64, code: i32, now: u64) {
    h.jobs.native_exited(id, Some(code), None, false, now);
    h.after();
}

fn largest_stored() -> StoredJob {
    fn s<const N: usize>(c: char) -> String<N> {
        let mut out = String::new();
        while out.push(c).is_ok() {}
        out
    }
    let mut record = JobRecord::pending(u64::MAX, s('n'), u64::MAX);
    record.status = JobState::Stopped;
    record.message = s('x');
    record.attempt = u8::MAX;
    record.started_ms = Some(u64::MAX);
    record.ended_ms = Some(u64::MAX);
    record.runtime_ms = Some(u64::MAX);
    record.exit_code = Some(i32::MIN);
    record.signal = Some(i32::MIN);
    record.termination_reason = Some(TerminationReason::SpawnFailed);
    record.forced_kill = true;
    record.stop_requested_at_ms = Some(u64::MAX);
    record.last_output_at_ms = Some(u64::MAX);
    while record
        .latest_metrics
        .push(MetricValue {
            name: s('m'),
            value: f64::MAX,
            step: Some(u64::MAX),
            ts_ms: u64::MAX,
        })
        .is_ok()
    {}
    record.metric_points = u64::MAX;
    record.stdout_bytes = u64::MAX;
    record.stderr_bytes = u64::MAX;
    StoredJob {
        record,
        kind: JobKind::Native,
        grace_ms: u32::MAX,
        timeout_ms: Some(u32::MAX),
        stall_ms: Some(u32::MAX),
        max_retries: u8::MAX,
        logs: [(u64::MAX, u64::MAX); 2],
    }
}

fn small_stored() -> StoredJob {
    let mut record = JobRecord::pending(3, JobName::try_from("train").unwrap(), 1_000);
    record.status = JobState::Failed;
    record.exit_code = Some(2);
    record.runtime_ms = Some(1234);
    record.stdout_bytes = 10;
    StoredJob {
        record,
        kind: JobKind::Host,
        grace_ms: 10_000,
        timeout_ms: None,
        stall_ms: Some(5),
        max_retries: 1,
        logs: [(0, 10), (0, 0)],
    }
}

#[test]
fn a_record_file_round_trips_and_the_largest_fits() {
    for stored in [small_stored(), largest_stored()] {
        let bytes = record::encode(&stored).unwrap();
        assert!(bytes.len() <= RECORD_FILE_MAX, "{}", bytes.len());
        assert_eq!(&bytes[..4], b"AOJR");
        assert_eq!(record::decode(&bytes), Ok(stored));
    }
    // The bound is not loose by much (a change of a field shows here).
    let largest = record::encode(&largest_stored()).unwrap().len();
    assert!(largest + 100 > RECORD_FILE_MAX, "{largest}");
}

#[test]
fn the_checksum_finds_every_flipped_bit_and_every_truncation() {
    let bytes = record::encode(&small_stored()).unwrap();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut bad = bytes.clone();
            bad[i] ^= 1 << bit;
            assert!(record::decode(&bad).is_err(), "byte {i} bit {bit} went unnoticed");
        }
    }
    // A flip in the body is a checksum mismatch (not a decoding accident).
    let mut bad = bytes.clone();
    bad[20] ^= 0x10;
    assert_eq!(record::decode(&bad), Err(Damage::Checksum));
    for n in 0..bytes.len() {
        assert_eq!(record::decode(&bytes[..n]), Err(Damage::Truncated), "cut at {n}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(record::decode(&long), Err(Damage::TrailingBytes));
    let mut other = bytes.clone();
    other[4] = 2;
    assert_eq!(record::decode(&other), Err(Damage::Version(2)));
    assert_eq!(record::decode(b"hello, this is not a record"), Err(Damage::BadMagic));
    assert_eq!(record::decode(&[0u8; 4096]), Err(Damage::TooLarge));
}

#[test]
fn event_lines_round_trip_and_damaged_ones_are_refused() {
    let ev = Event {
        job_id: 3,
        from: JobState::Running,
        to: JobState::TimedOut,
        at_ms: 1_767_225_600_123,
    };
    let line = events::line(&ev);
    assert!(line.starts_with("1767225600123 3 RUNNING TIMED_OUT "), "{line}");
    assert!(line.len() <= events::LINE_MAX && line.ends_with('\n'));
    let text = line.trim_end();
    assert_eq!(events::parse(text), Some(ev));
    for i in 0..text.len() {
        let mut bad = text.as_bytes().to_vec();
        bad[i] = if bad[i] == b'7' { b'8' } else { b'7' };
        let bad = StdString::from_utf8(bad).unwrap();
        assert_eq!(events::parse(&bad), None, "{bad}");
        assert_eq!(events::parse(&text[..i]), None, "cut at {i}");
    }
    let widest = Event {
        job_id: u64::MAX,
        from: JobState::Succeeded,
        to: JobState::Succeeded,
        at_ms: u64::MAX,
    };
    assert!(events::line(&widest).len() <= events::LINE_MAX);
}

#[test]
fn names_in_the_jobs_directory() {
    let seg = |job_id, stream, start| Some(Name::Segment { job_id, stream, start });
    assert_eq!(layout::parse("12.rec"), Some(Name::Record(12)));
    assert_eq!(layout::parse("12.rec.tmp"), Some(Name::RecordTmp(12)));
    assert_eq!(layout::parse("3.stdout.0"), seg(3, Stream::Stdout, 0));
    assert_eq!(layout::parse("3.stderr.524288"), seg(3, Stream::Stderr, 524_288));
    for garbage in [
        "notes.txt",
        "0.rec",
        "012.rec",
        "-1.rec",
        "+1.rec",
        "1.rec.bak",
        "1.stdout",
        "1.stdout.01",
        "1.stdin.0",
        "1.stdout.-1",
        "99999999999999999999.rec",
        "rec",
        "",
        ".rec",
    ] {
        assert_eq!(layout::parse(garbage), None, "{garbage}");
    }
    assert_eq!(layout::record_path(7), "/ops/jobs/7.rec");
    assert_eq!(layout::segment_path(7, Stream::Stderr, 100), "/ops/jobs/7.stderr.100");
    // Every path the layout makes parses back.
    for name in ["7.rec", "7.rec.tmp", "7.stderr.100"] {
        assert!(layout::parse(name).is_some());
    }
}

#[test]
fn nothing_is_made_on_the_disk_before_a_job_starts_and_no_disk_is_memory_only() {
    let store = MemStore::default();
    let mut h = boot(&store, Config::default(), 0);
    assert!(h.jobs.is_persistent());
    h.tick(10_000);
    h.jobs.on_bridge_connected(10_000);
    h.after();
    assert!(store.0.borrow().now.dirs.is_empty());
    assert!(store.0.borrow().now.files.is_empty());
    h.start(native_spec("n"), 10_000);
    assert!(store.0.borrow().now.dirs.contains("/ops/jobs"));

    let none = MemStore::default();
    none.0.borrow_mut().no_fs = true;
    let mut h = boot(&none, Config::default(), 0);
    assert!(!h.jobs.is_persistent());
    assert_eq!(h.jobs.disk_stats(), None);
    let id = running_native(&mut h, "n", 0);
    output(&mut h, id, Stream::Stdout, b"memory only", 1);
    native_end(&mut h, id, 0, 2);
    h.tick(5_000);
    assert_eq!(h.logs(id, Stream::Stdout, 0, 100), (0, b"memory only".to_vec(), true));
    assert!(warnings(&mut h).is_empty());
}

#[test]
fn a_new_job_is_on_the_disk_before_its_id_is_answered() {
    let store = MemStore::default();
    let mut h = boot(&store, Config::default(), 0);
    h.jobs.on_bridge_connected(0);
    h.after();
    let id = h.start(host_spec("t"), 5);
    // Durable before the Start is even taken from the outbox.
    let stored = record::decode(&store.durable_file("/ops/jobs/1.rec").unwrap()).unwrap();
    assert_eq!((stored.record.job_id, stored.record.status), (id, JobState::Pending));
    assert_eq!(stored.kind, JobKind::Host);
    assert!(matches!(h.out()[..], [LinkMessage::Start { job_id: 1, .. }]));
    // A state change is durable when the input that made it returns.
    h.link(started(id, 10), 10);
    assert_eq!(store.stored(id).record.status, JobState::Running);
    assert!(store.durable_file("/ops/jobs/1.rec.tmp").is_none());
    // The events file has both changes, each line whole.
    let ev = StdString::from_utf8(store.durable_file("/ops/events").unwrap()).unwrap();
    let parsed: StdVec<Event> = ev.lines().map(|l| events::parse(l).unwrap()).collect();
    assert_eq!(parsed, h.events);
}

#[test]
fn ended_jobs_come_back_after_a_power_cut_as_they_were() {
    let store = MemStore::default();
    let mut h = boot(&store, Config::default(), 1_000);
    h.jobs.on_bridge_connected(1_000);
    h.after();
    let ok = h.start(host_spec("ok"), 1_000);
    h.out();
    h.link(started(ok, 1_010), 1_010);
    h.link(chunk(ok, Stream::Stdout, 0, b"hello\n"), 1_020);
    h.link(chunk(ok, Stream::Stderr, 0, &[0xff, 0, b'!']), 1_030);
    h.link(
        LinkMessage::Metric {
            job_id: ok,
            ts_ms: 3,
            offset: 0,
            point: point("loss", 0.25, 3),
        },
        1_040,
    );
    h.link(exited(ok, 0, 1_500), 1_500);
    let bad = running_native(&mut h, "bad", 1_600);
    output(&mut h, bad, Stream::Stdout, b"error: no such thing\n", 1_620);
    native_end(&mut h, bad, 2, 1_700);
    let stopped = h.start(host_spec("stopped"), 1_800);
    h.out();
    h.link(started(stopped, 1_810), 1_810);
    h.reply(JobRequest::Stop { job_id: stopped }, 1_820).unwrap();
    h.link(exited_stopped(stopped, true, 1_900), 1_900);
    let before = all_records(&h);
    assert_eq!(before.len(), 3);
    assert_eq!(h.record(ok).runtime_ms, Some(490));
    assert_eq!(h.record(bad).exit_code, Some(2));
    // The machine goes down: only what was synced stays.
    drop(h);
    store.cut();

    let mut h = boot(&store, Config::default(), 90_000);
    assert!(warnings(&mut h).is_empty());
    assert_eq!(all_records(&h), before);
    assert!(h.events.is_empty(), "ended jobs change nothing: {:?}", h.events);
    // Logs are read from the disk as asked, nothing loaded.
    assert_eq!(h.jobs.log_bytes_kept(), 0);
    assert_eq!(h.logs(ok, Stream::Stdout, 0, 1024), (0, b"hello\n".to_vec(), true));
    assert_eq!(h.logs(ok, Stream::Stderr, 1, 1024), (1, std::vec![0, b'!'], true));
    assert_eq!(h.logs(bad, Stream::Stdout, 0, 5), (0, b"error".to_vec(), false));
    assert_eq!(h.logs(bad, Stream::Stdout, 15, 100), (15, b"thing\n".to_vec(), true));
    assert_eq!(h.logs(stopped, Stream::Stdout, 0, 100), (0, StdVec::new(), true));
    assert_eq!(h.log_time(ok, Stream::Stdout, 0), None, "arrival times are not kept");
    assert_eq!(h.jobs.log_bytes_kept(), 0);
    let stats = h.jobs.disk_stats().unwrap();
    assert_eq!(
        (stats.restored, stats.lost_at_restore, stats.damaged_records),
        (3, 0, 0)
    );
    // Ids go on; the new job is stored beside the old ones.
    let next = h.start(native_spec("next"), 90_000);
    assert_eq!(next, stopped + 1);
    assert_eq!(store.stored(next).record.status, JobState::Pending);
}

#[test]
fn live_jobs_come_back_lost_with_the_reboot_as_reason() {
    let store = MemStore::default();
    let mut h = boot(&store, Config::default(), 0);
    h.jobs.on_bridge_connected(0);
    h.after();
    let running = running_native(&mut h, "spin", 0);
    output(&mut h, running, Stream::Stdout, b"tick 1\n", 10);
    h.tick(SYNC_EVERY_MS + 10);
    output(
        &mut h,
        running,
        Stream::Stdout,
        b"tick 2 (never synced)\n",
        SYNC_EVERY_MS + 20,
    );
    let pending = h.start(native_spec("pending"), 300);
    let stopping = h.start(host_spec("stopping"), 300);
    h.out();
    h.link(started(stopping, 310), 310);
    h.reply(JobRequest::Stop { job_id: stopping }, 320).unwrap();
    assert_eq!(h.status(stopping), JobState::Stopping);
    drop(h);
    store.cut();

    let mut h = boot(&store, Config::default(), 50_000);
    let mut lost = StdVec::new();
    for (id, was) in [
        (running, JobState::Running),
        (pending, JobState::Pending),
        (stopping, JobState::Stopping),
    ] {
        let r = h.record(id);
        assert_eq!(r.status, JobState::Lost);
        assert_eq!(r.termination_reason, Some(TerminationReason::Lost));
        assert_eq!(
            r.message,
            format!("lost: reboot (it was {was} when opsd went down)").as_str()
        );
        assert_eq!((r.ended_ms, r.runtime_ms, r.exit_code), (Some(50_000), None, None));
        lost.push(Event {
            job_id: id,
            from: was,
            to: JobState::Lost,
            at_ms: 50_000,
        });
    }
    assert_eq!(h.events, lost);
    assert_eq!(h.jobs.disk_stats().unwrap().lost_at_restore, 3);
    // What was synced of the running job's log is there.
    assert_eq!(h.logs(running, Stream::Stdout, 0, 100), (0, b"tick 1\n".to_vec(), true));
    assert_eq!(h.record(running).stdout_bytes, 7);
    // The LOST records are stored: the next boot finds them ended.
    let after = all_records(&h);
    assert_eq!(store.stored(running).record, h.record(running));
    let ev = StdString::from_utf8(store.file("/ops/events").unwrap()).unwrap();
    let tail: StdVec<Event> = ev.lines().rev().take(3).map(|l| events::parse(l).unwrap()).collect();
    assert_eq!(tail.len(), 3);
    assert!(tail.iter().all(|e| e.to == JobState::Lost));
    drop(h);
    let h = boot(&store, Config::default(), 60_000);
    assert_eq!(all_records(&h), after);
    assert!(h.events.is_empty());
}

#[test]
fn ids_go_on_after_the_highest_name_even_a_damaged_one() {
    let store = MemStore::default();
    let mut h = boot(&store, Config::default(), 0);
    for _ in 0..2 {
        let id = running_native(&mut h, "n", 0);
        native_end(&mut h, id, 0, 1);
    }
    drop(h);
    store.put("/ops/jobs/9.rec", b"garbage");
    store.put("/ops/jobs/12.stderr.0", b"a log without its record");
    let mut h = boot(&store, Config::default(), 10);
    assert_eq!(h.jobs.len(), 2);
    assert_eq!(h.start(native_spec("n"), 10), 13);
    let w = warnings(&mut h);
    assert!(
        w.contains(&"/ops/jobs/9.rec: damaged (not a record): job 9 skipped".to_string()),
        "{w:?}"
    );
    assert!(
        w.contains(&"/ops/jobs/12.*: logs without a record: left alone".to_string()),
        "{w:?}"
    );
}

#[test]
fn a_damaged_record_is_skipped_with_a_warning_and_the_rest_load() {
    let store = MemStore::default();
    let mut h = boot(&store, Config::default(), 0);
    for i in 0..4 {
        let id = running_native(&mut h, "n", i * 10);
        output(&mut h, id, Stream::Stdout, format!("job {id}\n").as_bytes(), i * 10 + 1);
        native_end(&mut h, id, i as i32, i * 10 + 2);
    }
    let before = all_records(&h);
    drop(h);
    let mut flipped = store.file("/ops/jobs/2.rec").unwrap();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    store.put("/ops/jobs/2.rec", &flipped);
    let torn = store.file("/ops/jobs/3.rec").unwrap();
    store.put("/ops/jobs/3.rec", &torn[..torn.len() / 2]);
    store.put("/ops/jobs/4.rec.tmp", &torn[..10]);
    store.put("/ops/jobs/notes.txt", b"not opsd's");
    store.0.borrow_mut().now.dirs.insert("/ops/jobs/old".to_string());

    let mut h = boot(&store, Config::default(), 100);
    let mut w = warnings(&mut h);
    w.sort();
    assert_eq!(
        w,
        [
            "/ops/jobs/2.rec: damaged (checksum mismatch): job 2 skipped",
            "/ops/jobs/3.rec: damaged (truncated): job 3 skipped",
            "/ops/jobs/notes.txt: not opsd's: left alone",
            "/ops/jobs/old: not opsd's: left alone",
        ]
    );
    assert_eq!(all_records(&h), [before[0].clone(), before[3].clone()]);
    assert_eq!(h.logs(4, Stream::Stdout, 0, 100), (0, b"job 4\n".to_vec(), true));
    assert_eq!(h.jobs.disk_stats().unwrap().damaged_records, 2);
    // The damaged files stay for a person to look at; the temporary goes.
    let names = store.names();
    for kept in ["2.rec", "3.rec", "2.stdout.0", "3.stdout.0", "notes.txt", "old"] {
        assert!(names.contains(&kept.to_string()), "{kept}: {names:?}");
    }
    assert!(!names.contains(&"4.rec.tmp".to_string()));
    assert_eq!(h.start(native_spec("n"), 100), 5);
}

#[test]
fn a_log_shorter_than_its_record_ends_where_the_disk_does() {
    let store = MemStore::default();
    let mut h = boot(&store, Config::default(), 0);
    let id = running_native(&mut h, "n", 0);
    output(&mut h, id, Stream::Stdout, b"0123456789", 1);
    native_end(&mut h, id, 0, 2);
    drop(h);
    store.put("/ops/jobs/1.stdout.0", b"0123");

    let mut h = boot(&store, Config::default(), 10);
    assert_eq!(
        warnings(&mut h),
        ["job 1 stdout: 4 bytes on the disk, its record says 10: the log ends there"]
    );
    assert_eq!(h.record(id).stdout_bytes, 10);
    assert_eq!(h.logs(id, Stream::Stdout, 0, 100), (0, b"0123".to_vec(), false));
    // The rest is gone: a read there answers from the end, at eof.
    assert_eq!(h.logs(id, Stream::Stdout, 4, 100), (10, StdVec::new(), true));
    // A log file gone altogether: the same, from 0.
    drop(h);
    store.0.borrow_mut().now.files.remove("/ops/jobs/1.stdout.0");
    let mut h = boot(&store, Config::default(), 20);
    assert_eq!(
        warnings(&mut h),
        ["job 1 stdout: 0 bytes on the disk, its record says 10: the log ends there"]
    );
    assert_eq!(h.logs(id, Stream::Stdout, 0, 100), (10, StdVec::new(), true));
}

#[test]
fn a_jobs_directory_that_is_a_file_leaves_the_table_in_memory() {
    let store = MemStore::default();
    store.put("/ops/jobs", b"garbage");
    let mut h = boot(&store, Config::default(), 0);
    assert!(!h.jobs.is_persistent());
    assert_eq!(
        warnings(&mut h),
        ["cannot read /ops/jobs: not a directory: jobs are kept in memory only"]
    );
    let id = running_native(&mut h, "n", 0);
    native_end(&mut h, id, 0, 1);
    assert_eq!(store.file("/ops/jobs"), Some(b"garbage".to_vec()));
    assert!(warnings(&mut h).is_empty());
}

fn pattern(range: std::ops::Range<u64>) -> StdVec<u8> {
    range.map(|i| (i % 251) as u8).collect()
}

#[test]
fn a_long_log_keeps_its_newest_segments() {
    let config = Config {
        disk_segment_bytes: 100,
        log_bytes_per_stream: 1000,
        ..Config::default()
    };
    let store = MemStore::default();
    let mut h = boot(&store, config, 0);
    let id = running_native(&mut h, "n", 0);
    for (k, at) in (0..1050).step_by(30).enumerate() {
        output(&mut h, id, Stream::Stdout, &pattern(at..(at + 30).min(1050)), k as u64);
    }
    native_end(&mut h, id, 0, 100);
    let mut names = store.names();
    names.sort();
    assert_eq!(names, ["1.rec", "1.stdout.1000", "1.stdout.900"]);
    assert_eq!(h.jobs.disk_log_range(id, Stream::Stdout), Some((900, 1050)));
    // This boot's memory has more of it than the disk.
    assert_eq!(h.jobs.log_range(id, Stream::Stdout), Some((50, 1050)));
    assert_eq!(h.logs(id, Stream::Stdout, 0, 10), (50, pattern(50..60), false));
    drop(h);

    let mut h = boot(&store, config, 200);
    assert!(warnings(&mut h).is_empty());
    assert_eq!(h.logs(id, Stream::Stdout, 0, 1024), (900, pattern(900..1000), false));
    assert_eq!(h.logs(id, Stream::Stdout, 950, 10), (950, pattern(950..960), false));
    assert_eq!(
        h.logs(id, Stream::Stdout, 1000, 1024),
        (1000, pattern(1000..1050), true)
    );
}

#[test]
fn the_disk_budget_takes_the_oldest_ended_jobs_logs_first() {
    let config = Config {
        disk_segment_bytes: 100,
        disk_log_bytes_total: 300,
        ..Config::default()
    };
    let store = MemStore::default();
    let mut h = boot(&store, config, 0);
    let old = running_native(&mut h, "old", 0);
    output(&mut h, old, Stream::Stdout, &pattern(0..150), 1);
    native_end(&mut h, old, 0, 2);
    let live = running_native(&mut h, "live", 3);
    output(&mut h, live, Stream::Stdout, &pattern(0..120), 4);
    h.tick(SYNC_EVERY_MS + 10);
    assert_eq!(h.jobs.disk_stats().unwrap().log_bytes_on_disk, 270);
    output(&mut h, live, Stream::Stderr, &pattern(0..80), SYNC_EVERY_MS + 20);
    h.tick(2 * SYNC_EVERY_MS + 30);
    // The ended job's logs went, and its record says so.
    assert_eq!(h.jobs.disk_stats().unwrap().log_bytes_on_disk, 200);
    assert!(!store.names().iter().any(|n| n.starts_with("1.stdout")));
    assert_eq!(store.stored(old).logs[0], (150, 150));
    // Memory still has them in this boot.
    assert_eq!(h.logs(old, Stream::Stdout, 0, 5), (0, pattern(0..5), false));
    // A stream keeps its two newest segments.
    output(&mut h, live, Stream::Stdout, &pattern(120..250), 3 * SYNC_EVERY_MS);
    h.tick(4 * SYNC_EVERY_MS);
    assert_eq!(h.jobs.disk_log_range(live, Stream::Stdout), Some((100, 250)));
    assert_eq!(h.jobs.disk_stats().unwrap().log_bytes_on_disk, 230);
    // Beyond the budget with no ended job's logs left: the oldest segment
    // of the largest stream.
    output(&mut h, live, Stream::Stderr, &pattern(80..180), 5 * SYNC_EVERY_MS);
    h.tick(6 * SYNC_EVERY_MS);
    assert_eq!(h.jobs.disk_log_range(live, Stream::Stderr), Some((100, 180)));
    assert_eq!(h.jobs.disk_log_range(live, Stream::Stdout), Some((100, 250)));
    assert_eq!(h.jobs.disk_stats().unwrap().log_bytes_on_disk, 230);
    drop(h);
    let mut h = boot(&store, config, 10_000);
    assert_eq!(warnings(&mut h), StdVec::<StdString>::new());
    assert_eq!(h.logs(old, Stream::Stdout, 0, 100), (150, StdVec::new(), true));
    assert_eq!(h.logs(live, Stream::Stdout, 0, 1000), (100, pattern(100..200), false));
    assert_eq!(h.logs(live, Stream::Stderr, 150, 1000), (150, pattern(150..180), true));
}

#[test]
fn an_evicted_job_takes_its_files_along() {
    let config = Config {
        max_jobs: 2,
        ..Config::default()
    };
    let store = MemStore::default();
    let mut h = boot(&store, config, 0);
    for i in 0..2 {
        let id = running_native(&mut h, "n", i);
        output(&mut h, id, Stream::Stderr, b"err", i);
        native_end(&mut h, id, 1, i);
    }
    let third = h.start(native_spec("n"), 10);
    assert_eq!(third, 3);
    // Gone for good once the start that evicted it is answered.
    store.cut();
    let mut names = store.names();
    names.sort();
    assert_eq!(names, ["2.rec", "2.stderr.0", "3.rec"]);
    drop(h);
    let mut h = boot(&store, config, 20);
    assert_eq!(h.jobs.table.keys().copied().collect::<StdVec<_>>(), [2, 3]);
    // Job 4 evicts job 2 (job 3 came back LOST).
    assert_eq!(h.start(native_spec("n"), 20), 4);
    let mut names = store.names();
    names.sort();
    assert_eq!(names, ["3.rec", "4.rec"]);
}

#[test]
fn too_many_stored_jobs_for_the_table_evicts_the_oldest_at_boot() {
    let store = MemStore::default();
    let mut h = boot(&store, Config::default(), 0);
    for i in 0..4 {
        let id = running_native(&mut h, "n", i);
        native_end(&mut h, id, 0, i);
    }
    drop(h);
    let config = Config {
        max_jobs: 2,
        ..Config::default()
    };
    let h = boot(&store, config, 10);
    assert_eq!(h.jobs.table.keys().copied().collect::<StdVec<_>>(), [3, 4]);
    let mut names = store.names();
    names.sort();
    assert_eq!(names, ["3.rec", "4.rec"]);
}

#[test]
fn a_full_disk_seals_the_stream_and_warns_once() {
    let store = MemStore::default();
    let mut h = boot(&store, Config::default(), 0);
    let id = running_native(&mut h, "n", 0);
    output(&mut h, id, Stream::Stdout, b"stored", 1);
    h.tick(SYNC_EVERY_MS);
    store.set_fail(Some(FsError::NoSpace));
    for t in 0..5 {
        output(&mut h, id, Stream::Stdout, &[b'x'; 40_000], SYNC_EVERY_MS + t);
        h.tick(SYNC_EVERY_MS * (2 + t));
    }
    native_end(&mut h, id, 0, 10_000);
    h.tick(20_000);
    let w = warnings(&mut h);
    assert_eq!(
        w,
        [
            "job 1 stdout: not stored past byte 6: no space left on the disk",
            "cannot write /ops/events: no space left on the disk",
            "job 1: the record is not stored: no space left on the disk",
        ]
    );
    // Memory goes on as before.
    assert_eq!(h.status(id), JobState::Succeeded);
    assert_eq!(h.logs(id, Stream::Stdout, 0, 6), (0, b"stored".to_vec(), false));
    // Space again: the next records are written (the sealed stream stays
    // as it was on the disk).
    store.set_fail(None);
    let next = h.start(native_spec("n"), 30_000);
    assert_eq!(store.stored(next).record.status, JobState::Pending);
    h.tick(30_000 + RECORD_REFRESH_MS);
    assert_eq!(store.stored(id).record.status, JobState::Succeeded);
    assert_eq!(store.stored(id).logs[0], (0, 6));
}

#[test]
fn a_read_only_disk_is_read_stores_nothing_and_says_so_once() {
    let store = MemStore::default();
    let mut h = boot(&store, Config::default(), 0);
    let old = running_native(&mut h, "n", 0);
    output(&mut h, old, Stream::Stdout, b"kept", 1);
    native_end(&mut h, old, 0, 2);
    drop(h);
    store.set_fail(Some(FsError::ReadOnly));
    let mut h = boot(&store, Config::default(), 10);
    assert_eq!(h.logs(old, Stream::Stdout, 0, 10), (0, b"kept".to_vec(), true));
    let before = store.names();
    for i in 0..3 {
        let id = running_native(&mut h, "n", 20 + i);
        output(&mut h, id, Stream::Stdout, b"x", 21 + i);
        native_end(&mut h, id, 0, 22 + i);
    }
    h.tick(10_000);
    assert!(!h.jobs.is_persistent());
    assert_eq!(
        warnings(&mut h),
        ["job 2: the record is not stored: read-only: jobs are no longer stored on the disk"]
    );
    assert_eq!(store.names(), before);
}

#[test]
fn log_bytes_are_synced_every_200_ms_and_at_the_end_and_counters_every_2_s() {
    let store = MemStore::default();
    let mut h = boot(&store, Config::default(), 0);
    let id = running_native(&mut h, "n", 0);
    // The first bytes after a quiet time go at the next tick...
    output(&mut h, id, Stream::Stdout, b"a", 1_000);
    assert_eq!(store.file("/ops/jobs/1.stdout.0"), None, "batched in memory");
    h.tick(1_000);
    assert_eq!(store.durable_file("/ops/jobs/1.stdout.0"), Some(b"a".to_vec()));
    // ... then at most every SYNC_EVERY_MS.
    output(&mut h, id, Stream::Stdout, b"bc", 1_010);
    h.tick(1_000 + SYNC_EVERY_MS - 1);
    assert_eq!(store.file("/ops/jobs/1.stdout.0"), Some(b"a".to_vec()));
    assert_eq!(h.jobs.next_deadline(), Some(1_000 + SYNC_EVERY_MS));
    h.tick(1_000 + SYNC_EVERY_MS);
    assert_eq!(store.durable_file("/ops/jobs/1.stdout.0"), Some(b"abc".to_vec()));
    // The record's counters follow within RECORD_REFRESH_MS.
    assert_eq!(store.stored(id).record.stdout_bytes, 0);
    h.tick(RECORD_REFRESH_MS - 1);
    assert_eq!(store.stored(id).record.stdout_bytes, 0);
    h.tick(RECORD_REFRESH_MS);
    assert_eq!(store.stored(id).record.stdout_bytes, 3);
    // The end: logs and record durable when the input returns.
    output(&mut h, id, Stream::Stdout, b"def", 2_100);
    native_end(&mut h, id, 0, 2_101);
    store.cut();
    assert_eq!(store.file("/ops/jobs/1.stdout.0"), Some(b"abcdef".to_vec()));
    assert_eq!(store.stored(id).record.status, JobState::Succeeded);
    assert_eq!(store.stored(id).logs[0], (0, 6));
    // Nothing left to do after one more look: no disk deadline.
    h.tick(2_101 + SYNC_EVERY_MS);
    assert_eq!(h.jobs.next_deadline(), None);
}

#[test]
fn a_big_write_goes_to_the_disk_before_memory_drops_it() {
    let config = Config {
        log_bytes_per_stream: 100,
        disk_segment_bytes: 1000,
        ..Config::default()
    };
    let store = MemStore::default();
    let mut h = boot(&store, config, 0);
    let id = running_native(&mut h, "n", 0);
    for k in 0..5 {
        output(&mut h, id, Stream::Stdout, &pattern(k * 70..(k + 1) * 70), k);
    }
    // Memory keeps 100 bytes, the disk all 350 (before any sync timer).
    assert_eq!(h.jobs.log_range(id, Stream::Stdout), Some((250, 350)));
    assert_eq!(store.file("/ops/jobs/1.stdout.0"), Some(pattern(0..350)));
    assert_eq!(h.logs(id, Stream::Stdout, 0, 1024), (0, pattern(0..350), false));
}

#[test]
fn the_events_file_turns_over_at_its_bound() {
    let store = MemStore::default();
    store.put("/ops/events", &std::vec![b'#'; EVENTS_FILE_MAX as usize]);
    store.put("/ops/events.1", b"the oldest");
    let mut h = boot(&store, Config::default(), 0);
    let id = running_native(&mut h, "n", 0);
    assert_eq!(store.file("/ops/events.1").unwrap().len(), EVENTS_FILE_MAX as usize);
    let fresh = StdString::from_utf8(store.file("/ops/events").unwrap()).unwrap();
    let parsed: StdVec<Event> = fresh.lines().map(|l| events::parse(l).unwrap()).collect();
    assert_eq!(parsed[0].job_id, id);
    assert_eq!(parsed[0].to, JobState::Running);
}

/// The random inputs of `random_inputs_never_panic_and_keep_the_invariants`
/// on a table kept on a disk, with power cuts (some keeping part of what
/// was not synced) and reboots at random moments: every job comes back,
/// ended ones as they ended, live ones LOST, ids never reused, and the
/// invariants hold throughout.
#[test]
fn random_inputs_with_power_cuts_restore_every_job() {
    let (mut boots, mut restored, mut lost, mut rolled) = (0, 0, 0, 0);
    for seed in 0..30 {
        let mut rng = Rng(1000 + seed);
        let config = Config {
            max_jobs: 1 + rng.below(10) as usize,
            log_bytes_per_stream: 1 + rng.below(3000) as usize,
            log_bytes_total: rng.below(8000) as usize,
            max_waiting_host: rng.below(4) as usize,
            disk_segment_bytes: 1 + rng.below(2000) as usize,
            disk_log_bytes_total: rng.below(20_000),
            ..Config::default()
        };
        let store = MemStore::default();
        let mut h = boot(&store, config, 0);
        let mut now = 0u64;
        let mut bridge_end: HashMap<(u64, usize), u64> = HashMap::new();
        let mut highest_id = 0;
        for step in 0..2000 {
            random_input(&mut h, &mut rng, &mut now, step, &mut bridge_end);
            highest_id = highest_id.max(h.jobs.next_id - 1);
            if rng.below(300) != 0 {
                continue;
            }
            let before: BTreeMap<u64, JobRecord> = h.jobs.table.iter().map(|(&id, j)| (id, j.record.clone())).collect();
            drop(h);
            if rng.below(2) == 0 {
                store.cut();
            } else {
                store.cut_torn(&mut rng);
            }
            now += rng.below(1000);
            h = boot(&store, config, now);
            bridge_end.clear();
            let stats = h.jobs.disk_stats().unwrap();
            boots += 1;
            restored += stats.restored;
            lost += stats.lost_at_restore;
            rolled += store
                .names()
                .iter()
                .filter(|n| n.contains("out.") && !n.ends_with(".0"))
                .count();
            let after = &h.jobs.table;
            assert_eq!(
                after.keys().collect::<StdVec<_>>(),
                before.keys().collect::<StdVec<_>>(),
                "seed {seed} step {step}"
            );
            for (id, was) in &before {
                let is = &after[id].record;
                if was.status.is_terminal() {
                    // What cannot change once it has ended.
                    let end = |r: &JobRecord| {
                        (
                            r.status,
                            r.exit_code,
                            r.signal,
                            r.runtime_ms,
                            r.ended_ms,
                            r.termination_reason,
                            r.attempt,
                            r.message.clone(),
                        )
                    };
                    assert_eq!(end(is), end(was), "seed {seed} step {step} job {id}");
                } else {
                    assert_eq!(is.status, JobState::Lost, "seed {seed} step {step} job {id}");
                }
            }
            assert!(h.jobs.next_id > highest_id, "seed {seed}: an id would be reused");
            let w = warnings(&mut h);
            assert!(
                w.iter().all(|l| !l.contains("damaged") && !l.contains("not opsd's")),
                "seed {seed} step {step}: {w:?}"
            );
        }
    }
    // The cuts fell on ended and live jobs, and on logs long enough to roll.
    assert!(
        boots > 100 && restored > 300 && lost > 50 && rolled > 3,
        "{boots} {restored} {lost} {rolled}"
    );
}
