"""A tiny, dependency-free helper for AetherOS host jobs (docs/jobs.md).

    import aether
    aether.metric("loss", 0.42, step=120, split="train")

prints one metric line on stdout and flushes it:

    {"aether_metric": {"name": "loss", "value": 0.42, "step": 120, "tags": {"split": "train"}}}

The host bridge turns such lines into metric points (the line also stays in
the job's log). No library is needed to do the same: any program may print
the line itself. NaN and infinities, which JSON cannot spell, are sent as
the strings "NaN", "Infinity" and "-Infinity".
"""

import json
import math
import os
import sys

__all__ = ["metric", "artifact_dir", "job_id"]


def _value(value):
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def metric(name, value, step=None, **tags):
    """Prints one metric line (and flushes stdout, so it is not held back
    in a buffer while the job runs)."""
    payload = {"name": str(name), "value": _value(value)}
    if step is not None:
        payload["step"] = int(step)
    if tags:
        payload["tags"] = {str(k): str(v) for k, v in tags.items()}
    line = json.dumps({"aether_metric": payload}, separators=(",", ":"))
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
