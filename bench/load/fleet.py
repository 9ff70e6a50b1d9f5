"""Many clients spread over the worker processes, addressed by user name."""

from __future__ import annotations

import time
from typing import Any, Optional, Sequence

from load.pool import Pool
from load.proc import cpu_seconds


def percentiles(samples_us: Sequence[int]) -> dict[str, Optional[float]]:
    """p50 / p99 / max in milliseconds (None without samples)."""
    if not samples_us:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "samples": 0}
    s = sorted(samples_us)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] / 1000.0  # noqa: E731
    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": s[-1] / 1000.0, "samples": len(s)}


class Fleet:
    """Client connections on the workers of ``pool``; user i lives on worker i % N."""

    def __init__(self, pool: Pool, port: int) -> None:
        self.pool = pool
        self.port = port
        self.where: dict[str, int] = {}

    def split(self, names: Sequence[str]) -> list[list[str]]:
        """Names per worker (a name already placed stays where it is)."""
        out: list[list[str]] = [[] for _ in range(len(self.pool))]
        for name in names:
            w = self.where.setdefault(name, len(self.where) % len(self.pool))
            out[w].append(name)
        return out

    def connect(self, names: Sequence[str], concurrency: int = 200, timeout: float = 120.0,
                register: bool = True, presence: str = "") -> dict[str, Any]:
        """Connect and log in ``names`` from all workers at once; wall time until all are in.
        ``presence``: the mode each asks for in hello ("" says no hello)."""
        parts = self.split(names)
        start = time.monotonic()
        replies = self.pool.call("connect", [{"names": p} for p in parts], wait=timeout, port=self.port,
                                 concurrency=max(1, concurrency // len(self.pool)), timeout=timeout,
                                 register=register, presence=presence)
        waits = [r["login_wait_p50"] for r in replies if r["login_wait_p50"] is not None]
        return {"ready": sum(r["ready"] for r in replies), "asked": len(names),
                "seconds": max(r["elapsed"] for r in replies), "wall": time.monotonic() - start,
                "timed_out": any(r["timed_out"] for r in replies),
                "failures": [f for r in replies for f in r["failures"]][:10],
                "login_wait_p50_ms": 1000 * sorted(waits)[len(waits) // 2] if waits else None,
                "login_wait_max_ms": 1000 * max(r["login_wait_max"] or 0 for r in replies),
                "nofile": min(r["nofile"] for r in replies), "frames": sum(r["frames"] for r in replies),
                "ready_names": sorted(n for r in replies for n in r["ready_names"])}

    def quiet(self, idle: float = 1.0, timeout: float = 120.0) -> dict[str, Any]:
        """Read everything the server still sends until it has been silent for ``idle`` seconds."""
        replies = self.pool.call("quiet", wait=timeout, timeout=timeout, idle=idle)
        return {"frames": sum(r["frames"] for r in replies), "bytes": sum(r["bytes"] for r in replies),
                "seconds": max(r["elapsed"] for r in replies), "disconnects": sum(r["disconnects"] for r in replies)}

    def mode(self, decode: Sequence[str] = (), count: Sequence[str] = (), sample: Optional[int] = None,
             ignore: Sequence[str] = ()) -> None:
        """Which clients decode everything, which only count frames (sampling 1 in ``sample``),
        which are left out of delivery counts."""
        d, c, g = self.split(decode), self.split(count), self.split(ignore)
        self.pool.call("mode", [{"decode": d[i], "count": c[i], "ignore": g[i]} for i in range(len(self.pool))],
                       sample=sample)

    def run(self, senders: Sequence[tuple[str, ...]], warmup: float, measure: float, drain: float,
            window: int = 0, rate: float = 0.0, text_size: int = 64) -> dict[str, Any]:
        """Run traffic from (name, peer[, text size]) on every worker at once and add up what they counted."""
        parts: list[list[tuple[str, str, int]]] = [[] for _ in range(len(self.pool))]
        for name, peer, *size in senders:
            parts[self.where[name]].append((name, peer, size[0] if size else 0))
        total = max(1, len(senders))
        start = time.monotonic() + 0.3
        args = [{"senders": p, "rate": rate * len(p) / total} for p in parts]
        cpu0 = self.cpu()
        replies = self.pool.call("run", args, wait=warmup + measure + drain + 10, start=start, warmup=warmup,
                                 measure=measure, drain=drain, window=window, text_size=text_size)
        cpu = [round(b - a, 2) for a, b in zip(cpu0, self.cpu())]
        lat = [x for r in replies for x in r["latencies"]]
        sent = sum(r["sent"] for r in replies)
        acked = sum(r["acked_in_window"] or 0 for r in replies)
        delivered = sum(r["delivered_in_window"] for r in replies)
        return {"sent_per_s": sent / measure, "acked_per_s": acked / measure, "delivered_per_s": delivered / measure,
                "sent_total": sum(r["sent_total"] for r in replies), "acked_total": sum(r["acked"] for r in replies),
                "delivered_total": sum(r["delivered_total"] for r in replies),
                "errors": sum(r["errors"] for r in replies),
                "error_samples": [e for r in replies for e in r["error_samples"]][:5],
                "in_flight_at_end": sum(r["in_flight"] for r in replies),
                "disconnects": sum(r["disconnects"] for r in replies), "loadgen_cpu_s": cpu,
                "seconds": warmup + measure + drain, **percentiles(lat)}

    def cpu(self) -> list[float]:
        """CPU seconds used so far by each worker process."""
        return [cpu_seconds(pid) for pid in self.pool.pids()]

    def probe(self, sender: str, peer: str, receivers: Sequence[str], timeout: float = 30.0) -> dict[str, Any]:
        """One marked message; how many of ``receivers`` got it and the slowest delivery."""
        self.pool.call("probes", reset=True, expect=0)
        self.mode(decode=list(receivers) + [sender])
        ack = self.pool.call("probe", workers=[self.where[sender]], wait=timeout, timeout=timeout, sender=sender,
                             peer=peer)[0]
        per = self.split(receivers)
        got = self.pool.call("probes", [{"expect": len(p)} for p in per], wait=timeout, timeout=timeout)
        maxes = [g["max_us"] for g in got if g["max_us"] is not None]
        return {"acked": ack["acked"], "ack_ms": ack["ack_ms"], "delivered": sum(g["count"] for g in got),
                "expected": len(receivers), "slowest_ms": max(maxes) / 1000 if maxes else None}

    def reading(self, names: Sequence[str], reading: bool) -> None:
        parts = self.split(names)
        self.pool.call("reading", [{"names": p} for p in parts], reading=reading)

    def alive(self, names: Sequence[str], timeout: float = 15.0) -> int:
        parts = self.split(names)
        return sum(r["open"] for r in self.pool.call("alive", [{"names": p} for p in parts], wait=timeout, timeout=timeout))

    def close(self) -> None:
        self.pool.call("close_all", wait=60)
        self.where.clear()
