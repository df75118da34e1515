//! Host tests of the artifact store: digests, the file formats, aliases,
//! retention and GC, and the write protocol against a fake disk that can
//! crash between any two file calls.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::{format, vec};

use super::paths::{ArtifactFile, ObjectFile};
use super::*;

const MIN: Mode = Mode::Min;
const MAX: Mode = Mode::Max;

fn key(name: &str) -> Key {
    Key::new(7, Kind::Model, name).unwrap()
}

fn hex(d: &Digest) -> String {
    d.to_string()
}

/// Distinct file contents and their digests.
fn content(n: u32) -> (Vec<u8>, Digest) {
    let bytes = format!("checkpoint {n}").into_bytes();
    let digest = Digest::of(&bytes);
    (bytes, digest)
}

fn d(n: u32) -> Digest {
    content(n).1
}

fn model_retention(retention: Retention) -> Config {
    Config::default().with_retention(Kind::Model, retention)
}

/// Acknowledges every pending write without a disk; returns them.
fn ack_all(store: &mut Store) -> Vec<Write> {
    let writes = store.pending();
    for w in &writes {
        store.done(w);
    }
    writes
}

fn numbers(store: &Store, k: &Key) -> Vec<u32> {
    store.versions(k).map(|(n, _)| n).collect()
}

// ---------------------------------------------------------------- digests

#[test]
fn sha256_test_vectors() {
    // FIPS 180-4 examples (NIST CSRC "SHA-256" example values).
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let two_blocks = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
    let million_a = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    assert_eq!(hex(&Digest::of(b"abc")), abc);
    assert_eq!(hex(&Digest::of(b"")), empty);
    assert_eq!(
        hex(&Digest::of(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
        two_blocks
    );
    let mut h = Hasher::new();
    let chunk = [b'a'; 1000];
    for _ in 0..1000 {
        h.update(&chunk);
    }
    assert_eq!(h.len(), 1_000_000);
    assert_eq!(hex(&h.finish()), million_a);
}

#[test]
fn hashing_in_chunks_equals_hashing_at_once() {
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
    for chunk in [1, 7, 63, 64, 65, 4096] {
        let mut h = Hasher::new();
        for piece in data.chunks(chunk) {
            h.update(piece);
        }
        assert_eq!(h.finish(), Digest::of(&data), "chunks of {chunk}");
    }
    assert!(Hasher::new().is_empty());
}

#[test]
fn digest_hex_round_trips_and_refuses_other_spellings() {
    let digest = Digest::of(b"abc");
    assert_eq!(Digest::from_hex(&hex(&digest)), Ok(digest));
    assert_eq!(hex(&digest).parse::<Digest>(), Ok(digest));
    assert_eq!(format!("{digest:?}"), format!("Digest({digest})"));
    let upper = hex(&digest).to_uppercase();
    assert_eq!(Digest::from_hex(&upper), Err(ArtifactError::DigestInvalid));
    assert_eq!(Digest::from_hex(&hex(&digest)[1..]), Err(ArtifactError::DigestInvalid));
    assert_eq!(
        Digest::from_hex(&format!("{}0", hex(&digest))),
        Err(ArtifactError::DigestInvalid)
    );
    assert_eq!(Digest::from_hex(&"g".repeat(64)), Err(ArtifactError::DigestInvalid));
    assert_eq!(Digest::from_hex(&"é".repeat(32)), Err(ArtifactError::DigestInvalid));
    assert_eq!(Digest::from_bytes(*digest.as_bytes()), digest);
}

#[test]
fn verify_refuses_bytes_that_do_not_match() {
    let (bytes, digest) = content(1);
    let mut h = Hasher::new();
    h.update(&bytes);
    assert_eq!(verify(&digest, h.clone()), Ok(digest));

    let mut damaged = bytes.clone();
    damaged[0] ^= 1;
    let mut h = Hasher::new();
    h.update(&damaged);
    assert_eq!(
        verify(&digest, h),
        Err(ArtifactError::Corrupt {
            expected: digest,
            found: Digest::of(&damaged)
        })
    );

    let manifest = sample_manifest();
    let mut short = Hasher::new();
    short.update(b"12");
    assert_eq!(
        manifest.verify(short),
        Err(ArtifactError::SizeMismatch {
            expected: manifest.size,
            found: 2
        })
    );
    let mut same_size = Hasher::new();
    same_size.update(&vec![0u8; manifest.size as usize]);
    assert!(matches!(manifest.verify(same_size), Err(ArtifactError::Corrupt { .. })));
}

// ---------------------------------------------------------------- names and paths

#[test]
fn keys_check_names() {
    assert!(Key::new(1, Kind::Model, "resnet-50_v1.2").is_ok());
    assert_eq!(Key::new(1, Kind::Model, "").unwrap_err(), ArtifactError::NameEmpty);
    assert_eq!(
        Key::new(1, Kind::Model, &"a".repeat(65)).unwrap_err(),
        ArtifactError::NameTooLong
    );
    assert!(Key::new(1, Kind::Model, &"a".repeat(64)).is_ok());
    for bad in ["..", ".hidden", "-rf", "a/b", "a b", "a\0b", "é", "a\nb"] {
        assert_eq!(
            Key::new(1, Kind::Model, bad).unwrap_err(),
            ArtifactError::NameInvalid,
            "{bad:?}"
        );
    }
    assert_eq!(Key::new(3, Kind::Pdf, "paper").unwrap().to_string(), "3/pdf/paper");
}

#[test]
fn paths_are_the_documented_ones() {
    let k = Key::new(42, Kind::Report, "eval").unwrap();
    let digest = Digest::of(b"abc");
    assert_eq!(paths::object_path(&digest), format!("/artifacts/objects/{digest}"));
    assert_eq!(paths::manifest_path(&k, 3), "/artifacts/42/report/eval/v3");
    assert_eq!(paths::index_path(&k), "/artifacts/42/report/eval/index");
    assert_eq!(paths::artifact_dir(&k), "/artifacts/42/report/eval");
    assert_eq!(
        paths::tmp_path("/artifacts/42/report/eval/v3"),
        "/artifacts/42/report/eval/v3.tmp"
    );
    for kind in Kind::ALL {
        assert_eq!(Kind::from_name(kind.as_str()), Some(kind));
    }
    assert_eq!(Kind::from_name("Model"), None);
}

#[test]
fn directory_names_are_recognised() {
    let digest = Digest::of(b"abc");
    assert_eq!(ObjectFile::parse(&hex(&digest)), ObjectFile::Object(digest));
    assert_eq!(ObjectFile::parse(&format!("{digest}.tmp")), ObjectFile::Temporary);
    assert_eq!(ObjectFile::parse("README"), ObjectFile::Other);
    assert_eq!(ArtifactFile::parse("v1"), ArtifactFile::Manifest(1));
    assert_eq!(ArtifactFile::parse("v4294967295"), ArtifactFile::Manifest(u32::MAX));
    assert_eq!(ArtifactFile::parse("index"), ArtifactFile::Index);
    assert_eq!(ArtifactFile::parse("v3.tmp"), ArtifactFile::Temporary);
    assert_eq!(ArtifactFile::parse("index.tmp"), ArtifactFile::Temporary);
    for other in ["v", "v0", "v01", "v+1", "v4294967296", "x1", "V1"] {
        assert_eq!(ArtifactFile::parse(other), ArtifactFile::Other, "{other}");
    }
}

// ---------------------------------------------------------------- formats

fn sample_manifest() -> Manifest {
    Manifest {
        key: Key::new(42, Kind::Model, "resnet").unwrap(),
        version: 3,
        digest: Digest::of(b"abc"),
        size: 1_048_576,
        created_at_ms: 1_700_000_000_000,
        step: Some(1200),
        metrics: vec![
            (String::from("val_loss"), 0.25),
            (String::from("acc"), 0.9125),
            (String::from("tiny"), 1.5e-300),
            (String::from("huge"), -3e300),
            (String::from("diverged"), f64::INFINITY),
        ],
        aliases: Aliases {
            latest: true,
            best: true,
            pinned: false,
        },
    }
}

#[test]
fn manifest_round_trips_in_the_documented_form() {
    let m = sample_manifest();
    let text = m.encode();
    let expected_body = format!(
        "aether-artifact 1\njob 42\nkind model\nname resnet\nversion 3\ndigest {}\nsize 1048576\n\
         created_ms 1700000000000\nstep 1200\nmetric val_loss 0.25\nmetric acc 0.9125\n\
         metric tiny 1.5e-300\nmetric huge -3e300\nmetric diverged +Inf\naliases latest,best\n",
        m.digest
    );
    assert!(text.starts_with(&expected_body), "{text}");
    let crc_line = &text[expected_body.len()..];
    assert!(crc_line.starts_with("crc32 ") && crc_line.len() == 15 && crc_line.ends_with('\n'));
    assert_eq!(Manifest::decode(text.as_bytes()), Ok(m.clone()));
    assert_eq!(m.path(), "/artifacts/42/model/resnet/v3");

    let bare = Manifest {
        step: None,
        metrics: Vec::new(),
        aliases: Aliases::default(),
        ..m
    };
    let text = bare.encode();
    assert!(text.contains("\nstep -\naliases -\ncrc32 "));
    assert_eq!(Manifest::decode(text.as_bytes()), Ok(bare));
}

#[test]
fn nan_metrics_round_trip() {
    let mut m = sample_manifest();
    m.metrics = vec![(String::from("loss"), f64::NAN)];
    let back = Manifest::decode(m.encode().as_bytes()).unwrap();
    assert!(back.metrics[0].1.is_nan());
}

#[test]
fn the_largest_files_fit_their_bounds() {
    let name = "n".repeat(NAME_MAX);
    let m = Manifest {
        key: Key::new(u64::MAX, Kind::Report, &name).unwrap(),
        version: u32::MAX,
        digest: Digest::of(b""),
        size: u64::MAX,
        created_at_ms: u64::MAX,
        step: Some(u64::MAX),
        metrics: (0..METRICS_MAX)
            .map(|i| (format!("{}{i:02}", "m".repeat(62)), -1.234_567_890_123_456_7e-308))
            .collect(),
        aliases: Aliases {
            latest: true,
            best: true,
            pinned: true,
        },
    };
    let text = m.encode();
    assert!(text.len() <= MANIFEST_MAX, "{}", text.len());
    assert_eq!(Manifest::decode(text.as_bytes()), Ok(m.clone()));

    let entry = IndexEntry {
        version: u32::MAX,
        digest: m.digest,
        size: u64::MAX,
        created_at_ms: u64::MAX,
        aliases: m.aliases,
    };
    let index = Index {
        key: m.key.clone(),
        entries: (1..=VERSIONS_MAX)
            .map(|version| IndexEntry { version, ..entry })
            .collect(),
    };
    let text = index.encode();
    assert!(text.len() <= INDEX_MAX, "{}", text.len());
    assert_eq!(Index::decode(text.as_bytes()), Ok(index));
}

#[test]
fn index_round_trips() {
    let mut store = Store::new(Config::default().with_monitor(Kind::Model, None, Monitor::new("val_loss", MIN)));
    let k = key("ckpt");
    for (i, loss) in [0.5, 0.2, 0.4].into_iter().enumerate() {
        store
            .offer(
                100 * i as u64,
                &k,
                d(i as u32),
                10 + i as u64,
                None,
                &[("val_loss", loss)],
            )
            .unwrap();
    }
    store.pin(&k, 1).unwrap();
    let index = store.index(&k).unwrap();
    let text = index.encode();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..4],
        ["aether-artifact-index 1", "job 7", "kind model", "name ckpt"]
    );
    assert_eq!(lines[4], format!("version 1 {} 10 0 pinned", d(0)));
    assert_eq!(lines[5], format!("version 2 {} 11 100 best", d(1)));
    assert_eq!(lines[6], format!("version 3 {} 12 200 latest", d(2)));
    assert!(lines[7].starts_with("crc32 ") && lines.len() == 8);
    assert_eq!(Index::decode(text.as_bytes()), Ok(index.clone()));
    assert_eq!(index.path(), "/artifacts/7/model/ckpt/index");
}

