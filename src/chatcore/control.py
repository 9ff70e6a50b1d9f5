"""The live admin channel's commands: what ``chatcore status|kick|announce|plugin`` and
``chatcore user ...`` ask a running server over its admin socket (``chatcore.admin``).

Each handler takes the decoded request and returns a JSON-able reply, ``{"ok": True, ...}``
or ``{"ok": False, "error": "one sentence"}``; nothing here raises to the socket.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Callable

from chatcore import __version__, protocol
from chatcore.cluster.relay import publish_admin, set_admin_locally
from chatcore.moderation import ANNOUNCE_MAX, REASON_MAX, announce, kick, text_problem
from chatcore.plugins import CORE
from chatcore.users import admin_handlers as user_handlers

if TYPE_CHECKING:
    from chatcore.server import ChatServer

Reply = dict[str, Any]
Handler = Callable[[dict[str, Any]], Reply]
STATUS_USERS = 200  # names of online users ``status`` lists (the count is always exact)


def plugin_states(server: "ChatServer") -> list[Reply]:
    """Every plugin of the server, the core first: active or disabled (and why), essential or not."""
    rows = []
    for name in [CORE, *server.plugin_names]:
        why = server.budget.disabled.get(name)
        rows.append({"name": name, "state": "disabled" if why is not None else "active", "why": why or "",
                     "essential": name in server.budget.essential, "commands": server.commands.of_plugin(name)})
    return rows


def status(server: "ChatServer") -> Reply:
    """What ``chatcore status`` shows: uptime, connections, users online (on this node),
    plugins, and in cluster mode the nodes alive."""
    sessions = server.sessions.all()
    online = server.sessions.online_users()
    host, port = server.address
    return {
        "ok": True, "version": __version__, "pid": os.getpid(), "address": f"{host}:{port}",
        "data_dir": str(server.data_dir), "tls": server.tls_context is not None,
        "started": protocol.timestamp(int(server.started_at * 1000)), "uptime": round(time.time() - server.started_at, 1),
        "connections": len(sessions), "connections_tls": sum(1 for s in sessions if s.tls),
        "sessions_logged_in": len(server.sessions.authenticated()),
        "users_online": len(online), "users": online[:STATUS_USERS],
        "plugins": plugin_states(server),
        **({"cluster": cluster_status(server)} if server.cluster is not None else {}),
    }


def cluster_status(server: "ChatServer") -> Reply:
    """This node's id and the nodes alive (cluster mode), or why they cannot be read."""
    assert server.cluster is not None
    try:
        alive: Any = server.cluster.nodes.alive()
    except Exception as error:
        alive = f"unknown: {error}"
    return {"node": server.cluster.node_id, "nodes": alive, "problem": server.cluster.problem()}


def handlers(server: "ChatServer") -> dict[str, Handler]:
    """Every admin-socket command: the users' (``chatcore.users``) and the operator's below."""

    def get_status(request: Reply) -> Reply:
        return status(server)

    def kick_user(request: Reply) -> Reply:
        username, device, reason = request.get("username"), request.get("device"), request.get("reason") or ""
        if not isinstance(username, str) or not isinstance(reason, str) or not isinstance(device, (str, type(None))):
            return {"ok": False, "error": "username, device and reason must be strings"}
        if len(reason) > REASON_MAX:
            return {"ok": False, "error": f"the reason is longer than {REASON_MAX} characters"}
        name = server.lookup_user(username) or (username if server.sessions.of_user(username) else None)
        if name is None:
            return {"ok": False, "error": f"no user {username!r}"}
        ended = kick(server, name, device, reason)
        if server.cluster is not None:  # the other nodes end theirs and do not count them back
            return {"ok": True, "username": name, "ended": ended, "cluster": True}
        if not ended:
            return {"ok": False, "error": f"{name} has no live session" + (f" on device {device!r}" if device else "")}
        return {"ok": True, "username": name, "ended": ended}

    def send_announcement(request: Reply) -> Reply:
        text = request.get("text")
        problem = text_problem(text, "announcement", ANNOUNCE_MAX)
        if problem is not None:
            return {"ok": False, "error": problem}
        assert isinstance(text, str)
        return {"ok": True, "delivered": announce(server, text)}

    def switch_plugin(request: Reply) -> Reply:
        name, enable = request.get("name"), request.get("enable")
        if name not in [CORE, *server.plugin_names] or not isinstance(enable, bool):
            return {"ok": False, "error": f"no plugin {name!r} runs on this server; running: "
                    f"{', '.join([CORE, *server.plugin_names])}"}
        try:
            changed = server.budget.enable(name) if enable else server.budget.disable(name, "disabled by the operator")
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "name": name, "changed": changed, "state": "active" if enable else "disabled"}

    def set_admin(request: Reply) -> Reply:
        """The accounts store's admin flag changed (``chatcore user admin``): apply it to the
        user's live sessions now and tell them (``admin_changed``)."""
        username, admin = request.get("username"), request.get("admin")
        if not isinstance(username, str) or not isinstance(admin, bool):
            return {"ok": False, "error": "username must be a string and admin true or false"}
        publish_admin(server, username, admin)  # cluster mode: the other nodes' sessions too
        return {"ok": True, "sessions": set_admin_locally(server, username, admin)}

    return {**user_handlers(server), "status": get_status, "kick": kick_user, "announce": send_announcement,
            "plugin": switch_plugin, "set_admin": set_admin}
