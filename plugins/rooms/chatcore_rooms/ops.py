"""The writer operations of the ``rooms`` plugin: every change to rooms, membership, roles,
messages and read markers is one ``chatcore_chat.writer.Operation``.

Each checks its rules against the database inside the writer's transaction (so two requests
racing for the last seat, or a kick and a message, are decided in one order), changes it,
and after the commit updates the in-memory rooms, answers the requester and tells whoever
must know, in commit order: a room's members see its messages and events in the order they
were stored. ``apply`` may run twice (when another operation of its batch failed), so it only
records what ``after`` will do.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

from chatcore import protocol
from chatcore_chat.delivery import send
from chatcore_chat.faults import Refused, answer
from chatcore_chat.writer import Batch, Operation
from chatcore_rooms.models import RANK, Member, Room

if TYPE_CHECKING:
    from chatcore_rooms.service import RoomsService

log = logging.getLogger(__name__)


class RoomOp(Operation):
    """One request's change. Subclasses implement ``run``: check with ``refuse``, change the
    database, then ``answer`` the requester, ``tell`` members and queue memory ``changes``."""

    command = ""

    def __init__(self, service: "RoomsService", origin: Any, room: Optional[Room] = None,
                 client_id: Any = None) -> None:
        super().__init__()
        self.service, self.origin, self.room, self.client_id = service, origin, room, client_id
        self.reply: Optional[dict[str, Any]] = None
        self.events: list[tuple[Room, dict[str, Any], tuple[str, ...]]] = []
        self.changes: list[Callable[[], None]] = []
        self.user_events: list[tuple[str, dict[str, Any]]] = []  # (user key, event) for their other sessions
        self.stale = False  # the room was deleted (perhaps made again) since the request named it
        self.batch = Batch()  # the batch ``run`` runs in

    @property
    def sql(self) -> Any:
        """The store's queries (``backend.py``: SQLite's or PostgreSQL's)."""
        return self.service.sql

    @property
    def actor(self) -> str:
        return str(self.origin.user)

    @property
    def actor_key(self) -> str:
        return self.actor.casefold()

    def apply(self, conn: sqlite3.Connection, batch: Batch) -> None:
        self.reply, self.events, self.changes, self.user_events = None, [], [], []
        self.batch = batch
        row = self.sql.room_row(conn, self.room.key) if self.room is not None else None
        if self.room is not None and (row is None or row[0] != self.room.id):  # deleted (and perhaps made again)
            self.stale = True
            raise Refused("unknown_room", f"there is no room named {self.room.name!r} any more")
        self.run(conn)
        if self.changes and self.room is not None:  # memory changes here: other nodes' memory is behind
            version = self.sql.changed(conn, self.room.id)
            room = self.room
            self.changes.append(lambda: setattr(room, "version", max(room.version, version)))

    def run(self, conn: sqlite3.Connection) -> None:
        raise NotImplementedError

    # -- what run() uses ---------------------------------------------------------------------

    def now(self) -> int:
        return self.service.stamp()

    def role_here(self, conn: sqlite3.Connection, user_key: Optional[str] = None) -> Optional[str]:
        assert self.room is not None
        return self.sql.role(conn, self.room.id, user_key or self.actor_key)

    def need_rank(self, conn: sqlite3.Connection, rank: int, what: str) -> str:
        """The actor's role, or a refusal when it is below ``rank`` (1 member, 2 moderator, 3 owner)."""
        mine = self.role_here(conn)
        if mine is None:
            raise Refused("not_member", f"you are not a member of {self.room_name}")
        if RANK[mine] < rank:
            raise Refused("forbidden", f"only {'the owner' if rank == 3 else 'moderators and the owner'} may {what}")
        return mine

    @property
    def room_name(self) -> str:
        return self.room.name if self.room is not None else ""

    def answer(self, **fields: Any) -> None:
        self.reply = {"type": f"{self.command}_result", **fields}

    def tell(self, kind: str, extra: Iterable[str] = (), **fields: Any) -> None:
        """A ``room_event`` of ``kind`` for the room's members (after the change) and ``extra`` users."""
        assert self.room is not None
        body = {"type": "room_event", "room": self.room.name, "kind": kind, "by": self.actor, **fields}
        self.events.append((self.room, body, tuple(extra)))

    # -- after the commit --------------------------------------------------------------------

    def after(self, batch: Batch) -> None:
        if self.service.fanout is not None:
            self.service.fanout.advanced(batch)  # the seqs a create or join started at
        for change in self.changes:
            change()
        if self.reply is not None:
            if self.client_id is not None:
                self.reply["client_id"] = self.client_id
            send(self.origin, protocol.encode(self.reply))
        told = []
        for room, body, extra in self.events:
            if body.get("kind") not in ("deleted",) and body.get("type") == "room_event":
                body["info"] = room.info()
            self.service.fan_out(room, protocol.encode(body), extra, skip=self.origin)
            told.append((room.id, body, extra))
        for key, body in self.user_events:
            self.service.tell_user(key, body, skip=self.origin)
        # the other nodes: a room changed in memory here is reloaded there (cluster mode)
        self.service.share([self.room.id] if self.changes and self.room is not None else [], told, self.user_events)

    def failed(self, error: BaseException) -> None:
        if self.stale and self.room is not None:
            self.service.drop_room(self.room)  # what this node held of it is gone
        echo = {"client_id": self.client_id} if self.client_id is not None else {}
        reply = {**echo, "type": "error", "command": self.command, **answer(error)}
        if not isinstance(error, Refused) and reply.get("code") == "internal_error":
            reply["reason"] = "the change could not be stored"
        send(self.origin, protocol.encode(reply))


