//! `storm DIR COUNT`: a write storm for the power-cut test. Appends COUNT
//! records to `DIR/log` (continuing after the ones already there), each
//! made durable with fsync before `acked SEQ` is printed; every 16th
//! record also replaces `DIR/snap` atomically (written to `DIR/snap.tmp`,
//! fsync, renamed over) and prints `snap SEQ`: aethfs commits a rename
//! before it returns, so no directory fsync follows (tests/powercut.rs
//! checks just that). The host kills the machine at a random moment and
//! checks that everything acknowledged is there.
//!
//! A record is 64 bytes: `seq NNNNNNNNNN sum HHHHHHHHHHHHHHHH` padded with
//! `.` and ended by a newline; `sum` is `aether_abi::fs::Checksum` of the
//! `seq NNNNNNNNNN` part.
#![no_std]
#![no_main]

extern crate alloc;

use aether_abi::fs::FsError;
use aether_rt::fs::{self, File};
use aether_rt::{Args, entry, println};
use alloc::format;

entry!(main);

use aether_abi::ktest::storm::{RECORD, record};

fn main(args: Args) -> i32 {
    let (Some(dir), Some(count)) = (args.get(1), args.get(2).and_then(|c| c.parse::<u64>().ok())) else {
        println!("usage: storm DIR COUNT");
        return 2;
    };
    match run(dir, count) {
        Ok(()) => 0,
        Err(e) => {
            println!("error: storm: {e}");
            1
        }
    }
}

fn run(dir: &str, count: u64) -> Result<(), FsError> {
    match fs::mkdir(dir) {
        Ok(()) | Err(FsError::Exists) => {}
        Err(e) => return Err(e),
    }
    let log_path = format!("{dir}/log");
    let mut log = File::append(&log_path)?;
    let start = log.stat()?.size / RECORD as u64;
    println!("storm: {start} records there, appending {count}");
    for seq in start..start + count {
        log.write(&record(seq))?;
        log.fsync()?;
        println!("acked {seq}");
        if seq % 16 == 15 {
            let tmp = format!("{dir}/snap.tmp");
            let mut snap = File::create(&tmp)?;
            snap.write(format!("snap {seq}\n").as_bytes())?;
            snap.fsync()?;
            drop(snap);
            fs::rename(&tmp, &format!("{dir}/snap"))?;
            println!("snap {seq}");
        }
    }
    Ok(())
}
