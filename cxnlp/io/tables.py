"""Reading and writing the tables cxnlp works on: CSV (any delimiter and the encodings Persian and
Arabic exports come in), JSONL, Parquet and XLSX."""

from __future__ import annotations

import codecs
import csv
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from cxnlp.labels import topics_cells

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


class MalformedTableError(ValueError):
    """A CSV whose rows cannot be split into the header's columns."""


_FIELDS_RE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _csv_problem(path: Path, delimiter: str, message: str) -> str:
    match = _FIELDS_RE.search(message)
    if match:
        expected, line, saw = match.groups()
        return (
            f"{path}: line {line} has {saw} fields where the header has {expected} (delimiter "
            f"{delimiter!r}): a text holding the delimiter must be in double quotes; fix that row "
            "or re-export the file with quoting"
        )
    if "EOF inside string" in message or "EOF" in message:
        line = re.search(r"line (\d+)", message)
        where = f" starting on line {line.group(1)}" if line else ""
        return (
            f"{path}: a quoted text{where} is never closed (a stray double quote?); the file "
            "ends inside it"
        )
    return f"{path} is not a well-formed CSV ({message.strip().splitlines()[-1][:200]})"


def count_rows(path: str | Path) -> int | None:
    """How many data rows a table has, cheaply, before any work (a progress bar, a job's row
    limit): Parquet's metadata, the line count of a JSONL, the rows of a CSV (a line break inside
    a quoted field does not end a row: a line ends one only where the quotes seen so far are
    balanced), the row tags of an XLSX's first sheet (`count_xlsx_rows`); None when unknown."""
    path = Path(path)
    try:
        kind = table_format(path)
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        if kind == "xlsx":
            return max(count_xlsx_rows(path) - 1, 0)
        rows, quotes, pending = 0, 0, False
        with open(path, "rb") as handle:
            for line in handle:
                quotes += line.count(b'"')
                if quotes % 2 == 0:
                    rows += 1
                    pending = False
                else:
                    pending = True
        rows += pending
        return max(rows - (kind == "csv"), 0)
    except (OSError, ValueError):
        return None


def read_header(path: str | Path) -> list[str]:
    """The column names of a table, read without reading the rows (the first chunk of one row)."""
    for chunk in iter_table(path, chunk_rows=1):
        return [str(c) for c in chunk.columns]
    return []


class EncodingError(ValueError):
    """A CSV whose bytes do not decode in one encoding from start to end."""


def detect_encoding(path: str | Path) -> str:
    """The text encoding of a CSV, checked over the whole file, not guessed from its start.

    A byte-order mark decides, else NUL bytes mean UTF-16, else UTF-8 when every byte of the file
    decodes as UTF-8, else Windows-1256 when the file is not UTF-8 from its first block on. A file
    that decodes as UTF-8 for a while and then not, or a Windows-1256 file with UTF-8 lines in it,
    mixes encodings: `EncodingError` says where, instead of garbling one part of it.
    """
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if head.startswith(codecs.BOM_UTF8):
        _check_decodes(path, "utf-8-sig")
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        _check_decodes(path, "utf-16")
        return "utf-16"
    if b"\x00" in head:
        # No text encoding but UTF-16 puts NUL bytes in a CSV (the high byte of every ASCII
        # delimiter and digit); where they sit tells the byte order of a file saved without a BOM.
        odd = head[1::2].count(0)
        encoding = "utf-16-le" if odd >= head[0::2].count(0) else "utf-16-be"
        _check_decodes(path, encoding)
        return encoding
    bad_at = _first_undecodable(path, "utf-8")
    if bad_at is None:
        return "utf-8"
    if bad_at >= _SNIFF_BYTES:
        line = _line_of(path, bad_at)
        raise EncodingError(
            f"{path} decodes as UTF-8 up to line {line} (byte {bad_at}), then not: the file mixes "
            "encodings (e.g. rows appended from another program). Re-save it as UTF-8 and retry."
        )
    # Windows-1256 accepts almost any byte, so a UTF-8 part in it would be garbled without a
    # word: a non-ASCII line that is valid UTF-8 is such a part (Arabic letters in Windows-1256
    # almost never form valid UTF-8 sequences over a whole line).
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.isascii():
                continue
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
            raise EncodingError(
                f"{path} is not UTF-8 (first bad byte at {bad_at}) but line {number} is: the file "
                "mixes Windows-1256 and UTF-8. Re-save it in one encoding (UTF-8) and retry."
            )
    return "cp1256"


