//! The `log` facade's backend: one line per record on COM1,
//! `[seconds.micros] LEVEL subsystem: message`, where the subsystem is the
//! module path without the crate name (`mm::heap`, `time`).

use core::fmt::Write;

use aether_abi::boot::LogLevel;
use log::{LevelFilter, Log, Metadata, Record};

use kcore::decimal;

use crate::{arch::serial, time};

struct SerialLogger;

impl Log for SerialLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let ns = time::now_ns();
        let target = record.target();
        let subsystem = target.strip_prefix("kernel::").unwrap_or(target);
        // `[sssss.uuuuuu] LEVEL `, rendered by hand (see kcore::decimal).
        let mut prefix = [b' '; 64];
        let mut n = 1;
        prefix[0] = b'[';
        n += decimal::render(ns / 1_000_000_000, 5, b' ', &mut prefix[n..]);
        prefix[n] = b'.';
        n += 1;
        n += decimal::render(ns / 1_000 % 1_000_000, 6, b'0', &mut prefix[n..]);
        prefix[n] = b']';
        n += 2;
        let level = record.level().as_str().as_bytes();
        prefix[n..n + level.len()].copy_from_slice(level);
        n += 6;
        serial::write_bytes(&prefix[..n]);
        let _ = writeln!(serial::Writer, "{subsystem}: {}", record.args());
    }

    fn flush(&self) {}
}

static LOGGER: SerialLogger = SerialLogger;

pub fn init(level: LogLevel) {
    let filter = match level {
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    };
    // A second call keeps the first logger; there is only one.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(filter);
}
