"""Survey scores beside the sentiment rollups: NPS, CSAT and CES, and which topics and sentiments
are over-represented among detractors (their lift)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from cxnlp.labels import SCORE_KINDS, SENTIMENTS
from cxnlp.report.stats import adjust_p_values, two_proportion_test, wilson_interval, z_value
from cxnlp.report.topics import topic_rows

# Each of `cxnlp.labels.SCORE_KINDS` -> (lowest, highest) valid score; None = any number (CES
# scales run 1-5 or 1-7).
SCORE_RANGES: dict[str, tuple[float, float] | None] = dict(
    zip(SCORE_KINDS, ((0, 10), (1, 5), None), strict=True)
)
# NPS promoters score 9-10 and detractors 0-6; CSAT counts 4-5 as satisfied. One definition for
# the report and the feedback store (which sums them per day).
PROMOTER_MIN, DETRACTOR_MAX, SATISFIED_MIN = 9, 6, 4
# Who counts as a detractor for the lift analysis. CES scales differ in direction (agreement that
# it was easy, or effort), so CES has no detractor group.
DETRACTORS = {
    "nps": (f"detractors (0-{DETRACTOR_MAX})", DETRACTOR_MAX),
    "csat": (f"dissatisfied (1-{SATISFIED_MIN - 1})", SATISFIED_MIN - 1),
}


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


def score_sums(values: np.ndarray, kind: str) -> dict[str, float]:
    """The sums a score summary is computed from (the store keeps them per day, as
    `cxnlp.feedback.models.STAT_MEASURES`): count, sum, sum of squares, promoters and detractors
    (NPS), satisfied (CSAT)."""
    return {
        "score_n": len(values),
        "score_sum": float(values.sum()),
        "score_sq_sum": float((values * values).sum()),
        "promoters": int((values >= PROMOTER_MIN).sum()) if kind == "nps" else 0,
        "detractors": int((values <= DETRACTOR_MAX).sum()) if kind == "nps" else 0,
        "satisfied": int((values >= SATISFIED_MIN).sum()) if kind == "csat" else 0,
    }


def score_from_sums(kind: str, sums: dict[str, float], confidence: float = 0.95) -> dict:
    """NPS / CSAT / CES from the sums of one score kind (`score_sums`): what `score_summary` and the
    feedback store's per-day aggregates both compute them from."""
    n = int(sums["score_n"])
    result: dict[str, Any] = {"kind": kind, "n": n}
    if n == 0:
        return result
    z = z_value(confidence)
    if kind == "nps":
        promoters, detractors = int(sums["promoters"]), int(sums["detractors"])
        p, d = promoters / n, detractors / n
        se = math.sqrt(max(p + d - (p - d) ** 2, 0.0) / n)
        result |= {
            "promoters": promoters,
            "passives": n - promoters - detractors,
            "detractors": detractors,
            "nps": 100 * (p - d),
            "ci95": [max(-100.0, 100 * (p - d - z * se)), min(100.0, 100 * (p - d + z * se))],
        }
    elif kind == "csat":
        satisfied = int(sums["satisfied"])
        result |= {
            "satisfied": satisfied,
            "csat": satisfied / n,
            "ci95": list(wilson_interval(satisfied, n, confidence)),
            "mean": sums["score_sum"] / n,
        }
    else:
        mean = sums["score_sum"] / n
        variance = (sums["score_sq_sum"] - n * mean * mean) / (n - 1) if n > 1 else 0.0
        sd = math.sqrt(max(variance, 0.0))
        result |= {"mean": mean, "sd": sd, "ci95": [mean - z * sd / n**0.5, mean + z * sd / n**0.5]}
    return result


def score_summary(scores: pd.Series, kind: str, confidence: float = 0.95) -> dict[str, Any]:
    """NPS in points (-100..100) with promoters 9-10 and detractors 0-6; CSAT as the share of 4-5
    with its mean; CES as the mean. Each with a normal-approximation or Wilson interval.

    >>> s = score_summary(pd.Series([10, 9, 7, 3, None]), "nps")
    >>> s["n"], s["missing"], s["promoters"], s["detractors"], s["nps"]
    (4, 1, 2, 1, 25.0)
    """
    values = scores.dropna().to_numpy(dtype=np.float64)
    result: dict[str, Any] = {"kind": kind, "n": len(values), "missing": int(scores.isna().sum())}
    return result | score_from_sums(kind, score_sums(values, kind), confidence)


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
