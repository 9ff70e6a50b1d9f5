# mypy: disable-error-code="empty-body"
"""Hooks the ``chat`` plugin offers to other plugins (added through ``chat_addhooks``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from chatcore.session import Session
    from chatcore_chat.search import Hit

# The host's project name (pluggy finds specs by it); the hook names carry this plugin's own prefix.
hookspec = pluggy.HookspecMarker("chatcore")


@hookspec
def chatcore_chat_message_filter(session: "Session", message: dict[str, Any]) -> None:
    """Inspect, change or refuse a chat message before it is stored and delivered.

    Called for every ``chat`` request that passed the plugin's own checks, on the sender's
    connection thread, by every implementation in pluggy order (``tryfirst``/``trylast`` to
    choose). Each sees the changes made by those before it.

    - To change the text, assign ``message["message"]`` (a non-empty string within the
      length limit; the result is checked again).
    - To refuse, raise ``chatcore.CommandError(code, reason)``: the sender gets that
      ``error``; nothing is stored or delivered.
    - Other keys are read-only: ``sender`` (display name), ``to`` (recipient display name,
      ``""`` for the global room), ``client_id`` (as the client sent it, or None).

    :param session: the sending session (``session.user`` is the sender).
    :param message: the mutable message draft described above.
    """


@hookspec
def chatcore_chat_search(user: str, words: list[str], match: str, before: dict[str, int],
                         limit: int) -> list["Hit"]:
    """Add hits to a ``search`` from another kind of conversation (the rooms plugin's rooms).

    Called on the searching connection's thread for every ``search`` request; chat searches its
    own private conversations and the global room itself and merges every implementation's
    hits newest first. Return only messages ``user`` may read now, never deleted ones.

    :param user: the searching user's display name.
    :param words: the query's words, casefolded without accents (``chatcore_chat.search.marks``
        marks them in a text).
    :param match: the FTS5 ``MATCH`` expression for those words (every word, each quoted).
    :param before: the page's cursor: ``before[source]`` is the key below which the source's hits
        continue (absent: from the newest). A source picks its own name (``[a-z][a-z0-9_]*``).
    :param limit: how many hits, newest first, to return at most.
    :return: ``chatcore_chat.search.Hit`` objects: source, key (falling as hits get older),
        ``ts_ms`` (orders every source's hits) and the reply's ``item``.
    """
