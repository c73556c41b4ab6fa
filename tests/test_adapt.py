"""Adapting a model to a user's own rows, its gate, and the active-labeling files, on a tiny
randomly initialised encoder (the real weights are not the point here)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_transformer import TEXTS, tiny_config

from cxnlp.labels import SENTIMENTS
from cxnlp.modeldir import read_gate, write_gate
from training.adapt import AdaptConfig, adapt, file_sha256, stratified_split, update_fast
from training.labeling import (
    companion_paths,
    core_set,
    margin_uncertainty,
    read_label_studio,
    select_for_labeling,
    write_selection,
)

QUICK = AdaptConfig(epochs=2, min_steps=3, max_steps=6, batch_size=4)


def _rows() -> list[dict]:
    return [
        {"text": text, "label": label, "lang": lang}
        for (lang, label), texts in TEXTS.items()
        for text in texts
    ]


@pytest.fixture(scope="module")
def base_dir(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny blend (transformer + fast) with a topic head: the shape of the shipped default."""
    from cxnlp.modeldir import TOPICS_DIR
    from cxnlp.models.store import load
    from cxnlp.topics.tagger import TopicTagger
    from cxnlp.topics.taxonomy import TOPICS
    from training.train import train

    root = tmp_path_factory.mktemp("adapt-base")
    data = root / "pool.csv"
    rows = [dict(r, split=s) for r, s in zip(_rows(), ["train", "train", "dev"] * 9, strict=True)]
    pd.DataFrame(rows).to_csv(data, index=False)
    config = tiny_config(tiny_backbone)
    config.model.blend_fast = True
    config.model.n_features = 2**12
    base = train(config, root / "base", data_file=data)
    width = load(base).features(["x"], ["en"]).shape[1]
    TopicTagger(TOPICS, width, hidden=4).save(base / TOPICS_DIR)
    return base


@pytest.fixture()
def user_csv(tmp_path: Path) -> Path:
    path = tmp_path / "my_labels.csv"
    pd.DataFrame(_rows()).to_csv(path, index=False)
    return path


