//! TSC calibration and tick -> nanosecond conversion.
//!
//! Under TCG there is no CPUID leaf 0x15/0x16 to read the TSC frequency from,
//! so the kernel counts TSC ticks across a window timed by a reference clock
//! of known frequency (the PIT) and derives the rate here.

/// The PIT's input clock, Hz (Intel 8254 on the PC platform).
pub const PIT_HZ: u64 = 1_193_182;

const NS_PER_S: u64 = 1_000_000_000;
/// Fixed-point shift of [`TscClock::mult`].
const SHIFT: u32 = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalibrationError {
    /// The reference window was empty.
    NoReferenceTicks,
    /// The counter did not advance (or went backwards) across the window.
    CounterStalled,
    /// The derived frequency is outside 1 MHz ..= 100 GHz.
    Implausible(u64),
    /// The window was interrupted for so long that the reference counter
    /// may have wrapped unseen (see [`window_disturbed`]).
    Disturbed,
}

/// Whether a calibration window must be measured again: its largest gap
/// between two consecutive polls is more than half of the whole window. A
/// stall long enough to wrap a 16-bit PIT count (55 ms) inside a 1 ms window
/// always trips this; ordinary polling gaps are far below it.
pub fn window_disturbed(largest_poll_gap: u64, window: u64) -> bool {
    largest_poll_gap > window / 2
}

/// Frequency of a counter measured against a reference clock:
/// `counter_delta` counts during `ref_ticks` ticks of a `ref_hz` clock.
pub fn measure_hz(counter_delta: u64, ref_ticks: u64, ref_hz: u64) -> Result<u64, CalibrationError> {
    if ref_ticks == 0 || ref_hz == 0 {
        return Err(CalibrationError::NoReferenceTicks);
    }
    if counter_delta == 0 {
        return Err(CalibrationError::CounterStalled);
    }
    let hz = (counter_delta as u128 * ref_hz as u128 / ref_ticks as u128) as u64;
    if !(1_000_000..=100_000_000_000).contains(&hz) {
        return Err(CalibrationError::Implausible(hz));
    }
    Ok(hz)
}

/// Converts counter ticks since an epoch to nanoseconds with one multiply
/// and shift (no division on the read path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscClock {
    hz: u64,
    epoch: u64,
    /// `NS_PER_S << SHIFT / hz`, rounded down.
    mult: u64,
}

impl TscClock {
    /// `hz` must be a [`measure_hz`] result (>= 1 MHz, so `mult` fits).
    pub const fn new(hz: u64, epoch: u64) -> Self {
        let mult = ((NS_PER_S as u128) << SHIFT) / hz as u128;
        TscClock {
            hz,
            epoch,
            mult: mult as u64,
        }
    }

    pub const fn hz(&self) -> u64 {
        self.hz
    }

    pub const fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Nanoseconds from `epoch` to `tsc`; 0 for a reading before the epoch.
    pub const fn ns_at(&self, tsc: u64) -> u64 {
        let ticks = tsc.saturating_sub(self.epoch);
        ((ticks as u128 * self.mult as u128) >> SHIFT) as u64
    }

    /// Counter ticks in `ns` nanoseconds (for deadlines), rounded up.
    pub const fn ticks_in(&self, ns: u64) -> u64 {
        ((ns as u128 * self.hz as u128).div_ceil(NS_PER_S as u128)) as u64
    }
}

/// PIT input-clock ticks in `ns` nanoseconds, for programming a reference
/// window. `None` if it does not fit the PIT's 16-bit counter.
pub fn pit_ticks_for_ns(ns: u64) -> Option<u16> {
    let ticks = (ns as u128 * PIT_HZ as u128 / NS_PER_S as u128) as u64;
    u16::try_from(ticks).ok().filter(|&t| t > 0)
}

/// Nanoseconds covered by `ticks` PIT ticks.
pub fn pit_ticks_to_ns(ticks: u64) -> u64 {
    (ticks as u128 * NS_PER_S as u128 / PIT_HZ as u128) as u64
}

/// Initial count for a periodic timer of `counter_hz` firing every
/// `period_ns`; `None` if it does not fit 32 bits or is zero.
pub fn periodic_count(counter_hz: u64, period_ns: u64) -> Option<u32> {
    let count = counter_hz as u128 * period_ns as u128 / NS_PER_S as u128;
    u32::try_from(count).ok().filter(|&c| c > 0)
}

