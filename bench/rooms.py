"""Rooms under load: fan-out in one 1,000-member room (deliveries/s) and the latency of room
messages at 1,000 msg/s with 1,000 members online, each beside the same figure for chat's
global broadcast and private messages measured in the same run, on the same server.

Run: ``./dev bench rooms [--members 1000] [--rate 1000] [--big-rate 50] [--measure 8]``. Not a
test. The server runs in its own process (``chatcore serve``, plugins auth, chat, rooms; history
on, TLS off, limits raised: ``load/servers.py``); the clients are the load harness's worker
processes (``load/worker.py``: non-blocking sockets, frames counted by their length header,
latency from send time stamps in the text, one monotonic clock).

- **fan-out**: every member is in room ``all``; 4 members send to it in a closed loop (one
  message in flight each, as the harness's broadcast run), the others count what arrives.
  The same 4 then broadcast to the global room (``peer: ""``) with everyone online.
- **latency at 1,000 msg/s**: 1,000 room messages a second cannot each reach 1,000 members
  (a million deliveries/s is several times the fan-out capacity measured above), so the
  offered load goes to 500 rooms of two members (every member is also in ``all``), one
  delivery per message like the harness's private-pairs latency, which is run beside it.
  Then the 1,000-member room itself at ``--big-rate`` messages/s (100 members spread over the
  membership decode every frame, the others 1 in 8), and the global broadcast at the same rate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from load.fleet import Fleet  # noqa: E402
from load.harness import Harness, users  # noqa: E402
from load.pool import Pool  # noqa: E402
from load.proc import settle  # noqa: E402
from load.scenarios import pairs, run  # noqa: E402
from load.sizes import Sizes  # noqa: E402

ROOM = "all"


def request(fleet: Fleet, requests: list[tuple[str, dict[str, Any]]], reply: str, timeout: float = 120.0) -> int:
    """Send each (name, request) and wait for its reply; returns how many got one."""
    per: list[list[tuple[str, dict[str, Any]]]] = [[] for _ in range(len(fleet.pool))]
    for name, payload in requests:
        per[fleet.where[name]].append((name, payload))
    replies = fleet.pool.call("request", [{"requests": p} for p in per], wait=timeout, reply=[reply], timeout=timeout)
    failures = [f for r in replies for f in r["failures"]]
    if failures:
        raise RuntimeError(f"{reply}: {failures[:3]}")
    return sum(r["done"] for r in replies)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--rate", type=int, default=1000, help="msg/s offered to the two-member rooms")
    parser.add_argument("--big-rate", type=int, default=50, help="msg/s offered to the big room")
    parser.add_argument("--measure", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "rooms.json")
    args = parser.parse_args(argv)
    sizes = Sizes(measure=args.measure)
    pool = Pool(args.workers)
    h = Harness(pool, sizes, args.out.parent)
    out: dict[str, Any] = {"members": args.members}
    try:
        server = h.start("chatcore", extra={"CHATCORE_PLUGINS": "auth,chat,rooms",
                                            "CHATCORE_ROOMS_MAX_MEMBERS": str(max(2000, args.members))})
        fleet = Fleet(pool, server.port)
        names = users("member", args.members)
        joined = fleet.connect(names, 400, 150, presence="batched")
        fleet.quiet(idle=1.0, timeout=60)
        h.log(f"{joined['ready']}/{args.members} online in {joined['seconds']:.1f} s; making room {ROOM!r}")
        request(fleet, [(names[0], {"command": "room_create", "room": ROOM})], "room_create_result")
        t0 = time.monotonic()
        request(fleet, [(n, {"command": "room_join", "room": ROOM}) for n in names[1:]], "room_join_result")
        couples = pairs(names)
        request(fleet, [(a, {"command": "room_create", "room": f"p-{a}"}) for a, _ in couples], "room_create_result")
        request(fleet, [(b, {"command": "room_join", "room": f"p-{a}"}) for a, b in couples], "room_join_result")
        fleet.quiet(idle=1.0, timeout=300)  # every join is an event to every member: n²/2 frames
        h.log(f"{args.members} members in {ROOM!r} and {len(couples)} two-member rooms in {time.monotonic() - t0:.1f} s")
        senders = names[:args.senders]
        listeners = names[args.senders:]

        def fan_out(peer: str, what: str) -> dict[str, Any]:
            settle(server, window=1.5, timeout=30)
            fleet.mode(decode=senders, count=listeners, sample=sizes.sample)
            r = run(fleet, server, [(s, peer) for s in senders], sizes.warmup, sizes.measure, sizes.drain, window=1)
            h.log(f"{what}: {r['delivered_per_s']:.0f} deliveries/s ({r['acked_per_s']:.0f} msg/s acked), errors "
                  f"{r['errors']}, disconnects {r['disconnects']}; {r['cpu_note']}")
            fleet.quiet(idle=1.0, timeout=60)
            return r

        def latency(senders_peers: list[tuple[str, str]], rate: int, decode: list[str], count: list[str],
                    what: str) -> dict[str, Any]:
            settle(server, window=1.5, timeout=30)
            fleet.mode(decode=decode, count=count, sample=sizes.sample)
            r = run(fleet, server, senders_peers, sizes.warmup / 2, sizes.measure, sizes.drain, rate=rate)
            r["offered"] = rate
            h.log(f"{what}: offered {rate}/s, {r['delivered_per_s']:.0f} delivered/s, p50 {r['p50_ms']} p99 "
                  f"{r['p99_ms']} max {r['max_ms']} ms ({r['samples']} samples), errors {r['errors']}; {r['cpu_note']}")
            fleet.quiet(idle=0.5, timeout=60)
            return r

        # twice each, alternating: on a shared machine one run can land on a busy moment
        runs = [(key, fan_out(peer, what)) for _ in range(2) for key, peer, what in (
            ("room_fanout", "#" + ROOM, f"room of {args.members}"),
            ("broadcast_fanout", "", f"global broadcast to {args.members}"))]
        for key in ("room_fanout", "broadcast_fanout"):
            mine = [r for k, r in runs if k == key]
            out[key] = max(mine, key=lambda r: r["delivered_per_s"])
            out[key]["runs_per_s"] = [round(r["delivered_per_s"]) for r in mine]
        out["room_pairs_latency"] = latency([(a, f"#p-{a}") for a, _ in couples], args.rate, names, [],
                                            f"{len(couples)} two-member rooms")
        out["private_pairs_latency"] = latency(couples, args.rate, names, [], f"{len(couples)} private pairs")
        # decoders spread over the whole membership: the server sends to members in its own
        # order (login order for a broadcast, join order for a room), and a fan-out's first
        # recipients get it sooner than its last
        decoders = listeners[::max(1, len(listeners) // 100)]
        counters = [n for n in listeners if n not in set(decoders)]
        out["big_room_latency"] = latency([(s, "#" + ROOM) for s in senders], args.big_rate,
                                          senders + decoders, counters, f"room of {args.members}")
        out["broadcast_latency"] = latency([(s, "") for s in senders], args.big_rate, senders + decoders, counters,
                                           f"global broadcast to {args.members}")
        out.update(h.finish(server, fleet))
    finally:
        pool.close()
        h.cleanup()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(table(out))
    return 0


def table(out: dict[str, Any]) -> str:
    n = out["members"]
    rf, bf = out["room_fanout"], out["broadcast_fanout"]
    rows = [("metric", "rooms", "chat (same run)"),
            (f"fan-out deliveries/s, {n} members, 4 senders (best of 2; runs)",
             f"{rf['delivered_per_s']:,.0f} ({', '.join(f'{x:,}' for x in rf['runs_per_s'])})",
             f"{bf['delivered_per_s']:,.0f} ({', '.join(f'{x:,}' for x in bf['runs_per_s'])}; global broadcast)")]
    for key, other, label in (("room_pairs_latency", "private_pairs_latency", "two-member rooms / private pairs"),):
        r, o = out[key], out[other]
        rows.append((f"p50 / p99 ms at {r['offered']} msg/s, {n} online ({label})",
                     f"{r['p50_ms']} / {r['p99_ms']}", f"{o['p50_ms']} / {o['p99_ms']}"))
    big, wide = out["big_room_latency"], out["broadcast_latency"]
    rows.append((f"p50 / p99 ms at {big['offered']} msg/s to {n} members ({big['delivered_per_s']:,.0f} deliveries/s)",
                 f"{big['p50_ms']} / {big['p99_ms']}", f"{wide['p50_ms']} / {wide['p99_ms']} (global broadcast)"))
    width = [max(len(str(row[i])) for row in rows) for i in range(3)]
    return "\n".join(" | ".join(str(c).ljust(w) for c, w in zip(row, width)) for row in rows)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
