"""Every hook is named and documented where a plugin author looks: the core's are ``chat_*``
and listed in the lifecycle of ``chatcore.hookspecs``; a plugin's own are named after its
package (``chatcore_chat_*``) and described in that plugin's README."""

from __future__ import annotations

import inspect
from pathlib import Path

from chatcore import hookspecs

ROOT = Path(__file__).resolve().parents[1]


def all_hooks(server):
    """(name, the module that declared it, its function) for every hook the server knows."""
    for name in dir(server.pm.hook):
        caller = getattr(server.pm.hook, name)
        spec = getattr(caller, "spec", None)
        if spec is not None:
            yield name, inspect.getmodule(spec.function), spec.function


def test_every_hook_is_named_for_whoever_declares_it_and_documented(make_server):
    server = make_server(plugins=["auth", "chat", "filexfer", "rooms"])
    hooks = list(all_hooks(server))
    assert len(hooks) > 10
    for name, module, function in hooks:
        assert function.__doc__ and function.__doc__.strip(), f"hook {name} has no docstring"
        if module is hookspecs:
            assert name.startswith("chat_"), f"core hook {name} must be named chat_*"
            assert f"``{name}``" in hookspecs.__doc__, f"core hook {name} is missing from the lifecycle in hookspecs.py"
        else:
            package = module.__name__.split(".")[0]
            assert name.startswith(package + "_"), f"{package}'s hook {name} must be named {package}_*"
            readme = ROOT / "plugins" / package.removeprefix("chatcore_") / "README.md"
            assert f"`{name}`" in readme.read_text(encoding="utf-8"), f"{name} is not described in {readme}"


def test_the_core_hooks_are_all_in_the_lifecycle():
    declared = {name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("chat_")}
    listed = {name for name in declared if f"``{name}``" in hookspecs.__doc__}
    assert declared == listed
