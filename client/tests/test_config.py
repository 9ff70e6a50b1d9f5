"""Settings from the environment and the reconnect backoff."""

from __future__ import annotations

import logging

import pytest

from chatcore_client.backoff import Backoff
from chatcore_client.config import DEFAULT_PORT, load_settings, parse_port


def test_server_address_and_tls_from_environment(tmp_path):
    settings = load_settings({"SERVER_IP": "chat.example", "SERVER_PORT": "9000", "CHATCORE_CLIENT_TLS": "require",
                              "CHATCORE_CLIENT_KNOWN_SERVERS": str(tmp_path / "pins.json")})
    assert (settings.host, settings.port, settings.tls, settings.known_servers) == (
        "chat.example", 9000, "require", tmp_path / "pins.json")


def test_defaults_and_bad_values():
    settings = load_settings({"SERVER_PORT": "not a port", "CHATCORE_CLIENT_TLS": "maybe"})
    assert (settings.host, settings.port, settings.tls, settings.known_servers) == ("127.0.0.1", DEFAULT_PORT, "auto", None)
    with pytest.raises(ValueError, match="between 1 and 65535"):
        parse_port("70000")


def test_backoff_doubles_up_to_the_cap_and_resets():
    backoff = Backoff(base=1, cap=8)
    assert [backoff.next() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    backoff.reset()
    assert backoff.next() == 1


def test_the_keyring_setting(caplog):
    assert load_settings({}).keyring == "auto"
    assert load_settings({"CHATCORE_CLIENT_KEYRING": " OFF "}).keyring == "off"
    with caplog.at_level(logging.WARNING, logger="chatcore_client.config"):
        assert load_settings({"CHATCORE_CLIENT_KEYRING": "maybe"}).keyring == "off"
    assert any("CHATCORE_CLIENT_KEYRING='maybe'" in r.getMessage() for r in caplog.records)


def test_the_notification_setting(caplog):
    assert load_settings({}).notify is True
    assert load_settings({"CHATCORE_CLIENT_NOTIFY": " Off "}).notify is False
    with caplog.at_level(logging.WARNING, logger="chatcore_client.config"):
        assert load_settings({"CHATCORE_CLIENT_NOTIFY": "sometimes"}).notify is True
    assert any("CHATCORE_CLIENT_NOTIFY='sometimes'" in r.getMessage() for r in caplog.records)
