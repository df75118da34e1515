//! A receiver's token bucket ([`super::RateLimit`]), in integer
//! arithmetic: a token is `per_ms` units of credit, a millisecond earns one
//! unit, the bucket holds `burst x per_ms` units (exact, no drift).

use super::RateLimit;

#[derive(Clone, Copy, Debug)]
pub(super) struct Bucket {
    credit: u64,
    /// The newest time seen (credit is earned only forwards).
    last_ms: Option<u64>,
    /// Notifications refused since the last one that passed.
    pub suppressed: u64,
}

fn capacity(rate: RateLimit) -> u64 {
    u64::from(rate.burst).saturating_mul(rate.per_ms)
}

impl Bucket {
    /// Full.
    pub fn new(rate: RateLimit) -> Self {
        Bucket {
            credit: capacity(rate),
            last_ms: None,
            suppressed: 0,
        }
    }

    /// The same bucket under a new rate (a new configuration): no fuller
    /// than the new one can be.
    pub fn carried(self, rate: RateLimit) -> Self {
        Bucket {
            credit: self.credit.min(capacity(rate)),
            ..self
        }
    }

    /// Takes a token at `now_ms` if there is one.
    pub fn take(&mut self, rate: RateLimit, now_ms: u64) -> bool {
        if rate.per_ms == 0 {
            return true;
        }
        if let Some(last) = self.last_ms {
            let earned = now_ms.saturating_sub(last);
            self.credit = self.credit.saturating_add(earned).min(capacity(rate));
        }
        self.last_ms = Some(self.last_ms.map_or(now_ms, |last| last.max(now_ms)));
        if self.credit >= rate.per_ms {
            self.credit -= rate.per_ms;
            true
        } else {
            false
        }
    }
}
