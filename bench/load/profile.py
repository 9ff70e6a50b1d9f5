"""Summarise py-spy's raw (collapsed) stacks: where the server's samples fall, by function."""

from __future__ import annotations

import collections
import re
import sys
from pathlib import Path

FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:)]+)(?::\d+)?\)$")


def short(frame: str) -> str:
    """``func (path/to/module.py:12)`` -> ``module.py:func``."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    return f"{Path(match['file']).name}:{match['func']}"


def summarise(path: Path, top: int = 25) -> dict[str, list[tuple[str, float]]]:
    """Self and inclusive shares (% of samples) of the busiest functions, and samples per thread kind."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if frames and frames[0].startswith(("thread", "process")):
            frames = frames[1:]
        if frames and frames[0].startswith("thread"):
            frames = frames[1:]
        names = [short(f) for f in frames]
        total += n
        if names:
            own[names[-1]] += n
        for name in set(names):
            incl[name] += n
        kind = next((x for x in names if x.endswith(("_connection", ":run", "_accept_loop"))), "other")
        threads[kind] += n
    pct = lambda c: [(k, round(100 * v / max(1, total), 1)) for k, v in c.most_common(top)]  # noqa: E731
    return {"samples": [("total", float(total))], "self": pct(own), "inclusive": pct(incl), "threads": pct(threads)}


def main(argv: list[str]) -> int:
    for arg in argv:
        summary = summarise(Path(arg))
        print(f"== {arg}: {int(summary['samples'][0][1])} samples")
        for key in ("threads", "self", "inclusive"):
            print(f"-- {key} (% of samples)")
            for name, share in summary[key]:
                print(f"{share:6.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
