"""The scale of each dataset's survey scores (`score_scales`): declared by the first ingest of a
kind into a dataset (`KIND:LOW-HIGH=COLUMN`, else the kind's usual scale,
`cxnlp.report.scores.parse_score_spec`), checked on every later one, and read back by the views,
which count CSAT's top two boxes on it and show it beside the score.

A dataset holds one scale per kind: a mean over answers on 1-5 and on 1-7 means nothing. A view
over several datasets whose scales differ shows no scale and no mean for that kind (the
top-two-box share, counted on each item's own scale, still holds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, select

from cxnlp.feedback.models import SCALES
from cxnlp.feedback.writers import upsert

Scale = tuple[float, float] | None
# A view's kind whose datasets declare different scales.
MIXED = "mixed"


def _scale(low: float | None, high: float | None) -> Scale:
    return None if low is None or high is None else (float(low), float(high))


def _show(scale: Scale) -> str:
    return "any" if scale is None else f"{scale[0]:g}-{scale[1]:g}"


def declare(connection: Connection, dataset: str, wanted: Mapping[str, Scale]) -> dict[str, Scale]:
    """Record the scale of each score kind an ingest brings (`wanted`) where `dataset` has none
    yet, and return every declared scale of the dataset by kind. ValueError when the dataset
    holds a kind on another scale (a CES without a scale may be given one later)."""
    declared = dataset_scales(connection, dataset)
    for kind, scale in wanted.items():
        if kind not in declared or (declared[kind] is None and scale is not None):
            connection.execute(
                upsert(connection, SCALES, ("dataset", "score_kind"), ("low", "high"), add=False),
                {
                    "dataset": dataset,
                    "score_kind": kind,
                    "low": scale[0] if scale else None,
                    "high": scale[1] if scale else None,
                },
            )
            declared[kind] = scale
        elif declared[kind] != scale:
            raise ValueError(
                f"dataset {dataset!r} holds {kind.upper()} answers on {_show(declared[kind])}; "
                f"these are declared on {_show(scale)}. One dataset keeps one scale per score "
                f"kind: declare {kind}:{_show(declared[kind])}=COLUMN, or store them in another "
                "dataset"
            )
    return declared


def dataset_scales(connection: Connection, dataset: str) -> dict[str, Scale]:
    """The declared scale of each score kind of `dataset`."""
    rows = connection.execute(
        select(SCALES.c.score_kind, SCALES.c.low, SCALES.c.high).where(SCALES.c.dataset == dataset)
    )
    return {kind: _scale(low, high) for kind, low, high in rows}


def view_scales(connection: Connection, datasets: Sequence[str]) -> dict[str, Scale | str]:
    """Each score kind's scale over `datasets` (every dataset when empty), or `MIXED` where they
    declare different ones."""
    query = select(SCALES.c.score_kind, SCALES.c.low, SCALES.c.high)
    if datasets:
        query = query.where(SCALES.c.dataset.in_(list(datasets)))
    found: dict[str, set[Scale]] = {}
    for kind, low, high in connection.execute(query):
        found.setdefault(kind, set()).add(_scale(low, high))
    return {kind: scales.pop() if len(scales) == 1 else MIXED for kind, scales in found.items()}
