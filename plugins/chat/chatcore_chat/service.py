"""The ``chat`` plugin's behaviour: its commands, login and logout handling, storage lifecycle.

``plugin.py`` forwards hook calls here. The service talks to the server only through what
it is given in ``open`` (session registry, user lookup, filter hook), so it is testable
without pluggy.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

from chatcore import CommandError, protocol
from chatcore_chat import changelog, features, pgfeatures, pgstore, store
from chatcore_chat.actions import MessageActions
from chatcore_chat.backlog import Backlog, Paging
from chatcore_chat.catchup import CatchUp
from chatcore_chat.delivery import STATE_KEY, Delete, Directory, Purge, Relay, SessionLike
from chatcore_chat.fanout import TRACKED, Fanout, Track, Untrack
from chatcore_chat.history import fit_reply
from chatcore_chat.quotas import Quotas
from chatcore_chat.replay import Replay
from chatcore_chat.retention import Retention, RetentionPolicy
from chatcore_chat.settings import ChatSettings
from chatcore_chat.storage import ClusterStorage, Storage, StorageOwner
from chatcore_chat.store import GLOBAL_ROOM
from chatcore_chat.writer import StoreClosed

log = logging.getLogger(__name__)
Lookup = Callable[[str], Optional[str]]
Filter = Callable[[Any, dict[str, Any]], Any]
ENVELOPE_RESERVE = 1024  # JSON bytes kept free for an event's other fields around the text
MAX_ID = 2**63 - 1  # SQLite's largest integer
TYPING_TOPIC = "chat.typing"  # cluster mode: typing events between nodes (pub/sub: lost if nobody listens)


def sweeper(cluster: Any) -> bool:
    """Whether this node runs the cluster's retention sweeps: the first of the live nodes by id
    (while Redis cannot say, every node sweeps: the deletions are idempotent)."""
    try:
        alive = sorted(cluster.nodes.alive())
    except Exception:
        return True
    return not alive or alive[0] == cluster.node_id


class ChatService(StorageOwner):
    """One per server: owns the database, the writer thread and retention."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.settings = ChatSettings()
        self.path: Optional[Path] = None
        self.relay: Optional[Relay] = None
        self.backlog: Optional[Backlog] = None
        self.catch_up: Optional[CatchUp] = None
        self.retention: Optional[Retention] = None
        self.fanout: Optional[Fanout] = None  # cluster mode only
        self._lookup: Lookup = lambda name: None
        self._filter: Filter = lambda session, message: None
        self._removed: Callable[[str], bool] = lambda name: False
        self.actions = MessageActions(self, clock)  # edit, delete, reactions, typing, search

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self, settings: ChatSettings, directory: Path, sessions: Directory, lookup: Lookup,
             message_filter: Filter, removed: Callable[[str], bool] = lambda name: False,
             cluster: Any = None) -> None:
        """Open (or create) ``<directory>/messages.sqlite3`` and start the writer and retention;
        with a ``cluster`` (``chatcore.cluster.Cluster``), the ``chat`` schema in its PostgreSQL
        instead, and delivery across its nodes (``fanout.py``). ``removed(name)`` is true for a
        name just removed: messages to it are refused."""
        self.settings = settings
        self._lookup, self._filter, self._removed = lookup, message_filter, removed
        quotas = Quotas(settings.pending_max_messages, settings.pending_max_bytes,
                        settings.sender_daily_messages, settings.sender_daily_bytes)
        storage: Union[Storage, ClusterStorage]
        if cluster is None:
            self.path = directory / store.FILENAME
            conn = store.connect(self.path, settings.synchronous, autocheckpoint=False)
            store.create_schema(conn, int(self.clock() * 1000))
            quotas.install(conn)
            storage = Storage(self.path, conn, settings.batch, self.actions.settings.scrub_interval)
        else:
            storage = ClusterStorage(cluster.database, settings.batch)
        self.storage = storage
        self.relay = Relay(storage.writer, sessions, self.clock, quotas, held_limit=settings.send_buffer,
                           in_flight=settings.in_flight)
        if cluster is not None:
            self.relay.sql = pgstore
            self.relay.fanout = self.fanout = Fanout(self.relay, cluster.bus, cluster.node_id)
            self.actions.cluster = True
            self.actions.notify = lambda body: cluster.bus.notify(TYPING_TOPIC, body)
            self.actions.publish = self.fanout.publish_change
            self.fanout.on_change = self.actions.tell_conversation
            cluster.bus.listen(TYPING_TOPIC, self.actions.tell_typing)
            self.fanout.start(cluster.nodes)
        self.backlog = Backlog(self.relay, Paging(settings.offline_page_messages, settings.offline_page_bytes,
                                                  settings.offline_page_timeout))
        self.catch_up = CatchUp(self.backlog, settings.catch_up_max, Replay(self.backlog, self.actions))
        policy = RetentionPolicy(settings.retention_days, settings.retention_count)
        self.retention = Retention(policy, storage.readers, storage.writer.submit,  # type: ignore[arg-type]
                                   self.clock, settings.retention_interval, queries=self.relay.sql,
                                   delete=lambda ids: Delete(ids, self.relay.sql) if self.relay else Delete(ids),
                                   turn=(lambda: True) if cluster is None else lambda: sweeper(cluster))
        self.retention.start()
        log.info("chat history in %s (retention: %s)", self.path or "PostgreSQL (schema chat)",
                 f"{policy.max_age_days:g} days, {policy.max_count} per conversation" if policy.active else "keep all")

    def close(self) -> None:
        """Stop retention, commit what is queued, close the database."""
        if self.retention is not None:
            self.retention.stop()
        if self.fanout is not None:
            self.fanout.stop()
        if self.storage is not None:
            self.storage.close()

    def hello_fields(self) -> dict[str, Any]:
        """Limits a client should know before sending."""
        return {"chat_max_length": self.settings.max_length}

    # -- commands ------------------------------------------------------------------------------

    def chat(self, session: SessionLike, message: dict[str, Any]) -> None:
        """``chat`` {peer, message, client_id?}: queue for storage; the writer acknowledges
        (``chat_ack``) and delivers after the commit, so a client may pipeline messages."""
        sender = self._user(session)
        client_id = message.get("client_id")
        if isinstance(client_id, str) and len(client_id) > protocol.MAX_CLIENT_ID:
            raise CommandError("bad_request", f"field 'client_id' must be at most {protocol.MAX_CLIENT_ID} characters")
        self.check_text(message["message"])
        peer: str = message["peer"]
        to = GLOBAL_ROOM if peer == "" else self.resolve(peer)
        draft: dict[str, Any] = {"sender": sender, "to": to, "message": message["message"], "client_id": client_id}
        self._filter(session, draft)
        text = draft.get("message")
        if text is not message["message"]:  # a filter replaced it: check the new text too
            self.check_text(text)
        assert isinstance(text, str)  # check_text refused anything else
        ack: dict[str, Any] = {"peer": to}
        if client_id is not None:
            ack["client_id"] = client_id
        try:
            self._relay().post(session, sender, to, text, ack, self.settings.queue_timeout)
        except (StoreClosed, TimeoutError) as exc:
            raise CommandError("unavailable", f"the message was not stored: {exc}") from None

    def get_history(self, session: SessionLike, message: dict[str, Any]) -> dict[str, Any]:
        """``get_history`` {peer, before?, limit?}: the newest page older than ``before`` that fits one frame."""
        user = self._user(session)
        peer: str = message["peer"]
        before: Optional[int] = message.get("before")
        limit: int = message.get("limit", self.settings.history_page)
        if limit < 1:
            raise CommandError("bad_request", "field 'limit' must be 1 or more")
        limit = min(limit, self.settings.history_page)
        conv = GLOBAL_ROOM if peer == "" else store.conversation_key(user, self.resolve(peer))
        if before is not None and before > MAX_ID:
            before = None  # beyond any id (and beyond SQLite's integers): the newest page
        reactions: dict[int, list[dict[str, Any]]] = {}
        assert self.readers is not None
        if self.fanout is not None:  # PostgreSQL
            with self.readers.connection() as conn:
                newest = pgfeatures.newest(conn) if session.v2 else None
                found = [] if before is not None and before <= 1 else pgstore.page(conn, conv, before, limit + 1)
                if found and session.v2:
                    reactions = pgfeatures.reactions(conn, [row.id for row in found[:limit]],
                                                     self.actions.settings.reaction_names)
            return fit_reply(peer, found[:limit], len(found) > limit, session.v2, reactions=reactions,
                             last_change_id=newest)
        with self.readers.connection() as conn:
            changed = changelog.newest(conn) if session.v2 else None  # read first: the page is at least as new
            rows: list[store.Message] = [] if before is not None and before <= 1 else \
                store.page(conn, conv, before, limit + 1)
            if rows:
                reactions = features.reactions(conn, [row.id for row in rows[:limit]],
                                               self.actions.settings.reaction_names) if session.v2 else {}
        more = len(rows) > limit
        return fit_reply(peer, rows[:limit], more, session.v2, reactions=reactions, last_change_id=changed)

    # -- login and logout ---------------------------------------------------------------------

    def authenticated(self, session: SessionLike, request: dict[str, Any]) -> None:
        """Deliver to a session that just logged in, page by page as its client reads them (auth
        has sent ``login_result``), in the session's own thread: what it missed after the login's
        ``since`` (a reconnecting client names its newest message id), or else its user's
        offline backlog. With ``since``, ``changes_since`` (the newest change id the client saw)
        adds the replay of what was edited, deleted or reacted to meanwhile (``replay.py``)."""
        since, changes = request.get("since"), request.get("changes_since")
        if self.fanout is not None and session.user is not None:  # count it present before its backlog
            try:
                self._relay().writer.submit(Track(self.fanout, session, session.user.casefold())).wait(
                    self.settings.queue_timeout)
            except Exception as error:
                log.warning("chat: %r gets no live messages from other nodes: %s", session, error)
        if isinstance(since, int) and not isinstance(since, bool) and self.catch_up is not None:
            self.catch_up.deliver(session, since, changes if isinstance(changes, int) and not isinstance(changes, bool)
                                  else None)
        elif self.backlog is not None:
            self.backlog.deliver(session)

    def logging_out(self, session: SessionLike) -> None:
        """Forget the session's delivery state; a later login on it starts afresh."""
        session.state.pop(STATE_KEY, None)
        if self.fanout is not None and session.state.pop(TRACKED, None) and session.user is not None:
            try:
                self._relay().writer.submit(Untrack(self.fanout, session.user.casefold()), inline=False)
            except StoreClosed:
                pass

    def forget_user(self, username: str) -> int:
        """Delete every message of a removed user's conversations and broadcasts, pending ones
        included; waits for the commit and returns how many went."""
        relay = self._relay()
        purge = relay.writer.submit(Purge(username.casefold(), relay.stamp, relay.sql))
        deleted = int(purge.wait() or 0)
        log.info("chat: deleted %d message(s) of removed user %s", deleted, username)
        return deleted

    # -- for plugins that build on chat (rooms) --------------------------------------------------
    # ``check_text`` and ``resolve`` (below) are public too: a room message obeys the same rules.

    def filter_message(self, session: SessionLike, draft: dict[str, Any]) -> None:
        """Run the ``chatcore_chat_message_filter`` hook over a draft (``sender``, ``to``,
        ``message``, ``client_id``, and ``room`` for a room message); it may change
        ``draft["message"]`` or raise ``CommandError``."""
        self._filter(session, draft)

    def newest_id(self) -> int:
        """The highest message id stored so far (0 for none): a private conversation's read
        marker starts there, and ``unread`` counts include ids up to it."""
        if self.readers is None:
            return 0
        with self.readers.connection() as conn:
            return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0])

    def unread(self, user: str, peer: str, after_id: int, up_to: int, cap: int) -> int:
        """How many messages ``peer`` sent ``user`` with ``after_id < id <= up_to`` (at most ``cap``)."""
        if self.readers is None or user.casefold() == peer.casefold() or up_to <= after_id:
            return 0
        mark = "%s" if self.fanout is not None else "?"  # PostgreSQL's placeholders, or SQLite's
        with self.readers.connection() as conn:
            return int(conn.execute(
                f"SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE conv = {mark} AND id > {mark} AND id <= {mark} "
                f"AND lower(sender) = {mark} LIMIT {mark}) AS found",
                (store.conversation_key(user, peer), after_id, up_to, peer.casefold(), cap)).fetchone()[0])

    # -- helpers -------------------------------------------------------------------------------

    def _relay(self) -> Relay:
        if self.relay is None:
            raise CommandError("unavailable", "chat storage is not open")
        return self.relay

    @staticmethod
    def _user(session: SessionLike) -> str:
        if session.user is None:
            raise CommandError("not_authenticated", "log in first")
        return session.user

    def resolve(self, peer: str) -> str:
        """The registered display name for ``peer`` (any case), or an ``unknown_peer`` error.

        An online user's name comes from its session, sparing the accounts store a query.
        """
        if len(peer) > protocol.MAX_ECHO or self._removed(peer):  # a name just removed: nothing may wait for its next owner
            raise CommandError("unknown_peer", f"no user named {protocol.echo(peer)!r}")
        for session in self._relay().directory.of_user(peer):
            if session.user:
                return session.user
        name = self._lookup(peer)
        if name is None:
            raise CommandError("unknown_peer", f"no user named {protocol.echo(peer)!r}")
        return name

    def check_text(self, text: Any) -> None:
        """Refuse a text that is not a non-empty string within the limits."""
        if not isinstance(text, str):
            raise CommandError("bad_request", "field 'message' must be a string")
        if not text.strip():
            raise CommandError("empty_message", "the message is empty")
        if len(text) > self.settings.max_length:
            raise CommandError("message_too_long",
                               f"the message has {len(text)} characters; the limit is {self.settings.max_length}")
        # JSON spends at most 6 bytes on a character (\u0001): measure only texts that might not fit
        if len(text) * 6 + 2 > protocol.MAX_JSON - ENVELOPE_RESERVE and \
                len(protocol.dumps(text)) > protocol.MAX_JSON - ENVELOPE_RESERVE:
            raise CommandError("message_too_long", "the message is too large to send in one frame")
