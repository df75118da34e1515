//! The manifest and index files (the format in the header of `artifacts`):
//! encoding, and decoding of untrusted bytes that never panics and names
//! every fault.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};
use core::iter::Peekable;
use core::str::Split;

use aether_abi::crc;

use super::{Aliases, ArtifactError, Digest, Hasher, Key, Kind, METRICS_MAX, NAME_MAX, VERSIONS_MAX, paths};

/// The format version both files carry on their first line.
pub const FORMAT_VERSION: u32 = 1;
/// The first word of a manifest.
pub const MANIFEST_MAGIC: &str = "aether-artifact";
/// The first word of an index.
pub const INDEX_MAGIC: &str = "aether-artifact-index";
/// A manifest's bytes at most (the largest one the bounds allow is under
/// 2.5 KiB).
pub const MANIFEST_MAX: usize = 4096;
/// An index's bytes at most: a header and [`VERSIONS_MAX`] lines of at
/// most 150 bytes.
pub const INDEX_MAX: usize = 512 + VERSIONS_MAX as usize * 160;

const _: () = assert!(NAME_MAX == 64 && METRICS_MAX == 16);

/// One version's manifest, `/artifacts/<job>/<kind>/<name>/v<N>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// The job id, the kind and the name.
    pub key: Key,
    /// From 1.
    pub version: u32,
    pub digest: Digest,
    /// The object's bytes.
    pub size: u64,
    pub created_at_ms: u64,
    /// The training step the artifact was saved at, if known.
    pub step: Option<u64>,
    /// At most [`METRICS_MAX`], names unique, in the order offered.
    pub metrics: Vec<(String, f64)>,
    pub aliases: Aliases,
}

impl Manifest {
    /// Where the manifest lives.
    pub fn path(&self) -> String {
        paths::manifest_path(&self.key, self.version)
    }

    /// The file's bytes (text).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        write_header(&mut out, MANIFEST_MAGIC, &self.key);
        let _ = writeln!(out, "version {}", self.version);
        let _ = writeln!(out, "digest {}", self.digest);
        let _ = writeln!(out, "size {}", self.size);
        let _ = writeln!(out, "created_ms {}", self.created_at_ms);
        match self.step {
            Some(step) => {
                let _ = writeln!(out, "step {step}");
            }
            None => out.push_str("step -\n"),
        }
        for (name, value) in &self.metrics {
            let _ = write!(out, "metric {name} ");
            let _ = crate::prom::write_float(&mut out, *value);
            out.push('\n');
        }
        let _ = writeln!(out, "aliases {}", self.aliases);
        seal(&mut out);
        out
    }

    /// Decodes a manifest file (untrusted: any bytes give a manifest or a
    /// [`DecodeError`]).
    pub fn decode(bytes: &[u8]) -> Result<Manifest, DecodeError> {
        let mut lines = Lines::open(bytes, MANIFEST_MAX)?;
        let key = lines.header(MANIFEST_MAGIC)?;
        let version = lines.number("version")?;
        let version = u32::try_from(version).map_err(|_| lines.error(Reason::Number("version")))?;
        if version == 0 {
            return Err(lines.error(Reason::VersionZero));
        }
        let digest = lines.field("digest")?;
        let digest = Digest::from_hex(digest).map_err(|_| lines.error(Reason::Digest))?;
        let size = lines.number("size")?;
        let created_at_ms = lines.number("created_ms")?;
        let step = match lines.field("step")? {
            "-" => None,
            text => Some(parse_number(text).ok_or(lines.error(Reason::Number("step")))?),
        };
        let mut metrics: Vec<(&str, f64)> = Vec::new();
        while lines.next_is("metric") {
            let text = lines.field("metric")?;
            let (name, value) = text.split_once(' ').ok_or(lines.error(Reason::MetricSyntax))?;
            crate::metrics::check_name(name).map_err(|_| lines.error(Reason::MetricName))?;
            let value: f64 = value.parse().map_err(|_| lines.error(Reason::MetricValue))?;
            if metrics.iter().any(|(n, _)| *n == name) {
                return Err(lines.error(Reason::MetricDuplicate));
            }
            if metrics.len() == METRICS_MAX {
                return Err(lines.error(Reason::TooManyMetrics));
            }
            metrics.push((name, value));
        }
        let aliases = lines.field("aliases")?;
        let aliases = parse_aliases(aliases).map_err(|r| lines.error(r))?;
        lines.end()?;
        let metrics = metrics
            .into_iter()
            .map(|(name, value)| (String::from(name), value))
            .collect();
        Ok(Manifest {
            key,
            version,
            digest,
            size,
            created_at_ms,
            step,
            metrics,
            aliases,
        })
    }

    /// Checks an object read back against this manifest (size, then
    /// digest): `Ok` only for the very bytes the manifest names.
    pub fn verify(&self, hasher: Hasher) -> Result<(), ArtifactError> {
        if hasher.len() != self.size {
            return Err(ArtifactError::SizeMismatch {
                expected: self.size,
                found: hasher.len(),
            });
        }
        super::verify(&self.digest, hasher).map(|_| ())
    }
}

