"""Server processes: start one (chatcore or the baseline), find its port, sample its memory, stop it."""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

LISTENING = re.compile(r"listening on ([0-9.]+):(\d+)")
CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parents[2]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (KiB) and Threads of a process, from /proc/<pid>/status; {} once it is gone."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "Threads"):
                    out[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_ticks() -> tuple[int, int]:
    """(steal, all) CPU ticks of the whole machine so far, from /proc/stat's ``cpu`` line."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    return fields[7], sum(fields)


def steal_percent(since: tuple[int, int]) -> float:
    """Share of the machine's CPU time since ``machine_ticks()`` gave ``since`` that the
    hypervisor ran other guests instead (steal): on a shared host it moves latency runs by
    several times, so each run reports it."""
    steal, total = machine_ticks()
    return round(100 * (steal - since[0]) / max(1, total - since[1]), 1)


def listening_port(pid: int) -> int:
    """The TCP port a process listens on (from /proc: its socket inodes in LISTEN state), or 0."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        with open(f"/proc/{pid}/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[3] == "0A" and parts[9] in inodes:
                    return int(parts[1].split(":")[1], 16)
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        pass
    return 0


class ServerProcess:
    """A server in its own process; its stderr is drained in the background (last lines kept)."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: Path, name: str) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.proc: Optional[subprocess.Popen[str]] = None
        self.port = 0
        self.tail: collections.deque[str] = collections.deque(maxlen=200)
        self._ready = threading.Event()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        """Launch and wait for the 'listening on HOST:PORT' line, or (when the log level hides
        it) for the process's listening socket to appear in /proc."""
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._drain, name=f"{self.name}-stderr", daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1) and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            port = listening_port(self.proc.pid)
            if port:
                time.sleep(0.2)  # the accept thread starts right after listen()
                self.port = port
                break
        if not self.port:
            self.kill()
            raise RuntimeError(f"{self.name} did not start within {timeout:g} s:\n" + "\n".join(self.tail))
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.tail.append(line.rstrip())
            if not self.port:
                match = LISTENING.search(line)
                if match:
                    self.port = int(match.group(2))
                    self._ready.set()
        self._ready.set()

    def status(self) -> dict[str, int]:
        return proc_status(self.pid)

    def rss_kib(self) -> int:
        return self.status().get("VmRSS", 0)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def errors(self) -> list[str]:
        """Logged lines at ERROR or above, or tracebacks (the server logs at WARNING)."""
        return [line for line in self.tail if "ERROR" in line or "Traceback" in line or "CRITICAL" in line]

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (chatcore shuts down in order), SIGKILL if it takes longer than ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Sampler(threading.Thread):
    """Samples a process's RSS every ``interval`` seconds until stopped; keeps (t, KiB) pairs."""

    def __init__(self, pid: int, interval: float = 0.1, limit: int = 20000) -> None:
        super().__init__(name=f"rss-{pid}", daemon=True)
        self.pid, self.interval, self.limit = pid, interval, limit
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set() and len(self.samples) < self.limit:
            rss = proc_status(self.pid).get("VmRSS")
            if rss is None:
                return
            self.samples.append((time.monotonic(), rss))
            self._halt.wait(self.interval)

    def stop(self) -> list[tuple[float, int]]:
        self._halt.set()
        self.join(5)
        return self.samples

    def peak(self, since: float = 0.0, until: float = float("inf")) -> int:
        """Largest RSS sample in [since, until]."""
        return max((kib for t, kib in self.samples if since <= t <= until), default=0)


def settle(server: ServerProcess, idle_cpu: float = 0.05, window: float = 0.5, timeout: float = 60.0) -> float:
    """Wait until the server uses < ``idle_cpu`` of a core over ``window`` s; returns the wait."""
    start = time.monotonic()
    last = server.cpu()
    while time.monotonic() - start < timeout:
        time.sleep(window)
        now = server.cpu()
        if now - last < idle_cpu * window:
            break
        last = now
    return time.monotonic() - start


def python() -> str:
    """The interpreter running the harness (the project's venv)."""
    return sys.executable