/// A timer's rate, refined from one expiry: it was programmed for `count`
/// ticks and fired `elapsed_ns` later (by a trusted clock). An interrupt can
/// only arrive late (held off while interrupts are masked), which reads as a
/// slower timer; so the estimate moves an eighth of the way up towards a
/// faster measurement but only a 64th down towards a slower one. None when
/// the sample says nothing: shorter than 200 us, or more than 25% from the
/// estimate (a long delay, not a rate).
pub fn refine_rate(hz: u64, count: u64, elapsed_ns: u64) -> Option<u64> {
    if hz == 0 || elapsed_ns < 200_000 {
        return None;
    }
    let measured = (count as u128 * NS_PER_S as u128 / elapsed_ns as u128).min(u64::MAX as u128) as u64;
    if measured.abs_diff(hz) > hz / 4 {
        return None;
    }
    Some(if measured >= hz {
        hz + (measured - hz) / 8
    } else {
        hz - (hz - measured) / 64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_rate_refinement_converges_and_ignores_outliers() {
        // Calibrated 4.5% low, as seen under TCG; true rate 62.5 MHz.
        let truth = 62_500_000u64;
        let mut hz = 59_700_000u64;
        for _ in 0..40 {
            let count = hz / 1000; // programmed for 1 ms at the estimate
            let elapsed = count * NS_PER_S / truth;
            hz = refine_rate(hz, count, elapsed).unwrap();
        }
        assert!(hz.abs_diff(truth) < truth / 1000, "{hz}");
        // Too short, or a delayed interrupt (30% late): ignored.
        assert_eq!(refine_rate(hz, 100, 1_000), None);
        assert_eq!(refine_rate(hz, hz / 1000, 1_500_000), None);
        // A 10% late interrupt moves the estimate only a 64th of that.
        let late = refine_rate(hz, hz / 1000, 1_100_000).unwrap();
        assert!(late < hz && hz - late < hz / 500, "{hz} -> {late}");
        assert_eq!(refine_rate(0, 1, 1_000_000), None);
        // No overflow at the extremes.
        assert!(refine_rate(u64::MAX / 2, u32::MAX as u64, 200_000).is_none());
    }

    #[test]
    fn measures_frequency_from_a_pit_window() {
        // 2.5 GHz TSC over 2 ms of PIT ticks.
        let ref_ticks = pit_ticks_for_ns(2_000_000).unwrap() as u64;
        let delta = 2_500_000_000u64 * ref_ticks / PIT_HZ;
        let hz = measure_hz(delta, ref_ticks, PIT_HZ).unwrap();
        assert!(hz.abs_diff(2_500_000_000) < 2_500_000_000 / 100_000, "{hz}");
    }

    #[test]
    fn calibration_rejects_nonsense() {
        assert_eq!(measure_hz(100, 0, PIT_HZ), Err(CalibrationError::NoReferenceTicks));
        assert_eq!(measure_hz(0, 10, PIT_HZ), Err(CalibrationError::CounterStalled));
        assert_eq!(measure_hz(1, 1_193_182, PIT_HZ), Err(CalibrationError::Implausible(1)));
        assert!(matches!(
            measure_hz(u64::MAX, 1, PIT_HZ),
            Err(CalibrationError::Implausible(_))
        ));
    }

    #[test]
    fn converts_ticks_to_ns_exactly_at_round_rates() {
        let c = TscClock::new(1_000_000_000, 0);
        assert_eq!(c.ns_at(1), 1);
        assert_eq!(c.ns_at(1_000_000_000), 1_000_000_000);
        let c = TscClock::new(2_000_000_000, 500);
        assert_eq!(c.ns_at(500), 0);
        assert_eq!(c.ns_at(2_000_000_500), 1_000_000_000);
    }

    #[test]
    fn conversion_error_is_below_one_ppm_over_a_year() {
        let hz = 2_893_437_011; // an awkward rate
        let c = TscClock::new(hz, 0);
        let year_ticks = hz * 86_400 * 365;
        let exact = year_ticks as u128 * 1_000_000_000 / hz as u128;
        let got = c.ns_at(year_ticks) as u128;
        assert!(exact.abs_diff(got) * 1_000_000 <= exact, "{exact} vs {got}");
    }

    #[test]
    fn a_stalled_window_is_measured_again() {
        assert!(!window_disturbed(10, 1_000));
        assert!(!window_disturbed(500, 1_000));
        assert!(window_disturbed(501, 1_000));
        // A 60 ms stall in a 1 ms window.
        assert!(window_disturbed(60_000_000, 61_000_000));
    }

    #[test]
    fn ns_is_monotonic_in_ticks_and_saturates_before_epoch() {
        let c = TscClock::new(3_000_000_007, 1_000);
        assert_eq!(c.ns_at(0), 0);
        let mut last = 0;
        for t in (1_000..2_000_000).step_by(997) {
            let ns = c.ns_at(t);
            assert!(ns >= last);
            last = ns;
        }
    }

    #[test]
    fn ticks_in_inverts_ns_at() {
        let c = TscClock::new(2_400_000_000, 0);
        let t = c.ticks_in(1_500);
        assert_eq!(t, 3_600);
        assert!(c.ns_at(t) >= 1_499);
    }

    #[test]
    fn pit_window_limits() {
        assert_eq!(pit_ticks_for_ns(1_000_000), Some(1_193));
        assert_eq!(pit_ticks_for_ns(50_000_000), Some(59_659));
        assert_eq!(pit_ticks_for_ns(60_000_000), None, "over 16 bits");
        assert_eq!(pit_ticks_for_ns(0), None);
        assert_eq!(pit_ticks_to_ns(1_193_182), 1_000_000_000);
    }

    #[test]
    fn periodic_timer_counts() {
        assert_eq!(periodic_count(1_000_000_000, 10_000_000), Some(10_000_000));
        assert_eq!(periodic_count(62_500_000, 1_000_000), Some(62_500));
        assert_eq!(periodic_count(1, 1), None);
        assert_eq!(periodic_count(u64::MAX, 1_000_000_000), None);
    }
}
