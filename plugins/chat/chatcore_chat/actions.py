"""The message-feature commands of private conversations and the global room: ``message_edit``,
``message_delete``, ``message_react``, ``typing`` and ``search`` (docs/protocol.md §5.1).

Requests are checked here (fields, the peer, the text through chat's own rules and filters),
then changes become writer operations (``changes.py``) that decide against the database. Typing
is never stored: a throttle per user and conversation, then one event. Search reads pooled
connections: chat's conversations here, other plugins' (rooms) through ``chatcore_chat_search``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

from chatcore import CommandError, protocol
from chatcore.session import corked
from chatcore_chat import features, pgfeatures, search
from chatcore_chat.changes import Change, Edit, React, Redact, conversation_of, features_of
from chatcore_chat.delivery import SessionLike, send
from chatcore_chat.feature_settings import FeatureSettings
from chatcore_chat.search import Hit
from chatcore_chat.store import COLUMNS, GLOBAL_ROOM, Message, _row
from chatcore_chat.writer import StoreClosed

if TYPE_CHECKING:
    from chatcore_chat.service import ChatService

SOURCE = "chat"  # this plugin's search source: its cursor part is a message id
Sources = Callable[[str, list[str], str, dict[str, int], int], Iterable[Iterable[Hit]]]
SEARCH_SQL = (
    "SELECT " + ", ".join(f"m.{column.strip()}" for column in COLUMNS.split(",")) +
    " FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
    " WHERE messages_fts MATCH :match AND messages_fts.rowid < :before AND m.deleted = 0"
    " AND (m.conv = '' OR substr(m.conv, 1, length(:user) + 1) = :user || char(10)"
    " OR substr(m.conv, -length(:user) - 1) = char(10) || :user)"
    " ORDER BY messages_fts.rowid DESC LIMIT :limit")


class MessageActions:
    """One per chat service: the feature commands, the typing throttle, the search merge."""

    def __init__(self, service: "ChatService", clock: Callable[[], float] = time.time) -> None:
        self.service, self.clock = service, clock
        self.settings = FeatureSettings()
        self.typing_throttle = features.Throttle(self.settings.typing_interval, clock)
        self.sources: Sources = lambda user, words, match, before, limit: ()
        self.cluster = False  # cluster mode: the features' queries are PostgreSQL's (``pgfeatures``)
        self.notify: Optional[Callable[[dict[str, Any]], None]] = None  # cluster mode: typing to the other nodes
        self.publish: Optional[Callable[[Message, dict[str, Any]], None]] = None  # ... and changes

    def configure(self, settings: FeatureSettings, sources: Optional[Sources] = None) -> None:
        """Take the settings and the other plugins' search sources (the hook)."""
        self.settings = settings
        self.typing_throttle = features.Throttle(settings.typing_interval, self.clock)
        if sources is not None:
            self.sources = sources

    def stamp(self) -> int:
        """Now in ms, never before an earlier stamp (the writer's executor only)."""
        return self.service._relay().stamp()

    def prune_changes(self, conn: Any, newest_id: Optional[int] = None) -> None:
        """Keep the change log within its age and count limits (the writer, after change ``newest_id``)."""
        days, keep = self.settings.changes_keep_days, self.settings.changes_keep
        if days > 0 or keep > 0:
            features_of(self.cluster).prune(conn, int((self.clock() - days * 86400) * 1000) if days > 0 else None,
                                            keep, newest_id)

    # -- changes -------------------------------------------------------------------------------

    def edit(self, session: SessionLike, message: dict[str, Any]) -> None:
        """``message_edit`` {peer, id, message}: one's own message gets the new text."""
        user, conv = self._conversation(session, message)
        text = message["message"]
        self.service.check_text(text)
        draft: dict[str, Any] = {"sender": user, "to": self._to(message["peer"]), "message": text,
                                 "client_id": None, "edit": message["id"]}
        self.service.filter_message(session, draft)
        if draft.get("message") is not text:
            self.service.check_text(draft.get("message"))
        self._submit(Edit(self, session, conv, message["id"], str(draft["message"])))

    def delete(self, session: SessionLike, message: dict[str, Any]) -> None:
        """``message_delete`` {peer, id}: the sender's or an administrator's; the text is erased."""
        _, conv = self._conversation(session, message)
        self._submit(Redact(self, session, conv, message["id"]))

    def react(self, session: SessionLike, message: dict[str, Any]) -> None:
        """``message_react`` {peer, id, emoji, remove?}."""
        _, conv = self._conversation(session, message)
        emoji = features.check_emoji(message["emoji"], self.settings.reaction_max_length)
        self._submit(React(self, session, conv, message["id"], emoji, not message.get("remove", False)))

    def _conversation(self, session: SessionLike, message: dict[str, Any]) -> tuple[str, str]:
        user = self.service._user(session)
        if isinstance(message["id"], bool) or message["id"] < 1:
            raise CommandError("bad_request", "field 'id' must be a message id")
        return user, conversation_of(user, self._to(message["peer"]))

    def _to(self, peer: str) -> str:
        return GLOBAL_ROOM if peer == GLOBAL_ROOM else self.service.resolve(peer)

    def _submit(self, op: Change) -> None:
        try:
            self.service._relay().writer.submit(op)
        except StoreClosed as exc:
            raise CommandError("unavailable", f"nothing was changed: {exc}") from None

    def tell_conversation(self, message: Message, body: dict[str, Any], skip: Any) -> None:
        """One event to every v2 session of the conversation but ``skip`` (the writer's follow-up)."""
        self.tell(self._sessions(message.sender, message.to), body, skip)

    def _sessions(self, sender: str, to: str) -> list[Any]:
        directory = self.service._relay().directory
        if to == GLOBAL_ROOM:
            return list(directory.authenticated())
        users = [sender] if sender.casefold() == to.casefold() else [sender, to]
        return [session for user in users for session in directory.of_user(user)]

    @staticmethod
    def tell(sessions: Iterable[Any], body: dict[str, Any], skip: Any = None) -> None:
        frame = protocol.encode(body)
        with corked():
            for session in sessions:
                if session is not skip and session.v2:
                    send(session, frame)

    # -- typing --------------------------------------------------------------------------------

    def typing(self, session: SessionLike, message: dict[str, Any]) -> None:
        """``typing`` {peer}: at most one ``typing`` event per user and conversation every
        ``CHATCORE_CHAT_TYPING_INTERVAL`` s, to the other side's v2 sessions; never stored, no reply."""
        user = self.service._user(session)
        to = self._to(message["peer"])
        if to != GLOBAL_ROOM and to.casefold() == user.casefold():
            return
        if not self.typing_throttle.allow((user.casefold(), conversation_of(user, to))):
            return
        body = {"type": "typing", "sender": user, "to": to, "expires_in": self.settings.typing_expiry}
        self.tell_typing(body)
        if self.notify is not None:
            self.notify(body)

    def tell_typing(self, body: dict[str, Any]) -> None:
        """A ``typing`` event to this node's v2 sessions of the conversation, the typist's own
        excepted (the bus listener calls it with other nodes' events: throw-away, like typing)."""
        user, to = str(body.get("sender", "")), str(body.get("to", ""))
        if not user:
            return
        mine = user.casefold()
        self.tell((s for s in self._sessions(user, to) if (s.user or "").casefold() != mine), body)

    # -- search --------------------------------------------------------------------------------

    def search(self, session: SessionLike, message: dict[str, Any]) -> dict[str, Any]:
        """``search`` {query, before?, limit?}: what the user may read, newest first, one page."""
        user = self.service._user(session)
        settings = self.settings
        words = search.terms(message["query"], settings.search_max_query, settings.search_max_words)
        before = search.parse_cursor(message.get("before"))
        limit = message.get("limit", settings.search_page)
        if isinstance(limit, bool) or limit < 1:
            raise CommandError("bad_request", "field 'limit' must be 1 or more")
        limit = min(limit, settings.search_page)
        match = search.match_expression(words)
        hits = list(self.search_chat(user, words, match, before, limit + 1))
        for found in self.sources(user, words, match, before, limit + 1):
            hits.extend(found)
        ordered = search.newest(hits)
        reply: dict[str, Any] = {"type": "search", "query": message["query"], "results": [], "has_more": False,
                                 "next_before": "x" * search.MAX_CURSOR}
        items = protocol.fitting((hit.item for hit in ordered[:limit]), protocol.MAX_JSON - len(protocol.dumps(reply)))
        taken = ordered[:len(items)]
        reply.update(results=items, has_more=len(ordered) > len(taken))
        reply["next_before"] = search.next_cursor(taken, before)
        return reply

    def search_chat(self, user: str, words: list[str], match: str, before: dict[str, int],
                    limit: int) -> list[Hit]:
        """Chat's own hits: the user's private conversations and the global room."""
        readers, indexer = self.service.readers, self.service.indexer
        key = user.casefold()
        if readers is not None and self.cluster:  # PostgreSQL: the messages' folded words
            with readers.connection() as conn:
                found_rows = pgfeatures.search(conn, key, words, before.get(SOURCE, 2**63 - 1), limit)
        elif readers is None or indexer is None:
            return []
        else:
            indexer.flush()  # every message acknowledged so far is in the index
            with readers.connection() as conn:
                found_rows = [_row(row) for row in conn.execute(
                    SEARCH_SQL, {"match": match, "before": before.get(SOURCE, 2**63 - 1), "user": key,
                                 "limit": limit}).fetchall()]
        hits = []
        for found in found_rows:
            peer = "" if found.broadcast else (found.to if found.sender.casefold() == key else found.sender)
            item = {"peer": peer, "id": found.id, "sender": found.sender, "to": found.to, "ts": found.ts,
                    "message": found.text, "marks": search.marks(found.text, words),
                    **features.stamp_fields(found.edited_ms, found.deleted)}
            hits.append(Hit(SOURCE, found.id, found.ts_ms, item))
        return hits
