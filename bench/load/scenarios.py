"""The scenarios of issue 8. Each runs against one target ("chatcore" or "baseline") and
returns plain numbers; ``report`` turns the pair into ratios."""

from __future__ import annotations

import time
from typing import Any

from load.fleet import Fleet
from load.harness import Harness, sampler, users
from load.proc import machine_ticks, settle, steal_percent

FLOOD_TEXT = 3900  # characters per message written to the stalled client (the limit is 4,000)


def connections(h: Harness, target: str) -> dict[str, Any]:
    """Authenticated idle connections: how many, RSS each, time to log in all, a message still gets through."""
    n = h.sizes.connections
    server = h.start(target)
    fleet = Fleet(h.pool, server.port)
    try:
        rss0 = server.rss_kib()
        h.log(f"{target}: connecting and logging in {n} clients")
        cpu0, lg0 = server.cpu(), sum(fleet.cpu())
        conn = fleet.connect(users("idle", n), h.sizes.connect_concurrency, h.sizes.connect_timeout,
                             presence=h.sizes.presence)
        cpu1, lg1 = server.cpu(), sum(fleet.cpu())
        h.log(f"{target}: {conn['ready']}/{n} logged in after {conn['seconds']:.1f} s (server {cpu1 - cpu0:.1f} "
              f"CPU-s, load generators {lg1 - lg0:.1f} CPU-s); draining presence events")
        storm = fleet.quiet(idle=2.0, timeout=h.sizes.quiet_timeout)
        settle(server, timeout=30)
        status = server.status()
        rss1 = status.get("VmRSS", 0)
        names = conn["ready_names"]
        private = fleet.probe(names[0], names[-1], [names[-1]])
        everyone = fleet.probe(names[1], "", names[:1] + names[2:], timeout=60)
        h.log(f"{target}: private probe {private}, broadcast probe delivered {everyone['delivered']}/{everyone['expected']}")
        out = {"held": conn["ready"], "asked": n, "login_all_s": conn["seconds"], "timed_out": conn["timed_out"],
               "failures": conn["failures"], "login_wait_p50_ms": conn["login_wait_p50_ms"],
               "presence_frames": conn["frames"] + storm["frames"], "presence_s": conn["seconds"] + storm["seconds"],
               "rss_before_kib": rss0, "rss_after_kib": rss1, "threads": status.get("Threads"),
               "kib_per_conn": (rss1 - rss0) / max(1, conn["ready"]),
               "probe_private_delivered": private["delivered"], "probe_private_ms": private["slowest_ms"],
               "probe_broadcast_delivered": everyone["delivered"], "probe_broadcast_expected": everyone["expected"],
               "probe_broadcast_slowest_ms": everyone["slowest_ms"], "loadgen_nofile": conn["nofile"],
               "connect_server_cpu_s": cpu1 - cpu0, "connect_loadgen_cpu_s": lg1 - lg0,
               "presence_drained": storm["seconds"] < h.sizes.quiet_timeout}
    finally:
        out_stop = h.finish(server, fleet, graceful=target == "baseline")
    out.update(out_stop)
    return out


def login_cost(h: Harness) -> dict[str, Any]:
    """Logins per second at the default Argon2 parameters (the load runs use cheap hashing)."""
    server = h.start("chatcore", fast_hash=False)
    fleet = Fleet(h.pool, server.port)
    try:
        names = users("cost", h.sizes.login_cost_users)
        fleet.connect(names, concurrency=16, timeout=120)
        fleet.close()
        timed = fleet.connect(names, concurrency=16, timeout=120, register=False)
    finally:
        h.finish(server, fleet)
    return {"logins": timed["ready"], "seconds": timed["seconds"], "per_s": timed["ready"] / timed["seconds"],
            "login_wait_p50_ms": timed["login_wait_p50_ms"]}


