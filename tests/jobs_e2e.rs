//! Jobs end to end: QEMU with the ivshmem link, the real host bridge on the
//! other side of it, opsd in the guest, and a Python trainer on Linux,
//! started and watched from the AetherOS console.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use aether_abi::boot::PROMPT;
use aetheros::bridge;
use aetheros::runner::Session;
use common::rig::Rig;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_python_trainer_runs_on_the_host_from_the_console() {
    let mut rig = Rig::start("e2e", Duration::from_secs(120));
    let s = &mut rig.session;
    let trainer = repo().join("tools/python/trainer.py");
    let out = common::run(
        s,
        &format!("job start -- python3 {} --steps 5 --sleep 0.2", trainer.display()),
    );
    assert!(out.iter().any(|l| l.contains("job 1 started")), "{out:?}");
    // Followed from byte 6 (after "ready\n") while it runs: the console
    // prints on until the job ends.
    wait_for_output(s, 1, "ready");
    let followed = s
        .command("job logs 1 --offset 6 --follow", PROMPT, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let followed: Vec<&str> = followed
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty() && *l != PROMPT)
        .collect();
    assert!(
        followed.first().is_some_and(|l| l.starts_with("step 1/5")),
        "{followed:?}"
    );
    assert!(
        followed.contains(&"checkpoint written at step 5 (finished)"),
        "{followed:?}"
    );
    // Running on the host once the bridge is connected: wait for the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let out = common::run(s, "job status 1 --json");
        let json: Option<serde_json::Value> = out
            .iter()
            .find(|l| l.starts_with('{'))
            .and_then(|l| serde_json::from_str(l).ok());
        if let Some(j) = json
            && (j["status"] == "SUCCEEDED" || j["status"] == "FAILED")
        {
            break j;
        }
        assert!(Instant::now() < deadline, "the job did not end: {out:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["status"], "SUCCEEDED", "{status}");
    assert_eq!(status["exit_code"], 0, "{status}");
    assert!(status["runtime_ms"].as_u64().is_some_and(|ms| ms > 0), "{status}");
    assert_eq!(status["latest_metrics"][0]["name"], "loss", "{status}");
    let logs = common::run(s, "job logs 1");
    assert!(logs.iter().any(|l| l.contains("step 5")), "{logs:?}");
    // The followed lines are the log after its first line, exactly.
    assert_eq!(logs[0], "ready");
    assert_eq!(logs[1..], followed[..], "followed from an offset vs read after the end");
}

/// The console's `job status ID --json`, parsed.
fn status(s: &mut Session, id: u64) -> Option<serde_json::Value> {
    common::run(s, &format!("job status {id} --json"))
        .iter()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
}

/// Polls job `id` until its status is `want` (or fails after a deadline).
fn wait_for(s: &mut Session, id: u64, want: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(j) = status(s, id)
            && j["status"] == want
        {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never became {want}: {:?}",
            status(s, id)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts a job with `line` (everything after `job start`); its id.
fn start(s: &mut Session, line: &str) -> u64 {
    let out = common::run(s, &format!("job start {line}"));
    out.iter()
        .find_map(|l| l.strip_prefix("job ")?.strip_suffix(" started")?.parse().ok())
        .unwrap_or_else(|| panic!("`job start {line}`: {out:?}"))
}

/// Host processes whose environment says they belong to job `id` of the
/// bridge state directory `state`.
fn processes_of(id: u64, state: &std::path::Path) -> Vec<u32> {
    let tag = format!("AETHER_JOB_ID={id}\0");
    let dir = state.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let env = String::from_utf8_lossy(&env);
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Zombies (reaped late by this machine's init) are dead already.
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'));
        if env.contains(&tag) && env.contains(&dir) && !zombie {
            found.push(pid);
        }
    }
    found
}

#[test]
fn exit_codes_retries_timeouts_and_stops_from_the_console() {
    let mut rig = Rig::start("e2e2", Duration::from_secs(170));
    let s = &mut rig.session;
    let trainer = repo().join("tools/python/trainer.py");
    let t = trainer.display();

    // A command that does not exist on the host: FAILED at once, saying why.
    let missing = start(s, "-- /nonexistent/trainer --steps 1");
    let j = wait_for(s, missing, "FAILED");
    assert_eq!(j["termination_reason"], "spawn_failed", "{j}");
    assert!(j["message"].as_str().is_some_and(|m| m.contains("No such file")), "{j}");

    let failed = start(s, &format!("-- python3 {t} --steps 1 --exit 3"));
    let j = wait_for(s, failed, "FAILED");
    assert_eq!(j["exit_code"], 3, "{j}");

    let retried = start(s, &format!("--retries 2 -- python3 {t} --steps 1 --exit 3"));
    let j = wait_for(s, retried, "FAILED");
    assert_eq!(
        (j["attempt"].as_u64(), j["exit_code"].as_i64()),
        (Some(3), Some(3)),
        "{j}"
    );

    let timed = start(s, &format!("--timeout 500 -- python3 {t} --steps 100000 --sleep 0.05"));
    let j = wait_for(s, timed, "TIMED_OUT");
    assert_eq!(j["termination_reason"], "timed_out", "{j}");

    // A trainer that traps SIGTERM: stopped within the grace, not forced,
    // and it saved its checkpoint. Stopped only once it printed "ready":
    // before that its handler may not be installed yet (python3 can be a
    // pyenv shim that takes a while to exec the interpreter).
    let graceful = start(s, &format!("-- python3 {t} --steps 100000 --sleep 0.05"));
    wait_for_output(s, graceful, "ready");
    let out = common::run(s, &format!("job stop {graceful}"));
    assert!(out.iter().all(|l| !l.starts_with("error")), "{out:?}");
    let j = wait_for(s, graceful, "STOPPED");
    assert_eq!(j["forced_kill"], false, "{j}");
    assert_eq!(j["exit_code"], 0, "{j}");
    // opsd's clock (the stop) agrees with the host's (the start, the end).
    let ms = |k: &str| j[k].as_u64().unwrap_or_else(|| panic!("{k} in {j}"));
    assert!(
        ms("started_ms") <= ms("stop_requested_at_ms") && ms("stop_requested_at_ms") <= ms("ended_ms"),
        "{j}"
    );
    wait_for_output(s, graceful, "(sigterm)");

    // One that ignores SIGTERM and leaves grandchildren, one of them in a
    // session of its own: forced, and nothing of it is left on the host.
    let stubborn = start(
        s,
        &format!(
            "--grace 300 -- python3 {t} --steps 100000 --sleep 0.05 --ignore-term --fork-grandchildren --setsid-grandchild"
        ),
    );
    // "ready": its helpers run (and ignore SIGTERM).
    wait_for_output(s, stubborn, "ready");
    let before = processes_of(stubborn, &rig.state);
    // The shim, the trainer, two helpers and the escaped daemon.
    assert!(before.len() >= 5, "{before:?}");
    common::run(s, &format!("job stop {stubborn}"));
    let j = wait_for(s, stubborn, "STOPPED");
    assert_eq!(j["forced_kill"], true, "{j}\nprocesses before the stop: {before:?}");
    assert!(
        processes_of(stubborn, &rig.state).is_empty(),
        "left on the host: {:?}",
        processes_of(stubborn, &rig.state)
    );
}

/// Polls `job logs ID` until a line contains `text`.
fn wait_for_output(s: &mut Session, id: u64, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = common::run(s, &format!("job logs {id}"));
        if out.iter().any(|l| l.contains(text)) {
            return;
        }
        assert!(Instant::now() < deadline, "job {id} never printed {text:?}: {out:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One HTTP request to the bridge: (status, body as text).
fn http(port: u16, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let (status, body) =
        bridge::http(port, method, path, token, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `POST /jobs` with `spec`, retried while opsd is not connected (503);
/// the job's id.
fn post_job(port: u16, token: &str, spec: &str, deadline: Instant) -> u64 {
    loop {
        let (code, body) = http(port, "POST", "/jobs", token, spec);
        if code == 201 {
            let v: serde_json::Value = serde_json::from_str(&body).expect("json");
            return v["job_id"].as_u64().expect("job_id");
        }
        assert!(code == 503 && Instant::now() < deadline, "POST /jobs: {code} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The bridge's token, once its HTTP API listens.
fn token(rig: &Rig) -> String {
    bridge::wait_for_api(&rig.state, rig.port, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_trainer_started_over_http_runs_and_reports() {
    let mut rig = Rig::start("e2e3", Duration::from_secs(150));
    let (port, token) = (rig.port, token(&rig));
    assert_eq!(http(port, "GET", "/jobs", "wrong", "").0, 401);
    let trainer = repo().join("tools/python/trainer.py");
    let spec = format!(
        r#"{{"name": "http-trainer", "entrypoint": ["python3", "{}", "--steps", "3", "--sleep", "0.3"]}}"#,
        trainer.display()
    );
    // 503 until opsd's link is up.
    let deadline = Instant::now() + Duration::from_secs(30);
    let job_id = post_job(port, &token, &spec, deadline);
    // Followed from the start while it runs: the stream ends with the job
    // and holds its whole log.
    let (code, followed) = http(port, "GET", &format!("/jobs/{job_id}/logs?follow=true"), &token, "");
    assert_eq!(code, 200, "{followed}");
    assert!(followed.contains("step 3/3"), "{followed}");
    // It has ended (the followed log ended with it): waiting returns at once.
    let (code, body) = http(
        port,
        "GET",
        &format!("/jobs/{job_id}/wait?timeout_ms=60000"),
        &token,
        "",
    );
    assert_eq!(code, 200, "{body}");
    let record: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(record["status"], "SUCCEEDED", "{record}");
    assert_eq!(record["exit_code"], 0, "{record}");
    assert_eq!(record["name"], "http-trainer", "{record}");
    assert_eq!(record["latest_metrics"][0]["name"], "loss", "{record}");
    assert!(record["runtime_ms"].as_u64().is_some_and(|ms| ms > 0), "{record}");
    let (code, logs) = http(port, "GET", &format!("/jobs/{job_id}/logs?offset=0"), &token, "");
    assert_eq!(code, 200);
    assert_eq!(logs, followed);
    // From an offset: the same bytes from there on.
    let from = logs.find("step 2/3").expect("step 2 in the log");
    let (code, tail) = http(port, "GET", &format!("/jobs/{job_id}/logs?offset={from}"), &token, "");
    assert_eq!((code, tail.as_str()), (200, &logs[from..]));
    let (code, err) = http(port, "GET", &format!("/jobs/{job_id}/logs?stream=stderr"), &token, "");
    assert_eq!(code, 200);
    assert!(err.contains("trainer: finished"), "{err}");
    // The same job, seen from the console.
    let j = status(&mut rig.session, job_id).expect("job status --json");
    assert_eq!(j["status"], "SUCCEEDED", "{j}");
    assert_eq!(http(port, "GET", "/jobs/999", &token, "").0, 404);
    assert_eq!(http(port, "POST", &format!("/jobs/{job_id}/stop"), &token, "").0, 409);
    // Start and wait, as a script would: the wait returns with the end.
    let spec = format!(
        r#"{{"entrypoint": ["python3", "{}", "--steps", "2", "--sleep", "0.2"]}}"#,
        trainer.display()
    );
    let second = post_job(port, &token, &spec, Instant::now() + Duration::from_secs(30));
    let (code, body) = http(
        port,
        "GET",
        &format!("/jobs/{second}/wait?timeout_ms=60000"),
        &token,
        "",
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (v["status"].as_str(), v["name"].as_str()),
        (Some("SUCCEEDED"), Some("python3")),
        "{v}"
    );
}

#[test]
fn a_bridge_restart_mid_job_loses_and_duplicates_nothing() {
    let mut rig = Rig::start("e2e4", Duration::from_secs(150));
    let trainer = repo().join("tools/python/trainer.py");
    let t = trainer.display();
    const STEPS: usize = 80;
    let id = start(
        &mut rig.session,
        &format!("-- python3 {t} --steps {STEPS} --sleep 0.03"),
    );
    wait_for_output(&mut rig.session, id, "step 5/");
    // Killed mid-job; the trainer goes on printing while no bridge runs.
    rig.restart_bridge(Duration::from_millis(500));
    let j = wait_for(&mut rig.session, id, "SUCCEEDED");
    assert_eq!(
        (j["exit_code"].as_i64(), j["attempt"].as_u64()),
        (Some(0), Some(1)),
        "{j}"
    );
    let out = common::run(&mut rig.session, &format!("job logs {id}"));
    let steps: Vec<&String> = out.iter().filter(|l| l.starts_with("step ")).collect();
    let want: Vec<String> = (1..=STEPS)
        .map(|i| format!("step {i}/{STEPS} loss={:.4}", 1.0 / i as f64))
        .collect();
    assert_eq!(
        steps,
        want.iter().collect::<Vec<_>>(),
        "every step once, in order: {out:?}"
    );

    // A job whose shim dies while no bridge runs: LOST, not forgotten.
    let lost = start(&mut rig.session, &format!("-- python3 {t} --steps 100000 --sleep 0.05"));
    wait_for_output(&mut rig.session, lost, "ready");
    let _ = rig.bridge.kill();
    let _ = rig.bridge.wait();
    for pid in processes_of(lost, &rig.state) {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
    rig.restart_bridge(Duration::ZERO);
    let j = wait_for(&mut rig.session, lost, "LOST");
    assert_eq!(j["termination_reason"], "lost", "{j}");

    // The bridge shut down for good (SIGTERM, as `cargo run` does when
    // QEMU exits): its jobs are stopped, nothing is left on the host, and
    // opsd hears of it while it is there.
    let last = start(&mut rig.session, &format!("-- python3 {t} --steps 100000 --sleep 0.05"));
    wait_for_output(&mut rig.session, last, "ready");
    assert!(
        bridge::shut_down(&mut rig.bridge, Duration::from_secs(20)),
        "the bridge did not shut down cleanly"
    );
    assert!(
        processes_of(last, &rig.state).is_empty(),
        "{:?}",
        processes_of(last, &rig.state)
    );
    let j = wait_for(&mut rig.session, last, "STOPPED");
    assert_eq!(j["forced_kill"], false, "{j}");
}
