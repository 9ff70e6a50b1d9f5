"""The wire's JSON text: orjson's fast path agrees with the standard library on every value,
and whatever orjson would do differently (NaN as null, big integers as floats, a lone
surrogate) is decided by the standard library, as before."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatcore import jsontext

scalars = (st.none() | st.booleans() | st.integers() | st.text()
           | st.floats(allow_nan=False, allow_infinity=False))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
                      max_leaves=25)


def standard(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(values)
def test_what_is_written_reads_back_the_same_with_both_parsers(value):
    try:
        expected = standard(value)
    except UnicodeEncodeError:  # a lone surrogate in a generated string: refused either way
        with pytest.raises(ValueError):
            jsontext.dumps(value)
        return
    written = jsontext.dumps(value)
    assert json.loads(written) == json.loads(expected)
    assert jsontext.loads(expected) == json.loads(expected)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), "\ud800", {"a": [1, float("nan")]}])
def test_nan_infinities_and_lone_surrogates_are_refused_not_written_as_null(value):
    with pytest.raises(ValueError):
        jsontext.dumps(value)


def test_null_none_big_integers_and_integer_keys_are_written_as_the_standard_library_does():
    for value in ({"client_id": None}, {"n": 2**70}, {1: "one"}, {"n": -2**63 - 1}):
        assert jsontext.dumps(value) == standard(value)


def test_long_numbers_keep_their_type_and_refusals_keep_their_reasons():
    assert jsontext.loads(b'{"n": 123456789012345678901234567890}') == {"n": 123456789012345678901234567890}
    assert jsontext.loads(b'{"n": 12345678901234567890.5}') == {"n": 12345678901234567890.5}
    many = b'{"a": 123456789, "b": [1234567890, 12], "c": "98765432109876543210", "n": 98765432109876543210}'
    assert jsontext.loads(many) == json.loads(many)  # 19 digits in all but not in a row, then a run
    with pytest.raises(ValueError, match="NaN is not a JSON number"):
        jsontext.loads(b'{"n": NaN}')
    with pytest.raises(ValueError, match="beyond the range"):
        jsontext.loads(b'{"n": 1e400}')
    with pytest.raises(UnicodeDecodeError):
        jsontext.loads(b'{"n": "\xff"}')
    assert jsontext.loads(b'{"s": "\\ud800"}') == {"s": "\ud800"}  # parsed; protocol.invalid_text refuses it
