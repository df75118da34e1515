//! JSON strings, escaped once for every writer of JSON by hand (opsd's
//! exports and alert bodies, the console's `--json` lines).

use alloc::string::String;
use core::fmt::Write;

/// `s` as a JSON string (RFC 8259 §7): `"` and `\` escaped, control
/// characters as `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX`, and U+2028 and
/// U+2029 as `\u2028`, `\u2029` (valid JSON either way; escaped, the body
/// is also a valid JavaScript literal).
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
