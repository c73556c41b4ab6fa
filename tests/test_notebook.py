"""The example notebook runs end to end (classify → summarize → charts) on a tiny model."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

from cxnlp.io.tables import read_table  # noqa: E402
from cxnlp.labels import SENTIMENTS  # noqa: E402
from cxnlp.models.fast import FastSentimentModel  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "classify_and_report.ipynb"
TRAIN = [
    ("great food and fast delivery", "positive"),
    ("excellent service, thank you", "positive"),
    ("terrible, the courier was late", "negative"),
    ("awful app, it keeps crashing", "negative"),
    ("the store opens at nine", "neutral"),
    ("I ordered yesterday", "neutral"),
    ("غذا خیلی خوشمزه بود", "positive"),
    ("خیلی بد بود، دیر رسید", "negative"),
    ("سفارش را دیروز ثبت کردم", "neutral"),
    ("الخدمة ممتازة", "positive"),
    ("الخدمة سيئة جدا", "negative"),
    ("طلبت وجبة أمس", "neutral"),
]


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts += [str(v) for v in out.get("data", {}).values()]
    return "\n".join(parts)


def test_notebook_classifies_the_example_export_and_reports_its_shares(tmp_path, monkeypatch):
    texts, labels = zip(*TRAIN, strict=True)
    model = FastSentimentModel(n_features=2**12, ngram_range=(1, 3)).fit(list(texts), list(labels))
    model_dir = model.save(tmp_path / "tiny")
    monkeypatch.setenv("CXNLP_NOTEBOOK_MODEL", str(model_dir))
    monkeypatch.setenv("CXNLP_NOTEBOOK_OUT", str(tmp_path / "out"))
    # The kernel imports this checkout's cxnlp, not whichever one is installed.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()

    # The shares the notebook prints are those of the rows the tiny model labeled.
    labeled = read_table(tmp_path / "out" / "reviews_labeled.csv")
    expected = labeled["sentiment"].value_counts(normalize=True)
    text = outputs_text(nb)
    line = next(x for x in text.splitlines() if x.startswith("overall raw shares:"))
    printed = ast.literal_eval(line.split(":", 1)[1].strip())
    assert set(printed) == set(SENTIMENTS)
    for label in SENTIMENTS:
        assert printed[label] == pytest.approx(expected.get(label, 0.0), abs=1e-4)
    assert "true (gold)" in text and "<svg" in text
    assert len(labeled) == 48
    assert (tmp_path / "out" / "report.html").read_text(encoding="utf-8").count("<svg") >= 2