/// An artifact's listing, `/artifacts/<job>/<kind>/<name>/index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Index {
    pub key: Key,
    /// In increasing version order.
    pub entries: Vec<IndexEntry>,
}

/// One line of an index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub version: u32,
    pub digest: Digest,
    pub size: u64,
    pub created_at_ms: u64,
    pub aliases: Aliases,
}

impl Index {
    pub fn path(&self) -> String {
        paths::index_path(&self.key)
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        write_header(&mut out, INDEX_MAGIC, &self.key);
        for e in &self.entries {
            let _ = writeln!(
                out,
                "version {} {} {} {} {}",
                e.version, e.digest, e.size, e.created_at_ms, e.aliases
            );
        }
        seal(&mut out);
        out
    }

    /// Decodes an index file (untrusted, as [`Manifest::decode`]).
    pub fn decode(bytes: &[u8]) -> Result<Index, DecodeError> {
        let mut lines = Lines::open(bytes, INDEX_MAX)?;
        let key = lines.header(INDEX_MAGIC)?;
        let mut entries: Vec<IndexEntry> = Vec::new();
        while lines.next_is("version") {
            let text = lines.field("version")?;
            let entry = parse_entry(text).map_err(|r| lines.error(r))?;
            if entries.last().is_some_and(|last| last.version >= entry.version) {
                return Err(lines.error(Reason::VersionOrder));
            }
            if entries.len() == VERSIONS_MAX as usize {
                return Err(lines.error(Reason::TooManyVersions));
            }
            entries.push(entry);
        }
        lines.end()?;
        Ok(Index { key, entries })
    }
}

fn parse_entry(text: &str) -> Result<IndexEntry, Reason> {
    let mut words = text.split(' ');
    let mut word = || words.next().ok_or(Reason::EntrySyntax);
    let version = parse_number(word()?).and_then(|v| u32::try_from(v).ok());
    let version = version.ok_or(Reason::Number("version"))?;
    if version == 0 {
        return Err(Reason::VersionZero);
    }
    let digest = Digest::from_hex(word()?).map_err(|_| Reason::Digest)?;
    let size = parse_number(word()?).ok_or(Reason::Number("size"))?;
    let created_at_ms = parse_number(word()?).ok_or(Reason::Number("created_ms"))?;
    let aliases = parse_aliases(word()?)?;
    if words.next().is_some() {
        return Err(Reason::EntrySyntax);
    }
    Ok(IndexEntry {
        version,
        digest,
        size,
        created_at_ms,
        aliases,
    })
}

fn write_header(out: &mut String, magic: &str, key: &Key) {
    let _ = writeln!(out, "{magic} {FORMAT_VERSION}");
    let _ = writeln!(out, "job {}", key.job_id());
    let _ = writeln!(out, "kind {}", key.kind());
    let _ = writeln!(out, "name {}", key.name());
}

/// Appends the `crc32` line over everything before it.
fn seal(out: &mut String) {
    let sum = crc32(out.as_bytes());
    let _ = writeln!(out, "crc32 {sum:08x}");
}

fn crc32(bytes: &[u8]) -> u32 {
    !crc::update(&crc::IEEE, !0, bytes.iter().copied())
}

/// Decimal digits only, no leading zero but for `0` itself, within `u64`.
fn parse_number(text: &str) -> Option<u64> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