def test_adapt_end_to_end_writes_a_loadable_model_that_keeps_the_topic_head(
    base_dir: Path, user_csv: Path, tmp_path: Path
):
    from cxnlp.models.store import load

    result = adapt(base_dir, user_csv, tmp_path / "mine", config=QUICK, progress=False)
    out = result.path
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert all(f.endswith((".json", ".safetensors", ".md")) for f in files), files
    assert "topics/model.safetensors" in files and "gate.json" in files

    base, mine = load(base_dir), load(out)
    assert mine.kind == "blend" and mine.weights == base.weights
    assert mine.topic_tagger is not None
    texts, langs = ["غذا سرد رسید", "Love this app", "الخدمة سيئة"], ["fa", "en", "ar"]
    base_features, mine_features = base.features(texts, langs), mine.features(texts, langs)
    half = base_features.shape[1] // 2
    # The tap layer (what the topic head reads beside the top layer) is untouched.
    np.testing.assert_allclose(mine_features[:, half:], base_features[:, half:], atol=1e-5)
    assert not np.allclose(mine.predict_logits(texts, langs), base.predict_logits(texts, langs))
    assert all(isinstance(p.topics, list) for p in mine.predict(texts, langs))

    record = json.loads((out / "config.json").read_text(encoding="utf-8"))["adapted_on"]
    assert record["file"] == "my_labels.csv" and record["sha256"] == file_sha256(user_csv)
    assert record["rows"] == 27 and record["train_rows"] + record["holdout_rows"] == 27
    assert record["date"].startswith("20")
    assert "my_labels.csv" in (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    gate = read_gate(out)
    assert gate.kind == "adapt" and gate.reference == str(base_dir)
    held_out = next(r for r in gate.rows if (r["part"], r["lang"]) == ("holdout", "*"))
    assert held_out["n"] == record["holdout_rows"] == 9
    assert gate.passed == (held_out["candidate"] > held_out["reference"])
    assert "verdict" in result.table()


def test_adapt_runs_the_step_budget_its_rows_call_for(
    base_dir: Path, user_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from training import transformer_trainer

    config = AdaptConfig(epochs=4, min_steps=2, max_steps=1000, batch_size=8)
    assert config.steps_for(400) == 200 and config.steps_for(1) == 2
    assert AdaptConfig().steps_for(400) == 100 and AdaptConfig().steps_for(10**6) == 400
    calls = []
    real = transformer_trainer.label_set_cross_entropy

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(transformer_trainer, "label_set_cross_entropy", counting)
    result = adapt(base_dir, user_csv, tmp_path / "m", config=config, progress=False)
    # 18 training rows (27 less 9 held out) x 4 epochs / 8 a batch = 9 steps.
    assert result.steps == len(calls) == 9


def test_stratified_split_keeps_each_language_and_label_and_is_repeatable():
    frame = pd.DataFrame(
        {
            "text": [f"t{i}" for i in range(100)],
            "label": ["positive"] * 60 + ["negative"] * 30 + ["neutral"] * 10,
            "lang": (["fa", "en"] * 50),
        }
    )
    train, held = stratified_split(frame, 0.2, seed=1)
    assert len(train) + len(held) == 100 and not set(train["text"]) & set(held["text"])
    counts = held.groupby(["lang", "label"]).size().to_dict()
    assert counts == {
        ("en", "negative"): 3,
        ("en", "neutral"): 1,
        ("en", "positive"): 6,
        ("fa", "negative"): 3,
        ("fa", "neutral"): 1,
        ("fa", "positive"): 6,
    }
    again, _ = stratified_split(frame, 0.2, seed=1)
    assert again["text"].tolist() == train["text"].tolist()
    assert stratified_split(frame, 0.2, seed=2)[1]["text"].tolist() != held["text"].tolist()


def test_fast_update_learns_the_new_rows_and_keeps_every_other_weight(tiny_fast_model):
    texts = ["the courier was polite", "the courier was polite and quick"]
    frame = pd.DataFrame(
        {
            "text": [*texts, "awful awful"],
            "label": ["neutral", "neutral", "negative"],
            "lang": "en",
            "dataset": "mine",
        }
    )
    before = tiny_fast_model.predict_proba(texts, ["en", "en"])
    updated, info = update_fast(tiny_fast_model, frame, AdaptConfig(), progress=False)
    after = updated.predict_proba(texts, ["en", "en"])
    neutral = SENTIMENTS.index("neutral")
    assert (after[:, neutral] > before[:, neutral]).all()
    assert (after.argmax(1) == neutral).all()
    changed = np.flatnonzero(
        (updated.classifier_.coef_ != tiny_fast_model.classifier_.coef_).any(axis=0)
    )
    assert 0 < len(changed) <= info["ngrams_updated"] < tiny_fast_model.n_features
    # The base model itself is left as it was.
    np.testing.assert_allclose(tiny_fast_model.predict_proba(texts, ["en", "en"]), before)


def _classified() -> pd.DataFrame:
    """An export as `cxnlp classify` writes it: 12 sure rows, a cluster of 8 near-identical
    uncertain rows, 6 different uncertain rows, a duplicate, a failed and a labeled row."""
    rows = []
    for i in range(12):
        rows.append((f"sure{i}", f"great food number {i}", [0.02, 0.03, 0.95]))
    for i in range(8):
        rows.append((f"dup{i}", f"the courier was late again {'!' * i}", [0.40, 0.25, 0.35]))
    distinct = [
        "the app asks for my password every day",
        "price went up but portions are smaller",
        "support answered after a week",
        "package arrived open and wet",
        "the staff at the branch were polite",
        "refund is still pending since march",
    ]
    for i, text in enumerate(distinct):
        rows.append((f"u{i}", text, [0.35 + 0.01 * i, 0.30, 0.35 - 0.01 * i]))
    rows.append(("copy", distinct[0], [0.36, 0.29, 0.35]))
    frame = pd.DataFrame(
        [
            {"id": i, "text": t, "p_negative": p[0], "p_neutral": p[1], "p_positive": p[2]}
            for i, t, p in rows
        ]
    )
    frame["lang"] = "en"
    frame["error"] = ""
    failed = {"id": "bad", "text": "", "lang": None, "error": "empty text"}
    labeled = {"id": "done", "text": "already seen", "p_negative": 0.4, "p_neutral": 0.3}
    labeled.update(p_positive=0.3, lang="en", error="", label="negative")
    return pd.concat([frame, pd.DataFrame([failed, labeled])], ignore_index=True)


def test_select_picks_uncertain_diverse_rows_deterministically():
    frame = _classified()
    chosen = select_for_labeling(frame, 6, pool_factor=2.5, progress=False)
    ids = chosen["id"].tolist()
    assert ids == select_for_labeling(frame, 6, pool_factor=2.5, progress=False)["id"].tolist()
    assert not {"bad", "done", "copy"} & set(ids)
    assert not any(i.startswith("sure") for i in ids)
    # Diverse: the near-identical cluster gives one row at most before the distinct ones run out.
    assert sum(i.startswith("dup") for i in ids) <= 1
    assert chosen["label"].eq("").all() and chosen["rank"].tolist() == list(range(1, 7))
    assert chosen["uncertainty"].min() >= 0.9
    with pytest.raises(ValueError, match="p_positive, p_neutral, p_negative"):
        select_for_labeling(frame.drop(columns="p_neutral"), 3, progress=False)


def test_core_set_takes_the_most_uncertain_first_then_the_farthest():
    embeddings = np.array([[1.0, 0.0], [0.995, 0.0998], [0.0, 1.0]])
    assert core_set(embeddings, np.array([0.9, 0.8, 0.5]), 2) == [0, 2]
    assert margin_uncertainty(np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])).tolist() == [1.0, 0.0]


