"""Survey scores in reports: several score columns in one export, CSAT on a declared scale with
its top-two-box share, and alerts on NPS / CSAT falls and CES rises (NPS's variance from its
promoter and detractor shares) that name the topics that moved with them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from cxnlp.cli import main
from cxnlp.report.scores import (
    ScoreSpec,
    nps_variance,
    parse_score_spec,
    score_change_test,
    score_specs,
    score_summary,
    scores_from,
)
from cxnlp.report.stats import two_proportion_test
from cxnlp.report.summary import summarize

NPS = ScoreSpec("nps", "q1", (0, 10))
CES = ScoreSpec("ces", "q3", None)


def test_parse_score_spec_reads_kind_scale_and_column():
    assert parse_score_spec("nps=q1") == NPS
    assert parse_score_spec("csat:1-7=how satisfied?") == ScoreSpec(
        "csat", "how satisfied?", (1.0, 7.0)
    )
    assert parse_score_spec("q1", "nps") == NPS
    assert parse_score_spec("csat=q2").scale == (1, 5)
    assert [s.kind for s in score_specs(["nps=q1", "ces=q3"])] == ["nps", "ces"]
    assert score_specs(None) == []


@pytest.mark.parametrize(
    ("entries", "kind", "message"),
    [
        (["q1"], None, "score_col and score_kind go together"),
        (["nps:1-5=q1"], None, "NPS is asked on 0-10"),
        (["csat:1-2=q2"], None, "at least three answers"),
        (["nps=q1", "ces=q1"], None, r"\['q1'\] named more than once"),
        (["ces=q3"], "nps", "names kind 'ces', not 'nps'"),
        ([], "nps", "score_col and score_kind go together"),
    ],
)
def test_score_specs_refuse_what_cannot_be_read(entries, kind, message):
    with pytest.raises(ValueError, match=message):
        score_specs(entries, kind)


def test_nps_variance_is_the_variance_of_plus_one_zero_minus_one_answers():
    answers = np.random.default_rng(3).integers(0, 11, size=500)
    promoters, detractors = int((answers >= 9).sum()), int((answers <= 6).sum())
    as_points = np.where(answers >= 9, 1, np.where(answers <= 6, -1, 0))
    assert nps_variance(promoters, detractors, len(answers)) == pytest.approx(
        as_points.var() / len(answers)
    )


def test_csat_reports_the_top_two_boxes_of_its_declared_scale():
    values = pd.Series([7, 6, 6, 5, 3, 1, None, 7.0])
    summary = score_summary(scores_from(values, "csat", (1, 7)), "csat", scale=(1, 7))
    answered = values.dropna()
    assert summary["top_two_box"] == pytest.approx((answered >= 6).mean())
    assert summary["csat"] == summary["top_two_box"]
    assert summary["mean"] == pytest.approx(answered.mean())
    assert summary["scale"] == (1, 7) and summary["n"] == 7 and summary["missing"] == 1
    low, high = summary["mean_ci95"]
    assert low < summary["mean"] < high
    # The same answers on the default 1-5 scale are out of range.
    with pytest.raises(ValueError, match="from 1 to 5"):
        scores_from(values, "csat")


def test_nps_fall_is_tested_with_the_variance_of_each_side():
    rng = np.random.default_rng(0)
    before = rng.choice([10, 8, 3], size=300, p=[0.6, 0.3, 0.1]).astype(float)
    after = rng.choice([10, 8, 3], size=300, p=[0.3, 0.35, 0.35]).astype(float)
    test = score_change_test(before, after, NPS)

    def nps(a):
        return ((a >= 9).mean() - (a <= 6).mean()) * 100

    def variance(a):
        return nps_variance(int((a >= 9).sum()), int((a <= 6).sum()), len(a))

    assert test["difference"] == pytest.approx(nps(after) - nps(before))
    z = (nps(after) - nps(before)) / 100 / np.sqrt(variance(before) + variance(after))
    assert test["z"] == pytest.approx(z)
    assert test["p_value"] == pytest.approx(2 * scipy_stats.norm.sf(abs(z)))
    assert test["worse"] and test["p_value"] < 0.001 and not test["small_sample"]
    same = score_change_test(before, before.copy(), NPS)
    assert same["difference"] == 0 and not same["worse"] and same["p_value"] == pytest.approx(1)


def test_ces_rise_is_a_welch_test_and_csat_a_proportion_test():
    rng = np.random.default_rng(1)
    before, after = rng.normal(3.0, 1.0, 80), rng.normal(3.6, 1.5, 60)
    test = score_change_test(before, after, CES)
    welch = scipy_stats.ttest_ind(after, before, equal_var=False)
    assert test["z"] == pytest.approx(welch.statistic)
    assert test["worse"]  # more effort
    assert score_change_test(after, before, CES)["worse"] is False
    csat = ScoreSpec("csat", "q2", (1, 7))
    b, a = np.array([7, 6, 6, 2, 5] * 20, float), np.array([7, 3, 2, 2, 5] * 20, float)
    test = score_change_test(b, a, csat)
    expected = two_proportion_test(60, 100, 20, 100)
    assert test["z"] == pytest.approx(expected["z"]) and test["measure"] == "top_two_box"
    assert test["worse"] and test["current_mean"] < test["baseline_mean"]


def survey_export(n: int = 240, seed: int = 5) -> pd.DataFrame:
    """Two weeks of classified rows with three score columns: in the second week NPS falls, CES
    rises, CSAT (1-7) stays, and negative delivery mentions grow."""
    rng = np.random.default_rng(seed)
    rows = []
    for week, start in enumerate(pd.date_range("2026-03-02", periods=2, freq="7D")):
        for i in range(n):
            bad = rng.random() < (0.1 if week == 0 else 0.45)
            sentiment = "negative" if bad else "positive"
            topic = "delivery" if bad else ("price" if i % 2 else "app")
            rows.append(
                {
                    "id": f"w{week}-{i}",
                    "created_at": (start + pd.Timedelta(days=i % 7)).date().isoformat(),
                    "text": "late" if bad else "fine",
                    "sentiment": sentiment,
                    "p_positive": 0.1 if bad else 0.8,
                    "p_neutral": 0.1,
                    "p_negative": 0.8 if bad else 0.1,
                    "error": None,
                    "topics": json.dumps([{"topic": topic, "polarity": sentiment, "score": 0.9}]),
                    "q1": int(rng.integers(0, 6)) if bad else int(rng.integers(8, 11)),
                    "q2": int(rng.integers(1, 8)) if i % 3 else None,
                    "q3": float(rng.normal(5.5 if bad else 2.5, 1.0)),
                }
            )
    return pd.DataFrame(rows)


def test_summarize_reads_several_score_columns_and_alerts_on_the_bad_way():
    frame = survey_export()
    summary = summarize(
        frame,
        date_col="created_at",
        period="week",
        score_col=["nps=q1", "csat:1-7=q2", "ces=q3"],
    )
    by_column = summary["scores_by_column"]
    assert list(by_column) == ["q1", "q2", "q3"]
    assert summary["scores"] == by_column["q1"]
    answered = frame["q2"].dropna()
    assert by_column["q2"]["top_two_box"] == pytest.approx((answered >= 6).mean(), abs=1e-6)
    assert by_column["q2"]["drivers"]["group"] == "dissatisfied (1-5)"
    week = summary["by_period"][1]
    assert set(week["scores_by_column"]) == {"q1", "q2", "q3"}
    assert summary["settings"]["score_columns"][1] == {
        "kind": "csat",
        "column": "q2",
        "scale": [1.0, 7.0],
    }
    tests = {t["column"]: t for t in summary["alerts"]["scores"]}
    assert tests["q1"]["flagged"] and tests["q1"]["difference"] < 0
    assert tests["q3"]["flagged"] and tests["q3"]["difference"] > 0
    assert not tests["q2"]["flagged"]  # answered at random both weeks
    moved = tests["q1"]["topics"]
    assert moved[0]["topic"] == "delivery" and moved[0]["significant"]
    assert moved[0]["current_share"] > moved[0]["baseline_share"]
    assert all(t["topic"] != "price" for t in moved)  # its negative mentions did not rise


def test_single_score_column_keeps_its_shape():
    frame = survey_export(60)
    summary = summarize(frame, score_col="q1", score_kind="nps")
    assert "scores_by_column" not in summary and summary["scores"]["kind"] == "nps"
    assert summary["scores"]["column"] == "q1"
    assert "score" in summary["overall"] and "scores_by_column" not in summary["overall"]


def test_cli_report_takes_several_score_columns(tmp_path):
    path = tmp_path / "export.csv"
    survey_export(80).to_csv(path, index=False)
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    args = ["report", str(path), "--date-col", "created_at", "--json", str(out_json)]
    args += ["--html", str(out_html), "--score-col", "nps=q1", "--score-col", "ces=q3"]
    assert main(args) == 0
    summary = json.loads(out_json.read_text(encoding="utf-8"))
    assert [c["column"] for c in summary["settings"]["score_columns"]] == ["q1", "q3"]
    assert {t["kind"] for t in summary["alerts"]["scores"]} == {"nps", "ces"}
    html = out_html.read_text(encoding="utf-8")
    assert "NPS (q1)" in html and "CES (q3)" in html and "Scores, period over period" in html
