//! CMOS real-time-clock decoding: BCD/12-hour register formats and the
//! conversion of a UTC calendar date to Unix time.

/// Raw RTC registers (MC146818: seconds 0x00, minutes 0x02, hours 0x04,
/// day 0x07, month 0x08, year 0x09, century 0x32 where present, status B
/// 0x0B).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtcRegisters {
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub day: u8,
    pub month: u8,
    pub year: u8,
    pub century: u8,
    pub status_b: u8,
}

/// Status B bit 2: values are binary, not BCD.
const STATUS_B_BINARY: u8 = 1 << 2;
/// Status B bit 1: 24-hour mode.
const STATUS_B_24H: u8 = 1 << 1;
/// Hour register bit 7 in 12-hour mode: PM.
const HOUR_PM: u8 = 0x80;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    pub year: u32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

fn bcd(v: u8) -> Option<u8> {
    let (hi, lo) = (v >> 4, v & 0xf);
    (hi < 10 && lo < 10).then_some(hi * 10 + lo)
}

impl RtcRegisters {
    /// Decodes the registers; `None` for values no valid clock holds.
    pub fn decode(&self) -> Option<DateTime> {
        let binary = self.status_b & STATUS_B_BINARY != 0;
        let conv = |v: u8| if binary { Some(v) } else { bcd(v) };
        let pm = self.hours & HOUR_PM != 0;
        let mut hour = conv(self.hours & !HOUR_PM)?;
        if self.status_b & STATUS_B_24H == 0 {
            if !(1..=12).contains(&hour) {
                return None;
            }
            hour = match (hour, pm) {
                (12, false) => 0,
                (12, true) => 12,
                (h, true) => h + 12,
                (h, false) => h,
            };
        }
        let year2 = conv(self.year)? as u32;
        let century = match conv(self.century) {
            Some(c) if (19..=99).contains(&c) => c as u32,
            _ => 20, // no century register: assume 20xx
        };
        let dt = DateTime {
            year: century * 100 + year2,
            month: conv(self.month)?,
            day: conv(self.day)?,
            hour,
            minute: conv(self.minutes)?,
            second: conv(self.seconds)?,
        };
        dt.is_valid().then_some(dt)
    }
}

fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

impl DateTime {
    pub fn is_valid(&self) -> bool {
        self.year >= 1970
            && (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60
    }

    /// Seconds since 1970-01-01T00:00:00Z (days-from-civil, proleptic
    /// Gregorian calendar).
    pub fn unix_seconds(&self) -> u64 {
        let (y, m) = (self.year as i64, self.month as i64);
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + self.day as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        (days * 86_400 + self.hour as i64 * 3600 + self.minute as i64 * 60 + self.second as i64) as u64
    }

    /// The inverse of [`unix_seconds`](Self::unix_seconds).
    pub fn from_unix_seconds(t: u64) -> Self {
        let days = (t / 86_400) as i64;
        let rem = t % 86_400;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as u32;
        DateTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
        }
    }
}

/// ISO 8601 UTC, e.g. `2026-12-01T09:53:05Z`.
impl core::fmt::Display for DateTime {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs_bcd_24h() -> RtcRegisters {
        RtcRegisters {
            seconds: 0x05,
            minutes: 0x53,
            hours: 0x09,
            day: 0x01,
            month: 0x12,
            year: 0x26,
            century: 0x20,
            status_b: STATUS_B_24H,
        }
    }

    #[test]
    fn decodes_bcd_24_hour() {
        let dt = regs_bcd_24h().decode().unwrap();
        assert_eq!(dt.to_string(), "2026-12-01T09:53:05Z");
        assert_eq!(dt.unix_seconds(), 1_796_118_785);
    }

    #[test]
    fn decodes_binary_12_hour_pm_and_midnight() {
        let mut r = RtcRegisters {
            seconds: 59,
            minutes: 0,
            hours: HOUR_PM | 3,
            day: 29,
            month: 2,
            year: 24,
            century: 0,
            status_b: STATUS_B_BINARY,
        };
        assert_eq!(r.decode().unwrap().to_string(), "2024-02-29T15:00:59Z");
        r.hours = 12; // 12 AM
        assert_eq!(r.decode().unwrap().hour, 0);
        r.hours = HOUR_PM | 12;
        assert_eq!(r.decode().unwrap().hour, 12);
    }

    #[test]
    fn rejects_garbage_registers() {
        let mut r = regs_bcd_24h();
        r.minutes = 0x6a; // not BCD
        assert_eq!(r.decode(), None);
        let mut r = regs_bcd_24h();
        r.day = 0x31;
        r.month = 0x11; // November 31st
        assert_eq!(r.decode(), None);
        let mut r = regs_bcd_24h();
        r.status_b = 0;
        r.hours = 0x13; // 12-hour mode, hour 13
        assert_eq!(r.decode(), None);
        assert_eq!(
            RtcRegisters {
                status_b: 0xff,
                ..Default::default()
            }
            .decode(),
            None
        );
    }

    #[test]
    fn unix_time_round_trips_across_leap_years() {
        for t in [0u64, 951_782_400, 1_709_164_800, 4_102_444_799, 1_796_118_785] {
            let dt = DateTime::from_unix_seconds(t);
            assert!(dt.is_valid(), "{dt}");
            assert_eq!(dt.unix_seconds(), t, "{dt}");
        }
        assert_eq!(
            DateTime::from_unix_seconds(951_782_400).to_string(),
            "2000-02-29T00:00:00Z"
        );
    }
}
