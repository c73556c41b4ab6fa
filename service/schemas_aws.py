"""Request and response bodies of the AWS Comprehend operations cxnlp answers, in Comprehend's
own field names (botocore's `comprehend` service model, 2017-11-27)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SentimentType = Literal["POSITIVE", "NEGATIVE", "NEUTRAL", "MIXED"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class DetectSentimentRequest(_Request):
    Text: str = Field(..., description="UTF-8 text, at most 5000 bytes")
    LanguageCode: str = Field(..., description="fa, ar or en")


class BatchDetectSentimentRequest(_Request):
    TextList: list[str] = Field(..., description="at most 25 texts of at most 5000 bytes")
    LanguageCode: str = Field(..., description="fa, ar or en")


class DetectDominantLanguageRequest(_Request):
    Text: str


class BatchDetectDominantLanguageRequest(_Request):
    TextList: list[str]


class DetectTargetedSentimentRequest(_Request):
    Text: str
    LanguageCode: str


class SentimentScore(BaseModel):
    Positive: float
    Negative: float
    Neutral: float
    Mixed: float


class DetectSentimentResponse(BaseModel):
    Sentiment: SentimentType
    SentimentScore: SentimentScore


class BatchDetectSentimentItemResult(DetectSentimentResponse):
    Index: int


class BatchItemError(BaseModel):
    Index: int
    ErrorCode: str
    ErrorMessage: str


class BatchDetectSentimentResponse(BaseModel):
    ResultList: list[BatchDetectSentimentItemResult]
    ErrorList: list[BatchItemError]


class DominantLanguage(BaseModel):
    LanguageCode: str = Field(..., description="fa, ar, en, or und (undetermined)")
    Score: float


class DetectDominantLanguageResponse(BaseModel):
    Languages: list[DominantLanguage]


class BatchDetectDominantLanguageItemResult(DetectDominantLanguageResponse):
    Index: int


class BatchDetectDominantLanguageResponse(BaseModel):
    ResultList: list[BatchDetectDominantLanguageItemResult]
    ErrorList: list[BatchItemError]


class MentionSentiment(BaseModel):
    Sentiment: SentimentType
    SentimentScore: SentimentScore


class TargetedSentimentMention(BaseModel):
    Score: float
    GroupScore: float
    Text: str
    Type: str
    MentionSentiment: MentionSentiment
    BeginOffset: int
    EndOffset: int


class TargetedSentimentEntity(BaseModel):
    DescriptiveMentionIndex: list[int]
    Mentions: list[TargetedSentimentMention]


class DetectTargetedSentimentResponse(BaseModel):
    Entities: list[TargetedSentimentEntity]


class AwsErrorResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    type: str = Field(
        ..., alias="__type", description="the exception, e.g. InvalidRequestException"
    )
    Message: str


REQUESTS: dict[str, type[BaseModel]] = {
    "DetectSentiment": DetectSentimentRequest,
    "BatchDetectSentiment": BatchDetectSentimentRequest,
    "DetectDominantLanguage": DetectDominantLanguageRequest,
    "BatchDetectDominantLanguage": BatchDetectDominantLanguageRequest,
    "DetectTargetedSentiment": DetectTargetedSentimentRequest,
}
RESPONSES: dict[str, type[BaseModel]] = {
    "DetectSentiment": DetectSentimentResponse,
    "BatchDetectSentiment": BatchDetectSentimentResponse,
    "DetectDominantLanguage": DetectDominantLanguageResponse,
    "BatchDetectDominantLanguage": BatchDetectDominantLanguageResponse,
    "DetectTargetedSentiment": DetectTargetedSentimentResponse,
}