def _first_undecodable(path: str | Path, encoding: str) -> int | None:
    """The byte offset of the first byte that does not decode, or None when the whole file does."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    offset = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            held = len(decoder.getstate()[0])  # a character cut by the previous block
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                # exc.start counts from the held-back bytes plus this block.
                return max(offset - held + exc.start, 0)
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return offset
    return None


def _check_decodes(path: str | Path, encoding: str) -> None:
    bad_at = _first_undecodable(path, encoding)
    if bad_at is not None:
        raise EncodingError(
            f"{path} starts as {encoding} but byte {bad_at} (line {_line_of(path, bad_at)}) does "
            "not decode in it: the file is damaged or mixes encodings. Re-save it as UTF-8."
        )


def _line_of(path: str | Path, offset: int) -> int:
    with open(path, "rb") as handle:
        return handle.read(offset).count(b"\n") + 1


def detect_delimiter(path: str | Path, encoding: str) -> str:
    with open(path, encoding=encoding, errors="replace", newline="") as handle:
        sample = handle.read(_SNIFF_BYTES)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return "\t" if Path(path).suffix.lower() == ".tsv" else ","


def iter_table(
    path: str | Path,
    chunk_rows: int = 10_000,
    on_encoding: Callable[[str], None] | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield the rows of a table in chunks of at most `chunk_rows`, every cell kept as read.

    CSV and JSONL stream; Parquet streams by record batch; XLSX streams row by row, after its
    zip is checked against `XLSX_LIMITS` (a zip bomb is refused before any parsing). For a CSV,
    `on_encoding` is called with the encoding it is read in, before the first chunk.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input file not found: {path}")
    kind = table_format(path)
    if kind == "csv":
        encoding = detect_encoding(path)
        delimiter = detect_delimiter(path, encoding)
        logger.info("reading %s as CSV (%s, delimiter %r)", path, encoding, delimiter)
        if on_encoding is not None:
            on_encoding(encoding)
        reader = pd.read_csv(
            path,
            sep=delimiter,
            encoding=encoding,
            # Checked whole by detect_encoding: a byte that does not decode is an error, never a
            # silently replaced character.
            encoding_errors="strict",
            dtype=str,
            keep_default_na=False,
            chunksize=chunk_rows,
        )
        try:
            yield from reader
        except pd.errors.ParserError as exc:
            raise MalformedTableError(_csv_problem(path, delimiter, str(exc))) from None
    elif kind == "jsonl":
        yield from pd.read_json(path, lines=True, dtype=False, chunksize=chunk_rows)
    elif kind == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    else:
        yield from _iter_xlsx(path, chunk_rows)


class SpreadsheetTooLarge(ValueError):
    """An XLSX workbook over a limit of `XLSX_LIMITS` (a zip bomb, or more rows than allowed)."""


XLSX_LIMITS = {
    # Set from the environment (CXNLP_XLSX_MAX_BYTES, ...) at each read.
    "max_bytes": 512 * 2**20,  # uncompressed size of all the workbook's parts
    "max_ratio": 100,  # uncompressed / compressed; real workbooks are 3-20x, bombs 100s to 1000s
    "max_rows": 1_048_576,  # Excel's own sheet limit
}


def _xlsx_limit(name: str) -> int:
    value = os.environ.get(f"CXNLP_XLSX_{name.upper()}")
    return int(value) if value else XLSX_LIMITS[name]


def check_xlsx(path: str | Path) -> None:
    """Refuse a workbook whose zip inflates beyond the limits, reading only the zip's directory."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path} is not an XLSX workbook (not a zip file: {exc})") from None
    inflated = sum(m.file_size for m in members)
    packed = max(sum(m.compress_size for m in members), 1)
    max_bytes, max_ratio = _xlsx_limit("max_bytes"), _xlsx_limit("max_ratio")
    if inflated > max_bytes:
        raise SpreadsheetTooLarge(
            f"{path} inflates to {inflated} bytes, over the limit of {max_bytes} "
            "(CXNLP_XLSX_MAX_BYTES); export it as CSV or Parquet instead"
        )
    if inflated > 2**20 and inflated / packed > max_ratio:
        raise SpreadsheetTooLarge(
            f"{path} inflates {inflated / packed:.0f} times ({packed} bytes to {inflated}), over "
            f"the limit of {max_ratio} (CXNLP_XLSX_MAX_RATIO): refused as a likely zip bomb; "
            "export it as CSV or Parquet instead"
        )


