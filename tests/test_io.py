"""Tests for cxnlp.io.tables: formats, CSV encodings and delimiters, chunked reading, round trips."""

from __future__ import annotations

import codecs
import csv
from pathlib import Path

import pandas as pd
import pytest

from cxnlp.io import tables as io

# The Persian text has the Arabic yeh (ي): Windows-1256 has no Persian yeh (ی), and Persian
# Windows writes ي in its place.
TEXTS = {
    "fa": "غذا سرد بود، پيک دير رسيد",
    "ar": "الخدمة ممتازة والتوصيل سريع",
    "en": 'Great app, "fast"; love it',
}
FRAME = pd.DataFrame({"id": ["001", "002", "003"], "text": list(TEXTS.values())})


def _csv_text(frame: pd.DataFrame, sep: str = ",") -> str:
    return frame.to_csv(index=False, sep=sep, quoting=csv.QUOTE_MINIMAL)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.csv", "csv"),
        ("a.TSV", "csv"),
        ("a.txt", "csv"),
        ("dir.v2/a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
        ("a.XLSX", "xlsx"),
    ],
)
def test_table_format_from_extension(name: str, kind: str) -> None:
    assert io.table_format(name) == kind


@pytest.mark.parametrize("name", ["reviews.xls", "reviews.json", "reviews"])
def test_table_format_unsupported_lists_the_supported_ones(name: str) -> None:
    with pytest.raises(ValueError, match=r"unsupported file type .*expected one of .*'\.csv'"):
        io.table_format(name)


# (label, bytes of FRAME's CSV, encoding detect_encoding must name)
ENCODED = [
    ("utf-8", _csv_text(FRAME).encode("utf-8"), "utf-8"),
    ("utf-8 with BOM", codecs.BOM_UTF8 + _csv_text(FRAME).encode("utf-8"), "utf-8-sig"),
    ("utf-16 LE with BOM", _csv_text(FRAME, "\t").encode("utf-16"), "utf-16"),
    ("utf-16 BE with BOM", codecs.BOM_UTF16_BE + _csv_text(FRAME).encode("utf-16-be"), "utf-16"),
    ("utf-16 LE without BOM", _csv_text(FRAME).encode("utf-16-le"), "utf-16-le"),
    ("utf-16 BE without BOM", _csv_text(FRAME, "\t").encode("utf-16-be"), "utf-16-be"),
    ("windows-1256", _csv_text(FRAME).encode("cp1256"), "cp1256"),
]


@pytest.mark.parametrize(("label", "data", "expected"), ENCODED, ids=[e[0] for e in ENCODED])
def test_detect_encoding(tmp_path: Path, label: str, data: bytes, expected: str) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    assert io.detect_encoding(path) == expected


@pytest.mark.parametrize(("label", "data", "expected"), ENCODED, ids=[e[0] for e in ENCODED])
def test_read_table_decodes_every_encoding(
    tmp_path: Path, label: str, data: bytes, expected: str
) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    pd.testing.assert_frame_equal(io.read_table(path), FRAME)


def test_detect_encoding_short_windows_1256_file_with_persian_only_at_the_end(
    tmp_path: Path,
) -> None:
    # Regression: the last 3 bytes were always skipped, so a file whose only Persian word ("نه",
    # 2 bytes in Windows-1256) closes it passed as UTF-8 and the word became U+FFFD.
    path = tmp_path / "export.csv"
    path.write_bytes("id,text\n1,good\n2,نه\n".encode("cp1256"))
    assert io.detect_encoding(path) == "cp1256"
    assert io.read_table(path)["text"].tolist() == ["good", "نه"]


def test_detect_encoding_utf8_character_cut_at_the_sniff_boundary(tmp_path: Path) -> None:
    # The sniffed head ends inside a 2-byte Persian letter: still UTF-8, not Windows-1256.
    filler = "a" * (io._SNIFF_BYTES - 1)
    path = tmp_path / "export.csv"
    path.write_bytes(f"{filler}س\n".encode())
    assert io.detect_encoding(path) == "utf-8"


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"], ids=["comma", "semicolon", "tab", "pipe"])
def test_detect_delimiter(tmp_path: Path, sep: str) -> None:
    frame = pd.DataFrame(
        {
            "id": [str(i) for i in range(6)],
            "text": [*TEXTS.values(), "ok", "بد بود", "so so, I guess"],
            "rating": ["5", "1", "4", "3", "1", "3"],
        }
    )
    path = tmp_path / "export.csv"
    path.write_text(_csv_text(frame, sep), encoding="utf-8")
    assert io.detect_delimiter(path, "utf-8") == sep
    pd.testing.assert_frame_equal(io.read_table(path), frame)


