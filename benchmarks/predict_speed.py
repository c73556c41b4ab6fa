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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--baseline-n", type=int, default=10000)
    parser.add_argument("--model", default="default")
    parser.add_argument("--fast", default="fast")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-chars", type=int, default=None, help="only reviews this short")
    args = parser.parse_args()

    import torch

    import cxnlp
    from cxnlp.models.transformer import cpu_has_fast_bf16, resolve_inference_dtype

    torch.set_num_threads(args.threads)
    texts = review_texts(Path(args.data), args.n, max_chars=args.max_chars)
    mean_chars = sum(len(t) for t in texts) / len(texts)
    print(
        f"{len(texts)} review texts (mean {mean_chars:.0f} chars), {args.threads} threads, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs visible, fast bf16 in hardware: {cpu_has_fast_bf16()}"
    )

    model = cxnlp.load(args.model)
    transformer = (
        next(m for m in model.members if m.kind == "transformer")
        if model.kind == "blend"
        else model
    )
    print(
        f"model {args.model} ({model.kind}): transformer inference dtype "
        f"{resolve_inference_dtype(transformer.dtype)}"
    )
    model.predict(texts[:64])  # build the runtime network, warm the caches

    started = time.perf_counter()
    normalised, _ = model.prepare(texts)
    prepare_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model.predict(texts)
    predict_seconds = time.perf_counter() - started
    print(f"cxnlp predict (language id + normalise + model): {rate(predict_seconds, len(texts))}")
    print(f"  of which language id + normalise:              {rate(prepare_seconds, len(texts))}")
    if transformer is not model:
        started = time.perf_counter()
        transformer.predict(texts)
        seconds = time.perf_counter() - started
        print(f"its transformer member alone (same steps):       {rate(seconds, len(texts))}")

    baseline = normalised[: args.baseline_n]
    if baseline:
        seconds = plain_transformers(transformer, baseline)
        print(f"plain transformers, same weights, float32:       {rate(seconds, len(baseline))}")

    if args.fast:
        fast = cxnlp.load(args.fast)
        fast.predict(texts[:64])
        started = time.perf_counter()
        fast.predict(texts)
        print(
            f"fast tier predict:                               "
            f"{rate(time.perf_counter() - started, len(texts))}"
        )


if __name__ == "__main__":
    main()
