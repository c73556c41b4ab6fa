"""The sentiment numbers of one segment from its counts: shares with Wilson intervals, net
sentiment, positive:negative, and the probability-averaged (PCC) shares from the sums of the
probabilities. The report computes the counts from rows, the feedback store from its per-day
aggregates; both call these functions, so the two give the same digits.

Probabilities are summed in millionths (`micro`): classify writes six decimals, so the integer
sums are exact whatever order the rows are added in, and an updated item's old contribution can
be taken out of a stored sum exactly.

>>> numbers = sentiment_numbers({"negative": 1, "neutral": 1, "positive": 2})
>>> numbers["shares"]["positive"], numbers["net_sentiment"], numbers["ratio_pos_neg"]
(0.5, 0.25, 2.0)
>>> pcc_from_sums({"negative": micro(0.2), "neutral": micro(0.2), "positive": micro(0.6)})
{'negative': 0.2, 'neutral': 0.2, 'positive': 0.6}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from cxnlp.labels import SENTIMENTS
from cxnlp.report.stats import wilson_interval

MICRO = 1_000_000


def micro(p: float | None) -> int:
    """A probability in millionths, rounded half up (probabilities are not negative)."""
    return math.floor(p * MICRO + 0.5) if p is not None else 0


def micro_array(p: np.ndarray) -> np.ndarray:
    """`micro` of every probability (0 where missing), as 64-bit integers."""
    p = np.asarray(p, dtype=np.float64)
    return np.where(np.isnan(p), 0.0, np.floor(p * MICRO + 0.5)).astype(np.int64)


def sentiment_numbers(counts: Mapping[str, int], confidence: float = 0.95) -> dict[str, Any]:
    """Shares of the classified items (None without any), their Wilson intervals, net sentiment
    (positive - negative share) and positive:negative (None without negatives)."""
    n = sum(counts[s] for s in SENTIMENTS)
    shares = {s: counts[s] / n if n else None for s in SENTIMENTS}
    return {
        "shares": shares,
        "ci95": {
            s: list(ci) if (ci := wilson_interval(counts[s], n, confidence)) else None
            for s in SENTIMENTS
        },
        "net_sentiment": shares["positive"] - shares["negative"] if n else None,
        "ratio_pos_neg": counts["positive"] / counts["negative"] if counts["negative"] else None,
    }


def pcc_from_sums(micro_sums: Mapping[str, int]) -> dict[str, float] | None:
    """Probability-averaged shares from the per-sentiment sums of probabilities (millionths),
    normalised to add up to one; None when there is nothing to average."""
    total = sum(int(micro_sums[s]) for s in SENTIMENTS)
    if not total:
        return None
    return {s: int(micro_sums[s]) / total for s in SENTIMENTS}
