"""Turn the scenario results into rows (chatcore, baseline, ratio, target), a table, JSON and a plot."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

Check = Optional[Callable[[float, Optional[float], Optional[float]], bool]]


@dataclass
class Row:
    """One reported figure."""

    section: str
    metric: str
    unit: str
    chatcore: Optional[float]
    baseline: Optional[float]
    ratio: Optional[float]
    target: str = ""
    met: Optional[bool] = None


def _get(d: Any, *path: str) -> Optional[float]:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d if isinstance(d, (int, float)) and not isinstance(d, bool) else (float(d) if isinstance(d, bool) else None)


def rows(results: dict[str, Any], enforce: bool) -> list[Row]:
    """Every figure with its baseline ratio and, in a full run, whether the issue's target is met."""
    out: list[Row] = []

    def add(section: str, metric: str, unit: str, path: tuple[str, ...], target: str = "", check: Check = None,
            scenario: str = "") -> None:
        c = _get(results.get(scenario, {}).get("chatcore"), *path)
        b = _get(results.get(scenario, {}).get("baseline"), *path)
        ratio = c / b if c is not None and b not in (None, 0) else None
        met = check(c, b, ratio) if (check and enforce and c is not None) else None
        out.append(Row(section, metric, unit, c, b, ratio, target, met))

    if "connections" in results:
        sc = "connections"
        add("connections", "authenticated idle connections held", "conns", ("held",), "≥ 10,000",
            lambda c, b, r: c >= 10_000, sc)
        add("connections", "server RSS per connection", "KiB", ("kib_per_conn",), "≤ 40 KiB",
            lambda c, b, r: c <= 40, sc)
        add("connections", "time to connect + log in all", "s", ("login_all_s",), scenario=sc)
        add("connections", "frames received while logging in (all clients)", "frames", ("presence_frames",), scenario=sc)
        add("connections", "time until presence traffic ends", "s", ("presence_s",), scenario=sc)
        add("connections", "server RSS with all connected", "KiB", ("rss_after_kib",), scenario=sc)
        add("connections", "private probe delivered with all connected", "msgs", ("probe_private_delivered",),
            "1", lambda c, b, r: c == 1, sc)
        add("connections", "broadcast probe deliveries with all connected", "msgs", ("probe_broadcast_delivered",),
            scenario=sc)
        add("connections", "broadcast probe: slowest delivery", "ms", ("probe_broadcast_slowest_ms",), scenario=sc)
    if "login_cost" in results:
        c = _get(results["login_cost"], "per_s")
        out.append(Row("connections", "logins/s at default Argon2 (19 MiB, t=2)", "1/s", c, None, None))
    if "relay" in results:
        sc = "relay"
        add("relay", "private msgs/s (acked, saturated)", "msg/s", ("private", "acked_per_s"), "≥ 0.6 × baseline",
            lambda c, b, r: r is not None and r >= 0.6, sc)
        add("relay", "private deliveries/s (saturated)", "msg/s", ("private", "delivered_per_s"), scenario=sc)
        add("relay", "private p99 latency (saturated)", "ms", ("private", "p99_ms"), scenario=sc)
        for n in sorted(results["relay"].get("chatcore", {}).get("broadcast", {}), key=int):
            big = int(n) >= 1000
            add("relay", f"broadcast deliveries/s to {n} clients", "1/s", ("broadcast", n, "delivered_per_s"),
                "≥ 50,000" if big else "", (lambda c, b, r: c >= 50_000) if big else None, sc)
    for sc in ("relay", "latency"):  # the latency runs are part of relay, or run alone
        for rate in sorted(results.get(sc, {}).get("chatcore", {}).get("latency", {}), key=int):
            tgt = rate == "1000"
            for q in ("p50", "p99", "max"):
                add("relay", f"latency {q} at {rate} msg/s offered", "ms", ("latency", rate, f"{q}_ms"),
                    "≤ 2 ms" if tgt and q == "p99" else "", (lambda c, b, r: c <= 2.0) if tgt and q == "p99" else None, sc)
            add("relay", f"delivered/s at {rate} msg/s offered", "msg/s", ("latency", rate, "delivered_per_s"), scenario=sc)
    if "slow" in results:
        sc = "slow"
        add("slow consumer", "deliveries/s before the stall", "msg/s", ("before_per_s",), scenario=sc)
        add("slow consumer", "deliveries/s while one client stalls", "msg/s", ("during_per_s",),
            "≥ 0.8 × before", lambda c, b, r: c >= 0.8 * (_get(results[sc]["chatcore"], "before_per_s") or 0), sc)
        add("slow consumer", "deliveries/s after it is gone", "msg/s", ("after_per_s",), scenario=sc)
        add("slow consumer", "server RSS before the stall", "KiB", ("rss_before_kib",), scenario=sc)
        add("slow consumer", "server RSS peak during the stall", "KiB", ("rss_peak_during_kib",),
            "≤ before + 16 MiB",
            lambda c, b, r: c <= (_get(results[sc]["chatcore"], "rss_before_kib") or 0) + 16384, sc)
        add("slow consumer", "stalled client disconnected", "bool", ("stalled_client_disconnected",), scenario=sc)
    if "files" in results:
        sc = "files"
        add("files", "upload", "MB/s", ("upload_mbps",), "≥ 0.5 × baseline",
            lambda c, b, r: r is not None and r >= 0.5, sc)
        add("files", "download", "MB/s", ("download_mbps",), "≥ 0.5 × baseline",
            lambda c, b, r: r is not None and r >= 0.5, sc)
        add("files", "file intact (SHA-256)", "bool", ("intact",), scenario=sc)
        add("files", "server RSS before", "KiB", ("rss_before_kib",), scenario=sc)
        add("files", "server RSS peak during transfer", "KiB", ("rss_peak_kib",), "flat (≤ before + 64 MiB)",
            lambda c, b, r: c <= (_get(results[sc]["chatcore"], "rss_before_kib") or 0) + 65536, sc)
    return out


