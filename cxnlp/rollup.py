"""Rollups of a classified export: what a CX team reads from `cxnlp classify`'s output.

`summarize()` turns the classified rows into one JSON-serialisable dict: sentiment counts and shares
with Wilson intervals, net sentiment and the positive:negative ratio, overall and per language,
group column and period; prevalence-corrected shares beside the raw ones; topics ranked by volume
and by negative share; NPS / CSAT / CES with the topics over-represented among detractors; and
alerts comparing the last period with the one before. `cxnlp.report_html` renders the dict.

Why corrected shares: a classifier's raw shares (classify-and-count) are biased whenever the class
mix differs from the data it was tuned on, e.g. a model that calls 10% of negatives neutral
under-counts negatives most in the weeks that have the most. Two corrections are given: the mean
of the calibrated probabilities (PCC), and, from the model's dev confusion matrix, adjusted
classify-and-count (ACC). A model's confusion on its own dev data is not its confusion on a
company's channel; given a sample of the company's texts labeled by hand (`labeled`), ACC uses
that sample's confusion instead, and probabilistic ACC (PACC) its mean probabilities per true
label, and the sample's accuracy and macro-F1 are reported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxnlp.evaluation import macro_f1_from_confusion
from cxnlp.labels import SENTIMENTS
from cxnlp.scores import SCORE_KINDS, score_drivers, score_summary, scores_from
from cxnlp.stats import (
    P_ADJUST_METHODS,
    adjust_p_values,
    adjusted_shares,
    normalise_confusion,
    two_proportion_test,
)
from cxnlp.stats import wilson_interval as _wilson
from cxnlp.topic_stats import mentions_table, topic_rows, topic_summary

logger = logging.getLogger(__name__)

CONFUSION_FILE = "dev_confusion.json"
# pandas period codes; a week runs Monday to Sunday.
PERIODS = {"day": "D", "week": "W", "month": "M", "quarter": "Q", "year": "Y"}
BASELINES = ("previous", "all")
REQUIRED_COLUMNS = ("sentiment", "p_negative", "p_neutral", "p_positive", "error")
MISSING_GROUP = "(missing)"
METHODS = {
    "raw": "classify-and-count: the share of classified rows whose predicted sentiment is the "
    "label, with a Wilson interval; biased when the class mix differs from the model's "
    "training data",
    "pcc": "probabilistic classify-and-count: the mean of the p_negative / p_neutral / p_positive "
    "columns (calibrated probabilities)",
    "acc": "adjusted classify-and-count: the true shares that best explain the raw shares through "
    "the model's dev confusion matrix (per language where the model has one)",
}
LABELED_METHODS = {
    "acc": "adjusted classify-and-count: the true shares that best explain the raw shares through "
    "the confusion matrix of the hand-labeled sample (per language where the sample has at least "
    "{min_rows} labeled rows of it); a label absent from the sample's gold gets share 0",
    "pacc": "probabilistic adjusted classify-and-count: the true shares that best explain the PCC "
    "shares through the mean probabilities of the hand-labeled sample's texts of each true label",
}
MIN_LABELED_ROWS = 30
_P_COLUMNS = [f"p_{label}" for label in SENTIMENTS]


def load_confusion(model_dir: str | Path) -> dict[str, list[list[float]]] | None:
    """The dev confusion matrices a model directory carries in `dev_confusion.json`, or None.

    The file maps "*" (all languages) and language codes to 3x3 counts, rows = true label,
    columns = predicted, in `cxnlp.labels.SENTIMENTS` order; a "labels" entry may give another
    order, and a value may also be {"labels": [...], "matrix": [...]}.
    """
    path = Path(model_dir) / CONFUSION_FILE
    if not path.exists():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object mapping '*' and languages to 3x3 matrices")
    default_labels = raw.get("labels", list(SENTIMENTS))
    matrices = {}
    for key, value in raw.items():
        if key == "labels":
            continue
        labels = default_labels
        if isinstance(value, dict):
            labels, value = value.get("labels", default_labels), value.get("matrix")
        if sorted(labels) != sorted(SENTIMENTS):
            raise ValueError(f"{path}: labels {labels} are not the three sentiments {SENTIMENTS}")
        order = [list(labels).index(s) for s in SENTIMENTS]
        matrix = np.asarray(value, dtype=np.float64)
        if matrix.shape != (3, 3):
            raise ValueError(f"{path}: entry {key!r} is not a 3x3 matrix (shape {matrix.shape})")
        matrices[key] = matrix[np.ix_(order, order)].tolist()
    return matrices


def labeled_confusions(
    frame: pd.DataFrame, gold_col: str, min_rows: int = MIN_LABELED_ROWS
) -> dict[str, Any]:
    """Confusion matrices of the model on a hand-labeled sample: rows of `cxnlp classify` output
    whose `gold_col` holds one of the three sentiments (any case); other rows are not part of it.

    Returns {"hard": {key: counts}, "soft": {key: summed probabilities}, "quality": {key: {n,
    accuracy, macro_f1, gold_shares}}, "n": labeled rows, "unknown_labels": {value: count}}, with
    keys "*" and each language with at least `min_rows` labeled rows; rows = true label and
    columns = predicted, in `SENTIMENTS` order. Raises ValueError without `min_rows` usable rows.
    """
    if gold_col not in frame.columns:
        raise ValueError(f"no gold label column {gold_col!r}; the table has {list(frame.columns)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the labeled sample lacks {missing}: it must be `cxnlp classify` output (classify the "
            "hand-labeled rows with the same model first)"
        )
    data = _prepare(frame)
    gold = frame[gold_col].reset_index(drop=True).astype("string").str.strip().str.lower()
    known = gold.isin(SENTIMENTS).fillna(False)
    unknown = gold[~known & gold.notna() & (gold != "")].value_counts().head(10)
    rows = data[known & data["_ok"]].assign(_gold=gold[known & data["_ok"]])
    if len(rows) < min_rows:
        raise ValueError(
            f"{len(rows)} classified rows have a sentiment in {gold_col!r}; a labeled sample "
            f"needs at least {min_rows} (values must be one of {list(SENTIMENTS)})"
        )
    parts = {"*": rows}
    if "lang" in rows.columns:
        parts.update(
            (str(lang), part)
            for lang, part in rows.groupby("lang", sort=True)
            if len(part) >= min_rows and lang != MISSING_GROUP
        )
    index = {label: i for i, label in enumerate(SENTIMENTS)}
    hard, soft, quality = {}, {}, {}
    for key, part in parts.items():
        truth = part["_gold"].map(index).to_numpy()
        predicted = part["_sentiment"].map(index).to_numpy()
        probabilities = part[[f"_p_{label}" for label in SENTIMENTS]].to_numpy()
        counts, sums = np.zeros((3, 3)), np.zeros((3, 3))
        np.add.at(counts, (truth, predicted), 1)
        np.add.at(sums, truth, probabilities)
        hard[key], soft[key] = counts.tolist(), sums.tolist()
        quality[key] = {
            "n": len(part),
            "accuracy": float((truth == predicted).mean()),
            "macro_f1": macro_f1_from_confusion(counts),
            "gold_shares": dict(zip(SENTIMENTS, (counts.sum(1) / len(part)).tolist(), strict=True)),
        }
    return {
        "hard": hard,
        "soft": soft,
        "quality": quality,
        "n": len(rows),
        "unknown_labels": {str(k): int(v) for k, v in unknown.items()},
    }


def summarize(
    frame: pd.DataFrame,
    *,
    group_by: Sequence[str] = (),
    date_col: str | None = None,
    period: str | None = None,
    score_col: str | None = None,
    score_kind: str | None = None,
    confusion: dict[str, list[list[float]]] | None = None,
    labeled: pd.DataFrame | None = None,
    gold_col: str = "label",
    alpha: float = 0.05,
    baseline: str = "previous",
    p_adjust: str = "holm",
    text_col: str = "text",
    confidence: float = 0.95,
    max_groups: int = 50,
    min_mentions: int = 5,
    examples: int = 3,
) -> dict[str, Any]:
    """Summarise the output of `cxnlp classify` into a JSON-serialisable dict.

    Rows with `error` set count as errors and stay out of every share. `period` (day, week, month,
    quarter, year; default week) needs `date_col`; `score_kind` (nps, csat, ces) goes with
    `score_col`; `confusion` (see `load_confusion`) adds ACC shares. `labeled` (classified rows
    with a hand-given sentiment in `gold_col`; it may be `frame` itself, whose other rows then have
    it empty) replaces `confusion` with the sample's own (see `labeled_confusions`) and adds PACC
    shares and the model's scores on the sample. Alerts test whether the
    negative share or a topic's share rose from the `baseline` ("previous" period or "all" earlier
    ones) to the last period, at level `alpha`, with p-values adjusted by `p_adjust` (a key of
    `cxnlp.stats.P_ADJUST_METHODS`: "holm", "benjamini-hochberg", ...).

    >>> frame = pd.DataFrame({"sentiment": ["positive", "negative", None],
    ...     "p_positive": [0.9, 0.1, None], "p_neutral": [0.05, 0.1, None],
    ...     "p_negative": [0.05, 0.8, None], "error": [None, None, "empty text"]})
    >>> s = summarize(frame)
    >>> s["classified"], s["errors"], s["overall"]["raw"]["shares"]["positive"]
    (2, 1, 0.5)
    """
    _check_arguments(frame, group_by, date_col, period, score_col, score_kind, alpha, baseline)
    if p_adjust not in P_ADJUST_METHODS:
        raise ValueError(
            f"unknown p-value adjustment {p_adjust!r}; expected one of {list(P_ADJUST_METHODS)}"
        )
    if date_col is not None and period is None:
        period = "week"
    notes: list[str] = []
    data = _prepare(frame)
    mentions, unparsable = mentions_table(data)
    sample = labeled_confusions(labeled, gold_col) if labeled is not None else None
    methods = dict(METHODS)
    if sample is None:
        rates = _confusion_rates(confusion, notes)
        soft_rates: dict[str, np.ndarray] = {}
    else:
        rates = _confusion_rates(sample["hard"], notes, allow_empty_rows=True)
        soft_rates = _confusion_rates(sample["soft"], notes, allow_empty_rows=True)
        methods.update({k: v.format(min_rows=MIN_LABELED_ROWS) for k, v in LABELED_METHODS.items()})
        notes.extend(_sample_notes(sample, gold_col))
    scores = scores_from(frame[score_col], score_kind) if score_col else None
    # Segments read only these columns; a slim copy keeps slicing fast on wide exports.
    core = ["_ok", "_sentiment", *(f"_p_{s}" for s in SENTIMENTS)]
    core += ["lang"] if "lang" in data.columns else []
    segment = _Segmenter(data[core], rates, soft_rates, scores, score_kind, confidence)

    summary: dict[str, Any] = {
        "labels": list(SENTIMENTS),
        "rows": len(data),
        "classified": int(data["_ok"].sum()),
        "errors": int((~data["_ok"]).sum()),
        "error_reasons": data.loc[~data["_ok"], "_reason"].value_counts().head(10).to_dict(),
        "settings": {
            "group_by": list(group_by),
            "date_col": date_col,
            "period": period,
            "score_col": score_col,
            "score_kind": score_kind,
            "alpha": alpha,
            "baseline": baseline,
            "p_adjust": p_adjust,
            "confidence": confidence,
            "confusion_source": "labeled sample" if sample else "model dev set",
        },
        "methods": {
            k: v
            for k, v in methods.items()
            if (k != "acc" or rates) and (k != "pacc" or soft_rates)
        },
        "overall": segment(data.index),
    }
    if sample is not None:
        summary["labeled_sample"] = {
            "gold_col": gold_col,
            "n": sample["n"],
            "unknown_labels": sample["unknown_labels"],
            "by_lang": sample["quality"],
        }
    elif confusion is None:
        notes.append("ACC omitted: no dev confusion matrix for the model (dev_confusion.json)")
    ok = data[data["_ok"]]
    if "lang" in data.columns:
        summary["by_lang"] = {
            str(lang): segment(index)
            for lang, index in _groups(ok["lang"], max_groups, notes, "lang").items()
        }
    summary["by_group"] = {
        col: {
            value: segment(index)
            for value, index in _groups(data[col], max_groups, notes, col).items()
        }
        for col in group_by
    }
    summary["topics"] = topic_summary(data, mentions, text_col, confidence, min_mentions, examples)
    summary["topics"]["unparsable_rows"] = unparsable
    if text_col in data.columns:
        summary["negative_examples"] = _negative_examples(data, text_col, examples)
    if scores is not None:
        summary["scores"] = score_summary(scores, score_kind, confidence)
        summary["scores"]["drivers"] = score_drivers(
            data, mentions, scores, score_kind, alpha, p_adjust
        )
    if date_col is not None:
        by_period, period_index = _periods(data, frame[date_col], date_col, period, notes)
        summary["by_period"] = [
            {**label, **segment(period_index[label["period"]])} for label in by_period
        ]
        summary["alerts"] = _alerts(
            data, mentions, by_period, period_index, group_by, alpha, baseline, notes, p_adjust
        )
    summary["notes"] = notes
    return clean_json(summary)


def _check_arguments(
    frame: pd.DataFrame,
    group_by: Sequence[str],
    date_col: str | None,
    period: str | None,
    score_col: str | None,
    score_kind: str | None,
    alpha: float,
    baseline: str,
) -> None:
    if isinstance(group_by, str):
        raise TypeError(f"group_by must be a list of column names, got the string {group_by!r}")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    wanted = [*group_by, *(c for c in (date_col, score_col) if c is not None)]
    missing += [c for c in wanted if c not in frame.columns]
    if missing:
        raise ValueError(
            f"missing column(s) {missing}; the table has {list(frame.columns)}. A report needs "
            f"the output of `cxnlp classify` (with {list(REQUIRED_COLUMNS)}) and the columns "
            "named by --group-by / --date-col / --score-col"
        )
    if period is not None and date_col is None:
        raise ValueError(f"period {period!r} needs a date column; pass date_col / --date-col")
    if period is not None and period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; expected one of {list(PERIODS)}")
    if (score_col is None) != (score_kind is None):
        raise ValueError("score_col and score_kind go together: pass both or neither")
    if score_kind is not None and score_kind not in SCORE_KINDS:
        raise ValueError(f"unknown score kind {score_kind!r}; expected one of {list(SCORE_KINDS)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; expected one of {list(BASELINES)}")


def _prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with `_ok`, `_reason`, `_sentiment` and `_p_<label>` columns added.

    Read back from CSV every cell is a string and a missing error is "", so both count as unset.
    """
    data = frame.reset_index(drop=True).copy()
    error = data["error"].astype("string").str.strip().fillna("")
    sentiment = data["sentiment"].astype("string").str.strip().str.lower()
    probabilities = data[_P_COLUMNS].apply(pd.to_numeric, errors="coerce")
    valid = sentiment.isin(SENTIMENTS).fillna(False) & probabilities.notna().all(axis=1)
    data["_ok"] = (error == "") & valid
    data["_reason"] = error.where(error != "", "no sentiment or probabilities in the row")
    data["_sentiment"] = sentiment.where(data["_ok"], None).astype(object)
    p = probabilities.to_numpy(dtype=np.float64)
    totals = p.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = p / totals
    for i, label in enumerate(SENTIMENTS):
        data[f"_p_{label}"] = p[:, i]
    if "lang" in data.columns:
        data["lang"] = _group_labels(data["lang"])
    return data


