//! Tier 3: boot the real image and use the console over the serial line the
//! way a person would, including mistakes.

mod common;

use std::time::Duration;

use aether_abi::boot::PROMPT;
use aether_abi::console::{CommandHelp, MemReport, UptimeReport};
use aetheros::runner::Firmware;
use common::{REPLY, boot_console, boot_with, run};

#[test]
fn help_lists_every_command_in_text_and_json() {
    let mut s = boot_console(Firmware::Bios);
    let text = run(&mut s, "help");
    for name in ["help", "uptime", "mem", "echo", "shutdown"] {
        assert!(
            text.iter().any(|l| l.trim_start().starts_with(name)),
            "{name} missing from {text:?}"
        );
    }
    let json = run(&mut s, "help --json");
    let docs: Vec<CommandHelp> = json
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(docs.len(), text.len());
    assert!(docs.iter().any(|d| d.name == "uptime" && d.usage == "uptime [--json]"));
}

#[test]
fn uptime_increases_between_two_calls() {
    let mut s = boot_console(Firmware::Bios);
    let parse = |lines: Vec<String>| -> UptimeReport {
        assert_eq!(lines.len(), 1, "{lines:?}");
        serde_json::from_str(&lines[0]).unwrap_or_else(|e| panic!("{lines:?}: {e}"))
    };
    let a = parse(run(&mut s, "uptime --json"));
    std::thread::sleep(Duration::from_millis(200));
    let b = parse(run(&mut s, "uptime --json"));
    assert!(b.uptime_ns > a.uptime_ns, "{a:?} then {b:?}");
    assert!(
        b.uptime_ns - a.uptime_ns >= 100_000_000,
        "200 ms of host time vs {a:?} {b:?}"
    );
    assert_eq!(a.boot_unix_s, b.boot_unix_s);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        a.boot_unix_s.abs_diff(now) < 24 * 3600,
        "boot time {} vs now {now}",
        a.boot_unix_s
    );
    let text = run(&mut s, "uptime");
    assert!(
        text[0].starts_with("up ") && text[0].contains(" ns), booted 20"),
        "{text:?}"
    );
}

#[test]
fn mem_reports_consistent_numbers() {
    let mut s = boot_console(Firmware::Bios);
    let lines = run(&mut s, "mem --json");
    let m: MemReport = serde_json::from_str(&lines[0]).unwrap_or_else(|e| panic!("{lines:?}: {e}"));
    assert_eq!(m.frame_size, 4096);
    assert_eq!(m.frames_used + m.frames_free, m.frames_total);
    // -m 512M: most of it is usable RAM.
    assert!(
        m.frames_total * 4096 > 400 << 20 && m.frames_total * 4096 < 512 << 20,
        "{m:?}"
    );
    assert!(
        m.heap_used + m.heap_free <= m.heap_size && m.heap_size <= m.heap_limit,
        "{m:?}"
    );
    let text = run(&mut s, "mem");
    assert!(text.iter().any(|l| l.starts_with("frames:")) && text.iter().any(|l| l.starts_with("heap:")));
}

/// The idle loop's pass over free memory after boot ends (512 MiB: about
/// 1.5 s here), and `mem` says whether it is still going on.
#[test]
fn memory_warming_ends_and_mem_reports_it() {
    let mut s = boot_console(Firmware::Bios);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // Warming only ever ends: once the text says it is over, so must JSON.
    while run(&mut s, "mem")
        .iter()
        .any(|l| l.starts_with("free memory is still being warmed"))
    {
        assert!(std::time::Instant::now() < deadline, "memory still warming after 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let lines = run(&mut s, "mem --json");
    let m: MemReport = serde_json::from_str(&lines[0]).unwrap_or_else(|e| panic!("{lines:?}: {e}"));
    assert!(!m.memory_warming, "{m:?}");
}

#[test]
fn bad_input_gets_one_error_line_and_the_prompt_again() {
    let mut s = boot_console(Firmware::Bios);
    let out = run(&mut s, "frobnicate --now");
    assert_eq!(out, ["error: unknown command 'frobnicate' (try 'help')"]);
    let out = run(&mut s, "uptime --bogus");
    assert_eq!(out.len(), 1);
    assert!(
        out[0].starts_with("error: uptime: unexpected argument '--bogus'"),
        "{out:?}"
    );
    let out = run(&mut s, "shutdown now");
    assert!(out[0].starts_with("error: shutdown:"), "{out:?}");
    // Binary garbage, escape sequences and an overlong line do no harm.
    s.send(b"\xff\x00\x1b[A\x1b[1;5D\x01\x02").unwrap();
    let out = run(&mut s, &"x".repeat(400));
    assert_eq!(out.len(), 1);
    assert!(out[0].starts_with("error: unknown command 'xxxx"), "{out:?}");
    assert_eq!(run(&mut s, "echo still alive"), ["still alive"]);
}

#[test]
fn line_editing_backspace_and_ctrl_c() {
    let mut s = boot_console(Firmware::Bios);
    assert_eq!(run(&mut s, "ecxx\x08\x7fho edited"), ["edited"]);
    s.send(b"garbage that must not run\x03").unwrap();
    s.expect(&format!("^C\r\n{PROMPT}"), REPLY).unwrap();
    assert_eq!(run(&mut s, "echo after ctrl-c"), ["after ctrl-c"]);
    assert_eq!(run(&mut s, ""), Vec::<String>::new());
}

#[test]
fn shutdown_powers_the_machine_off() {
    let mut s = boot_console(Firmware::Bios);
    s.send("shutdown\r").unwrap();
    s.expect("powering off", REPLY).unwrap();
    let (status, out) = s.wait(Duration::from_secs(20)).unwrap();
    assert_eq!(status.code(), Some(0), "ACPI power-off should end QEMU with 0:\n{out}");
}

#[test]
fn console_works_under_uefi() {
    let mut s = boot_console(Firmware::Uefi);
    let lines = run(&mut s, "uptime --json");
    let u: UptimeReport = serde_json::from_str(&lines[0]).unwrap_or_else(|e| panic!("{lines:?}: {e}"));
    assert!(u.uptime_ns > 0);
    s.send("shutdown\r").unwrap();
    let (status, out) = s.wait(Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(0), "{out}");
}

#[test]
fn a_bad_kernel_command_line_is_reported_and_the_defaults_apply() {
    let mut s = boot_with(Firmware::Bios, "mode=fast panic=exit");
    let log = s.expect(PROMPT, common::BOOT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        log.contains("kernel command line 'mode=fast panic=exit': bad value 'fast' for 'mode'"),
        "{log}"
    );
    assert_eq!(run(&mut s, "echo ok"), ["ok"]);
}

#[test]
fn an_overlong_kernel_command_line_is_reported_and_the_defaults_apply() {
    let long = format!("panic=exit {}", "log=info ".repeat(80));
    let mut s = boot_with(Firmware::Bios, &long);
    let log = s.expect(PROMPT, common::BOOT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        log.contains(&format!(
            "kernel command line is {} bytes, the limit is 512",
            long.len()
        )),
        "{log}"
    );
    assert_eq!(run(&mut s, "echo ok"), ["ok"]);
}
