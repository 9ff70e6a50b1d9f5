"""``get_history``: newest last, paginated with ``before``/``limit``, every reply within one frame."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from chatcore import protocol
from chatcore_chat import store
from chatcore_chat.history import legacy_time

pytestmark = pytest.mark.usefixtures("backend")  # runs on SQLite and on PostgreSQL

T0 = 1_700_000_000_000  # ms


def seed(data_dir: Path, messages: list[tuple[str, str, str]]) -> list[int]:
    """Write (sender, to, text) rows straight into the plugin's database in one transaction."""
    directory = data_dir / "chat"
    directory.mkdir(parents=True, exist_ok=True)
    conn = store.connect(directory / store.FILENAME)
    store.create_schema(conn)
    conn.execute("BEGIN")
    ids = []
    for n, (sender, to, text) in enumerate(messages):
        conv = store.GLOBAL_ROOM if to == "" else store.conversation_key(sender, to)
        ids.append(store.insert_message(conn, conv, sender, to, T0 + n * 1000, text, None).id)
    conn.execute("COMMIT")
    conn.close()
    return ids


def mixed_texts(count: int, rng: random.Random) -> list[str]:
    """Short, long, non-ASCII and escape-heavy texts (``\\x01`` is 6 JSON bytes per character)."""
    shapes = [lambda n: f"message {n}", lambda n: "é" * 4000, lambda n: "\x01" * 4000,
              lambda n: '"quoted" \\ ' * 300, lambda n: "🙂" * rng.randint(1, 4000), lambda n: "x" * rng.randint(1, 4000)]
    return [rng.choices(shapes, weights=[80, 4, 4, 4, 4, 4])[0](n) for n in range(count)]


def page_through(client, peer: str, key: str, limit: int | None = None) -> tuple[list, list[int]]:
    """Every item of a conversation, oldest first, fetched page by page; also the JSON size of each reply."""
    items: list = []
    sizes: list[int] = []
    before = None
    while True:
        request = {"command": "get_history", "peer": peer}
        if before is not None:
            request["before"] = before
        if limit is not None:
            request["limit"] = limit
        reply = client.request(request)
        assert reply["type"] == "get_history" and reply["peer"] == peer, reply
        sizes.append(len(protocol.dumps(reply)))
        page = reply[key]
        assert page, "a page is never empty while has_more was true"
        items[:0] = page
        if not reply["has_more"]:
            assert "next_before" not in reply
            return items, sizes
        before = reply["next_before"]


@pytest.mark.sqlite_only  # seeds or reads the SQLite file
def test_pagination_over_thousands_of_messages_never_exceeds_a_frame(tmp_path, chat_server, login_as):
    rng = random.Random(4)
    texts = mixed_texts(3000, rng)
    rows = [("alice" if n % 2 else "Bob", "bob" if n % 2 else "alice", t) for n, t in enumerate(texts)]
    ids = seed(tmp_path / "data", rows)
    server = chat_server()
    bob_v2 = login_as(server, "bob", v2=True)
    alice_legacy = login_as(server, "alice")

    messages, sizes = page_through(bob_v2, "ALICE", "messages")
    assert max(sizes) <= protocol.MAX_JSON
    assert len(sizes) > 20  # big messages forced many pages
    assert [m["id"] for m in messages] == ids  # all of them, once each, oldest first
    assert [m["message"] for m in messages] == texts
    first = messages[0]
    assert first == {"id": ids[0], "sender": "Bob", "to": "alice", "ts": protocol.timestamp(T0), "message": texts[0]}

    triples, sizes = page_through(alice_legacy, "bob", "data")
    assert max(sizes) <= protocol.MAX_JSON
    assert triples == [[s, legacy_time(T0 + n * 1000), t] for n, (s, _, t) in enumerate(rows)]


@pytest.mark.sqlite_only  # seeds or reads the SQLite file
def test_pages_fill_the_frame_when_messages_are_large(tmp_path, chat_server, login_as):
    seed(tmp_path / "data", [("alice", "", "\x01" * 4000)] * 50)
    server = chat_server()
    client = login_as(server, "alice", v2=True)
    reply = client.request(command="get_history", peer="")
    size = len(protocol.dumps(reply))
    assert reply["has_more"] and size <= protocol.MAX_JSON
    assert len(reply["messages"]) == 2  # 24 kB of JSON each: a third would not fit
    assert size + 24_000 > protocol.MAX_JSON


@pytest.mark.sqlite_only  # seeds or reads the SQLite file
def test_limit_and_before(tmp_path, chat_server, login_as):
    ids = seed(tmp_path / "data", [("alice", "", f"m{n}") for n in range(100)])
    server = chat_server(env={"CHATCORE_CHAT_HISTORY_PAGE": "30"})
    client = login_as(server, "alice", v2=True)
    newest = client.request(command="get_history", peer="", limit=10)
    assert [m["id"] for m in newest["messages"]] == ids[-10:] and newest["has_more"]
    assert newest["next_before"] == ids[-10]
    older = client.request(command="get_history", peer="", limit=10, before=newest["next_before"])
    assert [m["id"] for m in older["messages"]] == ids[-20:-10]
    capped = client.request(command="get_history", peer="", limit=1000)  # capped by the setting
    assert len(capped["messages"]) == 30
    oldest = client.request(command="get_history", peer="", before=ids[3])
    assert [m["id"] for m in oldest["messages"]] == ids[:3] and oldest["has_more"] is False
    assert client.request(command="get_history", peer="", before=0)["messages"] == []
    assert client.request(command="get_history", peer="", before=-5)["messages"] == []


@pytest.mark.sqlite_only  # seeds or reads the SQLite file
def test_a_hundred_thousand_messages(tmp_path, chat_server, login_as, register):
    ids = seed(tmp_path / "data", [("alice", "bob", f"n{n} " + "y" * (n % 200)) for n in range(100_000)])
    server = chat_server()
    register(server, "alice")
    client = login_as(server, "bob", v2=True)
    newest = client.request(command="get_history", peer="alice")
    assert newest["type"] == "get_history", newest
    assert newest["messages"][-1]["id"] == ids[-1] and newest["has_more"]
    assert len(protocol.dumps(newest)) <= protocol.MAX_JSON
    middle = client.request(command="get_history", peer="alice", before=ids[50_000], limit=5)
    assert [m["id"] for m in middle["messages"]] == ids[49_995:50_000]


def test_history_is_per_conversation(server, login_as, chat, history):
    alice, bob, carol = (login_as(server, n) for n in ("alice", "bob", "carol"))
    chat(alice, "bob", "a to b")
    chat(bob, "alice", "b to a")
    chat(alice, "carol", "a to c")
    chat(carol, "", "c to all")
    assert [d[2] for d in history(alice, "BOB")["data"]] == ["a to b", "b to a"]
    assert [d[2] for d in history(bob, "alice")["data"]] == ["a to b", "b to a"]
    assert [d[2] for d in history(carol, "alice")["data"]] == ["a to c"]
    assert [d[2] for d in history(bob, "carol")["data"]] == []
    assert [d[:1] + d[2:] for d in history(bob, "")["data"]] == [["carol", "c to all"]]
