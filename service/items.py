"""The per-item contract of /v1/classify and /v1/analyze, the same as `cxnlp classify`'s per row:
every item comes back, in order, with its id and either a result or an `error` saying why it
could not be classified. One bad item never rejects the request; only a malformed body, too many
items or too big a body do (422 / 413).

Checked before the model by `cxnlp.io.validate.text_problem`, the rule `cxnlp classify`, Ray and
the Azure and AWS routes apply too: an empty or blank text, a lone surrogate (a `\\ud800` JSON
escape), a NUL character, U+FFFD, and a text over `CXNLP_MAX_TEXT_CHARS`, which is an error
unless the request opts in to `"truncate": true` (then its first characters are classified and
the item says `truncated`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cxnlp.io.validate import text_problem

PROBABILITY_DIGITS = 6  # the CLI's rounding (cxnlp.batch)


@dataclass(frozen=True)
class Prepared:
    """An item's text as it goes to the model (None when it does not), or why it does not."""

    text: str | None
    error: str | None = None
    truncated: bool = False


def prepare(text: str, max_chars: int, truncate: bool) -> Prepared:
    """Check one item's text against the per-item rules of the module docstring."""
    problem = text_problem(text, max_chars)
    if problem is None:
        return Prepared(text)
    if problem.code != "too_long":
        return Prepared(None, problem.message)
    if not truncate:
        return Prepared(
            None,
            f'{problem.message} (CXNLP_MAX_TEXT_CHARS); send "truncate": true to classify its '
            f"first {max_chars}",
        )
    return Prepared(text[:max_chars], truncated=True)


def item_id(given: Any, position: int) -> str | int:
    """The id an item is answered with: its own, else its position as a string."""
    return given if given is not None else str(position)


def result_fields(prediction: dict[str, Any] | None) -> dict[str, Any]:
    """The result fields of an item from `Prediction.to_dict()`, rounded like the CLI's columns;
    all empty for an item without a result."""
    if prediction is None:
        return {"sentiment": None, "probabilities": None, "confidence": None, "lang": None}
    return {
        "sentiment": prediction["sentiment"],
        "probabilities": {
            k: round(float(v), PROBABILITY_DIGITS) for k, v in prediction["probabilities"].items()
        },
        "confidence": round(float(prediction["confidence"]), PROBABILITY_DIGITS),
        "lang": prediction["lang"],
        "topics": prediction.get("topics") or [],
        "mixed": None if prediction.get("mixed") is None else bool(prediction["mixed"]),
        "urgency": prediction.get("urgency"),
    }