def _sample_notes(sample: dict[str, Any], gold_col: str) -> list[str]:
    notes = []
    if sample["unknown_labels"]:
        notes.append(
            f"labeled sample: values of {gold_col!r} that are not a sentiment were left out: "
            f"{sample['unknown_labels']}"
        )
    for key, quality in sample["quality"].items():
        absent = [label for label, share in quality["gold_shares"].items() if share == 0]
        if absent:
            where = "the sample" if key == "*" else f"the sample's {key} rows"
            notes.append(
                f"labeled sample: {where} have no {' or '.join(absent)} gold, so ACC and PACC "
                "put their share at 0 there"
            )
    return notes


def _confusion_rates(
    confusion: dict[str, list[list[float]]] | None,
    notes: list[str],
    allow_empty_rows: bool = False,
) -> dict[str, np.ndarray]:
    """Row-normalised matrices by key; unusable ones are skipped with a note."""
    rates = {}
    for key, matrix in (confusion or {}).items():
        try:
            rates[str(key)] = normalise_confusion(matrix, allow_empty_rows=allow_empty_rows)
        except ValueError as exc:
            notes.append(f"dev confusion matrix {key!r} not used for ACC: {exc}")
            continue
        if rates[str(key)].shape != (3, 3):
            del rates[str(key)]
            notes.append(f"dev confusion matrix {key!r} not used for ACC: it is not 3x3")
    if confusion is not None and not rates:
        notes.append("ACC omitted: none of the dev confusion matrices is usable")
    elif confusion is not None and "*" not in rates:
        notes.append(
            "no '*' dev confusion matrix: ACC is given only for segments whose languages all "
            f"have their own ({sorted(rates)})"
        )
    return rates


