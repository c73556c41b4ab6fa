"""What the store benchmarks (`store_bench.py`, `cases_bench.py`) share: a fresh store per backend
(a temporary SQLite file, or a schema of its own on PostgreSQL, dropped afterwards) and the
latency of a view (p50 / p95 over repeated runs after a warm-up)."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

PG_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")


def backends(value: str) -> list[str]:
    """`--backends`' type: names of BACKENDS, separated by commas."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown backend(s) {unknown}: use {', '.join(BACKENDS)}, separated by commas"
        )
    return names


def on_each_backend(
    names: list[str], pg_url: str, name: str, run: Callable[[str, str], None]
) -> None:
    """`run(backend, url)` for each of the backends `names`, on a fresh store named `name`."""
    for backend in names:
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                run("sqlite", f"sqlite:///{tmp}/{name}.sqlite")
            continue
        import sqlalchemy as sa

        schema = f"cxnlp_{name}_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            run("postgresql", f"{pg_url}?options=-csearch_path%3D{schema}")
        finally:
            with admin.connect() as c:
                c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def timed(
    view: Callable[[Any], Any], connection: Any, repeats: int, budget_s: float = float("inf")
) -> tuple[float, float, int]:
    """`view(connection)` run once to warm up, then up to `repeats` times, fewer (at least 3)
    where they would take more than `budget_s` seconds in all: (p50, p95) in milliseconds and
    how many runs were timed."""
    view(connection)
    times: list[float] = []
    while len(times) < repeats and (len(times) < 3 or sum(times) < 1000 * budget_s):
        started = time.perf_counter()
        view(connection)
        times.append(1000 * (time.perf_counter() - started))
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95, len(times)
