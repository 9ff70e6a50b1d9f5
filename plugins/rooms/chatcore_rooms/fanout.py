"""Rooms across the nodes of a cluster: PostgreSQL decides the order, the bus only says that
something new exists (as chat's ``fanout.py`` does for conversations).

Room messages: after its commit the sending node delivers to its own sessions and publishes
``rooms.message`` {room id, seq, the message}. Each node keeps, for each room one of its v2
sessions' users is a member of, the last ``seq`` it delivered (``RoomFanout.last``); its own
commits and the bus's events go through the rooms writer in one order, so the next seq is
delivered, a seq already seen is a duplicate and dropped, and a seq beyond the next means a gap,
read from PostgreSQL (``pgstore.between``) and delivered first, in order. ``bus.on_resync``
compares every followed room with the database the same way.

Everything else that changes a room (create, join, leave, kick, ban, roles, topic, pins, delete,
an account removed) publishes ``rooms.event``: the rooms to reload (each node keeps the rooms
and their members in memory, so it reloads them from PostgreSQL, in its writer's order) and the
events to give its sessions; read markers reach a user's sessions elsewhere the same way.
Typing crosses on pub/sub (``rooms.typing``: throw-away, like typing itself). Handlers on the
bus reader only queue a writer operation; sending to a session only queues.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

from chatcore import protocol
from chatcore_chat.delivery import send
from chatcore_chat.writer import Batch, Operation, StoreClosed
from chatcore_rooms import pgstore
from chatcore_rooms.models import Room, RoomMessage

if TYPE_CHECKING:
    from chatcore_rooms.service import RoomsService

log = logging.getLogger(__name__)
TOPIC = "rooms.message"
EVENT_TOPIC = "rooms.event"
TYPING_TOPIC = "rooms.typing"
SEQS = "rooms.seqs"  # batch scratch: room id -> the seq this batch has taken it to
FRESH = "rooms.fresh"  # batch scratch: room id -> the room as the database has it, newer than memory
CHECKED = "rooms.checked"  # batch scratch: room ids whose version this batch compared
ARRIVING = "rooms.arriving"  # batch scratch: users whose session starts following in this batch
Event = tuple[int, dict[str, Any], Sequence[str]]  # (room id, event body, users told besides its members)


class RoomFanout:
    """This node's view of which room seqs it delivered."""

    def __init__(self, service: "RoomsService", bus: Any) -> None:
        self.service, self.bus = service, bus
        self.last: dict[int, int] = {}  # room id -> the last seq delivered here (executor only)

    def start(self) -> None:
        self.bus.subscribe(TOPIC, self._heard)
        self.bus.subscribe(EVENT_TOPIC, self._heard_event)
        self.bus.listen(TYPING_TOPIC, self._heard_typing)
        self.bus.on_resync(lambda: self._submit(_Resync(self)))

    # -- what the writer's operations call (the executor, one thread at a time) -------------------

    def local(self, room: Room, batch: Optional[Batch] = None) -> bool:
        """Whether a v2 session on this node follows the room (one of its members has one)."""
        arriving = batch.scratch.get(ARRIVING, ()) if batch is not None else ()
        online = self.service.online_sessions
        return any(online(key) or key in arriving for key in list(room.members))

    def start_at(self, batch: Batch, room_id: int, seq: int) -> None:
        """A room starts to concern this node (a member's first session here, a join): what came
        up to ``seq`` is not for delivery here. Only for a room no session here follows yet."""
        batch.scratch.setdefault(SEQS, {})[room_id] = seq

    def arrive(self, conn: Any, batch: Batch, room: Room, seq: int,
               known: Optional[RoomMessage] = None) -> list[RoomMessage]:
        """What to deliver now that ``room`` has reached ``seq``: nothing for a duplicate, the
        missing seqs from the database (in order) for a gap. Call ``advanced`` after the commit."""
        room = self.current(conn, batch, room)
        seqs: dict[int, int] = batch.scratch.setdefault(SEQS, {})
        planned = seqs.get(room.id, self.last.get(room.id))
        local = self.local(room, batch)
        if planned is None:
            if not local:
                return []  # nobody here follows it
            planned = seq - 1
        if seq <= planned:
            return []
        seqs[room.id] = seq
        if not local:
            return []
        if known is not None and seq == planned + 1:
            return [known]
        return pgstore.between(conn, room.id, planned, seq)

    def current(self, conn: Any, batch: Batch, room: Room) -> Room:
        """The room as memory has it, or as the database has it when a change made elsewhere has
        not reached this node yet: its members then decide who gets its messages (a join there
        committed before a message must not wait for the bus to be delivered here)."""
        fresh: dict[int, Room] = batch.scratch.setdefault(FRESH, {})
        if room.id in fresh:
            return fresh[room.id]
        checked: set[int] = batch.scratch.setdefault(CHECKED, set())
        if room.id not in checked:
            checked.add(room.id)
            version = pgstore.version(conn, room.id)
            if version is not None and version > room.version:
                for found in pgstore.load(conn, room_ids=[room.id]).values():
                    fresh[room.id] = found
                    return found
        return room

    def advanced(self, batch: Batch) -> None:
        """The batch committed: its seqs are this node's, and rooms read newer than memory replace it."""
        for found in batch.scratch.pop(FRESH, {}).values():
            self.service.merge_room(found)
        for room_id, seq in batch.scratch.pop(SEQS, {}).items():
            self.last[room_id] = max(self.last.get(room_id, 0), seq)

    def deliver(self, room: Room, messages: Iterable[RoomMessage], origin: Any = None, own: int = 0) -> None:
        """Each message to the room's members' v2 sessions here (``origin`` sent seq ``own``: no echo)."""
        for message in messages:
            room.last_seq = max(room.last_seq, message.seq)
            body = {"type": "room_message", "room": room.name, **message.item()}
            self.service.fan_out(room, protocol.encode(body), (), skip=origin if message.seq == own else None)

    # -- telling the other nodes (after a commit) ---------------------------------------------------

    def publish(self, message: RoomMessage) -> None:
        self.bus.publish(TOPIC, {"room_id": message.room_id, "seq": message.seq, "id": message.id,
                                 "sender": message.sender, "ts": message.ts_ms, "text": message.text,
                                 "mentions": list(message.mentions), "everyone": message.everyone})

    def share(self, reload: Sequence[int], events: Sequence[Event], users: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Rooms the other nodes must reload, events for their sessions of those rooms' members
        (and of the users named with each), and events for a user's sessions."""
        if reload or events or users:
            self.bus.publish(EVENT_TOPIC, {"reload": list(reload),
                                           "events": [[room_id, body, list(extra)] for room_id, body, extra in events],
                                           "users": [[key, body] for key, body in users]})

    def typing(self, room: Room, sender_key: str, body: dict[str, Any]) -> None:
        self.bus.notify(TYPING_TOPIC, {"room_id": room.id, "sender_key": sender_key, "event": body})

    # -- the bus reader's handlers: they only queue ------------------------------------------------

    def _heard(self, body: dict[str, Any]) -> None:
        try:
            message = RoomMessage(int(body["room_id"]), int(body["seq"]), str(body["sender"]), int(body["ts"]),
                                  str(body["text"]), tuple(str(n) for n in body.get("mentions", ())),
                                  bool(body.get("everyone")), int(body["id"]))
        except (KeyError, TypeError, ValueError):
            log.warning("dropped a malformed %s event", TOPIC)
            return
        self._submit(_Remote(self, message))

    def _heard_event(self, body: dict[str, Any]) -> None:
        try:
            reload = [int(room_id) for room_id in body.get("reload", ())]
            events = [(int(room_id), dict(event), [str(key) for key in extra])
                      for room_id, event, extra in body.get("events", ())]
            users = [(str(key), dict(event)) for key, event in body.get("users", ())]
        except (TypeError, ValueError):
            log.warning("dropped a malformed %s event", EVENT_TOPIC)
            return
        self._submit(_RemoteEvent(self, reload, events, users))

    def _heard_typing(self, body: dict[str, Any]) -> None:
        try:
            room = self.service.by_id(int(body["room_id"]))
            sender, frame = str(body["sender_key"]), protocol.encode(dict(body["event"]))
        except (KeyError, TypeError, ValueError):
            return
        if room is not None:
            for key in list(room.members):
                if key != sender:
                    for session in self.service.online_sessions(key):
                        send(session, frame)

    def _submit(self, op: Operation) -> None:
        writer = self.service.writer
        try:
            if writer is not None:
                writer.submit(op, inline=False)
        except StoreClosed:
            pass


class Follow(Operation):
    """A v2 session logged in on this node: from this point in the writer's order it gets its
    rooms' messages and events; their seqs up to now are its history (and its room list's)."""

    def __init__(self, fanout: RoomFanout, session: Any, user_key: str) -> None:
        super().__init__()
        self.fanout, self.session, self.user_key = fanout, session, user_key
        self.loaded: dict[str, Room] = {}

    def apply(self, conn: Any, batch: Batch) -> None:
        service = self.fanout.service
        seqs = pgstore.user_room_seqs(conn, self.user_key)
        missing = [room_id for room_id in seqs if service.by_id(room_id) is None]
        self.loaded = pgstore.load(conn, room_ids=missing) if missing else {}
        fresh = {room.id: room for room in self.loaded.values()}
        for room_id, seq in seqs.items():
            room = service.by_id(room_id) or fresh.get(room_id)
            if room is not None and not self.fanout.local(room, batch):
                self.fanout.start_at(batch, room_id, seq)  # what came before: its room list and history
        batch.scratch.setdefault(ARRIVING, set()).add(self.user_key)

    def after(self, batch: Batch) -> None:
        for room in self.loaded.values():
            self.fanout.service.merge_room(room)
        self.fanout.advanced(batch)
        self.fanout.service.go_online(self.session)

    def failed(self, error: BaseException) -> None:
        log.warning("rooms: %r follows its rooms without the database's seqs: %s", self.session, error)
        self.fanout.service.go_online(self.session)


class _Remote(Operation):
    """Another node committed a room message: deliver it here in the room's order."""

    def __init__(self, fanout: RoomFanout, message: RoomMessage) -> None:
        super().__init__()
        self.fanout, self.message = fanout, message
        self.room: Optional[Room] = None
        self.arrivals: list[RoomMessage] = []

    def apply(self, conn: Any, batch: Batch) -> None:
        self.room = self.fanout.service.by_id(self.message.room_id)
        self.arrivals = [] if self.room is None else self.fanout.arrive(conn, batch, self.room, self.message.seq,
                                                                        self.message)

    def after(self, batch: Batch) -> None:
        self.fanout.advanced(batch)
        if self.room is not None:
            self.fanout.deliver(self.room, self.arrivals)


class _RemoteEvent(Operation):
    """Another node changed rooms: reload them from the database, then tell the sessions here."""

    def __init__(self, fanout: RoomFanout, reload: list[int], events: Sequence[Event],
                 users: list[tuple[str, dict[str, Any]]]) -> None:
        super().__init__()
        self.fanout, self.reload, self.events, self.users = fanout, reload, events, users
        self.fresh: dict[str, Room] = {}
        self.before: dict[int, Room] = {}
        self.arrivals: dict[int, list[RoomMessage]] = {}

    def apply(self, conn: Any, batch: Batch) -> None:
        service, fanout = self.fanout.service, self.fanout
        self.before = {room_id: room for room_id in self.reload for room in (service.by_id(room_id),) if room}
        self.fresh = pgstore.load(conn, room_ids=self.reload) if self.reload else {}
        self.arrivals = {}
        for room in self.fresh.values():
            old = self.before.get(room.id)
            if old is not None and fanout.local(old, batch):
                continue  # followed here already
            joined = [member.joined_seq for key, member in room.members.items() if service.online_sessions(key)]
            if joined:  # a user with sessions here joined it elsewhere: theirs from their join on
                fanout.start_at(batch, room.id, min(joined))
                self.arrivals[room.id] = fanout.arrive(conn, batch, room, room.last_seq)

    def after(self, batch: Batch) -> None:
        service = self.fanout.service
        kept = {room.id for room in self.fresh.values()}
        for room in self.fresh.values():
            service.merge_room(room)
        for room_id, room in self.before.items():
            if room_id not in kept:
                service.drop_room(room)  # deleted there
        self.fanout.advanced(batch)
        for room_id, body, extra in self.events:
            told = service.by_id(room_id) or self.before.get(room_id)
            service.send_to([*(told.members if told is not None else ()), *extra], protocol.encode(body))
        for room_id, messages in self.arrivals.items():  # what came after a join there, after its event
            joined = service.by_id(room_id)
            if joined is not None:
                self.fanout.deliver(joined, messages)
        for key, body in self.users:
            service.tell_user(key, body)


class _Resync(Operation):
    """Events may have been lost: reload every room and fill every followed room's gap."""

    def __init__(self, fanout: RoomFanout) -> None:
        super().__init__()
        self.fanout = fanout
        self.fresh: dict[str, Room] = {}
        self.arrivals: dict[int, list[RoomMessage]] = {}

    def apply(self, conn: Any, batch: Batch) -> None:
        self.fresh = pgstore.load(conn)
        self.arrivals = {}
        for room in self.fresh.values():
            found = self.fanout.arrive(conn, batch, room, room.last_seq)
            if found:
                self.arrivals[room.id] = found
        log.info("rooms: resynchronised %d room(s) from the database; %d message(s) were missing here",
                 len(self.fresh), sum(map(len, self.arrivals.values())))

    def after(self, batch: Batch) -> None:
        service = self.fanout.service
        service.replace_rooms(self.fresh)
        self.fanout.advanced(batch)
        for room_id, messages in self.arrivals.items():
            room = service.by_id(room_id)
            if room is not None:
                self.fanout.deliver(room, messages)
