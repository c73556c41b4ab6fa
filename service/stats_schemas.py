"""Response bodies of the stats API (`/v1/stats*`), the JSON behind the dashboard."""

from __future__ import annotations

from typing import Any, Literal, get_args, get_type_hints

from pydantic import BaseModel, Field, create_model

from cxnlp.feedback.models import ITEM_FIELDS, ITEMS, FeedbackItem
from cxnlp.labels import StorePeriod

Interval = list[float] | None


class FilterEcho(BaseModel):
    dataset: list[str]
    start: str | None
    end: str | None
    lang: list[str]
    channel: list[str]
    product: list[str]
    sentiment: list[str]
    topic: list[str]
    dims: dict[str, list[str]]
    q: str | None


class ScoreStats(BaseModel):
    kind: str = Field(..., description="nps, csat or ces")
    n: int = Field(..., description="items with a score")
    nps: float | None = Field(
        None, description="NPS in points, -100..100 (promoters 9-10, detractors 0-6)"
    )
    promoters: int | None = None
    passives: int | None = None
    detractors: int | None = None
    csat: float | None = Field(
        None, description="share of the top two boxes of its scale (4-5 on 1-5, 6-7 on 1-7)"
    )
    top_two_box: float | None = Field(None, description="the same share, by its usual name")
    satisfied: int | None = None
    mean: float | None = None
    mean_ci95: Interval = Field(None, description="95% interval of the mean (CSAT)")
    sd: float | None = None
    ci95: Interval = None
    scale: Interval = Field(
        None,
        description="the lowest and highest answer (declared per dataset: csat:1-7=COLUMN); "
        "none for a CES without a declared scale",
    )
    note: str | None = Field(
        None, description="why a number is missing (datasets on different scales have no mean)"
    )


class Segment(BaseModel):
    n: int = Field(..., description="classified items")
    errors: int = Field(..., description="items whose classification failed")
    counts: dict[str, int]
    shares: dict[str, float | None]
    ci95: dict[str, Interval] = Field(..., description="95% Wilson interval of each share")
    net_sentiment: float | None = Field(None, description="positive share minus negative share")
    ratio_pos_neg: float | None = Field(None, description="positive : negative count ratio")
    pcc: dict[str, float] | None = Field(None, description="mean calibrated probabilities")
    scores: dict[str, ScoreStats] = Field(default_factory=dict)


class StatsSummary(Segment):
    filter: FilterEcho
    source: str = Field(..., description="'daily aggregates' or 'items'")


class PeriodStats(Segment):
    period: str
    start: str
    end: str


class Trend(BaseModel):
    filter: FilterEcho
    period: StorePeriod
    source: str
    periods: list[PeriodStats]


class TopicStats(BaseModel):
    topic: str
    mentions: int
    share: float | None = Field(None, description="share of the classified items mentioning it")
    ci95: Interval = None
    polarity: dict[str, int]
    negative_share: float = Field(..., description="share of its mentions with negative polarity")
    negative_ci95: Interval = None


class Topics(BaseModel):
    filter: FilterEcho
    n: int
    source: str
    items: list[TopicStats]
    ranked_by_volume: list[str]
    ranked_by_negative_share: list[str]
    min_mentions_for_negative_rank: int


class TopicCell(BaseModel):
    topic: str
    value: str
    mentions: int
    share: float | None = Field(None, description="share of that value's classified items")
    negative_share: float
    polarity: dict[str, int]


class TopicBy(BaseModel):
    filter: FilterEcho
    column: str
    source: str
    values: list[str]
    totals: dict[str, int]
    cells: list[TopicCell]


class StoredTopic(BaseModel):
    topic: str
    polarity: str | None
    score: float | None
    evidence: dict[str, Any] | None = Field(
        None, description="{start, end, text}: the clause or cue the topic was read from"
    )


def _stored_item_model() -> type[BaseModel]:
    """The item schema from the store's one declaration of its columns (`ITEM_FIELDS`, each
    typed as `FeedbackItem` declares it; `created_at` as the ISO text the API sends)."""
    declared = get_type_hints(FeedbackItem)
    fields: dict[str, Any] = {}
    for name in ITEM_FIELDS:
        (kind,) = get_args(declared[name])  # Mapped[T] -> T
        if name == "created_at":
            kind = str
        required = not ITEMS.c[name].nullable
        fields["id" if name == "item_id" else name] = (kind, ...) if required else (kind, None)
    fields["topics"] = (list[StoredTopic], ...)
    return create_model("StoredItem", **fields)


StoredItem = _stored_item_model()


class ItemsPage(BaseModel):
    filter: FilterEcho
    total: int
    limit: int
    offset: int
    items: list[StoredItem]


class AlertTest(BaseModel):
    period: str
    period_start: str
    baseline_period: str
    kind: Literal["negative_share", "topic_share"]
    column: str | None = Field(None, description="None: all items; lang, channel, or 'topic'")
    value: str | None
    baseline_share: float
    current_share: float
    baseline_n: int
    current_n: int
    difference: float
    z: float
    p_value: float
    p_adjusted: float = Field(..., description="adjusted within its family (p_adjust)")
    cohens_h: float = Field(..., description="effect size (0.2 small, 0.5 medium, 0.8 large)")
    small_sample: bool
    flagged: bool


class LastComplete(BaseModel):
    """The period alerts test up to (`cxnlp.report.periods`, as the report does)."""

    period: str | None = Field(description="the last complete period, None when none is")
    start: str | None
    end: str | None
    data_end: str | None = Field(description="the last day with items under the filter")
    partial: str | None = Field(description="the period after it, partial, not tested")
    note: str = Field(description="the line the dashboard and the report print")


class Alerts(BaseModel):
    filter: FilterEcho
    period: str
    alpha: float
    p_adjust: str
    source: str
    flagged: list[AlertTest]
    tests: list[AlertTest] | None = Field(None, description="every test (with all=true)")
    last_complete: LastComplete


class Options(BaseModel):
    datasets: list[str]
    first_day: str | None
    last_day: str | None
    lang: list[str]
    channel: list[str]
    product: list[str]
    topic: list[str]
    dims: dict[str, list[str]]