fn parse_aliases(text: &str) -> Result<Aliases, Reason> {
    let mut aliases = Aliases::default();
    if text == "-" {
        return Ok(aliases);
    }
    for name in text.split(',') {
        let flag = match name {
            "latest" => &mut aliases.latest,
            "best" => &mut aliases.best,
            "pinned" => &mut aliases.pinned,
            _ => return Err(Reason::Alias),
        };
        if *flag {
            return Err(Reason::AliasDuplicate);
        }
        *flag = true;
    }
    Ok(aliases)
}

/// A file's lines after the checks that need the whole file (size, end,
/// UTF-8, checksum), with the number of the line being read.
struct Lines<'a> {
    lines: Peekable<Split<'a, char>>,
    /// The number (from 1) of the last line taken.
    line: usize,
}

impl<'a> Lines<'a> {
    fn open(bytes: &'a [u8], max: usize) -> Result<Lines<'a>, DecodeError> {
        let at = |line: usize, reason: Reason| DecodeError { line, reason };
        if bytes.len() > max {
            return Err(at(0, Reason::TooLarge));
        }
        if bytes.is_empty() {
            return Err(at(0, Reason::Empty));
        }
        let text = core::str::from_utf8(bytes).map_err(|e| {
            let line = 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
            at(line, Reason::NotUtf8)
        })?;
        let count = text.matches('\n').count();
        let Some(body) = text.strip_suffix('\n') else {
            return Err(at(count + 1, Reason::Truncated));
        };
        let (body, last) = match body.rfind('\n') {
            Some(i) => (&text[..=i], &body[i + 1..]),
            None => ("", body),
        };
        let Some(stored) = last.strip_prefix("crc32 ") else {
            return Err(at(count, Reason::ChecksumMissing));
        };
        let stored = parse_hex32(stored).ok_or(at(count, Reason::ChecksumSyntax))?;
        let computed = crc32(body.as_bytes());
        if stored != computed {
            return Err(at(count, Reason::ChecksumMismatch { stored, computed }));
        }
        let body = body.strip_suffix('\n').unwrap_or(body);
        Ok(Lines {
            lines: body.split('\n').peekable(),
            line: 0,
        })
    }

    fn error(&self, reason: Reason) -> DecodeError {
        DecodeError {
            line: self.line,
            reason,
        }
    }

    /// The value of the next line, which must be `<key> <value>`.
    fn field(&mut self, key: &'static str) -> Result<&'a str, DecodeError> {
        let Some(line) = self.lines.next() else {
            return Err(DecodeError {
                line: self.line + 1,
                reason: Reason::Missing(key),
            });
        };
        self.line += 1;
        match line.split_once(' ') {
            Some((k, value)) if k == key && !value.is_empty() => Ok(value),
            _ => Err(self.error(Reason::Expected(key))),
        }
    }

    fn number(&mut self, key: &'static str) -> Result<u64, DecodeError> {
        let text = self.field(key)?;
        parse_number(text).ok_or(self.error(Reason::Number(key)))
    }

    /// Whether the next line starts with `<key> `.
    fn next_is(&mut self, key: &str) -> bool {
        self.lines
            .peek()
            .is_some_and(|line| line.split_once(' ').is_some_and(|(k, _)| k == key))
    }

    /// The first line (magic and format version), `job`, `kind`, `name`.
    fn header(&mut self, magic: &'static str) -> Result<Key, DecodeError> {
        let first = self.lines.next().unwrap_or("");
        self.line = 1;
        let (word, format) = first.split_once(' ').ok_or(self.error(Reason::Magic))?;
        if word != magic {
            return Err(self.error(Reason::Magic));
        }
        let format = parse_number(format).ok_or(self.error(Reason::Number("format")))?;
        if format != u64::from(FORMAT_VERSION) {
            return Err(self.error(Reason::FormatVersion(format)));
        }
        let job_id = self.number("job")?;
        let kind = self.field("kind")?;
        let kind = Kind::from_name(kind).ok_or(self.error(Reason::Kind))?;
        let name = self.field("name")?;
        Key::new(job_id, kind, name).map_err(|_| self.error(Reason::Name))
    }

    /// No line may follow the last field.
    fn end(&mut self) -> Result<(), DecodeError> {
        if self.lines.next().is_some() {
            self.line += 1;
            return Err(self.error(Reason::ExtraLine));
        }
        Ok(())
    }
}

fn parse_hex32(text: &str) -> Option<u32> {
    let lower_hex = text.len() == 8 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if lower_hex {
        u32::from_str_radix(text, 16).ok()
    } else {
        None
    }
}

/// Why a manifest or an index does not decode, and on which line (from
/// 1; 0 for the file as a whole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub line: usize,
    pub reason: Reason,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// What is wrong with a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Empty,
    /// Over [`MANIFEST_MAX`] (a manifest) or [`INDEX_MAX`] (an index).
    TooLarge,
    NotUtf8,
    /// The last line has no `\n`: the file was cut short.
    Truncated,
    /// The last line is not `crc32 ...`.
    ChecksumMissing,
    /// The checksum is not 8 lowercase hex digits.
    ChecksumSyntax,
    /// The bytes do not match the checksum: damaged.
    ChecksumMismatch {
        stored: u32,
        computed: u32,
    },
    /// Not the file's first word.
    Magic,
    /// A format version this code does not read.
    FormatVersion(u64),
    /// The file ends where this field belongs.
    Missing(&'static str),
    /// Another line where this field belongs.
    Expected(&'static str),
    /// This field is not a decimal number (no sign, no leading zero) in
    /// range.
    Number(&'static str),
    /// Not `model`, `report`, `plot`, `pdf` or `other`.
    Kind,
    /// An artifact name [`Key::new`] refuses.
    Name,
    /// Not 64 lowercase hex digits.
    Digest,
    /// Version 0.
    VersionZero,
    /// A metric line that is not `metric NAME VALUE`.
    MetricSyntax,
    MetricName,
    /// A metric value that is not a number.
    MetricValue,
    MetricDuplicate,
    /// More than [`METRICS_MAX`] metric lines.
    TooManyMetrics,
    /// Not `latest`, `best`, `pinned` (comma-separated) or `-`.
    Alias,
    AliasDuplicate,
    /// An index line that is not `version N DIGEST SIZE CREATED ALIASES`.
    EntrySyntax,
    /// Index versions not strictly increasing.
    VersionOrder,
    /// More than [`VERSIONS_MAX`] index lines.
    TooManyVersions,
    /// A line after the last field.
    ExtraLine,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Empty => f.write_str("the file is empty"),
            Reason::TooLarge => f.write_str("the file is too large"),
            Reason::NotUtf8 => f.write_str("not UTF-8"),
            Reason::Truncated => f.write_str("the last line has no end: the file was cut short"),
            Reason::ChecksumMissing => f.write_str("the last line is not `crc32 ...`"),
            Reason::ChecksumSyntax => f.write_str("the checksum is not 8 lowercase hex digits"),
            Reason::ChecksumMismatch { stored, computed } => {
                write!(f, "damaged: crc32 {stored:08x} stored, {computed:08x} computed")
            }
            Reason::Magic => f.write_str("not an artifact manifest or index of this kind"),
            Reason::FormatVersion(v) => write!(f, "format version {v} is not supported"),
            Reason::Missing(key) => write!(f, "the file ends before `{key}`"),
            Reason::Expected(key) => write!(f, "expected `{key} VALUE`"),
            Reason::Number(key) => write!(f, "`{key}` is not a decimal number in range"),
            Reason::Kind => f.write_str("the kind is not model, report, plot, pdf or other"),
            Reason::Name => f.write_str("the name is not a valid artifact name"),
            Reason::Digest => f.write_str("the digest is not 64 lowercase hex digits"),
            Reason::VersionZero => f.write_str("version 0"),
            Reason::MetricSyntax => f.write_str("expected `metric NAME VALUE`"),
            Reason::MetricName => f.write_str("a metric name is not [a-zA-Z_:][a-zA-Z0-9_:]* (64 bytes)"),
            Reason::MetricValue => f.write_str("a metric value is not a number"),
            Reason::MetricDuplicate => f.write_str("a metric appears twice"),
            Reason::TooManyMetrics => f.write_str("more than 16 metrics"),
            Reason::Alias => f.write_str("an alias is not latest, best or pinned"),
            Reason::AliasDuplicate => f.write_str("an alias appears twice"),
            Reason::EntrySyntax => f.write_str("expected `version N DIGEST SIZE CREATED_MS ALIASES`"),
            Reason::VersionOrder => f.write_str("versions are not in increasing order"),
            Reason::TooManyVersions => f.write_str("more than 1024 versions"),
            Reason::ExtraLine => f.write_str("a line after the last field"),
        }
    }
}
