"""Which pooling and max length to fine-tune with: a linear probe on the frozen backbone.

For a seeded sample of train and dev rows per language, the frozen multilingual-e5-small encodes
each text once per max length; a logistic regression on mean-pooled and on first-token ([CLS])
vectors is fitted on train and scored on dev (3-class macro-F1). The better frozen representation is
the better starting point for fine-tuning the top layers.

Usage (from the repository root)::

    python benchmarks/pooling_probe.py [--data ../shared/data] [--train-per-lang 1500]
        [--dev-per-lang 600] [--lengths 64,128]
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
    parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--train-per-lang", type=int, default=1500)
    parser.add_argument("--dev-per-lang", type=int, default=600)
    parser.add_argument("--lengths", default="64,128")
    args = parser.parse_args()

    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from cxnlp.backbone.spec import E5_PREFIX, mean_pool
    from cxnlp.labels import SENTIMENTS
    from cxnlp.models.transformer import build_net
    from cxnlp.text.normalize import normalize
    from training.data import load_corpus

    corpus = load_corpus(args.data)
    corpus = corpus[corpus["label"].isin(SENTIMENTS)]
    parts = {}
    for split, n in (("train", args.train_per_lang), ("dev", args.dev_per_lang)):
        rows = corpus[corpus["split"] == split].sample(frac=1.0, random_state=0)
        parts[split] = rows.groupby("lang").head(n).reset_index(drop=True)
    tokenizer, net = build_net()
    encoder = torch.ao.quantization.quantize_dynamic(
        net.encoder.eval(), {torch.nn.Linear}, dtype=torch.qint8
    )

    @torch.inference_mode()
    def embed(texts: list[str], max_length: int) -> dict[str, np.ndarray]:
        mean, cls = [], []
        for start in range(0, len(texts), 64):
            batch = tokenizer(
                [E5_PREFIX + t for t in texts[start : start + 64]],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            hidden = encoder(**batch).last_hidden_state
            mean.append(mean_pool(hidden, batch["attention_mask"]).numpy())
            cls.append(hidden[:, 0].numpy())
        return {"mean": np.concatenate(mean), "cls": np.concatenate(cls)}

    texts = {
        split: [normalize(t, lang=lang) for t, lang in zip(f["text"], f["lang"], strict=True)]
        for split, f in parts.items()
    }
    print(
        f"train {len(texts['train'])} / dev {len(texts['dev'])} rows "
        f"({args.train_per_lang} / {args.dev_per_lang} per language)"
    )
    print(f"{'max_len':>7} {'pooling':>8} " + " ".join(f"{lang:>6}" for lang in ("fa", "ar", "en")))
    for max_length in [int(x) for x in args.lengths.split(",")]:
        started = time.perf_counter()
        train_x = embed(texts["train"], max_length)
        dev_x = embed(texts["dev"], max_length)
        seconds = time.perf_counter() - started
        for pooling in ("mean", "cls"):
            classifier = LogisticRegression(C=1.0, max_iter=2000)
            classifier.fit(train_x[pooling], parts["train"]["label"])
            predicted = classifier.predict(dev_x[pooling])
            scores = []
            for lang in ("fa", "ar", "en"):
                rows = (parts["dev"]["lang"] == lang).to_numpy()
                scores.append(
                    f1_score(parts["dev"]["label"][rows], predicted[rows], average="macro")
                )
            print(
                f"{max_length:>7} {pooling:>8} "
                + " ".join(f"{s:>6.3f}" for s in scores)
                + f"   (encoding {seconds:.0f} s)"
            )


if __name__ == "__main__":
    main()
