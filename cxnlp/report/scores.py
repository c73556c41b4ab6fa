"""Survey scores beside the sentiment rollups: NPS, CSAT and CES, and which topics and sentiments
are over-represented among detractors (their lift).

An export may carry several score columns (`ScoreSpec`, parsed from `nps=q1`, `csat:1-7=q2`,
`ces=q3`); CSAT is read on a declared scale (1-5 by default) and reported as its top-two-box
share beside the mean. `score_alerts` tests, period over period, whether NPS or CSAT fell or CES
rose (NPS's variance from its promoter and detractor shares, CSAT's top-two-box share with a
two-proportion test, CES's mean with a Welch z-test), and names the topics whose negative mentions
rose among the same respondents.

The numbers of a score are computed from its counts and sums (`SCORE_MEASURES`, `score_sums`),
which the report takes from the answers themselves and the feedback store from its per-day
aggregates: one formula (`score_from_sums`), the same digits.

>>> score_from_sums("nps", {"score_n": 4, "promoters": 2, "detractors": 1, "satisfied": 0,
...     "score_sum": 27.0, "score_sq_sum": 211.0})["nps"]
25.0
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cxnlp.labels import SCORE_KINDS, SENTIMENTS
from cxnlp.report.stats import (
    adjust_p_values,
    two_proportion_test,
    two_sided_p,
    wilson_interval,
    z_value,
)
from cxnlp.report.topics import topic_rows

# Each of `cxnlp.labels.SCORE_KINDS` -> (lowest, highest) valid score; None = any number (CES
# scales run 1-5 or 1-7).
SCORE_RANGES: dict[str, tuple[float, float] | None] = dict(
    zip(SCORE_KINDS, ((0, 10), (1, 5), None), strict=True)
)
# NPS promoters score 9-10 and detractors 0-6; CSAT counts its top two boxes (4-5 on 1-5) as
# satisfied. One definition for the report and the feedback store (which sums them per day).
PROMOTER_MIN, DETRACTOR_MAX, SATISFIED_MIN = 9, 6, 4
# Who counts as a detractor for the lift analysis. CES scales differ in direction (agreement that
# it was easy, or effort), so CES has no detractor group. CSAT's cut-off follows its scale: every
# answer below the top two boxes (1-3 on 1-5, 1-5 on 1-7).
DETRACTORS = {
    "nps": (f"detractors (0-{DETRACTOR_MAX})", DETRACTOR_MAX),
    "csat": (f"dissatisfied (1-{SATISFIED_MIN - 1})", SATISFIED_MIN - 1),
}
# The direction in which each score gets worse, for the alerts: NPS and CSAT fall, CES (read as
# effort: higher is harder) rises.
WORSE = {"nps": -1, "csat": -1, "ces": 1}
# Fewer scored answers than this on either side: the test is reported, never flagged.
MIN_ALERT_ANSWERS = 30
MOVED_TOPICS = 5
_SPEC_RE = re.compile(r"^(?P<kind>[a-z]+)(?::(?P<low>-?\d+)-(?P<high>-?\d+))?=(?P<column>.+)$")


@dataclass(frozen=True)
class ScoreSpec:
    """One survey score column: its kind (nps, csat, ces), its column and its scale (lowest,
    highest answer; None only for a CES column without a declared scale)."""

    kind: str
    column: str
    scale: tuple[float, float] | None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "column": self.column, "scale": self.scale}


def parse_score_spec(text: str, kind: str | None = None) -> ScoreSpec:
    """`KIND=COLUMN` or `KIND:LOW-HIGH=COLUMN` (a declared scale, for CSAT and CES), or a bare
    `COLUMN` with `kind`.

    >>> parse_score_spec("csat:1-7=q2")
    ScoreSpec(kind='csat', column='q2', scale=(1.0, 7.0))
    >>> parse_score_spec("q1", "nps").scale
    (0, 10)
    """
    found = _SPEC_RE.match(text.strip())
    if found is None or found["kind"] not in SCORE_KINDS:
        if kind is None:
            raise ValueError(
                f"score column {text!r}: expected KIND=COLUMN or KIND:LOW-HIGH=COLUMN with KIND "
                f"one of {list(SCORE_KINDS)} (e.g. nps=q1, csat:1-7=q2), or a bare column with "
                "score_kind / --score-kind (score_col and score_kind go together)"
            )
        column, scale = text, None
    else:
        if kind is not None and kind != found["kind"]:
            raise ValueError(f"score column {text!r} names kind {found['kind']!r}, not {kind!r}")
        kind, column = found["kind"], found["column"]
        scale = (float(found["low"]), float(found["high"])) if found["low"] is not None else None
    if kind not in SCORE_KINDS:
        raise ValueError(f"unknown score kind {kind!r}; expected one of {list(SCORE_KINDS)}")
    default = SCORE_RANGES[kind]
    if scale is None:
        scale = default
    elif kind == "nps" and scale != default:
        raise ValueError(f"NPS is asked on 0-10; {text!r} declares {scale[0]:g}-{scale[1]:g}")
    elif scale[1] - scale[0] < 2:
        raise ValueError(
            f"{text!r}: a scale needs at least three answers (low < high - 1), got "
            f"{scale[0]:g}-{scale[1]:g}; CSAT's top two boxes would be all of it"
        )
    return ScoreSpec(kind, column, scale)


def score_specs(
    score_col: str | Sequence[str] | None, score_kind: str | None = None
) -> list[ScoreSpec]:
    """The score columns of a report: one bare column with `score_kind` (the single-score
    form), or any number of `KIND=COLUMN` / `KIND:LOW-HIGH=COLUMN` entries. Each column once."""
    if score_col is None or (not isinstance(score_col, str) and not score_col):
        if score_kind is not None:
            raise ValueError("score_col and score_kind go together: pass both or neither")
        return []
    entries = [score_col] if isinstance(score_col, str) else list(score_col)
    specs = [parse_score_spec(e, score_kind) for e in entries]
    columns = [s.column for s in specs]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise ValueError(f"score column(s) {repeated} named more than once")
    return specs


def scores_from(
    values: pd.Series, kind: str, scale: tuple[float, float] | None = None
) -> pd.Series:
    """The score column as floats (NaN where blank or not a number), index reset, range-checked
    against `scale` (default: the kind's usual range).

    >>> scores_from(pd.Series(["10", "", "3"]), "nps").tolist()
    [10.0, nan, 3.0]
    """
    scores = pd.to_numeric(values.reset_index(drop=True), errors="coerce").astype(np.float64)
    scores[~np.isfinite(scores)] = np.nan
    bounds = scale if scale is not None else SCORE_RANGES[kind]
    if bounds is not None:
        low, high = bounds
        bad = scores.notna() & ((scores < low) | (scores > high) | (scores % 1 != 0))
        if bad.any():
            raise ValueError(
                f"{int(bad.sum())} score(s) are not whole numbers from {low:g} to {high:g}, as "
                f"{kind.upper()} needs (first: {scores[bad].head(3).tolist()}); check "
                "--score-col and --score-kind (nps: 0-10, csat: 1-5 unless declared as "
                "csat:1-7=COLUMN, ces: any scale)"
            )
    if scores.notna().sum() == 0:
        raise ValueError(
            f"the score column has no numbers (first values {values.head(3).tolist()})"
        )
    return scores


def nps_variance(promoters: int, detractors: int, n: int) -> float:
    """Sampling variance of NPS (as a fraction, -1..1) from its promoter and detractor shares:
    each answer scores +1, 0 or -1, so Var = (p + d - (p - d)^2) / n.

    >>> round(nps_variance(50, 20, 100), 6)
    0.0061
    """
    p, d = promoters / n, detractors / n
    return max(p + d - (p - d) ** 2, 0.0) / n


def satisfied_min(scale: tuple[float, float] | None) -> float:
    """The lowest answer in the top two boxes of a CSAT `scale` (4 on the default 1-5, 6 on
    1-7): who counts as satisfied.

    >>> satisfied_min(None), satisfied_min((1, 7))
    (4, 6)
    """
    return SATISFIED_MIN if scale is None else scale[1] - 1


def _top_two(values: np.ndarray, scale: tuple[float, float] | None) -> int:
    """Answers in the top two boxes of `scale` (CSAT's satisfied; 4-5 on the default 1-5)."""
    return int((values >= satisfied_min(scale)).sum())


# The counts and sums a score's numbers are computed from, in `score_sums`' order (the feedback
# store keeps them per day: `cxnlp.feedback.models.STAT_MEASURES` ends with them).
SCORE_MEASURES: tuple[str, ...] = (
    "score_n",
    "score_sum",
    "score_sq_sum",
    "promoters",
    "detractors",
    "satisfied",
)


def score_flags(
    score: float, kind: str | None, scale: tuple[float, float] | None = None
) -> tuple[bool, bool, bool]:
    """(promoter, detractor, satisfied) of one answer of `kind` on `scale` (default: the kind's
    usual one): the per-answer form of `score_sums`, for the store's ingest, which adds items one
    at a time.

    >>> score_flags(9, "nps"), score_flags(4, "csat"), score_flags(5, "csat", (1, 7))
    ((True, False, False), (False, False, True), (False, False, False))
    """
    return (
        kind == "nps" and score >= PROMOTER_MIN,
        kind == "nps" and score <= DETRACTOR_MAX,
        kind == "csat" and score >= satisfied_min(scale),
    )


def score_sums(
    values: np.ndarray, kind: str, scale: tuple[float, float] | None = None
) -> dict[str, float]:
    """The sums a score summary is computed from (`SCORE_MEASURES`; the store keeps them per
    day): count, sum, sum of squares, promoters and detractors (NPS), satisfied (CSAT: the top
    two boxes of `scale`)."""
    return {
        "score_n": len(values),
        "score_sum": float(values.sum()),
        "score_sq_sum": float((values * values).sum()),
        "promoters": int((values >= PROMOTER_MIN).sum()) if kind == "nps" else 0,
        "detractors": int((values <= DETRACTOR_MAX).sum()) if kind == "nps" else 0,
        "satisfied": _top_two(values, scale) if kind == "csat" else 0,
    }


def score_from_sums(
    kind: str, sums: Mapping[str, float], confidence: float = 0.95
) -> dict[str, Any]:
    """NPS in points (-100..100), CSAT as its top-two-box share beside its mean, CES as the mean,
    each with a normal-approximation or Wilson interval, from the sums of one score kind
    (`score_sums`): what `score_summary` and the feedback store's per-day aggregates both use."""
    n = int(sums["score_n"])
    result: dict[str, Any] = {"kind": kind, "n": n}
    if n == 0:
        return result
    z = z_value(confidence)
    # float(): a database sum may come back as a Decimal.
    mean = float(sums["score_sum"]) / n
    variance = (float(sums["score_sq_sum"]) - n * mean * mean) / (n - 1) if n > 1 else 0.0
    sd = math.sqrt(max(variance, 0.0))
    mean_ci = [mean - z * sd / n**0.5, mean + z * sd / n**0.5]
    if kind == "nps":
        promoters, detractors = int(sums["promoters"]), int(sums["detractors"])
        nps = (promoters - detractors) / n
        se = math.sqrt(nps_variance(promoters, detractors, n))
        result |= {
            "promoters": promoters,
            "passives": n - promoters - detractors,
            "detractors": detractors,
            "nps": 100 * nps,
            "ci95": [max(-100.0, 100 * (nps - z * se)), min(100.0, 100 * (nps + z * se))],
        }
    elif kind == "csat":
        satisfied = int(sums["satisfied"])
        result |= {
            "satisfied": satisfied,
            "csat": satisfied / n,
            "top_two_box": satisfied / n,
            "ci95": list(wilson_interval(satisfied, n, confidence)),
            "mean": mean,
            "mean_ci95": mean_ci,
        }
    else:
        result |= {"mean": mean, "sd": sd, "ci95": mean_ci}
    return result


def score_summary(
    scores: pd.Series,
    kind: str,
    confidence: float = 0.95,
    scale: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """NPS in points (-100..100) with promoters 9-10 and detractors 0-6; CSAT as the share of its
    top two boxes (4-5 on the default 1-5 `scale`) beside its mean; CES as the mean. Each with a
    normal-approximation or Wilson interval.

    >>> s = score_summary(pd.Series([10, 9, 7, 3, None]), "nps")
    >>> s["n"], s["missing"], s["promoters"], s["detractors"], s["nps"]
    (4, 1, 2, 1, 25.0)
    """
    values = scores.dropna().to_numpy(dtype=np.float64)
    scale = scale if scale is not None else SCORE_RANGES[kind]
    result: dict[str, Any] = {"kind": kind, "n": len(values), "missing": int(scores.isna().sum())}
    if scale is not None:
        result["scale"] = scale
    return result | score_from_sums(kind, score_sums(values, kind, scale), confidence)


def score_drivers(
    data: pd.DataFrame,
    mentions: pd.DataFrame,
    scores: pd.Series,
    kind: str,
    alpha: float = 0.05,
    p_adjust: str = "holm",
    scale: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Lift of each topic and sentiment among detractors: its share among detractors divided by
    its share among all scored, classified rows, with a two-proportion test of detractors against
    the other respondents (p-values adjusted by `p_adjust`, Holm by default, within topics and
    within sentiments). For CSAT the group is every answer below the top two boxes of `scale`.
    `data` and `mentions` are prepared by `cxnlp.report.topics.mentions_table`."""
    if kind not in DETRACTORS:
        return {"note": f"no detractor group is defined for {kind.upper()}: scales differ"}
    name, cutoff = DETRACTORS[kind]
    if kind == "csat" and scale is not None and scale != SCORE_RANGES["csat"]:
        cutoff = scale[1] - 2
        name = f"dissatisfied ({scale[0]:g}-{cutoff:g})"
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


def score_change_test(
    before: np.ndarray, after: np.ndarray, spec: ScoreSpec
) -> dict[str, Any] | None:
    """Did the score change from the answers `before` to those `after`? NPS: z-test of the
    difference with each side's variance from its promoter and detractor shares (in points);
    CSAT: two-proportion z-test of the top-two-box share; CES: Welch z-test of the means. None
    when a side has no answers or there is no variation to test. `worse` says whether the
    change goes the bad way (NPS or CSAT down, CES up)."""
    n1, n2 = len(before), len(after)
    if n1 < 2 or n2 < 2:
        return None
    extra: dict[str, Any] = {}
    if spec.kind == "nps":
        p1, d1 = int((before >= PROMOTER_MIN).sum()), int((before <= DETRACTOR_MAX).sum())
        p2, d2 = int((after >= PROMOTER_MIN).sum()), int((after <= DETRACTOR_MAX).sum())
        e1, e2 = (p1 - d1) / n1, (p2 - d2) / n2
        se = math.sqrt(nps_variance(p1, d1, n1) + nps_variance(p2, d2, n2))
        if se == 0:
            return None
        measure, b, c, z = "nps", 100 * e1, 100 * e2, (e2 - e1) / se
    elif spec.kind == "csat":
        x1, x2 = _top_two(before, spec.scale), _top_two(after, spec.scale)
        test = two_proportion_test(x1, n1, x2, n2)
        if test is None:
            return None
        measure, b, c, z = "top_two_box", x1 / n1, x2 / n2, test["z"]
        extra = {"baseline_mean": float(before.mean()), "current_mean": float(after.mean())}
    else:
        se = math.sqrt(before.var(ddof=1) / n1 + after.var(ddof=1) / n2)
        if se == 0:
            return None
        b, c = float(before.mean()), float(after.mean())
        measure, z = "mean", (c - b) / se
    return {
        "measure": measure,
        "baseline": b,
        "current": c,
        "difference": c - b,
        "baseline_n": n1,
        "current_n": n2,
        "z": float(z),
        "p_value": two_sided_p(z),
        "worse": WORSE[spec.kind] * (c - b) > 0,
        "small_sample": min(n1, n2) < MIN_ALERT_ANSWERS,
        **extra,
    }


def moved_topics(
    mentions: pd.DataFrame,
    then: pd.Index,
    now: pd.Index,
    alpha: float,
    p_adjust: str = "holm",
    limit: int = MOVED_TOPICS,
) -> list[dict[str, Any]]:
    """The topics whose negative mentions rose from the rows `then` to the rows `now` (the same
    score's respondents in two periods): share of the rows with a negative mention of it, a
    two-proportion test each, p-values adjusted within the topics, biggest evidence first."""
    negative = mentions[(mentions["polarity"] == "negative") & mentions["row"].isin(now)]
    found = []
    everywhere = mentions[mentions["polarity"] == "negative"]
    for topic, rows in topic_rows(negative).items():
        hits_then = int(everywhere.loc[everywhere["topic"] == topic, "row"].isin(then).sum())
        hits_now = len(set(rows.tolist()))
        test = two_proportion_test(hits_then, len(then), hits_now, len(now))
        if test is None or test["difference"] <= 0:
            continue
        found.append(
            {
                "topic": topic,
                "baseline_share": hits_then / len(then),
                "current_share": hits_now / len(now),
                "difference": test["difference"],
                "p_value": test["p_value"],
            }
        )
    for t, p in zip(found, adjust_p_values([t["p_value"] for t in found], p_adjust), strict=True):
        t["p_adjusted"] = p
        t["significant"] = p < alpha
    return sorted(found, key=lambda t: (t["p_value"], -t["difference"]))[:limit]


def score_alerts(
    data: pd.DataFrame,
    mentions: pd.DataFrame,
    scores: Sequence[tuple[ScoreSpec, pd.Series]],
    periods: Sequence[dict[str, str]],
    index: dict[str, pd.Index],
    alpha: float,
    baseline: str,
    notes: list[str],
    p_adjust: str = "holm",
) -> list[dict[str, Any]]:
    """Per score column, its last period with answers against the previous one (`baseline`
    "previous") or all earlier ones ("all"): `score_change_test`, p-values adjusted across the
    score columns, flagged when the change is for the worse, significant at `alpha` and both
    sides have `MIN_ALERT_ANSWERS` answers; each with the topics that moved with it
    (`moved_topics` among the respondents who were classified)."""
    tests = []
    for spec, values in scores:
        filled = [p["period"] for p in periods if values.loc[index[p["period"]]].notna().any()]
        if len(filled) < 2:
            notes.append(f"score alerts for {spec.column!r} need answers in two periods")
            continue
        current = filled[-1]
        before = filled[:-1] if baseline == "all" else filled[-2:-1]
        then = index[before[0]].append([index[p] for p in before[1:]])
        now = index[current]
        result = score_change_test(
            values.loc[then].dropna().to_numpy(), values.loc[now].dropna().to_numpy(), spec
        )
        if result is None:
            continue
        answered = values.notna() & data["_ok"]
        tests.append(
            {
                "column": spec.column,
                "kind": spec.kind,
                "period": current,
                "baseline_period": before if baseline == "all" else before[0],
                **result,
                "topics": moved_topics(
                    mentions, then[answered.loc[then]], now[answered.loc[now]], alpha, p_adjust
                ),
            }
        )
    for t, p in zip(tests, adjust_p_values([t["p_value"] for t in tests], p_adjust), strict=True):
        t["p_adjusted"] = p
        t["flagged"] = bool(t["worse"] and p < alpha and not t["small_sample"])
    return tests