@pytest.mark.parametrize(("suffix", "expected"), [(".csv", ","), (".tsv", "\t")])
def test_detect_delimiter_single_column_falls_back_by_extension(
    tmp_path: Path, suffix: str, expected: str
) -> None:
    path = tmp_path / f"export{suffix}"
    path.write_text("text\n" + "\n".join(["good", "bad", "خوب"]) + "\n", encoding="utf-8")
    assert io.detect_delimiter(path, "utf-8") == expected


def test_csv_cells_are_kept_as_read(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("id,text\n007,NA\n008,\n009,null\n", encoding="utf-8")
    frame = io.read_table(path)
    assert frame["id"].tolist() == ["007", "008", "009"]
    assert frame["text"].tolist() == ["NA", "", "null"]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet", ".xlsx"])
def test_iter_table_chunks_keep_every_row_in_order(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame(
        {"id": [f"r{i}" for i in range(11)], "text": [f"{TEXTS['fa']} {i}" for i in range(11)]}
    )
    path = tmp_path / f"export{suffix}"
    io.write_table(frame, path)
    chunks = list(io.iter_table(path, chunk_rows=4))
    assert len(chunks) >= 3
    assert all(0 < len(chunk) <= 4 for chunk in chunks)
    joined = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(joined[["id", "text"]], frame)


def test_iter_table_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="input file not found"):
        next(io.iter_table(tmp_path / "nope.csv"))


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet", ".xlsx"])
def test_write_then_read_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    io.write_table(FRAME, path)
    pd.testing.assert_frame_equal(io.read_table(path), FRAME)


def test_write_table_csv_has_a_bom_for_excel(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    io.write_table(FRAME, path)
    assert path.read_bytes().startswith(codecs.BOM_UTF8)


def test_write_table_tsv_is_tab_separated(tmp_path: Path) -> None:
    path = tmp_path / "out.tsv"
    io.write_table(FRAME, path)
    assert path.read_text(encoding="utf-8-sig").splitlines()[0] == "id\ttext"


def test_write_table_unsupported_type(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported file type '.xls'"):
        io.write_table(FRAME, tmp_path / "out.xls")
    assert not (tmp_path / "out.xls").exists()


@pytest.mark.parametrize("pad", range(4))
def test_detect_encoding_reads_large_utf8_persian_csv_whole(tmp_path: Path, pad: int) -> None:
    # Regression: the 64 KiB sniff sample minus 3 bytes could end inside a 2-byte Persian letter,
    # the check failed and Windows-1256 garbled every row without an error.
    body = "id,text\np," + "x" * pad + "\n" + "".join(f"{i},غذا سرد بود!!!\n" for i in range(9000))
    path = tmp_path / "e.csv"
    path.write_bytes(body.encode("utf-8"))
    assert io.detect_encoding(path) == "utf-8"
    texts = io.read_table(path)["text"].tolist()
    assert texts[1:] == ["غذا سرد بود!!!"] * 9000


def test_detect_encoding_every_cut_of_the_sample_stays_utf8(tmp_path: Path) -> None:
    # Every offset of the sample boundary within the multi-byte characters around it.
    for shift in range(6):
        data = ("a" * shift + "ب" * (io._SNIFF_BYTES // 2 + 10)).encode("utf-8")
        path = tmp_path / f"s{shift}.csv"
        path.write_bytes(b"text\n" + data + b"\n")
        assert io.detect_encoding(path) == "utf-8", shift


def test_detect_encoding_utf8_then_windows_1256_is_an_error(tmp_path: Path) -> None:
    head = "".join(f"{i},غذا سرد بود\n" for i in range(6000)).encode("utf-8")
    tail = "6000,غذا سرد بود\n".encode("cp1256")
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"id,text\n" + head + tail)
    with pytest.raises(io.EncodingError, match=r"decodes as UTF-8 up to line 6002 .*mixes"):
        io.detect_encoding(path)
    with pytest.raises(io.EncodingError):
        io.read_table(path)


def test_detect_encoding_windows_1256_with_a_utf8_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes("id,text\n1,غذا سرد بود\n".encode("cp1256") + "2,الخدمة ممتازة\n".encode())
    with pytest.raises(io.EncodingError, match=r"line 3 is: the file mixes Windows-1256 and UTF-8"):
        io.detect_encoding(path)


def test_detect_encoding_damaged_utf16_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "u16.csv"
    path.write_bytes(_csv_text(FRAME).encode("utf-16") + b"\x00\xd8")  # a lone high surrogate
    with pytest.raises(io.EncodingError, match="does not decode"):
        io.detect_encoding(path)


def test_iter_table_reports_the_encoding_it_read_with(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes(_csv_text(FRAME).encode("cp1256"))
    seen: list[str] = []
    list(io.iter_table(path, on_encoding=seen.append))
    assert seen == ["cp1256"]
