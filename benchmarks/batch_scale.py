"""Batch mode at scale: `cxnlp classify` on a big CSV of real reviews, its speed and memory, and a
kill -9 / `--resume` check.

Usage (from the repository root)::

    .venv/bin/python benchmarks/batch_scale.py [--rows 100000] [--model fast] [--chunk-rows 2000]
        [--data ../shared/data] [--work-dir DIR] [--keep] [--seed 0] [--no-scale] [--no-resume-check]

1. Builds `big.csv` in the work dir (a temporary one unless `--work-dir`): `--rows` rows with the
   columns id, created_at, channel, product, text; the texts are real reviews from
   `DATA/{fa,ar,en}/*.jsonl`: Persian, Arabic and English in turn, and for each language one text
   of each of its files in turn, the files in a seeded order. A few rows get an
   empty or blank text, two have no text field at all (a short CSV line) and a few lack a channel
   or product, so that the per-row error path runs too.
2. Scale: runs `cxnlp classify big.csv -o out.csv --model MODEL --chunk-rows N -q` as a subprocess,
   sampling the resident memory of it and its children (VmRSS in /proc) every 0.5 s, and prints
   rows, wall seconds, rows/s, peak RSS and the RSS at 10 %, 50 % and 90 % of the run. PASS when
   every input id is in the output once, in input order, each row with a sentiment or an error
   (and the injected bad rows with an error), and when memory stays flat: the median RSS of the
   second half of the run (after the first part file, i.e. once the model is loaded) is within
   10 % of the first half's.
3. Resume: starts the same command, waits until about half of the parts exist in
   `resumed.csv.parts/`, kills it with SIGKILL, runs it again with `--resume`, and compares the
   result row by row with the uninterrupted run (same ids in the same order, same sentiments,
   probabilities and errors). PASS when nothing is missing, duplicated or different.

The exit status is 1 when a check fails. Wall times include loading the model; the machine's
other load (the numbers are meant for comparison on one machine) is not controlled.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from statistics import median

REPO_ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ["id", "created_at", "channel", "product", "text"]
CHANNELS = ["app", "web", "email", "call_center", "instagram", "twitter"]
PRODUCTS = ["food_delivery", "grocery", "banking_app", "mobile", "laptop", "hotel", "airline"]
PROB_COLUMNS = ["p_positive", "p_neutral", "p_negative", "confidence"]
EXACT_COLUMNS = ["id", "created_at", "channel", "product", "text", "sentiment", "lang", "topics"]
SAMPLE_EVERY_S = 0.5
MAX_GROWTH = 0.10  # memory after the first chunk may not grow more than this over the run


# --------------------------------------------------------------------------------------------
# The input


def _texts_of(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                text = json.loads(line).get("text")
            except ValueError:
                continue
            if isinstance(text, str) and text.strip():
                yield text


def _language_stream(files: list[Path]) -> Iterator[str]:
    """The texts of `files` one file after another in turn (one text of each), forever."""
    while True:
        streams = [_texts_of(f) for f in files]
        yielded = False
        while streams:
            alive = []
            for stream in streams:
                text = next(stream, None)
                if text is not None:
                    yielded = True
                    alive.append(stream)
                    yield text
            streams = alive
        if not yielded:
            raise SystemExit(f"no texts in {[str(f) for f in files]}")


def build_csv(data: Path, rows: int, path: Path, seed: int) -> dict[str, str]:
    """Write the big CSV; returns {id: the errors ("|"-separated) one of which it must get} of the
    injected rows."""
    rng = random.Random(seed)
    streams = {}
    for lang in ("fa", "ar", "en"):
        files = sorted((data / lang).glob("*.jsonl"))
        if not files:
            raise SystemExit(f"no {data / lang}/*.jsonl files; pass --data")
        rng.shuffle(files)
        streams[lang] = _language_stream(files)
    langs = list(streams)

    # Bad rows, away from the start (the delimiter sniffer reads the first 64 KiB).
    start = min(1000, rows // 2)
    spots = rng.sample(range(start, rows), min(rows - start, 10))
    empty = set(spots[:3])
    blank = set(spots[3:6])
    no_text = set(spots[6:8])  # a short line: the text field is absent (a missing value)
    no_meta = set(spots[8:10])  # channel and product missing, text fine

    bad: dict[str, str] = {}
    epoch = datetime(2024, 1, 1)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for i in range(rows):
            row_id = f"r{i + 1:07d}"
            created = (epoch + timedelta(minutes=rng.randrange(366 * 24 * 60))).isoformat()
            channel, product = rng.choice(CHANNELS), rng.choice(PRODUCTS)
            text = next(streams[langs[i % 3]])
            if i in empty:
                text, bad[row_id] = "", "empty text"
            elif i in blank:
                text, bad[row_id] = "  \t ", "empty text"
            if i in no_meta:
                channel, product = "", ""
            if i in no_text:
                writer.writerow([row_id, created, channel, product])
                # The CSV reader keeps cells as read (keep_default_na=False), so an absent trailing
                # field reads as "" and CSV cannot tell it from an empty one: either error is right.
                bad[row_id] = "missing text|empty text"
            else:
                writer.writerow([row_id, created, channel, product, text])
    return bad


# --------------------------------------------------------------------------------------------
# Running `cxnlp classify` and watching its memory


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def tree_rss_kib(root: int) -> int:
    """VmRSS of `root` and all its descendants, in KiB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses; ppid follows its last ')'.
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += _rss_kib(pid)
        todo += children.get(pid, [])
    return total


