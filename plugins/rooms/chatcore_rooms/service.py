"""The ``rooms`` plugin's behaviour: its commands, the login room list, fan-out, storage lifecycle.

``plugin.py`` forwards hook calls here. Requests are checked here first against the rooms
held in memory (cheap refusals, names resolved), then become writer operations
(``ops.py``) that decide against the database and answer after the commit. Reads (lists,
history, members) use pooled read connections and answer at once.

What comes from the chat plugin (``chatcore_chat``), which must be enabled: the store
machinery (``Writer``, ``Checkpointer``, ``ReaderPool``, the in-flight ``Window``), its
message rules (``check_text``: length, emptiness; ``filter_message``: the message filter
hook), user resolution, and the private conversations' messages for their unread counts.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from chatcore import CommandError, protocol
from chatcore.session import corked
from chatcore_chat import store as chat_store
from chatcore_chat.delivery import Directory, Window, send
from chatcore_chat.quotas import Quotas
from chatcore_chat.retention import Retention, RetentionPolicy
from chatcore_chat.service import ChatService, sweeper
from chatcore_chat.storage import ClusterStorage, Storage, StorageOwner
from chatcore_chat.writer import StoreClosed, Writer
from chatcore_rooms import backend, messages, ops, pgschema, pgstore, retention, schema, store
from chatcore_rooms.commands import RoomCommands
from chatcore_rooms.fanout import Event, Follow, RoomFanout
from chatcore_rooms.models import Room
from chatcore_rooms.msgfeatures import RoomFeatures
from chatcore_rooms.names import mentioned, room_name_problem
from chatcore_rooms.reads import Reads
from chatcore_rooms.replay import RoomReplay
from chatcore_rooms.settings import RoomsSettings

log = logging.getLogger(__name__)
STATE_KEY = "rooms"  # this plugin's slot in session.state: the session's in-flight Window


class RoomsService(StorageOwner):
    """One per server: owns the rooms database, its writer, and the rooms held in memory."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.settings = RoomsSettings()
        self.chat: Optional[ChatService] = None
        self.directory: Optional[Directory] = None
        self.rooms: dict[str, Room] = {}  # by key; changed only by the writer's follow-ups
        self._ids: dict[int, Room] = {}
        self._pairs: set[tuple[str, str]] = set()  # (reader, peer) private conversations tracked
        self._last_ms = 0
        # v2 sessions logged in, by user key: who room events go to. Copy-on-write tuples, so
        # a fan-out reads them without a lock (and without the registry's lock per member).
        self._online: dict[str, tuple[Any, ...]] = {}
        self._online_lock = threading.Lock()
        self.reads = Reads(self)
        self.commands = RoomCommands(self)  # create, join, leave, invite, moderation, roles, topic, delete
        self.features = RoomFeatures(self)  # edit, delete, reactions, typing, pins, search
        self.quotas = Quotas(0, 0, 0, 0)  # chat's daily limits per sender, read at open
        self.retention: Optional[Retention] = None  # chat's policy, on room messages
        self.sql: Any = backend.SQLITE  # the store's queries (``backend.py``)
        self.fanout: Optional[RoomFanout] = None  # cluster mode only: rooms across nodes (``fanout.py``)

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self, settings: RoomsSettings, chat: ChatService, directory: Path, sessions: Directory,
             cluster: Any = None) -> None:
        """Open (or create) ``<directory>/rooms.sqlite3``, load the rooms, start the writer; room
        messages follow chat's daily quotas per sender and its retention policy. With a
        ``cluster``, the ``rooms`` schema of its PostgreSQL instead (chat's writer on it), and
        rooms across its nodes (``fanout.py``)."""
        self.settings, self.chat, self.directory = settings, chat, sessions
        cs = chat.settings  # the undelivered-message limits are chat's alone: room messages wait for nobody
        self.quotas = Quotas(0, 0, cs.sender_daily_messages, cs.sender_daily_bytes)
        storage: Any
        if cluster is None:
            path = directory / schema.FILENAME
            conn = chat_store.connect(path, chat.settings.synchronous, autocheckpoint=False)
            schema.create_schema(conn, now_ms=int(self.clock() * 1000))
            self.rooms = store.load(conn)
            self._pairs = set(store.private_pairs(conn))
            self.quotas.install(conn)
            storage = Storage(path, conn, cs.batch, chat.actions.settings.scrub_interval, name="rooms")
            queries: Any = retention
            prune: Any = retention.Prune
        else:
            storage = ClusterStorage(cluster.database, cs.batch, schema=pgschema.SCHEMA, lock=pgschema.WRITE_LOCK)
            with storage.readers.connection() as conn:
                self.rooms = pgstore.load(conn)
                self._pairs = set(pgstore.private_pairs(conn))
            self.sql = backend.POSTGRES
            queries, prune = retention.PgQueries, retention.PgPrune
        self._ids = {room.id: room for room in self.rooms.values()}
        self.storage = storage
        if cluster is not None:
            self.fanout = RoomFanout(self, cluster.bus)
            self.fanout.start()
        policy = RetentionPolicy(cs.retention_days, cs.retention_count)
        self.retention = Retention(policy, storage.readers, storage.writer.submit, self.clock, cs.retention_interval,
                                   queries=queries, delete=lambda ids: prune(self, ids), name="rooms-retention",
                                   turn=(lambda: True) if cluster is None else lambda: sweeper(cluster))
        self.retention.start()
        log.info("rooms in %s: %d room(s)", "PostgreSQL (schema rooms)" if cluster else directory / schema.FILENAME,
                 len(self.rooms))

    def close(self) -> None:
        if self.retention is not None:
            self.retention.stop()
        if self.storage is not None:
            self.storage.close()

    def stamp(self) -> int:
        """Now in milliseconds, never earlier than the previous stamp (writer's executor only)."""
        self._last_ms = max(self._last_ms, int(self.clock() * 1000))
        return self._last_ms

    # -- memory, changed by the writer's follow-ups ---------------------------------------------

    def add_room(self, room: Room) -> None:
        self.rooms[room.key] = room
        self._ids[room.id] = room

    def drop_room(self, room: Room) -> None:
        if self.rooms.get(room.key) is room:
            del self.rooms[room.key]
        self._ids.pop(room.id, None)

    def merge_room(self, fresh: Room) -> None:
        """A room as the database has it now (cluster mode: changed by another node): the one in
        memory takes its state (queued operations keep their reference), or it is added."""
        room = self._ids.get(fresh.id)
        if room is None:
            stale = self.rooms.get(fresh.key)
            if stale is not None:  # deleted and made again elsewhere
                self.drop_room(stale)
            self.add_room(fresh)
            return
        room.topic, room.private, room.history = fresh.topic, fresh.private, fresh.history
        room.last_seq = max(room.last_seq, fresh.last_seq)
        room.members = dict(fresh.members)  # one assignment: readers see the old members or the new
        room.pins = list(fresh.pins)
        room.version = max(room.version, fresh.version)

    def replace_rooms(self, fresh: dict[str, Room]) -> None:
        """Every room as the database has it (cluster mode, after events may have been lost)."""
        kept = {room.id for room in fresh.values()}
        for room in list(self.rooms.values()):
            if room.id not in kept:
                self.drop_room(room)
        for room in fresh.values():
            self.merge_room(room)

    def share(self, reload: Iterable[int] = (), events: Iterable[Event] = (),
              users: Iterable[tuple[str, dict[str, Any]]] = ()) -> None:
        """Cluster mode: tell the other nodes (rooms to reload, events for their sessions); else nothing."""
        if self.fanout is not None:
            self.fanout.share(list(reload), list(events), list(users))

    def drop_member(self, room: Room, user_key: str) -> None:
        room.members.pop(user_key, None)

    def by_id(self, room_id: int) -> Optional[Room]:
        return self._ids.get(room_id)

    def forget_member(self, user_key: str, handover: Iterable[tuple[Room, Optional[str]]]) -> None:
        """A removed user leaves every room; rooms they owned pass to ``heir`` (or are gone)."""
        heirs = dict((room.id, heir) for room, heir in handover)
        told: list[Event] = []
        changed: list[int] = []
        for room in list(self.rooms.values()):
            if room.id in heirs and heirs[room.id] is None:
                self.drop_room(room)
                changed.append(room.id)
                continue
            gone = room.members.pop(user_key, None)
            if gone is None:
                continue
            changed.append(room.id)
            heir = heirs.get(room.id)
            if heir is not None and heir in room.members:
                room.members[heir].role = "owner"
            bodies = [{"type": "room_event", "room": room.name, "kind": "left", "by": "", "user": gone.user,
                       "reason": "account removed", "info": room.info()}]
            if heir is not None and heir in room.members:
                bodies.append({"type": "room_event", "room": room.name, "kind": "role", "by": "",
                               "user": room.members[heir].user, "role": "owner", "info": room.info()})
            for body in bodies:
                self.fan_out(room, protocol.encode(body), (), None)
                told.append((room.id, body, ()))
        self._pairs = {pair for pair in self._pairs if user_key not in pair}
        self.share(changed, told)

    # -- sending -----------------------------------------------------------------------------

    def fan_out(self, room: Room, frame: bytes, extra: Iterable[str], skip: Any) -> None:
        """One encoded frame to every v2 session of the room's members and of ``extra`` users,
        but ``skip`` (the requesting connection, which gets its reply instead)."""
        online = self._online
        keys = list(room.members)
        keys.extend(key for key in extra if key not in room.members)
        with corked():
            for key in keys:
                for session in online.get(key, ()):
                    if session is not skip:
                        send(session, frame)

    def online_sessions(self, user_key: str) -> tuple[Any, ...]:
        """The user's v2 sessions logged in now."""
        return self._online.get(user_key, ())

    def send_to(self, keys: Iterable[str], frame: bytes) -> None:
        """One encoded frame to every v2 session here of these users (each once)."""
        online = self._online
        with corked():
            for key in dict.fromkeys(keys):
                for session in online.get(key, ()):
                    send(session, frame)

    def tell_user(self, user_key: str, body: dict[str, Any], skip: Any = None) -> None:
        """An event to the user's v2 sessions (but ``skip``)."""
        frame = protocol.encode(body)
        for session in self._online.get(user_key, ()):
            if session is not skip:
                send(session, frame)

    # -- shapes ------------------------------------------------------------------------------

    def mine(self, room: Room, role: str, read_seq: int, mentions: int, members: Optional[int] = None) -> dict[str, Any]:
        """A room as its member sees it in ``room_list`` and join replies."""
        info = room.info()
        if members is not None:
            info["members"] = members
        return {**info, "role": role, "read_seq": read_seq, "unread": max(0, room.last_seq - read_seq),
                "mentions": mentions}

    def private_unread(self, user: str, peer: str, read_id: int) -> tuple[int, int]:
        """(unread, as_of): messages from ``peer`` after ``read_id``, counted up to chat's newest id ``as_of``."""
        assert self.chat is not None
        as_of = self.chat.newest_id()
        return self.chat.unread(user, peer, read_id, as_of, self.settings.unread_cap), as_of

    # -- login -------------------------------------------------------------------------------

    def authenticated(self, session: Any, request: Optional[dict[str, Any]] = None) -> None:
        """A v2 session that logged in gets room events from now on, and the room list first
        (legacy sessions get no room events); then, when its login named ``room_changes_since``,
        the room changes since (``replay.py``) and ``room_changes_done``."""
        if session.v2:
            key = self._user(session).casefold()
            if self.fanout is not None and self.writer is not None:  # online from this point in the writer's order
                try:
                    self.writer.submit(Follow(self.fanout, session, key)).wait(self.chat.settings.queue_timeout
                                                                             if self.chat else 30)
                except Exception as error:
                    log.warning("rooms: %r follows its rooms without the database's seqs: %s", session, error)
                    self.go_online(session)
            else:
                self.go_online(session)
            self.reads.send_list(session)
            since = (request or {}).get("room_changes_since")
            if isinstance(since, int) and not isinstance(since, bool) and self.writer is not None:
                RoomReplay(self).deliver(session, since)

    def go_online(self, session: Any) -> None:
        """Room events go to this v2 session from now on."""
        key = (session.user or "").casefold()
        with self._online_lock:
            if key and session not in self._online.get(key, ()) and not getattr(session, "closed", False):
                self._online[key] = (*self._online.get(key, ()), session)

    def logging_out(self, session: Any) -> None:
        session.state.pop(STATE_KEY, None)
        key = (session.user or "").casefold()
        with self._online_lock:
            left = tuple(s for s in self._online.get(key, ()) if s is not session)
            if left:
                self._online[key] = left
            else:
                self._online.pop(key, None)

    def note_message(self, session: Any, draft: dict[str, Any]) -> None:
        """Chat's message filter: the first private message of a pair starts tracking the
        conversation for its recipient, read up to chat's newest id so far (so it counts as unread)."""
        to, sender = draft.get("to"), draft.get("sender")
        if not to or not sender or "room" in draft or self.writer is None or self.chat is None:
            return
        pair = (str(to).casefold(), str(sender).casefold())
        if pair[0] == pair[1] or pair in self._pairs:
            return
        self._pairs.add(pair)
        try:  # once per pair of users: wait, so the marker exists before the message is acknowledged
            self.writer.submit(messages.NotePeer(pair[0], pair[1], str(sender), self.chat.newest_id(),
                                                    self.sql)).wait(5.0)
        except (StoreClosed, TimeoutError):
            self._pairs.discard(pair)  # the next message tries again
        except Exception:
            self._pairs.discard(pair)
            log.exception("tracking the conversation of %s with %s failed", pair[0], pair[1])

    def forget_user(self, username: str) -> int:
        """Delete what a removed user leaves in rooms; waits for the commit."""
        purge = self._writer().submit(messages.Purge(self, username.casefold()))
        deleted = int(purge.wait() or 0)
        log.info("rooms: deleted %d message(s) of removed user %s", deleted, username)
        return deleted

    # -- commands: messages and read markers (the membership commands are ``commands.py``) ---

    def post(self, session: Any, message: dict[str, Any]) -> None:
        """``room_message`` {room, message, client_id?}: stored, then acknowledged (``room_ack``)
        and sent to the members, by the writer; a client may pipeline them like ``chat``."""
        sender = self._user(session)
        assert self.chat is not None
        client_id = message.get("client_id")
        if isinstance(client_id, str) and len(client_id) > protocol.MAX_CLIENT_ID:
            raise CommandError("bad_request", f"field 'client_id' must be at most {protocol.MAX_CLIENT_ID} characters")
        room = self._room(message["room"])
        if sender.casefold() not in room.members and self.fanout is None:  # cluster mode: the writer decides
            raise CommandError("not_member", f"you are not a member of {room.name}: join it first")
        self.chat.check_text(message["message"])
        draft: dict[str, Any] = {"sender": sender, "to": "#" + room.name, "room": room.name,
                                 "message": message["message"], "client_id": client_id}
        self.chat.filter_message(session, draft)
        text = draft.get("message")
        if text is not message["message"]:
            self.chat.check_text(text)
        assert isinstance(text, str)
        names, everyone = mentioned(text)
        state = session.state.get(STATE_KEY)
        if state is None:
            state = session.state.setdefault(STATE_KEY, Window(self.chat.settings.in_flight))
        if not state.acquire(timeout=self.chat.settings.queue_timeout):
            raise CommandError("unavailable", "too many room messages waiting to be stored; not stored")
        op = messages.Post(self, session, room, text, names, everyone, client_id, state)
        try:
            self._writer().submit(op, self.chat.settings.queue_timeout, inline=not getattr(session, "more_requests", False))
        except (StoreClosed, TimeoutError) as exc:
            state.release()
            raise CommandError("unavailable", f"the message was not stored: {exc}") from None

    def mark_read(self, session: Any, message: dict[str, Any]) -> None:
        """``mark_read`` {room, seq} or {peer, id}."""
        user = self._user(session)
        if ("room" in message) == ("peer" in message):
            raise CommandError("bad_request", "name exactly one of 'room' (with 'seq') and 'peer' (with 'id')")
        if "room" in message:
            seq = message.get("seq")
            if not isinstance(seq, int) or isinstance(seq, bool):
                raise CommandError("bad_request", "field 'seq' must be an integer")
            room = self._room(message["room"])
            if user.casefold() not in room.members and self.fanout is None:  # cluster mode: the writer decides
                raise CommandError("not_member", f"you are not a member of {room.name}")
            self._submit(messages.MarkRead(self, session, room, max(0, seq)))
            return
        read_id = message.get("id")
        if not isinstance(read_id, int) or isinstance(read_id, bool):
            raise CommandError("bad_request", "field 'id' must be an integer")
        assert self.chat is not None
        peer = self._registered(message["peer"])
        self._submit(messages.MarkPrivateRead(self, session, peer, max(0, min(read_id, self.chat.newest_id()))))

    # -- helpers -----------------------------------------------------------------------------

    def _writer(self) -> Writer:
        if self.writer is None:
            raise CommandError("unavailable", "rooms storage is not open")
        return self.writer

    def _submit(self, op: ops.RoomOp) -> None:
        try:
            self._writer().submit(op)
        except StoreClosed as exc:
            raise CommandError("unavailable", f"nothing was changed: {exc}") from None

    @staticmethod
    def _user(session: Any) -> str:
        if session.user is None:
            raise CommandError("not_authenticated", "log in first")
        return str(session.user)

    def _room(self, name: Any) -> Room:
        room = self.rooms.get(name.casefold()) if isinstance(name, str) else None
        if room is None and self.fanout is not None and isinstance(name, str) and room_name_problem(name) is None:
            room = self._load_room(name.casefold())
        if room is None:
            raise CommandError("unknown_room", f"there is no room named {protocol.echo(str(name))!r}")
        return room

    def _load_room(self, key: str) -> Optional[Room]:
        """Cluster mode: a room this node has not heard of yet (made on another node a moment
        ago): read from the database and kept, unless the writer's order put one there meanwhile."""
        assert self.readers is not None
        with self.readers.connection() as conn:
            found = pgstore.load(conn, key=key).get(key)
        if found is not None:
            with self._online_lock:
                if found.id not in self._ids and key not in self.rooms:
                    self.add_room(found)
        return self.rooms.get(key)

    def role_of(self, room: Room, user_key: str) -> Optional[str]:
        """The user's role in the room: memory's, or in cluster mode on a miss the database's
        (a join on another node may not have reached this one yet)."""
        role = room.role_of(user_key)
        if role is None and self.fanout is not None and self.readers is not None:
            with self.readers.connection() as conn:
                role = self.sql.role(conn, room.id, user_key)
        return role

    def _registered(self, name: Any) -> str:
        """The registered display name of ``name``, or ``unknown_user``."""
        assert self.chat is not None
        try:
            return self.chat.resolve(name)
        except CommandError as exc:
            raise CommandError("unknown_user", f"no user named {protocol.echo(str(name))!r}") from exc
