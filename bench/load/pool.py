"""The harness's side of the load workers: start N processes, send commands, gather replies."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any, Optional, Sequence

from load import worker


class WorkerError(RuntimeError):
    """A worker raised, died or did not answer in time."""


class Pool:
    """N load-generator processes (spawned: no inherited threads or sockets)."""

    def __init__(self, n: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes = []
        self.procs = []
        for i in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker.main, args=(child, i), name=f"load-{i}", daemon=True)
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)

    def __len__(self) -> int:
        return len(self.pipes)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def call(self, op: str, per_worker: Optional[Sequence[dict[str, Any]]] = None, wait: float = 60.0,
             workers: Optional[Sequence[int]] = None, **common: Any) -> list[dict[str, Any]]:
        """Send ``op`` to the workers (``per_worker[i]`` merged over ``common``) and wait for all replies."""
        targets = list(workers) if workers is not None else list(range(len(self.pipes)))
        for j, i in enumerate(targets):
            args = dict(common)
            if per_worker is not None:
                args.update(per_worker[j])
            self.pipes[i].send({"op": op, "args": args})
        replies = []
        deadline = time.monotonic() + wait + 30.0
        for i in targets:
            if not self.pipes[i].poll(max(0.0, deadline - time.monotonic())):
                raise WorkerError(f"worker {i} did not answer {op!r} in time")
            reply = self.pipes[i].recv()
            if "exception" in reply:
                raise WorkerError(f"worker {i} failed in {op!r}: {reply['traceback']}")
            replies.append(reply)
        return replies

    def close(self) -> None:
        for pipe, proc in zip(self.pipes, self.procs):
            try:
                pipe.send({"op": "exit"})
                if pipe.poll(10):
                    pipe.recv()
            except (OSError, EOFError):
                pass
            proc.join(5)
            if proc.is_alive():
                proc.kill()
