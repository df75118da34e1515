//! `--telemetry`: issue 6's figures through the whole path (docs/telemetry.md):
//!
//! * `alert_latency_p50` / `_max`: a Python trainer on the host prints a
//!   new best value every [`EVERY_S`] s, stamping the host's clock just
//!   before each line; the webhook receiver (here) notes when the POST
//!   for that step arrives. Path: the bridge's line parser, the link,
//!   opsd's registry and rules and router, the link, the bridge's sender.
//!   Median and largest of [`POINTS`] - 1 alerts (the first value is the
//!   mark, not a new best).
//! * `artifact_transfer_mib_per_s`: a trainer writes an [`ARTIFACT_MIB`]
//!   MiB checkpoint and announces it; from the moment it is written (the
//!   trainer's stamp) until `GET /artifacts` lists the stored version
//!   (polled every 10 ms): the bridge's sha256, the link, opsd's sha256
//!   and its writes to the disk, sync and rename included.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aetheros::runner::Qemu;

use crate::jobs::{Rig, boot_with};

const POINTS: usize = 31;
const ARTIFACT_MIB: usize = 64;
const EVERY_S: f64 = 0.1;

fn unix_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// A disk image with `files`, removed on drop.
struct Image(PathBuf);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn image(files: &[(&str, String)]) -> Result<Image, String> {
    let path = std::env::temp_dir().join(format!("aether-bench-telemetry-{}.img", std::process::id()));
    aether_disk::mkfs(&path, 256 << 20).map_err(|e| e.to_string())?;
    let img = Image(path);
    aether_disk::mkdir(&img.0, "/ops").map_err(|e| e.to_string())?;
    for (at, text) in files {
        let host = img.0.with_extension("put");
        std::fs::write(&host, text).map_err(|e| e.to_string())?;
        aether_disk::put(&img.0, &host, at).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&host);
    }
    Ok(img)
}

/// The job's stderr (its stamps), read over HTTP once it ended.
fn stamps(rig: &Rig, id: u64) -> Result<Vec<u128>, String> {
    let (code, body) = rig.get(&format!("/jobs/{id}/logs?stream=stderr&max=1048576"))?;
    if code != 200 {
        return Err(format!("logs: {code}"));
    }
    let mut out = vec![0; POINTS];
    for line in String::from_utf8_lossy(&body).lines() {
        let mut w = line.split_whitespace();
        if let (Some("stamp"), Some(step), Some(ns)) = (w.next(), w.next(), w.next())
            && let (Ok(step), Ok(ns)) = (step.parse::<usize>(), ns.parse::<u128>())
            && step < POINTS
        {
            out[step] = ns;
        }
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn once(qemu: &Qemu) -> Result<Vec<(String, f64, String)>, String> {
    let (port, posts) = aetheros::bridge::webhook_receiver().map_err(|e| e.to_string())?;
    let rules = String::from("best: new_best val_loss mode=min\n");
    let routes = format!(
        "receiver hook webhook url=http://127.0.0.1:{port}/alerts rate=off\n\
         route receiver=hook group_by=... group_wait=0s group_interval=10ms\n"
    );
    let img = image(&[("/ops/rules.conf", rules), ("/ops/routes.conf", routes)])?;
    let rig = boot_with(qemu, Some(&img.0))?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/python/scripted.py");
    let values: Vec<String> = (0..POINTS).map(|i| format!("{}", 1.0 - i as f64 * 0.01)).collect();
    let id = rig.start(&[
        "python3",
        &script.to_string_lossy(),
        "val_loss",
        &values.join(","),
        "--every",
        &EVERY_S.to_string(),
        "--stamp",
    ])?;
    rig.until(id, |r| r["status"] == "SUCCEEDED" || r["status"] == "FAILED")?;
    // The last POSTs come a moment after the job's end.
    let deadline = Instant::now() + Duration::from_secs(10);
    while posts.lock().unwrap().len() < POINTS - 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stamps = stamps(&rig, id)?;
    let mut latencies = Vec::new();
    for (at, _, body) in posts.lock().unwrap().iter() {
        let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))?;
        for a in v["alerts"].as_array().into_iter().flatten() {
            // "job 1 val_loss: new best 0.97 at step 3 (was 0.98)"
            let summary = a["annotations"]["summary"].as_str().unwrap_or("");
            let step = summary
                .split(" at step ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|s| s.parse::<usize>().ok());
            if let Some(step) = step
                && step < POINTS
                && stamps[step] > 0
            {
                latencies.push((at.saturating_sub(stamps[step])) as f64 / 1e6);
            }
        }
    }
    if latencies.len() < (POINTS - 1) / 2 {
        return Err(format!("only {} of {} alerts were timed", latencies.len(), POINTS - 1));
    }
    let max = latencies.iter().copied().fold(0.0, f64::max);
    let n = latencies.len() as f64;
    let mib_per_s = artifact_rate(&rig)?;
    Ok(vec![
        ("alert_latency_p50".into(), median(latencies), "ms".into()),
        ("alert_latency_max".into(), max, "ms".into()),
        ("alert_latency_timed".into(), n, "alerts".into()),
        ("artifact_transfer_mib_per_s".into(), mib_per_s, "MiB/s".into()),
    ])
}

fn artifact_rate(rig: &Rig) -> Result<f64, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/python/checkpoints.py");
    let size = ARTIFACT_MIB << 20;
    let id = rig.start(&[
        "python3",
        &script.to_string_lossy(),
        "0.5",
        "--size",
        &size.to_string(),
        "--name",
        "big",
        "--stamp",
    ])?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let listed_ns = loop {
        let (code, body) = rig.get(&format!("/artifacts?job_id={id}"))?;
        if code == 200 {
            let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            if v.as_array().is_some_and(|a| a.iter().any(|x| x["name"] == "big")) {
                break unix_ns();
            }
        }
        if Instant::now() > deadline {
            return Err("the checkpoint was never listed".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (_, body) = rig.get(&format!("/jobs/{id}/logs?stream=stderr"))?;
    let written_ns = String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("written 0 ")?.trim().parse::<u128>().ok())
        .ok_or("no stamp from the trainer")?;
    let secs = listed_ns.saturating_sub(written_ns) as f64 / 1e9;
    Ok(ARTIFACT_MIB as f64 / secs)
}