/// Re-seals a body with a correct `crc32` line, so decoding goes past the
/// checksum to the fields.
fn seal(body: &[u8]) -> Vec<u8> {
    let sum = !aether_abi::crc::update(&aether_abi::crc::IEEE, !0, body.iter().copied());
    let mut out = body.to_vec();
    out.extend_from_slice(format!("crc32 {sum:08x}\n").as_bytes());
    out
}

fn body_of(text: &str) -> String {
    let end = text.rfind("crc32 ").unwrap();
    String::from(&text[..end])
}

fn reason(bytes: &[u8]) -> Reason {
    Manifest::decode(bytes).unwrap_err().reason
}

#[test]
fn every_manifest_fault_has_its_own_reason() {
    let body = body_of(&sample_manifest().encode());
    let edit = |from: &str, to: &str| {
        assert!(body.contains(from), "{from}");
        seal(body.replacen(from, to, 1).as_bytes())
    };
    let digest = hex(&Digest::of(b"abc"));
    let cases: Vec<(Vec<u8>, Reason)> = vec![
        (Vec::new(), Reason::Empty),
        (vec![b'\n'; MANIFEST_MAX + 1], Reason::TooLarge),
        (seal(b"aether-artifact 1\n\xff\n"), Reason::NotUtf8),
        (
            sample_manifest().encode().trim_end().as_bytes().to_vec(),
            Reason::Truncated,
        ),
        (body.as_bytes().to_vec(), Reason::ChecksumMissing),
        (format!("{body}crc32 XYZ\n").into_bytes(), Reason::ChecksumSyntax),
        (edit("aether-artifact", "aether-artifact-index"), Reason::Magic),
        (edit("aether-artifact 1", "aether-artifact 2"), Reason::FormatVersion(2)),
        (
            edit("aether-artifact 1", "aether-artifact 01"),
            Reason::Number("format"),
        ),
        (edit("job 42", "job -42"), Reason::Number("job")),
        (edit("job 42", "job 18446744073709551616"), Reason::Number("job")),
        (edit("kind model", "kind tensor"), Reason::Kind),
        (edit("name resnet", "name ../etc"), Reason::Name),
        (edit("version 3", "version 0"), Reason::VersionZero),
        (edit("version 3", "version 4294967296"), Reason::Number("version")),
        (edit("version 3", "version 03"), Reason::Number("version")),
        (edit(&digest, &digest[1..]), Reason::Digest),
        (edit("size 1048576", "size +1048576"), Reason::Number("size")),
        (edit("size 1048576\n", ""), Reason::Expected("size")),
        (edit("step 1200", "step x"), Reason::Number("step")),
        (edit("metric acc 0.9125", "metric acc"), Reason::MetricSyntax),
        (edit("metric acc 0.9125", "metric 9acc 0.9125"), Reason::MetricName),
        (edit("metric acc 0.9125", "metric acc ninety"), Reason::MetricValue),
        (
            edit("metric acc 0.9125", "metric val_loss 0.9"),
            Reason::MetricDuplicate,
        ),
        (edit("aliases latest,best", "aliases latest,prod"), Reason::Alias),
        (edit("aliases latest,best", "aliases best,best"), Reason::AliasDuplicate),
        (edit("aliases latest,best", "aliases "), Reason::Expected("aliases")),
        (edit("aliases latest,best\n", ""), Reason::Missing("aliases")),
        (edit("aliases latest,best\n", "aliases -\nextra 1\n"), Reason::ExtraLine),
        (
            edit(
                "metric val_loss 0.25\n",
                &(0..=METRICS_MAX)
                    .map(|i| format!("metric m{i} 1\n"))
                    .collect::<String>(),
            ),
            Reason::TooManyMetrics,
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(reason(&bytes), expected, "{:?}", String::from_utf8_lossy(&bytes));
    }
    let damaged = sample_manifest().encode().replacen("size 1", "size 2", 1);
    assert!(matches!(reason(damaged.as_bytes()), Reason::ChecksumMismatch { .. }));
    // A damaged file is named by its checksum line (the 16th).
    assert_eq!(
        Manifest::decode(damaged.as_bytes())
            .unwrap_err()
            .to_string()
            .split(':')
            .next(),
        Some("line 16")
    );
}

#[test]
fn index_faults_are_named() {
    let k = key("x");
    let e = |version| IndexEntry {
        version,
        digest: d(version),
        size: 1,
        created_at_ms: 2,
        aliases: Aliases::default(),
    };
    let body = body_of(
        &Index {
            key: k,
            entries: vec![e(1), e(2)],
        }
        .encode(),
    );
    let edit = |from: &str, to: &str| {
        assert!(body.contains(from), "{from}");
        Index::decode(&seal(body.replacen(from, to, 1).as_bytes()))
            .unwrap_err()
            .reason
    };
    assert_eq!(edit("version 2", "version 1"), Reason::VersionOrder);
    assert_eq!(edit("version 2", "version 0"), Reason::VersionZero);
    assert_eq!(edit(" 1 2 -\n", " 1 2\n"), Reason::EntrySyntax);
    assert_eq!(edit(" 1 2 -\n", " 1 2 - more\n"), Reason::EntrySyntax);
    assert_eq!(edit(" 1 2 -\n", " 1 02 -\n"), Reason::Number("created_ms"));
    assert_eq!(edit("aether-artifact-index", "aether-artifact"), Reason::Magic);
}

/// xorshift64 (Marsaglia 2003): a small, seeded, reproducible generator.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn damaged_and_truncated_manifests_never_decode_and_never_panic() {
    let good = sample_manifest().encode().into_bytes();
    let index = {
        let mut store = Store::new(Config::default());
        for i in 0..5 {
            store.offer(i, &key("p"), d(i as u32), 3, None, &[]).unwrap();
        }
        store.pin(&key("p"), 2).unwrap();
        store.index(&key("p")).unwrap().encode().into_bytes()
    };
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        // One flipped bit: CRC-32 catches every one.
        let mut flipped = good.clone();
        let at = rng.below(flipped.len());
        flipped[at] ^= 1 << rng.below(8);
        assert!(Manifest::decode(&flipped).is_err(), "bit flip at {at} decoded");

        // Any strict prefix lacks the final `crc32` line.
        let cut = rng.below(good.len());
        assert!(Manifest::decode(&good[..cut]).is_err(), "prefix of {cut} decoded");
        assert!(Index::decode(&index[..rng.below(index.len())]).is_err());

        // Many damaged bytes, re-sealed so the fields are parsed: any
        // outcome but a panic; what decodes encodes to an equal manifest.
        let body = body_of(core::str::from_utf8(&good).unwrap()).into_bytes();
        let mut noisy = body.clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(noisy.len());
            match rng.below(3) {
                0 => noisy[at] = b" \n,-0123456789abcdefxyz.\xff"[rng.below(25)],
                1 => {
                    noisy.remove(at);
                }
                _ => noisy.insert(at, b" \n0a"[rng.below(4)]),
            }
        }
        if let Ok(m) = Manifest::decode(&seal(&noisy)) {
            assert_eq!(Manifest::decode(m.encode().as_bytes()), Ok(m));
        }
        let mut noisy_index = body_of(core::str::from_utf8(&index).unwrap()).into_bytes();
        let at = rng.below(noisy_index.len());
        noisy_index[at] = b" \n-v9"[rng.below(5)];
        let _ = Index::decode(&seal(&noisy_index));

        // Random bytes.
        let len = rng.below(300);
        let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(Manifest::decode(&junk).is_err());
        assert!(Index::decode(&seal(&junk)).is_err());
    }
}

