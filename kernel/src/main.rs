//! AetherOS kernel entry: brings the machine up in boot order and hands over
//! to the console, the kernel tests, or the boot benchmark. No logic lives
//! here; see docs/boot.md for the sequence and docs/architecture.md for the
//! module map.
#![no_std]
#![no_main]
#![feature(abi_x86_interrupt)]

extern crate alloc;

// The hardware base: the modules with `unsafe` (plus `ktest`, below).
mod arch;
mod mm;
mod platform;

// Everything above the base is safe code.
#[forbid(unsafe_code)]
mod block;
#[forbid(unsafe_code)]
mod config;
#[forbid(unsafe_code)]
mod fs;
#[forbid(unsafe_code)]
mod klog;
#[forbid(unsafe_code)]
mod link;
#[forbid(unsafe_code)]
mod panic;
#[forbid(unsafe_code)]
mod syscall;
#[forbid(unsafe_code)]
mod telemetry;
// The scheduler: safe code but for the one context switch (noted there).
mod task;
#[forbid(unsafe_code)]
mod time;
// Kernel tests exercise the base directly (unsafe allowed, each use noted).
mod ktest;

use aether_abi::boot::Mode;
use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::{BootInfo, entry_point};

const KERNEL_STACK_SIZE: u64 = 128 * 1024;

static BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    // Everything the bootloader maps goes in the upper half: the lower half
    // belongs to user processes (mm::user).
    config.mappings.dynamic_range_start = Some(0xffff_8000_0000_0000);
    config.kernel_stack_size = KERNEL_STACK_SIZE;
    config
};

entry_point!(kernel_main, config = &BOOTLOADER_CONFIG);

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    let entry_tsc = arch::cpu::rdtsc();
    arch::backtrace::init(arch::cpu::stack_pointer(), KERNEL_STACK_SIZE);
    arch::gdt::init();
    arch::idt::init();
    arch::cpu::enable_protection_features();
    let serial = arch::serial::init();
    time::phase_done("cpu_tables_serial");

    let tsc = time::calibrate_tsc(entry_tsc);
    time::phase_done("tsc_calibration");
    let (args, problem) = config::load();
    time::phase_done("cmdline");
    klog::init(args.log);
    if let Err(e) = serial {
        log::warn!("COM1 init: {e:?}");
    }
    if let Some(p) = problem {
        log::error!("{p}; using defaults");
    }
    log::debug!("cmdline '{}'", config::cmdline());
    if let Err(e) = mm::init(
        &boot_info.memory_regions,
        boot_info.physical_memory_offset.into_option(),
    ) {
        panic!("memory init failed: {e}");
    }
    time::phase_done("memory");
    let platform = platform::discover(boot_info.rsdp_addr.into_option());
    time::phase_done("acpi");
    if let Err(e) = platform::init_interrupts(platform) {
        panic!("interrupt controller init failed: {e}");
    }
    time::phase_done("interrupt_controllers");
    let tsc_hz = match tsc {
        Ok(hz) => hz,
        Err(e) => panic!("TSC calibration against the PIT failed: {e:?}"),
    };
    let apic_timer_hz = match time::calibrate_apic_timer() {
        Ok(hz) => hz,
        Err(e) => panic!("APIC timer calibration failed: {e:?}"),
    };
    time::start_tick(apic_timer_hz);
    time::phase_done("apic_timer");
    arch::cpu::enable_interrupts();

    // One line: this is on the way to the prompt, and formatting it is the
    // costliest boot phase under TCG (docs/benchmarks.md).
    log::info!(
        "tsc {} kHz, apic timer {} kHz, {} MiB usable",
        tsc_hz / 1_000,
        apic_timer_hz / 1_000,
        mm::frames::stats().total / 256,
    );
    time::phase_done("boot_log");

    link::init();
    time::phase_done("link");
    block::init();
    fs::init();
    arch::idt::set_user_page_fault_hook(fs::mmap::on_fault);
    time::phase_done("block");
    let ramdisk = boot_info
        .ramdisk_addr
        .into_option()
        .map(|addr| mm::phys::ramdisk(addr, boot_info.ramdisk_len));
    task::init_programs(ramdisk);
    task::init();
    time::phase_done("tasks");

    match args.mode {
        Mode::Console => {
            if task::spawn_kernel("[init]", kcore::sched::Priority::HIGHEST, task::init::run).is_none() {
                panic!("cannot start the init task");
            }
            if task::spawn_kernel(
                "[fs-sweep]",
                kcore::sched::Priority::new(1).unwrap_or(kcore::sched::Priority::LOWEST),
                fs::sweeper,
            )
            .is_none()
            {
                log::warn!("cannot start the file sweeper: ended processes' files are given back lazily");
            }
            task::idle()
        }
        Mode::Test(filter) => {
            ktest::set_filter(filter);
            if task::spawn_kernel("[ktest]", kcore::sched::Priority::HIGHEST, ktest::run_selected).is_none() {
                panic!("cannot start the kernel test task");
            }
            task::idle()
        }
        Mode::Bench => {
            // The console prints the ready marker and asks for power-off;
            // the phase timings follow then (syscall::proc_request).
            if let Err(e) = task::spawn("console", &["--boot-bench"], 2, aether_abi::syscall::GroupChoice::New) {
                panic!("cannot start the console: {e}");
            }
            task::idle()
        }
    }
}
