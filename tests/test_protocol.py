"""The frame codec of docs/protocol.md §2, without a server."""

from __future__ import annotations

import base64
import json
import re
import socket
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatcore import protocol

KEY = bytes(range(32))
IV = bytes(range(0xA0, 0xB0))


def naive_xor(data: bytes, key: bytes, iv: bytes) -> bytes:
    return bytes(b ^ key[i % 32] ^ iv[i % 16] for i, b in enumerate(data))


def test_contract_test_vector():
    frame = protocol.encode_payload(b'{"command": "get_users"}', KEY, IV)
    assert len(frame) == 82
    assert frame[:2] == b"\x00\x50"
    assert frame[2:34] == KEY and frame[34:50] == IV
    assert frame[50:] == b"24LDz83Nwc7EgpqAgsfF1O/Fw9XCw5LN"
    assert protocol.decode(frame) == {"command": "get_users"}


@pytest.mark.parametrize("size", [0, 1, 15, 16, 31, 32, 33, 1000, 2048, 2049, 2080, 2081, 49113])
def test_xor_matches_the_per_byte_definition(size):
    data = bytes((i * 7 + 3) % 256 for i in range(size))
    assert protocol.xor_mask(data, KEY, IV) == naive_xor(data, KEY, IV)


def test_fresh_key_and_iv_per_frame():
    first, second = protocol.encode({"a": 1}), protocol.encode({"a": 1})
    assert first[2:50] != second[2:50]


@pytest.mark.parametrize("size", [0, 1, 33, 2047, 2081, 40000])
def test_frames_with_fresh_keys_read_back_as_written(size):
    value = {"d": "é" * (size // 2)}
    frame = protocol.encode(value)
    key, iv, text = frame[2:34], frame[34:50], frame[50:]
    assert naive_xor(base64.b64decode(text), key, iv) == protocol.dumps(value)


def test_largest_frame_fits_and_one_byte_more_is_refused():
    filler = "x" * (protocol.MAX_JSON - len(protocol.dumps({"d": ""})))
    frame = protocol.encode({"d": filler})
    assert len(frame) - 2 <= protocol.MAX_FRAME
    assert protocol.decode(frame) == {"d": filler}
    with pytest.raises(protocol.FrameTooLarge, match="maximum is 49113"):
        protocol.encode({"d": filler + "x"})


def test_any_json_formatting_is_accepted():
    pretty = json.dumps({"command": "ping", "n": [1, 2]}, indent=4).encode()
    assert protocol.decode(protocol.encode_payload(pretty)) == {"command": "ping", "n": [1, 2]}


def test_non_ascii_round_trips_as_utf8():
    message = {"message": "héllo ✓ 你好 🎉"}
    frame = protocol.encode(message)
    assert protocol.decode(frame) == message


@pytest.mark.parametrize("length", [0, 3, 48, 49, 50, 51, 53, 0xFFFF])
def test_invalid_lengths_are_rejected_before_the_body(length):
    with pytest.raises(protocol.ProtocolError, match="invalid frame length"):
        protocol.check_length(length)


def test_invalid_base64_is_a_protocol_error():
    body = KEY + IV + b"!!!!"
    with pytest.raises(protocol.ProtocolError, match="base64"):
        protocol.decode_body(body)


@pytest.mark.parametrize("payload, reason", [
    (b"\xff\xfe\xfd", "UTF-8"),
    (b"{not json", "JSON"),
    (b"[" * 24000 + b"]" * 24000, "nests too deeply"),
])
def test_undecodable_payloads_are_message_errors(payload, reason):
    with pytest.raises(protocol.MessageError, match=reason):
        protocol.decode(protocol.encode_payload(payload))


def test_non_object_json_decodes_for_the_caller_to_refuse():
    assert protocol.decode(protocol.encode_payload(b"[1, 2]")) == [1, 2]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**63) | st.text(max_size=50)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=20), json_values, max_size=8))
def test_round_trip_property(obj):
    assert protocol.decode(protocol.encode(obj)) == obj


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_decoder_never_fails_unexpectedly_on_random_bodies(body):
    try:
        protocol.decode_body(body)
    except (protocol.ProtocolError, protocol.MessageError):
        pass