// ---------------------------------------------------------------- offers and aliases

#[test]
fn a_reoffered_identical_file_is_not_a_new_version() {
    let mut store = Store::new(Config::default());
    let k = key("ckpt");
    let first = store.offer(1, &k, d(1), 10, Some(5), &[("loss", 1.0)]);
    assert_eq!(
        first,
        Ok(Offer::New {
            version: 1,
            object_exists: false
        })
    );
    ack_all(&mut store);
    assert_eq!(
        store.offer(2, &k, d(1), 10, Some(6), &[("loss", 0.5)]),
        Ok(Offer::Same { version: 1 })
    );
    assert!(store.pending().is_empty());
    assert_eq!(store.version(&k, 1).unwrap().metric("loss"), Some(1.0));
    assert_eq!(store.version(&k, 1).unwrap().step, Some(5));

    // Different content is a new version; going back to the first content
    // is a third, sharing the first's object.
    assert_eq!(
        store.offer(3, &k, d(2), 10, None, &[]),
        Ok(Offer::New {
            version: 2,
            object_exists: false
        })
    );
    assert_eq!(
        store.offer(4, &k, d(1), 10, None, &[]),
        Ok(Offer::New {
            version: 3,
            object_exists: true
        })
    );
    assert_eq!(store.latest(&k), Some(3));
    assert_eq!(store.object_bytes(), 20);
}

