"""The statistics behind the rollups: Wilson intervals, the two-proportion z-test with Cohen's h,
p-value adjustment for many tests (Holm by default, or another `statsmodels` method by name), and
adjusted classify-and-count (prevalence correction from a confusion matrix).

Intervals, tests and adjustments are `statsmodels`' (`proportion_confint`, `proportions_ztest`,
`multipletests`; the Wilson interval, the z-test and Holm are restated here, to the same floats, because statsmodels'
versions cost milliseconds to seconds per call and the store's alerts make hundreds); the adjusted classify-and-count solver is this module's own: it finds the exact
constrained least-squares optimum, where QuaPy's `ACC.solve_adjustment` (SLSQP) stops up to 0.2
points away (see the README's quantification section).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
from scipy.special import ndtr
from scipy.stats import norm
from statsmodels.stats.multitest import multipletests

_NORMAL = NormalDist()
# statsmodels' `multipletests` method names, with the plain names a report may use.
P_ADJUST_METHODS = {
    "holm": "holm",
    "benjamini-hochberg": "fdr_bh",
    "bonferroni": "bonferroni",
    "hommel": "hommel",
    "benjamini-yekutieli": "fdr_by",
}


def z_value(confidence: float = 0.95) -> float:
    """The two-sided normal quantile for a confidence level (1.959964 for 0.95)."""
    _check_confidence(confidence)
    return _NORMAL.inv_cdf(0.5 + confidence / 2)


def two_sided_p(z: float) -> float:
    """The two-sided p-value of a standard normal statistic `z`.

    >>> round(two_sided_p(1.959964), 4)
    0.05
    """
    return 2 * (1 - _NORMAL.cdf(abs(z)))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion, or None when there are no trials.

    It stays inside [0, 1] and keeps its coverage for small n and shares near 0 or 1, where the
    textbook p ± z·se interval does not.

    >>> [round(x, 4) for x in wilson_interval(8, 10)]
    [0.4902, 0.9433]
    """
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")
    _check_confidence(confidence)
    # `proportion_confint(successes, n, alpha=1 - confidence, method="wilson")` step for step
    # (the same floats), without its array handling: a daily trend asks for a thousand.
    crit = _wilson_crit(confidence)
    crit2 = crit**2
    share = successes / n
    denom = 1 + crit2 / n
    center = (share + crit2 / (2 * n)) / denom
    dist = crit * math.sqrt(share * (1.0 - share) / n + crit2 / (4.0 * n**2)) / denom
    low, high = min(max(center - dist, 0.0), 1.0), min(max(center + dist, 0.0), 1.0)
    return max(0.0, float(low)), min(1.0, float(high))


@functools.lru_cache(maxsize=16)
def _wilson_crit(confidence: float) -> float:
    return float(norm.isf((1 - confidence) / 2.0))


def cohens_h(p1: float, p2: float) -> float:
    """Cohen's h, the effect size of a change from proportion p1 to p2 (0.2 small, 0.5 medium,
    0.8 large)."""
    return 2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))


def two_proportion_test(x1: int, n1: int, x2: int, n2: int) -> dict[str, float] | None:
    """Pooled two-proportion z-test of x1/n1 (before) against x2/n2 (after).

    Returns the difference p2 - p1, z, the two-sided p-value and Cohen's h; None when either
    sample is empty or the pooled share is 0 or 1 (no variation to test).

    >>> round(two_proportion_test(10, 100, 25, 100)["p_value"], 4)
    0.0052
    """
    if n1 <= 0 or n2 <= 0:
        return None
    if x1 + x2 in (0, n1 + n2):
        return None
    z, p_value = _pooled_z(x2, n2, x1, n1)
    p1, p2 = x1 / n1, x2 / n2
    return {
        "difference": p2 - p1,
        "z": float(z),
        "p_value": float(p_value),
        "cohens_h": cohens_h(p1, p2),
    }


def _pooled_z(x_a: int, n_a: int, x_b: int, n_b: int) -> tuple[float, float]:
    # statsmodels' `proportions_ztest([x_a, x_b], [n_a, n_b])` step for step (the same floats),
    # without its array and argument handling: the store's alerts run hundreds per view.
    diff = x_a * 1.0 / n_a - x_b * 1.0 / n_b
    pooled = (x_a + x_b) * 1.0 / (n_a + n_b)
    std = math.sqrt(pooled * (1 - pooled) * (1.0 / n_a + 1.0 / n_b))
    z = diff / std
    return z, 2 * float(ndtr(-abs(z)))


