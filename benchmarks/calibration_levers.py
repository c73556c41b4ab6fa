"""Each calibration lever of a saved blend measured on the pooled held-out sets: per-language
blend weights and per-language logit offsets (prior correction), chosen on the model's own dev rows
(`training/recalibrate.py`), against the model as saved.

    python benchmarks/calibration_levers.py --model default

The members' log-probabilities of the dev and test rows are computed once (the slow part: about
70,000 texts) and kept in `--cache`; each variant is then a re-weighting of them. Prints, per
language, test macro-F1 and ECE, and SnappFood's official positive-vs-negative macro-F1.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cxnlp.models.store import load, resolve_model  # noqa: E402
from training.config import Config  # noqa: E402
from training.evaluate import held_out_report, load_eval_frame  # noqa: E402
from training.recalibrate import member_log_probs, recalibrate  # noqa: E402
from training.train import prepare_frames  # noqa: E402

SNAPPFOOD = "snappfood"  # its official split, scored as eval-only


def cached_parts(model, texts: list[str], path: Path) -> list[np.ndarray]:
    if path.exists():
        saved = np.load(path)
        if int(saved["n"]) == len(texts):
            return [saved[f"part{i}"] for i in range(int(saved["k"]))]
    started = time.time()
    parts = member_log_probs(model, texts)
    print(f"  {len(texts)} texts in {time.time() - started:.0f} s", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, n=len(texts), k=len(parts), **{f"part{i}": p for i, p in enumerate(parts)})
    return parts


def probabilities_of(model, parts: list[np.ndarray], langs: list[str]) -> np.ndarray:
    if len(parts) == 1:
        return model.calibrated(parts[0], langs)
    weights = model.weights_for(langs, len(langs))
    return model.calibrated(sum(weights[:, k : k + 1] * p for k, p in enumerate(parts)), langs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "cxnlp" / "levers"))
    args = parser.parse_args()
    source = Path(resolve_model(args.model))
    model = load(str(source))
    from cxnlp.modeldir import read_training_config

    _, dev = prepare_frames(Config.from_dict(read_training_config(source)))
    test = load_eval_frame(args.data)
    texts, langs = model.prepare(test["text"].astype(str).tolist(), test["lang"].tolist())
    cache = Path(args.cache) / source.resolve().name
    dev_parts = cached_parts(model, dev["text"].tolist(), cache / "dev.npz")
    test_parts = cached_parts(model, texts, cache / "test.npz")
    variants = {
        "as saved": None,
        "temperatures refitted": dict(lang_weights=False, biases=False),
        "+ per-language blend weights": dict(lang_weights=True, biases=False),
        "+ per-language offsets": dict(lang_weights=False, biases=True),
        "+ both": dict(lang_weights=True, biases=True),
    }
    print(f"model={source} dev rows={len(dev)} test rows={len(test)}")
    print(
        f"{'variant':<32} "
        + " ".join(f"{k:>14}" for k in ("fa F1/ECE", "ar F1/ECE", "en F1/ECE", "snappfood bin"))
    )
    for name, options in variants.items():
        variant = copy.deepcopy(model)
        chosen = ""
        if options is not None:
            if len(dev_parts) == 1:
                options.pop("lang_weights")
            recalibrate(variant, dev, parts=dev_parts, **options)
            chosen = f"weights {getattr(variant, 'lang_weights', {})} offsets {variant.biases_}"
        report = held_out_report(probabilities_of(variant, test_parts, langs), test, args.data)
        by_lang = report["by_lang"]
        cells = [
            f"{by_lang[k]['macro_f1']:.4f}/{by_lang[k]['ece']:.3f}" for k in ("fa", "ar", "en")
        ]
        snapp = report["by_dataset"].get(SNAPPFOOD, {}).get("binary_macro_f1", float("nan"))
        print(f"{name:<32} " + " ".join(f"{c:>14}" for c in cells) + f" {snapp:>14.4f}")
        if chosen:
            print(f"  {chosen}")


if __name__ == "__main__":
    main()