class _Segmenter:
    """Computes one segment's numbers; `rates` and `scores` are shared by every segment."""

    def __init__(
        self,
        data: pd.DataFrame,
        rates: dict[str, np.ndarray],
        soft_rates: dict[str, np.ndarray],
        scores: pd.Series | None,
        score_kind: str | None,
        confidence: float,
    ) -> None:
        self.data, self.rates, self.soft_rates, self.scores = data, rates, soft_rates, scores
        self.score_kind, self.confidence = score_kind, confidence

    def __call__(self, index: pd.Index) -> dict[str, Any]:
        rows = self.data.loc[index]
        ok = rows[rows["_ok"]]
        n = len(ok)
        found = ok["_sentiment"].value_counts()
        counts = {s: int(found.get(s, 0)) for s in SENTIMENTS}
        segment: dict[str, Any] = {"n": n, "errors": len(rows) - n, "counts": counts}
        shares = {s: counts[s] / n if n else None for s in SENTIMENTS}
        segment["raw"] = {
            "shares": shares,
            "ci95": {s: _wilson(counts[s], n, self.confidence) for s in SENTIMENTS},
            "net_sentiment": _net(shares),
            "ratio_pos_neg": counts["positive"] / counts["negative"]
            if counts["negative"]
            else None,
        }
        if n:
            pcc = ok[[f"_p_{s}" for s in SENTIMENTS]].mean().to_numpy()
            pcc_shares = dict(zip(SENTIMENTS, (pcc / pcc.sum()).tolist(), strict=True))
            segment["pcc"] = {"shares": pcc_shares, "net_sentiment": _net(pcc_shares)}
        else:
            segment["pcc"] = None
        if self.rates:
            segment["acc"] = self._adjusted(ok, self.rates, self._raw_shares)
        if self.soft_rates:
            segment["pacc"] = self._adjusted(ok, self.soft_rates, self._mean_probabilities)
        if self.scores is not None:
            segment["score"] = score_summary(
                self.scores.loc[index], self.score_kind, self.confidence
            )
        return segment

    @staticmethod
    def _raw_shares(part: pd.DataFrame) -> np.ndarray:
        found = part["_sentiment"].value_counts(normalize=True)
        return np.array([found.get(s, 0.0) for s in SENTIMENTS])

    @staticmethod
    def _mean_probabilities(part: pd.DataFrame) -> np.ndarray:
        return part[[f"_p_{s}" for s in SENTIMENTS]].mean().to_numpy()

    def _adjusted(
        self,
        ok: pd.DataFrame,
        rates: dict[str, np.ndarray],
        observed: Callable[[pd.DataFrame], np.ndarray],
    ) -> dict[str, Any] | None:
        """(P)ACC per language (its own matrix, else "*"), combined weighted by row count."""
        if ok.empty:
            return None
        langs = ok["lang"] if "lang" in ok.columns else pd.Series("*", index=ok.index)
        total = np.zeros(len(SENTIMENTS))
        used: dict[str, int] = {}
        for lang, part in ok.groupby(langs, sort=True):
            key = lang if lang in rates else "*"
            if key not in rates:
                return None
            total += len(part) * adjusted_shares(observed(part), rates[key])
            used[str(key)] = used.get(str(key), 0) + len(part)
        shares = dict(zip(SENTIMENTS, (total / len(ok)).tolist(), strict=True))
        return {"shares": shares, "net_sentiment": _net(shares), "matrix_rows": used}