def test_select_embeds_with_the_models_encoder(base_dir: Path):
    from cxnlp.models.store import load

    chosen = select_for_labeling(_classified(), 4, model=load(base_dir), progress=False)
    assert len(chosen) == 4 and chosen["id"].is_unique


def test_label_studio_round_trip(tmp_path: Path):
    from training.data import read_labeled

    chosen = select_for_labeling(_classified(), 5, progress=False)
    written = write_selection(chosen, tmp_path / "to_label.csv", "tiny")
    paths = companion_paths(tmp_path / "to_label.csv")
    assert set(written) == {tmp_path / "to_label.csv", *paths.values()}
    config = ET.fromstring(paths["label_studio_config"].read_text(encoding="utf-8"))
    assert [c.get("value") for c in config.iter("Choice")] == list(SENTIMENTS)
    tasks = json.loads(paths["label_studio_tasks"].read_text(encoding="utf-8"))
    assert [t["data"]["text"] for t in tasks] == chosen["text"].tolist()
    gold = ["negative", "neutral", "positive", "negative", None]
    for task, label in zip(tasks, gold, strict=True):
        task["id"] = 1000 + len(task["data"]["text"])
        if label is not None:
            result = dict(task["predictions"][0]["result"][0], value={"choices": [label]})
            task["annotations"] = [
                {"result": [dict(result, value={"choices": ["positive"]})], "was_cancelled": True},
                {"result": [result], "was_cancelled": False},
            ]
            if label == "neutral":  # a later annotation that was cancelled does not count
                task["annotations"].append({"result": [], "was_cancelled": True})
        else:
            task["annotations"] = []
    export = tmp_path / "project-1-export.json"
    export.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    frame = read_labeled(export, skip_unlabeled=True)
    assert frame["text"].tolist() == chosen["text"].tolist()[:4]
    assert frame["label"].tolist() == gold[:4]

    minimal = [{"id": 1, "text": "late again", "sentiment": "negative", "lang": "en"}]
    (tmp_path / "min.json").write_text(json.dumps(minimal), encoding="utf-8")
    assert read_label_studio(tmp_path / "min.json")["label"].tolist() == ["negative"]
    records = [json.loads(line) for line in paths["argilla_records"].open(encoding="utf-8")]
    assert len(records) == 5 and "label" not in records[0]  # a suggestion is never a label
    assert {r["suggested_label"] for r in records} <= set(SENTIMENTS)


