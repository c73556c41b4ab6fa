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
from training.adapt import AdaptConfig, adapt, file_sha256, refused_path, stratified_split
from training.adapt_recipe import update_fast
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
    # Without standard tests the gate is the held-out rows: a model no better there is refused.
    assert out == (refused_path(tmp_path / "mine") if result.refused else tmp_path / "mine")
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
    assert gate.passed == (held_out["candidate"] > held_out["reference"]) == (not result.refused)
    assert "verdict" in result.table()


def test_adapt_runs_the_step_budget_its_rows_call_for(
    base_dir: Path, user_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from training import transformer_trainer

    config = AdaptConfig(epochs=4, min_steps=2, max_steps=1000, batch_size=8)
    # Half of each batch is replayed when a pool is given: the user's rows still get 4 epochs.
    assert config.batch_parts(replay=True) == (4, 4) and config.batch_parts(replay=False) == (8, 0)
    assert config.steps_for(400) == 400 and config.steps_for(400, replay=False) == 200
    assert config.steps_for(1) == 2
    assert AdaptConfig().steps_for(400) == 150 and AdaptConfig().steps_for(10**6) == 300
    calls = []
    real = transformer_trainer.label_set_cross_entropy

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(transformer_trainer, "label_set_cross_entropy", counting)
    result = adapt(base_dir, user_csv, tmp_path / "m", config=config, progress=False)
    # No pool, no replay: 18 training rows (27 less 9 held out) x 4 epochs / 8 a batch = 9 steps.
    assert result.steps == len(calls) == 9
    assert result.info["transformer"]["batch"] == {"user_rows": 8, "replayed_rows": 0}


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
    chosen = select_for_labeling(frame, 6, pool_factor=2.5, strategy="mix", progress=False)
    ids = chosen["id"].tolist()
    again = select_for_labeling(frame, 6, pool_factor=2.5, strategy="mix", progress=False)
    assert ids == again["id"].tolist()
    assert not {"bad", "done", "copy"} & set(ids)
    assert not any(i.startswith("sure") for i in ids)
    # Diverse: the near-identical cluster gives one row at most before the distinct ones run out.
    assert sum(i.startswith("dup") for i in ids) <= 1
    assert chosen["label"].eq("").all() and chosen["rank"].tolist() == list(range(1, 7))
    assert chosen["uncertainty"].min() >= 0.9
    with pytest.raises(ValueError, match="p_positive, p_neutral, p_negative"):
        select_for_labeling(frame.drop(columns="p_neutral"), 3, progress=False)


def test_select_draws_randomly_by_default_and_takes_the_most_uncertain_on_request():
    frame = _classified()
    candidates = set(frame["id"]) - {"bad", "done", "copy"}
    drawn = select_for_labeling(frame, 6, progress=False)["id"].tolist()
    assert len(set(drawn)) == 6 and set(drawn) <= candidates
    assert drawn == select_for_labeling(frame, 6, seed=0, progress=False)["id"].tolist()
    others = [select_for_labeling(frame, 6, seed=s, progress=False)["id"].tolist() for s in (1, 2)]
    assert any(o != drawn for o in others)
    # Random draws reach the rows the model is sure about; uncertainty never does.
    every = select_for_labeling(frame, len(candidates), progress=False)["id"].tolist()
    assert any(i.startswith("sure") for i in every)
    uncertain = select_for_labeling(frame, 6, strategy="uncertainty", progress=False)
    assert not any(i.startswith("sure") for i in uncertain["id"])
    assert uncertain["uncertainty"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="strategy must be one of"):
        select_for_labeling(frame, 3, strategy="smart", progress=False)


def test_core_set_takes_the_most_uncertain_first_then_the_farthest():
    embeddings = np.array([[1.0, 0.0], [0.995, 0.0998], [0.0, 1.0]])
    assert core_set(embeddings, np.array([0.9, 0.8, 0.5]), 2) == [0, 2]
    assert margin_uncertainty(np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])).tolist() == [1.0, 0.0]


