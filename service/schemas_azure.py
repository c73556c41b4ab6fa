"""Request and response bodies of the Azure AI Language routes, in Azure's own field names
(`confidenceScores`, `modelVersion`, ...), for `POST /language/:analyze-text` (api-versions
2022-05-01, 2023-04-01) and the v3.0 / v3.1 Text Analytics routes older SDKs call."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cxnlp.labels import SENTIMENTS, Sentiment

SENTIMENT_KIND, LANGUAGE_KIND = "SentimentAnalysis", "LanguageDetection"
# A document's (and a target's) sentiment: cxnlp's labels, and Azure's "mixed".
DocumentSentiment = Literal[(*SENTIMENTS, "mixed")]


class _Open(BaseModel):
    # Azure clients send fields cxnlp does not use (loggingOptOut, ...): accepted, ignored.
    model_config = ConfigDict(extra="ignore")


class TextDocument(_Open):
    id: str = Field(..., description="unique within the request; echoed back")
    text: str
    language: str | None = Field(
        None, description="ISO 639-1 code (fa, ar, en); empty or 'auto' detects it"
    )


class LanguageDocument(_Open):
    id: str
    text: str
    countryHint: str | None = Field(None, description="accepted and ignored")


class AnalysisInput(_Open):
    documents: list[dict[str, Any]] = Field(
        ..., description="documents of the kind's shape (id, text, language or countryHint)"
    )


class AnalyzeTextRequest(_Open):
    kind: str = Field(..., description=f"{SENTIMENT_KIND} or {LANGUAGE_KIND}")
    analysisInput: AnalysisInput
    parameters: dict[str, Any] | None = Field(
        None,
        description="SentimentAnalysis: modelVersion, opinionMining, stringIndexType; "
        "LanguageDetection: modelVersion",
    )


class SentimentParameters(_Open):
    modelVersion: str | None = None
    opinionMining: bool = False
    stringIndexType: str = "TextElements_v8"


class LanguageParameters(_Open):
    modelVersion: str | None = None


class MultiLanguageBatchInput(_Open):
    """The v3.x body: `{"documents": [...]}`."""

    documents: list[TextDocument]


class LanguageBatchInput(_Open):
    documents: list[LanguageDocument]


class ConfidenceScores(BaseModel):
    positive: float
    neutral: float
    negative: float


class TargetConfidenceScores(BaseModel):
    positive: float
    negative: float


class TargetRelation(BaseModel):
    relationType: Literal["assessment", "target"]
    ref: str = Field(..., description="JSON pointer, e.g. #/documents/0/sentences/0/assessments/0")


class SentenceTarget(BaseModel):
    # Azure's targets are positive, mixed or negative; a topic cxnlp reads as neutral is neutral.
    sentiment: DocumentSentiment
    confidenceScores: TargetConfidenceScores
    offset: int
    length: int
    text: str
    relations: list[TargetRelation]


class SentenceAssessment(BaseModel):
    sentiment: Literal["positive", "mixed", "negative"]
    confidenceScores: TargetConfidenceScores
    offset: int
    length: int
    text: str
    isNegated: bool


class SentenceSentiment(BaseModel):
    text: str
    sentiment: Sentiment
    confidenceScores: ConfidenceScores
    offset: int
    length: int
    targets: list[SentenceTarget] | None = None
    assessments: list[SentenceAssessment] | None = None


class DocumentWarning(BaseModel):
    code: str
    message: str
    targetRef: str | None = None


class DocumentStatistics(BaseModel):
    charactersCount: int
    transactionsCount: int


class RequestStatistics(BaseModel):
    documentsCount: int
    validDocumentsCount: int
    erroneousDocumentsCount: int
    transactionsCount: int


class InnerError(BaseModel):
    code: str
    message: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    innererror: InnerError | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class DocumentError(BaseModel):
    id: str
    error: ErrorDetail


class DocumentResult(BaseModel):
    """What every document's result has: its id, warnings and (with showStats) statistics."""

    id: str
    warnings: list[DocumentWarning] = Field(default_factory=list)
    statistics: DocumentStatistics | None = None


class BatchResults(BaseModel):
    """What every request's answer has besides its documents."""

    errors: list[DocumentError]
    modelVersion: str
    statistics: RequestStatistics | None = None


class SentimentDocumentResult(DocumentResult):
    sentiment: DocumentSentiment
    confidenceScores: ConfidenceScores
    sentences: list[SentenceSentiment]


class SentimentResults(BatchResults):
    documents: list[SentimentDocumentResult]


class DetectedLanguage(BaseModel):
    name: str
    iso6391Name: str
    confidenceScore: float


class LanguageDocumentResult(DocumentResult):
    detectedLanguage: DetectedLanguage


class LanguageResults(BatchResults):
    documents: list[LanguageDocumentResult]


class SentimentTaskResult(BaseModel):
    kind: Literal["SentimentAnalysisResults"] = "SentimentAnalysisResults"
    results: SentimentResults


class LanguageTaskResult(BaseModel):
    kind: Literal["LanguageDetectionResults"] = "LanguageDetectionResults"
    results: LanguageResults