#[test]
fn best_moves_only_with_a_better_metric() {
    let config = Config::default()
        .with_monitor(Kind::Model, Some("ckpt"), Monitor::new("val_loss", MIN))
        .with_monitor(Kind::Model, None, Monitor::new("acc", MAX));
    let mut store = Store::new(config);
    let k = key("ckpt");
    let mut offer = |n: u32, metrics: &[(&str, f64)]| {
        store.offer(u64::from(n), &k, d(n), 1, None, metrics).unwrap();
        store.best(&k)
    };
    assert_eq!(offer(1, &[("val_loss", 0.5)]), Some(1));
    assert_eq!(offer(2, &[("val_loss", 0.7)]), Some(1), "worse");
    assert_eq!(offer(3, &[("val_loss", 0.5)]), Some(1), "equal: the older stays");
    assert_eq!(offer(4, &[("val_loss", 0.2)]), Some(4), "better");
    assert_eq!(offer(5, &[("val_loss", f64::NAN)]), Some(4), "NaN is never best");
    assert_eq!(offer(6, &[("acc", 0.99)]), Some(4), "without the metric");
    assert_eq!(
        store.aliases(&k, 4),
        Some(Aliases {
            latest: false,
            best: true,
            pinned: false
        })
    );
    assert_eq!(store.resolve(&k, "best"), Ok(4));
    assert_eq!(store.resolve(&k, "latest"), Ok(6));

    // The kind's default monitor (acc, max) for another name.
    let other = key("other");
    store.offer(1, &other, d(10), 1, None, &[("acc", 0.5)]).unwrap();
    store.offer(2, &other, d(11), 1, None, &[("acc", 0.8)]).unwrap();
    store.offer(3, &other, d(12), 1, None, &[("acc", 0.6)]).unwrap();
    assert_eq!(store.best(&other), Some(2));

    // No monitor and no metrics: no best.
    let plot = Key::new(7, Kind::Plot, "curve").unwrap();
    store.offer(1, &plot, d(20), 1, None, &[]).unwrap();
    assert_eq!(store.best(&plot), None);
    assert_eq!(store.resolve(&plot, "best"), Err(ArtifactError::NoSuchAlias));
    // No monitor, but the versions carry metrics: the first one ranks
    // (lower is better for a name ending in `loss`, higher otherwise).
    let report = Key::new(7, Kind::Report, "eval").unwrap();
    store.offer(1, &report, d(30), 1, None, &[("val_loss", 0.3)]).unwrap();
    store.offer(2, &report, d(31), 1, None, &[("val_loss", 0.1)]).unwrap();
    store.offer(3, &report, d(32), 1, None, &[("val_loss", 0.2)]).unwrap();
    assert_eq!(store.best(&report), Some(2));
    let pdf = Key::new(7, Kind::Pdf, "summary").unwrap();
    store.offer(1, &pdf, d(40), 1, None, &[("accuracy", 0.7)]).unwrap();
    store.offer(2, &pdf, d(41), 1, None, &[("accuracy", 0.6)]).unwrap();
    assert_eq!(store.best(&pdf), Some(1));
}

#[test]
fn a_better_metric_rewrites_both_manifests_aliases() {
    let mut store = Store::new(Config::default().with_monitor(Kind::Model, None, Monitor::new("val_loss", MIN)));
    let k = key("ckpt");
    store.offer(1, &k, d(1), 1, None, &[("val_loss", 0.5)]).unwrap();
    ack_all(&mut store);
    store.offer(2, &k, d(2), 1, None, &[("val_loss", 0.4)]).unwrap();
    let writes = store.pending();
    let manifests: Vec<(u32, Aliases)> = writes
        .iter()
        .filter_map(|w| match w {
            Write::Manifest { version, aliases, .. } => Some((*version, *aliases)),
            _ => None,
        })
        .collect();
    let both = Aliases {
        latest: true,
        best: true,
        pinned: false,
    };
    assert_eq!(manifests, [(1, Aliases::default()), (2, both)]);
}

#[test]
fn offers_are_checked() {
    let mut store = Store::new(Config::default().with_limits(Limits {
        artifacts: 2,
        versions: 3,
    }));
    let k = key("ckpt");
    let too_many: Vec<(String, f64)> = (0..=METRICS_MAX).map(|i| (format!("m{i}"), 1.0)).collect();
    let too_many: Vec<(&str, f64)> = too_many.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    assert_eq!(
        store.offer(0, &k, d(0), 1, None, &too_many),
        Err(ArtifactError::TooManyMetrics)
    );
    assert_eq!(
        store.offer(0, &k, d(0), 1, None, &[("a", 1.0), ("a", 2.0)]),
        Err(ArtifactError::MetricDuplicate)
    );
    assert_eq!(
        store.offer(0, &k, d(0), 1, None, &[("val loss", 1.0)]),
        Err(ArtifactError::MetricNameInvalid)
    );
    for n in 1..=3 {
        store.offer(0, &k, d(n), 1, None, &[]).unwrap();
    }
    assert_eq!(
        store.offer(0, &k, d(9), 1, None, &[]),
        Err(ArtifactError::TooManyVersions)
    );
    assert_eq!(store.offer(0, &k, d(3), 1, None, &[]), Ok(Offer::Same { version: 3 }));
    assert_eq!(
        store.offer(0, &key("b"), d(1), 2, None, &[]),
        Err(ArtifactError::SizeConflict {
            digest: d(1),
            known: 1,
            offered: 2
        })
    );
    store.offer(0, &key("b"), d(1), 1, None, &[]).unwrap();
    assert_eq!(
        store.offer(0, &key("c"), d(1), 1, None, &[]),
        Err(ArtifactError::TooManyArtifacts)
    );
    assert!(store.keys().eq([&key("b"), &k]));
}

#[test]
fn version_numbers_run_out_cleanly() {
    let mut store = Store::new(Config::default());
    let mut m = sample_manifest();
    m.version = u32::MAX;
    store.restore(&m).unwrap();
    assert_eq!(store.restore(&m), Err(ArtifactError::VersionExists(u32::MAX)));
    assert_eq!(
        store.offer(0, &m.key, d(1), 1, None, &[]),
        Err(ArtifactError::VersionsExhausted)
    );
    m.version = 0;
    assert_eq!(store.restore(&m), Err(ArtifactError::VersionInvalid));
}

#[test]
fn selectors_resolve() {
    let mut store = Store::new(Config::default());
    let k = key("ckpt");
    assert_eq!(store.resolve(&k, "latest"), Err(ArtifactError::UnknownArtifact));
    store.offer(0, &k, d(1), 1, None, &[]).unwrap();
    store.offer(0, &k, d(2), 1, None, &[]).unwrap();
    assert_eq!(store.resolve(&k, "latest"), Ok(2));
    assert_eq!(store.resolve(&k, "v1"), Ok(1));
    assert_eq!(store.resolve(&k, "2"), Ok(2));
    assert_eq!(store.resolve(&k, "v9"), Err(ArtifactError::UnknownVersion(9)));
    for bad in ["", "v", "x", "v+1", "-1", "v1.0", "best1"] {
        assert_eq!(store.resolve(&k, bad), Err(ArtifactError::SelectorInvalid), "{bad}");
    }
    assert_eq!(store.pin(&k, 9), Err(ArtifactError::UnknownVersion(9)));
    assert_eq!(store.pin(&key("none"), 1), Err(ArtifactError::UnknownArtifact));
    assert_eq!(store.forget(&k, 9), Err(ArtifactError::UnknownVersion(9)));
}

// ---------------------------------------------------------------- retention and GC

