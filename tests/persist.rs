//! opsd keeps its jobs across reboots (issue 5; docs/jobs.md,
//! "Persistence"): jobs run from the console on a disk image, the machine
//! loses power (QEMU killed), and the next boot on the same image shows
//! the same jobs with the same status, exit code, runtime and logs; a job
//! that was running comes back LOST; a record damaged on the host between
//! the boots is skipped with a warning while the other jobs load.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aether_abi::boot::PROMPT;
use aetheros::runner::{Firmware, Session};
use common::run;

/// A fresh file system image for one test (removed on drop).
struct Image(PathBuf);

impl Image {
    fn new(name: &str) -> Image {
        let path = std::env::temp_dir().join(format!("aether-persist-{name}-{}.img", std::process::id()));
        aether_disk::mkfs(&path, 64 << 20).expect("mkfs");
        Image(path)
    }

    /// Replaces a file of the image with `bytes` (through the host tool).
    fn put(&self, path: &str, bytes: &[u8]) {
        let host = self.0.with_extension("put");
        std::fs::write(&host, bytes).expect("a host file");
        aether_disk::put(&self.0, &host, path).unwrap_or_else(|e| panic!("put {path}: {e}"));
        let _ = std::fs::remove_file(&host);
    }

    fn cat(&self, path: &str) -> Vec<u8> {
        aether_disk::cat(&self.0, path).unwrap_or_else(|e| panic!("cat {path}: {e}"))
    }

