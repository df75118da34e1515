//! The little JSON the bodies need (RFC 8259): strings escaped, objects of
//! string values, and RFC 3339 times from unix milliseconds.

use alloc::string::String;
use core::fmt::Write;

/// `s` as a JSON string (shared: [`aether_abi::json::string`]).
pub(super) use aether_abi::json::string;

/// `{"k":"v",...}` in the order given.
pub(super) fn object<'a>(out: &mut String, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) {
    out.push('{');
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, k);
        out.push(':');
        string(out, v);
    }
    out.push('}');
}

/// The last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z);
/// later times are written as it.
pub(super) const RFC3339_MAX_MS: u64 = 253_402_300_799_999;

/// `ms` after the unix epoch as RFC 3339 in UTC, the way Go's
/// `time.RFC3339Nano` writes it (Alertmanager's): the fraction without
/// trailing zeros and left out when zero (`2024-03-01T12:00:00.25Z`,
/// `2024-03-01T12:00:00Z`).
pub(super) fn rfc3339(out: &mut String, ms: u64) {
    let ms = ms.min(RFC3339_MAX_MS);
    let secs = ms / 1000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    let mut frac = ms % 1000;
    if frac != 0 {
        let mut digits = 3;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        let _ = write!(out, ".{frac:0digits$}");
    }
    out.push('Z');
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant,
/// "chrono-Compatible Low-Level Date Algorithms", `civil_from_days`, for
/// days >= 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}
