"""Request and response bodies of the follow-up queue (`/v1/cases*`), the JSON behind the
dashboard's cases page. The fields mirror `cxnlp.feedback.cases` (a case's columns are its
`CASE_FIELDS`) and `cxnlp.feedback.recovery`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from cxnlp.feedback.models import DIMENSION_LEN

NOTE_LEN = 5000


class Case(BaseModel):
    id: int
    dataset: str
    item_id: str = Field(..., description="the feedback item that opened the case")
    customer_id: str | None = None
    reason: str = Field(..., description="the rule that opened it (urgent, detractor, ...)")
    topic: str | None = Field(None, description="the topic the case is routed by")
    team: str
    owner: str | None = None
    escalation_owner: str | None = None
    priority: str
    status: str
    overdue: bool = Field(..., description="open and past its response deadline")
    escalated: bool
    sentiment: str | None = None
    urgency: float | None = None
    score: float | None = None
    item_count: int = Field(..., description="feedback items in the case")
    opened_at: str
    due_at: str = Field(..., description="response deadline (opening + the priority's hours)")
    updated_at: str
    first_response_at: str | None = None
    resolved_at: str | None = None
    closed_at: str | None = None
    root_cause: str | None = Field(None, description="given at closing")
    resolved: bool | None = Field(None, description="given at closing: was the issue solved?")


class CaseEvent(BaseModel):
    at: str
    kind: str = Field(..., description="opened, linked, assigned, comment, status, escalated")
    actor: str | None = None
    from_status: str | None = None
    to_status: str | None = None
    note: str | None = None


class CaseFeedback(BaseModel):
    item_id: str
    text: str | None
    created_at: str
    sentiment: str | None
    score: float | None
    urgency_level: str | None


class HistoryItem(CaseFeedback):
    score_kind: str | None


class CustomerHistory(BaseModel):
    customer_id: str
    feedback: list[HistoryItem] = Field(..., description="newest first")
    cases: list[Case]


class CaseDetail(Case):
    events: list[CaseEvent] = Field(..., description="every change, oldest first")
    feedback: list[CaseFeedback] = Field(..., description="the case's items, oldest first")
    history: CustomerHistory | None = Field(
        None, description="the customer's feedback and cases (None when the case has no customer)"
    )


class CasesPage(BaseModel):
    total: int
    limit: int
    offset: int
    cases: list[Case] = Field(..., description="open first, overdue first, then by priority")


class CaseRulesView(BaseModel):
    statuses: list[str] = Field(..., description="in workflow order, custom ones included")
    closed_statuses: list[str]
    priorities: dict[str, float] = Field(..., description="priority -> response hours")
    teams: dict[str, str] = Field(..., description="topic -> team")


class AssignBody(BaseModel):
    owner: str | None = Field(..., max_length=DIMENSION_LEN, description="None: unassigned")
    actor: str | None = Field(None, max_length=DIMENSION_LEN, description="who made the change")


class CommentBody(BaseModel):
    note: str = Field(..., min_length=1, max_length=NOTE_LEN)
    actor: str | None = Field(None, max_length=DIMENSION_LEN)


class StatusBody(BaseModel):
    status: str = Field(..., max_length=32, description="one of the rules file's statuses")
    note: str | None = Field(None, max_length=NOTE_LEN)
    root_cause: str | None = Field(
        None, max_length=DIMENSION_LEN, description="required by a closed status"
    )
    resolved: bool | None = Field(None, description="required by a closed status")
    actor: str | None = Field(None, max_length=DIMENSION_LEN)


class Escalated(BaseModel):
    escalated: list[Case] = Field(..., description="cases escalated by this run")


class RecoveryGroup(BaseModel):
    customers: int
    wrote_again: int = Field(..., description="customers with feedback after the reference time")
    sentiment_change: float | None = Field(
        None, description="mean change of p_positive - p_negative (-2..2)"
    )
    score_change: float | None = None
    n_sentiment: int
    n_score: int


class RecoveryDifference(BaseModel):
    sentiment_change: float | None = Field(
        None, description="recovered minus not followed up (an observed gap, not a causal effect)"
    )


class TeamTimes(BaseModel):
    team: str
    cases: int
    median_hours_to_first_response: float | None
    median_hours_to_resolution: float | None


class RootCause(BaseModel):
    topic: str | None
    root_cause: str
    cases: int
    resolved_share: float


class Recovery(BaseModel):
    dataset: str
    recovered: RecoveryGroup = Field(..., description="customers whose case was resolved")
    not_followed_up: RecoveryGroup = Field(..., description="customers whose case got no response")
    difference: RecoveryDifference
    teams: list[TeamTimes]
    root_causes: list[RootCause] = Field(..., description="closed cases' causes per topic")
