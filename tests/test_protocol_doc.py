"""docs/protocol.md is the reference: every command the built-in plugins register and every
message type the server's code emits must be documented there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
SOURCES = [*ROOT.glob("src/chatcore/*.py"), *ROOT.glob("plugins/*/chatcore_*/*.py")]
EMITTED = re.compile(r'"type":\s*"([a-z_]+)"')
RESULT_KINDS = re.compile(r'_result\("([a-z_]+)"')  # auth's f"{kind}_result" replies


def documented(name: str) -> bool:
    return f"`{name}`" in DOC


def test_every_registered_command_is_documented(make_server):
    server = make_server(plugins=["auth", "chat", "filexfer", "rooms"])
    missing = [name for name in server.commands.names() if not documented(name)]
    assert not missing, f"commands missing from docs/protocol.md: {missing}"


def test_every_emitted_message_type_is_documented():
    types: set[str] = set()
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        types.update(EMITTED.findall(text))
        types.update(f"{kind}_result" for kind in RESULT_KINDS.findall(text))
    assert {"hello", "pong", "session_ended", "login_result", "chat_ack"} <= types  # the scan finds them
    missing = sorted(name for name in types if not documented(name))
    assert not missing, f"message types missing from docs/protocol.md: {missing}"