def _net(shares: dict[str, float | None]) -> float | None:
    if shares["positive"] is None:
        return None
    return shares["positive"] - shares["negative"]


def _groups(values: pd.Series, max_groups: int, notes: list[str], name: str) -> dict[str, pd.Index]:
    """Row index by group value, largest first, at most `max_groups` (the rest noted)."""
    labels = _group_labels(values)
    sizes = labels.value_counts(sort=True)
    if len(sizes) > max_groups:
        notes.append(
            f"{name}: only the {max_groups} largest of {len(sizes)} groups are shown "
            f"({int(sizes.iloc[max_groups:].sum())} rows in the others)"
        )
        sizes = sizes.iloc[:max_groups]
    positions = labels.groupby(labels, sort=False).indices
    return {str(value): labels.index[positions[value]] for value in sizes.index}


def _group_labels(values: pd.Series) -> pd.Series:
    labels = values.astype("string").str.strip().fillna(MISSING_GROUP)
    return labels.where(labels != "", MISSING_GROUP)


def _negative_examples(data: pd.DataFrame, text_col: str, k: int) -> list[dict[str, Any]]:
    negatives = data[data["_sentiment"] == "negative"].nlargest(k, "_p_negative")
    return [
        {"text": str(t)[:280], "p_negative": p}
        for t, p in zip(negatives[text_col], negatives["_p_negative"], strict=True)
    ]


