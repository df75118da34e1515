//! The monotonic clock: the TSC, calibrated at boot against the PIT, read as
//! nanoseconds since kernel entry; never goes backwards. Also the periodic
//! local APIC tick and the boot wall-clock time from the CMOS RTC.

use core::sync::atomic::{AtomicU64, Ordering};

use kcore::clock::{self, CalibrationError, PIT_HZ, TscClock};
use spin::Once;

use crate::arch::{apic, cmos, cpu, idt, pit};

/// Length of the calibration window: it counts directly against boot time.
/// The error comes only from the two edge readings, each a (TSC, PIT count)
/// pair taken back to back (the tightest of a few tries, so a host
/// preemption inside a pair is discarded): with the PIT's 0.84 us tick that
/// is at most 0.34% over 0.5 ms, checked against 50 ms of the PIT and of the
/// ACPI PM timer by the `clock_agrees_with_*` kernel tests.
const CALIBRATION_NS: u64 = 500_000;
/// Tries per edge reading.
const EDGE_TRIES: usize = 3;
/// Calibration windows tried before giving up.
const CALIBRATION_TRIES: usize = 5;
/// Consecutive reads of an unchanging PIT count after which there is no PIT
/// (a tick is 0.84 us; a port read takes well under 1 us even under TCG).
const PIT_STUCK_READS: u32 = 100_000;
/// The periodic tick (100 Hz).
pub const TICK_NS: u64 = 10_000_000;

static CLOCK: Once<TscClock> = Once::new();
static LAST_NS: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);
static BOOT_UNIX_S: Once<u64> = Once::new();
static APIC_TIMER_HZ: AtomicU64 = AtomicU64::new(0);
static TIMER_HOOK: Once<fn()> = Once::new();

/// Window for measuring the APIC timer against the calibrated TSC (at
/// 62.5 MHz, 6250 counts: 0.02% per count of edge error).
const APIC_WINDOW_NS: u64 = 100_000;

/// Calibrates the TSC in one PIT window; the clock's zero is `entry_tsc`
/// (the TSC at kernel entry). Needs no other device, so it runs first and
/// every log line after it has a real timestamp.
pub fn calibrate_tsc(entry_tsc: u64) -> Result<u64, CalibrationError> {
    let window = clock::pit_ticks_for_ns(CALIBRATION_NS).ok_or(CalibrationError::NoReferenceTicks)?;
    let mut result = Err(CalibrationError::NoReferenceTicks);
    for _ in 0..CALIBRATION_TRIES {
        result = measure_tsc(window);
        match result {
            Ok(hz) => {
                CLOCK.call_once(|| TscClock::new(hz, entry_tsc));
                return Ok(hz);
            }
            Err(CalibrationError::CounterStalled) => break, // no PIT: retrying will not help
            Err(_) => {}
        }
    }
    result
}

/// One calibration window of `window` PIT ticks.
fn measure_tsc(window: u16) -> Result<u64, CalibrationError> {
    let pit = pit::Countdown::start();
    let (tsc0, count0) = tsc_pair(|| pit.read());
    let (mut last_tsc, mut last_count, mut largest_gap, mut unchanged) = (tsc0, count0, 0, 0);
    while count0.wrapping_sub(last_count) < window {
        let count = pit.read();
        let now = cpu::rdtsc();
        largest_gap = largest_gap.max(now - last_tsc);
        last_tsc = now;
        if count == last_count {
            unchanged += 1;
            if unchanged > PIT_STUCK_READS {
                return Err(CalibrationError::CounterStalled);
            }
        } else {
            unchanged = 0;
            last_count = count;
        }
    }
    let (tsc1, count1) = tsc_pair(|| pit.read());
    let elapsed = tsc1.wrapping_sub(tsc0);
    if clock::window_disturbed(largest_gap, elapsed) {
        return Err(CalibrationError::Disturbed);
    }
    clock::measure_hz(elapsed, count0.wrapping_sub(count1) as u64, PIT_HZ)
}

/// Reads `other` between two TSC reads, a few times, and keeps the tightest
/// pair: `(TSC at the read, value)`. Under TCG, the first run of any code
/// pays for its translation, and the host may preempt QEMU; both show up
/// as a wide pair and are discarded.
fn tsc_pair<T>(mut other: impl FnMut() -> T) -> (u64, T) {
    let mut best: Option<(u64, u64, T)> = None;
    for _ in 0..EDGE_TRIES {
        let before = cpu::rdtsc();
        let value = other();
        let after = cpu::rdtsc();
        let spread = after - before;
        if best.as_ref().is_none_or(|b| spread < b.0) {
            best = Some((spread, before + spread / 2, value));
        }
    }
    let (_, tsc, value) = best.expect("EDGE_TRIES > 0");
    (tsc, value)
}

/// Measures the local APIC timer's rate (after its divider) against the
/// calibrated TSC.
pub fn calibrate_apic_timer() -> Result<u64, CalibrationError> {
    let hz = tsc_hz();
    apic::start_free_running();
    let (tsc0, count0) = tsc_pair(apic::timer_count);
    let end = tsc0 + CLOCK.get().map_or(0, |c| c.ticks_in(APIC_WINDOW_NS));
    while cpu::rdtsc() < end {
        core::hint::spin_loop();
    }
    let (tsc1, count1) = tsc_pair(apic::timer_count);
    // The APIC timer counts down.
    clock::measure_hz(count0.saturating_sub(count1) as u64, tsc1 - tsc0, hz)
}

