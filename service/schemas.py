"""Request and response bodies of the HTTP API (they also make the OpenAPI page at /docs)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cxnlp.feedback.ingest import IngestStats
from cxnlp.labels import Lang, Period, ScoreKind

ItemId = str | int


class Item(BaseModel):
    """One text to classify. Fields other than these are ignored by /v1/classify."""

    model_config = ConfigDict(extra="ignore")

    id: ItemId | None = Field(
        None, description="echoed back; the item's position (a string) when absent"
    )
    text: str = Field(
        ...,
        description="the review, comment or ticket; an empty one, one with a lone surrogate or "
        "one over the character limit gets a per-item `error` (or, with `truncate`, is cut)",
    )
    lang: Lang | None = Field(None, description="skip language detection when known")


class AnalyzeItem(Item):
    """An item that may carry group fields (`channel`, `product`, `created_at`, `score`, ...)."""

    model_config = ConfigDict(extra="allow")


TRUNCATE = Field(
    False,
    description="classify the first CXNLP_MAX_TEXT_CHARS characters of a longer text (the item "
    "says `truncated: true`) instead of answering it with an error",
)

MODEL = Field(
    None,
    min_length=1,
    max_length=200,
    description="the served model to classify with: the name of an adapter (GET /v1/models "
    "lists them); absent, the default model",
)


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[AnalyzeItem] = Field(
        ...,
        min_length=1,
        description="items to classify; their other fields (channel, created_at, score, ...) "
        "are stored with them when the request names a dataset",
    )
    dataset: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="store the classified items in the feedback store under this dataset "
        "(each item needs an id; a re-sent id updates its item)",
    )
    store: bool = Field(False, description="store the items (under dataset 'api' if none is named)")
    score_kind: ScoreKind | None = Field(
        None, description="how to read the items' `score` field when storing them"
    )
    score_scale: tuple[int, int] | None = Field(
        None,
        description="the scale of `score` (lowest, highest answer) when it is not the kind's "
        "usual one (NPS 0-10, CSAT 1-5), e.g. [1, 7]; a dataset keeps the scale it was first "
        "given",
    )
    truncate: bool = TRUNCATE
    model: str | None = MODEL


class AnalyzeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[AnalyzeItem] = Field(..., min_length=1)
    truncate: bool = TRUNCATE
    model: str | None = MODEL
    group_by: list[str] = Field(
        default_factory=list, description="item fields to group the rollup by, e.g. ['channel']"
    )
    date_col: str | None = Field(None, description="item field holding a date, for trends")
    period: Period | None = Field(None, description="trend period (with date_col; default week)")
    score_col: str | None = Field(
        None,
        description="item field holding a survey score, with score_kind; or KIND=FIELD / "
        "KIND:LOW-HIGH=FIELD, e.g. csat:1-7=q2 (CSAT's top two boxes are counted on its scale)",
    )
    score_kind: ScoreKind | None = Field(None, description="how to read a bare score_col")
    dev_acc: bool = Field(
        False,
        description="also give ACC from the model's dev confusion matrix (off by default: it "
        "describes the training mix, not your channel; prefer gold_col)",
    )
    gold_col: str | None = Field(
        None,
        description="item field holding a hand-given sentiment (positive / neutral / negative) "
        "on some items: their confusion matrix corrects the shares (ACC, PACC), and the model's "
        "accuracy on them is reported; at least 30 such items",
    )


class ItemResult(BaseModel):
    """One item's answer: its id, and its result or the `error` that kept it from one. The same
    fields in /v1/classify and /v1/analyze, probabilities rounded to 6 digits."""

    id: ItemId
    sentiment: str | None
    probabilities: dict[str, float] | None
    confidence: float | None
    lang: str | None
    topics: list[dict[str, Any]] = Field(
        default_factory=list,
        description="topics with polarity, score and evidence {start, end, text} (char offsets)",
    )
    mixed: bool | None = Field(
        None, description="a confidently positive and a confidently negative clause"
    )
    urgency: dict[str, Any] | None = Field(
        None,
        description="how urgently the text needs a human: {score 0-1, level high/medium/low/none, "
        "evidence [{start, end, text, cue}]} (char offsets; cues: churn, complaint, safety, fraud, "
        "callback, and model: a learned urgency head alone made the text urgent, the evidence its "
        "most negative clause)",
    )
    error: str | None = Field(None, description="why the item has no result")
    truncated: bool = Field(False, description="only the first characters were classified")


AnalyzedItem = ItemResult


class ClassifyResponse(BaseModel):
    model: str
    items: list[ItemResult]
    stored: IngestStats | None = Field(None, description="what was stored, with a dataset")


class AnalyzeResponse(BaseModel):
    model: str
    items: list[ItemResult]
    summary: dict[str, Any]


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., min_length=1, description="model name under models/, or a path")


class ModelInfo(BaseModel):
    name: str = Field(..., description="the model directory's name (its path is not shown)")
    kind: str
    cxnlp_version: str | None
    service_cxnlp_version: str
    loaded_at: float
    metrics: dict[str, Any]
    base: str | None = Field(
        None, description="for an adapter: the served model whose encoder it runs on"
    )


class ModelsResponse(ModelInfo):
    """The served model, and the adapters served beside it."""

    adapters: list[ModelInfo] = Field(
        default_factory=list,
        description="models a request may name in its `model` field, each adapted from the "
        "served model and running on its encoder",
    )


class ReloadResponse(BaseModel):
    previous: str
    model: ModelsResponse


class JobInfo(BaseModel):
    id: str
    filename: str
    text_col: str
    id_col: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    adapter: str | None = Field(None, description="the adapter the upload named (`model`)")
    model: str | None = Field(..., description="the model that ran the job, once it runs")
    model_version: str | None = Field(
        None, description="the model's version (a hash of its config), stored with the items"
    )
    rows_done: int = Field(..., description="rows classified so far")
    rows: int | None = Field(
        None, description="rows in the file: counted at upload, exact once finished"
    )
    errors: int | None = Field(None, description="rows that could not be classified")
    error: str | None = Field(None, description="why the job failed")
    dataset: str | None = Field(None, description="where the result is stored, if anywhere")
    stored: dict[str, Any] | None = Field(None, description="what was stored, once done")
    created_at: float
    started_at: float | None
    finished_at: float | None


class ErrorResponse(BaseModel):
    error: str
    detail: list[dict[str, Any]] | None = None
