//! Tier 3 for ring 3: the console is a user program; jobs run, fault,
//! are killed by group and by watchdog, and the console keeps serving.
//! (The kernel tests check the same mechanisms from inside the kernel.)

mod common;

use aether_abi::boot::{CONSOLE_READY_MARKER, PROMPT};
use aether_abi::syscall::{ProcInfo, Target, WatchdogEvent};
use aetheros::runner::{Firmware, Session};
use common::{boot_console, run};

/// `[pid N pgid G] started` -> (N, G).
fn started(lines: &[String]) -> (u32, u32) {
    let line = lines
        .iter()
        .find(|l| l.starts_with("[pid ") && l.ends_with("] started"))
        .unwrap_or_else(|| panic!("no start line in {lines:?}"));
    let nums: Vec<u32> = line
        .trim_start_matches("[pid ")
        .trim_end_matches("] started")
        .split(" pgid ")
        .map(|n| n.parse().unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    (nums[0], nums[1])
}

fn ps(s: &mut Session) -> Vec<ProcInfo> {
    run(s, "ps --json")
        .iter()
        // Kernel log lines (a watchdog, a fault) may arrive in between.
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn a_high_priority_job_runs_at_once_beside_a_spinning_one() {
    let mut s = boot_console(Firmware::Bios);
    let (spin, _) = started(&run(&mut s, "run spin &"));
    // Let it take the CPU (the console waits for input meanwhile).
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = run(&mut s, "run --prio 0 hello");
    assert!(out.iter().any(|l| l.starts_with("hello from ring 3")), "{out:?}");
    assert!(out.iter().any(|l| l.contains("exited with code 0")), "{out:?}");
    let table = ps(&mut s);
    let row = table
        .iter()
        .find(|p| p.pid == spin)
        .unwrap_or_else(|| panic!("{table:?}"));
    assert_eq!(row.name.as_str(), "spin");
    assert!(row.cpu_ns > 0, "{row:?}");
    assert!(
        table.iter().any(|p| p.name.as_str() == "console" && p.cpu_ns > 0),
        "{table:?}"
    );
    let text = run(&mut s, "ps");
    assert!(text[0].contains("PID") && text[0].contains("CPU"), "{text:?}");
    assert!(text.iter().any(|l| l.ends_with("spin")), "{text:?}");
}

#[test]
fn a_faulting_job_is_recorded_and_the_console_goes_on() {
    let mut s = boot_console(Firmware::Bios);
    let out = run(&mut s, "run fault");
    assert!(
        out.iter().any(|l| l.contains("page fault at 0xffff800000000000")),
        "{out:?}"
    );
    for variant in ["ud", "gp", "de", "null"] {
        let out = run(&mut s, &format!("run fault {variant}"));
        assert!(out.iter().any(|l| l.starts_with("[pid ")), "{variant}: {out:?}");
    }
    let out = run(&mut s, "echo still here");
    assert_eq!(out, ["still here"]);
    // Kernel tasks ([init]) have pgid 0; of the processes, only the system's
    // own (opsd and the console) are left.
    let procs: Vec<ProcInfo> = ps(&mut s)
        .into_iter()
        .filter(|p| p.pgid != 0 && p.name.as_str() != "opsd" && p.name.as_str() != "console")
        .collect();
    assert!(procs.is_empty(), "left over: {procs:?}");
}

#[test]
fn kill_g_ends_a_group_that_ignores_stop_requests() {
    let mut s = boot_console(Firmware::Bios);
    let (_, pgid) = started(&run(&mut s, "run forker &"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = ps(&mut s);
    assert!(before.iter().filter(|p| p.pgid == pgid).count() >= 5, "{before:?}");
    let out = run(&mut s, &format!("kill -g --grace 500 {pgid}"));
    assert!(
        out.iter()
            .any(|l| l.starts_with(&format!("group {pgid}: ")) && l.ends_with("forced=true")),
        "{out:?}"
    );
    let after = ps(&mut s);
    assert!(after.iter().all(|p| p.pgid != pgid), "members left: {after:?}");
    let out = run(&mut s, &format!("kill -g {pgid}"));
    assert!(out.len() == 1 && out[0].starts_with("error: "), "{out:?}");
}

#[test]
fn a_watchdog_kills_a_job_that_stops_heartbeating() {
    let mut s = boot_console(Firmware::Bios);
    let (_, pgid) = started(&run(&mut s, "run sleeper 1 50 &"));
    let out = run(&mut s, &format!("watchdog {pgid} --heartbeat 200 --action kill"));
    assert!(out.iter().any(|l| l.starts_with("watchdog armed")), "{out:?}");
    // Heartbeats for 1 s, then silence: killed 200 ms later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let events: Vec<WatchdogEvent> = loop {
        let events: Vec<WatchdogEvent> = run(&mut s, "watchdog log --json")
            .iter()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect();
        if !events.is_empty() || std::time::Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let e = events
        .iter()
        .find(|e| e.target == Target::Group(pgid))
        .unwrap_or_else(|| panic!("no event for group {pgid}: {events:?}"));
    let since = e.fired_ns - e.last_heartbeat_ns;
    assert!(
        (200_000_000..=210_000_000).contains(&since),
        "killed {since} ns after the last heartbeat"
    );
    assert!(ps(&mut s).iter().all(|p| p.pgid != pgid), "sleeper survived");
    let text = run(&mut s, "watchdog log");
    assert!(text.iter().any(|l| l.contains("heartbeat 200 ms")), "{text:?}");
    // The firing is on the event bus too, from the kernel.
    let bus: Vec<serde_json::Value> = run(&mut s, "events --json")
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(
        bus.iter().any(|e| e["kind"] == "watchdog"
            && e["source"] == "kernel"
            && e["labels"]["group"].as_str() == Some(pgid.to_string().as_str())),
        "{bus:?}"
    );
}

#[test]
fn a_killed_console_is_started_again() {
    let mut s = boot_console(Firmware::Bios);
    let console = ps(&mut s)
        .into_iter()
        .find(|p| p.name.as_str() == "console")
        .unwrap_or_else(|| panic!("no console in ps"));
    // Any process may stop any other (one user): the console dies mid-command.
    s.send(format!("run killer {}\r", console.pid))
        .unwrap_or_else(|e| panic!("{e}"));
    s.expect(CONSOLE_READY_MARKER, common::BOOT)
        .unwrap_or_else(|e| panic!("no new console: {e}"));
    s.expect(PROMPT, common::REPLY).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run(&mut s, "echo back"), ["back"]);
    let again = ps(&mut s)
        .into_iter()
        .find(|p| p.name.as_str() == "console")
        .unwrap_or_else(|| panic!("no console in ps"));
    assert_ne!(again.pid, console.pid);
}

#[test]
fn bad_job_commands_get_one_error_line() {
    let mut s = boot_console(Firmware::Bios);
    for line in [
        "run",
        "run nosuchprogram",
        "run --prio 32 hello",
        "run --group 99999 hello",
        "kill 99999",
        "kill -g 99999",
        "kill --grace x 3",
        "watchdog 99999 --heartbeat 200 --action kill",
        "watchdog 1 --heartbeat 200 --action explode",
    ] {
        let out = run(&mut s, line);
        assert!(out.len() == 1 && out[0].starts_with("error: "), "`{line}`: {out:?}");
    }
    assert_eq!(run(&mut s, "echo ok"), ["ok"]);
}

#[test]
fn the_console_serves_after_100k_random_syscalls() {
    let mut s = boot_console(Firmware::Bios);
    let text = s
        .command(
            "run fuzz 100000",
            aether_abi::boot::PROMPT,
            std::time::Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("fuzz: {e}"));
    assert!(text.contains("exited with code 0"), "{text}");
    assert_eq!(run(&mut s, "echo alive"), ["alive"]);
    let out = run(&mut s, "run hello");
    assert!(out.iter().any(|l| l.contains("exited with code 0")), "{out:?}");
}

/// A native job's output is its log (kept by opsd), not console output.
#[test]
fn a_native_jobs_output_is_its_log() {
    let mut s = boot_console(Firmware::Bios);
    let out = run(&mut s, "job start --native -- hello x y");
    assert!(out.iter().any(|l| l == "job 1 started"), "{out:?}");
    let mut console = out.clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status = run(&mut s, "job status 1");
        console.extend(status.iter().cloned());
        if status.iter().any(|l| l.contains("SUCCEEDED")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let logs = run(&mut s, "job logs 1");
    assert!(
        logs.iter().any(|l| l.starts_with("hello from ring 3: pid ")),
        "{logs:?}"
    );
    assert_eq!(logs[logs.len() - 2..], ["arg 1: x", "arg 2: y"], "{logs:?}");
    // Nothing of it went to the console meanwhile.
    assert!(!console.iter().any(|l| l.contains("hello from ring 3")), "{console:?}");
}

/// `job logs --follow` of a job that runs on ends at Ctrl-C (the job goes
/// on), with the prompt back.
#[test]
fn ctrl_c_ends_a_followed_log_not_the_job() {
    let mut s = boot_console(Firmware::Bios);
    let out = run(&mut s, "job start --native -- spin");
    assert!(out.iter().any(|l| l == "job 1 started"), "{out:?}");
    s.send("job logs 1 --follow\r").expect("send");
    // Following (the echo is back and nothing ends it by itself).
    s.expect("job logs 1 --follow\r\n", common::REPLY).expect("the echo");
    std::thread::sleep(std::time::Duration::from_millis(600));
    s.send("\x03").expect("send Ctrl-C");
    let text = s.expect(PROMPT, common::REPLY).expect("the prompt after Ctrl-C");
    assert!(text.contains("^C"), "{text:?}");
    let status = run(&mut s, "job status 1");
    assert!(status.iter().any(|l| l.contains("RUNNING")), "{status:?}");
}
