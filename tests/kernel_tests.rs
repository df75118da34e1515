//! Tier 2: the in-kernel tests, booted under BIOS and UEFI, and the
//! harness's own proof that failures, panics and CPU exceptions fail a run.

mod common;

use std::time::Duration;

use aetheros::runner::{Cpu, Firmware, KtestReport, run_ktests, run_ktests_on};

const LIMIT: Duration = Duration::from_secs(120);

/// The default tests the kernel must run (a test that silently stops being
/// registered would otherwise go unnoticed).
const REQUIRED: &[&str] = &[
    "frames_alloc_free_roundtrip",
    "paging_map_translate_unmap",
    "paging_refuses_writable_executable",
    "heap_grows_on_demand",
    "heap_exhaustion_is_an_error",
    "interrupts_timer_ticks_arrive",
    "interrupts_breakpoint_resumes",
    "interrupts_serial_receive",
    "clock_monotonic_10k_reads",
    "clock_agrees_with_pit",
    "clock_agrees_with_acpi_pm_timer",
    "acpi_power_off_available",
    "rtc_boot_time_plausible",
    "cpu_smep_smap_on_where_supported",
    "pci_bus0_has_the_q35_chipset",
    "ring3_hello_exits_zero",
    "ring3_faults_end_only_the_process",
    "ring3_priority_preempts_a_spinning_process",
    "ring3_round_robin_shares_a_level",
    "ring3_group_kill_forces_every_member",
    "ring3_group_kill_of_64_is_fast",
    "ring3_watchdog_kills_a_silent_process",
    "ring3_watchdog_deadline_stops_with_grace",
    "ring3_address_spaces_stay_isolated_across_switches",
    "ring3_service_calls",
    "ring3_opsd_runs_native_jobs",
    "ring3_captured_output",
    "kernel_stacks_keep_a_quarter_free",
    "ring3_bad_syscalls_are_errors",
    "ring3_metrics_and_events",
    "ring3_fuzz_100k_syscalls",
    "ring3_spawn_and_kill_errors",
    "ring3_corrupt_compressed_programs_are_refused",
    "ring3_user_memory_exhaustion_leaves_the_kernel_a_reserve",
];

fn run(firmware: Firmware, tests: Option<&str>) -> KtestReport {
    run_ktests(&aetheros::images(), firmware, tests, LIMIT).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_all_pass(r: &KtestReport) {
    if let Err(e) = r.verdict() {
        panic!("{e}");
    }
    for name in REQUIRED {
        assert!(
            r.passed.iter().any(|p| p == name),
            "kernel test {name} did not run:\n{}",
            r.output
        );
    }
    assert!(
        !r.passed.iter().any(|p| p.starts_with("deliberate_")),
        "opt-in failure demonstrations ran by default"
    );
}

#[test]
fn kernel_tests_pass_under_bios() {
    assert_all_pass(&run(Firmware::Bios, None));
}

#[test]
fn kernel_tests_pass_under_uefi() {
    assert_all_pass(&run(Firmware::Uefi, None));
}

/// `-cpu max` has SMEP and SMAP: the kernel turns them on, and ring 3 (the
/// console of user programs, faults, the bad-syscall checks) still works,
/// which shows the kernel never touches user pages directly.
#[test]
fn smep_and_smap_are_on_where_the_cpu_has_them() {
    let tests = "cpu_smep_smap_on_where_supported,ring3_hello_exits_zero,ring3_faults_end_only_the_process,\
                 ring3_bad_syscalls_are_errors";
    let r = run_ktests_on(&aetheros::images(), Firmware::Bios, Cpu::Max, Some(tests), LIMIT)
        .unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = r.verdict() {
        panic!("{e}");
    }
    assert_eq!(r.passed.len(), 4, "{}", r.output);
    assert!(r.output.contains("SMEP true, SMAP true"), "{}", r.output);
}

#[test]
fn a_failing_kernel_test_fails_the_run() {
    let r = run(Firmware::Bios, Some("clock_monotonic_10k_reads,deliberate_failure"));
    assert!(r.verdict().is_err(), "harness accepted a failing test:\n{}", r.output);
    assert_eq!(r.exit_status, Some(35));
    assert_eq!(r.passed, ["clock_monotonic_10k_reads"]);
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].0, "deliberate_failure");
    assert!(r.failed[0].1.contains("1 + 1 is not 3"), "{:?}", r.failed);
    assert_eq!(r.summary, Some((1, 1)));
}

#[test]
fn a_panicking_kernel_test_fails_the_run_with_a_report() {
    let r = run(Firmware::Bios, Some("deliberate_panic"));
    assert!(r.verdict().is_err());
    assert_eq!(r.exit_status, Some(35));
    assert!(
        r.output.contains("PANIC: deliberate panic in a kernel test"),
        "{}",
        r.output
    );
    assert!(r.output.contains("backtrace"), "{}", r.output);
    assert_eq!(r.failed.first().map(|f| f.0.as_str()), Some("deliberate_panic"));
    assert_eq!(r.summary, None, "the run stops at the panic");
}

#[test]
fn a_cpu_exception_is_reported_with_vector_rip_and_cr2() {
    let r = run(Firmware::Bios, Some("deliberate_page_fault"));
    assert!(r.verdict().is_err());
    assert_eq!(r.exit_status, Some(35));
    let out = &r.output;
    assert!(
        out.contains("EXCEPTION: #PF page fault (vector 14) error_code=0x"),
        "{out}"
    );
    assert!(out.contains(" cr2=0x") && out.contains("rip=0x"), "{out}");
    assert_eq!(r.failed.first().map(|f| f.0.as_str()), Some("deliberate_page_fault"));
}

#[test]
fn a_kernel_stack_overflow_is_reported_as_a_double_fault() {
    let r = run(Firmware::Bios, Some("deliberate_stack_overflow"));
    assert!(r.verdict().is_err());
    assert_eq!(
        r.exit_status,
        Some(35),
        "a triple fault would reset (exit 0 under -no-reboot):\n{}",
        r.output
    );
    assert!(
        r.output.contains("EXCEPTION: #DF double fault (vector 8)"),
        "{}",
        r.output
    );
    assert_eq!(
        r.failed.first().map(|f| f.0.as_str()),
        Some("deliberate_stack_overflow")
    );
}

#[test]
fn running_out_of_memory_is_reported_not_a_hang() {
    let r = run(Firmware::Bios, Some("deliberate_out_of_memory"));
    assert!(r.verdict().is_err());
    assert_eq!(r.exit_status, Some(35), "{}", r.output);
    assert!(r.output.contains("ERROR mm::heap: out of memory:"), "{}", r.output);
    assert!(r.output.contains("PANIC: memory allocation of"), "{}", r.output);
    assert_eq!(r.failed.first().map(|f| f.0.as_str()), Some("deliberate_out_of_memory"));
}

#[test]
fn an_unknown_test_name_fails_the_run() {
    let r = run(Firmware::Bios, Some("no_such_test"));
    assert!(r.verdict().is_err());
    assert_eq!(r.failed, [("no_such_test".to_string(), "no such test".to_string())]);
}