/// Nanoseconds since kernel entry (0 before calibration). Monotonic: a
/// reading never precedes an earlier one, even across CPUs later.
pub fn now_ns() -> u64 {
    let Some(c) = CLOCK.get() else { return 0 };
    let ns = c.ns_at(cpu::rdtsc());
    let prev = LAST_NS.fetch_max(ns, Ordering::Relaxed);
    ns.max(prev)
}

pub fn tsc_hz() -> u64 {
    CLOCK.get().map_or(0, |c| c.hz())
}

fn on_tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
    if TIMER_HOOK.get().is_some() {
        refine_apic_rate();
    }
    // The one-shot has fired: nothing is armed until the hook arms again.
    ARMED_NS.store(0, Ordering::Relaxed);
    if let Some(hook) = TIMER_HOOK.get() {
        hook();
    }
}

/// When the armed one-shot was programmed, and for what count.
static ARMED_AT_NS: AtomicU64 = AtomicU64::new(0);
static ARMED_COUNT: AtomicU64 = AtomicU64::new(0);
/// The deadline the one-shot is armed for (0: none).
static ARMED_NS: AtomicU64 = AtomicU64::new(0);

/// The boot-time APIC calibration (100 us) is off by a few percent under
/// TCG, which makes every one-shot fire early and take a second interrupt.
/// Each expiry measures the true rate (count over elapsed TSC time) and the
/// estimate moves an eighth of the way towards it (`kcore::clock`).
fn refine_apic_rate() {
    let elapsed = now_ns().saturating_sub(ARMED_AT_NS.load(Ordering::Relaxed));
    let count = ARMED_COUNT.load(Ordering::Relaxed);
    let hz = APIC_TIMER_HZ.load(Ordering::Relaxed);
    if let Some(better) = clock::refine_rate(hz, count, elapsed) {
        APIC_TIMER_HZ.store(better, Ordering::Relaxed);
    }
}

/// Switches the timer to one-shot (tickless) mode: from now on it fires
/// only when [`arm_timer`] asks, and each firing runs `hook` (the
/// scheduler's, which arms the next deadline).
pub fn use_oneshot(hook: fn()) {
    TIMER_HOOK.call_once(|| hook);
    apic::set_oneshot();
    arm_timer(now_ns() + TICK_NS);
}

/// Makes the one-shot timer fire no later than monotonic time `deadline_ns`
/// (at once if it has passed). A timer already armed for an earlier moment
/// that is still ahead is left alone: when it fires, the hook arms for what
/// is due then. That keeps device writes off most context switches.
pub fn arm_timer(deadline_ns: u64) {
    let now = now_ns();
    let armed = ARMED_NS.load(Ordering::Relaxed);
    if armed > now && armed <= deadline_ns {
        return;
    }
    let hz = APIC_TIMER_HZ.load(Ordering::Relaxed);
    let delta = deadline_ns.saturating_sub(now);
    let count = (delta as u128 * hz as u128 / 1_000_000_000).clamp(1, u32::MAX as u128) as u32;
    ARMED_AT_NS.store(now, Ordering::Relaxed);
    ARMED_COUNT.store(count as u64, Ordering::Relaxed);
    ARMED_NS.store(deadline_ns.max(now + 1), Ordering::Relaxed);
    apic::arm_oneshot(count);
}

/// Starts the periodic tick.
pub fn start_tick(apic_timer_hz: u64) {
    APIC_TIMER_HZ.store(apic_timer_hz, Ordering::Relaxed);
    idt::set_irq_handler(idt::Irq::Timer, on_tick);
    match clock::periodic_count(apic_timer_hz, TICK_NS) {
        Some(count) => apic::start_periodic(count),
        None => log::error!("APIC timer at {apic_timer_hz} Hz cannot make a {TICK_NS} ns tick"),
    }
}

/// Timer ticks since [`start_tick`].
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

const MAX_PHASES: usize = 16;

/// Boot phase boundaries: `(name, TSC at its end)`, for the boot benchmark.
static PHASES: spin::Mutex<heapless::Vec<(&'static str, u64), MAX_PHASES>> = spin::Mutex::new(heapless::Vec::new());

/// Marks the end of boot phase `name` (no-op once the table is full).
pub fn phase_done(name: &'static str) {
    let _ = PHASES.lock().push((name, cpu::rdtsc()));
}

/// Each phase's duration in nanoseconds, in boot order (the first phase
/// starts at kernel entry).
pub fn phases(mut each: impl FnMut(&'static str, u64)) {
    let Some(c) = CLOCK.get() else { return };
    let mut last = c.epoch();
    for &(name, tsc) in PHASES.lock().iter() {
        each(name, c.ns_at(tsc) - c.ns_at(last));
        last = tsc;
    }
}

/// Unix seconds at kernel entry (0 if the RTC is unreadable): the CMOS RTC
/// read on first use, minus the uptime then. Reading it lazily keeps the
/// RTC off the boot path; the result is the same to the second.
pub fn boot_unix_s() -> u64 {
    *BOOT_UNIX_S.call_once(|| match cmos::read_rtc().and_then(|r| r.decode()) {
        Some(now) => now.unix_seconds().saturating_sub(now_ns() / 1_000_000_000),
        None => {
            log::warn!("CMOS RTC unreadable: boot time unknown");
            0
        }
    })
}
