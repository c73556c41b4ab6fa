"""Per-language topic thresholds chosen on a dev mix of domains, for a trained topic head.

`recalibrate_topics(model, config)` scores the dev rows of the calibration sets (`calibration_sets`
in training/configs/topics.yaml: hand-labeled JSONL files with a `split` column, e.g. the dev half
of the multi-domain set) plus aspect-less social posts (`negative_datasets`, rows sampled from
their `dev` split; every topic counts as absent there) the way `predict` reads them (document and
clauses, cue rules; `cxnlp.models.pipeline`), and sets, per language and topic, the threshold with the best
F1 on them; a topic without `min_positives` dev positives in a language gets the lowest threshold
that adds no false positive (never below the head's own). The thresholds land in the head's
`thresholds_by_lang` (topics/config.json); the head's weights are not touched.

Then, per language, the weight of the text's sentiment in each topic's polarity
(`TopicTagger.polarity_text_weight_by_lang`): read the way `predict` reads it (the polarity head
and the sentiment of the clause that carries the topic), on the topics found whose gold polarity
is positive, neutral or negative; a language moves off the head's own weight only when another
weight of `POLARITY_GRID` is `polarity_min_gain` more accurate there (measured: Persian, whose
polarity head calls most food and app complaints positive, gains; Arabic and English do not).

Run it with `cxnlp train-topics --model default --recalibrate` (or at the end of a full
`train-topics` run when the config names calibration sets); `--fit-polarity` chooses the polarity
weights alone and `--langs` limits either to some languages.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxnlp.labels import LANGS, SENTIMENTS
from cxnlp.models.base import SentimentModel
from cxnlp.models.pipeline import AspectOptions, analyze
from cxnlp.text.clauses import cue_topics
from cxnlp.topics.taxonomy import TOPICS
from training.topic_data import split_rows

logger = logging.getLogger(__name__)

GRID = np.round(np.arange(0.05, 0.991, 0.01), 2)
GATE_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)
# Weights of the text's sentiment in a topic's polarity tried per language (the polarity head
# weighs 1; see TopicTagger.polarities).
POLARITY_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
REPO_ROOT = Path(__file__).resolve().parent.parent


def _resolve(path: str) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() or candidate.exists() else REPO_ROOT / candidate


def calibration_rows(
    sets: list[str],
    negative_datasets: dict[str, list[str]],
    data_dir: str | Path,
    negatives_per_dataset: int,
    seed: int,
) -> pd.DataFrame:
    """text, lang, topics (list of names), polarity (topic -> gold polarity) of the dev rows of
    `sets` and of sampled negatives."""
    frames = []
    for pattern in sets:
        path = _resolve(pattern)
        for file in sorted(path.parent.glob(path.name)):
            rows = pd.read_json(file, lines=True)
            if "split" in rows:
                rows = rows[rows["split"] == "dev"]
            frames.append(
                pd.DataFrame(
                    {
                        "text": rows["text"].astype(str),
                        "lang": rows["lang"],
                        "topics": [[t["topic"] for t in ts] for ts in rows["topics"]],
                        "polarity": [
                            {t["topic"]: t["polarity"] for t in ts} for ts in rows["topics"]
                        ],
                        "source": file.name,
                    }
                )
            )
    for lang, name, rows in split_rows(data_dir, negative_datasets or {}, "dev", "negative"):
        rows = rows.sample(min(len(rows), negatives_per_dataset), random_state=seed)
        frames.append(
            pd.DataFrame(
                {
                    "text": rows["text"].astype(str),
                    "lang": lang,
                    "topics": [[] for _ in range(len(rows))],
                    "polarity": [{} for _ in range(len(rows))],
                    "source": name,
                }
            )
        )
    if not frames:
        raise ValueError("no calibration rows: give calibration_sets or negative_datasets")
    return pd.concat(frames, ignore_index=True)


def candidate_scores(
    model: SentimentModel, rows: pd.DataFrame, options: AspectOptions, *, gated: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(n, topics) the score `predict` gives each topic (max over document and clauses; with
    `gated`, 0 where the language's document gate is closed) and (n, topics) whether a cue rule
    tags it regardless of the threshold."""
    tagger = model.topic_tagger
    saved = tagger.thresholds_, tagger.thresholds_by_lang, tagger.gates
    try:
        tagger.thresholds_ = np.zeros(len(tagger.topics))
        tagger.thresholds_by_lang = {}
        tagger.gates = tagger.gates if gated else {}
        predictions = analyze(model, rows["text"].tolist(), rows["lang"].tolist(), options)
    finally:
        tagger.thresholds_, tagger.thresholds_by_lang, tagger.gates = saved
    index = {name: i for i, name in enumerate(tagger.topics)}
    scores = np.zeros((len(rows), len(index)))
    cued = np.zeros((len(rows), len(index)), bool)
    for row, (prediction, text, lang) in enumerate(
        zip(predictions, rows["text"], rows["lang"], strict=True)
    ):
        for item in prediction.topics:
            if item["topic"] in index:
                scores[row, index[item["topic"]]] = item["score"]
        for topic in (
            cue_topics(
                text,
                lang,
                cue_file=options.cue_file,
                min_words=options.min_words,
                clauses=options.clauses,
            )
            if options.cues
            else ()
        ):
            if topic in index:
                cued[row, index[topic]] = True
    return scores, cued


