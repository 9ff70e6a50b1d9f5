"""Hooks the ``chat`` plugin offers to other plugins (added through ``chat_addhooks``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from chatcore.session import Session

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
