"""Tests for training.config, training.sampling and training.gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxnlp.modeldir import GATE_FILE, GateRecord, read_gate, write_gate
from training.config import Config, DataConfig
from training.gate import compare, promote
from training.sampling import cap_per_dataset, draw_weights, epoch_batches

CONFIG_DIR = Path(__file__).resolve().parent.parent / "training" / "configs"
TOPIC_CONFIG = CONFIG_DIR / "topics.yaml"  # a topic-head config, read by TopicConfig
CONFIGS = sorted(p for p in CONFIG_DIR.glob("*.yaml") if p != TOPIC_CONFIG)


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load_and_round_trip(path: Path) -> None:
    config = Config.from_yaml(path)
    assert Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_config_from_dict_fills_defaults() -> None:
    config = Config.from_dict({"kind": "fast", "data": {"langs": ["fa"]}, "train": None})
    assert config.kind == "fast"
    assert config.data.langs == ["fa"] and config.data.max_per_dataset == 12000
    assert config.train.batch_size == 32


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"kind": "fast", "epochs": 3}, r"unknown config keys \['epochs'\]; expected some of"),
        (
            {"train": {"epoch": 3}},
            r"unknown keys \['epoch'\] in 'train'; expected some of .*'epochs'",
        ),
        ({"data": {"lang": ["fa"]}}, r"unknown keys \['lang'\] in 'data'"),
        ({"kind": "svm"}, r"kind must be one of \['transformer', 'fast'\], got 'svm'"),
        ({"data": {"langs": ["fa", "tr"]}}, r"data.langs has unknown \['tr'\]"),
        ({"model": {"trained_from_layer": -1}}, r"trained_from_layer must be >= 0, got -1"),
        ({"model": {"pooling": "max"}}, r"model.pooling must be one of \['mean', 'cls'\]"),
        ({"train": {"batch_size": 0}}, "train.batch_size must be >= 1"),
        ({"train": {"epochs": 0}}, r"train.epochs > 0"),
        ({"train": 5}, r"'train' must be a mapping of settings, got int 5"),
        ({"data": ["fa"]}, r"'data' must be a mapping of settings, got list"),
    ],
)
def test_config_from_dict_rejects_bad_input(raw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config.from_dict(raw)


# --- sampling -------------------------------------------------------------------------------


def _pool() -> pd.DataFrame:
    rows = []
    # Unbalanced on purpose: many English rows, few Persian, skewed classes within each language.
    for lang, counts in {"en": (60, 30, 10), "ar": (20, 10, 5), "fa": (8, 4, 2)}.items():
        for label, n in zip(("positive", "negative", "neutral"), counts, strict=True):
            rows += [(lang, label, f"{lang}-{label}-{i}", f"{lang}_set") for i in range(n)]
    return pd.DataFrame(rows, columns=["lang", "label", "text", "dataset"])


@pytest.mark.parametrize(("cap", "expected"), [(50, 50), (10, 10), (5, 5), (1000, 100)])
def test_cap_per_dataset_caps_exactly_and_keeps_label_shares(cap: int, expected: int) -> None:
    pool = _pool()
    capped = cap_per_dataset(pool, cap, seed=1)
    counts = capped["dataset"].value_counts()
    assert counts["en_set"] == expected
    assert counts["fa_set"] == min(cap, 14) and counts["ar_set"] == min(cap, 35)
    en = capped[capped["dataset"] == "en_set"]["label"].value_counts()
    en = en.reindex(["positive", "negative", "neutral"], fill_value=0)
    assert en["positive"] >= en["negative"] >= en["neutral"]
    assert capped.index.is_monotonic_increasing
    assert set(capped["text"]) <= set(pool["text"]) and capped["text"].is_unique


def test_cap_per_dataset_three_small_labels_do_not_overshoot() -> None:
    # Regression: sampling each label's share on its own rounded 3 x 1.67 up to 6 rows for a cap of 5.
    frame = pd.DataFrame({"dataset": "d", "label": ["positive", "negative", "neutral"] * 3})
    capped = cap_per_dataset(frame, 5, seed=0)
    assert len(capped) == 5
    assert sorted(capped["label"].value_counts().tolist()) == [1, 2, 2]


def test_cap_per_dataset_overrides_and_seed() -> None:
    pool = _pool()
    capped = cap_per_dataset(pool, 10, seed=3, overrides={"en_set": 40})
    assert capped["dataset"].value_counts().to_dict() == {"en_set": 40, "ar_set": 10, "fa_set": 10}
    again = cap_per_dataset(pool, 10, seed=3, overrides={"en_set": 40})
    other = cap_per_dataset(pool, 10, seed=4, overrides={"en_set": 40})
    assert capped.index.tolist() == again.index.tolist()
    assert capped.index.tolist() != other.index.tolist()


def test_cap_per_dataset_of_no_rows() -> None:
    # Regression: an empty frame raised pandas' "No objects to concatenate".
    empty = _pool().iloc[:0]
    assert cap_per_dataset(empty, 10, seed=0).empty


def _shares(frame: pd.DataFrame, weights: np.ndarray, column: str) -> dict[str, float]:
    return pd.Series(weights).groupby(frame[column].to_numpy()).sum().to_dict()


def test_draw_weights_balances_languages_and_classes() -> None:
    pool = _pool()
    weights = draw_weights(pool, DataConfig(lang_weights={"fa": 2.0, "ar": 1.0, "en": 1.0}))
    assert weights.sum() == pytest.approx(1.0) and (weights > 0).all()
    lang_shares = _shares(pool, weights, "lang")
    assert lang_shares == pytest.approx({"fa": 0.5, "ar": 0.25, "en": 0.25})
    for lang, share in lang_shares.items():
        in_lang = (pool["lang"] == lang).to_numpy()
        by_label = _shares(pool[in_lang].reset_index(drop=True), weights[in_lang], "label")
        assert by_label == pytest.approx(dict.fromkeys(by_label, share / 3))
    # Within one language and label every row is equally likely.
    fa_pos = ((pool["lang"] == "fa") & (pool["label"] == "positive")).to_numpy()
    assert np.ptp(weights[fa_pos]) == pytest.approx(0.0)


def test_draw_weights_without_class_balance() -> None:
    pool = _pool()
    weights = draw_weights(pool, DataConfig(balance_classes=False))
    assert _shares(pool, weights, "lang") == pytest.approx({"fa": 1 / 3, "ar": 1 / 3, "en": 1 / 3})
    en = (pool["lang"] == "en").to_numpy()
    en_shares = _shares(pool[en].reset_index(drop=True), weights[en], "label")
    assert en_shares["positive"] == pytest.approx(6 * en_shares["neutral"])  # 60 vs 10 rows


def test_epoch_batches_are_seeded_and_cover_the_draws() -> None:
    pool = _pool()
    weights = draw_weights(pool, DataConfig())
    lengths = pool["text"].str.len().to_numpy()
    kwargs = {"n_examples": 500, "batch_size": 16, "seed": 13, "sort_window": 4}
    batches = epoch_batches(weights, lengths, epoch=0, **kwargs)
    again = epoch_batches(weights, lengths, epoch=0, **kwargs)
    assert [b.tolist() for b in batches] == [b.tolist() for b in again]
    next_epoch = epoch_batches(weights, lengths, epoch=1, **kwargs)
    assert [b.tolist() for b in batches] != [b.tolist() for b in next_epoch]
    other_seed = epoch_batches(weights, lengths, epoch=0, **{**kwargs, "seed": 14})
    assert [b.tolist() for b in batches] != [b.tolist() for b in other_seed]
    drawn = np.concatenate(batches)
    assert len(drawn) == 500 and all(len(b) <= 16 for b in batches)
    assert drawn.min() >= 0 and drawn.max() < len(pool)
    # Persian is 14 of 149 rows but a third of the draws.
    fa_share = (pool["lang"].to_numpy()[drawn] == "fa").mean()
    assert 0.25 < fa_share < 0.42


def test_epoch_batches_draw_only_rows_with_weight() -> None:
    weights = np.array([0.0, 0.5, 0.0, 0.5])
    batches = epoch_batches(weights, np.arange(4), n_examples=64, batch_size=8, seed=0, epoch=0)
    assert set(np.concatenate(batches).tolist()) == {1, 3}


# --- gate -----------------------------------------------------------------------------------


def _report(**f1: float) -> dict:
    return {"by_lang": {lang: {"macro_f1": value} for lang, value in f1.items()}}


def test_compare_passes_within_the_margin() -> None:
    result = compare(_report(fa=0.80, ar=0.70, en=0.75), _report(fa=0.795, ar=0.72, en=0.75), 0.01)
    assert result.promoted
    assert [r["lang"] for r in result.rows] == ["ar", "en", "fa"]
    assert {r["lang"]: r["delta"] for r in result.rows} == pytest.approx(
        {"ar": 0.02, "en": 0.0, "fa": -0.005}
    )


def test_compare_fails_one_language_beyond_the_margin() -> None:
    result = compare(_report(fa=0.80, ar=0.70, en=0.75), _report(fa=0.78, ar=0.90, en=0.90), 0.01)
    assert not result.promoted
    assert {r["lang"]: r["ok"] for r in result.rows} == {"ar": True, "en": True, "fa": False}
    assert "WORSE than margin" in result.table() and "not promoted" in result.table()


def test_compare_a_loss_of_exactly_the_margin_passes() -> None:
    # Regression: 0.79 - 0.80 is -0.01000000000000001 in floating point and failed a 0.01 margin.
    assert compare(_report(fa=0.80), _report(fa=0.79), 0.01).promoted


def test_compare_missing_language_in_the_candidate_fails() -> None:
    result = compare(_report(fa=0.8, en=0.8), _report(en=0.9), 0.01)
    assert not result.promoted
    assert {r["lang"]: r["ok"] for r in result.rows} == {"en": True, "fa": False}


def test_compare_nothing_to_compare_is_not_a_promotion() -> None:
    assert not compare({}, _report(fa=0.9), 0.01).promoted


def test_promote_gate_record_round_trips_through_gate_json(tmp_path: Path) -> None:
    result = compare(_report(fa=0.80, en=0.70), _report(fa=0.70), 0.01)
    write_gate(tmp_path, result.record("models/default"))
    saved = read_gate(tmp_path)
    assert saved.kind == "promote" and saved.passed is False and saved.margin == 0.01
    assert saved.reference == "models/default" and saved.verdict == "not promoted"
    rows = {r["lang"]: r for r in saved.rows}
    assert rows["fa"]["reference"] == 0.80 and rows["fa"]["candidate"] == 0.70
    assert rows["fa"]["ok"] is False
    # A language the candidate was not scored on has no score, not NaN (not JSON).
    assert rows["en"]["candidate"] is None and rows["en"]["delta"] is None
    assert "NaN" not in (tmp_path / GATE_FILE).read_text(encoding="utf-8")
    assert "not promoted" in saved.table() and "-" in saved.table().splitlines()[1]


def test_read_gate_is_none_without_a_gate_and_refuses_another_shape(tmp_path: Path) -> None:
    assert read_gate(tmp_path) is None
    # The shape the promote gate wrote before there was one gate record.
    (tmp_path / GATE_FILE).write_text(json.dumps({"promoted": True, "rows": []}))
    with pytest.raises(ValueError, match=r"gate\.json: not a gate record"):
        read_gate(tmp_path)
    with pytest.raises(ValueError, match="unknown gate kind 'retrain'"):
        GateRecord("retrain", True, "ok", 0.01, "x")


def test_cli_models_shows_each_models_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from cxnlp.cli import main

    monkeypatch.setenv("CXNLP_MODELS_DIR", str(tmp_path / "models"))
    gated = _model_dir(tmp_path / "models" / "mine", "new")
    _model_dir(tmp_path / "models" / "plain", "old")
    write_gate(gated, GateRecord("adapt", False, "not better than the base", 0.01, "default"))
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    mine = lines.index(next(line for line in lines if line.startswith("mine ")))
    assert "adapt gate did not pass" in lines[mine + 1]
    assert "not better than the base" in lines[mine + 1]
    assert not any("gate" in line for line in lines[mine + 2 :])


def _model_dir(path: Path, marker: str) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"marker": marker}), encoding="utf-8")
    return path


def test_promote_keeps_the_previous_default_as_a_dated_version(tmp_path: Path) -> None:
    default = _model_dir(tmp_path / "models" / "default", "old")
    candidate = _model_dir(tmp_path / "runs" / "candidate", "new")
    archived = promote(candidate, default)
    assert archived is not None and archived.parent == default.parent
    assert archived.name.startswith("default-20")
    assert json.loads((archived / "config.json").read_text())["marker"] == "old"
    assert json.loads((default / "config.json").read_text())["marker"] == "new"
    assert candidate.exists()  # copied, not moved


def test_promote_twice_in_one_second_keeps_both_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: the second archive had the same timestamped name and the rename failed.
    monkeypatch.setattr("training.gate.time.strftime", lambda fmt: "20250101-120000")
    default = _model_dir(tmp_path / "default", "v1")
    first = promote(_model_dir(tmp_path / "c2", "v2"), default)
    second = promote(_model_dir(tmp_path / "c3", "v3"), default)
    assert first != second
    markers = {json.loads((p / "config.json").read_text())["marker"] for p in (first, second)}
    assert markers == {"v1", "v2"}
    assert json.loads((default / "config.json").read_text())["marker"] == "v3"


def test_promote_without_a_previous_default(tmp_path: Path) -> None:
    candidate = _model_dir(tmp_path / "candidate", "new")
    assert promote(candidate, tmp_path / "default") is None
    assert (tmp_path / "default" / "config.json").exists()


def test_topic_config_loads_and_rejects_unknown_keys(tmp_path: Path) -> None:
    from training.topic_trainer import TopicConfig, load_cues

    config = TopicConfig.from_yaml(TOPIC_CONFIG)
    assert config.weak_cues and set(config.weak_datasets) == {"fa", "ar", "en"}
    assert set(load_cues(config.cues_path())) == {"fa", "ar", "en"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nepoch: 4\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown setting"):
        TopicConfig.from_yaml(bad)


def test_cli_promote_reuses_saved_reports_and_refuses_mismatched_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cxnlp.cli import main

    monkeypatch.setenv("CXNLP_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(
        "training.evaluate.evaluate",
        lambda *a, **k: pytest.fail("a saved report was given: nothing is evaluated"),
    )
    _model_dir(tmp_path / "models" / "default", "old")
    candidate = _model_dir(tmp_path / "runs" / "v3", "new")
    reports = {
        "current": {**_report(fa=0.64, ar=0.74), "data": "corpus"},
        "candidate": {**_report(fa=0.66, ar=0.735), "data": "corpus", "topics": {"x": 1}},
        "elsewhere": {**_report(fa=0.66, ar=0.74), "data": "other"},
    }
    for name, report in reports.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(report), encoding="utf-8")
    args = ["promote", str(candidate), "--current-report", str(tmp_path / "current.json")]
    bad = args + ["--candidate-report", str(tmp_path / "elsewhere.json")]
    assert main(bad) == 2
    assert json.loads((tmp_path / "models" / "default" / "config.json").read_text()) == {
        "marker": "old"
    }
    assert main(args + ["--candidate-report", str(tmp_path / "candidate.json")]) == 0
    default = tmp_path / "models" / "default"
    assert json.loads((default / "config.json").read_text())["marker"] == "new"
    gate = read_gate(default)
    assert gate.kind == "promote" and gate.passed is True
    assert "topics" not in json.loads((default / "metrics.json").read_text())


def test_write_metrics_keeps_topic_scores_beside_the_topic_head(tmp_path: Path) -> None:
    from cxnlp.modeldir import write_metrics

    report = {**_report(fa=0.7), "topics": {"blocks": {"fa_food": {"f1": 0.8}}}}
    plain = _model_dir(tmp_path / "plain", "no topics")
    write_metrics(plain, report)
    assert json.loads((plain / "metrics.json").read_text()) == _report(fa=0.7)
    assert not (plain / "topics").exists()
    tagged = _model_dir(tmp_path / "tagged", "topics")
    (tagged / "topics").mkdir()
    write_metrics(tagged, report)
    assert "topics" not in json.loads((tagged / "metrics.json").read_text())
    assert json.loads((tagged / "topics" / "metrics.json").read_text()) == report["topics"]


def test_draw_weights_dataset_temperature_shares_by_a_power_of_size() -> None:
    frame = pd.DataFrame(
        {
            "lang": ["fa"] * 500,
            "label": ["positive"] * 500,
            "dataset": ["big"] * 400 + ["small"] * 100,
        }
    )
    for alpha, small_share in [(1.0, 0.2), (0.5, 10 / 30), (0.0, 0.5)]:
        weights = draw_weights(frame, DataConfig(dataset_temperature=alpha))
        assert _shares(frame, weights, "dataset")["small"] == pytest.approx(small_share)
        # Rows of one dataset stay equally likely.
        assert np.ptp(weights[:400]) == pytest.approx(0.0)


def test_cap_per_dataset_none_keeps_the_whole_pool() -> None:
    pool = _pool()
    assert len(cap_per_dataset(pool, None, seed=1)) == len(pool)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"model": {"weights_dtype": "int4"}}, "weights_dtype must be float16 or int8"),
        ({"data": {"dataset_temperature": 2}}, r"dataset_temperature must be in \[0, 1\]"),
        ({"data": {"max_per_dataset": 0}}, "max_per_dataset must be >= 1, or null"),
    ],
)
def test_config_rejects_bad_v4_settings(raw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config.from_dict(raw)


def test_prepare_frames_hand_labels_relabel_repeat_and_escape_the_cap(tmp_path: Path) -> None:
    from training.train import prepare_frames

    (tmp_path / "data" / "en").mkdir(parents=True)
    texts = [f"review number {i} was fine" for i in range(6)] + ["the courier came late"]
    pool = [{"text": t, "label": "positive", "split": "train", "lang": "en"} for t in texts]
    pool.append({"text": "dev text", "label": "neutral", "split": "dev", "lang": "en"})
    lines = "".join(json.dumps(r) + "\n" for r in pool)
    # A dataset the catalog knows, so load_corpus reads it.
    (tmp_path / "data" / "en" / "twitter_us_airline.jsonl").write_text(lines, encoding="utf-8")
    hand = [
        {"text": "The courier came  LATE", "label": "negative", "split": "train"},
        {"text": "review number 0 was fine", "label": "mixed", "split": "train"},
        {"text": "dev text", "label": "positive", "split": "dev"},
    ]
    (tmp_path / "hand_en.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in hand), encoding="utf-8"
    )
    raw = {
        "data": {
            "dir": str(tmp_path / "data"),
            "langs": ["en"],
            "max_per_dataset": 3,
            "hand_labels": [str(tmp_path / "hand_{lang}.jsonl")],
            "hand_label_repeat": 4,
        }
    }
    train, dev = prepare_frames(Config.from_dict(raw))
    late = train[train["text"] == "the courier came late"]
    assert len(late) == 4 and set(late["label"]) == {"negative"}
    # The cap still applies to the rest; a `mixed` hand reading and dev rows keep their gold.
    assert len(train) == 3 + 4
    assert dev["label"].tolist() == ["neutral"]
    with pytest.raises(ValueError, match="hand_label_repeat"):
        Config.from_dict({"data": {"hand_label_repeat": 0}})
