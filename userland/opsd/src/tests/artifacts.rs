//! The artifact store over the link: offers, transfers, retention, reboot,
//! reads that check the digest.

use std::string::String as StdString;
use std::vec::Vec as StdVec;

use aether_abi::artifact::{ArtifactKind, ArtifactMetric, ArtifactOffer, ArtifactOutcome, CHUNK_MAX};
use aether_abi::telemetry::{TelemetryRequest, TelemetryResponse};

use super::persist::{MemStore, boot};
use super::*;

const POLICY: &str = "\
monitor model val_loss min
retain model keep_last_n=2 top_k=1:val_loss:min
";

fn rig(policy: &str) -> (H, MemStore) {
    let store = MemStore::default();
    store.put("/ops/artifacts.conf", policy.as_bytes());
    let mut h = boot(&store, Config::default(), 0);
    h.jobs.on_bridge_connected(0);
    h.after();
    (h, store)
}

fn offer(job_id: u64, name: &str, bytes: &[u8], val_loss: Option<f64>, step: u64) -> ArtifactOffer {
    ArtifactOffer {
        job_id,
        kind: ArtifactKind::Model,
        name: name.try_into().unwrap(),
        size: bytes.len() as u64,
        digest: *telemetry_core::artifacts::Digest::of(bytes).as_bytes(),
        step: Some(step),
        metrics: val_loss
            .map(|v| ArtifactMetric {
                name: "val_loss".try_into().unwrap(),
                value: v,
            })
            .into_iter()
            .collect(),
        created_ms: 1_000 + step,
    }
}

