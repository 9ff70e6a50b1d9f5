"""Plugin discovery and the plugin-manager factory.

Built-in and third-party plugins load the same way: entry points in the group ``chatcore``.
An entry point names a class (instantiated once per server, so state stays per server) or
a module. Each server gets a fresh ``pluggy.PluginManager``; there is no global one.
"""

from __future__ import annotations

import functools
import importlib.metadata
import tempfile
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

import pluggy

from chatcore import hookspecs
from chatcore.config import DISABLE_PLUGINS, PLUGINS, Config
from chatcore.registry import CommandRegistry

GROUP = "chatcore"
CORE = "core"  # the core's own plugin (hello, ping): always on, cannot be disabled
REQUIRES_ATTRIBUTE = "chatcore_requires"  # a plugin object's tuple of plugin names it builds on

hookimpl = pluggy.HookimplMarker(GROUP)


class PluginError(Exception):
    """Plugin configuration that cannot start: unknown name, clash, bad hook."""


@dataclass(frozen=True)
class PluginInfo:
    """What ``chatcore plugins`` shows for one installed plugin."""

    name: str
    distribution: str
    version: str
    enabled: bool
    commands: tuple[str, ...]


def installed(entry_points: Optional[Iterable[importlib.metadata.EntryPoint]] = None
              ) -> dict[str, importlib.metadata.EntryPoint]:
    """Installed plugins by short name (the entry-point name)."""
    points = importlib.metadata.entry_points(group=GROUP) if entry_points is None else entry_points
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for point in points:
        if point.name == CORE:
            raise PluginError(f"an installed plugin may not be named {CORE!r} ({point.value})")
        found.setdefault(point.name, point)
    return found


def enabled_names(config: Config, available: Sequence[str]) -> list[str]:
    """Apply CHATCORE_PLUGINS and CHATCORE_DISABLE_PLUGINS; an unknown name is an error."""
    wanted: Optional[list[str]] = config.get(PLUGINS)
    disabled: list[str] = config.get(DISABLE_PLUGINS)
    unknown = [name for name in [*(wanted or []), *disabled] if name not in available]
    if CORE in unknown:
        raise PluginError(f"the {CORE!r} plugin is essential and cannot be enabled or disabled")
    if unknown:
        listing = ", ".join(sorted(available)) or "none"
        raise PluginError(f"unknown plugin {', '.join(map(repr, unknown))}; installed plugins: {listing}")
    chosen = list(available) if wanted is None else [n for n in available if n in wanted]
    return [name for name in chosen if name not in disabled]


def instantiate(target: Any) -> Any:
    """A plugin object from an entry point's target: classes get a fresh instance."""
    return target() if isinstance(target, type) else target


def create_manager(config: Config,
                   entry_points: Optional[Iterable[importlib.metadata.EntryPoint]] = None,
                   extra: Sequence[tuple[str, Any]] = (),
                   core: Any = None) -> pluggy.PluginManager:
    """A fresh manager with the core plugin, the enabled installed plugins and ``extra`` ones.

    Disabled plugins are blocked by name before anything is imported. ``extra`` registers
    plugin objects directly (tests); ``check_pending`` catches misspelled hook names.
    """
    manager = pluggy.PluginManager(GROUP)
    manager.add_hookspecs(hookspecs)
    if core is not None:
        manager.register(core, name=CORE)
    points = installed(entry_points)
    enabled = enabled_names(config, list(points))
    replaced = {name for name, _ in extra}
    for name, point in points.items():
        if name in replaced:
            continue
        if name not in enabled:
            manager.set_blocked(name)
            continue
        try:
            target = point.load()
        except Exception as exc:  # an installed plugin that cannot import is a startup error
            raise PluginError(f"plugin {name!r} ({point.value}) failed to load: {exc}") from exc
        manager.register(instantiate(target), name=name)
    for name, plugin in extra:
        manager.register(plugin, name=name)
    check_requirements(manager)
    manager.hook.chat_addhooks.call_historic(kwargs={"pluginmanager": manager})
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc)) from exc
    return manager


def check_requirements(manager: pluggy.PluginManager) -> None:
    """Refuse a plugin whose ``chatcore_requires`` names a plugin that is not registered (disabled
    or not installed): it would fail later in less obvious ways (``rooms`` needs ``chat``)."""
    registered = {name for name, plugin in manager.list_name_plugin() if plugin is not None}
    for name, plugin in manager.list_name_plugin():
        for needed in getattr(plugin, REQUIRES_ATTRIBUTE, None) or () if plugin is not None else ():
            if needed in registered:
                continue
            state = "disabled" if manager.is_blocked(needed) else "not installed"
            raise PluginError(f"plugin {name!r} needs plugin {needed!r}, which is {state}: enable {needed!r}, or "
                              f"disable {name!r} as well (CHATCORE_DISABLE_PLUGINS={needed},{name})")


def plugin_names(manager: pluggy.PluginManager) -> list[str]:
    """Names of the registered plugins other than the core, in registration order."""
    return [name for name, plugin in manager.list_name_plugin() if name != CORE and plugin is not None]


def collect_commands(manager: pluggy.PluginManager) -> CommandRegistry:
    """Ask each plugin for its commands with a ``register`` callback bound to its name."""
    registry = CommandRegistry()
    for impl in manager.hook.chat_register_commands.get_hookimpls():  # registration order
        impl.function(register=functools.partial(registry.register, impl.plugin_name))
    return registry


def describe(config: Config,
             entry_points: Optional[Iterable[importlib.metadata.EntryPoint]] = None) -> list[PluginInfo]:
    """Every installed plugin with its distribution, version, state and commands. The commands
    come from a server with every plugin enabled, configured on a throwaway data directory
    (plugins register commands once configured)."""
    from chatcore.server import ChatServer  # the server imports this module

    points = installed(entry_points)
    enabled = set(enabled_names(config, list(points)))
    commands = CommandRegistry()
    if points:
        with tempfile.TemporaryDirectory(prefix="chatcore-plugins-") as scratch:
            everything = config.with_overrides(CHATCORE_PLUGINS=",".join(points), CHATCORE_DISABLE_PLUGINS="",
                                               STORAGE_DIR=scratch)
            server = ChatServer(everything, entry_points=list(points.values()))
            server.open()
            try:
                commands = server.commands
            finally:
                server.close()
    infos = []
    for name, point in sorted(points.items()):
        dist = point.dist
        infos.append(PluginInfo(name, dist.name if dist else "?", dist.version if dist else "?",
                                name in enabled, tuple(commands.of_plugin(name))))
    return infos
