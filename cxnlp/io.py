"""Reading and writing the tables cxnlp works on: CSV (any delimiter and the encodings Persian and
Arabic exports come in), JSONL, Parquet and XLSX."""

from __future__ import annotations

import codecs
import csv
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)

FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "xlsx",
}
# Tried in this order when a CSV has no byte-order mark. Windows-1256 is how Excel on Persian and
# Arabic Windows saves "CSV"; it accepts almost any byte, so it must come last.
CSV_ENCODINGS = ("utf-8", "cp1256")
_SNIFF_BYTES = 1 << 16


def table_format(path: str | Path) -> str:
    """The format of a file from its extension; a clear error lists the supported ones."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"unsupported file type {suffix or '(none)'!r} for {path}; "
            f"expected one of {sorted(FORMATS)}"
        )
    return FORMATS[suffix]


def detect_encoding(path: str | Path) -> str:
    """The text encoding of a CSV: a byte-order mark decides, else NUL bytes mean UTF-16, else the
    first of `CSV_ENCODINGS` that decodes the start of the file."""
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        # No text encoding but UTF-16 puts NUL bytes in a CSV (the high byte of every ASCII
        # delimiter and digit); where they sit tells the byte order of a file saved without a BOM.
        odd = head[1::2].count(0)
        return "utf-16-le" if odd >= head[0::2].count(0) else "utf-16-be"
    # A multi-byte character may be cut at the sniff boundary: ignore the last 3 bytes then, and
    # only then (in a short file they may hold its only non-ASCII character).
    if len(head) == _SNIFF_BYTES:
        head = head[:-3]
    for encoding in CSV_ENCODINGS:
        try:
            head.decode(encoding)
            return encoding
        except UnicodeDecodeError:
            continue
    return "utf-8"


def detect_delimiter(path: str | Path, encoding: str) -> str:
    with open(path, encoding=encoding, errors="replace", newline="") as handle:
        sample = handle.read(_SNIFF_BYTES)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return "\t" if Path(path).suffix.lower() == ".tsv" else ","


def iter_table(path: str | Path, chunk_rows: int = 10_000) -> Iterator[pd.DataFrame]:
    """Yield the rows of a table in chunks of at most `chunk_rows`, every cell kept as read.

    CSV and JSONL stream; Parquet streams by record batch; XLSX is read whole (the format
    has no streaming reader worth its cost, and spreadsheets are small).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input file not found: {path}")
    kind = table_format(path)
    if kind == "csv":
        encoding = detect_encoding(path)
        delimiter = detect_delimiter(path, encoding)
        logger.info("reading %s as CSV (%s, delimiter %r)", path, encoding, delimiter)
        yield from pd.read_csv(
            path,
            sep=delimiter,
            encoding=encoding,
            encoding_errors="replace",
            dtype=str,
            keep_default_na=False,
            chunksize=chunk_rows,
        )
    elif kind == "jsonl":
        yield from pd.read_json(path, lines=True, dtype=False, chunksize=chunk_rows)
    elif kind == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    else:
        frame = pd.read_excel(path, dtype=object)
        for start in range(0, max(len(frame), 1), chunk_rows):
            yield frame.iloc[start : start + chunk_rows]


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a whole table (see `iter_table` for the formats)."""
    chunks = list(iter_table(path))
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a table in the format its extension names (CSV as UTF-8 with a BOM, which Excel needs
    to show Persian and Arabic)."""
    kind = table_format(path)
    if kind == "csv":
        sep = "\t" if Path(path).suffix.lower() == ".tsv" else ","
        frame.to_csv(path, index=False, sep=sep, encoding="utf-8-sig")
    elif kind == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif kind == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_excel(path, index=False)
