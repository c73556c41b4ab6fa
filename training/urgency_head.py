"""Training a model's learned urgency head (`cxnlp.models.urgency.UrgencyHead`):
`cxnlp train-urgency --model DIR`.

Rows (`gather_urgency_rows`): the hand-labeled urgency sets that are tuning sets,
`training/eval/urgency_<lang>.jsonl`, `urgency_heldout_<lang>.jsonl` (about 230-240 texts per
language), `urgency_heldout2_<lang>.jsonl` (150-180, the first head's test, spent),
`urgency_heldout3_<lang>.jsonl` (150-180, the cue lists' and the first head's second test, spent)
and the training set `urgency_train4_<lang>.jsonl` (200-260, drawn for the head, weighted to urgent
texts). The untouched test sets (`UNTOUCHED_FILES`: `urgency_heldout4_<lang>.jsonl`, drawn beside
train4 from the other md5 half) are refused, and so is any row whose text (by
`text_key`) they hold.

Cue signals: the shipped cue lists were tuned on these very rows (they find 97-100% of their
urgent texts and nothing else), so a head fitted on their flags would learn "a cue matched =
urgent" and nothing about the texts cues miss, and its cross-validated figures would say nothing
of unseen text. Each set's rows are therefore read with the cue list **as it was when that set was
drawn**, before any cue was tuned on it (`training/eval/urgency_cues_asof/<set>.yaml`, copies of
`cxnlp/data/urgency_cues.yaml` at commits de7332f and 35bcb89 for the tuning and first held-out
sets, b1b539a for heldout2, 4d05982 for heldout3 and train4): the first two found 42% / 62% / 41%
of the urgent texts (fa / ar / en) at precision 0.73 / 0.85 / 0.95, about as a cue list does on
text it was not written against. At prediction time the head reads the shipped list's flags.
(`cues="current"` fits on the shipped list instead; its figures are then optimistic.)

Model signals (`training.linear_head.read_signals`, shared with the `mixed` head): one recorded
pipeline pass, cached numpy-only in `<cache>/urgency/<fingerprint>.npz`.

Fit (`fit_urgency_head`): one logistic regression for every language (the language one-hot among
its signals), each (language, urgent) group weighted alike, on the signals and the first
`components` principal components of the standardised features (`training.linear_head.Projection`;
the projection is folded back into weights on the features, so the stored head is a plain
`LinearHead`). The number of components and the L2 strength C are the pair of `components` x
`strengths` with the best mean over languages of the average precision of out-of-fold
probabilities (`folds`-fold cross-validation stratified by language and label, repeated `repeats`
times, each row's probability the mean over repeats; every fit standardises and projects on its
own rows). On the shipped model: 32 components, C 0.03, mean AP 0.806 (fa 0.672, ar 0.876, en
0.870); every feature without a projection did worse (0.768 at its best C), and so did one head
per language (`compare_per_lang`: 0.803 at its best, fa better, ar and en worse), so per-language
heads are not offered.

Decision per language, on the out-of-fold probabilities: the cues always count (`or_rule`: the
shipped lists stay the baseline the head adds to); the head's threshold is the one with the
highest recall of "head OR as-of cues" at precision >= `min_precision` (0.85: a margin over the
issue's 0.8 for the optimism of choosing on the same out-of-fold rows;
`training.linear_head.choose_threshold`). The language is covered only when that choice meets the
floor and finds more urgent texts than the as-of cues alone; otherwise the head stays silent there
and the cues decide. The report gives, per language, the as-of cues alone, head OR cues at the
threshold, what the head adds (the texts it flags that no cue matched, and how many are urgent),
and the head alone. The final head is refitted on every row with the chosen pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxnlp.labels import LANGS
from cxnlp.modeldir import URGENCY_DIR
from cxnlp.models.linear_head import sigmoid
from cxnlp.models.urgency import UrgencyHead, urgency_signal_names, urgency_signals
from cxnlp.text.clean import text_key
from cxnlp.text.urgency import UrgencyRules, find_cues, load_urgency_rules
from training.data import read_jsonl
from training.linear_head import (
    Progress,
    Projection,
    SignalTable,
    balanced_weights,
    choose_threshold,
    fit_reduced,
    precision_recall,
    train_head,
)

EVAL_DIR = Path(__file__).resolve().parent / "eval"
# The urgency sets the head may be fitted on, and the file of each (per language).
SET_FILES: dict[str, str] = {
    "tuning": "urgency_{lang}.jsonl",
    "heldout": "urgency_heldout_{lang}.jsonl",
    # The test of the first head; spent, read with its as-of list (urgency_cues_asof/heldout2.yaml).
    "heldout2": "urgency_heldout2_{lang}.jsonl",
    # The second test of the cues and the first head; spent (urgency_cues_asof/heldout3.yaml).
    "heldout3": "urgency_heldout3_{lang}.jsonl",
    # Drawn and labeled for the head (urgency_cues_asof/train4.yaml: the list at its draw).
    "train4": "urgency_train4_{lang}.jsonl",
}
# Never read for fitting: the untouched tests of the head (heldout4: of the next head and cue lists,
# drawn beside train4, from the other md5 half; see training/eval/README.md).
UNTOUCHED_FILES: tuple[str, ...] = ("urgency_heldout4_{lang}.jsonl",)
ASOF_DIR = "urgency_cues_asof"
CUE_MODES = ("asof", "current")


@dataclass
class UrgencyConfig:
    """What `train_urgency` reads and how it fits (see the module docstring)."""

    eval_dir: str = str(EVAL_DIR)
    langs: tuple[str, ...] = LANGS
    sets: tuple[str, ...] = tuple(SET_FILES)
    cues: str = "asof"
    folds: int = 5
    repeats: int = 3
    min_precision: float = 0.85
    seed: int = 0
    batch_size: int = 32
    components: tuple[int, ...] = (8, 16, 32, 64)
    strengths: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
    compare_per_lang: bool = False


# --- rows ------------------------------------------------------------------------------------


def untouched_keys(eval_dir: str | Path, langs: Sequence[str] = LANGS) -> set[str]:
    """`text_key` of every text of the untouched urgency test sets under `eval_dir`."""
    keys: set[str] = set()
    for pattern in UNTOUCHED_FILES:
        for lang in langs:
            path = Path(eval_dir) / pattern.format(lang=lang)
            if path.is_file():
                keys |= {text_key(r["text"]) for r in read_jsonl(path)}
    return keys


def gather_urgency_rows(config: UrgencyConfig) -> pd.DataFrame:
    """The rows the head is fitted on: id, text, lang, set, urgent (bool)."""
    unknown = [s for s in config.sets if s not in SET_FILES]
    if unknown:
        raise ValueError(
            f"the urgency head is fitted on the sets {list(SET_FILES)} only; got {unknown} "
            f"(the untouched tests: {', '.join(UNTOUCHED_FILES) or 'none'})"
        )
    rows = []
    for name in config.sets:
        for lang in config.langs:
            path = Path(config.eval_dir) / SET_FILES[name].format(lang=lang)
            for record in read_jsonl(path):
                if not isinstance(record.get("urgent"), bool):
                    raise ValueError(f"{path}: {record.get('id')}: `urgent` must be true or false")
                rows.append(
                    {"id": record.get("id"), "text": record["text"], "lang": lang, "set": name,
                     "urgent": record["urgent"]}
                )  # fmt: skip
    frame = pd.DataFrame(rows, columns=["id", "text", "lang", "set", "urgent"])
    check_untouched(frame, untouched_keys(config.eval_dir))
    return frame


def check_untouched(rows: pd.DataFrame, untouched: set[str]) -> None:
    """Refuse rows whose text an untouched test set holds."""
    leaked = rows["text"].map(text_key).isin(untouched)
    if leaked.any():
        raise ValueError(
            f"{int(leaked.sum())} urgency training row(s) are texts of an untouched test set "
            f"({', '.join(UNTOUCHED_FILES)})"
        )


def cue_rules(set_name: str, config: UrgencyConfig) -> UrgencyRules:
    """The cue list a set's rows are read with: as of the set's draw, or the shipped one."""
    if config.cues not in CUE_MODES:
        raise ValueError(f"cues must be one of {CUE_MODES}, got {config.cues!r}")
    if config.cues == "current":
        return load_urgency_rules()
    return load_urgency_rules(str(Path(config.eval_dir) / ASOF_DIR / f"{set_name}.yaml"))


def cue_matches(rows: pd.DataFrame, config: UrgencyConfig) -> list[list[dict[str, Any]]]:
    """Each row's cue matches under its set's cue list (`cue_rules`)."""
    return [
        find_cues(text, lang, cue_rules(name, config))
        for text, lang, name in zip(rows["text"], rows["lang"], rows["set"], strict=True)
    ]


def urgency_inputs(
    table: SignalTable, matches: Sequence[Sequence[dict[str, Any]]]
) -> tuple[np.ndarray, np.ndarray]:
    """The head's input rows as (signals, features): `urgency_signals` of each row, and the
    document's features."""
    signals = np.vstack(
        [urgency_signals(s, m) for s, m in zip(table.signals, matches, strict=True)]
    ).reshape(len(matches), len(urgency_signal_names()))
    return signals, table.features.astype(np.float64)


