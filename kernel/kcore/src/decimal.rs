//! Decimal rendering without `core::fmt`, for the log prefix: under TCG the
//! first run of `core::fmt`'s padding paths costs more boot time than the
//! whole line's output (docs/benchmarks.md).

/// Renders `n` right-aligned in at least `width` bytes, padded with `fill`,
/// into `out`; returns the bytes written (`out` must hold `max(width, 20)`).
pub fn render(n: u64, width: usize, fill: u8, out: &mut [u8]) -> usize {
    let mut digits = [0u8; 20];
    let mut len = 0;
    let mut v = n;
    loop {
        digits[len] = b'0' + (v % 10) as u8;
        len += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let total = len.max(width);
    out[..total - len].fill(fill);
    for (i, d) in digits[..len].iter().rev().enumerate() {
        out[total - len + i] = *d;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: u64, width: usize, fill: u8) -> std::string::String {
        let mut buf = [0u8; 32];
        let len = render(n, width, fill, &mut buf);
        std::string::String::from_utf8(buf[..len].to_vec()).unwrap()
    }

    #[test]
    fn matches_core_fmt() {
        for n in [0u64, 7, 42, 999_999, 1_000_000, u64::MAX] {
            assert_eq!(r(n, 5, b' '), format!("{n:5}"));
            assert_eq!(r(n, 6, b'0'), format!("{n:06}"));
            assert_eq!(r(n, 0, b' '), format!("{n}"));
        }
    }
}
