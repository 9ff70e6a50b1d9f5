"""Calling plugins' hooks one implementation at a time, so a failure belongs to its plugin.

pluggy stops a hook call at the first exception, so one plugin's bug in
``chat_session_opened`` would end the connection and skip every other plugin. Here each
implementation runs on its own: a failure is logged against its plugin and counted in the
plugin's **fault budget**; a plugin that fails more than ``limit`` times within ``window``
seconds is disabled while the server runs (its hooks are no longer called, its commands
answer ``plugin_disabled``, ``hello`` stops listing it), and everything else goes on. The
operator flips the same switch by hand over the admin channel (``chatcore plugin disable|enable
NAME``). Essential plugins (the core, and any whose plugin object sets ``chatcore_essential =
True``) are never disabled.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Iterable, Iterator

import pluggy

from chatcore.errors import CommandError

log = logging.getLogger(__name__)

ESSENTIAL_ATTRIBUTE = "chatcore_essential"
Clock = Callable[[], float]


class FaultBudget:
    """Failures per plugin within a sliding window; past the limit the plugin is disabled."""

    def __init__(self, limit: int, window: float, essential: Iterable[str] = (),
                 clock: Clock = time.monotonic) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self.essential = set(essential)
        self._lock = threading.Lock()
        self._failures: dict[str, collections.deque[float]] = {}
        self._counted: dict[str, int] = {}  # plugin -> every failure since the start (the metrics)
        self.disabled: dict[str, str] = {}  # plugin -> why it was disabled

    def failure(self, plugin: str, what: str) -> None:
        """Count one failure of ``plugin`` (``what`` failed); disable it when over budget."""
        with self._lock:
            self._counted[plugin] = self._counted.get(plugin, 0) + 1
        if not self.limit or plugin in self.essential:
            return
        now = self._clock()
        with self._lock:
            if plugin in self.disabled:
                return
            recent = self._failures.setdefault(plugin, collections.deque())
            recent.append(now)
            while recent and recent[0] <= now - self.window:
                recent.popleft()
            if len(recent) <= self.limit:
                return
            why = f"{len(recent)} failures within {self.window:g} s (the last in {what})"
            self.disabled[plugin] = why
        log.error("plugin %s disabled until the server restarts (or `chatcore plugin enable %s`): %s; "
                  "everything else goes on", plugin, plugin, why)

    def is_disabled(self, plugin: str) -> bool:
        return plugin in self.disabled

    def disable(self, plugin: str, why: str) -> bool:
        """Switch ``plugin`` off by hand (the operator); False if it already was. ValueError for
        an essential plugin, which is never disabled."""
        if plugin in self.essential:
            raise ValueError(f"the {plugin} plugin is essential and cannot be disabled")
        with self._lock:
            if plugin in self.disabled:
                return False
            self.disabled[plugin] = why
        log.warning("plugin %s disabled: %s", plugin, why)
        return True

    def enable(self, plugin: str) -> bool:
        """Switch ``plugin`` on again with a fresh budget; False if it was not disabled."""
        with self._lock:
            self._failures.pop(plugin, None)
            if self.disabled.pop(plugin, None) is None:
                return False
        log.warning("plugin %s enabled again", plugin)
        return True

    def counted_failures(self) -> dict[str, int]:
        """Every failure of each plugin since the server started, essential plugins' too."""
        with self._lock:
            return dict(self._counted)

    def recent(self, plugin: str) -> int:
        """The failures of ``plugin`` its budget holds now (those within the window)."""
        since = self._clock() - self.window
        with self._lock:
            return sum(1 for when in self._failures.get(plugin, ()) if when > since)


class PluginHooks:
    """Per-implementation hook calls in pluggy's order, skipping disabled plugins."""

    def __init__(self, manager: pluggy.PluginManager, budget: FaultBudget) -> None:
        self._manager = manager
        self.budget = budget

    def implementations(self, hook: str, disabled_too: bool = False) -> list[Any]:
        """The hook's implementations in the order pluggy calls them (tryfirst first), minus
        those of disabled plugins unless ``disabled_too`` (shutdown and user removal must
        reach every plugin that holds storage)."""
        caller = getattr(self._manager.hook, hook)
        return [impl for impl in reversed(caller.get_hookimpls())
                if not impl.hookwrapper and not getattr(impl, "wrapper", False)
                and (disabled_too or not self.budget.is_disabled(impl.plugin_name))]

    def each(self, hook: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """(plugin, result) for every implementation that returned; a CommandError goes to the
        caller (a plugin refusing the request), any other failure is logged and counted."""
        for impl in self.implementations(hook):
            try:
                result = impl.function(**{name: kwargs[name] for name in impl.argnames})
            except CommandError:
                raise
            except Exception:
                self.failed(impl.plugin_name, hook)
                continue
            yield impl.plugin_name, result

    def notify(self, hook: str, disabled_too: bool = False, **kwargs: Any) -> list[str]:
        """Call every implementation (of disabled plugins too, if asked); returns the plugins
        that failed (already logged)."""
        failed: list[str] = []
        for impl in self.implementations(hook, disabled_too):
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception:
                self.failed(impl.plugin_name, hook)
                failed.append(impl.plugin_name)
        return failed

    def failed(self, plugin: str, what: str) -> None:
        """Log a plugin's failure (call it where the exception is handled: the traceback is
        logged too) and count it against the plugin's budget."""
        log.error("plugin %s failed in %s", plugin, what, exc_info=True)
        self.budget.failure(plugin, what)


def essential_plugins(manager: pluggy.PluginManager) -> set[str]:
    """Names of the plugins that declare themselves essential (``chatcore_essential = True``)."""
    return {name for name, plugin in manager.list_name_plugin()
            if plugin is not None and getattr(plugin, ESSENTIAL_ATTRIBUTE, False)}
