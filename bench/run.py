"""chatcore's load benchmark: a real server in its own process, driven by load-generator
processes, every figure beside the same figure for a minimal threaded relay (the baseline).

    .venv/bin/python bench/run.py [--quick] [--only SCENARIO ...] [--profile]

Scenarios: connections, relay (broadcast, private, latency), slow, files; ``--only latency``
runs relay's latency part alone. Prints a table,
writes bench/results/latest.json and bench/results/latency.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SCENARIOS = ("connections", "relay", "slow", "files")
EXTRA_SCENARIOS = ("latency",)  # only with --only: relay's latency runs alone


def missing_dependencies() -> list[str]:
    """Bench-only packages that are not installed."""
    missing = []
    for module, package in (("matplotlib", "matplotlib"), ("chatcore", "chatcore (the project itself)")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    return missing


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="chatcore load benchmark (see bench/run.py's docstring)")
    parser.add_argument("--quick", action="store_true", help="small numbers, about two minutes")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS + EXTRA_SCENARIOS, metavar="SCENARIO",
                        help=f"run only these of: {', '.join(SCENARIOS + EXTRA_SCENARIOS)} "
                             "(latency: just relay's latency runs)")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes (default 2)")
    parser.add_argument("--profile", action="store_true",
                        help="sample the server with py-spy during the relay runs (slows it down)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline relay (no ratios)")
    parser.add_argument("--pythonpath", help="run chatcore from these paths (to try a change in a copy)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a size from load/sizes.py, e.g. --set connections=2000")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    return parser.parse_args(argv)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def main(argv: list[str]) -> int:
    args = parse(argv)
    missing = missing_dependencies()
    if missing:
        print("bench/run.py needs: " + ", ".join(missing) + "\n  install with: .venv/bin/pip install -r "
              "bench/requirements.txt (and the project: ./dev setup)", file=sys.stderr)
        return 2
    from load import report, scenarios
    from load.harness import Harness
    from load.pool import Pool
    from load.sizes import FULL, QUICK

    chosen = args.only or list(SCENARIOS)
    targets = ["chatcore"] if args.no_baseline else ["baseline", "chatcore"]
    started = datetime.datetime.now(datetime.timezone.utc)
    meta: dict[str, Any] = {"started": started.isoformat(timespec="seconds"), "quick": args.quick,
                            "scenarios": chosen, "workers": args.workers, "commit": git_commit(),
                            "python": platform.python_version(), "cpus": os.cpu_count(),
                            "loadavg_before": os.getloadavg(), "profile": args.profile,
                            "pythonpath": args.pythonpath}
    sizes = QUICK if args.quick else FULL
    for item in args.set:
        key, _, value = item.partition("=")
        current = getattr(sizes, key)
        parsed = tuple(int(v) for v in value.split(",")) if isinstance(current, tuple) else type(current)(value)
        sizes = dataclasses.replace(sizes, **{key: parsed})
    pool = Pool(args.workers)
    h = Harness(pool, sizes, args.out, args.profile, args.pythonpath)
    meta["sizes"] = {k: v for k, v in vars(h.sizes).items()}
    results: dict[str, Any] = {}
    runners: dict[str, Callable[[Harness, str], dict[str, Any]]] = {
        "connections": scenarios.connections, "relay": scenarios.relay, "slow": scenarios.slow,
        "files": scenarios.files, "latency": scenarios.latency_only}
    try:
        for name in chosen:
            results[name] = {}
            for target in targets:
                t = time.monotonic()
                try:
                    results[name][target] = runners[name](h, target)
                except Exception as exc:  # one failed scenario must not lose the others' numbers
                    h.log(f"{name} on {target} FAILED: {exc!r}")
                    results[name][target] = {"failed": repr(exc)}
                h.log(f"{name} on {target} took {time.monotonic() - t:.0f} s")
            if name == "connections":
                results["login_cost"] = scenarios.login_cost(h)
    finally:
        pool.close()
        h.cleanup()
    meta["seconds"] = round(time.monotonic() - h.t0, 1)
    meta["loadavg_after"] = os.getloadavg()
    meta["notes"] = h.notes
    items = report.rows(results, enforce=not args.quick)
    print(report.table(items))
    for note in h.notes:
        print("note:", note)
    out_json = args.out / "latest.json"
    report.write_json(out_json, meta, results, items)
    title = f"chatcore vs baseline, {meta['started']} ({'quick' if args.quick else 'full'}), commit {meta['commit']}"
    plotted = report.plot(args.out / "latency.png", results, title)
    print(f"\nwrote {out_json}" + (f" and {args.out / 'latency.png'}" if plotted else "") +
          f" in {meta['seconds']:.0f} s (load average before {meta['loadavg_before'][0]:.2f}, "
          f"after {meta['loadavg_after'][0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
