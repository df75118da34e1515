//! A scripted native trainer for the telemetry tests and demos
//! (docs/telemetry.md): `trainsim NAME V1,V2,.. [EVERY_MS] [SILENT_MS]`
//! emits gauge points `NAME = Vi` at step `i` through the `METRIC` call,
//! one every `EVERY_MS` (default 20), printing a line per point; then
//! stays silent for `SILENT_MS` (default 0: none) and exits 0. Values are
//! numbers, `nan` or `inf`. A bad argument or a refused point: a line on
//! the output and exit 2.
#![no_std]
#![no_main]

use aether_abi::metric::{MetricKind, MetricPoint};
use aether_rt::{Args, entry, metric, println, sys};

entry!(main);

fn main(args: Args) -> i32 {
    let (Some(name), Some(values)) = (args.get(1), args.get(2)) else {
        println!("usage: trainsim NAME V1,V2,.. [EVERY_MS] [SILENT_MS]");
        return 2;
    };
    let every_ms: u64 = match args.get(3).map(|a| a.parse()) {
        None => 20,
        Some(Ok(ms)) => ms,
        Some(Err(_)) => {
            println!("trainsim: EVERY_MS is not a number");
            return 2;
        }
    };
    let silent_ms: u64 = match args.get(4).map(|a| a.parse()) {
        None => 0,
        Some(Ok(ms)) => ms,
        Some(Err(_)) => {
            println!("trainsim: SILENT_MS is not a number");
            return 2;
        }
    };
    for (step, text) in values.split(',').enumerate() {
        let Ok(value) = text.trim().parse::<f64>() else {
            println!("trainsim: {text:?} is not a number");
            return 2;
        };
        let Some(mut point) = MetricPoint::new(name, MetricKind::Gauge, value) else {
            println!("trainsim: the name is longer than 64 bytes");
            return 2;
        };
        point.step = Some(step as u64);
        if let Err(e) = metric::emit(core::slice::from_ref(&point)) {
            println!("trainsim: step {step}: {e}");
            return 2;
        }
        println!("step {step} {name}={value}");
        sys::sleep_ms(every_ms);
    }
    if silent_ms > 0 {
        sys::sleep_ms(silent_ms);
    }
    0
}