#[test]
fn keep_last_two_and_top_one_keep_the_two_newest_and_the_best() {
    // The acceptance, at the logic level: five checkpoints with
    // distinct val_loss, the best (0.3) third from last.
    for monitored in [false, true] {
        let mut config = model_retention(Retention {
            keep_last_n: Some(2),
            top_k: Some(TopK::new(1, "val_loss", MIN)),
            ..Retention::default()
        });
        if monitored {
            config = config.with_monitor(Kind::Model, None, Monitor::new("val_loss", MIN));
        }
        let mut store = Store::new(config);
        let k = key("ckpt");
        for (i, loss) in [0.9, 0.3, 0.5, 0.6, 0.4].into_iter().enumerate() {
            let n = i as u32 + 1;
            let offer = store.offer(
                u64::from(n),
                &k,
                d(n),
                100,
                Some(u64::from(n) * 1000),
                &[("val_loss", loss)],
            );
            assert_eq!(
                offer,
                Ok(Offer::New {
                    version: n,
                    object_exists: false
                })
            );
        }
        ack_all(&mut store);

        let gc = store.plan_gc(10);
        assert_eq!(gc.drop_versions, [(k.clone(), 1), (k.clone(), 3)]);
        let mut objects = vec![d(1), d(3)];
        objects.sort();
        assert_eq!(gc.drop_objects, objects);
        assert_eq!(gc.freed_bytes, 200);
        assert_eq!(store.apply_gc(&gc), gc);
        assert_eq!(numbers(&store, &k), [2, 4, 5]);
        // Unmonitored, the versions' first metric (val_loss) ranks alike.
        assert_eq!(store.best(&k), Some(2));
        assert!(!store.has_object(&d(1)) && !store.has_object(&d(3)));

        // The disk work: the index first, then the manifests, then the
        // objects.
        let writes = ack_all(&mut store);
        let mut expected = vec![
            Write::RemoveManifest {
                key: k.clone(),
                version: 1,
            },
            Write::RemoveManifest {
                key: k.clone(),
                version: 3,
            },
        ];
        expected.extend(objects.iter().map(|&digest| Write::RemoveObject { digest }));
        assert!(matches!(writes[0], Write::Index { .. }));
        assert_eq!(writes[1..], expected);
        assert!(store.pending().is_empty());
        assert!(store.plan_gc(10).is_empty(), "GC is idempotent");
    }
}

#[test]
fn an_object_shared_by_two_artifacts_stays_until_both_drop_it() {
    let mut store = Store::new(model_retention(Retention {
        keep_last_n: Some(1),
        ..Retention::default()
    }));
    let (a, b) = (key("a"), key("b"));
    store.offer(1, &a, d(1), 50, None, &[]).unwrap();
    assert_eq!(
        store.offer(2, &b, d(1), 50, None, &[]),
        Ok(Offer::New {
            version: 1,
            object_exists: true
        })
    );
    // One object write for the two versions.
    let writes = ack_all(&mut store);
    assert_eq!(writes.iter().filter(|w| matches!(w, Write::Object { .. })).count(), 1);
    assert_eq!(store.object_bytes(), 50);

    store.offer(3, &a, d(2), 50, None, &[]).unwrap();
    let gc = store.plan_gc(4);
    assert_eq!(gc.drop_versions, [(a.clone(), 1)]);
    assert!(gc.drop_objects.is_empty(), "b's version still refers to it");
    store.apply_gc(&gc);
    assert!(store.has_object(&d(1)));
    assert!(
        !ack_all(&mut store)
            .iter()
            .any(|w| matches!(w, Write::RemoveObject { .. }))
    );

    store.offer(5, &b, d(3), 50, None, &[]).unwrap();
    let gc = store.plan_gc(6);
    assert_eq!(gc.drop_versions, [(b.clone(), 1)]);
    assert_eq!(gc.drop_objects, [d(1)]);
    store.apply_gc(&gc);
    assert!(ack_all(&mut store).contains(&Write::RemoveObject { digest: d(1) }));
}

#[test]
fn pins_survive_gc_until_unpinned() {
    let mut store = Store::new(model_retention(Retention {
        keep_last_n: Some(1),
        max_bytes: Some(1),
        ttl_ms: Some(1),
        ..Retention::default()
    }));
    let k = key("ckpt");
    for n in 1..=5 {
        store.offer(u64::from(n), &k, d(n), 10, None, &[]).unwrap();
    }
    store.pin(&k, 2).unwrap();
    store.pin(&k, 2).unwrap();
    assert!(store.aliases(&k, 2).unwrap().pinned);
    let gc = store.plan_gc(1000);
    let dropped: Vec<u32> = gc.drop_versions.iter().map(|(_, v)| *v).collect();
    assert_eq!(dropped, [1, 3, 4]);
    store.apply_gc(&gc);
    assert_eq!(numbers(&store, &k), [2, 5]);

    store.unpin(&k, 2).unwrap();
    let gc = store.plan_gc(1000);
    assert_eq!(gc.drop_versions, [(k.clone(), 2)]);
    store.apply_gc(&gc);
    assert_eq!(numbers(&store, &k), [5], "latest stays whatever the budgets");
}

#[test]
fn apply_gc_checks_the_plan_again() {
    let mut store = Store::new(model_retention(Retention {
        keep_last_n: Some(1),
        ..Retention::default()
    }));
    let k = key("ckpt");
    for n in 1..=3 {
        store.offer(u64::from(n), &k, d(n), 10, None, &[]).unwrap();
    }
    let gc = store.plan_gc(10);
    assert_eq!(gc.drop_versions.len(), 2);
    store.pin(&k, 1).unwrap();
    let applied = store.apply_gc(&gc);
    assert_eq!(applied.drop_versions, [(k.clone(), 2)]);
    assert_eq!(applied.drop_objects, [d(2)]);
    assert_eq!(numbers(&store, &k), [1, 3]);
    // Applying the same plan again drops nothing more.
    assert!(store.apply_gc(&gc).is_empty());
}

#[test]
fn max_bytes_drops_the_oldest_unprotected_and_beats_keep_last_n() {
    let k = key("ckpt");
    let run = |retention: Retention, monitored: bool| {
        let mut config = model_retention(retention);
        if monitored {
            config = config.with_monitor(Kind::Model, None, Monitor::new("val_loss", MIN));
        }
        let mut store = Store::new(config);
        for (n, loss) in (1..=5).zip([0.1, 0.5, 0.4, 0.3, 0.2]) {
            // Unmonitored runs carry no metric (a metric would be ranked by
            // default, and v1 would be `best`).
            let metrics: &[(&str, f64)] = if monitored { &[("val_loss", loss)] } else { &[] };
            store.offer(u64::from(n), &k, d(n), 100, None, metrics).unwrap();
        }
        let gc = store.plan_gc(10);
        store.apply_gc(&gc);
        numbers(&store, &k)
    };
    let budget = |max| Retention {
        max_bytes: Some(max),
        ..Retention::default()
    };
    assert_eq!(run(budget(250), false), [4, 5]);
    assert_eq!(run(budget(500), false), [1, 2, 3, 4, 5]);
    assert_eq!(run(budget(0), false), [5], "latest is protected");
    // best (v1) is protected: it takes the room of the older survivors.
    assert_eq!(run(budget(250), true), [1, 5]);
    assert_eq!(run(budget(300), true), [1, 4, 5]);
    // keep_last_n = 5 keeps all five, the budget cuts them to what fits.
    let both = Retention {
        keep_last_n: Some(5),
        max_bytes: Some(250),
        ..Retention::default()
    };
    assert_eq!(run(both, false), [4, 5]);
    // The budget counts only what selection kept.
    let both = Retention {
        keep_last_n: Some(3),
        max_bytes: Some(300),
        ..Retention::default()
    };
    assert_eq!(run(both, false), [3, 4, 5]);
}

#[test]
fn protected_versions_may_exceed_max_bytes() {
    let mut store = Store::new(model_retention(Retention {
        max_bytes: Some(100),
        ..Retention::default()
    }));
    let k = key("ckpt");
    for n in 1..=4 {
        store.offer(u64::from(n), &k, d(n), 100, None, &[]).unwrap();
    }
    store.pin(&k, 1).unwrap();
    store.pin(&k, 2).unwrap();
    let gc = store.plan_gc(10);
    assert_eq!(gc.drop_versions, [(k.clone(), 3)]);
}

