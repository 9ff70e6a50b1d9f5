"""Frame codec of docs/protocol.md §2: length, KEY, IV, base64 of the XOR-masked JSON.

Only encoding and decoding live here: no threads, no pluggy, no connection policy.
The XOR mask is obfuscation from the original system, not security; TLS gives confidentiality.
"""

from __future__ import annotations

import binascii
import random
import re
import struct
import time
from typing import Any, Callable, Iterable, Optional

from chatcore.jsontext import dumps, loads

HEADER = struct.Struct(">H")
KEY_SIZE = 32
IV_SIZE = 16
PREFIX_SIZE = HEADER.size + KEY_SIZE + IV_SIZE  # 50 bytes before the base64 text
MAX_FRAME = 0xFFFF  # largest L, the length after the 2-byte header
MAX_BASE64 = (MAX_FRAME - KEY_SIZE - IV_SIZE) // 4 * 4
MAX_JSON = MAX_BASE64 // 4 * 3  # 49,113 bytes of JSON in the largest frame
MAX_CLIENT_ID = 128  # characters of a request's ``client_id`` that a reply echoes
MAX_ECHO = 64  # characters of any other client string (a name, an id) that a reply or reason echoes
CHUNK_SIZE = 32 * 1024  # raw bytes a file_chunk / file_data carries at most
FRAME_TIMEOUT = 5.0  # seconds a started frame may take to arrive in full
_random_bits = random.getrandbits
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class ProtocolError(Exception):
    """The byte stream is broken (bad length, bad base64, EOF or silence mid-frame): close."""


class MessageError(ValueError):
    """A well-framed payload that is not a valid JSON object: reply ``bad_request``, keep the session.

    ``command`` and ``client_id`` are the request's, when it was an object that named them
    validly, so the error reply can say which request it answers.
    """

    def __init__(self, reason: str, command: Optional[str] = None, client_id: Any = None) -> None:
        super().__init__(reason)
        self.command = command
        self.client_id = client_id


class FrameTooLarge(ValueError):
    """An object whose frame would exceed 65,535 bytes; split, paginate or chunk it instead."""


