"""Start-up times: a model's warm load in a new process (the backbone cache already built), the
first prediction after it, and `cxnlp --help` / `cxnlp classify --help`.

Usage (from the repository root)::

    python benchmarks/load_time.py [--model default] [--runs 3] [--breakdown] [--repo PATH]

Each figure is the median of `runs` new processes, after one unmeasured process that builds the
caches and warms the page cache. "warm load" is `import cxnlp; cxnlp.load(model)` timed inside the
process (what a script sees after Python starts); "whole process" is the same process timed from
outside, interpreter start and exit included; CPU is that process's user + system time, the
figure to compare on a busy machine, where wall time mostly measures the wait for a core.
`--breakdown` adds one process's time per part of the load (CPU seconds and share); `--repo`
times another checkout (a worktree of another branch: before and after on the same machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Timed inside the child: the import of cxnlp and the load, then (optionally) one prediction per
# language (the first Persian text builds hazm's normaliser, the first of each script its cues).
_CHILD = """
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import cxnlp
model = cxnlp.load(sys.argv[1])
t1, c1 = time.perf_counter(), time.process_time()
out = {"load": t1 - t0, "load_cpu": c1 - c0}
if sys.argv[2] == "predict":
    model.predict(["The food was cold", "غذا سرد بود", "الطعام كان باردا"])
    out["first_predict"] = time.perf_counter() - t1
    out["first_predict_cpu"] = time.process_time() - c1
print(json.dumps(out))
"""

_BREAKDOWN = """
import functools, json, sys, time
parts = []
def timed(owner, name, label):
    f = getattr(owner, name, None)
    if f is None:  # another version of cxnlp
        return
    @functools.wraps(f)
    def wrapper(*a, **k):
        c = time.process_time()
        try:
            return f(*a, **k)
        finally:
            parts.append((label, time.process_time() - c))
    setattr(owner, name, wrapper)
c0 = time.process_time()
import numpy
parts.append(("import numpy", time.process_time() - c0))
c = time.process_time()
import torch
parts.append(("import torch", time.process_time() - c))
c = time.process_time()
import cxnlp.models.store as store
from cxnlp.models import fast, transformer
from cxnlp.topics import tagger
parts.append(("import cxnlp (models)", time.process_time() - c))
timed(transformer, "load_tokenizer", "tokenizer")
timed(transformer, "load_encoder", "encoder (memory-mapped)")
timed(transformer, "dequantize_state", "trained layers")
timed(fast.FastSentimentModel, "load", "n-gram member")
timed(tagger.TopicTagger, "load", "topic head")
c = time.process_time()
store.load(sys.argv[1])
total = time.process_time() - c
parts.append(("rest of the load", total - sum(s for n, s in parts[3:])))
print(json.dumps(parts))
"""


def _timed_child(args: list[str], repo: Path = REPO_ROOT) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system) and stdout of a child process, timed by a
    wrapper process so that the CPU time is the child's alone."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - t\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "sys.stderr.write(p.stderr)\n"
        "print(wall, u.ru_utime + u.ru_stime, p.returncode)\n"
        "print(p.stdout, end='')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, *args], capture_output=True, text=True, cwd=repo
    )
    first, _, rest = proc.stdout.partition("\n")
    wall, cpu, code = first.split()
    if int(code):
        raise RuntimeError(f"{args[:3]} exited {code}")
    return float(wall), float(cpu), rest


def warm_load(
    model: str = "default", runs: int = 3, predict: bool = False, repo: Path = REPO_ROOT
) -> dict[str, float]:
    """Medians over `runs` new processes (importing the cxnlp of `repo`) of the load (in-process
    wall and CPU), the whole process (wall and CPU), and with `predict` the first prediction
    after the load."""
    child = [sys.executable, "-c", _CHILD, model, "predict" if predict else "load"]
    _timed_child(child, repo)  # builds the caches, warms the page cache
    samples = []
    for _ in range(runs):
        wall, cpu, out = _timed_child(child, repo)
        samples.append({**json.loads(out), "process": wall, "process_cpu": cpu})
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def help_time(argv: list[str], runs: int = 3, repo: Path = REPO_ROOT) -> tuple[float, float]:
    """Median wall and CPU seconds of `cxnlp <argv>` in a new process."""
    command = [sys.executable, "-c", "import sys; from cxnlp.cli import main; main()", *argv]
    samples = [_timed_child(command, repo)[:2] for _ in range(runs)]
    return statistics.median(w for w, _ in samples), statistics.median(c for _, c in samples)


def breakdown(model: str = "default", repo: Path = REPO_ROOT) -> list[tuple[str, float]]:
    """CPU seconds per part of one new process's `import cxnlp` and load."""
    _, _, out = _timed_child([sys.executable, "-c", _BREAKDOWN, model], repo)
    return [tuple(part) for part in json.loads(out)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument(
        "--repo", default=str(REPO_ROOT), help="the checkout to time (another branch's worktree)"
    )
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(repo), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    print(f"{repo}: load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    times = warm_load(args.model, args.runs, repo=repo)
    print(
        f"warm load of {args.model!r} (new process, median of {args.runs}): "
        f"{times['load']:.2f} s ({times['load_cpu']:.2f} s CPU); whole process "
        f"{times['process']:.2f} s ({times['process_cpu']:.2f} s CPU)"
    )
    first = warm_load(args.model, args.runs, predict=True, repo=repo)
    print(
        f"first prediction after it (one text each of en, fa, ar): "
        f"{first['first_predict']:.2f} s ({first['first_predict_cpu']:.2f} s CPU)"
    )
    for argv in (["--help"], ["classify", "--help"]):
        wall, cpu = help_time(argv, args.runs, repo)
        print(f"cxnlp {' '.join(argv)}: {wall:.2f} s ({cpu:.2f} s CPU)")
    if args.breakdown:
        parts = breakdown(args.model, repo)
        total = sum(s for _, s in parts)
        print(f"one load, CPU seconds by part (total {total:.2f} s):")
        for name, seconds in parts:
            print(f"  {name:<28} {seconds:6.2f} s {100 * seconds / total:5.1f}%")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
