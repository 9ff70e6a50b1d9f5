"""Search over a big chat history, and what its FTS5 index costs the write path. Not a test: it prints numbers.

1. Builds a chat database of ``--messages`` (default 1,000,000) directly through the store
   (``store.insert_message`` in the writer's batch size, indexed in bulk every 10,000), from
   a Zipf-like vocabulary, among ``--users`` users (a tenth of the messages in the global room).
2. Search latency, p50/p99 over ``--queries`` searches by random users: the command's own query
   (``actions.SEARCH_SQL``: the index newest first, joined with the messages, visibility by
   conversation) for a page of 50, with the matched words marked, for a common word, a rare
   word and two words; and the next page through the cursor.
3. The write path: messages/s through the real ``Writer`` (batched commits, one operation per
   message, as ``chat`` stores them) into a fresh database with the index and without it.
4. The scrub after a deletion (``optimize`` of the whole index) on the big database.

    ./dev bench search [--messages 1000000] [--write 100000]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from chatcore_chat import features, search, store
from chatcore_chat.actions import SEARCH_SQL
from chatcore_chat.indexer import SearchIndexer
from chatcore_chat.writer import Batch, Operation, Writer

VOCABULARY = 5000


def words() -> list[str]:
    """A Zipf-like vocabulary: word i is drawn about 1/(i+1) as often as word 0."""
    return [f"w{i}" for i in range(VOCABULARY)]


def text(rng: random.Random, vocab: list[str], weights: list[float]) -> str:
    return " ".join(rng.choices(vocab, weights, k=rng.randint(6, 16)))


def build(path: Path, count: int, users: int, seed: int = 1) -> float:
    """Fill ``path`` with ``count`` messages; returns messages/s."""
    rng = random.Random(seed)
    vocab = words()
    weights = [1 / (i + 1) for i in range(VOCABULARY)]
    conn = store.connect(path, autocheckpoint=True)
    store.create_schema(conn)
    names = [f"user{i}" for i in range(users)]
    started = time.perf_counter()
    for base in range(0, count, 100):
        conn.execute("BEGIN IMMEDIATE")
        for i in range(base, min(count, base + 100)):
            sender = rng.choice(names)
            to = "" if rng.random() < 0.1 else rng.choice(names)
            conv = store.GLOBAL_ROOM if to == "" else store.conversation_key(sender, to)
            store.insert_message(conn, conv, sender, to, 1_700_000_000_000 + i, text(rng, vocab, weights), None)
        if (base + 100) % 10_000 == 0 or base + 100 >= count:
            features.index_new(conn)  # as the SearchIndexer does, in bulk
        conn.execute("COMMIT")
    rate = count / (time.perf_counter() - started)
    conn.close()
    return rate


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms"


def one_search(conn: sqlite3.Connection, user: str, query: str, before: dict[str, int]) -> tuple[int, dict[str, int]]:
    """The chat source's part of ``search`` for a page of 50: rows, marks, merge and cursor."""
    found = search.terms(query, 200, 8)
    rows = conn.execute(SEARCH_SQL, {"match": search.match_expression(found), "before": before.get("chat", 2**63 - 1),
                                     "user": user, "limit": 51}).fetchall()
    hits = [search.Hit("chat", int(row[0]), int(row[4]), {"marks": search.marks(str(row[5]), found)}) for row in rows]
    page = search.newest(hits)[:50]
    cursor = search.parse_cursor(search.next_cursor(page, before))
    return len(page), cursor


def latency(path: Path, queries: int, users: int) -> None:
    rng = random.Random(2)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    for label, query in (("common word (w1)", "w1"), ("rare word (w4000)", "w4000"), ("two words (w3 w50)", "w3 w50")):
        samples, second, found = [], [], 0
        for _ in range(queries):
            user = f"user{rng.randrange(users)}"
            started = time.perf_counter()
            count, cursor = one_search(conn, user, query, {})
            samples.append(time.perf_counter() - started)
            found += count
            started = time.perf_counter()
            one_search(conn, user, query, cursor)
            second.append(time.perf_counter() - started)
        print(f"  {label:<20} first page {percentiles(samples)}   next page {percentiles(second)}   "
              f"({found / queries:.1f} hits/page)")
    conn.close()


class Insert(Operation):
    """One message, as ``Post`` stores it (without delivery)."""

    def __init__(self, conv: str, sender: str, to: str, body: str, ts: int) -> None:
        super().__init__()
        self.args = (conv, sender, to, ts, body)

    def apply(self, conn: sqlite3.Connection, batch: Batch) -> None:
        conv, sender, to, ts, body = self.args
        store.insert_message(conn, conv, sender, to, ts, body, None)


def write_rate(path: Path, count: int, fts: bool) -> float:
    """Messages/s through the real writer into a fresh database, with or without the index."""
    conn = store.connect(path, autocheckpoint=True)
    store.create_schema(conn, fts=fts)
    if not fts:
        features.drop_search(conn)
    writer = Writer(conn, 100)
    writer.start()
    indexer = SearchIndexer(writer.submit) if fts else None
    if indexer is not None:
        indexer.start()
    rng = random.Random(3)
    vocab, weights = words(), [1 / (i + 1) for i in range(VOCABULARY)]
    bodies = [text(rng, vocab, weights) for _ in range(1000)]
    started = time.perf_counter()
    last = None
    for i in range(count):
        last = writer.submit(Insert(store.conversation_key("a", "b"), "a", "b", bodies[i % 1000], i), wait=30, inline=False)
    assert last is not None
    last.wait(60)
    if indexer is not None:
        indexer.flush(60)  # every message indexed: the index's whole cost is in the rate
        indexer.stop()
    rate = count / (time.perf_counter() - started)
    writer.stop()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages in the searched database")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200, help="searches per query kind")
    parser.add_argument("--write", type=int, default=100_000, help="messages per write-path run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chatcore-search-bench-") as tmp:
        big = Path(tmp) / "big.sqlite3"
        print(f"building {args.messages:,} messages through the store (batches of 100, indexed in bulk) ...")
        print(f"  built at {build(big, args.messages, args.users):,.0f} msg/s; "
              f"database {sum(p.stat().st_size for p in Path(tmp).glob('big*')) / 1e6:,.0f} MB")
        print(f"search latency over {args.messages:,} messages, {args.queries} searches each, random users:")
        latency(big, args.queries, args.users)
        for fts in (True, False, True, False):
            path = Path(tmp) / f"write-{fts}-{time.perf_counter_ns()}.sqlite3"
            print(f"write path, {args.write:,} messages through the Writer, {'with' if fts else 'without'} FTS: "
                  f"{write_rate(path, args.write, fts):,.0f} msg/s")
        conn = store.connect(big)
        started = time.perf_counter()
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')")
        print(f"scrub after a deletion (optimize of the whole index, {args.messages:,} messages): "
              f"{time.perf_counter() - started:.1f} s")
        conn.close()


if __name__ == "__main__":
    main()