def test_select_embeds_with_the_models_encoder(base_dir: Path):
    from cxnlp.models.store import load

    chosen = select_for_labeling(
        _classified(), 4, model=load(base_dir), strategy="mix", progress=False
    )
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
    options = ["--max-steps", "4", "--quiet", "--no-standard-tests", "--replay-ratio", "0"]
    status = main([*command, *options])
    printed = capsys.readouterr()
    assert "held-out part of your file" in printed.out
    # A tiny random model may or may not gain on 4 held-out rows: the exit code says which.
    saved = out if out.exists() else refused_path(out)
    assert status == (0 if read_gate(saved).passed else 1)
    assert (f"saved {out}" in printed.out) == (status == 0) == (saved == out)
    record = json.loads((saved / "config.json").read_text(encoding="utf-8"))["adapted_on"]
    assert record["rows"] == int((filled["label"] != "").sum())


def test_gate_scores_both_models_on_held_out_rows_and_sampled_standard_tests(
    tiny_fast_model, tmp_path: Path
):
    from training.adapt_gate import format_gate, gate_record, run_gate, sample_test_sets

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


# --- replay, batches, the model's own forward, refusal --------------------------------------


def _pool_frame(datasets: list[str], tiny_train: list[tuple[str, str, str]]) -> pd.DataFrame:
    """A base pool as `training.data.load_corpus` reads it: train rows of every language under
    the base's dataset names, and a test row that must never be replayed."""
    rows = [
        {"text": text, "label": label, "lang": lang, "dataset": datasets[0], "split": "train"}
        for lang, text, label in tiny_train
    ]
    rows.append(
        {"text": "never replay me", "label": "neutral", "lang": "en", "dataset": datasets[0]}
        | {"split": "test"}
    )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def pool(base_dir: Path, tiny_train) -> pd.DataFrame:
    trained_on = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))["trained_on"]
    return _pool_frame(trained_on, tiny_train)


def test_replay_pool_takes_train_rows_of_the_bases_datasets_evenly_over_languages():
    from training.adapt_recipe import replay_pool

    rows = []
    for lang, names in {"fa": {"big": 100, "small": 10}, "ar": {"c": 50}, "en": {"d": 50}}.items():
        for name, count in names.items():
            rows += [
                {"text": f"{name} text {i}", "label": SENTIMENTS[i % 3], "lang": lang}
                | {"dataset": name, "split": "train"}
                for i in range(count)
            ]
    rows += [{"text": f"other {i}", "label": "positive", "lang": "en"} for i in range(50)]
    rows[-50:] = [r | {"dataset": "not_in_the_base", "split": "train"} for r in rows[-50:]]
    rows += [
        {"text": "held out", "label": "neutral", "lang": "ar", "dataset": "c"} | {"split": "test"}
    ]
    corpus = pd.DataFrame(rows)
    kept = ["big", "small", "c", "d"]
    picked = replay_pool(corpus, 60, seed=0, datasets=kept, exclude_texts=["D TEXT 3"])
    assert picked["lang"].value_counts().to_dict() == {"fa": 20, "ar": 20, "en": 20}
    assert set(picked["dataset"]) <= set(kept)
    assert "held out" not in set(picked["text"]) and "d text 3" not in set(picked["text"])
    # Evenly over a language's datasets: the small one gives far more than its 1/11 of the rows.
    assert (picked["dataset"] == "small").sum() >= 6
    again = replay_pool(corpus, 60, seed=0, datasets=kept, exclude_texts=["D TEXT 3"])
    assert again["text"].tolist() == picked["text"].tolist()
    assert (
        replay_pool(corpus, 60, seed=1, datasets=kept)["text"].tolist() != picked["text"].tolist()
    )


