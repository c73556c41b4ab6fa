"""cxnlp.report.stats on statsmodels: p-value adjustment chosen by name, and the rollup passing it on."""

from __future__ import annotations

import pandas as pd
import pytest

from cxnlp.labels import SENTIMENTS
from cxnlp.report.stats import adjust_p_values, holm_adjust
from cxnlp.report.summary import summarize


def test_holm_equals_statsmodels_without_its_garbage_collection(monkeypatch):
    import gc

    import numpy as np
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(3)
    collected = []
    monkeypatch.setattr(gc, "collect", lambda *a: collected.append(1) or 0)
    for size in (1, 2, 7, 40):
        p = rng.uniform(0, 0.2, size).round(3)  # rounded: ties too
        expected = multipletests(p, method="holm")[1].tolist()
        collected.clear()
        assert adjust_p_values(p.tolist(), "holm") == expected
        assert collected == []  # the store's alerts paid seconds for each collection


def test_two_proportion_test_equals_statsmodels():
    import numpy as np
    from statsmodels.stats.proportion import proportions_ztest

    from cxnlp.report.stats import two_proportion_test

    rng = np.random.default_rng(5)
    for _ in range(200):
        n1, n2 = (int(v) for v in rng.integers(1, 5000, 2))
        x1, x2 = int(rng.integers(0, n1 + 1)), int(rng.integers(0, n2 + 1))
        got = two_proportion_test(x1, n1, x2, n2)
        if got is None:
            assert x1 + x2 in (0, n1 + n2)
            continue
        z, p = proportions_ztest([x2, x1], [n2, n1])
        assert (got["z"], got["p_value"]) == (float(z), float(p))


def test_wilson_interval_equals_statsmodels():
    import numpy as np
    from statsmodels.stats.proportion import proportion_confint

    from cxnlp.report.stats import wilson_interval

    rng = np.random.default_rng(6)
    for confidence in (0.9, 0.95, 0.99):
        for _ in range(200):
            n = int(rng.integers(1, 100_000))
            x = int(rng.integers(0, n + 1))
            low, high = proportion_confint(x, n, alpha=1 - confidence, method="wilson")
            assert wilson_interval(x, n, confidence) == (max(0.0, low), min(1.0, high))


def test_benjamini_hochberg_matches_the_step_up_by_hand():
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205]
    m = len(p)
    # BH: p_(i) * m / i, made monotone from the largest down, capped at 1.
    by_hand = [min(p[i] * m / (i + 1) for i in range(j, m)) for j in range(m)]
    assert adjust_p_values(p, "benjamini-hochberg") == pytest.approx(by_hand)
    # Holm is never below BH: it controls the family-wise error, BH the false discovery rate.
    assert all(h >= b - 1e-12 for h, b in zip(holm_adjust(p), by_hand, strict=True))
    assert adjust_p_values([], "holm") == []
    with pytest.raises(ValueError, match="unknown p-value adjustment"):
        adjust_p_values(p, "made-up")


def _weeks(negatives_per_channel_now: list[int]) -> pd.DataFrame:
    """Two weeks, eight channels of 40 rows each; the first week has 8 negatives per channel, the
    second the given number (dated its Sunday: the data reach its end, so it is complete)."""
    rows = []
    for week, counts in (("2026-09-07", [8] * 8), ("2026-09-20", negatives_per_channel_now)):
        for channel, negatives in enumerate(counts):
            for i in range(40):
                label = "negative" if i < negatives else "positive"
                p = {f"p_{s}": 0.8 if s == label else 0.1 for s in SENTIMENTS}
                rows.append(
                    {
                        "sentiment": label,
                        **p,
                        "error": None,
                        "created_at": week,
                        "ch": f"c{channel}",
                    }
                )
    return pd.DataFrame(rows)


def test_summarize_adjusts_alert_p_values_by_the_method_named():
    frame = _weeks([19, 19, 19, 19, 8, 8, 8, 8])
    args = {"group_by": ["ch"], "date_col": "created_at", "period": "week"}
    holm = summarize(frame, **args)
    bh = summarize(frame, **args, p_adjust="benjamini-hochberg")
    assert holm["settings"]["p_adjust"] == "holm"
    assert bh["settings"]["p_adjust"] == "benjamini-hochberg"

    def family(summary):
        return [t for t in summary["alerts"]["tests"] if t["column"] == "ch"]

    raw = [t["p_value"] for t in family(holm)]
    assert [t["p_adjusted"] for t in family(holm)] == pytest.approx(holm_adjust(raw), rel=1e-5)
    assert [t["p_adjusted"] for t in family(bh)] == pytest.approx(
        adjust_p_values(raw, "benjamini-hochberg"), rel=1e-5
    )
    flagged = {
        "holm": sum(t["flagged"] for t in family(holm)),
        "bh": sum(t["flagged"] for t in family(bh)),
    }
    # Four channels rise from 20% to 47.5% negative (p = 0.009 each) among eight tested: too
    # little for Holm (0.009 x 8 > 0.05), enough for Benjamini-Hochberg (0.009 x 8 / 4 < 0.05).
    assert flagged == {"holm": 0, "bh": 4}
    with pytest.raises(ValueError, match="unknown p-value adjustment"):
        summarize(frame, **args, p_adjust="nope")