class Run:
    """A `cxnlp classify` subprocess with its memory sampled every SAMPLE_EVERY_S seconds."""

    def __init__(self, command: list[str], log: Path, parts_dir: Path | None = None):
        self.command, self.log, self.parts_dir = command, log, parts_dir
        self.samples: list[tuple[float, int]] = []  # (seconds since start, KiB)
        self.first_part: float | None = None  # when the first part file appeared
        self._log = log.open("w")
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while self.process.poll() is None:
            kib = tree_rss_kib(self.process.pid)
            now = time.monotonic() - self.started
            if kib:
                self.samples.append((now, kib))
            if self.first_part is None and self._has_parts():
                self.first_part = now
            time.sleep(SAMPLE_EVERY_S)

    def _has_parts(self) -> bool:
        if self.parts_dir is None or not self.parts_dir.is_dir():
            return False
        return next(self.parts_dir.glob("part-*.parquet"), None) is not None

    def wait(self) -> tuple[int, float]:
        code = self.process.wait()
        seconds = time.monotonic() - self.started
        self._sampler.join()
        self._log.close()
        return code, seconds

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)

    def rss_at(self, fraction: float, seconds: float) -> int:
        """The sample nearest to `fraction` of the run, in KiB."""
        if not self.samples:
            return 0
        return min(self.samples, key=lambda s: abs(s[0] - fraction * seconds))[1]

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def classify_command(args: argparse.Namespace, source: Path, output: Path) -> list[str]:
    command = [*args.cxnlp, "classify", str(source), "-o", str(output), "--model", args.model]
    return command + ["--chunk-rows", str(args.chunk_rows), "-q"]


def finish(run: Run, what: str) -> float:
    code, seconds = run.wait()
    if code != 0:
        raise SystemExit(f"{what}: `{' '.join(run.command)}` exited with {code}:\n{run.tail()}")
    return seconds


