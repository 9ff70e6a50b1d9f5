"""The ``rooms`` plugin's membership commands (docs/protocol.md §7): create, join, leave,
invite, kick, ban, unban, roles, topic, delete. Each is checked here first against the rooms
in memory (cheap refusals, names resolved), then becomes a writer operation (``ops.py``) that
decides against the database and answers after the commit. ``RoomsService.commands``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatcore import CommandError, protocol
from chatcore_rooms import ops
from chatcore_rooms.models import HISTORY_MODES, RANK
from chatcore_rooms.names import one_line, room_name_problem

if TYPE_CHECKING:
    from chatcore_rooms.service import RoomsService


class RoomCommands:
    """The membership and moderation commands of one rooms service."""

    def __init__(self, service: "RoomsService") -> None:
        self.service = service

    def create(self, session: Any, message: dict[str, Any]) -> None:
        """``room_create`` {room, topic?, private?, history?}."""
        self.service._user(session)
        name = message["room"]
        problem = room_name_problem(name)
        if problem:
            raise CommandError("bad_name", problem)
        history = message.get("history", "shared")
        if history not in HISTORY_MODES:
            raise CommandError("bad_request", "field 'history' must be 'shared' or 'joined'")
        topic = one_line(self.service.settings, message.get("topic", ""), "topic")
        self.service._submit(ops.Create(self.service, session, name, topic, bool(message.get("private", False)),
                                        history))

    def join(self, session: Any, message: dict[str, Any]) -> None:
        self.service._user(session)
        self.service._submit(ops.Join(self.service, session, self.service._room(message["room"])))

    def leave(self, session: Any, message: dict[str, Any]) -> None:
        self.service._user(session)
        self.service._submit(ops.Leave(self.service, session, self.service._room(message["room"])))

    def invite(self, session: Any, message: dict[str, Any]) -> None:
        self.service._user(session)
        room = self.service._room(message["room"])
        self.service._submit(ops.Invite(self.service, session, room, self.service._registered(message["user"])))

    def kick(self, session: Any, message: dict[str, Any]) -> None:
        self._moderate(session, message, banning=False)

    def ban(self, session: Any, message: dict[str, Any]) -> None:
        self._moderate(session, message, banning=True)

    def _moderate(self, session: Any, message: dict[str, Any], banning: bool) -> None:
        self.service._user(session)
        room = self.service._room(message["room"])
        name = message["user"]
        member = room.members.get(name.casefold()) if isinstance(name, str) else None
        user = member.user if member else self.service._registered(name)
        reason = one_line(self.service.settings, message.get("reason", ""), "reason")
        self.service._submit(ops.Moderate(self.service, session, room, user, reason, banning))

    def unban(self, session: Any, message: dict[str, Any]) -> None:
        self.service._user(session)
        room = self.service._room(message["room"])
        self.service._submit(ops.Unban(self.service, session, room, protocol.echo(message["user"])))

    def set_role(self, session: Any, message: dict[str, Any]) -> None:
        self.service._user(session)
        room = self.service._room(message["room"])
        role = message["role"]
        if role not in RANK:
            raise CommandError("bad_request", "field 'role' must be 'owner', 'moderator' or 'member'")
        member = room.members.get(message["user"].casefold())
        if member is None and self.service.fanout is None:
            raise CommandError("not_member", f"{protocol.echo(message['user'])!r} is not a member of {room.name}")
        name = member.user if member is not None else self.service._registered(message["user"])  # the writer decides
        self.service._submit(ops.SetRole(self.service, session, room, name, role))

    def topic(self, session: Any, message: dict[str, Any]) -> None:
        self.service._user(session)
        room = self.service._room(message["room"])
        self.service._submit(ops.Topic(self.service, session, room, one_line(self.service.settings, message["topic"], "topic")))

    def delete(self, session: Any, message: dict[str, Any]) -> None:
        self.service._user(session)
        self.service._submit(ops.Delete(self.service, session, self.service._room(message["room"])))
