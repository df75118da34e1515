//! The kernel tests. They check what only the machine can show: paging,
//! the heap, interrupts, the clock against the PIT, firmware tables. The
//! pure logic under them has host tests in `kcore` and `console`.

use alloc::vec::Vec;

use kcore::clock;
use x86_64::VirtAddr;
use x86_64::structures::paging::{Page, PageTableFlags, Size4KiB};

use super::{Test, TestResult, ensure, ring3, storage};
use crate::arch::{cpu, idt, pit, pmtimer, serial};
use crate::mm::{frames, heap, paging, phys};
use crate::{platform, time};

pub static ALL: &[Test] = &[
    test("frames_alloc_free_roundtrip", frames_alloc_free_roundtrip),
    test("paging_map_translate_unmap", paging_map_translate_unmap),
    test("paging_refuses_writable_executable", paging_refuses_writable_executable),
    test("heap_grows_on_demand", heap_grows_on_demand),
    test("heap_exhaustion_is_an_error", heap_exhaustion_is_an_error),
    test("interrupts_timer_ticks_arrive", interrupts_timer_ticks_arrive),
    test("interrupts_breakpoint_resumes", interrupts_breakpoint_resumes),
    test("interrupts_serial_receive", interrupts_serial_receive),
    test("clock_monotonic_10k_reads", clock_monotonic_10k_reads),
    test("clock_agrees_with_pit", clock_agrees_with_pit),
    test("clock_agrees_with_acpi_pm_timer", clock_agrees_with_acpi_pm_timer),
    test("acpi_power_off_available", acpi_power_off_available),
    test("rtc_boot_time_plausible", rtc_boot_time_plausible),
    test("cpu_smep_smap_on_where_supported", cpu_smep_smap_on_where_supported),
    test("pci_bus0_has_the_q35_chipset", pci_bus0_has_the_q35_chipset),
    test("ring3_hello_exits_zero", ring3::ring3_hello_exits_zero),
    test(
        "ring3_faults_end_only_the_process",
        ring3::ring3_faults_end_only_the_process,
    ),
    test(
        "ring3_priority_preempts_a_spinning_process",
        ring3::ring3_priority_preempts_a_spinning_process,
    ),
    test(
        "ring3_round_robin_shares_a_level",
        ring3::ring3_round_robin_shares_a_level,
    ),
    test(
        "ring3_group_kill_forces_every_member",
        ring3::ring3_group_kill_forces_every_member,
    ),
    test("ring3_group_kill_of_64_is_fast", ring3::ring3_group_kill_of_64_is_fast),
    test(
        "ring3_watchdog_kills_a_silent_process",
        ring3::ring3_watchdog_kills_a_silent_process,
    ),
    test(
        "ring3_watchdog_deadline_stops_with_grace",
        ring3::ring3_watchdog_deadline_stops_with_grace,
    ),
    test(
        "ring3_address_spaces_stay_isolated_across_switches",
        ring3::ring3_address_spaces_stay_isolated_across_switches,
    ),
    test("ring3_service_calls", ring3::ring3_service_calls),
    test("ring3_opsd_runs_native_jobs", ring3::ring3_opsd_runs_native_jobs),
    test("ring3_captured_output", ring3::ring3_captured_output),
    test("ring3_bad_syscalls_are_errors", ring3::ring3_bad_syscalls_are_errors),
    test("ring3_metrics_and_events", ring3::ring3_metrics_and_events),
    test("ring3_fuzz_100k_syscalls", ring3::ring3_fuzz_100k_syscalls),
    test("ring3_spawn_and_kill_errors", ring3::ring3_spawn_and_kill_errors),
    test(
        "ring3_user_memory_exhaustion_leaves_the_kernel_a_reserve",
        ring3::ring3_user_memory_exhaustion_leaves_the_kernel_a_reserve,
    ),
    test(
        "ring3_corrupt_compressed_programs_are_refused",
        ring3::ring3_corrupt_compressed_programs_are_refused,
    ),
    // Last: after everything above has run on kernel stacks.
    test(
        "kernel_stacks_keep_a_quarter_free",
        ring3::kernel_stacks_keep_a_quarter_free,
    ),
    // Experiments, run by `cargo run --release --bin bench -- --link-probe`.
    opt_in("link_ivshmem_bandwidth", link_ivshmem_bandwidth),
    // Run by tests/storage.rs, which attaches the disk image.
    opt_in(
        "virtio_blk_reads_writes_and_flushes",
        storage::virtio_blk_reads_writes_and_flushes,
    ),
    opt_in(
        "virtio_blk_read_only_refuses_writes",
        storage::virtio_blk_read_only_refuses_writes,
    ),
    opt_in(
        "virtio_blk_request_queue_serves_two_readers",
        storage::virtio_blk_request_queue_serves_two_readers,
    ),
    opt_in("blk_bench_seq_read", storage::blk_bench_seq_read),
    // Run by tests/link.rs, which plays the host side.
    opt_in("link_host_echo", link_host_echo),
    // The harness's own demonstrations that failures are caught.
    opt_in("deliberate_failure", deliberate_failure),
    opt_in("deliberate_panic", deliberate_panic),
    opt_in("deliberate_page_fault", deliberate_page_fault),
    opt_in("deliberate_out_of_memory", deliberate_out_of_memory),
    opt_in("deliberate_stack_overflow", deliberate_stack_overflow),
];

