"""Argon2 through our own memory: hashes argon2-cffi reads and writes, memory reused, wiped and
given back, and stored strings a hostile import could hold refused without an exception."""

from __future__ import annotations

import threading

import argon2
import pytest
from argon2.low_level import Type, hash_secret

from chatcore_auth import argon
from chatcore_auth.passwords import HashParams, PasswordHasher

SMALL = HashParams(time_cost=1, memory_kib=1024)
WORD = "pässwörd 🗝"


@pytest.fixture
def hasher():
    made = PasswordHasher(SMALL, concurrency=2, trim_after=0.05)
    yield made
    made.trimmer.cancel()
    made.memory.release()


def test_our_hashes_and_argon2_cffis_read_each_other(hasher):
    theirs = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=argon2.Type.ID)
    ours = hasher.hash(WORD)
    assert ours.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert theirs.verify(ours, WORD)
    made_there = theirs.hash(WORD)
    assert hasher.verify(made_there, WORD) and not hasher.verify(made_there, WORD + " ")
    assert argon.encode(argon.decode(made_there)) == made_there  # the PHC string, byte for byte
    assert hasher.hash(WORD) != ours  # a fresh salt each time


@pytest.mark.parametrize("kind", [Type.I, Type.D, Type.ID])
@pytest.mark.parametrize("version", [16, 19])
def test_older_types_versions_and_lanes_still_log_in(hasher, kind, version):
    stored = hash_secret(b"secret", b"saltsaltsalt", time_cost=1, memory_cost=256, parallelism=2,
                         hash_len=24, type=kind, version=version).decode()
    assert hasher.verify(stored, "secret") and not hasher.verify(stored, "Secret")
    if version == 16:  # Argon2 1.0 strings may carry no version at all
        unversioned = stored.replace("$v=16", "")
        assert hasher.verify(unversioned, "secret") and not hasher.verify(unversioned, "Secret")


@pytest.mark.parametrize("stored", [
    "", "plain text", "$2b$12$abcdefghijklmnopqrstuv", "$argon2id$v=19$m=1024,t=1,p=1$!!!$abcd",
    "$argon2id$v=19$m=-1,t=1,p=1$c2FsdHNhbHQ$abcd", "$argon2id$v=19$m=1024,t=0,p=1$c2FsdHNhbHQ$abcd",
    "$argon2id$v=19$m=99999999999,t=1,p=1$c2FsdHNhbHQ$abcd", "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$",
    "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$abcd", "$argon2id$v=7$m=1024,t=1,p=1$c2FsdHNhbHQ$abcd",
    "$argon2id$v=19$m=1024,t=1,p=99999999$c2FsdHNhbHQ$abcd", "$argon2x$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$abcd",
])
def test_a_stored_string_that_is_no_usable_hash_just_fails(hasher, stored):
    assert hasher.verify(stored, "anything") is False


def test_memory_is_reused_wiped_and_given_back_once_quiet(hasher):
    size = SMALL.memory_kib * 1024
    threads = [threading.Thread(target=hasher.hash, args=(WORD,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert hasher.memory.idle_bytes in (size, 2 * size)  # at most one mapping per slot is kept
    for mapping, _ in hasher.memory._idle:  # what the next hash reuses holds nothing of this one
        assert mapping[:] == bytes(len(mapping))
    assert hasher.trimmer.trimmed.wait(5)
    assert hasher.memory.idle_bytes == 0
    assert hasher.verify(hasher.hash(WORD), WORD)  # and hashing maps afresh afterwards


def test_mappings_beyond_what_is_kept_are_unmapped_at_once():
    memory = argon.HashMemory(keep=0)
    params = argon.Encoded(argon2.Type.ID, argon.VERSION, 1, 64, 1, b"saltsalt", b"")
    first = argon.compute(memory, b"pw", params, 32)
    assert memory.idle_bytes == 0 and argon.compute(memory, b"pw", params, 32) == first
