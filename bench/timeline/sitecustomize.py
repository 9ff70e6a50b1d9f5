"""Loaded into a benchmarked ``chatcore serve`` by ``bench/timeline.py`` (``--pythonpath``): when
each latency-run message reached each stage of the server, and what the store did meanwhile.

Wraps a few internal methods once the server imported them; writes everything to the file
named by ``TIMELINE_OUT`` at exit. A benchmark aid only: it adds a few microseconds per stage.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import re
import sys
import threading
import time
from typing import Any, Callable, Iterator

SENT = re.compile(r"T(\d{10,20}) ")  # the load generator's text: "T<monotonic_ns> ..."
LIMIT = 1_000_000  # messages kept at most
marks: dict[int, dict[str, int]] = {}  # send ns -> stage -> ns
spans: list[tuple[int, int, str, int]] = []  # (start ns, end ns, what, size): checkpoints, holds, index and 2 ms+ batches
local = threading.local()  # the worker's frame: (reactor ns, worker ns), read when its Post is made


def wrap(owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Replace ``owner.name`` by ``make(original)``, keeping a staticmethod static."""
    raw = owner.__dict__[name]
    if isinstance(raw, staticmethod):
        setattr(owner, name, staticmethod(make(raw.__func__)))
    else:
        setattr(owner, name, make(raw))


def key(text: Any) -> int:
    found = SENT.match(text) if isinstance(text, str) else None
    return int(found.group(1)) if found else 0


def mark(op: Any, stage: str) -> None:
    stages = getattr(op, "timeline", None)
    if stages is not None and stage:
        stages.setdefault(stage, time.monotonic_ns())


def install() -> None:
    from chatcore import connection
    from chatcore_chat import delivery, indexer, store, writer

    def submit(original: Callable[..., Any]) -> Callable[..., Any]:
        def _submit(self: Any, kind: int, item: Any) -> Any:
            if kind == connection.FRAME:
                self.__dict__.setdefault("timeline", []).append(time.monotonic_ns())
            return original(self, kind, item)
        return _submit

    def run(original: Callable[..., Any]) -> Callable[..., Any]:
        def _run(self: Any, kind: int, item: Any, more: bool) -> Any:
            if kind == connection.FRAME and self.__dict__.get("timeline"):
                local.frame = (self.timeline.pop(0), time.monotonic_ns())
            try:
                return original(self, kind, item, more)
            finally:
                local.frame = None
        return _run

    def post_init(original: Callable[..., Any]) -> Callable[..., Any]:
        def __init__(self: Any, relay: Any, origin: Any, sender: str, to: str, text: str, *rest: Any) -> None:
            original(self, relay, origin, sender, to, text, *rest)
            sent, frame = key(text), getattr(local, "frame", None)
            if sent and frame and len(marks) < LIMIT:
                self.timeline = marks.setdefault(sent, {"1 frame read": frame[0], "2 worker": frame[1]})
        return __init__

    def staged(stage: str, end: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def make(original: Callable[..., Any]) -> Callable[..., Any]:
            def method(self: Any, *args: Any) -> Any:
                mark(self, stage)
                result = original(self, *args)
                if end:
                    mark(self, end)
                return result
            return method
        return make

    def timed(what: Callable[[Any, Any], tuple[str, int]], shortest_ns: int = 2_000_000) -> Callable[..., Any]:
        def make(original: Callable[..., Any]) -> Callable[..., Any]:
            def method(*args: Any) -> Any:
                started = time.monotonic_ns()
                result = original(*args)
                ended = time.monotonic_ns()
                name, size = what(args, result)
                if ended - started >= shortest_ns or name != "batch":
                    spans.append((started, ended, name, size))
                return result
            return method
        return make

    def batch_kind(args: Any, result: Any) -> tuple[str, int]:
        ops = args[1]
        return ("index batch" if any(isinstance(op, indexer.IndexNew) for op in ops) else "batch", len(ops))

    wrap(connection.Connection, "_submit", submit)
    wrap(connection.Connection, "_run", run)
    wrap(delivery.Post, "__init__", post_init)
    wrap(delivery.Post, "apply", staged("3 store began"))
    wrap(delivery.Post, "after", staged("4 committed", "6 acknowledged"))
    wrap(delivery.Post, "_deliver", staged("", "5 delivered"))
    wrap(writer.Writer, "_run_batch", timed(batch_kind))
    wrap(store.Checkpointer, "_passive", timed(lambda args, result: ("checkpoint", result[0])))
    wrap(writer.Writer, "paused", held)
    gc.callbacks.append(collected)


_collecting = [0]  # when the running collection began (one runs at a time: it holds the GIL)


def collected(phase: str, info: dict[str, int]) -> None:
    """Python's garbage collections of 1 ms or more, as spans ("gc 0/1/2", size: objects freed)."""
    if phase == "start":
        _collecting[0] = time.monotonic_ns()
    elif time.monotonic_ns() - _collecting[0] >= 1_000_000:
        spans.append((_collecting[0], time.monotonic_ns(), f"gc {info['generation']}", info["collected"]))


def held(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Writer.paused`` timed from the request until writes go on: a checkpoint's hold."""
    @contextlib.contextmanager
    def paused(self: Any) -> Iterator[None]:
        started = time.monotonic_ns()
        try:
            with original(self):
                yield
        finally:
            spans.append((started, time.monotonic_ns(), "writes held", 0))
    return paused


def write() -> None:
    with open(os.environ["TIMELINE_OUT"], "w", encoding="utf-8") as out:
        for sent, stages in list(marks.items()):
            out.write("m %d %s\n" % (sent, " ".join(f"{stage.replace(' ', '_')}={ns - sent}" for stage, ns in stages.items())))
        for started, ended, what, size in spans:
            out.write(f"s {started} {ended} {what.replace(' ', '_')} {size}\n")


def wait_and_install() -> None:
    """The server imports its plugins after startup begins: wrap once they are all there."""
    needed = (("chatcore.connection", "Connection"), ("chatcore_chat.delivery", "Post"),
              ("chatcore_chat.writer", "Writer"), ("chatcore_chat.store", "Checkpointer"),
              ("chatcore_chat.indexer", "IndexNew"))
    while not all(hasattr(sys.modules.get(module), name) for module, name in needed):
        time.sleep(0.01)
    install()


if "serve" in sys.argv and os.environ.get("TIMELINE_OUT"):
    threading.Thread(target=wait_and_install, name="timeline-probe", daemon=True).start()
    atexit.register(write)
