"""The Ray engine against the local one: rows/s of `classify_file` on one export, locally and on
Ray with 1 and 2 actors (or `--actors`), and what Ray costs on top.

Usage (from the repository root)::

    .venv/bin/python benchmarks/ray_scale.py [--rows 100000] [--model fast|default]
        [--chunk-rows 2000] [--actors 1,2] [--work-dir DIR] [--keep]

1. Builds `export.csv` (a temporary work dir unless `--work-dir`): `--rows` rows cycled from
   `examples/reviews.csv` (Persian, Arabic and English reviews; ids made unique, no other change).
2. Local: `classify_file(model, export.csv, local.csv)` in this process, the model loaded before
   the clock starts.
3. Ray: starts a local Ray runtime with as many CPUs as the most actors asked for (timed: the
   start-up overhead), then for each actor count runs `classify_file(..., engine="ray",
   workers=N)` on the same file. Each run's wall time includes starting the actors, shipping the
   model to them (each loads it once) and assembling the output; the time to the first finished
   partition is printed apart, and the rate after it ("steady") is the actors' own throughput.
   Every Ray output must be byte-identical to the local one (exit status 1 if not).

Ray's overhead is stated two ways: the runtime start, and (wall time of Ray with 1 actor) minus
(local wall time) for the same work, i.e. actor start, model shipping, per-partition scheduling
and the parts travelling back to the driver. The load average is printed before and after: on a
shared machine the numbers are only comparable within one run.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def build_export(path: Path, rows: int) -> None:
    import pandas as pd

    source = pd.read_csv(REPO_ROOT / "examples" / "reviews.csv", dtype=str, keep_default_na=False)
    reps = -(-rows // len(source))
    frame = pd.concat([source] * reps, ignore_index=True).iloc[:rows].copy()
    frame["id"] = [f"{i}-{n // len(source)}" for n, i in enumerate(frame["id"])]
    frame.to_csv(path, index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--model", default="fast", help="fast (default) or default, or a path")
    parser.add_argument("--chunk-rows", type=int, default=2000)
    parser.add_argument("--actors", default="1,2", help="comma-separated actor counts")
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    actors = [int(a) for a in args.actors.split(",")]
    logging.basicConfig(level=logging.WARNING)

    import cxnlp
    from cxnlp.io.batch import classify_file
    from cxnlp.io.ray_engine import start_local_ray

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="cxnlp-ray-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    export = work / "export.csv"
    build_export(export, args.rows)
    print(
        f"export: {args.rows} rows from examples/reviews.csv, {export.stat().st_size / 1e6:.1f} MB"
    )
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    model = cxnlp.load(args.model)
    print(f"model: {args.model}; chunk rows: {args.chunk_rows}")

    started = time.perf_counter()
    local_stats = classify_file(
        model, export, work / "local.csv", chunk_rows=args.chunk_rows, progress=False
    )
    local_s = time.perf_counter() - started
    local_rate = local_stats.rows / local_s
    print(f"local engine (1 process): {local_s:8.1f} s  {local_rate:8.1f} rows/s")

    import ray

    # On a busy shared machine Ray's niced workers starve (see tests/test_ray_engine.py).
    os.environ.setdefault("RAY_worker_niceness", "0")
    started = time.perf_counter()
    start_local_ray(ray, max(actors), {"env_vars": {"PYTHONPATH": str(REPO_ROOT)}})
    init_s = time.perf_counter() - started
    print(f"ray.init (local runtime, {max(actors)} CPUs): {init_s:.1f} s")
    failed = False
    results = {}
    try:
        for n in actors:
            out = work / f"ray-{n}.csv"
            marks: list[float] = []
            done_rows: list[int] = []

            def tick(
                rows: int, marks: list[float] = marks, done_rows: list[int] = done_rows
            ) -> None:
                marks.append(time.perf_counter())
                done_rows.append(rows)

            started = time.perf_counter()
            stats = classify_file(
                model,
                export,
                out,
                chunk_rows=args.chunk_rows,
                progress=False,
                engine="ray",
                workers=n,
                on_rows=tick,
            )
            wall = time.perf_counter() - started
            first = marks[0] - started if marks else float("nan")
            steady = sum(done_rows[1:]) / (marks[-1] - marks[0]) if len(marks) > 1 else float("nan")
            same = out.read_bytes() == (work / "local.csv").read_bytes()
            failed |= not same
            results[n] = stats.rows / wall
            print(
                f"ray, {n} actor{'s' if n > 1 else ' '}:         {wall:8.1f} s  "
                f"{stats.rows / wall:8.1f} rows/s  (first partition after {first:.1f} s; "
                f"steady {steady:.1f} rows/s; {'identical to local' if same else 'DIFFERS from local'})"
            )
    finally:
        ray.shutdown()
    if 1 in results:
        one = args.rows / results[1]
        print(
            f"Ray overhead: runtime start {init_s:.1f} s; with 1 actor {one - local_s:+.1f} s "
            f"over the local engine ({100 * (one - local_s) / local_s:+.0f} %)"
        )
        for n, rate in results.items():
            if n > 1:
                print(f"speed-up of {n} actors over 1: {rate / results[1]:.2f}x")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if not args.keep and not args.work_dir:
        shutil.rmtree(work)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