#[test]
fn ttl_drops_expired_unprotected_versions() {
    let k = key("ckpt");
    let run = |retention: Retention, now: u64| {
        let mut store = Store::new(model_retention(retention));
        for n in 0..4u32 {
            store
                .offer(10_000 + u64::from(n) * 1000, &k, d(n), 1, None, &[])
                .unwrap();
        }
        store.pin(&k, 1).unwrap();
        let gc = store.plan_gc(now);
        store.apply_gc(&gc);
        numbers(&store, &k)
    };
    let ttl = Retention {
        ttl_ms: Some(1500),
        ..Retention::default()
    };
    // Ages at 13000: 3000, 2000, 1000, 0; v1 pinned, v4 latest.
    assert_eq!(run(ttl.clone(), 13_000), [1, 3, 4]);
    assert_eq!(run(ttl.clone(), 12_499), [1, 2, 3, 4]);
    assert_eq!(run(ttl.clone(), 12_500), [1, 3, 4], "an age of exactly ttl has expired");
    assert_eq!(run(ttl.clone(), 0), [1, 2, 3, 4], "a clock gone back expires nothing");
    // ttl beats keep_last_n.
    let both = Retention {
        keep_last_n: Some(4),
        ..ttl
    };
    assert_eq!(run(both, 13_000), [1, 3, 4]);
}

#[test]
fn retention_is_per_kind() {
    let mut store = Store::new(model_retention(Retention {
        keep_last_n: Some(1),
        ..Retention::default()
    }));
    let model = key("m");
    let plot = Key::new(7, Kind::Plot, "m").unwrap();
    for n in 1..=3 {
        store.offer(0, &model, d(n), 1, None, &[]).unwrap();
        store.offer(0, &plot, d(n + 10), 1, None, &[]).unwrap();
    }
    let gc = store.plan_gc(0);
    store.apply_gc(&gc);
    assert_eq!(numbers(&store, &model), [3]);
    assert_eq!(numbers(&store, &plot), [1, 2, 3]);
}

// ---------------------------------------------------------------- the write protocol

#[test]
fn a_new_version_is_written_object_first() {
    let mut store = Store::new(Config::default());
    let k = Key::new(42, Kind::Model, "ckpt").unwrap();
    let (_, digest) = content(1);
    store.offer(5, &k, digest, 14, None, &[]).unwrap();
    let writes = store.pending();
    assert_eq!(writes.len(), 3);
    let object = format!("/artifacts/objects/{digest}");
    let object_tmp = format!("{object}.tmp");
    assert_eq!(
        writes[0].steps(),
        [
            Step::MakeDirs {
                path: String::from("/artifacts/objects")
            },
            Step::Receive {
                tmp: object_tmp.clone(),
                digest,
                size: 14
            },
            Step::Verify {
                tmp: object_tmp.clone(),
                digest,
                size: 14
            },
            Step::Fsync {
                path: object_tmp.clone()
            },
            Step::Rename {
                from: object_tmp,
                to: object
            },
        ]
    );
    let manifest = store.manifest(&k, 1).unwrap();
    assert_eq!(
        writes[1].steps(),
        [
            Step::MakeDirs {
                path: String::from("/artifacts/42/model/ckpt")
            },
            Step::WriteFile {
                path: String::from("/artifacts/42/model/ckpt/v1.tmp"),
                bytes: manifest.encode().into_bytes()
            },
            Step::Fsync {
                path: String::from("/artifacts/42/model/ckpt/v1.tmp")
            },
            Step::Rename {
                from: String::from("/artifacts/42/model/ckpt/v1.tmp"),
                to: String::from("/artifacts/42/model/ckpt/v1")
            },
        ]
    );
    assert_eq!(writes[2].path(), "/artifacts/42/model/ckpt/index");
    assert!(matches!(writes[2], Write::Index { .. }));
    assert_eq!(
        Write::RemoveObject { digest }.steps(),
        [Step::Unlink {
            path: format!("/artifacts/objects/{digest}")
        }]
    );

    // Acknowledged one by one: what is done is not listed again.
    store.done(&writes[0]);
    assert_eq!(store.pending(), writes[1..]);
    store.done(&writes[1]);
    store.done(&writes[2]);
    assert!(store.pending().is_empty());

    // The second version rewrites the first's manifest (no longer latest).
    store.offer(6, &k, d(2), 1, None, &[]).unwrap();
    let paths: Vec<String> = store.pending().iter().map(Write::path).collect();
    assert_eq!(
        paths,
        [
            format!("/artifacts/objects/{}", d(2)),
            String::from("/artifacts/42/model/ckpt/v1"),
            String::from("/artifacts/42/model/ckpt/v2"),
            String::from("/artifacts/42/model/ckpt/index"),
        ]
    );
}

#[test]
fn forget_undoes_an_offer_whose_object_never_arrived() {
    let mut store = Store::new(Config::default());
    let k = key("ckpt");
    store.offer(1, &k, d(1), 1, None, &[]).unwrap();
    ack_all(&mut store);
    store.offer(2, &k, d(2), 1, None, &[]).unwrap();
    assert!(matches!(store.pending()[0], Write::Object { .. }));
    store.forget(&k, 2).unwrap();
    assert_eq!(store.latest(&k), Some(1));
    assert!(!store.has_object(&d(2)));
    // v1's manifest still says latest: only the index is rewritten.
    let writes = ack_all(&mut store);
    assert_eq!(writes.len(), 1);
    assert!(matches!(writes[0], Write::Index { .. }));

    // The number is free again, and the late acknowledgement of a write
    // for the forgotten version does not count for the new one.
    store.offer(3, &k, d(2), 1, None, &[]).unwrap();
    let stale = Write::Manifest {
        key: k.clone(),
        version: 2,
        generation: 0,
        aliases: store.aliases(&k, 2).unwrap(),
        bytes: Vec::new(),
    };
    store.done(&stale);
    assert!(store.pending().iter().any(|w| w.path().ends_with("/v2")));

    // Forgetting the only version forgets the artifact, and removes its
    // index.
    let single = key("single");
    store.offer(4, &single, d(9), 1, None, &[]).unwrap();
    ack_all(&mut store);
    store.forget(&single, 1).unwrap();
    assert!(store.keys().all(|k| *k != single));
    let removals: Vec<Write> = store
        .pending()
        .into_iter()
        .filter(|w| w.path().contains("single"))
        .collect();
    assert_eq!(
        removals,
        [
            Write::RemoveManifest {
                key: single.clone(),
                version: 1
            },
            Write::RemoveIndex { key: single.clone() }
        ]
    );
}

#[test]
fn an_object_dropped_then_offered_again_is_written_again() {
    let mut store = Store::new(model_retention(Retention {
        keep_last_n: Some(1),
        ..Retention::default()
    }));
    let k = key("ckpt");
    store.offer(1, &k, d(1), 1, None, &[]).unwrap();
    store.offer(2, &k, d(2), 1, None, &[]).unwrap();
    ack_all(&mut store);
    let gc = store.plan_gc(3);
    store.apply_gc(&gc);
    assert!(store.pending().contains(&Write::RemoveObject { digest: d(1) }));
    assert_eq!(
        store.offer(4, &k, d(1), 1, None, &[]),
        Ok(Offer::New {
            version: 3,
            object_exists: false
        })
    );
    let writes = store.pending();
    assert_eq!(writes[0], Write::Object { digest: d(1), size: 1 });
    assert!(!writes.contains(&Write::RemoveObject { digest: d(1) }));
}