def choose_thresholds(
    scores: np.ndarray,
    cued: np.ndarray,
    gold: np.ndarray,
    floor: np.ndarray,
    min_positives: int,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Per topic: the F1-best threshold (ties: the higher), or with fewer than `min_positives`
    positives the lowest threshold at or above `floor` with no more false positives than the
    highest one."""
    thresholds = np.array(floor, dtype=np.float64)
    notes: dict[str, Any] = {}
    for col in range(scores.shape[1]):
        found = {float(t): (scores[:, col] >= t) | cued[:, col] for t in GRID}
        positives = int(gold[:, col].sum())
        if positives >= min_positives:
            f1 = {
                t: 2
                * (p & gold[:, col]).sum()
                / max(
                    2 * (p & gold[:, col]).sum()
                    + (p & ~gold[:, col]).sum()
                    + (~p & gold[:, col]).sum(),
                    1,
                )
                for t, p in found.items()
            }
            best = max(f1, key=lambda t: (round(f1[t], 6), t))
            thresholds[col] = best
            notes[str(col)] = {"positives": positives, "f1": round(float(f1[best]), 4)}
        else:
            fp = {t: int((p & ~gold[:, col]).sum()) for t, p in found.items()}
            least = min(fp.values())
            thresholds[col] = max(float(floor[col]), min(t for t, n in fp.items() if n == least))
            notes[str(col)] = {"positives": positives, "false_positives": least}
    return thresholds, notes


@contextmanager
def read_once(model: SentimentModel) -> Iterator[SentimentModel]:
    """`model` whose `read_units` remembers what it read while the block runs: `analyze` run
    again on the same texts (other thresholds, gates or polarity weights) reuses the first
    encoder pass."""
    had_own = "read_units" in vars(model)
    read = model.read_units
    memo: dict[Any, Any] = {}

    def remembered(
        docs: list[str], spans: list[list[tuple[int, int]]], langs: Sequence[str]
    ) -> Any:
        key = (tuple(docs), tuple(tuple(s) for s in spans), tuple(langs))
        if key not in memo:
            memo[key] = read(docs, spans, langs)
        return memo[key]

    model.read_units = remembered  # type: ignore[method-assign]
    try:
        yield model
    finally:
        if had_own:
            model.read_units = read  # type: ignore[method-assign]
        else:
            del model.read_units


def polarity_hits(predictions: Sequence[Any], rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row index and correctness of each predicted topic that the row's gold has with a
    positive, neutral or negative polarity (`mixed` gold left out, as the scores do)."""
    index, correct = [], []
    for row, (prediction, gold) in enumerate(zip(predictions, rows["polarity"], strict=True)):
        for item in prediction.topics:
            truth = gold.get(item["topic"])
            if truth in SENTIMENTS:
                index.append(row)
                correct.append(item["polarity"] == truth)
    return np.asarray(index, dtype=np.int64), np.asarray(correct, dtype=bool)


def choose_polarity_weight(
    accuracy: dict[float, float], pairs: int, current: float, min_gain: float, min_pairs: int
) -> float | None:
    """The weight (a key of `accuracy`) with the best accuracy (ties: the one nearest
    `current`), or None (keep `current`) when fewer than `min_pairs` topics were scored or it
    beats `current`'s accuracy by less than `min_gain`."""
    best = max(accuracy, key=lambda w: (round(accuracy[w], 9), -abs(w - current)))
    if pairs < min_pairs or accuracy[best] - accuracy.get(current, 0.0) < min_gain:
        return None
    return best


def polarity_outcomes(
    model: SentimentModel, rows: pd.DataFrame, options: AspectOptions, weights: Sequence[float]
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """For each weight, every language's topics read with it (`analyze` on `rows` with the
    head's current thresholds and gates; the rows are encoded once): `polarity_hits`."""
    tagger = model.topic_tagger
    saved = dict(tagger.polarity_text_weight_by_lang)
    texts, langs = rows["text"].tolist(), rows["lang"].tolist()
    outcomes = {}
    try:
        with read_once(model):
            for weight in weights:
                tagger.polarity_text_weight_by_lang = {lang: weight for lang in LANGS}
                outcomes[weight] = polarity_hits(analyze(model, texts, langs, options), rows)
    finally:
        tagger.polarity_text_weight_by_lang = saved
    return outcomes


def fit_polarity_weights(
    model: SentimentModel,
    rows: pd.DataFrame,
    options: AspectOptions,
    langs: Sequence[str],
    min_gain: float,
    min_pairs: int,
) -> dict[str, Any]:
    """For each of `langs`: the polarity accuracy of every weight of `POLARITY_GRID` (and of the
    head's own `polarity_text_weight`) on `rows` read as `predict` reads them
    (`polarity_outcomes`), and the weight chosen (`choose_polarity_weight`); sets
    `model.topic_tagger.polarity_text_weight_by_lang` for those languages (a language whose
    weight is not chosen loses any per-language weight it had)."""
    tagger = model.topic_tagger
    current = float(tagger.polarity_text_weight)
    outcomes = polarity_outcomes(model, rows, options, sorted({*POLARITY_GRID, current}))
    row_langs = rows["lang"].to_numpy()
    report: dict[str, Any] = {}
    for lang in langs:
        accuracy, pairs = {}, 0
        for weight, (index, correct) in outcomes.items():
            mine = row_langs[index] == lang
            pairs = int(mine.sum())
            accuracy[weight] = float(correct[mine].mean()) if pairs else 0.0
        chosen = choose_polarity_weight(accuracy, pairs, current, min_gain, min_pairs)
        if chosen is None:
            tagger.polarity_text_weight_by_lang.pop(lang, None)
        else:
            tagger.polarity_text_weight_by_lang[lang] = chosen
        report[lang] = {
            "pairs": pairs,
            "weight": current if chosen is None else chosen,
            "accuracy": {str(w): round(a, 4) for w, a in accuracy.items()},
        }
    return report


def gate_training_rows(
    team_sets: list[str],
    negative_datasets: dict[str, list[str]],
    data_dir: str | Path,
    lang: str,
    negatives_per_dataset: int,
    seed: int,
) -> pd.DataFrame:
    """text, has_topic: the `train` rows of the team's sets in `lang` and sampled `train` rows of
    its aspect-less datasets (no text of a hand-labeled topic set), for a document gate."""
    from training.topic_data import load_team_sets, text_key, topic_set_keys

    team = load_team_sets(team_sets)
    team = team[(team["lang"] == lang) & (team["split"] == "train")]
    frames = [pd.DataFrame({"text": team["text"], "has_topic": team["topics"].map(bool)})]
    held_out = topic_set_keys()
    for _, _, table in split_rows(
        data_dir, {lang: negative_datasets.get(lang, [])}, "train", "negative"
    ):
        table = table[~table["text"].astype(str).map(text_key).isin(held_out)]
        table = table.sample(min(len(table), negatives_per_dataset), random_state=seed)
        frames.append(pd.DataFrame({"text": table["text"].astype(str), "has_topic": False}))
    return pd.concat(frames, ignore_index=True)


def fit_gate_weights(
    features: np.ndarray, has_topic: np.ndarray, c: float
) -> tuple[np.ndarray, float]:
    """A class-balanced, L2-regularised logistic regression on standardised features, folded back
    into weights and a bias on the raw features."""
    from training.linear_head import balanced_weights, logistic, standardiser

    mean, scale = standardiser(features)
    fitted = logistic(c).fit(
        (features - mean) / scale,
        has_topic,
        sample_weight=balanced_weights(np.zeros(len(has_topic)), has_topic),
    )
    weights = fitted.coef_[0] / scale
    return weights, float(fitted.intercept_[0] - weights @ mean)


def choose_gate_floor(
    probability: np.ndarray,
    scores: np.ndarray,
    cued: np.ndarray,
    gold: np.ndarray,
    thresholds: np.ndarray,
) -> tuple[float, float, float]:
    """The floor (GATE_GRID) with the best micro-F1 on the rows (ties: the higher), where a
    closed gate keeps only cue-found topics; returns (floor, its F1, F1 with no gate)."""

    def micro_f1(found: np.ndarray) -> float:
        tp = (found & gold).sum()
        return float(2 * tp / max(2 * tp + (found & ~gold).sum() + (~found & gold).sum(), 1))

    by_head = scores >= thresholds
    f1 = {float(t): micro_f1((by_head & (probability >= t)[:, None]) | cued) for t in GATE_GRID}
    best = max(f1, key=lambda t: (round(f1[t], 6), t))
    return best, f1[best], micro_f1(by_head | cued)


def fit_gates(
    model: SentimentModel,
    config: Any,
    rows: pd.DataFrame,
    scores: np.ndarray,
    cued: np.ndarray,
    gold: np.ndarray,
    langs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """For each language of `config.gate_langs` (those in `langs`, when given): fit a document
    gate on the gate training rows and choose its floor on the calibration (dev) rows `rows`;
    set `model.topic_tagger.gates` (languages outside `langs` keep theirs; without `langs`,
    a language not in `gate_langs` loses its gate)."""
    from cxnlp.topics.tagger import TopicGate

    tagger = model.topic_tagger
    report: dict[str, Any] = {}
    gates = {
        lang: gate for lang, gate in tagger.gates.items() if langs is not None and lang not in langs
    }
    for lang in config.gate_langs:
        if langs is not None and lang not in langs:
            continue
        train = gate_training_rows(
            config.team_sets,
            config.negative_datasets,
            config.data_dir,
            lang,
            config.gate_negatives_per_dataset,
            config.seed,
        )
        mask = (rows["lang"] == lang).to_numpy()
        texts = train["text"].tolist() + rows["text"][mask].tolist()
        _, features = model.predict_proba_and_features(texts, [lang] * len(texts))
        features = np.asarray(features, dtype=np.float64)[:, : tagger.n_features]
        weights, bias = fit_gate_weights(
            features[: len(train)], train["has_topic"].to_numpy(bool), config.gate_c
        )
        gate = TopicGate(weights, bias, 0.5)
        probability = gate.probability(features[len(train) :])
        gate.floor, f1, ungated = choose_gate_floor(
            probability, scores[mask], cued[mask], gold[mask], tagger.thresholds_for(lang)
        )
        gates[lang] = gate
        report[lang] = {
            "train_rows": len(train),
            "train_with_topic": int(train["has_topic"].sum()),
            "dev_rows": int(mask.sum()),
            "floor": gate.floor,
            "dev_micro_f1": round(f1, 4),
            "dev_micro_f1_ungated": round(ungated, 4),
        }
    tagger.gates = gates
    return report


def predict_options(model: SentimentModel) -> AspectOptions:
    """A copy of the options `model.predict` reads texts with."""
    return copy.copy(getattr(model, "aspect_options", None) or AspectOptions())


def _langs(langs: Sequence[str] | None) -> list[str]:
    """`langs` checked against LANGS (all of them when None)."""
    if langs is None:
        return list(LANGS)
    unknown = sorted(set(langs) - set(LANGS))
    if unknown:
        raise ValueError(f"unknown language(s) {unknown}; calibrate some of {list(LANGS)}")
    return [lang for lang in LANGS if lang in langs]


def config_calibration_rows(model: SentimentModel, config: Any) -> pd.DataFrame:
    """The calibration rows (`calibration_rows`) a TopicConfig names, for a model with a topic
    head."""
    if model.topic_tagger is None:
        raise ValueError("this model has no topic head to calibrate")
    return calibration_rows(
        config.calibration_sets,
        config.negative_datasets,
        config.data_dir,
        config.calibration_negatives_per_dataset,
        config.seed,
    )


def calibration_inputs(
    model: SentimentModel, config: Any
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """The calibration (dev) rows of `config`, each topic's candidate score and cue flag on them
    (`candidate_scores`) and the gold topics, (rows, topics) booleans."""
    rows = config_calibration_rows(model, config)
    logger.info("scoring topics on %d calibration (dev) texts", len(rows))
    scores, cued = candidate_scores(model, rows, predict_options(model))
    names = list(model.topic_tagger.topics)
    gold = np.array([[name in topics for name in names] for topics in rows["topics"]], bool)
    return rows, scores, cued, gold


def fit_gates_only(model: SentimentModel, config: Any) -> dict[str, Any]:
    """Fit the document gates of `config.gate_langs` for the head's current thresholds (floors
    chosen on the calibration rows, as `recalibrate_topics` does) and record them in the head's
    info; the thresholds and the weights are not touched."""
    rows, scores, cued, gold = calibration_inputs(model, config)
    tagger = model.topic_tagger
    gates = fit_gates(model, config, rows, scores, cued, gold)
    tagger.info = {
        **tagger.info,
        "gate_fitting": {
            "calibration_sets": list(config.calibration_sets),
            "negative_datasets": config.negative_datasets,
            "calibration_negatives_per_dataset": config.calibration_negatives_per_dataset,
            "team_sets": list(config.team_sets),
            "gate_c": config.gate_c,
            "gate_negatives_per_dataset": config.gate_negatives_per_dataset,
            "seed": config.seed,
            "fitted": gates,
        },
    }
    return {"thresholds": {}, "rows": {}, "gates": gates}


def _polarity_record(config: Any, rows: pd.DataFrame, report: dict[str, Any]) -> dict[str, Any]:
    return {
        "calibration_sets": list(config.calibration_sets),
        "negative_datasets": config.negative_datasets,
        "negatives_per_dataset": config.calibration_negatives_per_dataset,
        "rows": {lang: int((rows["lang"] == lang).sum()) for lang in report},
        "min_gain": config.polarity_min_gain,
        "min_pairs": config.polarity_min_pairs,
        "chosen": {lang: r["weight"] for lang, r in report.items()},
    }


def fit_polarity_only(
    model: SentimentModel, config: Any, langs: Sequence[str] | None = None
) -> dict[str, Any]:
    """Choose the per-language polarity weights (`fit_polarity_weights`) of `langs` (all by
    default) on the calibration rows with the head's current thresholds and gates, and record
    them in the head's info; nothing else is touched."""
    langs = _langs(langs)
    rows = config_calibration_rows(model, config)
    langs = [lang for lang in langs if (rows["lang"] == lang).any()]
    report = fit_polarity_weights(
        model,
        rows,
        predict_options(model),
        langs,
        config.polarity_min_gain,
        config.polarity_min_pairs,
    )
    tagger = model.topic_tagger
    tagger.info = {**tagger.info, "polarity_fitting": _polarity_record(config, rows, report)}
    return {"thresholds": {}, "rows": {}, "polarity": report}


def recalibrate_topics(
    model: SentimentModel,
    config: Any,
    langs: Sequence[str] | None = None,
    *,
    gates: bool = True,
) -> dict[str, Any]:
    """Set `model.topic_tagger.thresholds_by_lang`, the document gates of `config.gate_langs`
    (`gates=False` keeps the gates as they are) and the per-language polarity weights from the
    calibration rows of `config` (a TopicConfig), for `langs` (all by default; other languages
    keep theirs), and report what was chosen on what. The calibration rows are encoded once for
    all three steps."""
    every = langs is None
    langs = _langs(langs)
    tagger = model.topic_tagger
    with read_once(model):
        rows, scores, cued, gold = calibration_inputs(model, config)
        names = list(tagger.topics)
        chosen: dict[str, np.ndarray] = {} if every else dict(tagger.thresholds_by_lang)
        report: dict[str, Any] = {"rows": {}, "thresholds": {}}
        for lang in langs:
            mask = (rows["lang"] == lang).to_numpy()
            if not mask.any():
                continue
            thresholds, notes = choose_thresholds(
                scores[mask],
                cued[mask],
                gold[mask],
                tagger.thresholds_,
                config.calibration_min_positives,
            )
            chosen[lang] = thresholds
            report["rows"][lang] = int(mask.sum())
            report["thresholds"][lang] = {
                names[int(col)]: {"threshold": float(thresholds[int(col)]), **note}
                for col, note in notes.items()
            }
        tagger.thresholds_by_lang = chosen
        if gates and getattr(config, "gate_langs", None):
            report["gates"] = fit_gates(
                model, config, rows, scores, cued, gold, None if every else langs
            )
        elif gates and every:
            tagger.gates = {}
        report["polarity"] = fit_polarity_weights(
            model,
            rows,
            predict_options(model),
            list(report["rows"]),
            config.polarity_min_gain,
            config.polarity_min_pairs,
        )
    # A run for some languages keeps the record of the others' earlier run (their rows).
    earlier = {} if every else tagger.info.get("recalibration", {}).get("rows", {})
    tagger.info = {
        **tagger.info,
        "recalibration": {
            "calibration_sets": list(config.calibration_sets),
            "negative_datasets": config.negative_datasets,
            "negatives_per_dataset": config.calibration_negatives_per_dataset,
            "min_positives": config.calibration_min_positives,
            "langs": list(report["rows"]),
            "rows": {**earlier, **report["rows"]},
            **(
                {
                    "gates": report["gates"],
                    "gate_c": config.gate_c,
                    "gate_negatives_per_dataset": config.gate_negatives_per_dataset,
                }
                if "gates" in report
                else {}
            ),
            "polarity": _polarity_record(config, rows, report["polarity"]),
        },
    }
    return report


def format_recalibration(report: dict[str, Any]) -> str:
    lines = []
    for lang, topics in report["thresholds"].items():
        cells = ", ".join(
            f"{name} {t['threshold']:.2f}" + (f" (F1 {t['f1']:.2f})" if "f1" in t else "")
            for name, t in topics.items()
            if name in TOPICS
        )
        lines.append(f"{lang} ({report['rows'][lang]} dev texts): {cells}")
    for lang, gate in report.get("gates", {}).items():
        lines.append(
            f"{lang} gate: floor {gate['floor']:.2f}, dev micro-F1 {gate['dev_micro_f1_ungated']:.3f}"
            f" -> {gate['dev_micro_f1']:.3f} ({gate['train_rows']} training texts)"
        )
    for lang, fitted in report.get("polarity", {}).items():
        cells = ", ".join(f"{w} {a:.3f}" for w, a in fitted["accuracy"].items())
        lines.append(
            f"{lang} polarity weight {fitted['weight']} ({fitted['pairs']} dev topics; "
            f"accuracy by weight: {cells})"
        )
    return "\n".join(lines)


def save_report(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