class Create(RoomOp):
    command = "room_create"

    def __init__(self, service: "RoomsService", origin: Any, name: str, topic: str, private: bool,
                 history: str) -> None:
        super().__init__(service, origin)
        self.name, self.topic, self.private, self.history = name, topic, private, history

    def run(self, conn: sqlite3.Connection) -> None:
        key = self.name.casefold()
        if self.sql.room_row(conn, key) is not None:
            raise Refused("room_exists", f"a room named {self.name!r} already exists")
        limits = self.service.settings
        if self.sql.room_count(conn) >= limits.max_rooms:
            raise Refused("too_many_rooms", f"the server keeps at most {limits.max_rooms} rooms")
        if self.sql.memberships(conn, self.actor_key) >= limits.max_per_user:
            raise Refused("too_many_rooms", f"you may be a member of at most {limits.max_per_user} rooms")
        now = self.now()
        room_id = self.sql.insert_room(conn, key, self.name, self.topic, self.private, self.history, self.actor, now)
        self.sql.add_member(conn, room_id, self.actor_key, self.actor, "owner", 0, now)
        room = Room(room_id, key, self.name, self.topic, self.private, self.history, self.actor, 0)
        room.members[self.actor_key] = Member(self.actor_key, self.actor, "owner", 0)
        self.room = room
        if self.service.fanout is not None:
            self.service.fanout.start_at(self.batch, room.id, 0)
        self.changes.append(lambda: self.service.add_room(room))
        self.answer(room=self.service.mine(room, "owner", 0, 0))
        self.tell("joined", user=self.actor, role="owner")


class Join(RoomOp):
    command = "room_join"

    def run(self, conn: sqlite3.Connection) -> None:
        assert self.room is not None
        room, limits = self.room, self.service.settings
        if self.role_here(conn) is not None:
            raise Refused("already_member", f"you are already a member of {room.name}")
        reason = self.sql.ban_reason(conn, room.id, self.actor_key)
        if reason is not None:
            raise Refused("banned", f"you are banned from {room.name}" + (f": {reason}" if reason else ""))
        if room.private and not self.sql.invited(conn, room.id, self.actor_key):
            raise Refused("not_invited", f"{room.name} is private: a moderator must invite you first")
        if self.sql.member_count(conn, room.id) >= limits.max_members:
            raise Refused("room_full", f"{room.name} already has {limits.max_members} members, the most a room may have")
        if self.sql.memberships(conn, self.actor_key) >= limits.max_per_user:
            raise Refused("too_many_rooms", f"you may be a member of at most {limits.max_per_user} rooms")
        seq = self.sql.room_row(conn, room.key)[3]  # type: ignore[index]
        self.sql.add_member(conn, room.id, self.actor_key, self.actor, "member", seq, self.now())
        fanout = self.service.fanout
        if fanout is not None and not fanout.local(room, self.batch):
            fanout.start_at(self.batch, room.id, seq)  # this node follows the room from the join on
        member = Member(self.actor_key, self.actor, "member", seq)
        self.changes.append(lambda: room.members.__setitem__(member.user_key, member))
        self.answer(room=self.service.mine(room, "member", seq, 0, members=len(room.members) + 1))
        self.tell("joined", user=self.actor, role="member")


class Leave(RoomOp):
    command = "room_leave"

    def run(self, conn: sqlite3.Connection) -> None:
        room = self.room
        assert room is not None
        mine = self.role_here(conn)
        if mine is None:
            raise Refused("not_member", f"you are not a member of {room.name}")
        if mine == "owner":
            raise Refused("owner_must_transfer", "the owner cannot leave: make another member the owner first "
                          "(room_set_role) or delete the room")
        self.sql.remove_member(conn, room.id, self.actor_key)
        self.changes.append(lambda: self.service.drop_member(room, self.actor_key))
        self.answer(room=room.name)
        self.tell("left", extra=[self.actor_key], user=self.actor)