#[test]
fn late_acknowledgements_of_dropped_things_remove_them() {
    let mut store = Store::new(Config::default());
    let k = key("ckpt");
    store.offer(1, &k, d(1), 1, None, &[]).unwrap();
    store.offer(2, &k, d(2), 1, None, &[]).unwrap();
    let writes = store.pending();
    // The caller is part-way through the list when v1 is forgotten.
    store.forget(&k, 1).unwrap();
    for w in &writes {
        store.done(w);
    }
    let rest = store.pending();
    assert!(rest.contains(&Write::RemoveObject { digest: d(1) }));
    assert!(rest.contains(&Write::RemoveManifest {
        key: k.clone(),
        version: 1
    }));
}

// ---------------------------------------------------------------- a fake disk, crashes and reboots

/// A disk of whole files that can crash after a number of file calls.
struct Disk {
    files: BTreeMap<String, Vec<u8>>,
    /// File calls left before the crash.
    budget: usize,
    /// The bytes the transfer delivers for each digest.
    source: BTreeMap<Digest, Vec<u8>>,
    /// The last `Receive`'s hasher.
    hasher: Option<Hasher>,
}

#[derive(Debug, PartialEq)]
enum Failure {
    Crash,
    Refused(ArtifactError),
}

impl Disk {
    fn new() -> Disk {
        Disk {
            files: BTreeMap::new(),
            budget: usize::MAX,
            source: BTreeMap::new(),
            hasher: None,
        }
    }

    fn step(&mut self, step: &Step) -> Result<(), Failure> {
        if self.budget == 0 {
            return Err(Failure::Crash);
        }
        self.budget -= 1;
        match step {
            Step::MakeDirs { .. } | Step::Fsync { .. } => {}
            Step::Receive { tmp, digest, .. } => {
                let bytes = self.source.get(digest).cloned().unwrap_or_default();
                let mut hasher = Hasher::new();
                for chunk in bytes.chunks(5) {
                    hasher.update(chunk);
                }
                self.hasher = Some(hasher);
                self.files.insert(tmp.clone(), bytes);
            }
            Step::Verify { tmp, digest, size } => {
                let hasher = self.hasher.take().unwrap_or_default();
                let checked = if hasher.len() == *size {
                    verify(digest, hasher).map(|_| ())
                } else {
                    Err(ArtifactError::SizeMismatch {
                        expected: *size,
                        found: hasher.len(),
                    })
                };
                if let Err(e) = checked {
                    self.files.remove(tmp);
                    return Err(Failure::Refused(e));
                }
            }
            Step::WriteFile { path, bytes } => {
                self.files.insert(path.clone(), bytes.clone());
            }
            Step::Rename { from, to } => {
                let bytes = self.files.remove(from).expect("rename of a missing file");
                self.files.insert(to.clone(), bytes);
            }
            Step::Unlink { path } => {
                self.files.remove(path);
            }
        }
        Ok(())
    }

    /// Does what the store needs, as opsd would: in order, acknowledging
    /// each write, stopping at the first failure.
    fn sync(&mut self, store: &mut Store) -> Result<(), Failure> {
        for w in store.pending() {
            for step in w.steps() {
                self.step(&step)?;
            }
            store.done(&w);
        }
        Ok(())
    }

    /// What opsd does at boot: leftovers out, manifests restored, objects
    /// reconciled, the pending work done.
    fn boot(&mut self, config: Config) -> Store {
        self.budget = usize::MAX;
        self.files.retain(|path, _| !path.ends_with(paths::TMP_SUFFIX));
        let mut store = Store::new(config);
        let mut objects = Vec::new();
        for (path, bytes) in &self.files {
            let (dir, name) = path.rsplit_once('/').unwrap();
            if dir == paths::OBJECTS_DIR {
                match ObjectFile::parse(name) {
                    ObjectFile::Object(digest) => objects.push(digest),
                    other => panic!("{other:?} in objects"),
                }
            } else if let ArtifactFile::Manifest(version) = ArtifactFile::parse(name) {
                let manifest = Manifest::decode(bytes).expect("every manifest on the disk decodes");
                assert_eq!(manifest.version, version);
                assert_eq!(manifest.path(), *path);
                store.restore(&manifest).unwrap();
            }
        }
        let found = store.reconcile(&objects);
        assert_eq!(found.missing, [], "a version without its object");
        for digest in &found.orphans {
            self.files.remove(&paths::object_path(digest));
        }
        self.sync(&mut store).unwrap();
        store
    }

    /// Reads a version back as opsd serves it: the digest checked.
    fn read(&self, store: &Store, key: &Key, version: u32) -> Result<Vec<u8>, ArtifactError> {
        let manifest = store
            .manifest(key, version)
            .ok_or(ArtifactError::UnknownVersion(version))?;
        let bytes = self
            .files
            .get(&paths::object_path(&manifest.digest))
            .cloned()
            .unwrap_or_default();
        let mut hasher = Hasher::new();
        hasher.update(&bytes);
        manifest.verify(hasher)?;
        Ok(bytes)
    }

    /// Every index on the disk is the store's.
    fn check_indexes(&self, store: &Store) {
        for k in store.keys() {
            let bytes = self.files.get(&paths::index_path(k)).expect("an index per artifact");
            assert_eq!(Index::decode(bytes).as_ref(), Ok(&store.index(k).unwrap()));
        }
        let indexes = self.files.keys().filter(|p| p.ends_with("/index")).count();
        assert_eq!(indexes, store.keys().count());
    }
}

fn crash_config() -> Config {
    model_retention(Retention {
        keep_last_n: Some(1),
        ..Retention::default()
    })
    .with_monitor(Kind::Model, None, Monitor::new("val_loss", MIN))
}

/// Offers, pins and GC, syncing after each; stops at the crash.
fn crash_scenario(disk: &mut Disk) -> Result<Store, Failure> {
    let mut store = Store::new(crash_config());
    let (a, b) = (key("a"), key("b"));
    for n in 1..=4 {
        let (bytes, digest) = content(n);
        disk.source.insert(digest, bytes);
    }
    let (_, x1) = content(1);
    let (_, x2) = content(2);
    let (_, x3) = content(3);
    let (_, x4) = content(4);
    store.offer(1, &a, x1, 12, None, &[("val_loss", 0.5)]).unwrap();
    disk.sync(&mut store)?;
    store.offer(2, &a, x2, 12, None, &[("val_loss", 0.7)]).unwrap();
    store.offer(2, &b, x2, 12, None, &[]).unwrap();
    disk.sync(&mut store)?;
    store.offer(3, &a, x3, 12, None, &[("val_loss", 0.4)]).unwrap();
    store.pin(&a, 2).unwrap();
    disk.sync(&mut store)?;
    store.offer(4, &a, x4, 12, None, &[("val_loss", 0.9)]).unwrap();
    store.offer(4, &b, x1, 12, None, &[]).unwrap();
    disk.sync(&mut store)?;
    store.unpin(&a, 2).unwrap();
    let gc = store.plan_gc(5);
    store.apply_gc(&gc);
    disk.sync(&mut store)?;
    Ok(store)
}

