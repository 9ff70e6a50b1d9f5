"""Search over everything a user may read: query words, the FTS5 query, matched-word marks,
and one newest-first page merged from every source (chat's conversations, and what other
plugins add through ``chatcore_chat_search``) with a cursor per source.

No sessions, no pluggy: the service runs the sources and hands their hits here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from chatcore import CommandError

WORD = re.compile(r"[^\W_]+")  # letters and digits, as the unicode61 tokenizer splits words
SOURCE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_CURSOR = 256  # characters of a ``before`` cursor (a few sources' ids)


@dataclass(frozen=True)
class Hit:
    """One message found: ``source`` and ``key`` page it (``key`` falls as hits get older),
    ``ts_ms`` orders it among every source's hits, ``item`` is what the reply carries."""

    source: str
    key: int
    ts_ms: int
    item: dict[str, Any]


def fold(word: str) -> str:
    """A word as unicode61 with remove_diacritics compares it: case and accents dropped."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def terms(query: Any, max_length: int, max_terms: int) -> list[str]:
    """The words of a search query (letters and digits; everything else separates them)."""
    if not isinstance(query, str):
        raise CommandError("bad_request", "field 'query' must be a string")
    if len(query) > max_length:
        raise CommandError("query_too_long", f"a search query is at most {max_length} characters")
    words = list(dict.fromkeys(fold(word) for word in WORD.findall(query)))
    if not words:
        raise CommandError("bad_query", "the query has no words to search for")
    if len(words) > max_terms:
        raise CommandError("query_too_long", f"a search query has at most {max_terms} words")
    return words


def match_expression(words: Sequence[str]) -> str:
    """An FTS5 MATCH expression finding messages with every word. Each word is quoted, so no
    query syntax (``OR``, ``NEAR``, ``*``, column filters) reaches FTS5 from a client."""
    return " AND ".join(f'"{word}"' for word in words)  # words hold no quote


def marks(text: str, words: Sequence[str]) -> list[list[int]]:
    """[start, end) character offsets of the words of ``text`` the query matched, for the
    client to highlight."""
    wanted = set(words)
    return [[match.start(), match.end()] for match in WORD.finditer(text) if fold(match.group()) in wanted]


def parse_cursor(text: Any) -> dict[str, int]:
    """``before`` as a search reply's ``next_before`` gave it: ``source:id`` pairs, comma-separated."""
    if text is None:
        return {}
    problem = "field 'before' must be the next_before of an earlier search reply"
    if not isinstance(text, str) or len(text) > MAX_CURSOR:
        raise CommandError("bad_request", problem)
    cursor: dict[str, int] = {}
    for part in filter(None, text.split(",")):
        source, _, number = part.partition(":")
        if not SOURCE.match(source) or not number.isdigit() or len(number) > 19:
            raise CommandError("bad_request", problem)
        cursor[source] = int(number)
    return cursor


def newest(hits: Iterable[Hit]) -> list[Hit]:
    """Every source's hits (each gave at most ``limit + 1`` below its cursor), newest first."""
    return sorted(hits, key=lambda hit: (hit.ts_ms, hit.source, hit.key), reverse=True)


def next_cursor(taken: Sequence[Hit], before: dict[str, int]) -> str:
    """The cursor after a page of ``taken`` (a newest-first prefix of ``newest``). A source none
    of whose hits made the page keeps its cursor: all of its hits are older than the page's,
    so they come next."""
    cursor = dict(before)
    for hit in taken:
        cursor[hit.source] = min(cursor.get(hit.source, hit.key), hit.key)
    return ",".join(f"{source}:{key}" for source, key in sorted(cursor.items()))