def test_a_json_that_is_not_a_label_studio_export_is_refused(tmp_path: Path):
    from training.data import read_labeled

    path = tmp_path / "x.json"
    path.write_text(json.dumps({"text": "a", "label": "positive"}), encoding="utf-8")
    with pytest.raises(ValueError, match="expected a Label Studio export"):
        read_labeled(path)


def test_classify_select_fill_train_loop_through_the_cli(
    base_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    from cxnlp.cli import main

    export = tmp_path / "export.csv"
    pool = [r["text"] for r in _rows()] + ["the courier was late again", "the app keeps crashing"]
    pd.DataFrame({"id": range(len(pool)), "text": pool}).to_csv(export, index=False)
    classified = tmp_path / "classified.csv"
    assert main(["classify", str(export), "-o", str(classified), "--model", str(base_dir)]) == 0
    to_label = tmp_path / "to_label.csv"
    args = ["select", str(classified), "-o", str(to_label), "--n", "20", "--model", str(base_dir)]
    assert main(args) == 0
    assert "to_label.labelstudio.json" in capsys.readouterr().out
    filled = pd.read_csv(to_label, keep_default_na=False, encoding="utf-8-sig")
    gold = {r["text"]: r["label"] for r in _rows()}
    filled["label"] = [gold.get(t, "") for t in filled["text"]]  # some rows left unlabeled
    filled.to_csv(to_label, index=False)
    out = tmp_path / "mine"
    command = ["train", "--base", str(base_dir), "--data", str(to_label), "--out", str(out)]
    assert main([*command, "--max-steps", "4", "--quiet", "--no-standard-tests"]) == 0
    printed = capsys.readouterr().out
    assert "held-out part of your file" in printed and f"saved {out}" in printed
    record = json.loads((out / "config.json").read_text(encoding="utf-8"))["adapted_on"]
    assert record["rows"] == int((filled["label"] != "").sum())


def test_gate_scores_both_models_on_held_out_rows_and_sampled_standard_tests(
    tiny_fast_model, tmp_path: Path
):
    from training.adapt import format_gate, gate_record, run_gate, sample_test_sets

    corpus = tmp_path / "corpus"
    (corpus / "en").mkdir(parents=True)
    rows = [
        {"text": f"{text} {i}", "label": label, "lang": "en", "split": "test"}
        for i in range(5)
        for (lang, label), texts in TEXTS.items()
        if lang == "en"
        for text in texts
    ]
    with (corpus / "en" / "twitter_us_airline.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    test = sample_test_sets(corpus, 10, seed=0)
    assert len(test) == 10 and set(test["dataset"]) == {"twitter_us_airline"}
    assert len(sample_test_sets(corpus, None, seed=0)) == 45

    holdout = pd.DataFrame(_rows())
    frame = holdout.assign(dataset="mine", label="neutral")
    adapted, _ = update_fast(tiny_fast_model, frame.iloc[:12], AdaptConfig(), progress=False)
    gate = run_gate(tiny_fast_model, adapted, holdout, test_frame=test, progress=False)
    assert gate["holdout"]["base"]["*"]["n"] == 27 and set(gate["holdout"]["base"]) >= {"fa", "en"}
    assert gate["standard"]["rows"] == 10
    b, a = gate["holdout"]["base"]["*"]["macro_f1"], gate["holdout"]["adapted"]["*"]["macro_f1"]
    table = format_gate(gate)
    assert "standard tests, 10 rows" in table and f"{a - b:+.4f}" in table
    assert "verdict:" in table

    # gate.json: the same scores in the one gate record both gates write.
    gate["base"] = "models/default"
    write_gate(tmp_path, gate_record(gate, margin=0.01))
    record = read_gate(tmp_path)
    assert record.kind == "adapt" and record.reference == "models/default"
    assert record.verdict in table and record.details["standard_rows"] == 10
    rows = {(r["part"], r["lang"]): r for r in record.rows}
    assert rows[("holdout", "*")]["n"] == 27 and rows[("standard", "en")]["n"] == 10
    assert rows[("holdout", "*")]["delta"] == pytest.approx(a - b)
    standard_ok = all(r["ok"] for (part, _), r in rows.items() if part == "standard")
    assert record.passed == (a > b and standard_ok)