_LOW_256 = (1 << 256) - 1
# _PERIODS[k]: k ones spaced 256 bits apart, so that a 32-byte mask times it is that mask
# repeated k times; made once for payloads up to 2 KiB (66 KB of integers), the usual frames
_PERIODS = [((1 << 256 * k) - 1) // _LOW_256 for k in range(65)]


def _masked(data: bytes, mask: int) -> bytes:
    """``data`` XOR the 32-byte period ``mask`` (a little-endian integer), repeated: whole-buffer
    big-integer arithmetic, not a byte loop."""
    n = len(data)
    periods = (n + KEY_SIZE - 1) // KEY_SIZE
    if periods < len(_PERIODS):
        stream = mask * _PERIODS[periods]
    else:
        stream = int.from_bytes(mask.to_bytes(KEY_SIZE, "little") * periods, "little")
    return (int.from_bytes(data, "little") ^ stream).to_bytes(periods * KEY_SIZE, "little")[:n]


def _mask_of(key: bytes, iv: bytes) -> int:
    """The 32-byte period of KEY[i % 32] ^ IV[i % 16], as a little-endian integer."""
    return int.from_bytes(key, "little") ^ int.from_bytes(iv + iv, "little")


def xor_mask(data: bytes, key: bytes, iv: bytes) -> bytes:
    """XOR ``data`` with the KEY/IV stream."""
    return _masked(data, _mask_of(key, iv))


def echo(text: str) -> str:
    """A client's string as a reply or a reason quotes it: cut to MAX_ECHO characters, so a
    hostile value cannot bloat the answer."""
    return text[:MAX_ECHO]


_last_second: list[Any] = [None, ""]  # (second, its formatted text): messages come many per second


def timestamp(ms: int) -> str:
    """Milliseconds since the Unix epoch as the protocol's ``ts``: ISO 8601 UTC with
    milliseconds (``2026-01-31T12:00:00.123Z``). The seconds part is formatted once per second."""
    seconds, millis = divmod(ms, 1000)
    cached_second, text = _last_second
    if seconds != cached_second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second[:] = seconds, text  # one slice assignment: readers never see a mixed pair
    return f"{text}.{millis:03d}Z"


def fitting(items: Iterable[Any], room: int) -> list[Any]:
    """The leading ``items`` whose JSON, as elements of one list, fits in ``room`` bytes: how a
    reply that must fit one frame (a page of history, of users, of files) decides where to stop.
    Items are consumed lazily, so a generator is measured only as far as it fits."""
    taken: list[Any] = []
    for item in items:
        cost = len(dumps(item)) + (1 if taken else 0)  # the comma before every element but the first
        if cost > room:
            break
        room -= cost
        taken.append(item)
    return taken


def invalid_text(value: Any, path: str = "") -> Optional[str]:
    """The path (``message``, ``files[2].name``) of the first string in ``value``, key or
    value, that is not a sequence of Unicode scalar values (it holds an unpaired surrogate
    such as ``\\ud800``, which no UTF-8 encoder and no SQLite write accepts); None if all are."""
    if isinstance(value, str):
        return None if _is_scalar_text(value) else (path or "(the payload)")
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if not _is_scalar_text(key):
                return f"{path}.(a key)" if path else "(a key)"
            found = invalid_text(item, where)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = invalid_text(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _is_scalar_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _request_names(value: Any) -> tuple[Optional[str], Any]:
    """The ``command`` (or ``type``) and ``client_id`` of a request object, where they are valid."""
    if not isinstance(value, dict):
        return None, None
    name = value.get("command", value.get("type"))
    client_id = value.get("client_id")
    name = name if isinstance(name, str) and _is_scalar_text(name) else None
    client_id = client_id if isinstance(client_id, str) and _is_scalar_text(client_id) else None
    return name, client_id


def encode_payload(payload: bytes, key: Optional[bytes] = None, iv: Optional[bytes] = None) -> bytes:
    """Frame already-serialised JSON bytes; KEY and IV are fresh random bytes unless given."""
    if len(payload) > MAX_JSON:
        raise FrameTooLarge(
            f"frame would carry {len(payload)} bytes of JSON; the maximum is {MAX_JSON}"
        )
    if key is None or iv is None:
        # KEY and IV travel in the frame: they hide nothing and need no secrecy, so the
        # Mersenne Twister's 384 bits serve (one call, already the integer the mask needs)
        bits = _random_bits(KEY_SIZE * 8 + IV_SIZE * 8)
        head, iv_bits = bits.to_bytes(KEY_SIZE + IV_SIZE, "little"), bits >> KEY_SIZE * 8
        mask = (bits & _LOW_256) ^ (iv_bits << IV_SIZE * 8 | iv_bits)
    else:
        if len(key) != KEY_SIZE or len(iv) != IV_SIZE:
            raise ValueError("KEY must be 32 bytes and IV 16 bytes")
        head, mask = key + iv, _mask_of(key, iv)
    text = binascii.b2a_base64(_masked(payload, mask), newline=False)
    return HEADER.pack(KEY_SIZE + IV_SIZE + len(text)) + head + text


def encode(obj: Any) -> bytes:
    """Serialise ``obj`` and frame it; raises FrameTooLarge rather than send a broken frame."""
    return encode_payload(dumps(obj))


def check_length(length: int) -> None:
    """Reject a header length before any of its body is read."""
    body = length - KEY_SIZE - IV_SIZE
    if body < 4 or body % 4:
        raise ProtocolError(f"invalid frame length {length}")


def decode_body(body: bytes) -> Any:
    """Decode the L bytes after the header into the JSON value they carry.

    Raises ProtocolError for undecodable base64 (the stream is suspect) and MessageError for
    text that is not a JSON object (the stream is fine; only the request is bad).
    """
    key, iv, text = body[:KEY_SIZE], body[KEY_SIZE:PREFIX_SIZE - HEADER.size], body[PREFIX_SIZE - HEADER.size:]
    try:
        masked = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"invalid base64 in frame: {exc}") from None
    raw = _masked(masked, _mask_of(key, iv))
    try:
        value = loads(raw)
    except UnicodeDecodeError:
        raise MessageError("payload is not valid UTF-8") from None
    except ValueError as exc:
        raise MessageError(f"payload is not valid JSON: {exc.args[0] if exc.args else exc}") from None
    except RecursionError:
        raise MessageError("payload nests too deeply") from None
    # UTF-8 itself cannot carry a surrogate, so only a \uD800-\uDFFF escape can make one:
    # look for the escape before walking the whole value.
    if _SURROGATE_ESCAPE.search(raw):
        where = invalid_text(value)
        if where is not None:
            command, client_id = _request_names(value)
            raise MessageError(f"field '{echo(where)}' holds an unpaired surrogate: text must be valid Unicode",
                               command, client_id)
    return value


def decode(frame: bytes) -> Any:
    """Decode one complete frame (header included); for tests and tools."""
    if len(frame) < HEADER.size:
        raise ProtocolError("truncated header")
    (length,) = HEADER.unpack_from(frame)
    check_length(length)
    if len(frame) != HEADER.size + length:
        raise ProtocolError(f"frame says {length} bytes but carries {len(frame) - HEADER.size}")
    return decode_body(frame[HEADER.size:])


class FrameAssembler:
    """Cuts a byte stream into frame bodies as its pieces arrive: the server's non-blocking
    side of ``FrameReader``. An invalid length raises ProtocolError as soon as its header is
    in, before any of the body is buffered."""

    def __init__(self) -> None:
        self._buffer = b""

    @property
    def partial(self) -> int:
        """Bytes of a frame begun but not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """The bodies of the frames ``data`` completes, in order (the rest is kept)."""
        buffer = self._buffer + data if self._buffer else data
        bodies: list[bytes] = []
        start, size = 0, len(buffer)
        while size - start >= HEADER.size:
            (length,) = HEADER.unpack_from(buffer, start)
            check_length(length)
            end = start + HEADER.size + length
            if end > size:
                break
            bodies.append(buffer[start + HEADER.size:end])
            start = end
        self._buffer = buffer[start:] if start < size else b""
        return bodies


RecvInto = Callable[[memoryview], int]
SetTimeout = Callable[[Optional[float]], None]


class FrameReader:
    """Reads frames from a byte stream, buffering so most frames cost one ``recv``.

    ``recv_into`` reads into a buffer (0 means EOF) and raises TimeoutError or
    BlockingIOError when the timeout set through ``set_timeout`` passes. Idle time between
    frames is unlimited unless ``read`` is given ``idle_timeout``; a frame once started must
    arrive within ``frame_timeout`` seconds.
    """

    def __init__(self, recv_into: RecvInto, set_timeout: SetTimeout,
                 frame_timeout: float = FRAME_TIMEOUT, buffer_size: int = 1 << 10) -> None:
        self._recv_into = recv_into
        self._set_timeout = set_timeout
        self._frame_timeout = frame_timeout
        self._buf = bytearray(buffer_size)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0
        self._timeout: Optional[float] = None
        self._timeout_set = False

    def _apply_timeout(self, timeout: Optional[float]) -> None:
        if not self._timeout_set or timeout != self._timeout:
            self._set_timeout(timeout)
            self._timeout, self._timeout_set = timeout, True

    def _fill(self, deadline: Optional[float]) -> int:
        """Read more bytes into the buffer, by ``deadline`` if given (else under the timeout
        already set); returns 0 on EOF."""
        if self._end == len(self._buf):
            self._make_room(len(self._buf) + 1)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            # round up to whole milliseconds so repeated small waits do not thrash setsockopt
            self._apply_timeout(max(0.001, round(left + 0.0005, 3)))
        n = self._recv_into(self._view[self._end:])
        self._end += n
        return n

    def read_frame_body(self, idle_timeout: Optional[float] = None,
                        deadline: Optional[float] = None) -> Optional[bytes]:
        """Return the next frame's body (the L bytes after the header), or None on clean EOF.

        Raises TimeoutError when ``idle_timeout`` passes with no frame begun, or when the
        absolute ``deadline`` (monotonic; the login deadline) passes before the frame is
        complete, and ProtocolError for EOF or a stall mid-frame or an invalid length.
        """
        if self._end == self._start:
            self._apply_timeout(idle_timeout)
            try:
                if self._fill(None) == 0:
                    return None
            except BlockingIOError:
                raise TimeoutError("idle timeout") from None
        frame_deadline = time.monotonic() + self._frame_timeout
        limit = frame_deadline if deadline is None else min(deadline, frame_deadline)
        capped = limit < frame_deadline
        try:
            total = self._read_started_frame(limit)
        except (TimeoutError, BlockingIOError):
            if capped:
                raise TimeoutError("the deadline passed inside a frame") from None
            raise ProtocolError(f"frame not completed within {self._frame_timeout:g} s") from None
        body = bytes(self._view[self._start + HEADER.size:self._start + total])
        self._start += total
        if self._start == self._end:
            self._start = self._end = 0
        return body

    def _read_started_frame(self, deadline: float) -> int:
        """Buffer the rest of a frame whose first bytes have arrived, by ``deadline``; returns
        its total length (header included). Timeouts propagate."""
        while self._end - self._start < HEADER.size:
            if self._fill(deadline) == 0:
                raise ProtocolError("connection closed inside a frame header")
        (length,) = HEADER.unpack_from(self._buf, self._start)
        check_length(length)
        total: int = HEADER.size + length
        if self._start + total > len(self._buf):
            self._make_room(total)
        while self._end - self._start < total:
            if self._fill(deadline) == 0:
                raise ProtocolError("connection closed inside a frame")
        return total

    @property
    def buffered(self) -> int:
        """Bytes already received beyond the frames returned (the start of the next request)."""
        return self._end - self._start

    def _make_room(self, total: int) -> None:
        """Move unread bytes to the front, growing the buffer if ``total`` bytes cannot fit."""
        remaining = self._end - self._start
        if total > len(self._buf):
            grown = bytearray(max(total, len(self._buf) * 2))
            grown[:remaining] = self._view[self._start:self._end]
            self._view.release()
            self._buf, self._view = grown, memoryview(grown)
        else:
            self._buf[:remaining] = self._buf[self._start:self._end]
        self._start, self._end = 0, remaining

    def read(self, idle_timeout: Optional[float] = None) -> Any:
        """Return the next decoded JSON value, or None on clean EOF (see ``read_frame_body``)."""
        body = self.read_frame_body(idle_timeout)
        return None if body is None else decode_body(body)
