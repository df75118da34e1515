//! Telemetry end to end in QEMU (issue 6; docs/telemetry.md): native jobs
//! emit metric points through the kernel's `METRIC` call, opsd's rules
//! (read from `/ops/rules.conf` on the disk) turn them into alerts, and
//! the console reads them back from the event bus (`events --json`),
//! the registry (`metrics --json`) and the rules (`alerts`). The bridge's
//! side (trainer lines, `/metrics`) is in `tests/jobs_e2e.rs`.

mod common;

use std::path::PathBuf;

use aether_abi::boot::PROMPT;
use aetheros::runner::{Firmware, Session};
use common::run;
use serde_json::Value;

const RULES: &str = "\
# The acceptance's rules (docs/telemetry.md, \"Alert rules\").
vb:   new_best val_loss mode=min
vf:   plateau val_loss mode=min patience=3
nan:  anomaly loss nan=true labels: severity=critical
slow: sustained_dip throughput factor=0.5 baseline=5 for=3
hung: stall * after=2s
";

struct Image(PathBuf);

impl Image {
    fn with_rules(name: &str, rules: &str) -> Image {
        let path = std::env::temp_dir().join(format!("aether-telemetry-{name}-{}.img", std::process::id()));
        aether_disk::mkfs(&path, 32 << 20).expect("mkfs");
        let host = path.with_extension("rules");
        std::fs::write(&host, rules).expect("a host file");
        aether_disk::mkdir(&path, "/ops").expect("mkdir /ops");
        aether_disk::put(&path, &host, "/ops/rules.conf").expect("put the rules");
        let _ = std::fs::remove_file(&host);
        Image(path)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn boot(image: &Image) -> Session {
    let mut s = common::boot_with_devices(
        Firmware::Bios,
        &common::console_cmdline(),
        aetheros::runner::blk_device_args(&image.0, false),
    );
    s.expect(PROMPT, common::BOOT).unwrap_or_else(|e| panic!("{e}"));
    s
}

fn json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// Starts a native job and waits for its end; its id.
fn job(s: &mut Session, command: &str) -> u64 {
    let out = run(s, &format!("job start --native -- {command}"));
    let id = out
        .iter()
        .find_map(|l| l.strip_prefix("job ")?.strip_suffix(" started")?.parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    let done = run(s, &format!("job wait {id}"));
    assert!(done.iter().any(|l| l.contains("SUCCEEDED")), "{done:?}");
    id
}

/// The job's alerts on the bus, as (rule, state), in order.
fn alerts(s: &mut Session, job_id: u64) -> Vec<(String, String)> {
    json_lines(&run(s, "events --json"))
        .into_iter()
        .filter(|e| e["kind"] == "alert" && e["job_id"] == job_id)
        .map(|e| {
            (
                e["labels"]["alertname"].as_str().unwrap().to_string(),
                e["labels"]["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn training_alerts_from_native_jobs() {
    let image = Image::with_rules("alerts", RULES);
    let mut s = boot(&image);
    let out = run(&mut s, "alerts");
    assert_eq!(out.len(), 5, "{out:?}");
    assert!(
        out[0].ends_with("vb: new_best val_loss mode=min min_delta=0"),
        "{out:?}"
    );

    // Three improvements on the first value, then three points without:
    // three new_best, then one plateau (resolved when the job ends).
    let id = job(&mut s, "trainsim val_loss 0.9,0.7,0.5,0.4,0.4,0.6,0.45 20");
    assert_eq!(
        alerts(&mut s, id),
        pairs(&[
            ("vb", "firing"),
            ("vb", "firing"),
            ("vb", "firing"),
            ("vf", "firing"),
            ("vf", "resolved")
        ])
    );
    let series = json_lines(&run(&mut s, &format!("metrics {id} val_loss --json")));
    assert_eq!(series.len(), 1, "{series:?}");
    let v = &series[0];
    assert_eq!(
        (v["count"].as_u64(), v["best"].as_f64(), v["best_step"].as_u64()),
        (Some(7), Some(0.4), Some(3))
    );
    assert_eq!(v["objective"], "min");
    let history = json_lines(&run(&mut s, &format!("metrics {id} val_loss --history --json")));
    let values: Vec<f64> = history.iter().map(|p| p["value"].as_f64().unwrap()).collect();
    assert_eq!(values, [0.9, 0.7, 0.5, 0.4, 0.4, 0.6, 0.45]);
    let part = json_lines(&run(
        &mut s,
        &format!("metrics {id} val_loss --history --steps 2..4 --json"),
    ));
    let values: Vec<f64> = part.iter().map(|p| p["value"].as_f64().unwrap()).collect();
    assert_eq!(values, [0.5, 0.4, 0.4]);

    // A NaN loss for five points: one anomaly, resolved by a number.
    let id = job(&mut s, "trainsim loss 0.5,nan,nan,nan,nan,nan,0.4 10");
    assert_eq!(alerts(&mut s, id), pairs(&[("nan", "firing"), ("nan", "resolved")]));
    let nan = json_lines(&run(&mut s, "events --json"))
        .into_iter()
        .find(|e| e["labels"]["alertname"] == "nan")
        .unwrap();
    assert_eq!(nan["severity"], "critical");

    // Throughput halved for three points, then back.
    let id = job(
        &mut s,
        "trainsim throughput 1000,1000,1000,1000,1000,480,480,480,990 10",
    );
    assert_eq!(alerts(&mut s, id), pairs(&[("slow", "firing"), ("slow", "resolved")]));

    // A job that goes silent for longer than `after`: stall, resolved by
    // its end (a hung run, not a crash).
    let id = job(&mut s, "trainsim gpu_util 0.5 10 3500");
    assert_eq!(alerts(&mut s, id), pairs(&[("hung", "firing"), ("hung", "resolved")]));

    // Job state changes are on the bus too.
    let moves: Vec<Value> = json_lines(&run(&mut s, "events --json"))
        .into_iter()
        .filter(|e| e["kind"] == "job" && e["job_id"] == id)
        .collect();
    assert_eq!(moves.len(), 2, "{moves:?}");
    assert_eq!(moves[1]["labels"]["to"], "SUCCEEDED");
    // `--after` starts past what was seen.
    let last = json_lines(&run(&mut s, "events --json")).last().unwrap()["id"]
        .as_u64()
        .unwrap();
    assert!(run(&mut s, &format!("events --after {last}")).is_empty());
}

#[test]
fn a_bad_rule_file_is_refused_with_its_line_and_the_old_rules_stay() {
    let image = Image::with_rules("reload", "vb: new_best val_loss mode=min\n");
    let mut s = boot(&image);
    assert_eq!(run(&mut s, "alerts").len(), 1);
    run(&mut s, "write /ops/rules.conf vb: new_best val_loss mode=min");
    run(&mut s, "write --append /ops/rules.conf vf: plateau val_loss patince=3");
    let out = run(&mut s, "alerts reload");
    assert!(
        out.len() == 1
            && out[0].starts_with("error: alerts reload: /ops/rules.conf line 2: ")
            && out[0].contains("patince")
            && out[0].ends_with("nothing changed"),
        "{out:?}"
    );
    let out = run(&mut s, "alerts --json");
    assert_eq!(json_lines(&out).len(), 1, "{out:?}");
    // A good file replaces them without a reboot.
    run(&mut s, "write /ops/rules.conf vf: plateau val_loss mode=min patience=2");
    assert_eq!(run(&mut s, "alerts reload"), ["1 rules loaded from /ops/rules.conf"]);
    let out = run(&mut s, "alerts");
    assert!(out.len() == 1 && out[0].contains("vf: plateau"), "{out:?}");
    // Wrong input to the commands: one error line each.
    for bad in [
        "metrics --history",
        "events --after x",
        "alerts reload now",
        "metrics 1 a b",
        "routes x",
    ] {
        let out = run(&mut s, bad);
        assert!(out.len() == 1 && out[0].starts_with("error: "), "{bad}: {out:?}");
    }
}