_ROW_TAG = re.compile(rb"<(?:[A-Za-z]\w*:)?row[\s>/]")
_CARRY = 24  # bytes kept between blocks, so a tag cut by a block boundary is counted once


def _first_sheet(archive: Any) -> str:
    """The zip path of a workbook's first sheet, from workbook.xml and its relationships."""
    from xml.etree import ElementTree

    main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    rel_ns = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
    try:
        book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
        first = book.find(f"{main}sheets/{main}sheet")
        rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
        target = next(
            r.get("Target", "")
            for r in rels
            if first is not None and r.get("Id") == first.get(f"{rel_ns}id")
        )
    except (KeyError, StopIteration, ElementTree.ParseError):
        return "xl/worksheets/sheet1.xml"
    return target.lstrip("/") if target.startswith("/") else f"xl/{target}"


def count_xlsx_rows(path: str | Path) -> int:
    """The rows of a workbook's first sheet (header and blank rows included), counted on its
    XML stream without parsing it: a few seconds for a million rows, in constant memory, after
    the zip-bomb check of `check_xlsx`. A job's row limit is checked on it before any work."""
    import zipfile

    check_xlsx(path)
    rows, carry = 0, b""
    with zipfile.ZipFile(path) as archive:
        try:
            stream = archive.open(_first_sheet(archive))
        except KeyError:
            return 0
        with stream:
            while block := stream.read(1 << 20):
                data = carry + block
                cut = max(len(data) - _CARRY, 0)
                rows += sum(1 for m in _ROW_TAG.finditer(data) if m.start() < cut)
                carry = data[cut:]  # tags starting here are counted with the next block
        rows += len(_ROW_TAG.findall(carry))
    return rows


