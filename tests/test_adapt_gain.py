"""benchmarks/adapt_gain.py end to end on a tiny model and a tiny corpus: every size and strategy
is run and tabled, the domain is kept out of the replayed pool and the standard tests, and
--resume skips what is done. (The real measurement is the lead's, on the shipped model.)"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_transformer import tiny_config

from cxnlp.labels import SENTIMENTS

DOMAIN = "tweeteval_sentiment_val_test"
POOL = {"fa": "snappfood_api_crawl_2022", "ar": "arsas", "en": "twitter_us_airline"}
WORDS = {
    "positive": ["great", "lovely", "excellent"],
    "negative": ["awful", "terrible", "late"],
    "neutral": ["ordinary", "scheduled", "listed"],
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, tiny_train) -> Path:
    """Three pool datasets (train / dev / test rows) and an unseen 90-row domain."""
    root = tmp_path_factory.mktemp("corpus")
    for lang, name in POOL.items():
        rows = [
            {"text": f"{text} {k}", "label": label, "lang": lang, "split": split}
            for k, split in enumerate(["train", "train", "dev", "test"])
            for row_lang, text, label in tiny_train
            if row_lang == lang
        ]
        (root / lang).mkdir()
        (root / lang / f"{name}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
    domain = [
        {"text": f"the match was {word} today, game {i}", "label": label, "lang": "en"}
        | {"split": "dev"}
        for i in range(10)
        for label, words in WORDS.items()
        for word in words
    ]
    (root / "en" / f"{DOMAIN}.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in domain), encoding="utf-8"
    )
    return root


@pytest.fixture(scope="module")
def model_dir(tiny_backbone: Path, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.train import train

    config = tiny_config(tiny_backbone)
    config.data.dir = str(corpus)
    config.data.exclude = [DOMAIN]
    config.model.blend_fast = True
    config.model.n_features = 2**12
    return train(config, tmp_path_factory.mktemp("gain") / "base")


def _run(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "adapt_gain.py"
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name="__main__")
    return int(done.value.code or 0)


def test_adapt_gain_runs_every_size_and_strategy_and_resumes(
    model_dir: Path,
    corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
):
    assert DOMAIN not in json.loads((model_dir / "config.json").read_text())["trained_on"]
    out = tmp_path / "gain.json"
    args = ["--model", str(model_dir), "--data", str(corpus), "--replay-data", str(corpus)]
    args += ["--domain", DOMAIN, "--sizes", "30", "--seeds", "2", "--eval-rows", "20"]
    args += ["--pool-rows", "60", "--max-steps", "3", "--test-per-dataset", "5", "--quiet"]
    assert _run([*args, "--json", str(out)], monkeypatch) == 0
    printed = capsys.readouterr().out
    runs = json.loads(out.read_text(encoding="utf-8"))["runs"]
    strategies = ["random", "uncertainty", "diversity", "mix"]
    assert sorted((r["seed"], r["strategy"]) for r in runs) == sorted(
        (seed, s) for seed in (13, 14) for s in strategies
    )
    for run in runs:
        assert run["unseen"] and run["size"] == 30 and len(set(run["picked_ids"])) == 30
        assert run["held_out_rows"] == 20 and run["pool_rows"] == 60
        # The gate's standard tests cover the pool's languages, never the domain itself.
        assert set(run["standard_delta"]) == {"*", "fa", "ar", "en"}
        assert set(run["shares"]) >= {"base raw", "base PACC", "adapted raw"}
        truth = run["truth_shares"]
        assert sum(truth.values()) == pytest.approx(1.0) and set(truth) == set(SENTIMENTS)
    by = {(r["seed"], r["strategy"]): set(r["picked_ids"]) for r in runs}
    assert by[(13, "random")] != by[(13, "uncertainty")] != by[(13, "diversity")]
    for strategy in strategies:
        row = next(
            line for line in printed.splitlines() if line.split()[:3] == ["30", strategy, "2"]
        )
        assert "+" in row or "-" in row  # a gain and the standard deltas are printed
    assert "base PACC" in printed and "at 30 rows the best strategy is" in printed

    assert _run([*args, "--json", str(out), "--resume"], monkeypatch) == 0
    assert "seed 13" not in capsys.readouterr().out  # nothing run again
    assert len(json.loads(out.read_text(encoding="utf-8"))["runs"]) == 8
    frame = pd.read_json(corpus / "en" / f"{DOMAIN}.jsonl", lines=True)
    assert len(frame) == 90