def _parse_dates(values: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(values, errors="coerce", utc=True)
    filled = values.astype("string").str.strip().fillna("") != ""
    if (parsed.isna() & filled).any():
        # A mixed export (ISO dates and timestamps, or several formats) fails whole-column format
        # inference; element-wise parsing is slower but reads each value on its own.
        mixed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
        if mixed.notna().sum() > parsed.notna().sum():
            parsed = mixed
    return parsed.dt.tz_convert(None)


def _periods(
    data: pd.DataFrame, values: pd.Series, date_col: str, period: str, notes: list[str]
) -> tuple[list[dict[str, str]], dict[str, pd.Index]]:
    """Every period from the first date to the last (empty ones included, so trends have no
    gaps), and the row index of each."""
    dates = _parse_dates(values.reset_index(drop=True))
    if values.astype("string").str.strip().fillna("").eq("").all():
        notes.append(f"column {date_col!r} is empty: no periods")
        return [], {}
    if dates.notna().sum() == 0:
        examples = values.dropna().astype(str).head(3).tolist()
        raise ValueError(
            f"column {date_col!r} has no readable dates (first values {examples}); "
            "expected dates such as 2026-09-07 or 2026-09-07T10:30:00"
        )
    undated = int(dates.isna().sum())
    if undated:
        notes.append(f"{undated} rows have no readable {date_col!r} and are left out of periods")
    codes = dates.dt.to_period(PERIODS[period])
    labels, index = [], {}
    for p in pd.period_range(codes.min(), codes.max(), freq=PERIODS[period]):
        labels.append(
            {
                "period": str(p),
                "start": p.start_time.date().isoformat(),
                "end": p.end_time.date().isoformat(),
            }
        )
        index[str(p)] = data.index[(codes == p).to_numpy()]
    last_day = dates.max().date()
    if last_day.isoformat() < labels[-1]["end"]:
        notes.append(
            f"the last {period} ({labels[-1]['period']}) is partial: the data end on {last_day}"
        )
    return labels, index


def _alerts(
    data: pd.DataFrame,
    mentions: pd.DataFrame,
    periods: list[dict[str, str]],
    index: dict[str, pd.Index],
    group_by: Sequence[str],
    alpha: float,
    baseline: str,
    notes: list[str],
    p_adjust: str = "holm",
) -> dict[str, Any]:
    """Rises from the baseline to the last period with classified rows.

    Each test has `kind` (negative_share or topic_share), `column` and `value` (None for all rows;
    "topic" and the topic's name for a topic). The overall negative share is the headline test,
    judged on its own p-value. The negative share of each language and group value, and the share
    of rows mentioning each topic, form two families whose p-values are adjusted (`p_adjust`, Holm by default), so many
    small segments do not raise alarms on noise. A test with fewer than 5 expected rows on either
    side of a sample is reported, never flagged.
    """
    ok = data["_ok"]
    filled = [p["period"] for p in periods if ok.loc[index[p["period"]]].any()]
    if len(filled) < 2:
        notes.append("alerts need classified rows in at least two periods")
        return {"current": None, "baseline": None, "alpha": alpha, "flagged": [], "tests": []}
    current = filled[-1]
    before = filled[:-1] if baseline == "all" else filled[-2:-1]
    now = data.loc[index[current]]
    now = now[now["_ok"]]
    then = data.loc[index[before[0]].append([index[p] for p in before[1:]])]
    then = then[then["_ok"]]

    def test(
        kind: str, column: str | None, value: str | None, hit_then: pd.Series, hit_now: pd.Series
    ) -> dict | None:
        x1, n1, x2, n2 = int(hit_then.sum()), len(hit_then), int(hit_now.sum()), len(hit_now)
        result = two_proportion_test(x1, n1, x2, n2)
        if result is None:
            return None
        pooled = (x1 + x2) / (n1 + n2)
        small = min(n1, n2) * min(pooled, 1 - pooled) < 5
        return {
            "kind": kind,
            "column": column,
            "value": value,
            "baseline_share": x1 / n1,
            "current_share": x2 / n2,
            "baseline_n": n1,
            "current_n": n2,
            **result,
            "small_sample": small,
        }

    headline = test(
        "negative_share",
        None,
        None,
        then["_sentiment"] == "negative",
        now["_sentiment"] == "negative",
    )
    segments, topics = [], []
    topic_rows_all = topic_rows(mentions)
    for col in [c for c in ("lang",) if c in data.columns] + list(group_by):
        labels_then, labels_now = _group_labels(then[col]), _group_labels(now[col])
        for value in sorted(set(labels_now)):
            segments.append(
                test(
                    "negative_share",
                    col,
                    value,
                    then.loc[labels_then == value, "_sentiment"] == "negative",
                    now.loc[labels_now == value, "_sentiment"] == "negative",
                )
            )
    for name, found in topic_rows(mentions[mentions["row"].isin(now.index)]).items():
        everywhere = topic_rows_all[name]
        topics.append(
            test(
                "topic_share",
                "topic",
                name,
                pd.Series(then.index.isin(everywhere), index=then.index),
                pd.Series(now.index.isin(found), index=now.index),
            )
        )
    tests = []
    if headline is not None:
        tests.append({**headline, "p_adjusted": headline["p_value"]})
    for family in (segments, topics):
        family = [t for t in family if t is not None]
        for t, p in zip(
            family, adjust_p_values([t["p_value"] for t in family], p_adjust), strict=True
        ):
            tests.append({**t, "p_adjusted": p})
    for t in tests:
        t["flagged"] = t["difference"] > 0 and t["p_adjusted"] < alpha and not t["small_sample"]
    return {
        "current": current,
        "baseline": before if baseline == "all" else before[0],
        "alpha": alpha,
        "flagged": sorted((t for t in tests if t["flagged"]), key=lambda t: t["p_adjusted"]),
        "tests": tests,
    }


def clean_json(value: Any) -> Any:
    """`value` with numpy scalars as Python numbers (floats to 6 significant digits), tuples as
    lists and NaN / inf as None, so that `json.dumps` accepts it and writes standard JSON."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        # Six significant digits: plenty for shares and p-values, and a readable file.
        return float(f"{value:.6g}") if np.isfinite(value) else None
    return value