def _iter_xlsx(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The first sheet of a workbook in chunks, streamed (openpyxl's read-only mode parses the
    sheet's XML as it goes; defusedxml guards the parser when installed)."""
    import openpyxl

    check_xlsx(path)
    max_rows = _xlsx_limit("max_rows")
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        rows = book.worksheets[0].iter_rows(values_only=True) if book.worksheets else iter(())
        header = next(rows, None)
        if header is None:
            yield pd.DataFrame()
            return
        columns = [str(v) if v is not None else f"Unnamed: {i}" for i, v in enumerate(header)]
        width, chunk, total, sent = len(columns), [], 0, False
        for row in rows:
            if all(v is None for v in row):
                continue  # blank rows, as pandas.read_excel skips them
            total += 1
            if total > max_rows:
                raise SpreadsheetTooLarge(
                    f"{path} has more than {max_rows} rows (CXNLP_XLSX_MAX_ROWS); split it or "
                    "export it as CSV or Parquet"
                )
            values = list(row[:width]) + [None] * (width - len(row))
            chunk.append(values)
            if len(chunk) >= chunk_rows:
                yield pd.DataFrame(chunk, columns=columns, dtype=object)
                chunk, sent = [], True
        if chunk or not sent:
            yield pd.DataFrame(chunk, columns=columns, dtype=object)
    finally:
        book.close()


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a whole table (see `iter_table` for the formats)."""
    chunks = list(iter_table(path))
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()


# A spreadsheet reads a cell starting with one of these as a formula (OWASP "CSV injection"):
# `=HYPERLINK(...)` in a review would be a live link in Excel or LibreOffice.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER_RE = re.compile(r"[+-]?\d+(?:[.,]\d+)*")


def escape_formula(value: object) -> object:
    """`value` with a leading apostrophe when a spreadsheet would read it as a formula; other
    values, and plain signed numbers ("-3", "+98"), unchanged."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_STARTS)
        and not _PLAIN_NUMBER_RE.fullmatch(value)
    ):
        return "'" + value
    return value


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells are safe to open in a spreadsheet (`escape_formula`).
    Only files made for spreadsheets get this (`--excel-safe` CSV, the dashboard's export); never
    what is stored or joined back by id."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(escape_formula, na_action="ignore")
    return out


def write_table(frame: pd.DataFrame, path: str | Path, excel_safe: bool = False) -> None:
    """Write a table in the format its extension names (CSV as UTF-8 with a BOM, which Excel needs
    to show Persian and Arabic). Every text and id is written exactly as it is: a CSV is data a
    pipeline joins back by id. `excel_safe` (CSV only) escapes the cells a spreadsheet would run
    as formulas (`escape_formulas`), for a file a person opens in Excel; an XLSX needs no escape,
    its text cells are written as strings, never as formulas."""
    kind = table_format(path)
    # A classified table's topics: a JSON array in JSONL, a JSON string in the other formats.
    frame = topics_cells(frame, as_text=kind != "jsonl")
    if kind == "csv":
        if excel_safe:
            frame = escape_formulas(frame)
        sep = "\t" if Path(path).suffix.lower() == ".tsv" else ","
        # CRLF rows (RFC 4180): a text holding a bare CR is then quoted, not split in two.
        frame.to_csv(path, index=False, sep=sep, encoding="utf-8-sig", lineterminator="\r\n")
    elif kind == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif kind == "parquet":
        frame.to_parquet(path, index=False)
    else:
        write_xlsx(frame, path)


def make_excel_safe(path: str | Path) -> None:
    """Rewrite a CSV written by `write_table` with its formula-like cells escaped, in chunks,
    under a temporary name renamed into place (`cxnlp classify --excel-safe --store` stores the
    exact rows first, then escapes the file). Other formats are left as they are."""
    path = Path(path)
    if path.is_dir() or table_format(path) != "csv":
        return
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    chunks = pd.read_csv(
        path, sep=sep, encoding="utf-8-sig", dtype=str, keep_default_na=False, chunksize=10_000
    )
    with open(tmp, "w", encoding="utf-8-sig", newline="") as out:
        for n, chunk in enumerate(chunks):
            escape_formulas(chunk).to_csv(
                out, index=False, header=n == 0, sep=sep, lineterminator="\r\n"
            )
    tmp.replace(path)


def _cell_value(value: object) -> object:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def write_xlsx(frame: pd.DataFrame, path: str | Path) -> None:
    """`frame` as the first sheet of a workbook, every text cell typed as a string: a text
    starting with `=`, `+`, `-` or `@` shows as itself, is never run as a formula, and reads back
    unchanged."""
    import openpyxl
    from openpyxl.cell import WriteOnlyCell

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()

    def cell(value: object) -> WriteOnlyCell:
        value = _cell_value(value)
        out = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            out.data_type = "s"  # openpyxl types a leading "=" as a formula otherwise
        return out

    sheet.append([cell(str(c)) for c in frame.columns])
    for row in frame.itertuples(index=False, name=None):
        sheet.append([cell(v) for v in row])
    book.save(path)