# --- fit -------------------------------------------------------------------------------------

Grid = tuple[int, float]  # (feature components, C)


def out_of_fold(
    signals: np.ndarray,
    features: np.ndarray,
    gold: np.ndarray,
    langs: np.ndarray,
    config: UrgencyConfig,
    per_lang: bool = False,
) -> dict[Grid, np.ndarray]:
    """For each (components, C) of the config's grid, each row's probability from the fits that
    did not see it: `config.folds`-fold CV stratified by (language, label), repeated
    `config.repeats` times, averaged. Each fit standardises, projects the features
    (`training.linear_head.Projection`) and fits on its own rows only. `per_lang`: one regression
    per language instead of one for all."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    strata = np.array([f"{lang}:{int(g)}" for lang, g in zip(langs, gold, strict=True)])
    splitter = RepeatedStratifiedKFold(
        n_splits=config.folds, n_repeats=config.repeats, random_state=config.seed
    )
    grid = [(k, c) for k in config.components for c in config.strengths]
    totals = {cell: np.zeros(len(gold)) for cell in grid}
    seen = np.zeros(len(gold))
    groups = [langs == lang for lang in _ordered(langs)] if per_lang else [np.ones(len(gold), bool)]
    for fit_at, score_at in splitter.split(signals, strata):
        for group in groups:
            fit, score = fit_at[group[fit_at]], score_at[group[score_at]]
            weights = balanced_weights(langs[fit], gold[fit])
            widest = Projection.of(features[fit], max(config.components))
            for k, strength in grid:
                mean, scale, coef, bias = fit_reduced(
                    signals[fit], features[fit], gold[fit], weights, strength, widest.first(k)
                )
                x = np.hstack([signals[score], features[score]])
                totals[(k, strength)][score] += sigmoid(((x - mean) / scale) @ coef + bias)
            seen[score] += 1
    return {cell: total / np.maximum(seen, 1) for cell, total in totals.items()}


def _average_precision(scores: np.ndarray, gold: np.ndarray, langs: np.ndarray) -> dict[str, float]:
    """Average precision per language and their mean."""
    from sklearn.metrics import average_precision_score

    per_lang = {
        lang: float(average_precision_score(gold[langs == lang], scores[langs == lang]))
        for lang in _ordered(langs)
    }
    return {"mean": float(np.mean(list(per_lang.values()))), **per_lang}


def _ordered(langs: Sequence[str] | np.ndarray) -> list[str]:
    """The languages present, in `LANGS` order, others after."""
    return sorted(
        set(langs), key=lambda lang: (lang not in LANGS, lang in LANGS and LANGS.index(lang), lang)
    )


def _rounded(result: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}


def _cell(cell: Grid) -> str:
    return f"components {cell[0]}, C {cell[1]:g}"


def fit_urgency_head(
    table: SignalTable,
    rows: pd.DataFrame,
    config: UrgencyConfig,
    progress: Progress | None = None,
) -> tuple[UrgencyHead, dict[str, Any]]:
    """The head and the report (see the module docstring): components and C by cross-validation,
    each language's threshold and coverage on the out-of-fold probabilities, refitted on every
    row."""
    check_untouched(rows, untouched_keys(config.eval_dir))
    rows = rows.reset_index(drop=True)
    gold = rows["urgent"].to_numpy(bool)
    langs = rows["lang"].to_numpy(str)
    for lang in _ordered(langs):
        own = gold[langs == lang]
        if min(int(own.sum()), int((~own).sum())) < config.folds:
            raise ValueError(
                f"too few rows to fit the urgency head in {lang}: {int(own.sum())} urgent and "
                f"{int((~own).sum())} other (at least {config.folds} of each)"
            )
    matches = cue_matches(rows, config)
    cued = np.array([bool(m) for m in matches])
    signals, features = urgency_inputs(table, matches)
    found = out_of_fold(signals, features, gold, langs, config)
    by_grid = {_cell(cell): _average_precision(p, gold, langs) for cell, p in found.items()}
    # The best mean average precision; ties: fewer components, then the smaller C.
    best = max(found, key=lambda cell: (round(by_grid[_cell(cell)]["mean"], 9), -cell[0], -cell[1]))
    best_scores = found[best]
    if progress is not None:
        for cell in found:
            progress(f"{_cell(cell)}: mean AP {by_grid[_cell(cell)]['mean']:.3f} (out of fold)")
    per_lang_heads = None
    if config.compare_per_lang:
        separate = out_of_fold(signals, features, gold, langs, config, per_lang=True)
        per_lang_heads = {
            _cell(cell): {k: round(v, 4) for k, v in _average_precision(p, gold, langs).items()}
            for cell, p in separate.items()
        }

    components, strength = best
    mean, scale, coef, bias = fit_reduced(
        signals, features, gold, balanced_weights(langs, gold), strength,
        Projection.of(features, components),
    )  # fmt: skip
    n_features = features.shape[1]
    head = UrgencyHead(n_features, mean, scale, coef, bias)
    current = np.array(
        [bool(find_cues(t, lang)) for t, lang in zip(rows["text"], rows["lang"], strict=True)]
    )
    report_langs: dict[str, Any] = {}
    for lang in _ordered(langs):
        at = langs == lang
        cues_alone = {**precision_recall(cued[at], gold[at])}
        cues_alone["meets"] = cues_alone["precision"] >= config.min_precision
        with_cues = choose_threshold(best_scores[at], gold[at], config.min_precision, cued[at])
        alone = choose_threshold(best_scores[at], gold[at], config.min_precision)
        covered = bool(with_cues["meets"] and with_cues["recall"] > cues_alone["recall"])
        # What the head adds at that threshold: the texts it flags that no cue matched.
        added = (best_scores[at] >= with_cues["threshold"]) & ~cued[at]
        if covered:
            head.thresholds[lang] = with_cues["threshold"]
            head.or_rule[lang] = True
        report_langs[lang] = {
            "rows": int(at.sum()),
            "urgent": int(gold[at].sum()),
            "average_precision": round(by_grid[_cell(best)][lang], 4),
            "cues": _rounded(cues_alone),
            "cues_current": _rounded(precision_recall(current[at], gold[at])),
            "head_or_cues": _rounded(with_cues),
            "head_alone": _rounded(alone),
            "added": {
                "flagged": int(added.sum()),
                "urgent": int((added & gold[at]).sum()),
                "precision": round(float(gold[at][added].mean()), 4) if added.any() else None,
            },
            "covered": covered,
            "note": None
            if covered
            else (
                f"no threshold keeps head OR cues at precision >= {config.min_precision} with "
                "more recall than the cues alone: the cues decide"
            ),
        }
    report = {
        "rows": {
            lang: {
                name: int(((langs == lang) & (rows["set"] == name)).sum()) for name in config.sets
            }
            for lang in _ordered(langs)
        },
        "cues": config.cues,
        "components": components,
        "C": strength,
        "mean_ap": round(by_grid[_cell(best)]["mean"], 4),
        "by_grid": {cell: {k: round(v, 4) for k, v in ap.items()} for cell, ap in by_grid.items()},
        "per_language_heads": per_lang_heads,
        "n_features": n_features,
        "min_precision": config.min_precision,
        "cv": report_langs,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
    }
    head.info = {
        "training": {
            "components": components,
            "C": strength,
            "cues": config.cues,
            "rows": {lang: int((langs == lang).sum()) for lang in _ordered(langs)},
            "sets": list(config.sets),
            "min_precision": config.min_precision,
        }
    }
    return head, report


# --- the verb --------------------------------------------------------------------------------


def train_urgency(
    model: str | Path = "default",
    config: UrgencyConfig | None = None,
    *,
    out: str | Path | None = None,
    cache_dir: str | Path | None = None,
    fresh: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Gather the rows, read their signals (cached), fit the head, choose its thresholds, and
    save it as `urgency/` in the model directory (or in a copy of the model at `out`), with the
    report as `urgency/metrics.json` (`training.linear_head.train_head`). Returns the report."""
    config = config or UrgencyConfig()
    return train_head(
        model,
        URGENCY_DIR,
        lambda: gather_urgency_rows(config),
        lambda table, rows: fit_urgency_head(table, rows, config, progress),
        out=out,
        cache_dir=cache_dir,
        fresh=fresh,
        batch_size=config.batch_size,
        progress=progress,
    )