def adjust_p_values(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """Adjusted p-values (same order as given) for a family of tests: testing many topics and
    groups at once would otherwise raise false alarms on noise. `method` is a key of
    `P_ADJUST_METHODS` ("holm" controls the family-wise error; "benjamini-hochberg" the false
    discovery rate, and flags more).

    >>> adjust_p_values([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    >>> [round(p, 4) for p in adjust_p_values([0.01, 0.04, 0.03], "benjamini-hochberg")]
    [0.03, 0.04, 0.04]
    """
    if method not in P_ADJUST_METHODS:
        raise ValueError(
            f"unknown p-value adjustment {method!r}; expected one of {list(P_ADJUST_METHODS)}"
        )
    if len(p_values) == 0:
        return []
    if method == "holm":
        return _holm(np.asarray(p_values, dtype=np.float64))
    adjusted = multipletests(
        np.asarray(p_values, dtype=np.float64), method=P_ADJUST_METHODS[method]
    )
    return [float(p) for p in adjusted[1]]


def _holm(p: np.ndarray) -> list[float]:
    # statsmodels' `multipletests(method="holm")` ends with a full `gc.collect()`: seconds per
    # call in a process holding a model, which made the store's alerts take seconds. This is
    # the same computation (p times the number of hypotheses left, running maximum, capped at 1).
    order = np.argsort(p)
    ranked = np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(ranked, 1.0)
    return [float(x) for x in adjusted]


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values: `adjust_p_values(p_values, "holm")`."""
    return adjust_p_values(p_values, "holm")


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def normalise_confusion(
    matrix: Sequence[Sequence[float]], allow_empty_rows: bool = False
) -> np.ndarray:
    """A confusion matrix (rows = true label, columns = predicted; counts or rates) as row rates
    P(predicted | true). Raises ValueError for a non-square or negative matrix, or for an empty
    row unless `allow_empty_rows` (an empty row then stays all zeros; at least one must not)."""
    c = np.asarray(matrix, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {c.shape}")
    if (c < 0).any() or not np.isfinite(c).all():
        raise ValueError("a confusion matrix must hold finite non-negative counts")
    totals = c.sum(axis=1, keepdims=True)
    empty = totals[:, 0] == 0
    if empty.all() or (empty.any() and not allow_empty_rows):
        rows = [int(i) for i in np.flatnonzero(empty)]
        raise ValueError(f"confusion matrix rows {rows} are empty (no texts of that label)")
    return c / np.where(totals == 0, 1.0, totals)


def adjusted_shares(
    predicted_shares: Sequence[float], matrix: Sequence[Sequence[float]]
) -> np.ndarray:
    """Adjusted classify-and-count: the true shares p that best explain the predicted shares q.

    With C[i, j] = P(predicted j | true i), the predicted shares are q = Cᵀ p. This solves
    min ‖Cᵀp − q‖² subject to p ≥ 0 and Σp = 1 exactly: the equality-constrained least squares
    on every face of the simplex (7 faces for three labels), keeping the best feasible answer, so
    a noisy q never yields negative shares. A label whose row is empty (no labeled texts of it,
    as in a sample whose gold has no neutral) gets share 0.

    >>> c = [[0.8, 0.1, 0.1], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8]]
    >>> q = np.array(c).T @ [0.5, 0.2, 0.3]
    >>> [round(float(x), 6) for x in adjusted_shares(q, c)]
    [0.5, 0.2, 0.3]
    """
    rates = normalise_confusion(matrix, allow_empty_rows=True)
    q = np.asarray(predicted_shares, dtype=np.float64)
    k = rates.shape[0]
    if q.shape != (k,):
        raise ValueError(f"expected {k} predicted shares, got shape {q.shape}")
    a = rates.T
    present = [i for i in range(k) if rates[i].sum() > 0]
    best, best_loss = None, math.inf
    for size in range(len(present), 0, -1):
        for support in itertools.combinations(present, size):
            cols = list(support)
            sub = a[:, cols]
            # KKT system of min ‖sub·x − q‖² s.t. Σx = 1.
            kkt = np.zeros((size + 1, size + 1))
            kkt[:size, :size] = 2 * sub.T @ sub
            kkt[:size, size] = 1
            kkt[size, :size] = 1
            rhs = np.concatenate([2 * sub.T @ q, [1.0]])
            x = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:size]
            if (x < -1e-12).any():
                continue
            p = np.zeros(k)
            p[cols] = np.clip(x, 0, None)
            p /= p.sum()
            loss = float(np.sum((a @ p - q) ** 2))
            if loss < best_loss - 1e-15:
                best, best_loss = p, loss
    if best is None:  # unreachable in exact arithmetic: every vertex is feasible
        best = np.clip(np.linalg.lstsq(a, q, rcond=None)[0], 0, None)
        best /= best.sum()
    return best
