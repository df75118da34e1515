//! Telemetry through the host bridge (issue 6's acceptance; docs/telemetry.md):
//! a Python trainer on Linux prints metric lines, opsd's rules (on the
//! guest's disk) raise alerts, the routes send them to a webhook receiver
//! started by this test (POSTed by the bridge), and the bridge serves the
//! registry as Prometheus text, checked with `prometheus_client`'s parser.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aetheros::bridge;
use common::rig::Rig;
use serde_json::Value;

const RULES: &str = "\
vb:   new_best val_loss mode=min
vf:   plateau val_loss mode=min patience=3
hung: stall * after=2s
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

/// Received POSTs: (when, path, body).
type Posts = Arc<Mutex<Vec<(Instant, String, String)>>>;

/// An HTTP receiver on 127.0.0.1 answering 200 to every POST.
fn receiver() -> (u16, Posts) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let posts: Posts = Arc::default();
    let seen = posts.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut r = BufReader::new(conn);
            let mut request = String::new();
            if r.read_line(&mut request).is_err() {
                continue;
            }
            let mut len = 0;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            seen.lock()
                .unwrap()
                .push((Instant::now(), path, String::from_utf8_lossy(&body).into_owned()));
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (port, posts)
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
    let (hook_port, posts) = receiver();
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
    // then silence for longer than the stall rule's 2 s.
    let out = common::run(
        &mut rig.session,
        &format!(
            "job start -- python3 {} val_loss 0.9,0.7,0.5,0.4,0.4,0.6,0.45 --every 0.25 --silent 3.5",
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
    let firing: Vec<&str> = alerts
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
