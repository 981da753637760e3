"""Paging through a large type: the store's side of the dashboard's first load.

Fills a SQLite store (a temporary file) with ``--entities`` entities of one type, each
with five Properties, then asks for them as the dashboard does: pages of ``--page`` in
turn, ``count`` on the first. Prints the time of each page and the total, in one
process, for a query by type alone, by type and attrs (an exact filter: SQL pages and
counts), and by type and a q that every entity passes (only Python can judge it: every
row before the page is decoded, and every row for the count).

To compare with another checkout, run it with ``PYTHONPATH=<checkout>/src``.

    .venv/bin/python bench/paging.py
    .venv/bin/python bench/paging.py --entities 50000 --page 500 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cityverse
from cityverse.core.model import DEFAULT_CONTEXT_VOCAB, Entity
from cityverse.core.query import parse_q, parse_type_expr
from cityverse.store.base import Change, EntityFilter
from cityverse.store.sqlite import SqliteStore

TYPE = "https://smartdatamodels.org/dataModel.Streetlighting/Streetlight"
NAMES = ["status", "powerState", "illuminanceLevel", "lanternHeight", "dateLastLampChange"]
NOW = "2026-11-21T08:31:26.123Z"


def _expand(name: str) -> str:
    return name if ":" in name else DEFAULT_CONTEXT_VOCAB + name


def _entity(i: int) -> Entity:
    values: list[object] = ["ok", "on", (i % 100) / 100, 4 + i % 5, "2026-01-02T03:04:05Z"]
    return {
        "id": f"urn:ngsi-ld:Streetlight:{i:06d}",
        "type": [TYPE],
        "createdAt": NOW,
        "modifiedAt": NOW,
        "attrs": {
            _expand(name): [
                {"type": "Property", "value": value, "createdAt": NOW, "modifiedAt": NOW}
            ]
            for name, value in zip(NAMES, values, strict=True)
        },
    }


def _filters() -> dict[str, EntityFilter]:
    types = parse_type_expr(TYPE, _expand)
    return {
        # As the broker builds them for GET /entities?type=...[&attrs=...|&q=...].
        "type": EntityFilter(type_names=types.names, predicates=(types,)),
        "type+attrs": EntityFilter(
            type_names=types.names,
            attrs=frozenset(_expand(n) for n in NAMES[:2]),
            predicates=(types,),
        ),
        "type+q": EntityFilter(
            type_names=types.names, predicates=(types, parse_q("lanternHeight>=0", _expand))
        ),
        "type+attrs+q": EntityFilter(
            type_names=types.names,
            attrs=frozenset(_expand(n) for n in NAMES[:2]),
            predicates=(types, parse_q("lanternHeight>=0", _expand)),
        ),
    }


async def _walk(store: SqliteStore, flt: EntityFilter, n: int, page: int) -> list[float]:
    times = []
    for offset in range(0, n, page):
        start = time.perf_counter()
        got = await store.query("", flt, limit=page, offset=offset, count=offset == 0)
        times.append(time.perf_counter() - start)
        assert len(got.entities) == min(page, n - offset), (offset, len(got.entities))
        if offset == 0:
            assert got.total == n, got.total
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--page", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3, help="walks of each query; best kept")
    args = parser.parse_args()
    if args.entities < 1 or args.page < 1 or args.rounds < 1:
        parser.error("--entities, --page and --rounds must be positive")
    print(f"cityverse from {Path(cityverse.__file__).parent}")
    print(f"python {platform.python_version()}, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "paging.db")
        await store.open()
        try:
            start = time.perf_counter()
            for first in range(0, args.entities, 1_000):
                last = min(first + 1_000, args.entities)
                changes = [
                    Change(e["id"], lambda _, e=e: e) for e in map(_entity, range(first, last))
                ]
                await store.mutate("", changes)
            print(f"loaded {args.entities} entities in {time.perf_counter() - start:.1f} s")
            for name, flt in _filters().items():
                walks = [
                    await _walk(store, flt, args.entities, args.page) for _ in range(args.rounds)
                ]
                best = min(walks, key=sum)
                pages = " ".join(f"{t * 1000:.0f}" for t in best)
                print(
                    f"{name:>12}: total {sum(best) * 1000:7.1f} ms (walks: "
                    f"{', '.join(f'{sum(w) * 1000:.0f}' for w in walks)}), first page "
                    f"{best[0] * 1000:.1f} ms, median page {statistics.median(best) * 1000:.1f} ms"
                )
                print(f"{'':>12}  pages (ms): {pages}")
        finally:
            await store.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