# --------------------------------------------------------------------------------------------
# Reading and comparing outputs


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def input_ids(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        return [row[0] for row in reader]


def mib(kib: int) -> str:
    return f"{kib / 1024:7.1f} MiB"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def check_output(ids: list[str], bad: dict[str, str], out: list[dict[str, str]]) -> list[str]:
    """The problems of a classified output; none means PASS."""
    problems = []
    got = [r["id"] for r in out]
    counts = Counter(got)
    missing = [i for i in ids if i not in counts]
    duplicated = sum(c - 1 for c in counts.values() if c > 1)
    id_set = set(ids)
    extra = [i for i in counts if i not in id_set]
    if missing or duplicated or extra:
        problems.append(
            f"{len(missing)} ids missing, {duplicated} duplicated, {len(extra)} not in the input"
        )
    elif got != ids:
        first = next(k for k, (a, b) in enumerate(zip(got, ids, strict=True)) if a != b)
        problems.append(f"ids out of order from output row {first + 1}")
    neither = sum(1 for r in out if not r["sentiment"] and not r["error"])
    both = sum(1 for r in out if r["sentiment"] and r["error"])
    if neither or both:
        problems.append(f"{neither} rows with neither sentiment nor error, {both} with both")
    by_id = {r["id"]: r for r in out}
    wrong = {
        i: by_id.get(i, {}).get("error")
        for i, why in bad.items()
        if by_id.get(i, {}).get("error") not in why.split("|")
    }
    if wrong:
        problems.append(f"injected bad rows without the expected error: {wrong}")
    return problems


def compare(reference: list[dict[str, str]], resumed: list[dict[str, str]]) -> dict[str, int]:
    ref_ids = [r["id"] for r in reference]
    counts = Counter(r["id"] for r in resumed)
    ref_set = set(ref_ids)
    result = {
        "missing": sum(1 for i in ref_ids if i not in counts),
        "duplicated": sum(c - 1 for c in counts.values() if c > 1),
        "extra": sum(1 for i in counts if i not in ref_set),
        "out_of_place": 0,
        "differing": 0,
    }
    for k, ref in enumerate(reference):
        row = resumed[k] if k < len(resumed) else None
        if row is None or row["id"] != ref["id"]:
            result["out_of_place"] += 1
            continue
        same = all(row.get(c) == ref.get(c) for c in EXACT_COLUMNS if c in ref)
        same = same and row["error"] == ref["error"]
        for c in PROB_COLUMNS:
            a, b = row[c], ref[c]
            same = same and (a == b or (a and b and abs(float(a) - float(b)) <= 1e-6))
        result["differing"] += not same
    return result


# --------------------------------------------------------------------------------------------


def scale_check(args, source, ids, bad, work) -> tuple[bool, Path]:
    output = work / "out.csv"
    output.unlink(missing_ok=True)
    parts_dir = output.with_name(output.name + ".parts")
    run = Run(classify_command(args, source, output), work / "scale.log", parts_dir)
    seconds = finish(run, "scale run")
    peak = max((kib for _, kib in run.samples), default=0)
    rss = {f: run.rss_at(f, seconds) for f in (0.1, 0.5, 0.9)}
    # Memory after the first chunk: the model is loaded and one chunk has gone through.
    steady = [kib for t, kib in run.samples if run.first_part is not None and t >= run.first_part]
    print("\n== scale: one uninterrupted run")
    print(f"command   {' '.join(run.command)}")
    print(f"rows      {len(ids)}")
    print(f"wall      {seconds:.1f} s (model load included)")
    print(f"rate      {len(ids) / seconds:.0f} rows/s")
    print(f"peak RSS  {mib(peak)}  ({len(run.samples)} samples every {SAMPLE_EVERY_S} s)")
    for f, kib in rss.items():
        print(f"RSS @{int(f * 100):2d}%  {mib(kib)}")
    memory_ok = True
    if len(steady) >= 6:
        half = len(steady) // 2
        early, late = median(steady[:half]), median(steady[half:])
        growth = (late - early) / early
        memory_ok = growth <= MAX_GROWTH
        print(
            f"steady    {mib(min(steady))} .. {mib(max(steady))} after the first part "
            f"({run.first_part:.1f} s: model loaded, one chunk done); median of the first half "
            f"{mib(early).strip()}, of the second {mib(late).strip()} ({100 * growth:+.1f}%)"
        )
        print(f"{verdict(memory_ok)}: memory flat (second-half median within +{MAX_GROWTH:.0%})")
    else:
        print("steady    too few samples after the first part to judge; use more --rows")
    out = read_rows(output)
    errors = Counter(r["error"] for r in out if r["error"])
    print(f"errors    {sum(errors.values())}: {dict(errors)}")
    print(f"labels    {dict(Counter(r['sentiment'] for r in out if r['sentiment']))}")
    problems = check_output(ids, bad, out)
    for p in problems:
        print(f"  - {p}")
    print(f"{verdict(not problems)}: every input id once, in order, with a sentiment or an error")
    return memory_ok and not problems, output


def resume_check(args, source, ids, reference: Path | None, work) -> bool:
    print("\n== resume: kill -9 at about half the parts, then --resume")
    if reference is None:
        reference = work / "reference.csv"
        reference.unlink(missing_ok=True)
        ref_run = Run(classify_command(args, source, reference), work / "reference.log")
        print(f"reference run: {finish(ref_run, 'reference run'):.1f} s")
    output = work / "resumed.csv"
    output.unlink(missing_ok=True)
    parts_dir = output.with_name(output.name + ".parts")
    shutil.rmtree(parts_dir, ignore_errors=True)
    total_parts = -(-len(ids) // args.chunk_rows)
    target = max(1, total_parts // 2)
    command = classify_command(args, source, output)
    first = Run(command, work / "killed.log")
    while first.process.poll() is None:
        if len(list(parts_dir.glob("part-*.parquet"))) >= target:
            first.kill()
            break
        time.sleep(0.02)
    code, seconds = first.wait()
    if code != -signal.SIGKILL:
        print(f"  the first run ended ({code}) before {target} of {total_parts} parts existed")
        print(f"{verdict(False)}: the run could not be killed half way; lower --chunk-rows")
        return False
    at_kill = sorted(p.name for p in parts_dir.glob("part-*.parquet"))
    leftovers = sorted(p.name for p in parts_dir.glob("*.tmp"))
    print(f"killed    after {seconds:.1f} s with {len(at_kill)} of {total_parts} parts done")
    if leftovers:
        print(f"          and a half-written {', '.join(leftovers)}")
    wrote_output = output.exists()
    second = Run([*command, "--resume"], work / "resume.log")
    resumed_seconds = finish(second, "resumed run")
    print(f"resumed   in {resumed_seconds:.1f} s with --resume, reusing {len(at_kill)} parts")
    result = compare(read_rows(reference), read_rows(output))
    print("rows      " + ", ".join(f"{v} {k}" for k, v in result.items()))
    problems = [f"{v} {k}" for k, v in result.items() if v]
    if wrote_output:
        problems.append("the killed run left an output file")
    if parts_dir.exists():
        problems.append(f"{parts_dir} still exists after the resumed run")
    for p in problems:
        print(f"  - {p}")
    print(f"{verdict(not problems)}: resumed output equals the uninterrupted run, row by row")
    return not problems


def default_cxnlp() -> list[str]:
    beside = Path(sys.executable).parent / "cxnlp"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("cxnlp")
    return [found] if found else [sys.executable, "-m", "cxnlp.cli"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--model", default="fast", help="model name under models/ or a path")
    parser.add_argument("--chunk-rows", type=int, default=2000, help="passed to cxnlp classify")
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-scale", action="store_true", help="skip the scale run")
    parser.add_argument("--no-resume-check", action="store_true", help="skip the kill/resume run")
    parser.add_argument("--keep", action="store_true", help="keep a temporary work dir")
    args = parser.parse_args()
    args.cxnlp = default_cxnlp()
    if args.rows < 20:
        parser.error("--rows must be at least 20")

    temporary = args.work_dir is None
    work = Path(tempfile.mkdtemp(prefix="cxnlp-batch-")) if temporary else args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    try:
        source = work / "big.csv"
        started = time.monotonic()
        bad = build_csv(args.data, args.rows, source, args.seed)
        size = source.stat().st_size / 2**20
        print(
            f"input     {source}: {args.rows} rows, {size:.1f} MiB, built in "
            f"{time.monotonic() - started:.1f} s; {len(bad)} rows must get an error"
        )
        print(f"model     {args.model}, --chunk-rows {args.chunk_rows}, {os.cpu_count()} CPUs")
        ids = input_ids(source)
        ok, reference = True, None
        if not args.no_scale:
            passed, reference = scale_check(args, source, ids, bad, work)
            ok &= passed
        if not args.no_resume_check:
            ok &= resume_check(args, source, ids, reference, work)
        print(f"\n{verdict(ok)}")
        return 0 if ok else 1
    finally:
        if temporary and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif temporary:
            print(f"work dir kept: {work}")


if __name__ == "__main__":
    raise SystemExit(main())
