"""Server lists: parsing and validation of ``host:port`` entries, the per-list store key, the walk
order, and the settings and command line that take a list."""

from __future__ import annotations

import logging

import pytest

from chatcore_client import cli
from chatcore_client.config import ATTEMPT_TIMEOUT, load_settings
from chatcore_client.servers import MAX_SERVERS, ServerListError, describe, list_key, parse_servers, rotation


def test_one_server_is_a_list_of_one_keyed_as_before():
    assert parse_servers("chat.example", 8888) == (("chat.example", 8888),)
    assert parse_servers(" chat.example:9000 ", 8888) == (("chat.example", 9000),)
    assert list_key(parse_servers("chat.example", 8888)) == "chat.example:8888"  # the pre-list pin and login key


def test_a_comma_separated_list_keeps_its_order_and_fills_in_the_default_port():
    servers = parse_servers("a.example:7001, b.example ,[2001:db8::1]:7003,[::1],::2", 8888)
    assert servers == (("a.example", 7001), ("b.example", 8888), ("2001:db8::1", 7003), ("::1", 8888),
                       ("::2", 8888))
    assert describe(servers[:3]) == "a.example:7001, b.example:8888, [2001:db8::1]:7003"


def test_the_key_of_a_list_does_not_depend_on_the_order_typed():
    assert list_key(parse_servers("b:2,a:1", 8888)) == list_key(parse_servers("a:1, b:2", 8888)) == "a:1,b:2"


@pytest.mark.parametrize("text, message", [
    ("", "no server is given"),
    ("a:8888,,b:8888", "entry 2 of the server list is empty"),
    ("a:8888,", "entry 2 of the server list is empty"),
    (":8888", "address \\(before the port\\) is missing"),
    ("a:8888,:9000", "':9000': the server's address"),
    ("a:http", "the port must be a number, not 'http'"),
    ("a:0", "between 1 and 65535, not 0"),
    ("a:65536", "between 1 and 65535, not 65536"),
    ("a:", "the port must be a number, not ''"),
    ("[::1", "in brackets is written \\[address\\]:port"),
    ("[::1]x", "in brackets is written"),
    ("a b:8888", "'a b' is not a host name"),
    ("a:8888,a:8888", "a:8888 is listed twice"),
    ("a,a:8888", "a:8888 is listed twice"),
])
def test_bad_lists_are_refused_with_a_clear_message(text, message):
    with pytest.raises(ServerListError, match=message):
        parse_servers(text, 8888)


def test_an_entry_without_a_port_needs_the_port_field():
    with pytest.raises(ServerListError, match="give its port \\(b:8888\\) or fill in the port field"):
        parse_servers("a:1,b", None)
    assert parse_servers("a:1,b:2", None) == (("a", 1), ("b", 2))


def test_a_list_longer_than_the_limit_is_refused():
    names = ",".join(f"n{i}:8888" for i in range(MAX_SERVERS + 1))
    with pytest.raises(ServerListError, match=f"{MAX_SERVERS + 1} servers listed: at most {MAX_SERVERS}"):
        parse_servers(names, 8888)
    assert len(parse_servers(names, 8888, limit=MAX_SERVERS + 1)) == MAX_SERVERS + 1
    with pytest.raises(ServerListError, match="3 servers listed: at most 2 .*CHATCORE_CLIENT_MAX_SERVERS"):
        parse_servers("a,b,c", 8888, limit=2)


def test_the_walk_starts_anywhere_and_wraps():
    assert rotation(3, 0) == [0, 1, 2]
    assert rotation(3, 2) == [2, 0, 1]
    assert rotation(3, 3) == [0, 1, 2]  # after the last one: the first
    assert rotation(1, 1) == [0] and rotation(0, 0) == []


def test_settings_take_a_list_its_limit_and_the_attempt_timeout(caplog):
    settings = load_settings({"SERVER_IP": "a:7001,b:7002", "CHATCORE_CLIENT_MAX_SERVERS": "4",
                              "CHATCORE_CLIENT_ATTEMPT_TIMEOUT": "2.5"})
    assert (settings.host, settings.max_servers, settings.attempt_timeout) == ("a:7001,b:7002", 4, 2.5)
    defaults = load_settings({})
    assert (defaults.max_servers, defaults.attempt_timeout) == (MAX_SERVERS, ATTEMPT_TIMEOUT)
    with caplog.at_level(logging.WARNING, logger="chatcore_client.config"):
        bad = load_settings({"CHATCORE_CLIENT_MAX_SERVERS": "none", "CHATCORE_CLIENT_ATTEMPT_TIMEOUT": "-1"})
    assert (bad.max_servers, bad.attempt_timeout) == (MAX_SERVERS, ATTEMPT_TIMEOUT)
    assert any("CHATCORE_CLIENT_MAX_SERVERS='none'" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("argv, message", [
    (["--server", "a:8888,,b:8888"], "--server: entry 2 of the server list is empty"),
    (["--server", "a:99999"], "--server: 'a:99999': the port must be between 1 and 65535"),
    (["--server", "a:1", "--host", "b"], "not allowed with argument"),
])
def test_the_command_line_refuses_a_bad_server_list_before_opening_a_window(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err