const fn test(name: &'static str, run: fn() -> TestResult) -> Test {
    Test {
        name,
        run,
        opt_in: false,
    }
}

const fn opt_in(name: &'static str, run: fn() -> TestResult) -> Test {
    Test {
        name,
        run,
        opt_in: true,
    }
}

fn frames_alloc_free_roundtrip() -> TestResult {
    let before = frames::stats();
    let frame = frames::alloc_zeroed().ok_or("no free frame")?;
    ensure!(frames::is_used(frame) == Some(true), "allocated frame not marked used");
    ensure!(
        frames::stats().used == before.used + 1,
        "used count did not go up by one"
    );
    frames::free(frame).map_err(|e| alloc::format!("free: {e}"))?;
    ensure!(
        frames::stats() == before,
        "stats not restored: {:?} vs {before:?}",
        frames::stats()
    );
    ensure!(frames::free(frame).is_err(), "double free accepted");
    Ok(())
}

/// A page in the heap window far above anything the heap will reach.
fn scratch_page() -> Result<Page<Size4KiB>, alloc::string::String> {
    let base = paging::heap_window().map_err(|e| alloc::format!("{e:?}"))?;
    Ok(Page::containing_address(VirtAddr::new(base + (256 << 30))))
}

fn paging_map_translate_unmap() -> TestResult {
    let page = scratch_page()?;
    let addr = page.start_address().as_u64();
    ensure!(paging::translate(addr).is_none(), "scratch page already mapped");
    paging::map_new(page, paging::Flags::WRITABLE)
        .map_err(|e| alloc::format!("map: {e:?}"))?
        .flush();
    let phys_addr = paging::translate(addr + 8).ok_or("mapped page does not translate")? - 8;
    let flags = paging::entry_flags(addr).ok_or("no entry flags")?;
    ensure!(
        flags.contains(PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE),
        "flags {flags:?}"
    );
    ensure!(
        paging::map_new(page, paging::Flags::WRITABLE).err() == Some(paging::MapError::AlreadyMapped),
        "double map accepted"
    );
    // SAFETY: the page was just mapped writable and is used by nothing else;
    // the offset-map view of its frame aliases it on purpose, to check the
    // translation is real.
    let seen = unsafe {
        (addr as *mut u64).write_volatile(0x5eed_cafe);
        (phys::to_virt(phys_addr) as *const u64).read_volatile()
    };
    ensure!(
        seen == 0x5eed_cafe,
        "write through the new mapping not seen in its frame: {seen:#x}"
    );
    // SAFETY: mapped by map_new above; no reference into it survives.
    unsafe { paging::unmap_and_free(page) }
        .map_err(|e| alloc::format!("unmap: {e:?}"))?
        .flush();
    ensure!(paging::translate(addr).is_none(), "page still translates after unmap");
    // SAFETY: as above (the call must fail: nothing is mapped).
    let again = unsafe { paging::unmap_and_free(page) };
    ensure!(
        again.err() == Some(paging::MapError::NotMapped),
        "unmapping twice accepted"
    );
    Ok(())
}

