"""The command registry: name -> handler, whether it needs login, its fields, its plugin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Union

from chatcore.errors import CommandError  # noqa: F401  (still importable from here, as before)

if TYPE_CHECKING:
    from chatcore.session import Session

Handler = Callable[["Session", dict[str, Any]], Optional[dict[str, Any]]]
FieldType = Union[type, tuple[type, ...]]

INT64 = range(-(2**63), 2**63)  # what storage (SQLite) can hold; JSON integers are unbounded
TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
              list: "a list", dict: "an object", type(None): "null"}


class DuplicateCommand(Exception):
    """Two plugins tried to register the same command name."""


def _accepted(expected: FieldType) -> tuple[type, ...]:
    """The Python types a field declared as ``expected`` accepts: an integer wherever a number is."""
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return kinds + (int,) if float in kinds and int not in kinds else kinds


def _matches(value: Any, accepted: tuple[type, ...]) -> bool:
    if value.__class__ is bool:
        return bool in accepted  # JSON true is not an integer
    return isinstance(value, accepted)


def _describe(expected: FieldType) -> str:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(TYPE_NAMES.get(kind, kind.__name__) for kind in kinds)


@dataclass(frozen=True)
class Command:
    """A registered command and the field types the core checks before calling it."""

    name: str
    handler: Handler
    plugin: str
    auth: bool = True
    fields: Mapping[str, FieldType] = field(default_factory=dict)
    optional: Mapping[str, FieldType] = field(default_factory=dict)
    limited: bool = True  # counts against the session's request rate (bulk data bounded by bytes does not)
    logs_in: bool = False  # a way to log in: while any command has it, a connection must log in in time

    # every field's name and accepted types, worked out once, not per request
    _checks: tuple[tuple[str, tuple[type, ...], FieldType], ...] = field(init=False, repr=False, compare=False,
                                                                       default=())

    def __post_init__(self) -> None:
        checks = tuple((name, _accepted(expected), expected) for name, expected in {**self.fields, **self.optional}.items())
        object.__setattr__(self, "_checks", checks)

    def field_problem(self, message: Mapping[str, Any]) -> Optional[str]:
        """Why ``message`` does not fit this command's fields, or None when it does."""
        for name in self.fields:
            if name not in message:
                return f"missing field '{name}'"
        for name, accepted, expected in self._checks:
            if name not in message:
                continue
            value = message[name]
            if not _matches(value, accepted):
                return f"field '{name}' must be {_describe(expected)}"
            if value.__class__ is int and value not in INT64:
                return f"field '{name}' is out of range"
        return None


class CommandRegistry:
    """Commands by name; a name belongs to exactly one plugin."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}
        self._logs_in = False  # some command logs in (kept by register: read on every frame)

    def register(self, plugin: str, name: str, handler: Handler, *, auth: bool = True,
                 fields: Optional[Mapping[str, FieldType]] = None,
                 optional: Optional[Mapping[str, FieldType]] = None, limited: bool = True,
                 logs_in: bool = False) -> Command:
        if not isinstance(name, str) or not name:
            raise ValueError(f"plugin {plugin!r} registered a command with no name")
        owner = self._commands.get(name)
        if owner is not None:
            raise DuplicateCommand(
                f"plugin {plugin!r} cannot register command {name!r}: plugin {owner.plugin!r} owns it"
            )
        command = Command(name, handler, plugin, auth, dict(fields or {}), dict(optional or {}), limited, logs_in)
        self._commands[name] = command
        self._logs_in = self._logs_in or logs_in
        return command

    def get(self, name: str) -> Optional[Command]:
        return self._commands.get(name)

    def __len__(self) -> int:
        return len(self._commands)

    @property
    def login_required(self) -> bool:
        """True when some plugin offers a way to log in (a command registered with ``logs_in``):
        then every connection must log in within the login deadline."""
        return self._logs_in

    def names(self) -> list[str]:
        return sorted(self._commands)

    def of_plugin(self, plugin: str) -> list[str]:
        return sorted(name for name, command in self._commands.items() if command.plugin == plugin)