def test_replay_pool_gives_the_users_languages_their_share_and_the_rest_equally():
    from training.adapt_config import AdaptConfig
    from training.adapt_recipe import lang_quotas, replay_pool

    assert lang_quotas(60, ["fa", "ar", "en"], None, 0.5) == [20, 20, 20]
    assert lang_quotas(60, ["fa", "ar", "en"], {"en": 1.0}, 0.5) == [10, 10, 40]
    # Weights over the pool's languages only, rounded so that the quotas sum to n.
    assert lang_quotas(7, ["fa", "en"], {"en": 0.75, "ar": 0.25}, 1.0) == [0, 7]
    assert sum(lang_quotas(31, ["fa", "ar", "en"], {"fa": 0.3, "en": 0.7}, 0.4)) == 31
    corpus = pd.DataFrame(
        [
            {"text": f"{lang} {i}", "label": SENTIMENTS[i % 3], "lang": lang, "dataset": lang}
            | {"split": "train"}
            for lang in ("fa", "ar", "en")
            for i in range(100)
        ]
    )
    picked = replay_pool(corpus, 60, seed=0, own_langs={"ar": 1.0}, own_share=0.5)
    assert picked["lang"].value_counts().to_dict() == {"ar": 40, "fa": 10, "en": 10}
    with pytest.raises(ValueError, match="replay_own_langs"):
        AdaptConfig(replay_own_langs=1.5)


def test_batches_mix_replayed_rows_in_every_step_and_bucket_them_by_length():
    from training.adapt_recipe import plan_batches

    rng = np.random.default_rng(0)
    user_lengths, replay_lengths = rng.integers(5, 60, 40), rng.integers(5, 60, 100)
    weights = np.ones(40)
    weights[:10] = 0.0  # never drawn

    def plan(bucket: int, seed: int = 3):
        return plan_batches(weights, user_lengths, replay_lengths, 20, (4, 4), bucket, seed)

    def padding(batches) -> int:
        total = 0
        for user, replayed in batches:
            lengths = np.concatenate([user_lengths[user], replay_lengths[replayed]])
            total += int(lengths.max() * len(lengths) - lengths.sum())
        return total

    batches = plan(8)
    assert len(batches) == 20 and all(len(u) == 4 and len(r) == 4 for u, r in batches)
    user = np.concatenate([u for u, _ in batches])
    replayed = np.concatenate([r for _, r in batches])
    assert user.min() >= 10
    assert len(set(replayed.tolist())) == 80  # 80 draws from 100 rows: none read twice
    assert padding(batches) < 0.6 * padding(plan(1))
    assert [u.tolist() for u, _ in plan(8)] == [u.tolist() for u, _ in batches]
    assert [u.tolist() for u, _ in plan(8, seed=4)] != [u.tolist() for u, _ in batches]