fn paging_refuses_writable_executable() -> TestResult {
    let page = scratch_page()?;
    let r = paging::map_new(page, paging::Flags::WRITABLE | paging::Flags::EXECUTABLE);
    ensure!(
        r.err() == Some(paging::MapError::WritableAndExecutable),
        "W+X mapping accepted"
    );
    ensure!(
        paging::translate(page.start_address().as_u64()).is_none(),
        "refused mapping left a page"
    );
    Ok(())
}

fn heap_grows_on_demand() -> TestResult {
    let before = heap::stats();
    let len = before.size as usize * 4;
    let mut v: Vec<u64> = Vec::new();
    v.try_reserve_exact(len / 8).map_err(|_| "allocation failed")?;
    v.extend((0..len as u64 / 8).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let after = heap::stats();
    ensure!(after.size > before.size, "heap did not grow: {before:?} -> {after:?}");
    let ok = v
        .iter()
        .enumerate()
        .all(|(i, &x)| x == (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    ensure!(ok, "heap contents corrupted");
    drop(v);
    ensure!(
        heap::stats().used <= before.used,
        "memory not returned: {:?}",
        heap::stats()
    );
    Ok(())
}

fn heap_exhaustion_is_an_error() -> TestResult {
    let limit = heap::stats().limit as usize;
    let mut v: Vec<u8> = Vec::new();
    let before = heap::stats();
    ensure!(
        v.try_reserve(limit * 2).is_err(),
        "a reservation beyond the heap limit succeeded"
    );
    ensure!(
        heap::stats().size == before.size,
        "a hopeless request still grew the heap"
    );
    // The heap still works afterwards.
    v.try_reserve(4096)
        .map_err(|_| "small allocation failed after exhaustion")?;
    Ok(())
}

fn interrupts_timer_ticks_arrive() -> TestResult {
    let start = time::ticks();
    let deadline = time::now_ns() + 20 * time::TICK_NS;
    // Spin, not halt: if no tick ever arrives, nothing would wake a `hlt`.
    while time::ticks() < start + 3 && time::now_ns() < deadline {
        core::hint::spin_loop();
    }
    let got = time::ticks() - start;
    ensure!(got >= 3, "{got} timer ticks in {} ms", 20 * time::TICK_NS / 1_000_000);
    Ok(())
}

fn interrupts_breakpoint_resumes() -> TestResult {
    let before = idt::breakpoint_count();
    cpu::breakpoint();
    ensure!(idt::breakpoint_count() == before + 1, "breakpoint not counted");
    Ok(())
}

fn interrupts_serial_receive() -> TestResult {
    while serial::read_byte().is_some() {}
    let sent = b"\x01\x7fA";
    serial::set_loopback(true);
    serial::write_bytes(sent);
    let deadline = time::now_ns() + 200_000_000;
    let mut got = Vec::new();
    while got.len() < sent.len() && time::now_ns() < deadline {
        cpu::wait_until(|| serial::input_pending() || time::now_ns() > deadline);
        while let Some(b) = serial::read_byte() {
            got.push(b);
        }
    }
    serial::set_loopback(false);
    ensure!(got == sent, "received {got:?} by the COM1 interrupt, sent {sent:?}");
    Ok(())
}

fn clock_monotonic_10k_reads() -> TestResult {
    let first = time::now_ns();
    let mut last = first;
    for i in 0..10_000 {
        let now = time::now_ns();
        ensure!(now >= last, "read {i} went backwards: {now} < {last}");
        last = now;
    }
    ensure!(last > first, "clock did not advance over 10k reads");
    Ok(())
}

/// Attempts per clock comparison: a host stall inside one 50 ms window
/// (both clocks keep running, but the edge is read late) spoils only that
/// attempt; a clock that is really off fails all of them.
const CLOCK_ATTEMPTS: usize = 3;

/// The smallest error, in ppm, of `measure` (returning measured and expected
/// nanoseconds) over a few attempts.
fn best_error_ppm(
    mut measure: impl FnMut() -> Result<(u64, u64), alloc::string::String>,
) -> Result<(u64, u64, u64), alloc::string::String> {
    let mut best: Option<(u64, u64, u64)> = None;
    for _ in 0..CLOCK_ATTEMPTS {
        let (measured, expected) = measure()?;
        let ppm = measured.abs_diff(expected) * 1_000_000 / expected.max(1);
        if best.is_none_or(|b| ppm < b.0) {
            best = Some((ppm, measured, expected));
        }
    }
    best.ok_or_else(|| "no attempt".into())
}

fn clock_agrees_with_pit() -> TestResult {
    let ticks = clock::pit_ticks_for_ns(50_000_000).ok_or("window")?;
    let (ppm, measured, expected) = best_error_ppm(|| {
        let (a, b) = pit::time_window(ticks, time::now_ns);
        Ok((b - a, clock::pit_ticks_to_ns(ticks as u64)))
    })?;
    ensure!(
        ppm < 10_000,
        "clock measured {measured} ns for {expected} ns of PIT ({ppm} ppm, tsc {} Hz)",
        time::tsc_hz()
    );
    Ok(())
}

/// The PIT both calibrated the clock and checks it above; the PM timer is a
/// second, independent reference.
fn clock_agrees_with_acpi_pm_timer() -> TestResult {
    let port = platform::pm_timer_port().ok_or("the FADT names no PM timer")?;
    let window = kcore::acpi::PM_TIMER_HZ / 20; // 50 ms
    let (ppm, measured, expected) = best_error_ppm(|| {
        let (pm0, t0) = (pmtimer::read(port), time::now_ns());
        let mut pm1 = pm0;
        let deadline = t0 + 1_000_000_000;
        while (pm1.wrapping_sub(pm0) & pmtimer::MASK) < window as u32 {
            ensure!(
                time::now_ns() < deadline,
                "PM timer did not advance {window} ticks in 1 s of clock"
            );
            pm1 = pmtimer::read(port);
        }
        let measured = time::now_ns() - t0;
        let ticks = (pm1.wrapping_sub(pm0) & pmtimer::MASK) as u64;
        Ok((measured, ticks * 1_000_000_000 / kcore::acpi::PM_TIMER_HZ))
    })?;
    ensure!(
        ppm < 10_000,
        "clock measured {measured} ns for {expected} ns of PM timer ({ppm} ppm)"
    );
    Ok(())
}

fn acpi_power_off_available() -> TestResult {
    ensure!(platform::can_power_off(), "no ACPI S5 power-off found in the FADT/DSDT");
    Ok(())
}

fn rtc_boot_time_plausible() -> TestResult {
    let t = time::boot_unix_s();
    // 2024-01-01 .. 2100-01-01
    ensure!(
        (1_704_067_200..4_102_444_800).contains(&t),
        "boot time {t} is not a plausible date"
    );
    Ok(())
}

fn deliberate_failure() -> TestResult {
    ensure!(1 + 1 == 3, "deliberate failure: 1 + 1 is not 3");
    Ok(())
}

fn deliberate_panic() -> TestResult {
    panic!("deliberate panic in a kernel test");
}

fn deliberate_page_fault() -> TestResult {
    let page = scratch_page()?;
    // SAFETY: none; this reads an unmapped address on purpose to show that
    // the fault is reported (vector, error code, RIP, CR2) and fails the run.
    let v = unsafe { (page.start_address().as_u64() as *const u64).read_volatile() };
    Err(alloc::format!("read {v:#x} from an unmapped page"))
}

fn deliberate_out_of_memory() -> TestResult {
    // An infallible allocation beyond the heap limit: the allocator logs the
    // heap's state and the allocation-failure path panics (it must not hang).
    let v: Vec<u8> = Vec::with_capacity(heap::stats().limit as usize * 2);
    Err(alloc::format!("allocated {} bytes beyond the heap limit", v.capacity()))
}

/// Recurses until the kernel stack runs into its guard page.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 32]);
    if depth == u64::MAX {
        return frame[0];
    }
    recurse(depth + 1).wrapping_add(frame[1])
}

fn deliberate_stack_overflow() -> TestResult {
    // The #PF on the guard page cannot be delivered on the exhausted stack,
    // so the CPU raises #DF, which runs on its own IST stack and reports.
    let v = recurse(0);
    Err(alloc::format!("recursion returned {v}"))
}

fn cpu_smep_smap_on_where_supported() -> TestResult {
    let supported = cpu::smep_smap_supported();
    let enabled = cpu::smep_smap_enabled();
    ensure!(
        supported == enabled,
        "SMEP/SMAP supported {supported:?} but enabled {enabled:?}"
    );
    log::info!("SMEP {}, SMAP {}", enabled.0, enabled.1);
    Ok(())
}

/// q35's fixed functions answer on bus 0: the host bridge (00:00.0,
/// 8086:29c0) and the ICH9 LPC bridge (00:1f.0, 8086:2918), which is
/// multi-function (SMBus and SATA follow it).
fn pci_bus0_has_the_q35_chipset() -> TestResult {
    use crate::arch::pci;
    let found = pci::scan_bus0();
    let has = |d: u8, f: u8, vendor: u16, device: u16| {
        found.iter().any(|x| {
            x.addr.device == d && x.addr.function == f && x.header.vendor == vendor && x.header.device == device
        })
    };
    ensure!(has(0, 0, 0x8086, 0x29c0), "no q35 host bridge at 00:00.0 in {found:?}");
    ensure!(has(31, 0, 0x8086, 0x2918), "no ICH9 LPC at 00:1f.0 in {found:?}");
    ensure!(
        found.iter().any(|x| x.addr.device == 31 && x.addr.function > 0),
        "LPC's other functions missing"
    );
    let host = found.iter().find(|x| x.addr.device == 0).ok_or("no device 0")?;
    ensure!(
        host.header.class == 6 && host.header.subclass == 0,
        "host bridge class {:?}",
        host.header
    );
    Ok(())
}

/// The link-transport measurement (docs/jobs.md): the shared-memory BAR of
/// an `ivshmem-plain` device, written and read by the guest in 1 MiB
/// copies; the bench script then checks the host sees what was written.
fn link_ivshmem_bandwidth() -> TestResult {
    use crate::arch::pci;
    use kcore::pci::{Bar, decode_bar};
    let dev = pci::scan_bus0()
        .into_iter()
        .find(|f| f.header.vendor == 0x1af4 && f.header.device == 0x1110)
        .ok_or("no ivshmem-plain device (1af4:1110) on bus 0")?;
    let bars: [u32; 6] = core::array::from_fn(|i| pci::read(dev.addr, 0x10 + 4 * i as u16));
    let Some(Ok(Bar::Memory { addr, .. })) = decode_bar(&bars, 2) else {
        return Err(alloc::format!("BAR2 is not memory: {bars:x?}"));
    };
    const SIZE: u64 = 4 << 20;
    // SAFETY: setting MEMORY_SPACE (command bit 1) makes the device decode
    // the BARs the firmware assigned; the device never masters the bus.
    unsafe { pci::write(dev.addr, 4, pci::read(dev.addr, 4) | 0x2) };
    // SAFETY: BAR2 of ivshmem is the shared memory region (QEMU
    // docs/specs/ivshmem-spec.rst), `SIZE` long as the run configures it,
    // and this test is its only user.
    let base = unsafe { paging::map_mmio(addr, SIZE) }.map_err(|e| alloc::format!("map BAR2: {e:?}"))?;
    let chunk: Vec<u64> = (0..(1 << 17))
        .map(|i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    let mb = chunk.len() * 8;
    let rounds = 64u64;
    let t0 = time::now_ns();
    for r in 0..rounds {
        let off = (r % (SIZE / mb as u64)) * mb as u64;
        // SAFETY: `off + mb <= SIZE`, inside the mapping; the region is
        // plain shared RAM, so a memcpy is a valid way to fill it.
        unsafe { core::ptr::copy_nonoverlapping(chunk.as_ptr() as *const u8, (base + off) as *mut u8, mb) };
    }
    let write_ns = time::now_ns() - t0;
    let mut back: Vec<u64> = alloc::vec![0; chunk.len()];
    let t1 = time::now_ns();
    for r in 0..rounds {
        let off = (r % (SIZE / mb as u64)) * mb as u64;
        // SAFETY: as above, reading.
        unsafe { core::ptr::copy_nonoverlapping((base + off) as *const u8, back.as_mut_ptr() as *mut u8, mb) };
    }
    let read_ns = time::now_ns() - t1;
    ensure!(back == chunk, "read back differs");
    // A marker for the host to check, at the start of the region.
    // SAFETY: inside the mapping.
    unsafe { core::ptr::copy_nonoverlapping(b"AETHSHM1".as_ptr(), base as *mut u8, 8) };
    let mib = (rounds * mb as u64) as f64 / (1 << 20) as f64;
    log::info!(
        "BENCH link_ivshmem_guest_write {:.1} MiB/s",
        mib / (write_ns as f64 / 1e9)
    );
    log::info!(
        "BENCH link_ivshmem_guest_read {:.1} MiB/s",
        mib / (read_ns as f64 / 1e9)
    );
    Ok(())
}

/// Bytes of the pattern the host sends in `link_host_echo`.
const ECHO_LEN: usize = 64 * 1024;

/// The guest half of tests/link.rs: says hello on ring 0, receives
/// `ECHO_LEN` bytes of a known pattern on ring 1 (through a ring much
/// smaller than that, so both sides wrap and wait), checks them, and
/// answers with their sum.
fn link_host_echo() -> TestResult {
    use crate::link;
    ensure!(link::present(), "no link (ivshmem device) on this machine");
    let hello = b"AETHER_LINK_HELLO\n";
    ensure!(link::write(hello) == Ok(hello.len()), "hello did not fit");
    let deadline = time::now_ns() + 30_000_000_000;
    let mut got: Vec<u8> = Vec::with_capacity(ECHO_LEN);
    let mut buf = [0u8; 1500];
    while got.len() < ECHO_LEN {
        let n = link::read(&mut buf).map_err(|e| alloc::format!("read: {e:?}"))?;
        got.extend_from_slice(&buf[..n]);
        if n == 0 {
            ensure!(
                time::now_ns() < deadline,
                "only {} of {ECHO_LEN} bytes from the host",
                got.len()
            );
            crate::task::sleep_until(time::now_ns() + 200_000);
        }
    }
    for (i, &b) in got.iter().enumerate() {
        ensure!(
            b == (i as u32).wrapping_mul(31).wrapping_add(7) as u8,
            "byte {i} is {b}"
        );
    }
    let sum: u64 = got.iter().map(|&b| b as u64).sum();
    let answer = alloc::format!("OK {sum}\n");
    ensure!(link::write(answer.as_bytes()) == Ok(answer.len()), "answer did not fit");
    Ok(())
}
