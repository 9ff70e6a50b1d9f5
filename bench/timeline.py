"""Where a message's latency goes inside the server: the load harness's fixed-rate latency run
with ``bench/timeline/sitecustomize.py`` loaded into ``chatcore serve``, which notes when each
message reached each stage, measured from the client's send (one monotonic clock for every
process):

  1 frame read    the reactor has the whole frame (the kernel, the reactor's wake-up, the read)
  2 worker        a worker starts on it (the hand-off between threads)
  3 store began   its insert starts (decoding, dispatch, the chat command; waiting for the store)
  4 committed     its transaction committed
  5 delivered     the recipient's frame is queued (usually written to the socket)
  6 acknowledged  the sender's chat_ack is queued

It also lists the store's long batches, the WAL checkpoints and the times they held writes
back, Python's garbage collections of 1 ms or more, and how many slow messages were near one. Run: ``./dev bench timeline [--rate 1000] [--slow-ms 1]``. Not a test; the
probe adds a few microseconds per stage, so read the steps, not the total.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NEAR_NS = 5_000_000  # a message "near" a checkpoint or batch began within 5 ms of it


def read(path: Path) -> tuple[list[tuple[int, dict[str, int]]], list[tuple[int, int, str, int]]]:
    """The probe's file: messages (send ns, stage -> ns after the send) and spans."""
    messages, spans = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        kind, *fields = line.split()
        if kind == "m":
            stages = dict(field.split("=") for field in fields[1:])
            messages.append((int(fields[0]), {name.replace("_", " "): int(ns) for name, ns in stages.items()}))
        elif kind == "s":
            spans.append((int(fields[0]), int(fields[1]), fields[2].replace("_", " "), int(fields[3])))
    return messages, spans


def quantile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def steps(marks: dict[str, int], stages: list[str]) -> dict[str, int]:
    """How long each stage took after the one before it (the first: after the send), in ns."""
    return {stage: marks[stage] - (marks[before] if before else 0) for before, stage in zip([None, *stages], stages)}


def report(messages: list[tuple[int, dict[str, int]]], spans: list[tuple[int, int, str, int]], slow_ms: float) -> None:
    stages = sorted({name for _, stages in messages for name in stages})
    complete = [(sent, marks) for sent, marks in messages if len(marks) == len(stages)]
    print(f"{len(complete)} messages went through every stage ({len(messages)} seen)")
    print(f"{'stage':16} {'since send p50':>15} {'p90':>8} {'| step p50':>11} {'p90':>8} {'p99':>8}   (µs)")
    durations = [steps(marks, stages) for _, marks in complete]
    for stage in stages:
        since = [marks[stage] / 1000 for _, marks in complete]
        step = [taken[stage] / 1000 for taken in durations]
        print(f"{stage:16} {quantile(since, .5):15.1f} {quantile(since, .9):8.1f} | {quantile(step, .5):9.1f}"
              f" {quantile(step, .9):8.1f} {quantile(step, .99):8.1f}")
    last = stages[-1] if stages else ""
    slow = [(sent, marks) for sent, marks in complete if marks[last] > slow_ms * 1e6]
    blame: collections.Counter[str] = collections.Counter()
    for _, marks in slow:
        taken = steps(marks, stages)
        blame[max(taken, key=lambda stage: taken[stage])] += 1
    print(f"\n{len(slow)} messages took over {slow_ms:g} ms to their acknowledgement; their longest step:",
          ", ".join(f"{stage} {count}" for stage, count in blame.most_common()) or "-")
    for what in sorted({what for _, _, what, _ in spans}):
        chosen = [(start, end, size) for start, end, name, size in spans if name == what]
        lengths = [(end - start) / 1e6 for start, end, _ in chosen]
        near = sum(any(start - NEAR_NS <= sent <= end + NEAR_NS for start, end, _ in chosen) for sent, _ in slow)
        print(f"{what}: {len(chosen)}, ms p50 {quantile(lengths, .5):.2f} max {max(lengths):.2f},"
              f" size (operations or WAL frames) p50 {quantile([s for *_, s in chosen], .5):.0f};"
              f" slow messages within {NEAR_NS / 1e6:g} ms of one: {near}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=1000, help="messages per second offered (default 1000)")
    parser.add_argument("--slow-ms", type=float, default=1.0, help="a message slower than this is 'slow' (default 1)")
    parser.add_argument("--pythonpath", default="", help="run chatcore from these paths too (to compare a commit)")
    parser.add_argument("--save", type=Path, help="keep the probe's raw file here (lines 'm' per message, 's' per span)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chatcore-timeline-") as scratch:
        out = Path(scratch) / "timeline.txt"
        paths = os.pathsep.join(filter(None, [str(HERE / "timeline"), args.pythonpath]))
        subprocess.run([sys.executable, str(HERE / "run.py"), "--only", "latency", "--no-baseline",
                        "--set", f"rates={args.rate}", "--pythonpath", paths, "--out", scratch],
                       env={**os.environ, "TIMELINE_OUT": str(out)}, check=True)
        if not out.exists():
            raise SystemExit("the server wrote no timeline (did it start with the probe?)")
        print()
        report(*read(out), args.slow_ms)
        if args.save:
            shutil.copyfile(out, args.save)


if __name__ == "__main__":
    main()
