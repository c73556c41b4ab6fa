"""The model card is written from what the model directory records and an evaluation report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cxnlp.modeldir import read_config, write_config
from training.card import write_model_card


def _report() -> dict:
    def scores(n: int, f1: float) -> dict:
        return {"n": n, "macro_f1": f1, "accuracy": f1 + 0.05, "ece": 0.02}

    return {
        "data": "../shared/data",
        "overall": scores(30, 0.7),
        "by_lang": {"fa": scores(10, 0.61), "ar": scores(10, 0.7), "en": scores(10, 0.8)},
        "by_dataset": {
            "snappfood": {**scores(10, 0.5), "binary_macro_f1": 0.87},
            "twitter_us_airline": scores(10, 0.8),
        },
        "eval_only_datasets": ["snappfood"],
    }


def test_card_lists_training_sets_licences_metrics_and_command(tiny_model_dir: Path, tmp_path):
    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model_dir)
    config = read_config(model_dir)
    config.pop("cxnlp_version")
    write_config(model_dir, {**config, "trained_on": ["masc", "ajgt"], "train_rows": 123})

    path = write_model_card(model_dir, _report(), command="cxnlp train --config X --out Y")
    card = path.read_text(encoding="utf-8")

    assert "| masc | ar | review | research only | **no** |" in card
    assert "| ajgt | ar | tweet | AFL-3.0 | yes |" in card
    assert "restrict commercial use (masc)" in card
    assert "| fa | 10 | 0.610 | 0.660 | 0.020 | 0.72 |" in card
    assert "| snappfood (eval-only) | 10 | 0.500 | 0.550 | 0.870 | 0.020 |" in card
    assert "cxnlp train --config X --out Y" in card
    assert "123 training rows" in card
    assert json.loads((model_dir / "config.json").read_text())["kind"] == "fast"


def test_card_write_card_and_metrics_saves_the_report_and_the_reproduce_command(
    tiny_model_dir: Path, tmp_path
):
    from cxnlp.modeldir import METRICS_FILE, read_metrics
    from training.card import write_card_and_metrics

    model_dir = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, model_dir)
    notes = tmp_path / "notes.md"
    notes.write_text("Known weakness: sarcasm.\n", encoding="utf-8")

    card = write_card_and_metrics(model_dir, _report(), data="../shared/data", notes_file=notes)

    assert read_metrics(model_dir) == _report()
    assert (model_dir / METRICS_FILE).is_file()
    text = card.read_text(encoding="utf-8")
    assert (
        "cxnlp train --config training/configs/tiny.yaml --out models/tiny\n"
        f"cxnlp evaluate --model models/tiny --data ../shared/data --write-card --notes {notes}"
    ) in text
    assert text.rstrip().endswith("Known weakness: sarcasm.")
