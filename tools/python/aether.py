"""A tiny, dependency-free helper for AetherOS host jobs (docs/jobs.md).

    import aether
    aether.metric("loss", 0.42, step=120, split="train")

prints one metric line on stdout and flushes it:

    {"aether_metric": {"name": "loss", "value": 0.42, "step": 120, "tags": {"split": "train"}}}

Counters and histograms say their kind (a gauge is the default); a
histogram's first point gives its bucket bounds:

    aether.metric("samples", 5120, kind="counter")
    aether.metric("batch_s", 0.21, kind="histogram", buckets=[0.1, 0.25, 1])
    aether.metric("acc", 0.9, tags={"kind": "top1"})  # a tag named kind

The host bridge turns such lines into metric points (the line also stays in
the job's log). No library is needed to do the same: any program may print
the line itself. NaN and infinities, which JSON cannot spell, are sent as
the strings "NaN", "Infinity" and "-Infinity". The bridge maps "/", ".",
"-" and spaces in names to "_" ("eval/accuracy" is "eval_accuracy"), and
refuses (counts and logs) a line whose point is invalid: a counter that is
NaN or negative, more than 8 tags, unsorted bucket bounds, ... (docs/jobs.md).

Files a job makes are artifacts: written into artifact_dir() (as
<kind>/<name>, kind one of model, report, plot, pdf, other, or directly
there) they are sent to opsd once complete; write to a temporary (*.tmp)
and rename it into place to be sure a half-written file is never taken.
A file elsewhere, or one that should carry its step and metrics, is
announced:

    aether.artifact("ckpt.pt", kind="model", name="ckpt", step=1200,
                    metrics={"val_loss": 0.25})

prints {"aether_artifact": {...}} (docs/telemetry.md, "Artifact transfer
(the bridge)").
"""

import json
import math
import os
import sys

__all__ = ["metric", "artifact", "artifact_dir", "job_id"]


def _value(value):
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


KINDS = ("counter", "gauge", "histogram")


def metric(name, value, step=None, *, kind=None, buckets=None, tags=None, **more_tags):
    """Prints one metric line (and flushes stdout, so it is not held back
    in a buffer while the job runs).

    kind: "counter", "gauge" (the bridge's default when None) or
    "histogram"; buckets: a histogram's bucket bounds (increasing numbers);
    tags: a dict of tags, for names that are not Python identifiers or
    that are "kind", "buckets" or "tags"; other keyword arguments are tags
    too (as before).
    """
    payload = {"name": str(name), "value": _value(value)}
    if kind is not None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        payload["kind"] = kind
    if step is not None:
        payload["step"] = int(step)
    all_tags = dict(tags or {})
    all_tags.update(more_tags)
    if all_tags:
        payload["tags"] = {str(k): str(v) for k, v in all_tags.items()}
    if buckets is not None:
        payload["buckets"] = [_value(b) for b in buckets]
    line = json.dumps({"aether_metric": payload}, separators=(",", ":"))
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


ARTIFACT_KINDS = ("model", "report", "plot", "pdf", "other")


def artifact(path, kind=None, name=None, step=None, metrics=None):
    """Announces a finished file (and flushes stdout): the bridge hashes it
    and offers it to opsd with its step and metrics.

    path: relative to the job's working directory, or absolute; kind: one
    of ARTIFACT_KINDS (by default the artifact directory's <kind>/ it lies
    in, else guessed from the extension); name: 1 to 64 characters of
    [A-Za-z0-9_.-] (by default the file's name); metrics: a dict of at
    most 16 numbers.
    """
    payload = {"path": os.fspath(path)}
    if kind is not None:
        if kind not in ARTIFACT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(ARTIFACT_KINDS)}, not {kind!r}")
        payload["kind"] = kind
    if name is not None:
        payload["name"] = str(name)
    if step is not None:
        payload["step"] = int(step)
    if metrics:
        payload["metrics"] = {str(k): _value(v) for k, v in metrics.items()}
    line = json.dumps({"aether_artifact": payload}, separators=(",", ":"))
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def artifact_dir():
    """Where the job should write checkpoints and other results
    ($AETHER_ARTIFACT_DIR; the current directory outside the bridge)."""
    return os.environ.get("AETHER_ARTIFACT_DIR", ".")


def job_id():
    """The job's id ($AETHER_JOB_ID), or None outside the bridge."""
    value = os.environ.get("AETHER_JOB_ID")
    return int(value) if value is not None else None
