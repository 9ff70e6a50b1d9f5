"""Durability: history, ids and undelivered messages survive a server restart."""

from __future__ import annotations


def test_history_ids_and_offline_messages_survive_a_restart(chat_server, login_as, register, chat, history,
                                                            settle):
    first = chat_server()
    register(first, "carol")
    alice = login_as(first, "alice")
    bob = login_as(first, "bob")
    sent = [chat(alice, "bob", "before restart"), chat(bob, "", "room message"),
            chat(alice, "carol", "for carol, offline")]
    assert all(a["type"] == "chat_ack" for a in sent)
    first.stop()  # acknowledged means committed: nothing may be lost

    second = chat_server()  # the same data directory
    alice = login_as(second, "alice", register=False)
    assert history(alice, "bob")["data"][0][::2] == ["alice", "before restart"]
    assert history(alice, "")["data"][0][::2] == ["bob", "room message"]
    after = chat(alice, "", "after restart")
    assert after["id"] > max(a["id"] for a in sent)  # ids keep increasing across restarts

    carol = login_as(second, "carol", register=False)
    offline = carol.expect("private_message", id=sent[2]["id"])
    assert offline["offline"] is True and offline["message"] == "for carol, offline"
    carol.close()
    again = login_as(second, "carol", register=False)
    assert [m for m in settle(second, again) if m.get("type") == "private_message"] == []
