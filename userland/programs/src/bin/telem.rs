//! The kernel's telemetry calls from ring 3, for the kernel tests
//! (`ring3_metrics_and_events`):
//!
//! * `telem emit N BATCH`: emits N gauge points `telem_step` (value and
//!   step i, tag `src=telem`) in batches of BATCH; exits 0 if every point
//!   was accepted, else prints the error and exits 1.
//! * `telem fault PID`: reads the event bus from the start (waiting up to
//!   2 s) for a `Fault` event from the kernel about PID; exits 0 if found,
//!   1 if not.
//! * `telem wait AFTER MS`: waits up to MS ms for an event with an id above
//!   AFTER; exits 0 when one came, 3 when none did (and MS ms passed).
#![no_std]
#![no_main]

extern crate alloc;

use aether_abi::event::{EventKind, Severity, records};
use aether_abi::metric::{MetricKind, MetricPoint, Tag};
use aether_rt::{Args, entry, event, metric, println, sys};
use alloc::vec;
use alloc::vec::Vec;

entry!(main);

const MS: u64 = 1_000_000;

fn main(args: Args) -> i32 {
    let num = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok());
    match (args.get(1), num(2), num(3)) {
        (Some("emit"), Some(n), Some(batch)) if batch > 0 => emit(n, batch as usize),
        (Some("fault"), Some(pid), None) => fault(pid),
        (Some("wait"), Some(after), Some(ms)) => wait(after, ms),
        _ => {
            println!("telem: usage: telem emit N BATCH | fault PID | wait AFTER MS");
            2
        }
    }
}

fn emit(n: u64, batch: usize) -> i32 {
    let mut points: Vec<MetricPoint> = Vec::with_capacity(batch);
    let mut i = 0;
    while i < n {
        points.clear();
        while points.len() < batch && i < n {
            let Some(mut p) = MetricPoint::new("telem_step", MetricKind::Gauge, i as f64) else {
                return 1;
            };
            p.step = Some(i);
            let tag = Tag {
                key: "src".try_into().unwrap_or_default(),
                value: "telem".try_into().unwrap_or_default(),
            };
            let _ = p.tags.push(tag);
            points.push(p);
            i += 1;
        }
        match metric::emit(&points) {
            Ok(k) if k == points.len() => {}
            Ok(k) => {
                println!("telem: {k} of {} points accepted", points.len());
                return 1;
            }
            Err(e) => {
                println!("telem: emit: {e}");
                return 1;
            }
        }
    }
    0
}

fn fault(pid: u64) -> i32 {
    let want = alloc::format!("{pid}");
    let deadline = sys::clock_ns() + 2_000 * MS;
    let mut buf = vec![0u8; 64 * 1024];
    let mut after = 0;
    loop {
        match event::read(&mut buf, after, deadline) {
            Ok((0, _)) => {
                println!("telem: no fault event for pid {pid}");
                return 1;
            }
            Ok((n, _)) => {
                for e in records(&buf[..n]) {
                    after = e.id;
                    let b = &e.body;
                    if b.kind == EventKind::Fault
                        && b.severity == Severity::Warning
                        && b.source == "kernel"
                        && b.job_id == 0
                        && b.get_label("pid") == Some(want.as_str())
                        && b.get_label("program") == Some("fault")
                        && b.get_label("group").is_some()
                        && b.get_field("message").is_some_and(|m| m.contains("page fault"))
                    {
                        return 0;
                    }
                }
            }
            Err(e) => {
                println!("telem: event read: {e:?}");
                return 1;
            }
        }
    }
}

fn wait(after: u64, ms: u64) -> i32 {
    let t0 = sys::clock_ns();
    let mut buf = vec![0u8; 16 * 1024];
    match event::read(&mut buf, after, t0 + ms * MS) {
        Ok((0, _)) if sys::clock_ns() >= t0 + ms * MS => 3,
        Ok((0, _)) => {
            println!("telem: the read returned early with nothing");
            1
        }
        Ok((n, _)) if records(&buf[..n]).next().is_some_and(|e| e.id > after) => 0,
        Ok((n, _)) => {
            println!("telem: {n} bytes without an event above {after}");
            1
        }
        Err(e) => {
            println!("telem: event read: {e:?}");
            1
        }
    }
}
