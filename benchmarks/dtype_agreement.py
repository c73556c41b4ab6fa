"""Does int8 (or bfloat16) inference keep the float32 model's quality? Dev macro-F1 per language and
the share of texts whose label changes, for the transformer (or a blend's transformer member).

Usage (from the repository root)::

    python benchmarks/dtype_agreement.py --model default [--per-lang 300] [--dtypes float32,int8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--per-lang", type=int, default=300)
    parser.add_argument("--dtypes", default="float32,int8")
    args = parser.parse_args()

    import numpy as np
    from sklearn.metrics import f1_score

    import cxnlp
    from cxnlp.labels import SENTIMENTS
    from cxnlp.text.normalize import normalize
    from training.data import load_corpus

    model = cxnlp.load(args.model)
    if model.kind == "blend":
        model = next(m for m in model.members if m.kind == "transformer")
    corpus = load_corpus(args.data)
    dev = corpus[(corpus["split"] == "dev") & corpus["label"].isin(SENTIMENTS)]
    dev = dev.sample(frac=1.0, random_state=1).groupby("lang").head(args.per_lang)
    texts = [normalize(t, lang=lang) for t, lang in zip(dev["text"], dev["lang"], strict=True)]
    gold = dev["label"].to_numpy()
    langs = dev["lang"].to_numpy()
    predictions = {}
    for dtype in args.dtypes.split(","):
        model.dtype, model._runtime = dtype, None
        started = time.perf_counter()
        predicted = np.array(SENTIMENTS)[model._logits(texts).argmax(axis=1)]
        seconds = time.perf_counter() - started
        predictions[dtype] = predicted
        scores = " ".join(
            f"{lang}={f1_score(gold[langs == lang], predicted[langs == lang], average='macro'):.4f}"
            for lang in ("fa", "ar", "en")
        )
        print(f"{dtype:>9}: dev macro-F1 {scores}  ({len(texts) / seconds:.0f} texts/s)")
    first, *others = args.dtypes.split(",")
    for dtype in others:
        changed = float((predictions[dtype] != predictions[first]).mean())
        print(f"{dtype} vs {first}: {100 * changed:.1f}% of labels differ")


if __name__ == "__main__":
    main()
