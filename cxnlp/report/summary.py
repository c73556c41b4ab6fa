"""Rollups of a classified export: what a CX team reads from `cxnlp classify`'s output.

`summarize()` turns the classified rows into one JSON-serialisable dict: sentiment counts and shares
with Wilson intervals, net sentiment and the positive:negative ratio, overall and per language,
group column and period; prevalence-corrected shares beside the raw ones; the share of `mixed`
texts; topics ranked by volume and by negative share, with example texts and where each topic's
evidence lies in them; NPS / CSAT / CES with the topics over-represented among detractors; and
alerts comparing the last period with the one before. `cxnlp.report.html` renders the dict.

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

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxnlp.labels import MIXED_COLUMN, PERIODS, REPORT_COLUMNS, SENTIMENTS, decode_flag
from cxnlp.modeldir import DEV_CONFUSION_FILE
from cxnlp.report.alerts import BASELINES, alerts, periods
from cxnlp.report.evidence import evidence_spans, mixed_summary
from cxnlp.report.quantification import (
    LABELED_METHODS,
    METHODS,
    MIN_LABELED_ROWS,
    confusion_rates,
    labeled_confusions,
    sample_notes,
)
from cxnlp.report.rows import group_labels, prepare
from cxnlp.report.scores import (
    ScoreSpec,
    score_alerts,
    score_drivers,
    score_specs,
    score_summary,
    scores_from,
)
from cxnlp.report.segments import pcc_from_sums, sentiment_numbers
from cxnlp.report.stats import P_ADJUST_METHODS, adjusted_shares
from cxnlp.report.topics import EXAMPLE_CHARS, mentions_table, row_topics, topic_summary

logger = logging.getLogger(__name__)


def summarize(
    frame: pd.DataFrame,
    *,
    group_by: Sequence[str] = (),
    date_col: str | None = None,
    period: str | None = None,
    date_format: str | None = None,
    score_col: str | Sequence[str] | None = None,
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
    no_confusion_note: str | None = None,
) -> dict[str, Any]:
    """Summarise the output of `cxnlp classify` into a JSON-serialisable dict.

    Rows with `error` set count as errors and stay out of every share. `period` (day, week, month,
    quarter, year; default week) needs `date_col`; `score_kind` (nps, csat, ces) goes with a
    bare `score_col`, or `score_col` is a list of `KIND=COLUMN` / `KIND:LOW-HIGH=COLUMN` entries
    (`["nps=q1", "csat:1-7=q2", "ces=q3"]`, see `cxnlp.report.scores.ScoreSpec`): each column
    gets its own numbers under `scores_by_column` (overall and per segment) when there are
    several, `scores` / a segment's `score` hold the first, and alerts test whether NPS or CSAT
    fell or CES rose (`alerts["scores"]`); `confusion` (see `cxnlp.modeldir.read_dev_confusion`) adds ACC shares. `labeled` (classified rows
    with a hand-given sentiment in `gold_col`; it may be `frame` itself, whose other rows then have
    it empty) replaces `confusion` with the sample's own (see `labeled_confusions`) and adds PACC
    shares and the model's scores on the sample; without either, the notes say why ACC is missing
    (`no_confusion_note`, or that the model has no dev confusion matrix). Alerts test whether the
    negative share or a topic's share rose from the `baseline` ("previous" period or "all" earlier
    ones) to the last period, at level `alpha`, with p-values adjusted by `p_adjust` (a key of
    `cxnlp.report.stats.P_ADJUST_METHODS`: "holm", "benjamini-hochberg", ...).

    >>> frame = pd.DataFrame({"sentiment": ["positive", "negative", None],
    ...     "p_positive": [0.9, 0.1, None], "p_neutral": [0.05, 0.1, None],
    ...     "p_negative": [0.05, 0.8, None], "error": [None, None, "empty text"]})
    >>> s = summarize(frame)
    >>> s["classified"], s["errors"], s["overall"]["raw"]["shares"]["positive"]
    (2, 1, 0.5)
    """
    specs = score_specs(score_col, score_kind)
    _check_arguments(frame, group_by, date_col, period, specs, alpha, baseline)
    if p_adjust not in P_ADJUST_METHODS:
        raise ValueError(
            f"unknown p-value adjustment {p_adjust!r}; expected one of {list(P_ADJUST_METHODS)}"
        )
    if date_col is not None and period is None:
        period = "week"
    notes: list[str] = []
    data = prepare(frame)
    mentions, unparsable = mentions_table(data)
    sample = labeled_confusions(labeled, gold_col) if labeled is not None else None
    methods = dict(METHODS)
    if sample is None:
        rates = confusion_rates(confusion, notes)
        soft_rates: dict[str, np.ndarray] = {}
    else:
        rates = confusion_rates(sample["hard"], notes, allow_empty_rows=True)
        soft_rates = confusion_rates(sample["soft"], notes, allow_empty_rows=True)
        methods.update({k: v.format(min_rows=MIN_LABELED_ROWS) for k, v in LABELED_METHODS.items()})
        notes.extend(sample_notes(sample, gold_col))
    scores = [(spec, scores_from(frame[spec.column], spec.kind, spec.scale)) for spec in specs]
    # Segments read only these columns; a slim copy keeps slicing fast on wide exports.
    core = ["_ok", "_sentiment", *(f"_{k}_{s}" for k in ("p", "micro") for s in SENTIMENTS)]
    core += ["lang"] if "lang" in data.columns else []
    segment = _Segmenter(data[core], rates, soft_rates, scores, confidence)

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
            "score_columns": [spec.to_dict() for spec in specs],
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
        notes.append(
            no_confusion_note
            or f"ACC omitted: no dev confusion matrix for the model ({DEV_CONFUSION_FILE})"
        )
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
    mixed = mixed_summary(data, confidence)
    if mixed is not None:
        summary["mixed"] = mixed
    summary["topics"] = topic_summary(data, mentions, text_col, confidence, min_mentions, examples)
    summary["topics"]["unparsable_rows"] = unparsable
    if text_col in data.columns:
        summary["negative_examples"] = _negative_examples(data, text_col, examples)
    by_column = {
        spec.column: {
            "column": spec.column,
            **score_summary(values, spec.kind, confidence, spec.scale),
            "drivers": score_drivers(
                data, mentions, values, spec.kind, alpha, p_adjust, spec.scale
            ),
        }
        for spec, values in scores
    }
    if by_column:
        summary["scores"] = next(iter(by_column.values()))
    if len(by_column) > 1:
        summary["scores_by_column"] = by_column
    if date_col is not None:
        by_period, period_index, data_end = periods(
            data, frame[date_col], date_col, period, notes, date_format
        )
        summary["by_period"] = [
            {**label, **segment(period_index[label["period"]])} for label in by_period
        ]
        summary["alerts"] = alerts(
            data,
            mentions,
            by_period,
            period_index,
            group_by,
            alpha,
            baseline,
            notes,
            p_adjust,
            period=period,
            data_end=data_end,
        )
        if scores:
            summary["alerts"]["scores"] = score_alerts(
                data, mentions, scores, by_period, period_index, alpha, baseline, notes, p_adjust
            )
    summary["notes"] = notes
    return clean_json(summary)


def _check_arguments(
    frame: pd.DataFrame,
    group_by: Sequence[str],
    date_col: str | None,
    period: str | None,
    specs: Sequence[ScoreSpec],
    alpha: float,
    baseline: str,
) -> None:
    if isinstance(group_by, str):
        raise TypeError(f"group_by must be a list of column names, got the string {group_by!r}")
    missing = [c for c in REPORT_COLUMNS if c not in frame.columns]
    wanted = [*group_by, *([date_col] if date_col is not None else []), *(s.column for s in specs)]
    missing += [c for c in wanted if c not in frame.columns]
    if missing:
        raise ValueError(
            f"missing column(s) {missing}; the table has {list(frame.columns)}. A report needs "
            f"the output of `cxnlp classify` (with {list(REPORT_COLUMNS)}) and the columns "
            "named by --group-by / --date-col / --score-col"
        )
    if period is not None and date_col is None:
        raise ValueError(f"period {period!r} needs a date column; pass date_col / --date-col")
    if period is not None and period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; expected one of {list(PERIODS)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; expected one of {list(BASELINES)}")


class _Segmenter:
    """Computes one segment's numbers; `rates` and `scores` are shared by every segment."""

    def __init__(
        self,
        data: pd.DataFrame,
        rates: dict[str, np.ndarray],
        soft_rates: dict[str, np.ndarray],
        scores: Sequence[tuple[ScoreSpec, pd.Series]],
        confidence: float,
    ) -> None:
        self.data, self.rates, self.soft_rates, self.scores = data, rates, soft_rates, scores
        self.confidence = confidence

    def __call__(self, index: pd.Index) -> dict[str, Any]:
        rows = self.data.loc[index]
        ok = rows[rows["_ok"]]
        n = len(ok)
        found = ok["_sentiment"].value_counts()
        counts = {s: int(found.get(s, 0)) for s in SENTIMENTS}
        segment: dict[str, Any] = {"n": n, "errors": len(rows) - n, "counts": counts}
        segment["raw"] = sentiment_numbers(counts, self.confidence)
        segment["pcc"] = None
        if n:
            sums = {s: int(ok[f"_micro_{s}"].sum()) for s in SENTIMENTS}
            pcc_shares = pcc_from_sums(sums)
            if pcc_shares is not None:
                segment["pcc"] = {"shares": pcc_shares, "net_sentiment": _net(pcc_shares)}
        if self.rates:
            segment["acc"] = self._adjusted(ok, self.rates, self._raw_shares)
        if self.soft_rates:
            segment["pacc"] = self._adjusted(ok, self.soft_rates, self._mean_probabilities)
        by_column = {
            spec.column: score_summary(values.loc[index], spec.kind, self.confidence, spec.scale)
            for spec, values in self.scores
        }
        if by_column:
            segment["score"] = next(iter(by_column.values()))
        if len(by_column) > 1:
            segment["scores_by_column"] = by_column
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
    labels = group_labels(values)
    sizes = labels.value_counts(sort=True)
    if len(sizes) > max_groups:
        notes.append(
            f"{name}: only the {max_groups} largest of {len(sizes)} groups are shown "
            f"({int(sizes.iloc[max_groups:].sum())} rows in the others)"
        )
        sizes = sizes.iloc[:max_groups]
    positions = labels.groupby(labels, sort=False).indices
    return {str(value): labels.index[positions[value]] for value in sizes.index}


def _negative_examples(data: pd.DataFrame, text_col: str, k: int) -> list[dict[str, Any]]:
    """The `k` most negative texts, each cut to `EXAMPLE_CHARS`, with its `mixed` flag (where the
    table has one) and where its topics' evidence lies in it."""
    negatives = data[data["_sentiment"] == "negative"].nlargest(k, "_p_negative")
    examples = []
    for row, text, p in zip(
        negatives.index, negatives[text_col], negatives["_p_negative"], strict=True
    ):
        quote = str(text)[:EXAMPLE_CHARS]
        example = {"text": quote, "p_negative": p}
        if MIXED_COLUMN in data.columns:
            example["mixed"] = decode_flag(data.at[row, MIXED_COLUMN])
        example["evidence"] = evidence_spans(quote, row_topics(data, row))
        examples.append(example)
    return examples


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