def format_urgency_report(report: dict[str, Any]) -> str:
    """The report as the lines `cxnlp train-urgency` prints."""
    lines = [f"urgency head for {report['model']} -> {report['saved']}"]
    for lang, sets in report["rows"].items():
        lines.append(f"rows {lang}: " + ", ".join(f"{name} {n}" for name, n in sets.items()))
    cue_label = "as-of cues" if report["cues"] == "asof" else "cues"
    lines.append(
        f"out-of-fold, {report['config']['folds']}-fold x {report['config']['repeats']}, "
        f"precision floor {report['min_precision']}:"
    )
    lines.append(
        f"{'lang':<5}{'AP':>6}  {cue_label + ' P/R':>15}  {'head OR cues P/R':>16}  "
        f"{'threshold':>9}  {'added':>11}  {'head alone P/R':>14}  covered"
    )
    for lang, entry in report["cv"].items():
        cues = entry["cues"]
        either, alone = entry["head_or_cues"], entry["head_alone"]
        # Below the floor the threshold is the best F1's, which the head does not use.
        mark = "" if either["meets"] else "*"
        lines.append(
            f"{lang:<5}{entry['average_precision']:>6.3f}  "
            f"{cues['precision']:>7.3f}/{cues['recall']:.3f}  "
            f"{either['precision']:>7.3f}/{either['recall']:.3f}{mark:1}  "
            f"{either['threshold']:>9.4f}  "
            f"{entry['added']['urgent']:>4}/{entry['added']['flagged']:<4}   "
            f"{alone['precision']:>6.3f}/{alone['recall']:.3f}  "
            f"{'yes' if entry['covered'] else 'no: the cues decide'}"
        )
    if any(not e["head_or_cues"]["meets"] for e in report["cv"].values()):
        lines.append(
            f"(* no threshold reaches precision {report['min_precision']}: the best F1 shown)"
        )
    if report["cues"] == "asof":
        current = ", ".join(
            f"{lang} {e['cues_current']['precision']:.3f}/{e['cues_current']['recall']:.3f}"
            for lang, e in report["cv"].items()
        )
        lines.append(
            "(added: urgent / flagged texts the head adds to the cues at its threshold; the "
            f"shipped cues on these rows, which they were tuned on: {current})"
        )
    signals = report["signals"]
    seconds = report["seconds"]
    lines.append(
        f"{report['components']} components of {report['n_features']} features, C {report['C']:g} "
        f"(mean AP {report['mean_ap']:.3f}); "
        f"signals {signals['computed']} read, {signals['cached']} cached ({signals['cache']})"
    )
    if report.get("per_language_heads"):
        best = max(report["per_language_heads"].items(), key=lambda item: item[1]["mean"])
        lines.append(f"per-language heads: best mean AP {best[1]['mean']:.3f} ({best[0]})")
    lines.append(
        f"seconds: rows {seconds['rows']}, signals {seconds['signals']}, fit {seconds['fit']}, "
        f"total {seconds['total']}"
    )
    return "\n".join(lines)