def relay(h: Harness, target: str) -> dict[str, Any]:
    """Broadcast fan-out to each client count, private pairs saturated, latency at fixed offered loads."""
    s = h.sizes
    server = h.start(target)
    fleet = Fleet(h.pool, server.port)
    out: dict[str, Any] = {"broadcast": {}, "latency": {}}
    online: list[str] = []
    try:
        for clients in sorted(s.broadcast_clients):
            grow(h, fleet, online, clients, target)
            senders = online[:s.broadcast_senders]
            fleet.mode(decode=senders, count=online[s.broadcast_senders:], sample=s.sample)
            h.log(f"{target}: broadcast from {len(senders)} senders to {clients} clients")
            spy = h.profiler(server, f"broadcast{clients}", s.warmup + s.measure) if clients == max(s.broadcast_clients) else None
            r = run(fleet, server, [(x, "") for x in senders], s.warmup, s.measure, s.drain, window=s.broadcast_window)
            wait(spy)
            r["clients"] = clients
            out["broadcast"][str(clients)] = r
            h.log(f"{target}: {r['delivered_per_s']:.0f} deliveries/s ({r['acked_per_s']:.0f} msg/s), "
                  f"p99 {r['p99_ms']} ms, disconnects {r['disconnects']}; {r['cpu_note']}")
            fleet.quiet(idle=1.0, timeout=60)
            if clients == min(s.broadcast_clients):
                grow(h, fleet, online, s.relay_clients, target)
                out["private"] = private(h, fleet, server, online, target)
                out["latency"] = latency(h, fleet, server, online, target)
    finally:
        out.update(h.finish(server, fleet))
    return out


def latency_only(h: Harness, target: str) -> dict[str, Any]:
    """Just the relay scenario's latency runs (``relay_clients`` online), to try a change quickly."""
    server = h.start(target)
    fleet = Fleet(h.pool, server.port)
    online: list[str] = []
    try:
        grow(h, fleet, online, h.sizes.relay_clients, target)
        out = {"latency": latency(h, fleet, server, online, target)}
    finally:
        out_stop = h.finish(server, fleet)
    out.update(out_stop)
    return out


def grow(h: Harness, fleet: Fleet, online: list[str], clients: int, target: str) -> None:
    """Log in more clients until ``clients`` are online, then let presence traffic settle."""
    if len(online) >= clients:
        return
    more = users("relay", clients - len(online), len(online))
    r = fleet.connect(more, h.sizes.connect_concurrency, h.sizes.connect_timeout, presence=h.sizes.presence)
    online.extend(more)
    fleet.quiet(idle=1.0, timeout=120)
    h.log(f"{target}: {len(online)} clients online ({r['ready']}/{len(more)} new in {r['seconds']:.1f} s)")


def pairs(online: list[str]) -> list[tuple[str, str]]:
    """Sender 2k -> receiver 2k+1 (always on another worker)."""
    return [(online[i], online[i + 1]) for i in range(0, len(online) - 1, 2)]


def private(h: Harness, fleet: Fleet, server: Any, online: list[str], target: str) -> dict[str, Any]:
    """Private messages between many pairs at once, each sender keeping a window in flight."""
    s = h.sizes
    p = pairs(online)
    fleet.mode(decode=[a for a, _ in p], count=[b for _, b in p], sample=s.sample)
    h.log(f"{target}: private relay, {len(p)} pairs, window {s.relay_window}")
    spy = h.profiler(server, "private", s.warmup + s.measure)
    r = run(fleet, server, p, s.warmup, s.measure, s.drain, window=s.relay_window)
    wait(spy)
    r["pairs"] = len(p)
    h.log(f"{target}: {r['acked_per_s']:.0f} msg/s acked, {r['delivered_per_s']:.0f} delivered/s, "
          f"p99 {r['p99_ms']} ms, errors {r['errors']}; {r['cpu_note']}")
    fleet.quiet(idle=1.0, timeout=60)
    return r


def latency(h: Harness, fleet: Fleet, server: Any, online: list[str], target: str) -> dict[str, Any]:
    """Open-loop offered loads with every client connected: delivery latency p50/p99/max."""
    s = h.sizes
    p = pairs(online)
    fleet.mode(decode=online)
    out = {}
    for rate in s.rates:
        # steady state: let the server finish what the last run left (its checkpoint of the
        # history written at full speed) before timing deliveries
        settle(server, window=1.5, timeout=30)
        r = run(fleet, server, p, s.warmup / 2, s.measure, s.drain, rate=rate)
        r["offered"] = rate
        r["lost"] = max(0, r["sent_total"] - r["delivered_total"])
        out[str(rate)] = r
        h.log(f"{target}: offered {rate}/s -> {r['delivered_per_s']:.0f}/s delivered, p50 {r['p50_ms']} "
              f"p99 {r['p99_ms']} max {r['max_ms']} ms; {r['cpu_note']}")
        fleet.quiet(idle=0.5, timeout=60)
    return out