@pytest.fixture(scope="module")
def cls_dir(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny transformer model whose backbone spec pools the first token (cls)."""
    from training.train import train

    root = tmp_path_factory.mktemp("adapt-cls")
    data = root / "pool.csv"
    rows = [dict(r, split=s) for r, s in zip(_rows(), ["train", "train", "dev"] * 9, strict=True)]
    pd.DataFrame(rows).to_csv(data, index=False)
    config = tiny_config(tiny_backbone)
    config.model.pooling = "cls"
    return train(config, root / "base", data_file=data)


def test_adapt_learns_on_the_features_a_cls_model_serves(
    cls_dir: Path, user_csv: Path, tmp_path: Path
):
    import copy

    import torch

    from cxnlp.backbone.spec import mean_pool
    from cxnlp.models.store import load
    from cxnlp.models.transformer import pad_states
    from training.adapt_recipe import base_outputs

    member = load(cls_dir)
    assert member.net.spec.pooling == "cls"
    texts, langs = [r["text"] for r in _rows()], [r["lang"] for r in _rows()]
    normalised, _ = member.prepare(texts, langs)
    first = member.tap_layer
    states = member.lower_states(member.token_ids(normalised), first)
    net = copy.deepcopy(member.net).float()
    trained_on, _ = base_outputs(net, states, first, member.compute_dtype == "bfloat16")
    served = member.predict_logits(texts, langs)
    gap = np.abs(trained_on.numpy() - served).max()
    assert gap < 0.05
    # Mean pooling, which adapt used to apply whatever the spec said, reads other features.
    with torch.no_grad():
        hidden, mask = pad_states(states)
        top = net.run_layers(hidden.float(), mask, first, len(net.layers))
        mean_logits = net.head(mean_pool(top, mask)).numpy()
    assert np.abs(mean_logits - served).max() > 10 * max(gap, 0.005)

    result = adapt(cls_dir, user_csv, tmp_path / "mine", config=QUICK, progress=False)
    adapted = load(result.path)
    assert adapted.net.spec.pooling == "cls"
    assert not np.allclose(adapted.predict_logits(texts, langs), served)


def test_lora_placement_changes_only_the_chosen_layers_and_sub_layers(
    base_dir: Path, user_csv: Path, tmp_path: Path
):
    from cxnlp.models.store import load

    config = AdaptConfig(epochs=2, min_steps=3, max_steps=6, batch_size=4)
    config.lora_from_layer, config.lora_modules = 2, ("query", "intermediate")
    result = adapt(base_dir, user_csv, tmp_path / "mine", config=config, progress=False)
    assert result.info["transformer"]["lora_layers"] == [2, 2]

    def state(path: Path) -> dict:
        member = next(m for m in load(path).members if m.kind == "transformer")
        return {k: v.clone() for k, v in member.net.state_dict().items()}

    before, after = state(base_dir), state(result.path)
    changed = {name for name in before if not np.array_equal(before[name], after[name])}
    assert changed == {
        "encoder.encoder.layer.2.attention.self.query.weight",
        "encoder.encoder.layer.2.intermediate.dense.weight",
    }
    with pytest.raises(ValueError, match=r"lora_from_layer 0: expected 1 \(the topic head"):
        bad = AdaptConfig(epochs=2, min_steps=3, max_steps=6, batch_size=4, lora_from_layer=0)
        adapt(base_dir, user_csv, tmp_path / "bad", config=bad, progress=False)
    with pytest.raises(ValueError, match="expected some of"):
        AdaptConfig(lora_modules=("ffn",))


def test_adapt_replays_every_language_and_gives_the_same_model_for_the_same_seed(
    base_dir: Path,
    user_csv: Path,
    tmp_path: Path,
    pool: pd.DataFrame,
    capsys: pytest.CaptureFixture,
):
    from cxnlp.models.store import load

    def run(name: str, seed: int, progress: bool = False):
        config = AdaptConfig(epochs=2, min_steps=3, max_steps=6, batch_size=4, seed=seed)
        return adapt(
            base_dir, user_csv, tmp_path / name, config=config, replay_data=pool, progress=progress
        )

    first = run("a", 13, progress=True)
    # The progress line with its ETA goes to stderr, as the batch job's does.
    assert re_search(r"adapting: .*6/6 \[\d\d:\d\d<\d\d:\d\d", capsys.readouterr().err)
    info = first.info["transformer"]
    assert info["batch"] == {"user_rows": 2, "replayed_rows": 2}
    # As many pool rows as the steps replay (6 x 2), an equal share of each language.
    assert info["replay_langs"] == {"fa": 4, "ar": 4, "en": 4}
    assert info["replay_rows"] == 12 == first.info["fast"]["replayed_rows"]
    assert json.loads((first.path / "config.json").read_text())["adapted_on"]["replay_rows"] == 12

    texts, langs = [r["text"] for r in _rows()], [r["lang"] for r in _rows()]
    logits = load(first.path).predict_logits(texts, langs)
    np.testing.assert_array_equal(load(run("b", 13).path).predict_logits(texts, langs), logits)
    assert not np.allclose(load(run("c", 14).path).predict_logits(texts, langs), logits)


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


def test_replay_holds_the_fast_member_to_the_base_on_other_texts(tiny_fast_model, tiny_train):
    user = pd.DataFrame(
        {
            "text": ["the courier was polite", "the courier was polite and quick"],
            "label": ["neutral", "neutral"],
            "lang": "en",
        }
    )
    replay = _pool_frame(["pool"], tiny_train)
    replay = replay[(replay["split"] == "train") & (replay["lang"] == "en")]
    texts, langs = replay["text"].tolist(), replay["lang"].tolist()
    base = tiny_fast_model.predict_proba(texts, langs)

    def moved(ratio: float | None) -> tuple[float, np.ndarray]:
        updated, info = update_fast(
            tiny_fast_model,
            user,
            AdaptConfig(replay_ratio=ratio or 0.0),
            progress=False,
            replay=replay if ratio else None,
        )
        assert info["replayed_rows"] == (len(replay) if ratio else 0)
        drift = np.abs(updated.predict_proba(texts, langs) - base).sum(axis=1).mean()
        return float(drift), updated.predict_proba(user["text"].tolist(), ["en", "en"])

    plain_drift, _ = moved(None)
    some_drift, _ = moved(0.5)
    most_drift, most_user = moved(0.9)
    # The more of the weight is replayed, the closer the other texts stay to the base.
    assert most_drift < some_drift < plain_drift and most_drift < 0.8 * plain_drift
    neutral = SENTIMENTS.index("neutral")
    assert (most_user.argmax(1) == neutral).all()  # the user's rows are still learnt


def _gate(fa_delta: float) -> dict:
    def scores(fa: float) -> dict:
        return {"*": {"n": 20, "macro_f1": 0.6}, "fa": {"n": 10, "macro_f1": fa}}

    return {
        "holdout": {
            "base": {"*": {"n": 9, "macro_f1": 0.5}},
            "adapted": {"*": {"n": 9, "macro_f1": 0.6}},
            "topic_agreement": 1.0,
        },
        "standard": {"rows": 20, "base": scores(0.7), "adapted": scores(0.7 + fa_delta)},
    }


@pytest.mark.parametrize(("fa_delta", "ready"), [(-0.011, False), (-0.009, True), (0.02, True)])
def test_gate_refuses_a_model_that_loses_more_than_a_point_on_any_language(fa_delta, ready):
    from training.adapt_gate import gate_passed, gate_verdict, lost_languages

    gate = _gate(fa_delta)
    assert gate_passed(gate) == ready
    assert lost_languages(gate) == ([] if ready else ["fa"])
    assert gate_verdict(gate).startswith("ready: " if ready else "refused: ")
    assert gate_passed(gate, margin=0.02)


@pytest.mark.parametrize("ready", [False, True])
def test_a_refused_adaptation_is_saved_beside_the_output_and_the_cli_exits_nonzero(
    base_dir: Path,
    user_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    ready: bool,
):
    import training.adapt
    from cxnlp.cli import main

    real = training.adapt.run_gate

    def scored(*args, **kwargs):  # the real gate, with standard scores that lose (or not) fa
        gate = real(*args, **kwargs)
        crafted = _gate(-0.011 if not ready else 0.0)
        gate["holdout"]["adapted"]["*"]["macro_f1"] = gate["holdout"]["base"]["*"]["macro_f1"] + 0.1
        gate["standard"] = crafted["standard"]
        return gate

    monkeypatch.setattr(training.adapt, "run_gate", scored)
    models = tmp_path / "models"
    out = models / "mine"
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({"marker": "previous"}), encoding="utf-8")
    command = ["adapt", "--base", str(base_dir), "--data", str(user_csv), "--out", str(out)]
    options = ["--max-steps", "3", "--quiet", "--no-standard-tests", "--replay-ratio", "0"]
    status = main([*command, *options])
    printed = capsys.readouterr()
    previous = json.loads((out / "config.json").read_text(encoding="utf-8")).get("marker")
    if ready:
        assert status == 0 and f"saved {out}" in printed.out
        assert previous is None and read_gate(out).passed
        assert not refused_path(out).exists()
        return
    assert status == 1 and "saved" not in printed.out
    assert "REFUSED" in printed.err and "not ready" in printed.err
    assert f"saved as {refused_path(out)}" in printed.err
    assert previous == "previous"  # the output directory is left as it was
    record = read_gate(refused_path(out))
    assert not record.passed and record.verdict.startswith("refused: ")
    assert "['fa']" in record.verdict

    monkeypatch.setenv("CXNLP_MODELS_DIR", str(models))
    assert main(["models"]) == 0
    listing = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(listing) if line.startswith("mine.refused "))
    assert "adapt gate did not pass" in listing[at + 1] and "refused:" in listing[at + 1]
