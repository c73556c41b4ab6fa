"""Cross-validated checks of the topic head's calibration on its dev calibration rows (issue 27).

Usage (from the repository root)::

    python benchmarks/topic_calibration_cv.py [--model default] [--config training/configs/topics.yaml]
        [--folds 5] [--repeats 4]

The calibration rows are those `cxnlp train-topics --recalibrate` reads (`calibration_sets` and
dev rows of `negative_datasets` in the config; the multi-domain set's dev half among them, never
its test half). They are encoded twice: as `predict` reads them (a clause of a text up to
`clause_pass_chars` characters encoded on its own) and with every clause pooled from the
document's pass (`clause_pass_chars=0`, the path of the model before the clause second pass).

1. Thresholds, per language: the shipped `thresholds_by_lang` next to those the recalibration
   chooses today on either path (the ones that differ), and micro-F1 on the rows read as `predict`
   reads them (document gates applied): the shipped ones and today's on all rows (both chosen on
   these rows), then K-fold (thresholds chosen on K-1 folds on either path, scored on the held-out
   fold), on all rows and on the multi-domain rows.
2. Polarity weight, per language: the polarity accuracy of each weight of `POLARITY_GRID` on the
   topics found, and K-fold: the weight `choose_polarity_weight` picks on K-1 folds scored on the
   held-out fold, against the head's own `polarity_text_weight` everywhere.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def micro(found: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(tp, fp, fn) of (rows, topics) booleans."""
    return np.array([(found & gold).sum(), (found & ~gold).sum(), (~found & gold).sum()])


def f1(counts: np.ndarray) -> float:
    tp, fp, fn = counts
    return float(2 * tp / max(2 * tp + fp + fn, 1))


def folds(n: int, k: int, repeat: int) -> np.ndarray:
    return np.random.default_rng(repeat).permutation(n) % k


def threshold_check(model, config, rows, args) -> None:
    from cxnlp.labels import LANGS
    from training.topic_calibration import candidate_scores, choose_thresholds, predict_options

    tagger = model.topic_tagger
    names = list(tagger.topics)
    gold = np.array([[name in topics for name in names] for topics in rows["topics"]], bool)
    multidomain = rows["source"].str.startswith("topics_multidomain").to_numpy()
    predict = predict_options(model)
    pooled = copy.copy(predict)
    pooled.clause_pass_chars = 0
    scores = {"predict": candidate_scores(model, rows, predict)}
    scores["pooled"] = candidate_scores(model, rows, pooled)
    gated, cued = candidate_scores(model, rows, predict, gated=True)
    floor = tagger.thresholds_
    print("1. thresholds (micro-F1 on the rows read as predict reads them, gates applied)")
    for lang in LANGS:
        mask = (rows["lang"] == lang).to_numpy()
        if not mask.any():
            continue
        g, c, s, md = gold[mask], cued[mask], gated[mask], multidomain[mask]
        shipped = tagger.thresholds_for(lang)
        today = {
            path: choose_thresholds(raw[mask], c, g, floor, config.calibration_min_positives)[0]
            for path, (raw, _) in scores.items()
        }
        for path, chosen in today.items():
            moved = [
                f"{names[k]} {shipped[k]:.2f}->{chosen[k]:.2f}"
                for k in range(len(names))
                if abs(chosen[k] - shipped[k]) > 1e-9
            ]
            print(f"  {lang} chosen today on the {path} path: {', '.join(moved) or 'as shipped'}")
        line = [
            f"shipped {f1(micro((s >= shipped) | c, g)):.3f}",
            f"today {f1(micro((s >= today['predict']) | c, g)):.3f}",
        ]
        for path, (raw, _) in scores.items():
            every, only_md = np.zeros(3), np.zeros(3)
            for repeat in range(args.repeats):
                fold = folds(int(mask.sum()), args.folds, repeat)
                for k in range(args.folds):
                    train, test = fold != k, fold == k
                    chosen, _ = choose_thresholds(
                        raw[mask][train], c[train], g[train], floor,
                        config.calibration_min_positives,
                    )  # fmt: skip
                    found = (s[test] >= chosen) | c[test]
                    every += micro(found, g[test])
                    only_md += micro(found[md[test]], g[test][md[test]])
            line.append(f"CV chosen on {path} {f1(every):.3f} (multi-domain {f1(only_md):.3f})")
        print(f"  {lang} ({int(mask.sum())} rows): " + "; ".join(line))


def polarity_check(model, config, rows, args) -> None:
    from cxnlp.labels import LANGS
    from training.topic_calibration import (
        POLARITY_GRID,
        choose_polarity_weight,
        polarity_outcomes,
        predict_options,
    )

    current = float(model.topic_tagger.polarity_text_weight)
    weights = sorted({*POLARITY_GRID, current})
    outcomes = polarity_outcomes(model, rows, predict_options(model), weights)
    row_langs = rows["lang"].to_numpy()
    print(f"2. polarity weight (the head's own: {current})")
    for lang in LANGS:
        index, _ = outcomes[current]
        mine = row_langs[index] == lang
        if not mine.any():
            continue
        correct = {w: outcomes[w][1][mine] for w in weights}
        rows_of = index[mine]
        cells = ", ".join(f"{w} {correct[w].mean():.3f}" for w in weights)
        print(f"  {lang} ({int(mine.sum())} topics): accuracy by weight {cells}")
        hits, picked = [], []
        for repeat in range(args.repeats):
            fold = folds(len(rows), args.folds, repeat)[rows_of]
            for k in range(args.folds):
                train = fold != k
                accuracy = {w: float(correct[w][train].mean()) for w in weights}
                chosen = choose_polarity_weight(
                    accuracy, int(train.sum()), current,
                    config.polarity_min_gain, config.polarity_min_pairs,
                )  # fmt: skip
                weight = current if chosen is None else chosen
                picked.append(weight)
                hits += list(correct[weight][fold == k])
        print(
            f"     CV: chosen per fold {np.mean(hits):.3f} (weights {sorted(set(picked))}), "
            f"head's own {correct[current].mean():.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--config", default="training/configs/topics.yaml")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()

    import cxnlp
    from training.topic_calibration import config_calibration_rows, read_once
    from training.topic_trainer import TopicConfig

    model = cxnlp.load(args.model)
    config = TopicConfig.from_yaml(args.config)
    rows = config_calibration_rows(model, config)
    print(f"{args.model}: {len(rows)} calibration (dev) rows, {args.folds}-fold x {args.repeats}")
    with read_once(model):
        threshold_check(model, config, rows, args)
        polarity_check(model, config, rows, args)


if __name__ == "__main__":
    main()
