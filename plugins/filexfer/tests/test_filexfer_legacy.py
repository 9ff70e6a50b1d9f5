"""legacy file_request/file_response signalling, with answers routed only to real askers."""

from __future__ import annotations

REQUEST = {"command": "file_request", "filename": "song.mp3", "size": "3.2MB", "md5": "0123456789ABCDEF0123456789ABCDEF"}


def test_request_and_accept_are_forwarded_with_the_responders_address(start, login_as) -> None:
    server, _ = start()
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    ann.send({**REQUEST, "peer": "BOB"})
    forwarded = bob.expect("file_request")
    assert forwarded == {"type": "file_request", "peer": "ann", "filename": "song.mp3", "size": "3.2MB",
                         "md5": REQUEST["md5"]}
    bob.send(command="file_response", peer="ann", response="accept")
    answer = ann.expect("file_response")
    assert (answer["peer"], answer["response"], answer["ip"]) == ("bob", "accept", "127.0.0.1")
    assert (answer["filename"], answer["md5"]) == ("song.mp3", REQUEST["md5"])
    assert [m for m in bob.sync() if m.get("type") == "error"] == []


def test_deny_is_forwarded_without_an_address(start, login_as) -> None:
    server, _ = start()
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    ann.send({**REQUEST, "peer": "bob"})
    bob.expect("file_request")
    bob.send(command="file_response", peer="ann", response="deny")
    answer = ann.expect("file_response")
    assert answer["response"] == "deny" and "ip" not in answer


def test_a_request_to_an_offline_or_unknown_peer_gets_an_error_response(start, login_as) -> None:
    server, _ = start()
    login_as(server, "bob").request(command="logout")
    ann = login_as(server, "ann")
    for peer in ("bob", "nobody"):
        ann.send({**REQUEST, "peer": peer})
        answer = ann.expect("file_response")
        assert (answer["peer"], answer["response"]) == (peer, "error") and answer["reason"]


def test_a_response_from_someone_never_asked_is_refused_and_not_forwarded(start, login_as) -> None:
    server, _ = start()
    ann, bob, cy = login_as(server, "ann"), login_as(server, "bob"), login_as(server, "cy")
    ann.send({**REQUEST, "peer": "bob"})
    bob.expect("file_request")
    error = cy.request(command="file_response", peer="ann", response="accept")
    assert (error["type"], error["code"]) == ("error", "no_request")
    assert [m for m in ann.sync() if m.get("type") == "file_response"] == []
    bob.send(command="file_response", peer="ann", response="accept")  # the real answer still works
    assert ann.expect("file_response")["peer"] == "bob"
    again = bob.request(command="file_response", peer="ann", response="accept")  # answered already
    assert again["code"] == "no_request"


def test_concurrent_requests_are_answered_to_the_right_requester(start, login_as) -> None:
    server, _ = start()
    ann, dan, bob = login_as(server, "ann"), login_as(server, "dan"), login_as(server, "bob")
    ann.send({**REQUEST, "peer": "bob"})
    dan.send({**REQUEST, "peer": "bob", "filename": "dan.txt"})
    bob.expect("file_request", peer="ann")
    bob.expect("file_request", peer="dan")
    bob.send(command="file_response", peer="dan", response="deny")
    assert dan.expect("file_response")["filename"] == "dan.txt"
    assert [m for m in ann.sync() if m.get("type") == "file_response"] == []
    bob.send(command="file_response", peer="ann", response="accept")
    assert ann.expect("file_response")["filename"] == "song.mp3"
    assert [m for m in dan.sync() if m.get("type") == "file_response"] == []


def test_requests_die_with_the_requesters_session(start, login_as) -> None:
    server, _ = start()
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    ann.send({**REQUEST, "peer": "bob"})
    bob.expect("file_request")
    ann.request(command="logout")
    assert bob.request(command="file_response", peer="ann", response="accept")["code"] == "no_request"


def test_legacy_input_is_checked_and_names_cleaned(start, login_as) -> None:
    server, _ = start()
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    ann.send({**REQUEST, "peer": "bob", "filename": "../../.ssh/authorized_keys"})
    assert bob.expect("file_request")["filename"] == "authorized_keys"
    assert bob.request(command="file_response", peer="ann", response="maybe")["code"] == "bad_request"
    assert ann.request({**REQUEST, "peer": "bob", "md5": 5})["code"] == "bad_request"
    assert ann.request(command="file_response", peer=["x"], response="deny")["code"] == "bad_request"
    ann.send({**REQUEST, "peer": "ann"})
    assert ann.expect("file_response")["response"] == "error"
