"""What a record must satisfy before the store writes it, beyond its columns' types: names the
database can hold (`cxnlp.io.validate.name_problem`: no NUL, no lone surrogate, in the dataset,
ids, dimension keys and values) and a cap on a dataset's dimension keys, so that items with
arbitrary extra fields cannot grow the filter menus without bound."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from cxnlp.feedback.models import DIMENSION_LEN, DIMENSIONS
from cxnlp.io.validate import name_problem

# Distinct dimension keys (fields other than id, text, date, score and the results) per dataset.
MAX_DIMENSION_KEYS = 50


def record_problem(record: Mapping[str, Any], indexed: Sequence[str]) -> str | None:
    """Why a record's id, dimension keys or values cannot be stored, or None; `indexed` are the
    dimensions stored in their own columns (`cxnlp.feedback.records.INDEXED_DIMENSIONS`)."""
    problem = name_problem(str(record["item_id"]))
    if problem is not None:
        return f"the id {problem}"
    if record.get("text") is not None and (problem := name_problem(record["text"])) is not None:
        return f"the text {problem}"
    pairs = list(record["dimensions"].items())
    pairs += [(c, record[c]) for c in indexed if record.get(c) is not None]
    for key, value in pairs:
        problem = name_problem(key)
        if problem is not None:
            return f"the field name {key!r} {problem}"
        problem = name_problem(value)
        if problem is not None:
            return f"field {key!r}: the value {problem}"
    return None


def record_keys(records: Iterable[Mapping[str, Any]], indexed: Sequence[str]) -> set[str]:
    """The dimension keys a batch of records brings, as the store names them."""
    keys: set[str] = set()
    for r in records:
        keys.update(k[:DIMENSION_LEN] for k in r["dimensions"])
        keys.update(c for c in indexed if r.get(c) is not None)
    return keys


def check_dimension_keys(
    connection: Connection,
    dataset: str,
    records: Iterable[Mapping[str, Any]],
    indexed: Sequence[str],
    limit: int = MAX_DIMENSION_KEYS,
) -> None:
    """ValueError when storing `records` would give `dataset` more than `limit` dimension keys."""
    new = record_keys(records, indexed)
    if not new:
        return
    known = set(
        connection.execute(
            select(DIMENSIONS.c.key).where(DIMENSIONS.c.dataset == dataset).distinct()
        ).scalars()
    )
    total = known | new
    if len(total) > limit:
        added = sorted(new - known)
        raise ValueError(
            f"dataset {dataset!r} would have {len(total)} dimension fields (fields other than id, "
            f"text, date, score and the results; {len(known)} stored, new ones such as "
            f"{added[:3]}); the limit is {limit} per dataset. Send the same few fields with "
            "every item (e.g. channel, product), or put varying details in the text"
        )
