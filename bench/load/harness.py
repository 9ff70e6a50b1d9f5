"""What every scenario shares: the worker pool, sizes, the data directory, server start-up, logging."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from load import servers
from load.fleet import Fleet
from load.pool import Pool
from load.proc import Sampler, ServerProcess, settle
from load.sizes import Sizes

TARGETS = ("baseline", "chatcore")


@dataclass
class Harness:
    """One benchmark run's shared state."""

    pool: Pool
    sizes: Sizes
    results_dir: Path
    profile: bool = False
    pythonpath: Optional[str] = None  # run chatcore from another tree (trying a fix)
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chatcore-bench-")))
    notes: list[str] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)
    starts: int = 0  # chatcore servers started (each gets data-<n>)

    def log(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {text}", file=sys.stderr, flush=True)

    def start(self, target: str, fast_hash: bool = True, extra: Optional[dict[str, str]] = None) -> ServerProcess:
        """A fresh server process for ``target``; chatcore gets an empty data directory, so no
        scenario inherits another's history (or its WAL)."""
        if target == "baseline":
            server = servers.baseline()
        else:
            self.starts += 1
            server = servers.chatcore(self.data_dir / f"data-{self.starts}", extra, fast_hash, self.pythonpath)
        settle(server, timeout=10)
        self.log(f"{target} started (pid {server.pid}, port {server.port})")
        return server

    def finish(self, server: ServerProcess, fleet: Optional[Fleet], graceful: bool = True) -> dict[str, Any]:
        """Stop the server (SIGTERM, or SIGKILL) and close the clients; errors it logged."""
        start = time.monotonic()
        if graceful:
            server.stop(20)
        else:
            server.kill()
        took = time.monotonic() - start
        if server.name == "chatcore":
            shutil.rmtree(server.cwd, ignore_errors=True)  # its data directory
        if fleet is not None:
            fleet.close()
        errors = server.errors()
        if errors:
            self.notes.append(f"{server.name} logged errors: {errors[:3]}")
        return {"shutdown_s": round(took, 2), "server_errors": len(errors)}

    def profiler(self, server: ServerProcess, name: str, seconds: float) -> Optional[subprocess.Popen[bytes]]:
        """py-spy on the server for ``seconds`` (raw collapsed stacks + a flame graph), if asked for."""
        if not self.profile:
            return None
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.results_dir.mkdir(parents=True, exist_ok=True)
        out = self.results_dir / f"profile-{name}.txt"
        self.log(f"profiling {server.name} for {seconds:g} s -> {out}")
        with open(self.results_dir / f"profile-{name}.log", "w") as log:
            return subprocess.Popen([spy, "record", "--pid", str(server.pid), "--duration", str(int(seconds)),
                                     "--rate", "100", "--nonblocking", "--format", "raw", "-o", str(out)],
                                    stdout=log, stderr=subprocess.STDOUT)

    def cleanup(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)


def sampler(server: ServerProcess) -> Sampler:
    s = Sampler(server.pid)
    s.start()
    return s


def users(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(start, start + n)]