class Invite(RoomOp):
    command = "room_invite"

    def __init__(self, service: "RoomsService", origin: Any, room: Room, user: str) -> None:
        super().__init__(service, origin, room)
        self.user = user

    def run(self, conn: sqlite3.Connection) -> None:
        room = self.room
        assert room is not None
        self.need_rank(conn, 2 if room.private else 1, "invite to a private room")
        key = self.user.casefold()
        if self.role_here(conn, key) is not None:
            raise Refused("already_member", f"{self.user} is already a member of {room.name}")
        if self.sql.ban_reason(conn, room.id, key) is not None:
            raise Refused("banned", f"{self.user} is banned from {room.name}: lift the ban first")
        self.sql.invite(conn, room.id, key, self.actor, self.now())
        self.answer(room=room.name, user=self.user)
        self.tell("invited", extra=[key], user=self.user)


class Moderate(RoomOp):
    """Kick or ban: a moderator over a member, the owner over anyone else."""

    def __init__(self, service: "RoomsService", origin: Any, room: Room, user: str, reason: str,
                 banning: bool) -> None:
        super().__init__(service, origin, room)
        self.user, self.reason, self.banning = user, reason, banning
        self.command = "room_ban" if banning else "room_kick"

    def run(self, conn: sqlite3.Connection) -> None:
        room = self.room
        assert room is not None
        mine = self.need_rank(conn, 2, "ban" if self.banning else "kick")
        key = self.user.casefold()
        if key == self.actor_key:
            raise Refused("forbidden", "you cannot kick or ban yourself: leave the room instead")
        theirs = self.role_here(conn, key)
        if theirs is None and not self.banning:
            raise Refused("not_member", f"{self.user} is not a member of {room.name}")
        if theirs is not None and RANK[theirs] >= RANK[mine]:
            raise Refused("forbidden", f"{self.user} is {'the owner' if theirs == 'owner' else 'a moderator'}: "
                          "only someone above them may do that")
        name = room.members[key].user if key in room.members else self.user
        if theirs is not None:
            self.sql.remove_member(conn, room.id, key)
            self.changes.append(lambda: self.service.drop_member(room, key))
        if self.banning:
            self.sql.ban(conn, room.id, key, name, self.actor, self.reason, self.now())
        self.answer(room=room.name, user=name)
        self.tell("banned" if self.banning else "kicked", extra=[key], user=name, reason=self.reason)


class Unban(RoomOp):
    command = "room_unban"

    def __init__(self, service: "RoomsService", origin: Any, room: Room, user: str) -> None:
        super().__init__(service, origin, room)
        self.user = user

    def run(self, conn: sqlite3.Connection) -> None:
        room = self.room
        assert room is not None
        self.need_rank(conn, 2, "lift a ban")
        if not self.sql.unban(conn, room.id, self.user.casefold()):
            raise Refused("not_banned", f"{self.user} is not banned from {room.name}")
        self.answer(room=room.name, user=self.user)
        self.tell("unbanned", extra=[self.user.casefold()], user=self.user)


class SetRole(RoomOp):
    """The owner promotes and demotes; naming another member ``owner`` hands the room over."""

    command = "room_set_role"

    def __init__(self, service: "RoomsService", origin: Any, room: Room, user: str, role: str) -> None:
        super().__init__(service, origin, room)
        self.user, self.role = user, role

    def run(self, conn: sqlite3.Connection) -> None:
        room = self.room
        assert room is not None
        self.need_rank(conn, 3, "change roles")
        key = self.user.casefold()
        if key == self.actor_key:
            raise Refused("forbidden", "you cannot change your own role: make another member the owner instead")
        if self.role_here(conn, key) is None:
            raise Refused("not_member", f"{self.user} is not a member of {room.name}")
        name = room.members[key].user if key in room.members else self.user
        self.sql.set_role(conn, room.id, key, self.role)
        if self.role == "owner":
            self.sql.set_role(conn, room.id, self.actor_key, "moderator")
        self.changes.append(lambda: self._change(room, key))
        self.answer(room=room.name, user=name, role=self.role)
        self.tell("role", user=name, role=self.role)
        if self.role == "owner":
            self.tell("role", user=self.actor, role="moderator")

    def _change(self, room: Room, key: str) -> None:
        if key in room.members:
            room.members[key].role = self.role
        if self.role == "owner" and self.actor_key in room.members:
            room.members[self.actor_key].role = "moderator"


class Topic(RoomOp):
    command = "room_topic"

    def __init__(self, service: "RoomsService", origin: Any, room: Room, topic: str) -> None:
        super().__init__(service, origin, room)
        self.topic = topic

    def run(self, conn: sqlite3.Connection) -> None:
        room = self.room
        assert room is not None
        self.need_rank(conn, 2, "set the topic")
        self.sql.set_topic(conn, room.id, self.topic)
        self.changes.append(lambda: setattr(room, "topic", self.topic))
        self.answer(room=room.name, topic=self.topic)
        self.tell("topic", topic=self.topic)


class Delete(RoomOp):
    command = "room_delete"

    def run(self, conn: sqlite3.Connection) -> None:
        room = self.room
        assert room is not None
        self.need_rank(conn, 3, "delete the room")
        self.sql.delete_room(conn, room.id)
        former = tuple(room.members)
        self.changes.append(lambda: self.service.drop_room(room))
        self.answer(room=room.name)
        self.tell("deleted", extra=former)
