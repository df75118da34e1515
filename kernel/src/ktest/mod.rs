//! Kernel tests on the real (emulated) machine: `mode=test` boots run the
//! registered tests in order, print one `KTEST` line each (format in
//! `aether_abi::ktest`), and exit QEMU with pass (33) or fail (35).
//!
//! Add a test: write `fn name() -> TestResult` in `tests.rs` and list it in
//! `tests::ALL` as `test("name", name)`. Tests marked `opt_in` (the harness's own failure
//! demonstrations) run only when named with `tests=`.

mod ring3;
mod storage;
mod tests;

use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};

use aether_abi::ktest::{KtestLine, QemuExitCode};

use crate::arch::{power, serial};
use crate::time;

pub type TestResult = Result<(), String>;

pub struct Test {
    pub name: &'static str,
    pub run: fn() -> TestResult,
    /// Only run when named explicitly.
    pub opt_in: bool,
}

/// Fails the test with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(alloc::format!($($fmt)+));
        }
    };
}
pub(crate) use ensure;

const NONE: usize = usize::MAX;
/// Index in `tests::ALL` of the running test, for the panic path.
static CURRENT: AtomicUsize = AtomicUsize::new(NONE);

fn line(l: KtestLine) {
    let _ = writeln!(serial::Writer, "{l}");
}

static FILTER: spin::Once<Option<&'static str>> = spin::Once::new();

/// Chooses the tests [`run_selected`] runs (None: the default set).
pub fn set_filter(filter: Option<&'static str>) {
    FILTER.call_once(|| filter);
}

/// The kernel test task: runs the selected tests and exits QEMU.
pub fn run_selected() {
    run(FILTER.get().copied().flatten())
}

/// Runs the selected tests and exits QEMU.
pub fn run(filter: Option<&str>) -> ! {
    let selected = |t: &Test| match filter {
        None => !t.opt_in,
        Some(names) => names.split(',').any(|n| n == t.name),
    };
    if let Some(names) = filter
        && let Some(unknown) = names.split(',').find(|n| !tests::ALL.iter().any(|t| t.name == *n))
    {
        line(KtestLine::Failed {
            name: unknown,
            message: "no such test",
        });
        power::qemu_exit(QemuExitCode::Failure);
    }
    let (mut passed, mut failed) = (0, 0);
    for (i, t) in tests::ALL.iter().enumerate().filter(|(_, t)| selected(t)) {
        CURRENT.store(i, Ordering::Relaxed);
        let start = time::now_ns();
        let result = (t.run)();
        let micros = (time::now_ns() - start) / 1_000;
        CURRENT.store(NONE, Ordering::Relaxed);
        match result {
            Ok(()) => {
                passed += 1;
                line(KtestLine::Passed { name: t.name, micros });
            }
            Err(message) => {
                failed += 1;
                line(KtestLine::Failed {
                    name: t.name,
                    message: &message,
                });
            }
        }
    }
    line(KtestLine::Done { passed, failed });
    power::qemu_exit(if failed == 0 && passed > 0 {
        QemuExitCode::Success
    } else {
        QemuExitCode::Failure
    })
}

/// Called by the panic handler: reports the running test (if any) as failed.
pub fn on_panic(w: &mut impl Write) {
    let i = CURRENT.load(Ordering::Relaxed);
    if let Some(t) = tests::ALL.get(i) {
        let _ = write!(
            w,
            "{}\r\n",
            KtestLine::Failed {
                name: t.name,
                message: "panicked (see above)"
            }
        );
    }
}
