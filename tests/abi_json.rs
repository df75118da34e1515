//! The JSON shapes of the job types, as the HTTP API serves them (kept out
//! of `aether-abi`'s own tests: a `serde_json` dev-dependency there turns on
//! serde's `std` feature in the kernel's build of the crate, through cargo's
//! artifact-dependency feature unification).

use aether_abi::job::*;

#[test]
fn job_types_are_what_the_http_api_serves() {
    // A minimal POST /jobs body: everything else takes its default.
    let spec: JobSpec = serde_json::from_str(r#"{"name": "train", "entrypoint": ["python3", "train.py"]}"#).unwrap();
    assert_eq!(spec.validate(), Ok(()));
    assert_eq!(spec.grace_ms, DEFAULT_GRACE_MS);
    assert_eq!(spec.kind, JobKind::Host);
    let spec: JobSpec = serde_json::from_str(
        r#"{"name": "n", "entrypoint": ["hello"], "kind": "native", "env": [["K", "V"]],
            "timeout_ms": 5000, "max_retries": 2}"#,
    )
    .unwrap();
    assert_eq!(spec.kind, JobKind::Native);
    assert_eq!(spec.env[0].1.as_str(), "V");
    assert_eq!(spec.timeout_ms, Some(5000));
    // Bounds hold in JSON too.
    let long = format!(r#"{{"name": "{}"}}"#, "n".repeat(NAME_MAX + 1));
    assert!(serde_json::from_str::<JobSpec>(&long).is_err());

    let mut record = JobRecord::pending(3, JobName::try_from("train").unwrap(), 1_700_000_000_000);
    record.status = JobState::TimedOut;
    record.termination_reason = Some(TerminationReason::TimedOut);
    record
        .latest_metrics
        .push(MetricValue {
            name: "loss".try_into().unwrap(),
            value: 0.5,
            step: Some(120),
            ts_ms: 1,
        })
        .unwrap();
    let json = serde_json::to_value(&record).unwrap();
    assert_eq!(json["job_id"], 3);
    assert_eq!(json["status"], "TIMED_OUT");
    assert_eq!(json["termination_reason"], "timed_out");
    assert_eq!(json["created_ms"], 1_700_000_000_000u64);
    assert_eq!(json["started_ms"], serde_json::Value::Null);
    assert_eq!(json["latest_metrics"][0]["name"], "loss");
    assert_eq!(json["latest_metrics"][0]["value"], 0.5);
    let back: JobRecord = serde_json::from_value(json).unwrap();
    assert_eq!(back, record);
    assert_eq!(serde_json::to_string(&JobError::NoSuchJob).unwrap(), r#""no_such_job""#);
    assert_eq!(serde_json::to_string(&Stream::Stderr).unwrap(), r#""stderr""#);
}
