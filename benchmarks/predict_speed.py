"""Texts per second of `predict` on real reviews: the shipped transformer, the same weights run the
plain `transformers` way, and the fast tier, in one run on the same texts.

Usage (from the repository root)::

    python benchmarks/predict_speed.py [--data ../shared/data] [--n 10000] [--baseline-n 10000]
        [--model default] [--fast fast] [--threads 2] [--max-chars 100]

The texts are the first `n` of a seeded shuffle of the review-domain `test` rows, balanced over
Persian, Arabic and English. "plain transformers" is what a script stitched from Hugging Face
examples does: the same fine-tuned network in float32, `torch.no_grad`, batches of 32 in input
order padded to their longest text, max length as the model's; it is given the normalised texts
(normalisation and language id are cxnlp's own extra work and are timed separately).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def review_texts(data_dir: Path, n: int, seed: int = 0, max_chars: int | None = None) -> list[str]:
    from training.data import dataset_catalog

    catalog = dataset_catalog()
    by_lang: dict[str, list[str]] = {"fa": [], "ar": [], "en": []}
    for info in catalog.values():
        if info.domain != "review" or info.lang not in by_lang:
            continue
        path = data_dir / info.lang / f"{info.name}.jsonl"
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                text = str(row["text"]).strip()
                if row.get("split") == "test" and text and len(text) <= (max_chars or len(text)):
                    by_lang[info.lang].append(row["text"])
    rng = random.Random(seed)
    texts = []
    for rows in by_lang.values():
        rng.shuffle(rows)
        texts += rows[: n // 3 + 1]
    rng.shuffle(texts)
    return texts[:n]


def all_texts(data_dir: Path, n: int, seed: int = 1) -> list[str]:
    """`n` test texts of every dataset (reviews, tweets, social posts; any length), seeded."""
    texts = []
    for path in sorted(data_dir.glob("*/*.jsonl")):
        with path.open(encoding="utf-8") as f:
            texts += [
                str(row["text"])
                for row in map(json.loads, f)
                if row.get("split") == "test" and str(row["text"]).strip()
            ]
    random.Random(seed).shuffle(texts)
    return texts[:n]


def rate(seconds: float, n: int) -> str:
    return f"{n / seconds:8.1f} texts/s  ({n} texts in {seconds:.1f} s)"


def plain_transformers(model, texts: list[str], batch_size: int = 32) -> float:
    import torch

    from cxnlp.backbone.spec import E5_PREFIX

    net = model.net.float().eval()
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = model.tokenizer(
                [E5_PREFIX + t for t in texts[start : start + batch_size]],
                truncation=True,
                max_length=model.max_length,
                padding=True,
                return_tensors="pt",
            )
            torch.softmax(net(batch["input_ids"], batch["attention_mask"]), dim=-1)
    return time.perf_counter() - started


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def export_speed(path: Path, model_name: str, baseline_net_model) -> None:
    """The main job on an export, model load included, against the plain float32 way on the same
    texts (sentiment only, truncated at the model's max length)."""
    import tempfile

    import pandas as pd

    from cxnlp.io.batch import classify_file
    from cxnlp.models.store import load
    from cxnlp.text.normalize import normalize

    out = Path(tempfile.mkdtemp()) / "out.csv"
    started = time.perf_counter()
    loaded = []
    stats = classify_file(
        lambda: loaded.append(load(model_name)) or loaded[-1], path, out, progress=False
    )
    job_seconds = time.perf_counter() - started
    texts = [normalize(str(t)) for t in pd.read_csv(path)["text"].astype(str)]
    plain_seconds = plain_transformers(baseline_net_model, texts)
    print(
        f"export {path.name}: {stats.rows} rows; cxnlp classify (topics, clauses, model load "
        f"included) {job_seconds:.1f} s = {stats.rows / job_seconds:.1f} rows/s; plain float32 "
        f"sentiment only {plain_seconds:.1f} s = {len(texts) / plain_seconds:.1f} rows/s; "
        f"ratio {plain_seconds / job_seconds:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--baseline-n", type=int, default=1000)
    parser.add_argument("--model", default="default")
    parser.add_argument("--fast", default="fast")
    parser.add_argument(
        "--baseline-model",
        help="the model whose network the plain float32 way runs (default: --model); for a "
        "distilled student, the shipped default is what a plain script would run",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-chars", type=int, default=100, help="only reviews this short")
    parser.add_argument(
        "--dtypes", default="bfloat16,float32", help="transformer engines to time predict with"
    )
    parser.add_argument("--export", help="also time `cxnlp classify` on this export (CSV)")
    parser.add_argument(
        "--export-n",
        type=int,
        default=0,
        help="build a mixed export of this many test rows of all lengths and domains and time it",
    )
    args = parser.parse_args()

    import torch

    import cxnlp
    from cxnlp.models.threads import available_cores, configure_threads
    from cxnlp.models.transformer import cpu_has_fast_bf16

    threads = configure_threads(threads=args.threads)
    texts = review_texts(Path(args.data), args.n, max_chars=args.max_chars)
    mean_chars = sum(len(t) for t in texts) / len(texts)
    load1 = os.getloadavg()[0]
    print(
        f"{len(texts)} review texts (mean {mean_chars:.0f} chars), {threads} threads of "
        f"{available_cores()} cores, {platform.processor() or platform.machine()}, torch "
        f"{torch.__version__}, fast bf16 in hardware: {cpu_has_fast_bf16()}, load average "
        f"{load1:.2f}"
    )
    started = time.perf_counter()
    model = cxnlp.load(args.model)
    print(f"model {args.model} ({model.kind}) loaded in {time.perf_counter() - started:.1f} s")
    from load_time import warm_load  # benchmarks/, beside this script

    warm = warm_load(args.model, runs=3)
    print(
        f"warm load of {args.model} (new process, cache built, median of 3): {warm['load']:.2f} s "
        f"({warm['load_cpu']:.2f} s CPU)"
    )
    transformer = (
        next(m for m in model.members if m.kind == "transformer")
        if model.kind == "blend"
        else model
    )
    normalised, _ = model.prepare(texts)
    baseline = normalised[: args.baseline_n]
    baseline_name = args.baseline_model or args.model
    baseline_model = transformer
    if baseline_name != args.model:
        other = cxnlp.load(baseline_name)
        baseline_model = (
            next(m for m in other.members if m.kind == "transformer")
            if other.kind == "blend"
            else other
        )
    plain = len(baseline) / timed(lambda: plain_transformers(baseline_model, baseline))
    print(f"{'what':<58} {'texts/s':>8} {'x plain':>8}")
    label = f"plain transformers, {baseline_name}'s weights, float32, no topics"
    print(f"{label:<58} {plain:8.1f} {1.0:8.2f}")
    rows = [
        ("language id + normalise only", lambda: model.prepare(texts)),
    ]
    for dtype in args.dtypes.split(","):

        def run(dtype=dtype):
            transformer.dtype, transformer._runtime = dtype, None
            model.predict(texts[:64])  # build the runtime network
            return timed(lambda: model.predict(texts))

        seconds = run()
        label = f"cxnlp predict, topics + clauses, {dtype}"
        print(f"{label:<58} {len(texts) / seconds:8.1f} {len(texts) / seconds / plain:8.2f}")
    for label, fn in rows:
        seconds = timed(fn)
        print(f"{label:<58} {len(texts) / seconds:8.1f} {len(texts) / seconds / plain:8.2f}")
    transformer.dtype, transformer._runtime = "auto", None
    if args.fast:
        fast = cxnlp.load(args.fast)
        fast.predict(texts[:64])
        seconds = timed(lambda: fast.predict(texts))
        label = "fast tier predict"
        print(f"{label:<58} {len(texts) / seconds:8.1f} {len(texts) / seconds / plain:8.2f}")
    if args.export_n:
        import tempfile

        import pandas as pd

        mixed = all_texts(Path(args.data), args.export_n)
        path = Path(tempfile.mkdtemp()) / "mixed_export.csv"
        pd.DataFrame({"id": range(1, len(mixed) + 1), "text": mixed}).to_csv(path, index=False)
        longest = max(len(t) for t in mixed)
        print(f"mixed export: {len(mixed)} test rows of every domain, longest {longest} chars")
        export_speed(path, args.model, baseline_model)
    if args.export:
        export_speed(Path(args.export), args.model, baseline_model)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