def reader_pair(frame_timeout: float = 5.0):
    left, right = socket.socketpair()
    reader = protocol.FrameReader(right.recv_into, right.settimeout, frame_timeout, buffer_size=1024)
    return left, right, reader


def test_reader_reassembles_frames_split_anywhere_and_coalesced():
    left, right, reader = reader_pair()
    frames = [protocol.encode({"n": i, "pad": "y" * (i * 300)}) for i in range(6)]
    stream = b"".join(frames)
    writer = threading.Thread(target=lambda: [left.sendall(stream[i:i + 1]) for i in range(len(stream))])
    writer.start()
    assert [reader.read()["n"] for _ in frames] == list(range(6))
    writer.join()
    left.close()
    assert reader.read() is None
    right.close()


def test_reader_handles_frames_larger_than_its_buffer():
    left, right, reader = reader_pair()
    big = {"d": "z" * 40000}
    left.sendall(protocol.encode(big) * 2)
    assert reader.read() == big and reader.read() == big
    left.close(), right.close()


@pytest.mark.parametrize("cut", [1, 2, 30, 60])
def test_eof_inside_a_frame_is_an_error_not_a_clean_close(cut):
    left, right, reader = reader_pair()
    left.sendall(protocol.encode({"command": "ping"})[:cut])
    left.close()
    with pytest.raises(protocol.ProtocolError, match="closed inside"):
        reader.read()
    right.close()


def test_a_stalled_frame_times_out():
    left, right, reader = reader_pair(frame_timeout=0.2)
    left.sendall(protocol.encode({"command": "ping"})[:10])
    with pytest.raises(protocol.ProtocolError, match="within 0.2 s"):
        reader.read()
    left.close(), right.close()


def test_an_invalid_length_is_refused_without_waiting_for_the_body():
    left, right, reader = reader_pair(frame_timeout=60)
    left.sendall(b"\x00\x31")  # 49: not 48 + a multiple of 4; no body follows
    with pytest.raises(protocol.ProtocolError, match="invalid frame length 49"):
        reader.read()
    left.close(), right.close()


def test_idle_time_between_frames_is_allowed_unless_limited():
    left, right, reader = reader_pair(frame_timeout=0.05)
    with pytest.raises(TimeoutError):
        reader.read(idle_timeout=0.1)
    left.sendall(protocol.encode({"late": True}))
    assert reader.read() == {"late": True}
    left.close(), right.close()


@pytest.mark.parametrize("payload, field", [
    (b'{"command": "chat", "message": "a\\ud800b"}', "message"),
    (b'{"command": "x", "files": [{"name": "ok"}, {"name": "\\udfff"}]}', "files[1].name"),
    (b'{"command": "x", "\\ud800": 1}', "(a key)"),
    (b'{"command": "x", "pair": "\\ud83d\\ude00", "lone": "\\ude00\\ud83d"}', "lone"),
])
def test_strings_with_unpaired_surrogates_are_refused_naming_the_field(payload, field):
    with pytest.raises(protocol.MessageError, match=f"field '{re.escape(field)}' holds an unpaired surrogate"):
        protocol.decode(protocol.encode_payload(payload))


def test_a_surrogate_pair_is_one_valid_character():
    assert protocol.decode(protocol.encode_payload(b'{"m": "\\ud83d\\ude00"}')) == {"m": "\U0001F600"}


def test_the_refused_request_keeps_its_command_and_client_id_for_the_error_reply():
    with pytest.raises(protocol.MessageError) as refused:
        protocol.decode(protocol.encode_payload(b'{"command": "chat", "client_id": "c7", "message": "\\ud800"}'))
    assert (refused.value.command, refused.value.client_id) == ("chat", "c7")


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-2.5e999"])
def test_non_finite_numbers_are_not_json(number):
    with pytest.raises(protocol.MessageError, match="not valid JSON"):
        protocol.decode(protocol.encode_payload(b'{"command": "ping", "nonce": ' + number + b"}"))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "\ud800"])
def test_the_encoder_never_emits_non_standard_json(value):
    with pytest.raises(ValueError):
        protocol.encode({"type": "pong", "nonce": value})
