#!/usr/bin/env python3
"""A scripted trainer for the telemetry tests and benchmarks: prints one
metric line per value, then optionally goes silent.

    scripted.py NAME V1,V2,... [--every S] [--silent S] [--stamp]

--every S   seconds between points (default 0.2)
--silent S  then print nothing for S seconds before exiting 0
--stamp     print each point's host time (unix ns) on stderr first:
            "stamp STEP NS" (the alert-latency benchmark's clock)
"""

import argparse
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aether  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("values")
    p.add_argument("--every", type=float, default=0.2)
    p.add_argument("--silent", type=float, default=0.0)
    p.add_argument("--stamp", action="store_true")
    a = p.parse_args()
    for step, text in enumerate(a.values.split(",")):
        value = float(text)
        if a.stamp:
            print(f"stamp {step} {time.time_ns()}", file=sys.stderr, flush=True)
        aether.metric(a.name, value, step=step)
        sys.stdout.flush()
        time.sleep(a.every)
    sys.stdout.flush()
    time.sleep(a.silent)


if __name__ == "__main__":
    main()
