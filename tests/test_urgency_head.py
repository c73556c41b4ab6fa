"""The learned urgency head: how its probability and the cues combine into the urgency result
(score, level, evidence with `cue: "model"` when the head alone decides), on a tiny encoder where
it covers a language and the cues alone elsewhere, saved and loaded as `urgency/`, and fitted by
`cxnlp train-urgency` on the tuning and training sets only (never an untouched test), each set
read with its as-of-draw cue list, with cached signals; and the real fitting sets and their as-of
lists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import cxnlp
import training.urgency_head as urgency_head
from cxnlp.modeldir import CONFIG_FILE, METRICS_FILE, WEIGHTS_FILE, has_urgency, urgency_dir
from cxnlp.models.mixed import SIGNALS
from cxnlp.models.pipeline import AspectOptions
from cxnlp.models.store import ModelLoadError
from cxnlp.models.urgency import UrgencyHead, urgency_signal_names, urgency_signals
from cxnlp.text.urgency import MODEL_CUE, LearnedUrgency, is_urgent, score_urgency
from training.urgency_head import (
    ASOF_DIR,
    EVAL_DIR,
    SET_FILES,
    UNTOUCHED_FILES,
    UrgencyConfig,
    cue_matches,
    gather_urgency_rows,
    train_urgency,
)

CUED = "I will cancel my account"  # an English churn cue
PLAIN = "the soup was cold. the driver was rude and late"  # two clauses, no cue
TEXTS = [CUED, PLAIN, "غذا سرد بود"]
LANGS = ["en", "en", "fa"]


def constant_head(width: int, bias: float, langs=("en",), or_cues: bool = True) -> UrgencyHead:
    """A head whose probability is sigmoid(bias) for every text."""
    size = len(urgency_signal_names()) + width
    return UrgencyHead(
        width,
        np.zeros(size),
        np.ones(size),
        np.zeros(size),
        bias,
        thresholds={lang: 0.5 for lang in langs},
        or_rule={lang: or_cues for lang in langs},
    )


def feature_width(model) -> int:
    return model.features(TEXTS[:1], LANGS[:1]).shape[1]


def test_urgency_score_with_a_learned_head_keeps_the_schema():
    # The head alone: urgent, its evidence the span given (or the whole text), cue "model".
    text = "my card was blocked. why?"
    alone = score_urgency(text, "en", {}, learned=LearnedUrgency(0.8, 0.6, span=(0, 20)))
    assert set(alone) == {"score", "level", "evidence"} and is_urgent(alone)
    assert alone["evidence"] == [
        {"start": 0, "end": 20, "text": "my card was blocked.", "cue": MODEL_CUE}
    ]
    whole = score_urgency(text, "en", {}, learned=LearnedUrgency(0.8, 0.6))
    assert whole["evidence"][0]["text"] == text
    # 0.5 at the threshold (urgent), just below it not urgent (rounding included).
    assert score_urgency(text, "en", {}, learned=LearnedUrgency(0.6, 0.6))["score"] == 0.5
    below = score_urgency(text, "en", {}, learned=LearnedUrgency(0.599999, 0.6))
    assert not is_urgent(below) and below["evidence"] == [] and below["score"] < 0.5
    # A cue counts whatever the head says (or_cues), and stays the evidence.
    cued = score_urgency(CUED, "en", {}, learned=LearnedUrgency(0.01, 0.6))
    assert is_urgent(cued) and [e["cue"] for e in cued["evidence"]] == ["churn"]
    both = score_urgency(CUED, "en", {}, learned=LearnedUrgency(0.99, 0.6))
    assert [e["cue"] for e in both["evidence"]] == ["churn"]
    # Where the cues do not count, the head decides; the cue spans stay as evidence.
    overruled = score_urgency(CUED, "en", {}, learned=LearnedUrgency(0.01, 0.6, or_cues=False))
    assert not is_urgent(overruled) and overruled["evidence"][0]["cue"] == "churn"
    # No head: the cues alone, as before.
    assert score_urgency(CUED, "en", {}) == score_urgency(CUED, "en", {}, learned=None)


def test_urgency_signals_are_the_mixed_signals_then_a_flag_per_cue_category():
    names = urgency_signal_names()
    assert names[: len(SIGNALS)] == SIGNALS and names[-1] == "cues"
    signals = urgency_signals(np.arange(len(SIGNALS)), [{"cue": "fraud"}, {"cue": "churn"}])
    named = dict(zip(names, signals.tolist(), strict=True))
    assert named["cue_fraud"] == named["cue_churn"] == 1.0 and named["cue_safety"] == 0.0
    assert named["cues"] == 2.0 and named[SIGNALS[3]] == 3.0


def test_urgency_reduced_fit_folds_into_one_linear_head_over_the_raw_features():
    from cxnlp.models.linear_head import LinearHead
    from training.linear_head import Projection, fit_reduced, logistic, standardiser

    class Three(LinearHead):
        SIGNALS = ("a", "b", "c")

    rng = np.random.default_rng(1)
    signals, features = rng.normal(size=(60, 3)), rng.normal(size=(60, 12)) * 5 + 2
    gold = (signals[:, 0] + features[:, 1] / 5 + rng.normal(size=60)) > 0
    weights = np.ones(60)
    projection = Projection.of(features, 4)
    mean, scale, coef, bias = fit_reduced(signals, features, gold, weights, 1.0, projection)
    head = Three(12, mean, scale, coef, bias)
    x = np.hstack([signals, projection.project(features)])
    m, s = standardiser(x)
    reference = logistic(1.0).fit((x - m) / s, gold, sample_weight=weights)
    np.testing.assert_allclose(
        head.probability(signals, features), reference.predict_proba((x - m) / s)[:, 1], atol=1e-9
    )


def test_the_urgency_head_decides_where_it_covers_the_language_and_cues_elsewhere(
    tiny_head_model_path,
):
    model = cxnlp.load(tiny_head_model_path)
    assert model.urgency_head is None
    cue_only = model.predict(TEXTS, LANGS)
    assert [is_urgent(p.urgency) for p in cue_only] == [True, False, False]
    width = feature_width(model)
    model.urgency_head = constant_head(width, bias=5.0)  # says "urgent" to every English text
    predictions = model.predict(TEXTS, LANGS)
    assert [is_urgent(p.urgency) for p in predictions] == [True, True, False]
    assert predictions[0].urgency["evidence"][0]["cue"] == "churn"
    evidence = predictions[1].urgency["evidence"]
    assert len(evidence) == 1 and evidence[0]["cue"] == MODEL_CUE
    # The most negative of the text's clauses, as offsets into it.
    assert evidence[0]["text"] in ("the soup was cold.", "the driver was rude and late")
    assert PLAIN[evidence[0]["start"] : evidence[0]["end"]] == evidence[0]["text"]
    model.urgency_head = constant_head(width, bias=-5.0)  # "not urgent"; the cues still count
    assert [is_urgent(p.urgency) for p in model.predict(TEXTS, LANGS)] == [True, False, False]
    model.urgency_head = constant_head(width, bias=-5.0, or_cues=False)
    assert [is_urgent(p.urgency) for p in model.predict(TEXTS, LANGS)] == [False, False, False]
    model.aspect_options = AspectOptions(urgency_head=False)
    assert [p.urgency for p in model.predict(TEXTS, LANGS)] == [p.urgency for p in cue_only]


def test_the_urgency_head_survives_save_and_load(tiny_head_model_path, tmp_path):
    model = cxnlp.load(tiny_head_model_path)
    width = feature_width(model)
    size = len(urgency_signal_names()) + width
    rng = np.random.default_rng(0)
    head = UrgencyHead(
        width,
        rng.normal(size=size),
        rng.uniform(0.5, 2, size=size),
        rng.normal(size=size),
        0.3,
        thresholds={"en": 0.4, "fa": 0.6},
        or_rule={"en": True, "fa": True},
        info={"training": {"C": 0.01}},
    )
    model.urgency_head = head
    before = model.predict(TEXTS, LANGS)
    model.save(tmp_path / "m")
    assert {p.name for p in urgency_dir(tmp_path / "m").iterdir()} == {CONFIG_FILE, WEIGHTS_FILE}
    loaded = cxnlp.load(tmp_path / "m")
    assert loaded.urgency_head.thresholds == {"en": 0.4, "fa": 0.6}
    assert loaded.urgency_head.info == {"training": {"C": 0.01}}
    assert [p.urgency["level"] for p in loaded.predict(TEXTS, LANGS)] == [
        p.urgency["level"] for p in before
    ]
    assert not has_urgency(tiny_head_model_path)
    # A head written for other signals is refused, not misread.
    config_path = urgency_dir(tmp_path / "m") / CONFIG_FILE
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config_path.write_text(json.dumps({**config, "signals": ["cue_churn"]}), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="train-urgency"):
        cxnlp.load(tmp_path / "m")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


# The as-of-draw cue list of the tiny sets: it knows "call me back", not "ring me back"; the list
# as of train4's draw knows both.
ASOF_CUES = """version: 1
prefix: {en: ""}
weights: {safety: 0.95, fraud: 0.9, complaint: 0.9, churn: 0.85, callback: 0.8}
cues:
  en:
    callback: [%s]
