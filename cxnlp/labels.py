"""The label sets every part of cxnlp agrees on (sentiments, languages, survey score kinds,
report periods), and the classified-table contract: the columns `cxnlp classify` adds to a table
and how its `topics` cell is written and read. Each set is spelled here only: the CLI's choices,
the API's `Literal` types and the store's checks import it.

The `topics` cell is a list of `{"topic", "polarity", "score"}`. In text formats whose cells are
strings (CSV, XLSX, Parquet) it is that list as a JSON string; in JSONL it is a JSON array. Both
read back to the same list with `decode_topics`.

>>> cell = encode_topics([{"topic": "delivery", "polarity": "negative", "score": 0.9}])
>>> cell
'[{"topic": "delivery", "polarity": "negative", "score": 0.9}]'
>>> decode_topics(cell) == decode_topics(json.loads(cell))
True
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
LANGS: tuple[str, ...] = ("fa", "ar", "en")
# Survey scores a report and the store read beside sentiment (scales in cxnlp.report.scores).
SCORE_KINDS: tuple[str, ...] = ("nps", "csat", "ces")
# The periods a report groups dates by; the feedback store's SQL groups by the first three only.
PERIODS: tuple[str, ...] = ("day", "week", "month", "quarter", "year")
STORE_PERIODS: tuple[str, ...] = PERIODS[:3]

# The same sets as types, for pydantic bodies and query parameters.
Sentiment = Literal[SENTIMENTS]
Lang = Literal[LANGS]
ScoreKind = Literal[SCORE_KINDS]
Period = Literal[PERIODS]
StorePeriod = Literal[STORE_PERIODS]


def probability_column(label: str) -> str:
    """The column holding the calibrated probability of one sentiment: `p_<label>`."""
    return f"p_{label}"


# The probability columns in SENTIMENTS order (the order computations use).
PROBABILITY_COLUMNS: tuple[str, ...] = tuple(probability_column(s) for s in SENTIMENTS)
TOPICS_COLUMN = "topics"
# True where the text has clauses or topics of opposite sentiment (cxnlp.models.pipeline); empty
# where the text was not read by clause. Read back with `decode_flag`.
MIXED_COLUMN = "mixed"
ERROR_COLUMN = "error"
# The customer an item is about, when the export or API item names one: follow-up cases are
# opened per customer (cxnlp.feedback.cases) and the dashboard shows a customer's history.
CUSTOMER_ID_COLUMN = "customer_id"
# How urgently the text needs a human (cxnlp.text.urgency): the score in [0, 1], its level
# (high / medium / low / none) and the evidence, a JSON list of {start, end, text, cue}.
URGENCY_COLUMNS: tuple[str, ...] = ("urgency", "urgency_level", "urgency_evidence")
# What `cxnlp classify` adds to every row, in the order it writes them.
# The probability columns as `cxnlp classify` writes them (positive first, as people read them).
OUTPUT_PROBABILITY_COLUMNS: tuple[str, ...] = tuple(reversed(PROBABILITY_COLUMNS))
RESULT_COLUMNS: tuple[str, ...] = (
    "sentiment",
    *OUTPUT_PROBABILITY_COLUMNS,
    "confidence",
    "lang",
    TOPICS_COLUMN,
    MIXED_COLUMN,
    *URGENCY_COLUMNS,
    ERROR_COLUMN,
)
# Result columns that files classified by older versions lack: readers accept a table without them.
OPTIONAL_RESULT_COLUMNS: tuple[str, ...] = (MIXED_COLUMN, *URGENCY_COLUMNS)
# What a report needs of a classified table.
REPORT_COLUMNS: tuple[str, ...] = ("sentiment", *PROBABILITY_COLUMNS, ERROR_COLUMN)


def encode_topics(topics: list[dict[str, Any]]) -> str:
    """A row's topics as the JSON string a text cell holds."""
    return json.dumps(topics, ensure_ascii=False)


def decode_topics(value: object, sentiment: str | None = None) -> list[dict[str, Any]] | None:
    """One row's topics from its cell (a JSON string, or a list as JSONL reads back), each topic
    once (its first mention); None when the cell is not a list of topics. A topic without a
    valid polarity takes the row's `sentiment`; its `evidence` ({"start", "end", "text"}) is kept
    when the cell has one.

    >>> decode_topics('[{"topic": "delivery", "polarity": "negative", "score": 0.9}]', "negative")
    [{'topic': 'delivery', 'polarity': 'negative', 'score': 0.9}]
    >>> decode_topics("", "neutral")
    []
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        if value in ("[]", "") or not value.strip():  # most rows: skip the JSON parser
            return []
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, list | tuple):
        return None
    topics, seen = [], set()
    for item in value:
        name = item.get("topic") if isinstance(item, dict) else item
        if not isinstance(name, str) or not name.strip() or name in seen:
            continue
        seen.add(name)
        polarity = item.get("polarity") if isinstance(item, dict) else None
        score = item.get("score") if isinstance(item, dict) else None
        topic = {
            "topic": name,
            "polarity": polarity if polarity in SENTIMENTS else sentiment,
            "score": score if isinstance(score, int | float) else None,
        }
        evidence = item.get("evidence") if isinstance(item, dict) else None
        if isinstance(evidence, dict):
            topic["evidence"] = evidence
        topics.append(topic)
    return topics


def decode_flag(value: object) -> bool | None:
    """A yes / no cell (such as `mixed`) as a bool: True / False as written by any table format
    (a bool, 1 / 0, or the strings "true" / "false", "1" / "0", "yes" / "no" in any case); None
    for an empty cell or anything else.

    >>> [decode_flag(v) for v in (True, "False", " TRUE ", 0, "", None, float("nan"), "maybe")]
    [True, False, True, False, None, None, None, None]
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "1", "yes"):
            return True
        return False if word in ("false", "0", "no") else None
    if hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    if isinstance(value, bool | int) or (isinstance(value, float) and value in (0.0, 1.0)):
        return bool(value)
    return None


def topics_cells(frame: pd.DataFrame, *, as_text: bool) -> pd.DataFrame:
    """`frame` with its topics cells as JSON strings (`as_text`, for CSV / XLSX / Parquet) or as
    lists (for JSONL, where a string would be JSON inside JSON). Cells already in the wanted form,
    and missing ones, are left alone; a frame without a topics column is returned as is."""
    if TOPICS_COLUMN not in frame.columns:
        return frame
    if as_text:

        def convert(v: object) -> object:
            return encode_topics(list(v)) if isinstance(v, list | tuple) else v
    else:

        def convert(v: object) -> object:
            if not isinstance(v, str):
                return v
            try:
                return json.loads(v)
            except ValueError:
                return v  # not JSON: written as the text it is

    out = frame.copy()
    out[TOPICS_COLUMN] = [convert(v) for v in frame[TOPICS_COLUMN]]
    return out