    fn names(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = aether_disk::ls(&self.0, dir)
            .unwrap_or_else(|e| panic!("ls {dir}: {e}"))
            .into_iter()
            .map(|(e, _)| e.name.as_str().to_string())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn boot(image: &Path) -> Session {
    let mut s = common::boot_with_devices(
        Firmware::Bios,
        &common::console_cmdline(),
        aetheros::runner::blk_device_args(image, false),
    );
    s.expect(PROMPT, common::BOOT).unwrap_or_else(|e| panic!("{e}"));
    s
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// `job ls --json`, one record per line. opsd answers only once it has
/// loaded what the disk holds, so its warnings about the disk are in the
/// output by then; those that came after the prompt are taken out here
/// (and stay in `s.output()`).
fn job_ls(s: &mut Session) -> Vec<String> {
    run(s, "job ls --json")
        .into_iter()
        .filter(|l| !l.starts_with("opsd: "))
        .collect()
}

/// The console output of the run so far, opsd's warning lines only.
fn opsd_warnings(s: &Session) -> Vec<String> {
    s.output()
        .split("\r\n")
        .filter(|l| l.starts_with("opsd: "))
        .map(str::to_string)
        .collect()
}

/// Starts a native job; returns its id.
fn start(s: &mut Session, command: &str) -> u64 {
    let out = run(s, &format!("job start --native -- {command}"));
    let line = out
        .iter()
        .find(|l| l.ends_with(" started"))
        .unwrap_or_else(|| panic!("{out:?}"));
    line.trim_start_matches("job ")
        .trim_end_matches(" started")
        .parse()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// `job wait ID`: the summary line.
fn wait(s: &mut Session, id: u64) -> String {
    let out = run(s, &format!("job wait {id}"));
    out.into_iter()
        .find(|l| l.starts_with(&format!("job {id} (")))
        .unwrap_or_else(|| panic!("job wait {id}: no summary"))
}

/// Polls `job status ID --json` until the job is `status`.
fn await_status(s: &mut Session, id: u64, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = run(s, &format!("job status {id} --json"));
        if out.iter().any(|l| l.starts_with('{') && json(l)["status"] == status) {
            return;
        }
        assert!(Instant::now() < deadline, "job {id} never {status}: {out:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn jobs_come_back_after_a_power_cut_with_status_exit_code_runtime_and_logs() {
    let image = Image::new("cut");
    let mut s = boot(&image.0);
    assert_eq!(start(&mut s, "hello persisted"), 1);
    let ok = wait(&mut s, 1);
    assert!(ok.contains("SUCCEEDED, exit code 0"), "{ok}");
    // `fault` with an unknown kind prints an error and exits 2.
    assert_eq!(start(&mut s, "fault bogus"), 2);
    let failed = wait(&mut s, 2);
    assert!(failed.contains("FAILED, exit code 2"), "{failed}");
    let ls = job_ls(&mut s);
    assert_eq!(ls.len(), 2, "{ls:?}");
    let logs = run(&mut s, "job logs 1");
    assert!(
        logs.iter().any(|l| l.starts_with("hello from ring 3: pid ")),
        "{logs:?}"
    );
    assert!(logs.iter().any(|l| l == "arg 1: persisted"), "{logs:?}");
    let fault_logs = run(&mut s, "job logs 2");
    assert!(
        fault_logs.iter().any(|l| l.contains("unknown fault 'bogus'")),
        "{fault_logs:?}"
    );
    // A power cut: QEMU is killed, nothing is shut down.
    drop(s);

    // On the host: the image checks clean and holds the jobs' files.
    aether_disk::check(&image.0).unwrap_or_else(|e| panic!("fsck after the cut: {e}"));
    assert_eq!(image.names("/ops"), ["events", "jobs"]);
    let names = image.names("/ops/jobs");
    assert_eq!(names, ["1.rec", "1.stdout.0", "2.rec", "2.stdout.0"], "{names:?}");
    let stdout = String::from_utf8(image.cat("/ops/jobs/1.stdout.0")).expect("hello's output is text");
    assert!(stdout.contains("arg 1: persisted\n"), "{stdout:?}");
    let events = String::from_utf8(image.cat("/ops/events")).expect("events are text");
    assert!(events.lines().any(|l| l.contains(" 1 RUNNING SUCCEEDED ")), "{events}");
    assert!(events.lines().any(|l| l.contains(" 2 RUNNING FAILED ")), "{events}");

    let mut s = boot(&image.0);
    assert_eq!(job_ls(&mut s), ls, "the same records after the reboot");
    let records: Vec<serde_json::Value> = ls.iter().map(|l| json(l)).collect();
    let fields = |r: &serde_json::Value| {
        (
            r["status"].as_str().map(str::to_string),
            r["exit_code"].as_i64(),
            r["runtime_ms"].as_u64().is_some(),
        )
    };
    assert_eq!(fields(&records[0]), (Some("SUCCEEDED".into()), Some(0), true));
    assert_eq!(fields(&records[1]), (Some("FAILED".into()), Some(2), true));
    assert_eq!(run(&mut s, "job logs 1"), logs, "the same bytes, read from the disk");
    assert_eq!(run(&mut s, "job logs 2"), fault_logs);
    assert_eq!(run(&mut s, "job logs 1 --offset 6"), {
        // The same read from an offset as before the cut.
        let text = logs.join("\n");
        text[6..].lines().map(str::to_string).collect::<Vec<_>>()
    });
    // Ids go on after the stored ones.
    assert_eq!(start(&mut s, "hello again"), 3);
    assert!(wait(&mut s, 3).contains("SUCCEEDED"));
    assert!(opsd_warnings(&s).is_empty(), "{:?}", opsd_warnings(&s));
    drop(s);
    aether_disk::check(&image.0).unwrap_or_else(|e| panic!("fsck after the second boot: {e}"));
}

#[test]
fn a_damaged_record_is_skipped_with_a_warning_and_the_other_jobs_load() {
    let image = Image::new("damage");
    let mut s = boot(&image.0);
    for (id, arg) in [(1, "one"), (2, "two"), (3, "three")] {
        assert_eq!(start(&mut s, &format!("hello {arg}")), id);
        assert!(wait(&mut s, id).contains("SUCCEEDED"));
    }
    // One that is running when the power goes.
    assert_eq!(start(&mut s, "spin"), 4);
    await_status(&mut s, 4, "RUNNING");
    let before = job_ls(&mut s);
    drop(s);

    // Between the boots, on the host: a byte of job 2's record flipped,
    // job 3's log cut short, and files opsd never wrote.
    let mut record = image.cat("/ops/jobs/2.rec");
    let mid = record.len() / 2;
    record[mid] ^= 0x20;
    image.put("/ops/jobs/2.rec", &record);
    let log = image.cat("/ops/jobs/3.stdout.0");
    image.put("/ops/jobs/3.stdout.0", &log[..10]);
    image.put("/ops/jobs/notes.txt", b"not opsd's");
    image.put("/ops/junk", b"not opsd's either");
    aether_disk::check(&image.0).unwrap_or_else(|e| panic!("fsck: {e}"));

    let mut s = boot(&image.0);
    let after = job_ls(&mut s);
    let mut warnings = opsd_warnings(&s);
    warnings.sort();
    assert_eq!(
        warnings,
        [
            "opsd: /ops/jobs/2.rec: damaged (checksum mismatch): job 2 skipped".to_string(),
            "opsd: /ops/jobs/notes.txt: not opsd's: left alone".to_string(),
            format!(
                "opsd: job 3 stdout: 10 bytes on the disk, its record says {}: the log ends there",
                log.len()
            ),
        ]
    );
    let ids: Vec<u64> = after.iter().map(|l| json(l)["job_id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 3, 4]);
    // Jobs 1 and 3 as they were; the running one LOST for the reboot.
    assert_eq!(after[0], before[0]);
    assert_eq!(after[1], before[2]);
    let lost = json(&after[2]);
    assert_eq!(lost["status"], "LOST");
    assert_eq!(lost["termination_reason"], "lost");
    assert_eq!(lost["message"], "lost: reboot (it was RUNNING when opsd went down)");
    // Job 3's log ends where the disk's bytes do.
    let short = run(&mut s, "job logs 3");
    assert_eq!(short[0], String::from_utf8_lossy(&log[..10]), "{short:?}");
    assert_eq!(
        short.last().map(String::as_str),
        Some(format!("[job logs: bytes 10..{} are no longer kept]", log.len()).as_str()),
        "{short:?}"
    );
    assert!(run(&mut s, "job logs 1").iter().any(|l| l == "arg 1: one"));
    assert_eq!(run(&mut s, "job status 2"), ["error: job: no such job"]);
    // The damaged job's id is not given again.
    assert_eq!(start(&mut s, "hello five"), 5);
    assert!(wait(&mut s, 5).contains("SUCCEEDED"));
    drop(s);
    // What opsd did not write is left as it was.
    assert_eq!(image.cat("/ops/jobs/notes.txt"), b"not opsd's");
    assert_eq!(image.cat("/ops/junk"), b"not opsd's either");
    assert_eq!(image.cat("/ops/jobs/2.rec"), record);
}