"""
# The sets of the tiny eval dir: (name, file, urgent texts, the as-of list's phrases).
TINY_SETS = (
    ("tuning", "urgency_en.jsonl", 24, '"call me back"'),
    ("heldout", "urgency_heldout_en.jsonl", 16, '"call me back"'),
    ("heldout2", "urgency_heldout2_en.jsonl", 8, '"call me back"'),
    ("heldout3", "urgency_heldout3_en.jsonl", 8, '"call me back"'),
    ("train4", "urgency_train4_en.jsonl", 8, '"call me back", "ring me back"'),
)
UNTOUCHED = "urgency_untouched_{lang}.jsonl"


@pytest.fixture()
def tiny_sets(tmp_path, monkeypatch) -> Path:
    """English urgency sets: urgent texts ask to be called or rung back, the others praise the
    food; the as-of cue lists know only a quarter of the urgent phrasings, except train4's, which
    knows them all. One more untouched test set (`UNTOUCHED`, added to the real list)."""
    sets = tmp_path / "eval"
    (sets / "urgency_cues_asof").mkdir(parents=True)
    for name, file, n, phrases in TINY_SETS:
        rows = []
        for i in range(n):
            ask = "call me back" if i % 4 == 0 else "ring me back"
            rows.append(
                {"id": f"{name}:{i}", "text": f"please {ask} now {name} {i}", "urgent": True}
            )
            rows.append(
                {"id": f"{name}:x{i}", "text": f"lovely food here {name} {i}", "urgent": False}
            )
        write_jsonl(sets / file, rows)
        asof = sets / "urgency_cues_asof" / f"{name}.yaml"
        asof.write_text(ASOF_CUES % phrases, encoding="utf-8")
    monkeypatch.setattr(urgency_head, "UNTOUCHED_FILES", (*urgency_head.UNTOUCHED_FILES, UNTOUCHED))
    untouched = [{"text": "never seen before", "urgent": True}]
    write_jsonl(sets / UNTOUCHED.format(lang="en"), untouched)
    return sets


def tiny_config(eval_dir: Path, **overrides) -> UrgencyConfig:
    return UrgencyConfig(
        eval_dir=str(eval_dir), langs=("en",), folds=3, repeats=1, components=(4, 8),
        strengths=(0.1, 1.0), min_precision=0.8, **overrides,
    )  # fmt: skip


def test_urgency_rows_are_the_tuning_sets_read_with_their_as_of_cues(tiny_sets):
    rows = gather_urgency_rows(tiny_config(tiny_sets))
    assert rows.groupby("set").size().to_dict() == {
        "heldout": 32, "heldout2": 16, "heldout3": 16, "train4": 16, "tuning": 48,
    }  # fmt: skip
    matched = rows[[bool(m) for m in cue_matches(rows, tiny_config(tiny_sets))]]
    # "call me back" only (6 + 4 + 2 + 2), and every urgent train4 text: its own as-of list.
    assert matched.groupby("set").size().to_dict() == {
        "heldout": 4, "heldout2": 2, "heldout3": 2, "train4": 8, "tuning": 6,
    }  # fmt: skip
    # The shipped list knows "ring me back" too.
    shipped = [bool(m) for m in cue_matches(rows, tiny_config(tiny_sets, cues="current"))]
    assert sum(shipped) > len(matched)
    with pytest.raises(ValueError, match="untouched tests: .*urgency_untouched"):
        gather_urgency_rows(tiny_config(tiny_sets, sets=("tuning", "untouched")))
    # A training text that the untouched test holds is refused.
    write_jsonl(
        tiny_sets / UNTOUCHED.format(lang="en"),
        [{"text": "Lovely  food here train4 3", "urgent": False}],
    )
    with pytest.raises(ValueError, match="untouched test"):
        gather_urgency_rows(tiny_config(tiny_sets))


def test_urgency_rows_refuse_the_fourth_held_out_set_and_its_texts(tiny_sets):
    """heldout4 is an untouched test: never a set to fit on, and a training text it holds is refused."""
    assert not gather_urgency_rows(tiny_config(tiny_sets)).empty
    with pytest.raises(ValueError, match="untouched"):
        gather_urgency_rows(tiny_config(tiny_sets, sets=("tuning", "heldout4")))
    write_jsonl(
        tiny_sets / "urgency_heldout4_en.jsonl",
        [{"text": "please CALL me back now  heldout 4", "urgent": True}],
    )
    with pytest.raises(ValueError, match="untouched test"):
        gather_urgency_rows(tiny_config(tiny_sets))


def test_train_urgency_fits_saves_and_reuses_its_cached_signals(
    tiny_head_model_path, tiny_sets, tmp_path, capsys
):
    from cxnlp.cli import main

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_head_model_path, model_dir)
    cache = tmp_path / "cache"
    report = train_urgency(model_dir, tiny_config(tiny_sets), cache_dir=cache)
    assert has_urgency(model_dir) and list(cache.glob("urgency/*.npz"))
    assert report["signals"]["computed"] == 128 and report["signals"]["cached"] == 0
    en = report["cv"]["en"]
    assert en["cues"]["recall"] == pytest.approx(22 / 64, abs=1e-4)  # rounded to 4 places
    assert {"precision", "recall", "threshold"} <= set(en["head_or_cues"])
    assert en["covered"], en  # "ring me back" is learned from the features
    assert en["head_or_cues"]["recall"] > en["cues"]["recall"]
    assert en["added"]["flagged"] >= en["added"]["urgent"] > 0
    metrics = json.loads((urgency_dir(model_dir) / METRICS_FILE).read_text(encoding="utf-8"))
    assert metrics["cv"]["en"]["head_or_cues"]["threshold"] == en["head_or_cues"]["threshold"]
    loaded = cxnlp.load(model_dir)
    assert loaded.urgency_head.covers("en") and not loaded.urgency_head.covers("fa")
    assert loaded.urgency_head.or_rule["en"]
    # The verb, again on the same model: every signal comes from the cache.
    code = main(
        ["train-urgency", "--model", str(model_dir), "--eval-dir", str(tiny_sets),
         "--langs", "en", "--cache-dir", str(cache), "--min-precision", "0.8"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "rows en: tuning 48, heldout 32, heldout2 16, heldout3 16, train4 16" in out
    assert "0 read, 128 cached" in out
    assert "seconds:" in out


def test_every_fitting_set_has_its_files_and_as_of_list_and_none_is_untouched():
    assert {"heldout3", "train4"} <= set(SET_FILES)
    assert not set(SET_FILES.values()) & set(UNTOUCHED_FILES)
    for name, pattern in SET_FILES.items():
        assert (EVAL_DIR / ASOF_DIR / f"{name}.yaml").is_file(), name
        for lang in ("fa", "ar", "en"):
            rows = [json.loads(line) for line in (EVAL_DIR / pattern.format(lang=lang)).open()]
            assert rows and all(isinstance(r["urgent"], bool) for r in rows), (name, lang)
    # Each set is read with its own list: train4's is the list at its draw, which has changed since.
    rows = gather_urgency_rows(UrgencyConfig(sets=("train4",)))
    asof = [bool(m) for m in cue_matches(rows, UrgencyConfig(sets=("train4",)))]
    current = [bool(m) for m in cue_matches(rows, UrgencyConfig(sets=("train4",), cues="current"))]
    assert asof != current


def test_train4_is_odd_by_hash_and_shares_no_text_with_another_labeled_set():
    """train4 (a training set) holds only texts whose md5 of the normalized text starts with an odd
    hex digit (heldout4, the test drawn beside it, only even ones) and no text of any other urgency
    set, hard case, topic label or topic set; restated from `sample_urgency_train4.py`."""
    import hashlib

    from cxnlp.text.clean import text_key
    from cxnlp.text.normalize import normalize

    root = EVAL_DIR.parent
    for lang in ("fa", "ar", "en"):
        rows = [json.loads(line) for line in (EVAL_DIR / f"urgency_train4_{lang}.jsonl").open()]
        assert len(rows) >= 200 and sum(r["urgent"] for r in rows) >= 55
        assert all(r["set"] == "train4" and r["lang"] == lang for r in rows)
        assert all(r.get("reason") for r in rows if r["urgent"])
        assert len({r["id"] for r in rows}) == len(rows)
        digits = {hashlib.md5(normalize(r["text"], lang).encode()).hexdigest()[0] for r in rows}
        assert digits <= set("13579bdf")
        drawn = {text_key(r["text"]) for r in rows}
        others = [
            *EVAL_DIR.glob(f"urgency_*{lang}.jsonl"),
            *EVAL_DIR.glob(f"topics_*{lang}.jsonl"),
            *(root / "hard_cases").glob(f"*{lang}.jsonl"),
            *(root / "topic_labels").glob(f"*{lang}.jsonl"),
        ]
        others = [p for p in others if "train4" not in p.name]
        assert len(others) >= 8
        for other in others:
            texts = {text_key(json.loads(line)["text"]) for line in other.open() if line.strip()}
            assert not drawn & texts, other.name
        second = [
            json.loads(line)
            for line in (EVAL_DIR / f"urgency_train4_second_pass_{lang}.jsonl").open()
        ]
        assert len(second) >= len(rows) // 10 and {r["id"] for r in second} <= {
            r["id"] for r in rows
        }
