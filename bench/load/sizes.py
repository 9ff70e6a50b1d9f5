"""How big each scenario runs: the full run (targets of issue 8) and --quick (a smoke run)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sizes:
    """Every count and duration the scenarios use; all loops are bounded by these."""

    connections: int = 10_000
    connect_concurrency: int = 400
    connect_timeout: float = 150.0
    presence: str = "batched"  # what clients ask for in hello; "each" = a legacy peer_joined per user
    quiet_timeout: float = 60.0
    login_cost_users: int = 40
    relay_clients: int = 1000
    relay_window: int = 4
    broadcast_clients: tuple[int, ...] = (100, 1000)
    broadcast_senders: int = 4
    broadcast_window: int = 1
    rates: tuple[int, ...] = (1000, 2500, 5000, 10000)
    warmup: float = 2.0
    measure: float = 8.0
    drain: float = 3.0
    slow_pairs: int = 100
    slow_flooders: int = 8
    slow_stalled: float = 15.0  # longer than CHATCORE_SEND_TIMEOUT (10 s)
    file_mib: int = 200
    sample: int = 8  # decode 1 in N frames of counting connections
    extra: dict = field(default_factory=dict)


FULL = Sizes()
QUICK = Sizes(connections=500, connect_concurrency=100, connect_timeout=60.0, quiet_timeout=20.0, login_cost_users=8,
              relay_clients=200, broadcast_clients=(50, 200), broadcast_senders=2, rates=(200, 1000),
              warmup=1.0, measure=3.0, drain=1.5, slow_pairs=20, slow_flooders=4, slow_stalled=12.0, file_mib=20)