#[test]
fn the_store_survives_a_reboot() {
    let mut disk = Disk::new();
    let store = crash_scenario(&mut disk).unwrap();
    // a: v1 dropped, v2 unpinned and dropped, v3 best, v4 latest; b: v1
    // dropped (x2 goes with it), v2 latest (x1 stays for it).
    assert_eq!(numbers(&store, &key("a")), [3, 4]);
    assert_eq!(numbers(&store, &key("b")), [2]);
    let objects = disk
        .files
        .keys()
        .filter(|p| p.starts_with("/artifacts/objects/"))
        .count();
    assert_eq!(objects, 3);

    let rebooted = disk.boot(crash_config());
    assert_eq!(rebooted, store);
    for (k, n) in [(key("a"), 3), (key("a"), 4), (key("b"), 2)] {
        assert_eq!(rebooted.manifest(&k, n), store.manifest(&k, n));
        assert!(disk.read(&rebooted, &k, n).is_ok());
    }
    assert_eq!(rebooted.best(&key("a")), Some(3));
    disk.check_indexes(&rebooted);

    // A reboot from the manifests alone (no index, no pending work) gives
    // the same store, and the store rebuilt from encoded manifests equals
    // the original.
    let mut bare = Disk::new();
    bare.files = disk.files.clone();
    bare.files.retain(|p, _| !p.ends_with("/index"));
    assert_eq!(bare.boot(crash_config()), store);
    let mut again = Store::new(crash_config());
    for k in store.keys() {
        for (n, _) in store.versions(k) {
            let encoded = store.manifest(k, n).unwrap().encode();
            again.restore(&Manifest::decode(encoded.as_bytes()).unwrap()).unwrap();
        }
    }
    assert_eq!(again, store);
}

#[test]
fn a_crash_at_any_file_call_leaves_a_disk_that_boots() {
    let mut full = Disk::new();
    crash_scenario(&mut full).unwrap();
    let calls = usize::MAX - full.budget;
    assert!(calls > 40, "{calls}");
    for crash_after in 0..calls {
        let mut disk = Disk::new();
        disk.budget = crash_after;
        assert_eq!(
            crash_scenario(&mut disk).err(),
            Some(Failure::Crash),
            "crash after {crash_after}"
        );
        let store = disk.boot(crash_config());
        // Every version the store has can be served, every index matches,
        // nothing is left over.
        for k in store.keys() {
            for (n, _) in store.versions(k) {
                assert!(disk.read(&store, k, n).is_ok(), "crash after {crash_after}: {k} v{n}");
            }
        }
        disk.check_indexes(&store);
        assert!(store.pending().is_empty());
        assert!(disk.files.keys().all(|p| !p.ends_with(".tmp")));
        let on_disk: Vec<Digest> = disk
            .files
            .keys()
            .filter_map(|p| p.strip_prefix("/artifacts/objects/"))
            .map(|name| Digest::from_hex(name).unwrap())
            .collect();
        assert_eq!(store.reconcile(&on_disk), Reconcile::default());
        // Booting again changes nothing.
        let files = disk.files.clone();
        assert_eq!(disk.boot(crash_config()), store);
        assert_eq!(disk.files, files);
    }
}

#[test]
fn stale_aliases_on_disk_are_recomputed_and_rewritten() {
    let k = key("ckpt");
    let v = |disk: &Disk, n: u32| Manifest::decode(&disk.files[&paths::manifest_path(&k, n)]).unwrap();
    let two_versions = |disk: &mut Disk, skip: &dyn Fn(&Write) -> bool| {
        let mut store = Store::new(Config::default());
        for n in 1..=2 {
            let (bytes, digest) = content(n);
            disk.source.insert(digest, bytes);
        }
        store.offer(1, &k, d(1), 12, None, &[]).unwrap();
        disk.sync(&mut store).unwrap();
        store.offer(2, &k, d(2), 12, None, &[]).unwrap();
        for w in store.pending() {
            if skip(&w) {
                break;
            }
            for step in w.steps() {
                disk.step(&step).unwrap();
            }
        }
    };

    // A crash after v1's rewrite, before v2's manifest: v1 says nothing,
    // v2 is not there. At boot v1 is latest again, and says so.
    let mut disk = Disk::new();
    two_versions(&mut disk, &|w| w.path().ends_with("/v2"));
    assert!(!v(&disk, 1).aliases.latest);
    let store = disk.boot(Config::default());
    assert_eq!(store.latest(&k), Some(1));
    assert!(v(&disk, 1).aliases.latest);

    // Two manifests that say latest (v1's rewrite lost): the newest is.
    let mut disk = Disk::new();
    two_versions(&mut disk, &|_| false);
    let mut old = v(&disk, 1);
    old.aliases.latest = true;
    disk.files.insert(old.path(), old.encode().into_bytes());
    let store = disk.boot(Config::default());
    assert_eq!(store.latest(&k), Some(2));
    assert!(!v(&disk, 1).aliases.latest && v(&disk, 2).aliases.latest);
}

#[test]
fn a_corrupt_transfer_is_refused_and_forgotten() {
    let mut disk = Disk::new();
    let mut store = Store::new(Config::default());
    let k = key("ckpt");
    let (bytes, digest) = content(1);
    let mut damaged = bytes.clone();
    damaged[3] ^= 0x20;
    disk.source.insert(digest, damaged.clone());
    store.offer(1, &k, digest, bytes.len() as u64, None, &[]).unwrap();
    assert_eq!(
        disk.sync(&mut store),
        Err(Failure::Refused(ArtifactError::Corrupt {
            expected: digest,
            found: Digest::of(&damaged)
        }))
    );
    assert!(disk.files.is_empty(), "the temporary is gone, nothing else was written");
    store.forget(&k, 1).unwrap();
    assert!(store.pending().is_empty());

    // A corrupted object on the disk is never served.
    disk.source.insert(digest, bytes.clone());
    store.offer(2, &k, digest, bytes.len() as u64, None, &[]).unwrap();
    disk.sync(&mut store).unwrap();
    assert_eq!(disk.read(&store, &k, 1), Ok(bytes.clone()));
    disk.files.insert(paths::object_path(&digest), damaged.clone());
    assert_eq!(
        disk.read(&store, &k, 1),
        Err(ArtifactError::Corrupt {
            expected: digest,
            found: Digest::of(&damaged)
        })
    );
    disk.files.insert(paths::object_path(&digest), bytes[..4].to_vec());
    assert!(matches!(
        disk.read(&store, &k, 1),
        Err(ArtifactError::SizeMismatch { .. })
    ));
}

#[test]
fn reconcile_names_orphans_and_missing_objects() {
    let mut store = Store::new(Config::default());
    let k = key("ckpt");
    store.offer(1, &k, d(1), 1, None, &[]).unwrap();
    store.offer(2, &k, d(2), 1, None, &[]).unwrap();
    // Not yet written: pending, not missing.
    assert_eq!(
        store.reconcile(&[]),
        Reconcile {
            orphans: vec![],
            missing: vec![]
        }
    );
    ack_all(&mut store);
    let found = store.reconcile(&[d(2), d(7), d(7)]);
    assert_eq!(found.orphans, [d(7)]);
    assert_eq!(found.missing, [(k.clone(), 1)]);
}

#[test]
fn errors_read_well() {
    assert_eq!(ArtifactError::UnknownVersion(3).to_string(), "no version 3");
    let e = DecodeError {
        line: 4,
        reason: Reason::Kind,
    };
    assert_eq!(
        ArtifactError::from(e).to_string(),
        "line 4: the kind is not model, report, plot, pdf or other"
    );
    assert_eq!(Aliases::default().to_string(), "-");
    let all = Aliases {
        latest: true,
        best: true,
        pinned: true,
    };
    assert_eq!(all.to_string(), "latest,best,pinned");
    assert!(all.names().eq(Aliases::NAMES));
}
