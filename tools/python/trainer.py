#!/usr/bin/env python3
"""A training-loop fixture for the host bridge's tests (and a small
example of a job): prints progress lines and metric lines, writes a
checkpoint into $AETHER_ARTIFACT_DIR when asked to stop (SIGTERM: it ends
the current step, saves and exits 0) and when it finishes.

    trainer.py [--steps N] [--sleep S] [--exit CODE] [--ignore-term]
               [--fork-grandchildren] [--setsid-grandchild] [--bad-metric]

--ignore-term         ignore SIGTERM (the bridge must SIGKILL it)
--fork-grandchildren  start two helper processes that ignore SIGTERM
--setsid-grandchild   start a daemon that leaves the job's session and
                      process group (double fork + setsid), so only the
                      shim's subreaper can find it
--bad-metric          also print one malformed metric line

Prints "ready" (stdout) once its helpers run, "step I/N loss=..." and a
metric line per step, and "trainer: ..." lines on stderr.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

# aether.py sits beside this file; no __pycache__ is left in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aether  # noqa: E402

# Helpers live at most this long, so a failed test leaves nothing for long.
HELPER_LIFETIME_S = 120

SLEEPER = f"""
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep({HELPER_LIFETIME_S})
"""

# Double fork: the intermediate waits until the daemon has left the
# session (setsid), then exits, so the daemon is an orphan outside the
# job's process group by the time the trainer prints "ready".
DAEMON = f"""
import os, signal, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.write(w, b"x")
    os.write(1, b"daemon %d\\n" % os.getpid())
    time.sleep({HELPER_LIFETIME_S})
    os._exit(0)
os.read(r, 1)
os._exit(0)
"""

step = 0


def checkpoint(reason):
    path = os.path.join(aether.artifact_dir(), "checkpoint.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"step": step, "reason": reason}, f)
    os.replace(tmp, path)
    print(f"checkpoint written at step {step} ({reason})", flush=True)


stop_requested = False


def on_term(signum, frame):
    # Only a flag: printing from a signal handler can interrupt a print of
    # the main loop (a reentrant write to the same buffer is an error). The
    # loop checks the flag after every step, as a real training loop would.
    global stop_requested
    stop_requested = True


# Installed before argument parsing so that even an early stop finds it.
signal.signal(signal.SIGTERM, signal.SIG_IGN if "--ignore-term" in sys.argv[1:] else on_term)


def main():
    global step
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--sleep", type=float, default=0.01)
    p.add_argument("--exit", type=int, default=0)
    p.add_argument("--ignore-term", action="store_true")
    p.add_argument("--fork-grandchildren", action="store_true")
    p.add_argument("--setsid-grandchild", action="store_true")
    p.add_argument("--bad-metric", action="store_true")
    args = p.parse_args()

    print(f"trainer: start, job {aether.job_id()}, {args.steps} steps", file=sys.stderr, flush=True)

    if args.fork_grandchildren:
        for _ in range(2):
            subprocess.Popen([sys.executable, "-c", SLEEPER])
    if args.setsid_grandchild:
        # The intermediate exits at once: the daemon is reparented to the
        # nearest subreaper (the shim) while the job still runs.
        subprocess.run([sys.executable, "-c", DAEMON], check=True)
    print("ready", flush=True)

    for i in range(1, args.steps + 1):
        if stop_requested:
            break
        loss = 1.0 / i
        print(f"step {i}/{args.steps} loss={loss:.4f}", flush=True)
        aether.metric("loss", loss, step=i, split="train")
        if args.bad_metric and i == 1:
            print('{"aether_metric": {"name": "loss", "value": }', flush=True)
        step = i
        time.sleep(args.sleep)

    if stop_requested:
        print("trainer: SIGTERM, saving a checkpoint", file=sys.stderr, flush=True)
        checkpoint("sigterm")
        sys.exit(0)
    checkpoint("finished")
    print("trainer: finished", file=sys.stderr, flush=True)
    sys.exit(args.exit)


if __name__ == "__main__":
    main()