/// Offers `o` as `transfer` and sends `bytes` when asked; the outcome.
fn transfer(h: &mut H, transfer: u64, o: ArtifactOffer, bytes: &[u8]) -> ArtifactOutcome {
    h.link(
        LinkMessage::ArtifactOffer {
            transfer,
            offer: Box::new(o),
        },
        50,
    );
    loop {
        let out = h.out();
        let mut sent = false;
        for msg in out {
            match msg {
                LinkMessage::ArtifactDone { transfer: t, outcome } if t == transfer => return outcome,
                LinkMessage::ArtifactWant { transfer: t, offset } if t == transfer => {
                    for (i, c) in bytes[offset as usize..].chunks(CHUNK_MAX).enumerate() {
                        h.link(
                            LinkMessage::ArtifactChunk {
                                transfer,
                                offset: offset + (i * CHUNK_MAX) as u64,
                                bytes: Box::new(heapless::Vec::from_slice(c).unwrap()),
                            },
                            60,
                        );
                    }
                    sent = true;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(sent, "no answer to transfer {transfer}");
    }
}

fn list(h: &mut H) -> StdVec<aether_abi::artifact::ArtifactInfo> {
    let mut all = StdVec::new();
    loop {
        match h.jobs.telemetry_request(
            TelemetryRequest::Artifacts {
                job_id: None,
                after: all.len() as u32,
            },
            70,
        ) {
            TelemetryResponse::Artifacts { entries, more } => {
                all.extend(entries);
                if !more {
                    return all;
                }
            }
            other => panic!("{other:?}"),
        }
    }
}

fn objects(store: &MemStore) -> StdVec<StdString> {
    store.names_in("/artifacts/objects")
}

fn checkpoint(i: u8) -> StdVec<u8> {
    (0..20_000u32)
        .map(|k| (k as u8).wrapping_mul(i).wrapping_add(i))
        .collect()
}

#[test]
fn retention_keeps_the_last_two_and_the_best_and_survives_a_reboot() {
    let (mut h, store) = rig(POLICY);
    let losses = [0.5, 0.2, 0.45, 0.3, 0.35];
    for (i, loss) in losses.iter().enumerate() {
        let bytes = checkpoint(i as u8 + 1);
        let got = transfer(
            &mut h,
            i as u64 + 1,
            offer(7, "ckpt", &bytes, Some(*loss), i as u64 * 100),
            &bytes,
        );
        assert_eq!(got, ArtifactOutcome::Stored { version: i as u32 + 1 });
    }
    let check = |h: &mut H, store: &MemStore| {
        let versions = list(h);
        let kept: StdVec<(u32, bool, bool)> = versions.iter().map(|v| (v.version, v.latest, v.best)).collect();
        assert_eq!(kept, [(2, false, true), (4, false, false), (5, true, false)]);
        assert_eq!(objects(store).len(), 3, "{:?}", objects(store));
        assert_eq!(
            store.names_in("/artifacts/7/model/ckpt"),
            ["index", "v2", "v4", "v5"],
            "manifests of dropped versions are gone"
        );
    };
    check(&mut h, &store);
    assert_eq!(h.jobs.artifacts().freed_bytes, 2 * 20_000);
    // A reboot (power cut: only what was synced) brings back the same.
    store.cut();
    let mut h = boot(&store, Config::default(), 100);
    assert!(h.jobs.drain_warnings().next().is_none());
    check(&mut h, &store);
}

#[test]
fn the_same_bytes_again_are_unchanged_and_shared_bytes_are_stored_once() {
    let (mut h, store) = rig("");
    let a = checkpoint(1);
    let b = checkpoint(2);
    assert_eq!(
        transfer(&mut h, 1, offer(1, "m", &a, None, 1), &a),
        ArtifactOutcome::Stored { version: 1 }
    );
    assert_eq!(
        transfer(&mut h, 2, offer(1, "m", &a, None, 2), &a),
        ArtifactOutcome::Unchanged { version: 1 }
    );
    assert_eq!(
        transfer(&mut h, 3, offer(1, "m", &b, None, 3), &b),
        ArtifactOutcome::Stored { version: 2 }
    );
    // Back to the first bytes: a new version, the object shared (no
    // transfer asked: the answer comes at once).
    h.link(
        LinkMessage::ArtifactOffer {
            transfer: 4,
            offer: Box::new(offer(1, "m", &a, None, 4)),
        },
        80,
    );
    let out = h.out();
    assert!(
        matches!(
            out.as_slice(),
            [LinkMessage::ArtifactDone {
                transfer: 4,
                outcome: ArtifactOutcome::Stored { version: 3 }
            }]
        ),
        "{out:?}"
    );
    assert_eq!(objects(&store).len(), 2);
    // An empty file is an artifact too.
    assert_eq!(
        transfer(&mut h, 5, offer(1, "empty", &[], None, 0), &[]),
        ArtifactOutcome::Stored { version: 1 }
    );
}

#[test]
fn bytes_that_do_not_match_the_digest_leave_nothing_visible() {
    let (mut h, store) = rig("");
    let good = checkpoint(3);
    let mut bad = good.clone();
    bad[12_345] ^= 1;
    match transfer(&mut h, 1, offer(2, "m", &good, None, 1), &bad) {
        ArtifactOutcome::Refused { reason } => assert!(reason.contains("sha256"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(list(&mut h).is_empty());
    assert!(objects(&store).is_empty(), "{:?}", objects(&store));
    assert!(store.names_in("/artifacts").iter().all(|n| n == "objects"));
    // Bad names and kinds of names are refused with the reason.
    for name in ["../x", ".hidden", "a/b"] {
        match transfer(&mut h, 2, offer(2, name, &good, None, 1), &good) {
            ArtifactOutcome::Refused { .. } => {}
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn a_transfer_offered_again_goes_on_from_where_it_was() {
    let (mut h, _store) = rig("");
    let bytes = checkpoint(4);
    h.link(
        LinkMessage::ArtifactOffer {
            transfer: 1,
            offer: Box::new(offer(3, "m", &bytes, None, 1)),
        },
        10,
    );
    assert!(matches!(
        h.out().as_slice(),
        [LinkMessage::ArtifactWant { transfer: 1, offset: 0 }]
    ));
    h.link(
        LinkMessage::ArtifactChunk {
            transfer: 1,
            offset: 0,
            bytes: Box::new(heapless::Vec::from_slice(&bytes[..CHUNK_MAX]).unwrap()),
        },
        11,
    );
    // Half a file is never visible.
    assert!(list(&mut h).is_empty());
    // The bridge restarted: a new transfer number, the same file.
    h.link(
        LinkMessage::ArtifactOffer {
            transfer: 9,
            offer: Box::new(offer(3, "m", &bytes, None, 1)),
        },
        12,
    );
    let out = h.out();
    assert!(
        matches!(out.as_slice(), [LinkMessage::ArtifactWant { transfer: 9, offset }] if *offset == CHUNK_MAX as u64),
        "{out:?}"
    );
    // A chunk past the end of what is there: asked again from the end.
    h.link(
        LinkMessage::ArtifactChunk {
            transfer: 9,
            offset: 2 * CHUNK_MAX as u64,
            bytes: Box::new(heapless::Vec::from_slice(&bytes[2 * CHUNK_MAX..]).unwrap()),
        },
        13,
    );
    let out = h.out();
    assert!(
        matches!(out.as_slice(), [LinkMessage::ArtifactWant { transfer: 9, offset }] if *offset == CHUNK_MAX as u64)
    );
    let rest = &bytes[CHUNK_MAX..];
    for (i, c) in rest.chunks(CHUNK_MAX).enumerate() {
        h.link(
            LinkMessage::ArtifactChunk {
                transfer: 9,
                offset: (CHUNK_MAX + i * CHUNK_MAX) as u64,
                bytes: Box::new(heapless::Vec::from_slice(c).unwrap()),
            },
            14,
        );
    }
    let out = h.out();
    assert!(
        matches!(
            out.as_slice(),
            [LinkMessage::ArtifactDone {
                transfer: 9,
                outcome: ArtifactOutcome::Stored { version: 1 }
            }]
        ),
        "{out:?}"
    );
}

fn fetch_all(h: &mut H, selector: &str) -> Result<StdVec<u8>, StdString> {
    let mut got = StdVec::new();
    loop {
        h.link(
            LinkMessage::ArtifactFetch {
                id: 5,
                job_id: 7,
                kind: ArtifactKind::Model,
                name: "ckpt".try_into().unwrap(),
                selector: selector.try_into().unwrap(),
                offset: got.len() as u64,
            },
            90,
        );
        for msg in h.out() {
            let LinkMessage::ArtifactBytes { error, bytes, last, .. } = msg else {
                panic!("{msg:?}")
            };
            if let Some(e) = error {
                return Err(e.as_str().into());
            }
            got.extend_from_slice(&bytes);
            if last {
                return Ok(got);
            }
        }
    }
}

#[test]
fn reads_check_the_digest_and_serve_nothing_damaged() {
    let (mut h, store) = rig(POLICY);
    // Over 1 MiB: two fetch windows.
    let big: StdVec<u8> = (0..1_300_000u32).map(|k| (k % 251) as u8).collect();
    assert_eq!(
        transfer(&mut h, 1, offer(7, "ckpt", &big, Some(0.3), 1), &big),
        ArtifactOutcome::Stored { version: 1 }
    );
    assert_eq!(fetch_all(&mut h, "latest").unwrap(), big);
    assert_eq!(fetch_all(&mut h, "v1").unwrap(), big);
    assert!(fetch_all(&mut h, "v9").is_err());
    assert!(fetch_all(&mut h, "bogus").is_err());
    let check = |h: &mut H| {
        h.jobs.telemetry_request(
            TelemetryRequest::ArtifactCheck {
                job_id: 7,
                kind: ArtifactKind::Model,
                name: "ckpt".try_into().unwrap(),
                selector: "best".try_into().unwrap(),
            },
            95,
        )
    };
    assert!(
        matches!(check(&mut h), TelemetryResponse::Checked { info, .. } if info.best && info.size == big.len() as u64)
    );
    // One bit flipped on the disk: reported, never served.
    let name = objects(&store).remove(0);
    let path = format!("/artifacts/objects/{name}");
    let mut damaged = store.file(&path).unwrap();
    damaged[1000] ^= 0x10;
    store.put(&path, &damaged);
    let e = fetch_all(&mut h, "latest").unwrap_err();
    assert!(e.contains("sha256"), "{e}");
    assert!(matches!(check(&mut h), TelemetryResponse::ArtifactError { reason } if reason.contains("sha256")));
}

#[test]
fn pins_keep_versions_and_the_policy_file_is_checked() {
    let (mut h, _store) = rig("retain model keep_last_n=1\n");
    let a = checkpoint(1);
    transfer(&mut h, 1, offer(7, "ckpt", &a, None, 1), &a);
    let pin = h.jobs.telemetry_request(
        TelemetryRequest::ArtifactPin {
            job_id: 7,
            kind: ArtifactKind::Model,
            name: "ckpt".try_into().unwrap(),
            selector: "1".try_into().unwrap(),
            pin: true,
        },
        10,
    );
    assert_eq!(
        pin,
        TelemetryResponse::Pinned {
            version: 1,
            pinned: true
        }
    );
    for i in 2..=3 {
        let b = checkpoint(i);
        transfer(&mut h, i as u64, offer(7, "ckpt", &b, None, i as u64), &b);
    }
    let kept: StdVec<(u32, bool)> = list(&mut h).iter().map(|v| (v.version, v.pinned)).collect();
    assert_eq!(kept, [(1, true), (3, false)]);
    for (bad, line) in [
        ("retain model keep_last=2\n", 1),
        ("monitor model val_loss\n", 1),
        ("# ok\nretain checkpoint keep_last_n=1\n", 2),
        ("retain model top_k=1:val_loss\n", 1),
        ("retain model ttl=5x\n", 1),
    ] {
        let e = super::super::artifacts::parse_policy(bad).unwrap_err();
        assert_eq!(e.0, line, "{bad}: {e:?}");
    }
    let (c, n) =
        super::super::artifacts::parse_policy("retain pdf max_bytes=2M ttl=7d\nmonitor model/ckpt acc max\n").unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        c.retention(telemetry_core::artifacts::Kind::Pdf).unwrap().max_bytes,
        Some(2 << 20)
    );
}
