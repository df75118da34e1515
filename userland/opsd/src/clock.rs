//! opsd's wall clock: the kernel's boot time (the CMOS RTC, whole seconds)
//! plus the monotonic clock, moved forward to agree with the host's clock
//! as the bridge's timestamps show it.
//!
//! A job record mixes the two clocks: `started_ms` and `ended_ms` of a host
//! job are the bridge's, `created_ms` and `stop_requested_at_ms` opsd's. The
//! RTC has whole seconds only and its second is floored, so opsd's clock
//! starts up to a second behind the host's; uncorrected, a stop could read
//! as requested before the job started.
//!
//! Every host timestamp is a lower bound of the host's time when it
//! arrives (it was taken before it was sent). So when one is ahead of
//! opsd's clock, the clock moves forward by the difference; it never moves
//! back, and it never goes backwards as a whole (the monotonic clock only
//! grows and the correction only grows). A host clock that is behind
//! opsd's is not followed: nothing here can tell a late message from a slow
//! clock.

/// The largest correction taken in all: the RTC's floor costs under a
/// second (and reading it a little more); a host clock further ahead
/// disagrees with the RTC for another reason (it was set), and opsd keeps
/// its own.
pub const MAX_CORRECTION_MS: u64 = 2_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WallClock {
    boot_ms: u64,
    correction_ms: u64,
}

impl WallClock {
    /// A clock that reads `boot_ms` when the monotonic clock reads 0.
    pub fn new(boot_ms: u64) -> WallClock {
        WallClock {
            boot_ms,
            correction_ms: 0,
        }
    }

    /// Unix ms at monotonic `mono_ms`.
    pub fn now(&self, mono_ms: u64) -> u64 {
        self.boot_ms + self.correction_ms + mono_ms
    }

    /// A host timestamp that arrived at monotonic `mono_ms`: moves the
    /// clock forward to it if it is ahead (up to [`MAX_CORRECTION_MS`] in
    /// all). Returns the step taken.
    pub fn observe(&mut self, host_ms: u64, mono_ms: u64) -> u64 {
        let now = self.now(mono_ms);
        if host_ms <= now {
            return 0;
        }
        let step = (host_ms - now).min(MAX_CORRECTION_MS - self.correction_ms);
        self.correction_ms += step;
        step
    }

    /// The forward correction taken so far.
    pub fn correction_ms(&self) -> u64 {
        self.correction_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_behind_the_host_catches_up_and_never_goes_back() {
        let mut c = WallClock::new(1_000_000);
        assert_eq!(c.now(500), 1_000_500);
        // The host says 1_001_200 at our 1_000_500: 700 ms forward.
        assert_eq!(c.observe(1_001_200, 500), 700);
        assert_eq!(c.now(500), 1_001_200);
        // Older or equal host times change nothing.
        assert_eq!(c.observe(1_001_100, 600), 0);
        assert_eq!(c.observe(1_001_300, 600), 0);
        assert_eq!(c.now(600), 1_001_300);
        // Readings never go backwards across observations.
        let mut last = 0;
        for (i, host) in [5u64, 1_002_000, 3, 1_002_400, 1_002_401].into_iter().enumerate() {
            let mono = 700 + i as u64 * 100;
            c.observe(host, mono);
            assert!(c.now(mono) >= last);
            last = c.now(mono);
        }
    }

    #[test]
    fn a_host_clock_far_ahead_is_followed_only_up_to_the_rtcs_error() {
        let mut c = WallClock::new(0);
        assert_eq!(c.observe(1_000_000, 0), MAX_CORRECTION_MS);
        assert_eq!(c.observe(1_000_000, 10), 0);
        assert_eq!(c.correction_ms(), MAX_CORRECTION_MS);
        assert_eq!(c.now(10), MAX_CORRECTION_MS + 10);
    }
}
