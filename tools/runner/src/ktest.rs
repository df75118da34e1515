//! Running the in-kernel tests and judging the result: every selected test
//! must report `ok`, the summary must agree, and QEMU must exit with the
//! pass code. Anything else (a FAIL line, a panic, a hang, a missing
//! summary) is a failure with the full serial output attached.

use std::time::Duration;

use aether_abi::boot::{BootArgs, LogLevel, Mode, OnPanic};
use aether_abi::ktest::{KtestLine, QemuExitCode};

use crate::{Cpu, Firmware, Images, Launch, Qemu, RunnerError, Serial, Session};

#[derive(Debug)]
pub struct KtestReport {
    pub passed: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub summary: Option<(u32, u32)>,
    pub exit_status: Option<i32>,
    pub output: String,
}

impl KtestReport {
    pub fn parse(output: String, exit_status: Option<i32>) -> Self {
        let mut r = KtestReport {
            passed: vec![],
            failed: vec![],
            summary: None,
            exit_status,
            output: String::new(),
        };
        for line in output.lines() {
            match KtestLine::parse(line.trim_end_matches('\r')) {
                Some(KtestLine::Passed { name, .. }) => r.passed.push(name.into()),
                Some(KtestLine::Failed { name, message }) => r.failed.push((name.into(), message.into())),
                Some(KtestLine::Done { passed, failed }) => r.summary = Some((passed, failed)),
                None => {}
            }
        }
        r.output = output;
        r
    }

    /// `Ok` only for a clean, complete, passing run.
    pub fn verdict(&self) -> Result<(), String> {
        let pass = QemuExitCode::Success.process_status();
        let problem = if !self.failed.is_empty() {
            format!("{} kernel test(s) failed: {:?}", self.failed.len(), self.failed)
        } else if self.exit_status != Some(pass) {
            format!("QEMU exited with {:?}, not {pass} (pass)", self.exit_status)
        } else if self.summary != Some((self.passed.len() as u32, 0)) {
            format!(
                "summary {:?} does not match {} passed tests",
                self.summary,
                self.passed.len()
            )
        } else if self.passed.is_empty() {
            "no kernel test ran".into()
        } else {
            return Ok(());
        };
        Err(format!("{problem}\n--- serial output ---\n{}", self.output))
    }
}

/// Boots `firmware` in test mode (all default tests, or the named ones) and
/// collects the report. `timeout` bounds the whole QEMU run.
pub fn run_ktests(
    images: &Images,
    firmware: Firmware,
    tests: Option<&str>,
    timeout: Duration,
) -> Result<KtestReport, RunnerError> {
    run_ktests_on(images, firmware, Cpu::Qemu64, tests, timeout)
}

/// [`run_ktests`] with a chosen CPU model.
pub fn run_ktests_on(
    images: &Images,
    firmware: Firmware,
    cpu: Cpu,
    tests: Option<&str>,
    timeout: Duration,
) -> Result<KtestReport, RunnerError> {
    let args = BootArgs {
        mode: Mode::Test(tests),
        on_panic: OnPanic::Exit,
        log: LogLevel::Info,
    };
    let launch = Launch {
        firmware,
        cpu,
        extra: Vec::new(),
        serial: Serial::Piped,
        cmdline: checked_cmdline(&args)?,
    };
    let cmd = Qemu::locate()?.command(images, &launch)?;
    let session = Session::spawn(cmd, timeout)?;
    match session.wait(timeout) {
        Ok((status, output)) => Ok(KtestReport::parse(output, status.code())),
        Err(crate::SessionError::Deadline { output }) => Ok(KtestReport::parse(output, None)),
        Err(e) => Err(e.into()),
    }
}

/// The command line for `args`, refused here if the kernel would refuse it.
pub fn checked_cmdline(args: &BootArgs) -> Result<String, RunnerError> {
    let line = args.to_string();
    BootArgs::parse(&line).map_err(|e| RunnerError::InvalidBootArgs(e.to_string()))?;
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_test_names_are_refused_before_booting() {
        let args = BootArgs {
            mode: Mode::Test(Some("foo-bar")),
            on_panic: OnPanic::Exit,
            log: LogLevel::Info,
        };
        let e = checked_cmdline(&args).unwrap_err();
        assert!(e.to_string().contains("bad value 'foo-bar' for 'tests'"), "{e}");
        let images = Images {
            bios: "/nonexistent".into(),
            uefi: "/nonexistent".into(),
            kernel_elf: "/x".into(),
        };
        let e = run_ktests(&images, Firmware::Bios, Some("a b"), Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, RunnerError::InvalidBootArgs(_)), "{e}");
    }

    const GOOD: &str = "log\nKTEST ok a 1us\r\nKTEST ok b 2us\nKTEST DONE passed=2 failed=0\n";

    #[test]
    fn a_clean_run_passes() {
        let r = KtestReport::parse(GOOD.into(), Some(33));
        assert_eq!(r.passed, ["a", "b"]);
        r.verdict().unwrap();
    }

    #[test]
    fn the_verdict_catches_every_kind_of_failure() {
        let cases = [
            (
                "KTEST ok a 1us\nKTEST FAIL b boom\nKTEST DONE passed=1 failed=1\n",
                Some(35),
            ),
            (GOOD, Some(35)),                                             // wrong exit code
            (GOOD, None),                                                 // killed at the deadline
            ("KTEST ok a 1us\n", Some(33)),                               // no summary (crashed mid-run)
            ("KTEST ok a 1us\nKTEST DONE passed=2 failed=0\n", Some(33)), // summary disagrees
            ("KTEST DONE passed=0 failed=0\n", Some(33)),                 // nothing ran
            ("PANIC: x\nKTEST FAIL a panicked (see above)\n", Some(35)),
        ];
        for (out, status) in cases {
            let r = KtestReport::parse(out.into(), status);
            assert!(r.verdict().is_err(), "accepted {out:?} with {status:?}");
        }
    }
}
