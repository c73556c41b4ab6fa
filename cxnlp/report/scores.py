"""Survey scores beside the sentiment rollups: NPS, CSAT and CES, and which topics and sentiments
are over-represented among detractors (their lift).

The numbers of a score are computed from its counts and sums (`SCORE_MEASURES`), which the report
takes from the scores themselves and the feedback store from its per-day aggregates: one formula,
the same digits (`score_from_counts`). The NPS and CSAT cut-offs are declared here only.

>>> score_from_counts("nps", {"score_n": 4, "promoters": 2, "detractors": 1, "satisfied": 0,
...     "score_sum": 27.0, "score_sq_sum": 211.0})["nps"]
25.0
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from cxnlp.labels import SENTIMENTS
from cxnlp.report.stats import adjust_p_values, two_proportion_test, wilson_interval, z_value
from cxnlp.report.topics import topic_rows

# kind -> (lowest, highest) valid score; None = any number (CES scales run 1-5 or 1-7).
SCORE_RANGES: dict[str, tuple[float, float] | None] = {
    "nps": (0, 10),
    "csat": (1, 5),
    "ces": None,
}
SCORE_KINDS = tuple(SCORE_RANGES)
# NPS: promoters answer 9-10, detractors 0-6; CSAT: satisfied answers 4-5.
NPS_PROMOTER_MIN = 9
NPS_DETRACTOR_MAX = 6
CSAT_SATISFIED_MIN = 4
# Who counts as a detractor for the lift analysis. CES scales differ in direction (agreement that
# it was easy, or effort), so CES has no detractor group.
DETRACTORS = {
    "nps": (f"detractors (0-{NPS_DETRACTOR_MAX})", NPS_DETRACTOR_MAX),
    "csat": (f"dissatisfied (1-{CSAT_SATISFIED_MIN - 1})", CSAT_SATISFIED_MIN - 1),
}
# The counts and sums a score's numbers are computed from (the store keeps them per day).
SCORE_MEASURES = ("score_n", "score_sum", "score_sq_sum", "promoters", "detractors", "satisfied")


def score_flags(score: float, kind: str | None) -> tuple[bool, bool, bool]:
    """(promoter, detractor, satisfied) for one answer of `kind`."""
    return (
        kind == "nps" and score >= NPS_PROMOTER_MIN,
        kind == "nps" and score <= NPS_DETRACTOR_MAX,
        kind == "csat" and score >= CSAT_SATISFIED_MIN,
    )


def score_counts(values: np.ndarray, kind: str) -> dict[str, float]:
    """The `SCORE_MEASURES` of answers `values` (no missing ones) of `kind`."""
    values = np.asarray(values, dtype=np.float64)
    return {
        "score_n": len(values),
        "score_sum": float(values.sum()),
        "score_sq_sum": float((values * values).sum()),
        "promoters": int((values >= NPS_PROMOTER_MIN).sum()) if kind == "nps" else 0,
        "detractors": int((values <= NPS_DETRACTOR_MAX).sum()) if kind == "nps" else 0,
        "satisfied": int((values >= CSAT_SATISFIED_MIN).sum()) if kind == "csat" else 0,
    }


def score_from_counts(
    kind: str, counts: dict[str, float], confidence: float = 0.95
) -> dict[str, Any]:
    """NPS in points (-100..100), CSAT as the share of satisfied answers with its mean, CES as the
    mean with its sd, each with a normal-approximation or Wilson interval, from `SCORE_MEASURES`."""
    n = int(counts["score_n"])
    result: dict[str, Any] = {"kind": kind, "n": n}
    if n == 0:
        return result
    z = z_value(confidence)
    mean = float(counts["score_sum"]) / n
    if kind == "nps":
        promoters, detractors = int(counts["promoters"]), int(counts["detractors"])
        p, d = promoters / n, detractors / n
        # Each answer scores +1, 0 or -1; NPS is their mean times 100.
        se = math.sqrt(max(p + d - (p - d) ** 2, 0.0) / n)
        result |= {
            "promoters": promoters,
            "passives": n - promoters - detractors,
            "detractors": detractors,
            "nps": 100 * (p - d),
            "ci95": [max(-100.0, 100 * (p - d - z * se)), min(100.0, 100 * (p - d + z * se))],
        }
    elif kind == "csat":
        satisfied = int(counts["satisfied"])
        result |= {
            "satisfied": satisfied,
            "csat": satisfied / n,
            "ci95": list(wilson_interval(satisfied, n, confidence)),
            "mean": mean,
        }
    else:
        squares = float(counts["score_sq_sum"]) - n * mean * mean
        sd = math.sqrt(max(squares / (n - 1), 0.0)) if n > 1 else 0.0
        result |= {"mean": mean, "sd": sd, "ci95": [mean - z * sd / n**0.5, mean + z * sd / n**0.5]}
    return result


def scores_from(values: pd.Series, kind: str) -> pd.Series:
    """The score column as floats (NaN where blank or not a number), index reset, range-checked.

    >>> scores_from(pd.Series(["10", "", "3"]), "nps").tolist()
    [10.0, nan, 3.0]
    """
    scores = pd.to_numeric(values.reset_index(drop=True), errors="coerce").astype(np.float64)
    scores[~np.isfinite(scores)] = np.nan
    bounds = SCORE_RANGES[kind]
    if bounds is not None:
        low, high = bounds
        bad = scores.notna() & ((scores < low) | (scores > high) | (scores % 1 != 0))
        if bad.any():
            raise ValueError(
                f"{int(bad.sum())} score(s) are not whole numbers from {low:g} to {high:g}, as "
                f"{kind.upper()} needs (first: {scores[bad].head(3).tolist()}); check "
                "--score-col and --score-kind (nps: 0-10, csat: 1-5, ces: any scale)"
            )
    if scores.notna().sum() == 0:
        raise ValueError(
            f"the score column has no numbers (first values {values.head(3).tolist()})"
        )
    return scores


def score_summary(scores: pd.Series, kind: str, confidence: float = 0.95) -> dict[str, Any]:
    """NPS / CSAT / CES of a score column (see `score_from_counts`), with how many are missing."""
    values = scores.dropna().to_numpy()
    numbers = score_from_counts(kind, score_counts(values, kind), confidence)
    return {"kind": kind, "n": numbers["n"], "missing": int(scores.isna().sum()), **numbers}


def score_drivers(
    data: pd.DataFrame,
    mentions: pd.DataFrame,
    scores: pd.Series,
    kind: str,
    alpha: float = 0.05,
    p_adjust: str = "holm",
) -> dict[str, Any]:
    """Lift of each topic and sentiment among detractors: its share among detractors divided by
    its share among all scored, classified rows, with a two-proportion test of detractors against
    the other respondents (p-values adjusted by `p_adjust`, Holm by default, within topics and
    within sentiments). `data` and
    `mentions` are prepared by `cxnlp.report.topics.mentions_table`."""
    if kind not in DETRACTORS:
        return {"note": f"no detractor group is defined for {kind.upper()}: scales differ"}
    name, cutoff = DETRACTORS[kind]
    rows = data[data["_ok"] & scores.notna()]
    detractor = scores.loc[rows.index] <= cutoff
    result: dict[str, Any] = {"group": name, "n_group": int(detractor.sum()), "n_scored": len(rows)}
    hits = {
        name: pd.Series(rows.index.isin(found), index=rows.index)
        for name, found in topic_rows(mentions).items()
    }
    result["topics"] = _lifts(hits, detractor, "topic", alpha, p_adjust)
    result["sentiments"] = _lifts(
        {s: rows["_sentiment"] == s for s in SENTIMENTS}, detractor, "sentiment", alpha, p_adjust
    )
    return result


def _lifts(
    hits: dict[str, pd.Series], detractor: pd.Series, key: str, alpha: float, p_adjust: str
) -> list[dict[str, Any]]:
    out = []
    n_group, n_rest = int(detractor.sum()), int((~detractor).sum())
    for name, hit in hits.items():
        in_group, overall = int(hit[detractor].sum()), int(hit.sum())
        if not overall or not n_group:
            continue
        share_group, share_all = in_group / n_group, overall / len(hit)
        test = two_proportion_test(overall - in_group, n_rest, in_group, n_group)
        out.append(
            {
                key: name,
                "count_in_group": in_group,
                "share_in_group": share_group,
                "share_overall": share_all,
                "lift": share_group / share_all,
                "p_value": test["p_value"] if test else None,
            }
        )
    tested = [o for o in out if o["p_value"] is not None]
    for o, p in zip(tested, adjust_p_values([o["p_value"] for o in tested], p_adjust), strict=True):
        o["p_adjusted"] = p
    for o in out:
        o.setdefault("p_adjusted", None)
        o["over_represented"] = (
            o["lift"] > 1 and o["p_adjusted"] is not None and (o["p_adjusted"] < alpha)
        )
    return sorted(out, key=lambda o: -o["lift"])