def fmt(value: Optional[float]) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(items: list[Row]) -> str:
    """A plain-text (also valid Markdown) table."""
    head = ["section", "metric", "unit", "chatcore", "baseline", "ratio", "target", "met"]
    lines = [[r.section, r.metric, r.unit, fmt(r.chatcore), fmt(r.baseline),
              f"{r.ratio:.2f}" if r.ratio is not None else "-", r.target,
              {True: "yes", False: "NO", None: ""}[r.met]] for r in items]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(head)]
    render = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([render(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(render, lines)])


def write_json(path: Path, meta: dict[str, Any], results: dict[str, Any], items: list[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "table": [asdict(r) for r in items], "results": results},
                               indent=1, default=str) + "\n")


def plot(path: Path, results: dict[str, Any], title: str) -> bool:
    """Latency (p50, p99, max) against offered load for chatcore and the baseline; False without data."""
    relay = results.get("relay", {})
    if not any(relay.get(t, {}).get("latency") for t in ("chatcore", "baseline")):
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    styles = {"chatcore": "-", "baseline": "--"}
    for target in ("chatcore", "baseline"):
        curve = relay.get(target, {}).get("latency", {})
        rates = sorted(curve, key=int)
        for q, marker in (("p50", "o"), ("p99", "s"), ("max", "^")):
            ys = [curve[r].get(f"{q}_ms") for r in rates]
            pts = [(int(r), y) for r, y in zip(rates, ys) if y is not None]
            if pts:
                ax.plot(*zip(*pts), styles[target], marker=marker, label=f"{target} {q}")
    ax.axhline(2.0, color="grey", linewidth=0.8, linestyle=":", label="target p99 at 1k msg/s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (private msg/s, open loop)")
    ax.set_ylabel("delivery latency (ms)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True
