"""Tables in and out: reading and writing CSV / JSONL / Parquet / XLSX (`tables`) and classifying
every row of a file or frame (`batch`, and `ray_engine` on a Ray cluster)."""

from cxnlp.io.batch import BatchStats, classify_file, classify_frame
from cxnlp.io.tables import (
    FORMATS,
    EncodingError,
    MalformedTableError,
    SpreadsheetTooLarge,
    check_xlsx,
    count_rows,
    detect_delimiter,
    detect_encoding,
    escape_formula,
    escape_formulas,
    iter_table,
    read_header,
    read_table,
    table_format,
    write_table,
)

__all__ = [
    "FORMATS",
    "BatchStats",
    "EncodingError",
    "MalformedTableError",
    "SpreadsheetTooLarge",
    "check_xlsx",
    "classify_file",
    "classify_frame",
    "count_rows",
    "detect_delimiter",
    "detect_encoding",
    "escape_formula",
    "escape_formulas",
    "iter_table",
    "read_header",
    "read_table",
    "table_format",
    "write_table",
]
