#!/usr/bin/env python3
"""Writes checkpoints the way a trainer would, for the artifact tests and
benchmarks: one file per validation loss given, each announced with its
step and `val_loss` (the bytes are a function of the index, so a test can
rebuild them).

    checkpoints.py LOSS1,LOSS2,... [--size BYTES] [--name NAME]
                   [--every S] [--dir-only]

--size      bytes per checkpoint (default 262144)
--dir-only  write into $AETHER_ARTIFACT_DIR/model/NAME (temporary file,
            then rename) instead of announcing each file: the bridge finds
            them by polling; waits --every (default 0.8 s) after each
--stamp     print "written I NS" (host unix ns) on stderr after each file
"""

import argparse
import os
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aether  # noqa: E402


def content(index, size):
    """The bytes of checkpoint `index` (from 0)."""
    block = bytes((k * (index + 1) + index) % 256 for k in range(4096))
    whole, rest = divmod(size, len(block))
    return block * whole + block[:rest]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("losses")
    p.add_argument("--size", type=int, default=262144)
    p.add_argument("--name", default="ckpt")
    p.add_argument("--every", type=float, default=0.8)
    p.add_argument("--dir-only", action="store_true")
    p.add_argument("--stamp", action="store_true")
    a = p.parse_args()
    scratch = tempfile.mkdtemp(prefix="aether-ckpt-")
    for i, text in enumerate(a.losses.split(",")):
        loss = float(text)
        step = (i + 1) * 100
        data = content(i, a.size)
        if a.dir_only:
            d = os.path.join(aether.artifact_dir(), "model")
            os.makedirs(d, exist_ok=True)
            tmp = os.path.join(d, a.name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, os.path.join(d, a.name))
        else:
            path = os.path.join(scratch, f"{a.name}-{i}.pt")
            with open(path, "wb") as f:
                f.write(data)
            aether.artifact(path, kind="model", name=a.name, step=step, metrics={"val_loss": loss})
        if a.stamp:
            print(f"written {i} {time.time_ns()}", file=sys.stderr, flush=True)
        print(f"checkpoint {i} step {step} val_loss {loss}", flush=True)
        if a.dir_only:
            time.sleep(a.every)


if __name__ == "__main__":
    main()