def slow(h: Harness, target: str) -> dict[str, Any]:
    """One client stops reading while others chat (and a few keep writing to it): the others'
    delivery rate and server memory before, during and after."""
    s = h.sizes
    server = h.start(target)
    fleet = Fleet(h.pool, server.port)
    rss = sampler(server)
    try:
        online = users("slow", 2 * s.slow_pairs + s.slow_flooders + 1)
        fleet.connect(online, s.connect_concurrency, s.connect_timeout, presence=s.presence)
        fleet.quiet(idle=1.0, timeout=60)
        victim = online[-1]
        flooders = online[2 * s.slow_pairs:-1]
        others = pairs(online[:2 * s.slow_pairs])
        flood = [(f, victim, FLOOD_TEXT) for f in flooders]
        fleet.mode(decode=[a for a, _ in others] + flooders, count=[b for _, b in others], ignore=[victim],
                   sample=s.sample)
        before = run(fleet, server, others + flood, 1.0, s.measure / 2, 1.0, window=s.relay_window)
        rss_before = server.rss_kib()
        fleet.reading([victim], False)
        t_stall = time.monotonic()
        h.log(f"{target}: {victim} stops reading ({len(flooders)} clients keep writing to it); "
              f"{before['delivered_per_s']:.0f}/s delivered before")
        during = run(fleet, server, others + flood, 0.5, s.slow_stalled, 1.0, window=s.relay_window)
        rss_during = rss.peak(since=t_stall)
        after = run(fleet, server, others, 0.5, s.measure / 2, 1.0, window=s.relay_window)
        still_open = fleet.alive([victim], timeout=10)
        rss.stop()
        out = {"before_per_s": before["delivered_per_s"], "during_per_s": during["delivered_per_s"],
               "after_per_s": after["delivered_per_s"], "flood_frames_before_per_s": before["acked_per_s"] - before["delivered_per_s"],
               "rss_before_kib": rss_before, "rss_peak_during_kib": rss_during, "rss_after_kib": server.rss_kib(),
               "stalled_client_disconnected": not still_open, "pairs": len(others), "flooders": len(flooders),
               "errors": before["errors"] + during["errors"] + after["errors"],
               "cpu": [before["cpu_note"], during["cpu_note"], after["cpu_note"]]}
        h.log(f"{target}: others during {out['during_per_s']:.0f}/s, after {out['after_per_s']:.0f}/s; RSS "
              f"{rss_before} -> peak {rss_during} KiB; stalled client disconnected: {not still_open}")
    finally:
        rss.stop()
        stopped = h.finish(server, fleet)
    out.update(stopped)
    return out


def files(h: Harness, target: str) -> dict[str, Any]:
    """Upload and download one file through the server; server RSS before, at peak, and its high-water mark."""
    size = h.sizes.file_mib << 20
    server = h.start(target)
    rss = sampler(server)
    try:
        rss0 = server.rss_kib()
        r = h.pool.call("files", workers=[0], wait=900, port=server.port, size=size, sender="fileA",
                        recipient="fileB", timeout=300)[0]
        samples = rss.stop()
        r.update({"rss_before_kib": rss0, "rss_peak_kib": max(k for _, k in samples),
                  "hwm_kib": server.status().get("VmHWM")})
        h.log(f"{target}: upload {r['upload_mbps']:.1f} MB/s, download {r['download_mbps']:.1f} MB/s, "
              f"intact {r['intact']}, RSS {rss0} -> peak {r['rss_peak_kib']} KiB")
    finally:
        rss.stop()
        r_stop = h.finish(server, None)
    r.update(r_stop)
    return r


def run(fleet: Fleet, server: Any, senders: list[tuple[str, str]], warmup: float, measure: float, drain: float,
        **kw: Any) -> dict[str, Any]:
    """``fleet.run`` plus the CPU the server used meanwhile (who was the bottleneck?)."""
    cpu0, ticks0 = server.cpu(), machine_ticks()
    r = fleet.run(senders, warmup, measure, drain, **kw)
    r["server_cpu_s"] = round(server.cpu() - cpu0, 2)
    r["steal_pct"] = steal_percent(ticks0)
    h_log = (f"server {r['server_cpu_s']} CPU-s, load generators {r['loadgen_cpu_s']} CPU-s in {r['seconds']:.1f} s, "
             f"steal {r['steal_pct']}%")
    r["cpu_note"] = h_log
    return r


def wait(spy: Any) -> None:
    if spy is not None:
        spy.wait(60)
