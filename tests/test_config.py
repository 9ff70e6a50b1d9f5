"""Settings: defaults with no configuration, .env, the environment winning, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatcore import config as settings
from chatcore.cli import declared_settings
from chatcore.config import Config, ConfigError, Setting

ROOT = Path(__file__).resolve().parents[1]


def test_no_configuration_at_all_gives_safe_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = Config.load(environ={})
    assert config.get(settings.HOST) == "0.0.0.0"
    assert config.get(settings.PORT) == 8888
    assert config.data_dir == tmp_path / "data"
    assert config.get(settings.PLUGINS) is None and config.get(settings.DISABLE_PLUGINS) == []
    assert config.get(settings.FRAME_TIMEOUT) == 5.0


def test_env_file_is_read_and_the_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SERVER_PORT=9000\nLOG_LEVEL=DEBUG\nCHATCORE_PLUGINS=auth, chat\n")
    config = Config.load(env_file, environ={"SERVER_PORT": "9100"})
    assert config.get(settings.PORT) == 9100
    assert config.raw("LOG_LEVEL") == "DEBUG"
    assert config.get(settings.PLUGINS) == ["auth", "chat"]


def test_relative_storage_dir_is_relative_to_the_working_directory(tmp_path):
    config = Config({"STORAGE_DIR": "store/here"}, base_dir=tmp_path)
    assert config.data_dir == tmp_path / "store" / "here"
    assert Config({"STORAGE_DIR": "/abs/dir"}, base_dir=tmp_path).data_dir == Path("/abs/dir")


@pytest.mark.parametrize("name, raw, message", [
    ("SERVER_PORT", "eighty", "SERVER_PORT='eighty' is not a valid int"),
    ("SERVER_PORT", "-1", "below the minimum 0"),
    ("CHATCORE_FRAME_TIMEOUT", "0", "below the minimum 0.1"),
    ("CHATCORE_SEND_BUFFER", "12Q", "CHATCORE_SEND_BUFFER='12Q' is not a valid int"),
])
def test_bad_values_name_the_setting(name, raw, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config({name: raw}).validate(settings.CORE_SETTINGS)


@pytest.mark.parametrize("raw, value", [("65536", 65536), ("64K", 65536), ("2M", 2 << 20), ("1.5G", 3 << 29), ("80KiB", 81920)])
def test_sizes_accept_binary_suffixes(raw, value):
    assert Config({"CHATCORE_SEND_BUFFER": raw}).get(settings.SEND_BUFFER) == value


def test_booleans_are_spelled_plainly():
    flag = Setting("X_FLAG", False, "", bool)
    assert Config({"X_FLAG": "yes"}).get(flag) is True
    assert Config({"X_FLAG": "off"}).get(flag) is False
    with pytest.raises(ConfigError):
        Config({"X_FLAG": "maybe"}).get(flag)


def test_env_example_lists_every_setting_with_its_default():
    example = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            example[name] = value
    declared = {s.name: s.default_text() for s in declared_settings(Config({}))}
    assert example == declared
