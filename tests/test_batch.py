"""Tests for cxnlp.io.batch: every row out in order, errors per row, file formats, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxnlp.io.batch import classify_file, classify_frame
from cxnlp.io.tables import read_table, write_table
from cxnlp.labels import RESULT_COLUMNS, SENTIMENTS

TEXTS = [
    "غذا خیلی خوشمزه بود",
    "الخدمة سيئة جدا",
    "Great app, fast delivery",
    "",  # empty
    "پیک دیر رسید و غذا سرد بود",
    "   ",  # blank
    "The store opens at nine",
    "تطبيق رائع",
    "The app keeps crashing",
    "بسته امروز تحویل داده شد",
]
EMPTY_ROWS = {3, 5}


class Recording:
    """Wraps a model: counts predict calls and can fail on one of them."""

    def __init__(self, model, fail_on_call: int | None = None, exc: type = KeyboardInterrupt):
        self.model, self.fail_on_call, self.exc, self.calls = model, fail_on_call, exc, 0

    def predict(self, texts, langs=None):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise self.exc()
        return self.model.predict(texts, langs)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / "export.csv"
    write_table(pd.DataFrame({"text": TEXTS, "rating": [str(i % 5) for i in range(10)]}), path)
    return path


def test_classify_frame_keeps_rows_and_marks_bad_texts(tiny_fast_model) -> None:
    texts = ["Great app", "", None, np.nan, "  ", "bad \ufffd\ufffd bytes", "تطبيق رائع"]
    frame = pd.DataFrame({"id": [10, 11, 12, 13, 14, 15, 16], "text": texts})
    out = classify_frame(tiny_fast_model, frame)
    assert list(out.columns) == ["id", "text", *RESULT_COLUMNS]
    assert out["id"].tolist() == frame["id"].tolist()
    assert out["error"].tolist() == [
        None,
        "empty text",
        "missing text",
        "missing text",
        "empty text",
        "text has bytes that could not be decoded (U+FFFD at character 4, e.g. a file read in "
        "the wrong encoding); re-export the source as UTF-8",
        None,
    ]
    ok = out["error"].isna()
    assert out.loc[~ok, "sentiment"].isna().all() and out.loc[~ok, "p_positive"].isna().all()
    expected = tiny_fast_model.predict(["Great app", "تطبيق رائع"])
    assert out.loc[ok, "sentiment"].tolist() == [p.sentiment for p in expected]
    assert out.loc[ok, "lang"].tolist() == [p.lang for p in expected]
    probs = out.loc[ok, [f"p_{s}" for s in SENTIMENTS]].to_numpy(dtype=float)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert out.loc[ok, "topics"].map(json.loads).tolist() == [[], []]


def test_classify_frame_missing_text_in_a_string_column(tiny_fast_model) -> None:
    # Regression: pd.NA (a "string" column's missing value) was classified as the text "<NA>".
    frame = pd.DataFrame({"text": pd.array(["Great app", None], dtype="string")})
    out = classify_frame(tiny_fast_model, frame)
    assert out["error"].tolist() == [None, "missing text"]
    assert out["sentiment"].iloc[1] is None


def test_classify_frame_isolates_a_failing_row(tiny_fast_model) -> None:
    class FailsOnBoom:
        def predict(self, texts, langs=None):
            if any("BOOM" in t for t in texts):
                raise RuntimeError("cannot handle BOOM")
            return tiny_fast_model.predict(texts)

    frame = pd.DataFrame({"text": ["Great app", "BOOM", "تطبيق رائع"]})
    out = classify_frame(FailsOnBoom(), frame)
    assert out["error"].tolist() == [
        None,
        "classification failed (RuntimeError); the log has the details",
        None,
    ]
    assert out["sentiment"].notna().tolist() == [True, False, True]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet", ".xlsx"])
def test_classify_file_every_format(tiny_fast_model, export: Path, suffix: str) -> None:
    output = export.with_name(f"labeled{suffix}")
    # Chunks of 3: the first has no error, a later one has (Parquet parts of differing types).
    stats = classify_file(tiny_fast_model, export, output, chunk_rows=3, progress=False)
    assert (stats.rows, stats.errors) == (len(TEXTS), len(EMPTY_ROWS))
    out = read_table(output)
    assert list(out.columns) == ["id", "text", "rating", *RESULT_COLUMNS]
    assert [int(i) for i in out["id"]] == list(range(1, len(TEXTS) + 1))
    assert out["text"].fillna("").tolist() == TEXTS
    has_error = out["error"].notna() & (out["error"] != "")
    assert set(np.flatnonzero(has_error)) == EMPTY_ROWS
    expected = classify_frame(tiny_fast_model, pd.DataFrame({"text": TEXTS}))
    assert out["sentiment"][~has_error].tolist() == expected["sentiment"].dropna().tolist()
    np.testing.assert_allclose(
        out["p_negative"][~has_error].astype(float), expected["p_negative"].dropna(), atol=1e-6
    )
    # Nothing but the input and the output is left behind.
    assert sorted(p.name for p in export.parent.iterdir()) == sorted([export.name, output.name])


def test_classify_file_keeps_an_existing_id_column(tiny_fast_model, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    write_table(pd.DataFrame({"ticket": ["T-9", "T-3", "T-5"], "text": TEXTS[:3]}), source)
    output = tmp_path / "out.jsonl"
    classify_file(tiny_fast_model, source, output, id_col="ticket", chunk_rows=2, progress=False)
    lines = output.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["ticket"] for line in lines] == ["T-9", "T-3", "T-5"]


def test_classify_file_missing_text_column_fails_before_any_output(
    tiny_fast_model, export: Path
) -> None:
    output = export.with_name("labeled.csv")
    with pytest.raises(KeyError, match=r"has no text column 'review'.*\['text', 'rating'\]"):
        classify_file(tiny_fast_model, export, output, text_col="review", progress=False)
    assert sorted(p.name for p in export.parent.iterdir()) == [export.name]


def test_classify_file_unsupported_output_type(tiny_fast_model, export: Path) -> None:
    with pytest.raises(ValueError, match="unsupported file type '.xls'"):
        classify_file(tiny_fast_model, export, export.with_name("out.xls"), progress=False)
    assert sorted(p.name for p in export.parent.iterdir()) == [export.name]


def test_classify_file_missing_input_leaves_nothing(tiny_fast_model, tmp_path: Path) -> None:
    # Regression: the work directory was created before the input was found missing.
    with pytest.raises(FileNotFoundError, match="input file not found"):
        classify_file(tiny_fast_model, tmp_path / "nope.csv", tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_classify_file_resume_after_a_crash(tiny_fast_model, export: Path, interrupt) -> None:
    reference = export.with_name("reference.csv")
    classify_file(tiny_fast_model, export, reference, chunk_rows=3, progress=False)

    output = export.with_name("labeled.csv")
    crashing = Recording(tiny_fast_model, fail_on_call=3, exc=interrupt)
    with pytest.raises(interrupt):
        classify_file(crashing, export, output, chunk_rows=3, progress=False)
    assert not output.exists()
    parts = sorted(p.name for p in output.with_name("labeled.csv.parts").glob("part-*"))
    assert parts == ["part-000000.parquet", "part-000001.parquet"]

    resumed = Recording(tiny_fast_model)
    stats = classify_file(resumed, export, output, chunk_rows=3, resume=True, progress=False)
    assert resumed.calls == 2  # chunks 3 and 4 of 4; the finished parts are reused
    assert stats.rows == len(TEXTS)
    pd.testing.assert_frame_equal(read_table(output), read_table(reference))
    assert not output.with_name("labeled.csv.parts").exists()


def test_classify_file_without_resume_starts_over(tiny_fast_model, export: Path) -> None:
    output = export.with_name("labeled.csv")
    with pytest.raises(KeyboardInterrupt):
        classify_file(Recording(tiny_fast_model, 2), export, output, chunk_rows=3, progress=False)
    again = Recording(tiny_fast_model)
    classify_file(again, export, output, chunk_rows=3, progress=False)
    assert again.calls == 4
    assert len(read_table(output)) == len(TEXTS)


def test_classify_file_resume_ignores_parts_of_a_changed_input(
    tiny_fast_model, export: Path
) -> None:
    # Regression: parts of an interrupted run were reused after the input file was replaced.
    output = export.with_name("labeled.csv")
    with pytest.raises(KeyboardInterrupt):
        classify_file(Recording(tiny_fast_model, 3), export, output, chunk_rows=3, progress=False)
    new_texts = [f"{t} (edited)" for t in TEXTS[:7]]
    write_table(pd.DataFrame({"text": new_texts, "rating": ["1"] * 7}), export)
    classify_file(tiny_fast_model, export, output, chunk_rows=3, resume=True, progress=False)
    assert read_table(output)["text"].tolist() == new_texts


def test_classify_file_resume_with_nothing_to_resume(tiny_fast_model, export: Path) -> None:
    output = export.with_name("labeled.parquet")
    stats = classify_file(tiny_fast_model, export, output, resume=True, progress=False)
    assert stats.rows == len(TEXTS) and len(pd.read_parquet(output)) == len(TEXTS)


def test_classify_file_resume_leaves_the_state_file_alone(tiny_fast_model, export: Path) -> None:
    # Regression: a resumed run rewrote state.json in place; killed while it was empty, the next
    # resume took the parts for another run's and threw every finished one away.
    output = export.with_name("labeled.csv")
    with pytest.raises(KeyboardInterrupt):
        classify_file(Recording(tiny_fast_model, 3), export, output, chunk_rows=3, progress=False)
    state = output.with_name("labeled.csv.parts") / "state.json"
    before = (state.stat().st_ino, state.stat().st_mtime_ns, state.read_bytes())

    class ChecksState(Recording):
        def predict(self, texts, langs=None):
            assert (state.stat().st_ino, state.stat().st_mtime_ns, state.read_bytes()) == before
            return super().predict(texts, langs)

    resumed = ChecksState(tiny_fast_model)
    classify_file(resumed, export, output, chunk_rows=3, resume=True, progress=False)
    assert resumed.calls == 2
    assert len(read_table(output)) == len(TEXTS)
