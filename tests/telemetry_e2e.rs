//! Telemetry through the host bridge (issue 6's acceptance; docs/telemetry.md):
//! a Python trainer on Linux prints metric lines, opsd's rules (on the
//! guest's disk) raise alerts, the routes send them to a webhook receiver
//! started by this test (POSTed by the bridge), and the bridge serves the
//! registry as Prometheus text, checked with `prometheus_client`'s parser.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aetheros::bridge;
use common::rig::Rig;
use serde_json::Value;

const RULES: &str = "\
vb:   new_best val_loss mode=min
vf:   plateau val_loss mode=min patience=3
hung: stall * after=3s
nan:  anomaly loss nan=true labels: severity=critical
";

/// A disk image holding `files` (path, text), removed on drop.
struct Image(PathBuf);

impl Image {
    fn new(name: &str, files: &[(&str, String)]) -> Image {
        let path = std::env::temp_dir().join(format!("aether-tele2e-{name}-{}.img", std::process::id()));
        aether_disk::mkfs(&path, 32 << 20).expect("mkfs");
        aether_disk::mkdir(&path, "/ops").expect("mkdir");
        for (at, text) in files {
            let host = path.with_extension("put");
            std::fs::write(&host, text).expect("a host file");
            aether_disk::put(&path, &host, at).unwrap_or_else(|e| panic!("put {at}: {e}"));
            let _ = std::fs::remove_file(&host);
        }
        Image(path)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Waits until job `id` has ended (the console's `job wait`).
fn wait(rig: &mut Rig, id: u64) -> Value {
    let out = rig
        .session
        .command(
            &format!("job wait {id} --json"),
            aether_abi::boot::PROMPT,
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    out.split("\r\n")
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("{out:?}"))
}

#[test]
fn trainer_alerts_reach_a_webhook_and_metrics_parse_as_prometheus_text() {
    let (hook_port, posts) = bridge::webhook_receiver().expect("a receiver");
    let routes = format!(
        "receiver hook webhook url=http://127.0.0.1:{hook_port}/alerts\n\
         route receiver=hook group_by=... group_wait=0s group_interval=100ms\n"
    );
    let image = Image::new(
        "hook",
        &[("/ops/rules.conf", RULES.into()), ("/ops/routes.conf", routes)],
    );
    let mut rig = Rig::start_with("tele2e", Duration::from_secs(150), Some(&image.0));
    let token = rig.token();
    let script = repo().join("tools/python/scripted.py");
    // Three improvements on 0.9, three points without one (a plateau),
    // then silence for longer than the stall rule's 3 s.
    let out = common::run(
        &mut rig.session,
        &format!(
            "job start -- python3 {} val_loss 0.9,0.7,0.5,0.4,0.4,0.6,0.45 --every 0.25 --silent 4.5",
            script.display()
        ),
    );
    let id: u64 = out
        .iter()
        .find_map(|l| l.strip_prefix("job ")?.strip_suffix(" started")?.parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    let ended = wait(&mut rig, id);
    assert_eq!(ended["status"], "SUCCEEDED", "{ended}");

    let alerts: Vec<(String, String)> = json_lines(&common::run(&mut rig.session, "events --json"))
        .into_iter()
        .filter(|e| e["kind"] == "alert" && e["job_id"] == id)
        .map(|e| {
            (
                e["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                e["labels"]["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    // (A Python that takes over 3 s to start on a loaded machine is a
    // silent job too: a stall and its resolve before the first point are
    // right, and left out here.)
    let first = alerts.iter().position(|(a, _)| a == "vb").unwrap_or(0);
    let firing: Vec<&str> = alerts[first..]
        .iter()
        .filter(|(_, s)| s == "firing")
        .map(|(a, _)| a.as_str())
        .collect();
    assert_eq!(firing, ["vb", "vb", "vb", "vf", "hung"], "{alerts:?}");

    // The receiver got them as Alertmanager webhook bodies (each new best,
    // the plateau, the stall; the resolves follow).
    let deadline = Instant::now() + Duration::from_secs(20);
    let bodies: Vec<Value> = loop {
        let got: Vec<Value> = posts
            .lock()
            .unwrap()
            .iter()
            .map(|(_, path, body)| {
                assert_eq!(path, "/alerts");
                serde_json::from_str(body).unwrap_or_else(|e| panic!("{body}: {e}"))
            })
            .collect();
        let names = |state: &str| {
            got.iter()
                .filter(|b| b["status"] == state)
                .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
                .filter(|a| a["status"] == state)
                .count()
        };
        if names("firing") >= 5 || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let fired: Vec<String> = bodies
        .iter()
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["status"] == "firing")
        .map(|a| a["labels"]["alertname"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(fired.iter().filter(|n| *n == "vb").count(), 3, "{bodies:?}");
    assert!(
        fired.contains(&"vf".to_string()) && fired.contains(&"hung".to_string()),
        "{bodies:?}"
    );
    for b in &bodies {
        assert_eq!(b["version"], "4", "{b}");
        assert!(b["groupKey"].is_string() && b["receiver"] == "hook", "{b}");
        let a = &b["alerts"][0];
        assert_eq!(a["labels"]["job_id"], id.to_string(), "{b}");
        assert!(a["fingerprint"].as_str().is_some_and(|f| f.len() == 16), "{b}");
    }

    // /metrics and /jobs/{id}/metrics: Prometheus text that parses.
    let (code, text) = bridge::http(rig.port, "GET", "/metrics", &token, "").expect("GET /metrics");
    assert_eq!(code, 200);
    let text = String::from_utf8(text).expect("UTF-8");
    assert!(text.contains(&format!("val_loss{{job_id=\"{id}\"}} 0.45")), "{text}");
    let families = parse_prometheus(&text);
    assert!(families.iter().any(|f| f == "val_loss gauge"), "{families:?}");
    let (code, one) = bridge::http(rig.port, "GET", &format!("/jobs/{id}/metrics"), &token, "").expect("GET");
    assert_eq!(code, 200);
    assert!(!parse_prometheus(&String::from_utf8(one).unwrap()).is_empty());
    let (code, _) = bridge::http(rig.port, "GET", "/jobs/999/metrics", &token, "").expect("GET");
    assert_eq!(code, 404);
    let (code, _) = bridge::http(rig.port, "GET", "/jobs/x/metrics", &token, "").expect("GET");
    assert_eq!(code, 400);

    // The JSON lines on the guest's disk.
    let lines = common::run(&mut rig.session, &format!("cat /ops/metrics/{id}/val_loss.jsonl"));
    let values: Vec<f64> = json_lines(&lines).iter().filter_map(|l| l["value"].as_f64()).collect();
    assert_eq!(values, [0.9, 0.7, 0.5, 0.4, 0.4, 0.6, 0.45]);
    let routes = common::run(&mut rig.session, "routes");
    assert!(routes.iter().any(|l| l.contains("webhooks delivered")), "{routes:?}");
}

/// The families (`name type`) Python's `prometheus_client` parses out of
/// `text` (a parse error fails the test).
fn parse_prometheus(text: &str) -> Vec<String> {
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\n\
             for f in p(sys.stdin.read()):\n    print(f.name, f.type)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `checkpoints.py`'s bytes of checkpoint `index` (the same function).
fn checkpoint(index: usize, size: usize) -> Vec<u8> {
    let block: Vec<u8> = (0..4096).map(|k| ((k * (index + 1) + index) % 256) as u8).collect();
    block.iter().copied().cycle().take(size).collect()
}

fn artifacts(rig: &mut Rig) -> Vec<Value> {
    json_lines(&common::run(&mut rig.session, "artifacts ls --json"))
}

/// (version, latest, best) of each stored version.
fn versions(list: &[Value]) -> Vec<(u64, bool, bool)> {
    list.iter()
        .map(|a| {
            (
                a["version"].as_u64().unwrap_or(0),
                a["latest"] == true,
                a["best"] == true,
            )
        })
        .collect()
}

#[test]
fn checkpoints_are_kept_by_retention_served_checked_and_survive_a_reboot() {
    const SIZE: usize = 300_000;
    let policy = "monitor model val_loss min\nretain model keep_last_n=2 top_k=1:val_loss:min\n";
    let image = Image::new("artifacts", &[("/ops/artifacts.conf", policy.into())]);
    let script = repo().join("tools/python/checkpoints.py");
    let mut rig = Rig::start_with("teleart", Duration::from_secs(150), Some(&image.0));
    let token = rig.token();
    let out = common::run(
        &mut rig.session,
        &format!(
            "job start -- python3 {} 0.5,0.2,0.45,0.3,0.35 --size {SIZE}",
            script.display()
        ),
    );
    let id: u64 = out
        .iter()
        .find_map(|l| l.strip_prefix("job ")?.strip_suffix(" started")?.parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(wait(&mut rig, id)["status"], "SUCCEEDED");
    // Five checkpoints offered; the last two and the best are kept.
    let want = [(2, false, true), (4, false, false), (5, true, false)];
    // Every transfer done: no `.tmp` left, three objects.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (list, objects) = loop {
        let list = artifacts(&mut rig);
        let objects: Vec<String> = common::run(&mut rig.session, "ls /artifacts/objects")
            .into_iter()
            .filter(|l| l.starts_with("file"))
            .collect();
        let settled = objects.len() == 3 && objects.iter().all(|o| !o.ends_with(".tmp"));
        if (versions(&list) == want && settled) || Instant::now() > deadline {
            break (list, objects);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(versions(&list), want, "{list:?}");
    assert_eq!(objects.len(), 3, "{objects:?}");
    assert_eq!(list[0]["step"], 200);
    let got = common::run(&mut rig.session, &format!("artifacts get {id}/model/ckpt@best"));
    assert!(got[0].contains(" v2: ") && got[0].contains("(checked)"), "{got:?}");

    // Over HTTP: the list, and the best version's bytes with their digest.
    let (code, body) = bridge::http(rig.port, "GET", "/artifacts", &token, "").expect("GET /artifacts");
    assert_eq!(code, 200);
    let listed: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
    let path = format!("/artifacts/{id}/model/ckpt/best");
    let (code, bytes) = bridge::http(rig.port, "GET", &path, &token, "").expect("GET");
    assert_eq!(code, 200);
    assert!(bytes == checkpoint(1, SIZE), "the best checkpoint's bytes");
    for (bad, code) in [
        (format!("/artifacts/{id}/model/ckpt/v1"), 404),
        (format!("/artifacts/{id}/model/nope/latest"), 404),
        (format!("/artifacts/{id}/weights/ckpt/latest"), 400),
    ] {
        let (got, _) = bridge::http(rig.port, "GET", &bad, &token, "").expect("GET");
        assert_eq!(got, code, "{bad}");
    }
    // A power cut, and one stored object damaged on the host: the boot
    // brings the same versions back; the damaged one is reported, never
    // served; the others still are.
    let v4 = list[1]["digest"].as_str().unwrap().to_string();
    drop(rig);
    let object = format!("/artifacts/objects/{v4}");
    let mut bytes = aether_disk::cat(&image.0, &object).expect("the object");
    bytes[1234] ^= 0x40;
    let host = image.0.with_extension("damaged");
    std::fs::write(&host, &bytes).unwrap();
    aether_disk::put(&image.0, &host, &object).expect("put");
    let _ = std::fs::remove_file(&host);
    let mut rig = Rig::start_with("teleart2", Duration::from_secs(120), Some(&image.0));
    let token = rig.token();
    assert_eq!(versions(&artifacts(&mut rig)), want);
    let got = common::run(&mut rig.session, &format!("artifacts get {id}/model/ckpt@v4"));
    assert!(
        got.len() == 1 && got[0].starts_with("error: ") && got[0].contains("sha256"),
        "{got:?}"
    );
    let (code, _) = bridge::http(rig.port, "GET", &format!("/artifacts/{id}/model/ckpt/v4"), &token, "").expect("GET");
    assert!(code >= 400, "a damaged object was served: {code}");
    let (code, bytes) = bridge::http(
        rig.port,
        "GET",
        &format!("/artifacts/{id}/model/ckpt/latest"),
        &token,
        "",
    )
    .expect("GET");
    assert_eq!(code, 200);
    assert!(bytes == checkpoint(4, SIZE), "the latest checkpoint's bytes");
}
