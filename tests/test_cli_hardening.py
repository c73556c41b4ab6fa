"""CLI input handling (issue 15): the text column is checked before the model loads, a malformed
CSV is reported with its line, the progress bar has a total."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cxnlp.cli import main
from cxnlp.io import MalformedTableError, count_rows, iter_table
from cxnlp.io.batch import classify_file


def _csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_text_column_is_reported_before_the_model_loads(tmp_path):
    source = _csv(tmp_path / "in.csv", "id,body\n1,Great app\n")

    def loader():
        raise AssertionError("the model was loaded before the header was checked")

    with pytest.raises(KeyError, match="no text column 'text'.*'body'"):
        classify_file(loader, source, tmp_path / "out.csv", progress=False)


def test_cli_names_the_missing_column_not_the_model(tmp_path, capsys):
    source = _csv(tmp_path / "in.csv", "id,body\n1,Great app\n")
    code = main(["classify", str(source), "-o", str(tmp_path / "o.csv"), "--model", "no-such"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no text column 'text'" in err and "no-such" not in err


def test_a_loader_is_called_once_the_header_is_right(tmp_path, tiny_fast_model):
    source = _csv(tmp_path / "in.csv", "id,text\n1,Great app\n2,bad\n")
    calls = []
    stats = classify_file(
        lambda: calls.append(1) or tiny_fast_model, source, tmp_path / "o.csv", progress=False
    )
    assert calls == [1] and stats.rows == 2


def test_malformed_csv_names_the_line(tmp_path, capsys):
    source = _csv(tmp_path / "bad.csv", "id,text\n1,ok\n2,one,two,three\n3,ok\n")
    with pytest.raises(MalformedTableError, match="line 3 has 4 fields where the header has 2"):
        list(iter_table(source))
    code = main(["classify", str(source), "-o", str(tmp_path / "o.csv"), "--model", "fast"])
    err = capsys.readouterr().err
    assert code == 2 and "line 3 has 4 fields" in err and "C error" not in err


def test_count_rows_is_cheap_and_close(tmp_path):
    source = _csv(tmp_path / "in.csv", "id,text\n" + "".join(f"{i},t{i}\n" for i in range(50)))
    assert count_rows(source) == 50
    pd.DataFrame({"text": ["a", "b", "c"]}).to_parquet(tmp_path / "p.parquet")
    assert count_rows(tmp_path / "p.parquet") == 3
    assert count_rows(tmp_path / "missing.csv") is None


def test_progress_bar_has_a_total(tmp_path, tiny_fast_model, monkeypatch):
    import cxnlp.io.batch as batch

    seen = {}
    real = batch.tqdm

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **{**kwargs, "disable": True})

    monkeypatch.setattr(batch, "tqdm", spy)
    source = _csv(tmp_path / "in.csv", "id,text\n" + "".join(f"{i},Great {i}\n" for i in range(7)))
    classify_file(tiny_fast_model, source, tmp_path / "o.csv", progress=True)
    assert seen["total"] == 7
