"""Rollups of classified exports: intervals, prevalence correction, scores, topics and alerts."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from cxnlp.labels import SENTIMENTS
from cxnlp.modeldir import read_dev_confusion
from cxnlp.report.stats import adjusted_shares, cohens_h, two_proportion_test, wilson_interval
from cxnlp.report.summary import summarize


def classified(sentiments, **columns) -> pd.DataFrame:
    """A frame shaped like `cxnlp classify` output; probabilities lean 0.8 to the label."""
    rows = []
    for s in sentiments:
        p = {f"p_{label}": 0.8 if label == s else 0.1 for label in SENTIMENTS}
        rows.append({"sentiment": s, **p, "error": None, "lang": "en", "topics": "[]"})
    frame = pd.DataFrame(rows)
    for name, values in columns.items():
        frame[name] = values
    return frame


def topics_json(*pairs: tuple[str, str]) -> str:
    return json.dumps([{"topic": t, "polarity": p, "score": 0.9} for t, p in pairs])


# --- intervals and tests ---------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(8, 10), (0, 25), (50, 50), (137, 1000)])
def test_wilson_interval_solves_the_score_equation(k, n):
    # The Wilson bounds are the two p with |k/n - p| = z * sqrt(p(1-p)/n): the roots of
    # (1 + z²/n) p² - (2k/n + z²/n) p + (k/n)² = 0.
    z = 1.959963984540054
    phat = k / n
    roots = sorted(np.roots([1 + z * z / n, -(2 * phat + z * z / n), phat * phat]).real)
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(max(roots[0], 0.0), abs=1e-9)
    assert high == pytest.approx(min(roots[1], 1.0), abs=1e-9)


def test_wilson_interval_matches_the_published_value():
    # 8 of 10 at 95%: 0.4902-0.9433 (Newcombe 1998, table I style worked example).
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 0) is None


def test_two_proportion_test_matches_hand_computation():
    result = two_proportion_test(40, 200, 70, 200)
    pooled = 110 / 400
    z = (0.35 - 0.20) / math.sqrt(pooled * (1 - pooled) * (2 / 200))
    assert result["z"] == pytest.approx(z)
    assert result["p_value"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))
    assert result["cohens_h"] == pytest.approx(cohens_h(0.2, 0.35))
    assert result["cohens_h"] == pytest.approx(2 * math.asin(0.35**0.5) - 2 * math.asin(0.2**0.5))


# --- shares -----------------------------------------------------------------------------------


def test_summarize_counts_errors_and_leaves_them_out_of_shares():
    frame = classified(["positive", "positive", "negative", "neutral"])
    # A row with an error counts as one even where a sentiment is filled in.
    errors = pd.DataFrame(
        [
            {**classified(["negative"]).iloc[0].to_dict(), "error": "empty text"},
            {"sentiment": None, "error": "missing text"},
        ]
    )
    summary = summarize(pd.concat([frame, errors], ignore_index=True))
    overall = summary["overall"]
    assert (summary["rows"], summary["classified"], summary["errors"]) == (6, 4, 2)
    assert overall["raw"]["shares"] == {"negative": 0.25, "neutral": 0.25, "positive": 0.5}
    assert overall["raw"]["net_sentiment"] == pytest.approx(0.25)
    assert overall["raw"]["ratio_pos_neg"] == pytest.approx(2.0)
    assert overall["raw"]["ci95"]["positive"] == pytest.approx(wilson_interval(2, 4), abs=1e-6)
    assert overall["pcc"]["shares"]["positive"] == pytest.approx((0.8 * 2 + 0.1 * 2) / 4)
    assert summary["error_reasons"] == {"empty text": 1, "missing text": 1}


def test_summarize_reads_csv_strings_where_no_error_is_empty(tmp_path):
    from cxnlp.io.tables import read_table, write_table

    frame = classified(["positive", "negative", "negative"])
    frame.loc[2, ["sentiment", "p_positive", "p_neutral", "p_negative"]] = None
    frame.loc[2, "error"] = "empty text"
    write_table(frame, tmp_path / "c.csv")
    summary = summarize(read_table(tmp_path / "c.csv"))
    assert (summary["classified"], summary["errors"]) == (2, 1)
    assert summary["overall"]["raw"]["shares"]["negative"] == 0.5


def test_summarize_is_json_serialisable_and_groups_by_language_and_column():
    frame = classified(
        ["positive", "negative", "neutral", "negative"], channel=["app", "وب", "app", None]
    )
    frame["lang"] = ["fa", "ar", "fa", "en"]
    summary = summarize(frame, group_by=["channel"])
    json.dumps(summary, allow_nan=False)
    assert summary["by_lang"]["fa"]["n"] == 2
    assert set(summary["by_group"]["channel"]) == {"app", "وب", "(missing)"}
    assert summary["overall"]["raw"]["ratio_pos_neg"] == 0.5


def test_summarize_rejects_missing_columns_with_the_fix():
    with pytest.raises(ValueError, match=r"missing column\(s\) \['channel'\].*cxnlp classify"):
        summarize(classified(["positive"]), group_by=["channel"])
    with pytest.raises(ValueError, match="missing column"):
        summarize(pd.DataFrame({"text": ["hi"]}))
    with pytest.raises(ValueError, match="unknown period 'fortnight'"):
        summarize(classified(["positive"], d=["2026-01-01"]), date_col="d", period="fortnight")
    with pytest.raises(ValueError, match="score_col and score_kind go together"):
        summarize(classified(["positive"], s=[3]), score_col="s")


# --- prevalence correction ------------------------------------------------------------------


CONFUSION_RATES = np.array([[0.70, 0.20, 0.10], [0.15, 0.70, 0.15], [0.05, 0.15, 0.80]])


def sample_through(confusion: np.ndarray, true_shares, n: int, rng) -> tuple[np.ndarray, list]:
    true = rng.choice(3, size=n, p=true_shares)
    predicted = [SENTIMENTS[rng.choice(3, p=confusion[t])] for t in true]
    return true, predicted


def test_acc_recovers_true_shares_from_a_known_confusion_matrix():
    rng = np.random.default_rng(7)
    true_shares = np.array([0.5, 0.2, 0.3])
    # The dev matrix is itself a sample (counts), as a model directory would carry it.
    dev_true, dev_pred = sample_through(CONFUSION_RATES, [1 / 3] * 3, 3000, rng)
    dev = np.zeros((3, 3))
    for t, p in zip(dev_true, dev_pred, strict=True):
        dev[t, SENTIMENTS.index(p)] += 1
    _, predicted = sample_through(CONFUSION_RATES, true_shares, 20000, rng)
    summary = summarize(classified(predicted), confusion={"*": dev.tolist()})
    overall = summary["overall"]
    raw = np.array([overall["raw"]["shares"][s] for s in SENTIMENTS])
    acc = np.array([overall["acc"]["shares"][s] for s in SENTIMENTS])
    assert np.abs(raw - true_shares).max() > 0.08  # the raw shares really are biased
    assert np.abs(acc - true_shares).max() < 0.02
    assert "acc" in summary["methods"]


def test_acc_uses_each_languages_own_matrix_then_the_default():
    rng = np.random.default_rng(3)
    fa_rates = np.array([[0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.1, 0.3, 0.6]])
    _, fa_pred = sample_through(fa_rates, [0.6, 0.1, 0.3], 12000, rng)
    _, en_pred = sample_through(CONFUSION_RATES, [0.2, 0.2, 0.6], 12000, rng)
    frame = classified(fa_pred + en_pred)
    frame["lang"] = ["fa"] * len(fa_pred) + ["en"] * len(en_pred)
    summary = summarize(frame, confusion={"*": CONFUSION_RATES.tolist(), "fa": fa_rates.tolist()})
    fa = summary["by_lang"]["fa"]["acc"]
    assert fa["matrix_rows"] == {"fa": 12000}
    assert fa["shares"]["negative"] == pytest.approx(0.6, abs=0.02)
    overall = summary["overall"]["acc"]
    assert overall["matrix_rows"] == {"fa": 12000, "*": 12000}
    assert overall["shares"]["negative"] == pytest.approx(0.4, abs=0.02)


def test_adjusted_shares_stay_non_negative_and_sum_to_one():
    # Predicted shares no true mix can produce: the unconstrained solution has a negative share.
    shares = adjusted_shares([0.0, 0.05, 0.95], CONFUSION_RATES)
    assert (shares >= 0).all()
    assert shares.sum() == pytest.approx(1.0)
    assert shares[0] == 0.0


def test_acc_is_omitted_with_a_note_without_a_usable_matrix():
    summary = summarize(classified(["positive", "negative"]))
    assert "acc" not in summary["overall"] and "acc" not in summary["methods"]
    assert any("ACC omitted" in n for n in summary["notes"])
    summary = summarize(
        classified(["positive"]), confusion={"*": [[1, 0, 0], [0, 0, 0], [0, 0, 1]]}
    )
    assert any("rows [1] are empty" in n for n in summary["notes"])


def test_read_dev_confusion_reads_reorders_and_tolerates_absence(tmp_path):
    assert read_dev_confusion(tmp_path) is None
    (tmp_path / "dev_confusion.json").write_text(
        json.dumps(
            {
                "labels": ["positive", "neutral", "negative"],
                "*": [[9, 1, 0], [1, 8, 1], [0, 2, 8]],
                "fa": {"labels": list(SENTIMENTS), "matrix": [[5, 0, 0], [0, 5, 0], [0, 0, 5]]},
            }
        )
    )
    matrices = read_dev_confusion(tmp_path)
    assert matrices["*"] == [[8, 2, 0], [1, 8, 1], [0, 1, 9]]
    assert matrices["fa"][0] == [5, 0, 0]
    (tmp_path / "dev_confusion.json").write_text(json.dumps({"*": [[1, 2], [3, 4]]}))
    with pytest.raises(ValueError, match="not a 3x3 matrix"):
        read_dev_confusion(tmp_path)


# --- topics -----------------------------------------------------------------------------------


def test_topics_ranked_by_volume_and_negative_share_with_polarity_split():
    topics = (
        [topics_json(("delivery", "negative"))] * 6
        + [topics_json(("delivery", "positive"), ("price", "negative"))] * 4
        + [topics_json(("price", "negative"))] * 2
        + [topics_json(("staff", "positive"))] * 5
        + ["not json", ""]
    )
    frame = classified(["negative"] * 8 + ["positive"] * 11, topics=topics, text=["<b>x</b>"] * 19)
    result = summarize(frame, min_mentions=5)["topics"]
    assert result["ranked_by_volume"] == ["delivery", "price", "staff"]
    assert result["ranked_by_negative_share"] == ["price", "delivery", "staff"]
    delivery = result["items"][0]
    assert delivery["polarity"] == {"negative": 6, "neutral": 0, "positive": 4}
    assert delivery["negative_share"] == pytest.approx(0.6)
    assert delivery["examples"] == ["<b>x</b>"] * 3
    assert result["unparsable_rows"] == 1


# --- scores -----------------------------------------------------------------------------------


def test_nps_counts_promoters_and_detractors():
    scores = [10, 9, 9, 8, 6, 0, 10, 7, 2, 10, ""]
    summary = summarize(
        classified(["neutral"] * 11, score=scores), score_col="score", score_kind="nps"
    )
    nps = summary["scores"]
    assert (nps["promoters"], nps["passives"], nps["detractors"]) == (5, 2, 3)
    assert nps["nps"] == pytest.approx(20.0)
    assert nps["missing"] == 1
    assert nps["ci95"][0] < 20 < nps["ci95"][1]


def test_csat_is_the_share_of_4_and_5_and_ces_is_the_mean():
    frame = classified(["neutral"] * 5, csat=[5, 4, 3, 1, 5], ces=[2, 3, 4, 7, None])
    csat = summarize(frame, score_col="csat", score_kind="csat")["scores"]
    assert csat["csat"] == pytest.approx(0.6)
    assert csat["mean"] == pytest.approx(3.6)
    ces = summarize(frame, score_col="ces", score_kind="ces")["scores"]
    assert ces["mean"] == pytest.approx(4.0)
    assert (ces["n"], ces["missing"]) == (4, 1)


def test_scores_outside_the_scale_are_rejected():
    with pytest.raises(ValueError, match="whole numbers from 0 to 10"):
        summarize(classified(["neutral"] * 2, s=[11, 3]), score_col="s", score_kind="nps")
    with pytest.raises(ValueError, match="whole numbers from 1 to 5"):
        summarize(classified(["neutral"] * 2, s=[0, 3]), score_col="s", score_kind="csat")


def test_detractor_lift_finds_the_topic_behind_low_scores():
    n = 200
    detractor = np.arange(n) < 60
    topics = [
        topics_json(("price", "negative"))
        if (d and i % 4 != 0) or (not d and i % 10 == 0)
        else "[]"
        for i, d in enumerate(detractor)
    ]
    sentiments = ["negative" if d else "positive" for d in detractor]
    frame = classified(sentiments, topics=topics, score=np.where(detractor, 3, 9))
    drivers = summarize(frame, score_col="score", score_kind="nps")["scores"]["drivers"]
    price = drivers["topics"][0]
    assert price["topic"] == "price" and price["over_represented"]
    assert price["lift"] == pytest.approx((45 / 60) / (59 / 200), rel=1e-4)
    negative = next(s for s in drivers["sentiments"] if s["sentiment"] == "negative")
    assert negative["over_represented"]


# --- periods and alerts -------------------------------------------------------------------------


def two_weeks(neg_before: float, neg_after: float, n: int, rng, topic_after: float = 0.1):
    rows = []
    for day, neg, topic in (
        ("2026-03-02", neg_before, 0.1),
        # A Sunday: the data reach the end of the second week, so it is complete and tested.
        ("2026-03-15", neg_after, topic_after),
    ):
        labels = rng.choice(SENTIMENTS, size=n, p=[neg, 0.2, 0.8 - neg])
        has_topic = rng.random(n) < topic
        rows.append(
            classified(
                labels,
                created_at=[day] * n,
                channel=rng.choice(["app", "web", "phone"], size=n),
                topics=[topics_json(("delivery", "negative")) if t else "[]" for t in has_topic],
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_alert_fires_on_a_real_rise_of_the_negative_share_and_of_a_topic():
    frame = two_weeks(0.20, 0.35, 400, np.random.default_rng(1), topic_after=0.3)
    alerts = summarize(frame, group_by=["channel"], date_col="created_at")["alerts"]
    flagged = {(a["kind"], a["column"], a["value"]) for a in alerts["flagged"]}
    assert ("negative_share", None, None) in flagged
    assert ("topic_share", "topic", "delivery") in flagged
    headline = next(a for a in alerts["tests"] if a["column"] is None)
    assert headline["difference"] > 0.1 and headline["p_value"] < 0.001
    assert headline["cohens_h"] > 0.2


def test_alerts_stay_silent_on_noise():
    false_alarms = 0
    for seed in range(30):
        frame = two_weeks(0.25, 0.25, 300, np.random.default_rng(seed))
        alerts = summarize(frame, group_by=["channel"], date_col="created_at")["alerts"]
        false_alarms += bool(alerts["flagged"])
    # Three families at 5% each, rises only: about 2-4% of runs; 30 runs allow a few.
    assert false_alarms <= 3


def test_alerts_do_not_flag_a_fall():
    frame = two_weeks(0.35, 0.15, 400, np.random.default_rng(2))
    assert summarize(frame, date_col="created_at")["alerts"]["flagged"] == []


def test_periods_fill_gaps_and_count_undated_rows():
    dates = ["2026-01-05", "2026-01-06", "2026-01-26", "not a date", ""]
    summary = summarize(classified(["positive"] * 5, d=dates), date_col="d", period="week")
    periods = summary["by_period"]
    assert [p["start"] for p in periods] == ["2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26"]
    assert [p["n"] for p in periods] == [2, 0, 0, 1]
    assert any("2 rows have no readable 'd'" in n for n in summary["notes"])
    # The data end on Monday 01-26: that week is partial, and the only complete week with rows
    # (01-05) has nothing before it to test against.
    scope = summary["alerts"]["last_complete"]
    assert scope["start"] == "2026-01-05" and scope["partial"] == periods[-1]["period"]
    assert summary["alerts"]["current"] is None and scope["note"] in summary["notes"]
    with pytest.raises(ValueError, match="no readable dates"):
        summarize(classified(["positive"], d=["soon"]), date_col="d")


# --- a hand-labeled sample from the user's own channel -----------------------------------------


def labeled_frame(rates: np.ndarray, shares, n: int, rng) -> pd.DataFrame:
    truth, predicted = sample_through(rates, shares, n, rng)
    frame = classified(predicted)
    frame["label"] = [SENTIMENTS[t] for t in truth]
    return frame


def test_labeled_sample_corrects_a_prevalence_shift_the_dev_matrix_cannot_see():
    rng = np.random.default_rng(11)
    # The channel's confusion differs from the model's dev one: it calls many negatives neutral.
    channel = np.array([[0.6, 0.35, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]])
    sample = labeled_frame(channel, [1 / 3] * 3, 3000, rng)
    export = labeled_frame(channel, [0.6, 0.1, 0.3], 20000, rng)
    true = np.array([0.6, 0.1, 0.3])
    dev_only = summarize(export.drop(columns="label"), confusion={"*": CONFUSION_RATES.tolist()})
    corrected = summarize(
        export.drop(columns="label"), labeled=sample, confusion={"*": CONFUSION_RATES.tolist()}
    )
    shares = {
        method: np.array([summary["overall"][method]["shares"][s] for s in SENTIMENTS])
        for method, summary in (("acc", dev_only), ("raw", corrected))
    }
    for method in ("acc", "pacc"):
        shares[f"labeled {method}"] = np.array(
            [corrected["overall"][method]["shares"][s] for s in SENTIMENTS]
        )
    assert np.abs(shares["raw"] - true).max() > 0.1
    assert np.abs(shares["acc"] - true).max() > 0.1  # the wrong matrix does not fix it
    assert np.abs(shares["labeled acc"] - true).max() < 0.02
    assert np.abs(shares["labeled pacc"] - true).max() < 0.02
    assert corrected["settings"]["confusion_source"] == "labeled sample"
    assert "pacc" in corrected["methods"] and "hand-labeled" in corrected["methods"]["acc"]


def test_labeled_rows_inside_the_export_give_its_exact_shares_and_the_models_scores():
    rng = np.random.default_rng(5)
    frame = labeled_frame(CONFUSION_RATES, [0.5, 0.2, 0.3], 600, rng)
    frame.loc[::2, "label"] = None  # only half the rows were checked by hand
    summary = summarize(frame, labeled=frame)
    checked = frame[frame["label"].notna()]
    truth = checked["label"].value_counts(normalize=True)
    sample = summary["labeled_sample"]
    assert sample["n"] == len(checked) == 300
    quality = sample["by_lang"]["*"]
    assert quality["accuracy"] == pytest.approx((checked["label"] == checked["sentiment"]).mean())
    assert quality["gold_shares"]["negative"] == pytest.approx(truth["negative"])
    assert set(sample["by_lang"]) == {"*", "en"}
    from sklearn.metrics import f1_score

    expected_f1 = f1_score(checked["label"], checked["sentiment"], average="macro")
    assert quality["macro_f1"] == pytest.approx(expected_f1)
    # Restricted to the checked rows, the correction reproduces their gold shares exactly.
    exact = summarize(checked, labeled=checked)["overall"]
    for method in ("acc", "pacc"):
        for s in SENTIMENTS:
            assert exact[method]["shares"][s] == pytest.approx(truth[s], abs=1e-9)


def test_a_sample_without_neutral_gold_puts_neutral_at_zero_and_says_so():
    rng = np.random.default_rng(2)
    sample = labeled_frame(CONFUSION_RATES, [0.5, 0.0, 0.5], 400, rng)
    export = labeled_frame(CONFUSION_RATES, [0.7, 0.0, 0.3], 4000, rng).drop(columns="label")
    summary = summarize(export, labeled=sample)
    acc = summary["overall"]["acc"]["shares"]
    assert acc["neutral"] == 0.0
    assert acc["negative"] == pytest.approx(0.7, abs=0.04)
    assert summary["overall"]["raw"]["shares"]["neutral"] > 0.1
    assert any("no neutral gold" in note for note in summary["notes"])


def test_a_labeled_sample_must_hold_enough_known_labels():
    frame = classified(["positive"] * 40)
    frame["label"] = ["postive"] * 35 + ["positive"] * 5
    with pytest.raises(ValueError, match="5 classified rows have a sentiment in 'label'"):
        summarize(frame, labeled=frame)
    with pytest.raises(ValueError, match="no gold label column 'gold'"):
        summarize(frame, labeled=frame, gold_col="gold")
    frame["label"] = ["postive"] * 5 + ["Positive "] * 35
    summary = summarize(frame, labeled=frame)
    assert summary["labeled_sample"]["n"] == 35
    assert summary["labeled_sample"]["unknown_labels"] == {"postive": 5}
    assert any("'postive'" in note for note in summary["notes"])


def test_a_labeled_sample_that_was_never_classified_is_refused_with_the_fix():
    raw = pd.DataFrame({"text": ["a"] * 40, "label": ["positive"] * 40})
    with pytest.raises(ValueError, match="must be `cxnlp classify` output"):
        summarize(classified(["positive"]), labeled=raw)
