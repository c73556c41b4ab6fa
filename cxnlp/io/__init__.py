"""Tables in and out: reading and writing CSV / JSONL / Parquet / XLSX (`tables`) and classifying
every row of a file or frame (`batch`)."""

from cxnlp.io.batch import BatchStats, classify_file, classify_frame
from cxnlp.io.tables import (
    FORMATS,
    EncodingError,
    detect_encoding,
    iter_table,
    read_table,
    table_format,
    write_table,
)

__all__ = [
    "FORMATS",
    "BatchStats",
    "EncodingError",
    "classify_file",
    "classify_frame",
    "detect_encoding",
    "iter_table",
    "read_table",
    "table_format",
    "write_table",
]
