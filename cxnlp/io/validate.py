"""The one input contract of every surface: what makes a text unclassifiable (`text_problem`,
called by `cxnlp classify` per row, the Ray engine, `/v1`, the Azure and AWS routes), what a
name or key may not hold (`name_problem`: datasets, ids, dimensions, stats filters), and a JSON
body too deep to decode (`parse_json`).

Each surface answers a problem in its own shape (a row's `error`, an item's `error`, Azure's
`InvalidDocument`, AWS's `ErrorList`), but the rule and its message are decided here, once.

>>> text_problem("Great app") is None
True
>>> text_problem("ok \\ud800").code
'invalid_unicode'
>>> text_problem("x" * 10, max_chars=5).code
'too_long'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

_SURROGATE_RE = re.compile("[\ud800-\udfff]")
REPLACEMENT_CHAR = "\ufffd"


@dataclass(frozen=True)
class TextProblem:
    """Why a text cannot be classified: `code` for the surfaces that map it to their own error
    names, `message` for people."""

    code: str  # missing, empty, invalid_unicode, nul, undecoded, too_long
    message: str


def lone_surrogate_at(value: str) -> int | None:
    """The position of the first lone surrogate (half of a UTF-16 pair) in `value`, or None."""
    match = _SURROGATE_RE.search(value)
    return match.start() if match else None


def text_problem(value: object, max_chars: int | None = None) -> TextProblem | None:
    """Why `value` cannot be classified, or None when it can.

    A missing value, an empty or blank text, a lone surrogate (a `\\ud800` escape: not a
    character; it cannot be written as UTF-8), a NUL character (no text database stores it),
    U+FFFD (the mark a decoder leaves for bytes it could not read: the text is already damaged)
    and, with `max_chars`, a text longer than that.
    """
    # pd.isna also catches pd.NA and NaT, which a "string"-typed or Parquet column holds.
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return TextProblem("missing", "missing text")
    text = value if isinstance(value, str) else str(value)
    if not text.strip():
        return TextProblem("empty", "empty text")
    at = lone_surrogate_at(text)
    if at is not None:
        return TextProblem(
            "invalid_unicode",
            f"text is not valid Unicode: a lone surrogate (half of a UTF-16 pair) at character "
            f"{at}; send the whole pair or the character itself",
        )
    if "\x00" in text:
        return TextProblem(
            "nul",
            f"text holds a NUL character (U+0000) at character {text.index(chr(0))}; remove it",
        )
    if REPLACEMENT_CHAR in text:
        return TextProblem(
            "undecoded",
            f"text has bytes that could not be decoded (U+FFFD at character "
            f"{text.index(REPLACEMENT_CHAR)}, e.g. a file read in the wrong encoding); "
            "re-export the source as UTF-8",
        )
    if max_chars is not None and len(text) > max_chars:
        return TextProblem("too_long", f"text has {len(text)} characters; the limit is {max_chars}")
    return None


def name_problem(value: str) -> str | None:
    """Why `value` cannot be a stored name, key or filter value (a dataset, an id, a dimension,
    a stats filter), or None: a NUL character or a lone surrogate, which no database stores."""
    if "\x00" in value:
        return "holds a NUL character (U+0000)"
    at = lone_surrogate_at(value)
    if at is not None:
        return f"is not valid Unicode (a lone surrogate at character {at})"
    return None


def check_name(value: str, what: str) -> str:
    """`value` when `name_problem` finds nothing, else ValueError naming `what`."""
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(f"{what} {value!r} {problem}; remove that character")
    return value


def check_names(values: Mapping[str, Any]) -> None:
    """`check_name` on every string in `values` (lists and dicts walked, keys included), each
    named by its path, e.g. `dims.touchpoint[0]`: a whole filter or record checked at once."""

    def walk(value: Any, where: str) -> None:
        if isinstance(value, str):
            check_name(value, where)
        elif isinstance(value, Mapping):
            for key, inner in value.items():
                path = f"{where}.{key}" if where else str(key)
                if isinstance(key, str):
                    check_name(key, f"the key of {path}")
                walk(inner, path)
        elif isinstance(value, list | tuple):
            for n, inner in enumerate(value):
                walk(inner, f"{where}[{n}]")

    walk(values, "")


def parse_json(body: str | bytes) -> Any:
    """`json.loads(body)`; a body nested too deep for the decoder (thousands of `[`) is a
    ValueError, as invalid JSON is, instead of a RecursionError."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("the JSON body nests too deeply to be read") from None
