"""The classified-table contract: the result columns, and the topics cell written as a JSON array in
JSONL and a JSON string in CSV / XLSX, read back to the same list from either."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cxnlp.io.batch import classify_file
from cxnlp.io.tables import read_table, write_table
from cxnlp.labels import RESULT_COLUMNS, decode_topics, encode_topics, topics_cells

TOPICS = [{"topic": "delivery", "polarity": "negative", "score": 0.91}]


class TopicModel:
    """A stand-in model whose every prediction carries one topic (the fast tier has none)."""

    source_ = None

    def predict(self, texts, langs=None):
        from cxnlp.models.base import Prediction

        return [
            Prediction(
                "negative", {"negative": 0.8, "neutral": 0.1, "positive": 0.1}, "en", 0.8, TOPICS
            )
            for _ in texts
        ]


@pytest.fixture()
def reviews(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    pd.DataFrame({"text": ["the courier was late", ""]}).to_csv(path, index=False)
    return path


def test_labels_jsonl_output_holds_the_topics_as_an_array_not_a_string(reviews, tmp_path):
    out = tmp_path / "out.jsonl"
    classify_file(TopicModel(), reviews, out, progress=False)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0]["topics"] == TOPICS
    assert rows[1]["topics"] is None and rows[1]["error"] == "empty text"
    assert list(rows[0])[-len(RESULT_COLUMNS) :] == list(RESULT_COLUMNS)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet"])
def test_labels_text_formats_hold_the_topics_as_a_json_string(reviews, tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    classify_file(TopicModel(), reviews, out, progress=False)
    cell = read_table(out)["topics"].iloc[0]
    assert isinstance(cell, str) and json.loads(cell) == TOPICS


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_labels_write_table_round_trips_the_topics_cell(tmp_path, suffix):
    frame = pd.DataFrame({"text": ["a", "b"], "topics": [encode_topics(TOPICS), None]})
    write_table(frame, tmp_path / f"t{suffix}")
    back = read_table(tmp_path / f"t{suffix}")["topics"]
    assert decode_topics(back.iloc[0]) == TOPICS
    assert decode_topics(back.iloc[1]) == []


def test_labels_decode_reads_strings_and_lists_alike_and_refuses_garbage():
    assert decode_topics(encode_topics(TOPICS)) == decode_topics(TOPICS) == TOPICS
    assert decode_topics('[{"topic": "price"}]', "positive") == [
        {"topic": "price", "polarity": "positive", "score": None}
    ]
    assert decode_topics("not json") is None
    assert decode_topics("{}") is None


def test_labels_topics_cells_converts_only_what_needs_it():
    frame = pd.DataFrame({"topics": [TOPICS, encode_topics(TOPICS), None]})
    as_text = topics_cells(frame, as_text=True)["topics"].tolist()
    assert as_text == [encode_topics(TOPICS), encode_topics(TOPICS), None]
    as_lists = topics_cells(frame, as_text=False)["topics"].tolist()
    assert as_lists == [TOPICS, TOPICS, None]
    plain = pd.DataFrame({"text": ["x"]})
    assert topics_cells(plain, as_text=True) is plain
