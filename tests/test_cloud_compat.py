"""The Azure AI Language and AWS Comprehend routes, called by the real clients
(`azure-ai-textanalytics`, `boto3`) over HTTP on a live uvicorn server on loopback that serves a
tiny fast model; their answers are checked against /v1/classify on the same server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import httpx
import pytest
import uvicorn
from azure.ai.textanalytics import TextAnalyticsClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from botocore.config import Config
from botocore.exceptions import ClientError
from fastapi.testclient import TestClient

from cxnlp import Prediction
from service import Settings, create_app
from service.cloud import opinions, resolve_language, split_sentences, to_index_units
from service.loading import wrap_model
from service.sigv4 import SigV4Error, verify

KEY = "cloud-test-key-0123456789"
ACCESS_KEY, SECRET = "AKIDCXNLPTEST0001", "s3cr3t/Key+With/Slashes0123456789abcdefg"
MAX_CHARS = 400
TEXTS = {
    "fa": "غذا خیلی خوشمزه بود و به موقع رسید",
    "ar": "الخدمة سيئة جدا والموظف غير محترم",
    "en": "Terrible service, the courier was two hours late",
}
TWO_SENTENCES = "The food was delicious, thank you. The app keeps crashing, awful!"


@dataclass
class Live:
    url: str
    app: Any

    def classify(self, text: str, lang: str | None = None) -> dict[str, Any]:
        item = {"text": text, **({"lang": lang} if lang else {})}
        r = httpx.post(
            f"{self.url}/v1/classify",
            json={"items": [item]},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert r.status_code == 200, r.text
        return r.json()["items"][0]


def _serve(app) -> Iterator[Live]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield Live(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _settings(model_dir: Path, tmp: Path, **overrides) -> Settings:
    values = {
        "model": str(model_dir),
        "api_keys": [KEY],
        "azure_api": True,
        "aws_api": True,
        "aws_keys": [f"{ACCESS_KEY}:{SECRET}", "AKIDOTHER:other-secret"],
        "jobs_dir": tmp / "jobs",
        "max_wait_ms": 2,
        "max_text_chars": MAX_CHARS,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture(scope="module")
def live(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    app = create_app(_settings(tiny_model_dir, tmp_path_factory.mktemp("cloud")))
    yield from _serve(app)


def _azure(live: Live, key: str = KEY, **kwargs) -> TextAnalyticsClient:
    return TextAnalyticsClient(live.url, AzureKeyCredential(key), **kwargs)


def _aws(live: Live, key_id: str = ACCESS_KEY, secret: str = SECRET, **config):
    return boto3.client(
        "comprehend",
        region_name="eu-central-1",
        endpoint_url=live.url,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, **config),
    )


def _same_scores(scores: dict[str, float], expected: dict[str, float]) -> None:
    # /v1/classify rounds probabilities to 6 digits; the cloud routes give them unrounded.
    assert scores == pytest.approx(expected, abs=6e-7)


# --- Azure AI Language -------------------------------------------------------------------------


@pytest.mark.parametrize("api_version", ["2023-04-01", "2022-05-01", "v3.1", "v3.0"])
@pytest.mark.parametrize("lang", ["fa", "ar", "en"])
def test_azure_sentiment_equals_v1_classify(live, api_version, lang):
    expected = live.classify(TEXTS[lang], lang)
    client = _azure(live, api_version=api_version)
    (result,) = client.analyze_sentiment([{"id": "r1", "text": TEXTS[lang], "language": lang}])
    assert not result.is_error, result
    assert result.id == "r1"
    assert result.sentiment == expected["sentiment"]
    scores = result.confidence_scores
    _same_scores(
        {"positive": scores.positive, "neutral": scores.neutral, "negative": scores.negative},
        expected["probabilities"],
    )
    (sentence,) = result.sentences
    assert sentence.text == TEXTS[lang] and sentence.sentiment == expected["sentiment"]
    if api_version != "v3.0":  # the SDK drops v3.0 offsets
        assert (sentence.offset, sentence.length) == (0, len(TEXTS[lang]))


@pytest.mark.parametrize("lang", ["fa", "ar"])
def test_azure_sdk_default_language_en_does_not_mislabel_arabic_script(live, lang):
    """The SDK declares every document "en" unless told otherwise: an Arabic-script text is
    then analysed as /v1/classify would without a language, and a warning says so."""
    expected = live.classify(TEXTS[lang])
    (result,) = _azure(live).analyze_sentiment([TEXTS[lang]])
    assert result.sentiment == expected["sentiment"]
    assert result.confidence_scores.positive == pytest.approx(
        expected["probabilities"]["positive"], abs=6e-7
    )
    assert [w.code for w in result.warnings] == ["LanguageOverruled"]
    (declared,) = _azure(live).analyze_sentiment([TEXTS[lang]], language=lang)
    assert declared.warnings == []


def test_azure_sentences_carry_their_own_sentiment_and_offsets(live):
    text = "😀 " + TWO_SENTENCES
    doc_lang = live.classify(text)["lang"]
    client = _azure(live)
    for index_type in ("UnicodeCodePoint", "Utf16CodeUnit", "TextElements_v8"):
        (result,) = client.analyze_sentiment([text], string_index_type=index_type)
        assert len(result.sentences) == 2
        spans = split_sentences(text)
        for sentence, (start, end) in zip(result.sentences, spans, strict=True):
            assert sentence.text == text[start:end]
            assert (sentence.offset, sentence.length) == to_index_units(
                text, start, end, index_type
            )
            expected = live.classify(text[start:end], doc_lang)
            assert sentence.sentiment == expected["sentiment"]
            assert sentence.confidence_scores.negative == pytest.approx(
                expected["probabilities"]["negative"], abs=6e-7
            )
    # The emoji is one code point, two UTF-16 units and one text element.
    (utf16,) = client.analyze_sentiment([text], string_index_type="Utf16CodeUnit")
    (points,) = client.analyze_sentiment([text], string_index_type="UnicodeCodePoint")
    assert utf16.sentences[1].offset == points.sentences[1].offset + 1 == 38
    assert utf16.sentences[0].length == points.sentences[0].length + 1


def test_azure_opinion_mining_is_empty_without_aspect_evidence(live):
    (result,) = _azure(live).analyze_sentiment([TWO_SENTENCES], show_opinion_mining=True)
    assert [s.mined_opinions for s in result.sentences] == [[], []]
    # Without opinionMining the sentences carry no targets at all, as Azure's.
    r = httpx.post(
        f"{live.url}/language/:analyze-text?api-version=2023-04-01",
        json={
            "kind": "SentimentAnalysis",
            "analysisInput": {"documents": [{"id": "1", "text": TWO_SENTENCES}]},
        },
        headers={"Ocp-Apim-Subscription-Key": KEY},
    )
    sentences = r.json()["results"]["documents"][0]["sentences"]
    assert len(sentences) == 2 and not any("targets" in s for s in sentences)


def test_azure_batch_errors_come_back_per_document(live):
    docs = [
        {"id": "ok", "text": TEXTS["en"], "language": "en"},
        {"id": "empty", "text": "", "language": "en"},
        {"id": "blank", "text": "   ", "language": "en"},
        {"id": "long", "text": "a" * (MAX_CHARS + 1), "language": "en"},
        {"id": "german", "text": "Das Essen war kalt", "language": "de"},
        {"id": "fa", "text": TEXTS["fa"], "language": "fa-IR"},
    ]
    batch = []
    results = _azure(live).analyze_sentiment(
        docs, show_stats=True, raw_response_hook=lambda response: batch.append(response.statistics)
    )
    assert [r.id for r in results] == [d["id"] for d in docs]
    assert [r.is_error for r in results] == [False, True, True, True, True, False]
    codes = {r.id: r.error.code for r in results if r.is_error}
    assert codes == {
        "empty": "InvalidDocument",
        "blank": "InvalidDocument",
        "long": "InvalidDocument",
        "german": "UnsupportedLanguageCode",
    }
    assert (
        "empty" in results[1].error.message and "CXNLP_MAX_TEXT_CHARS" in results[3].error.message
    )
    assert results[0].statistics.character_count == len(TEXTS["en"])
    (stats,) = batch
    assert (stats.document_count, stats.valid_document_count) == (6, 2)
    assert stats.erroneous_document_count == 4


def test_azure_more_than_ten_documents_is_a_request_error(live):
    with pytest.raises(HttpResponseError) as caught:
        _azure(live).analyze_sentiment([TEXTS["en"]] * 11)
    assert caught.value.status_code == 400
    assert caught.value.error.code == "InvalidDocumentBatch"
    assert "Max 10 records" in caught.value.message


def test_azure_wrong_key_raises_client_authentication_error(live):
    with pytest.raises(ClientAuthenticationError) as caught:
        _azure(live, key="not-a-key").analyze_sentiment([TEXTS["en"]])
    assert caught.value.status_code == 401
    with pytest.raises(ClientAuthenticationError):
        _azure(live, key="not-a-key").detect_language([TEXTS["en"]])
    r = httpx.post(
        f"{live.url}/language/:analyze-text?api-version=2023-04-01",
        json={"kind": "LanguageDetection", "analysisInput": {"documents": []}},
    )
    assert r.status_code == 401 and "missing subscription key" in r.json()["error"]["message"]


@pytest.mark.parametrize("api_version", ["2023-04-01", "v3.1"])
def test_azure_detect_language(live, api_version):
    docs = [TEXTS["fa"], TEXTS["ar"], TEXTS["en"], "😂😂 100", ""]
    results = _azure(live, api_version=api_version).detect_language(docs)
    found = [r.primary_language.iso6391_name for r in results[:4]]
    assert found == ["fa", "ar", "en", "(Unknown)"]
    assert [r.primary_language.name for r in results[:3]] == ["Persian", "Arabic", "English"]
    assert results[3].primary_language.confidence_score == 0.0
    assert results[4].is_error and results[4].error.code == "InvalidDocument"


def test_azure_request_errors_keep_azures_shape(live):
    headers = {"Ocp-Apim-Subscription-Key": KEY}
    url = f"{live.url}/language/:analyze-text"
    body = {"kind": "SentimentAnalysis", "analysisInput": {"documents": [{"id": "1", "text": "x"}]}}
    cases = [
        ("?api-version=2023-04-01", {**body, "kind": "EntityRecognition"}, "InvalidParameterValue"),
        ("?api-version=2019-01-01", body, "InvalidParameterValue"),
        ("?api-version=2023-04-01", {"kind": "SentimentAnalysis"}, "InvalidRequestBodyFormat"),
        (
            "?api-version=2023-04-01",
            {**body, "parameters": {"modelVersion": "2022-11-01"}},
            "ModelVersionIncorrect",
        ),
        (
            "?api-version=2023-04-01",
            {**body, "parameters": {"stringIndexType": "Bytes"}},
            "InvalidParameterValue",
        ),
        (
            "?api-version=2023-04-01",
            {"kind": "SentimentAnalysis", "analysisInput": {"documents": [{"id": "1"}] * 2}},
            "InvalidRequestBodyFormat",
        ),
    ]
    for query, payload, inner in cases:
        r = httpx.post(url + query, json=payload, headers=headers)
        assert r.status_code == 400, (payload, r.text)
        assert r.json()["error"]["innererror"]["code"] == inner, r.text
    for raw in (b"{not json", b"\x88\xed"):  # not JSON; not even UTF-8
        r = httpx.post(url + "?api-version=2023-04-01", content=raw, headers=headers | _JSON)
        assert r.status_code == 400
        assert r.json()["error"]["innererror"]["code"] == "InvalidRequestBodyFormat"
    dup = {
        "kind": "SentimentAnalysis",
        "analysisInput": {"documents": [{"id": "1", "text": "x"}] * 2},
    }
    r = httpx.post(url + "?api-version=2023-04-01", json=dup, headers=headers)
    assert r.json()["error"]["innererror"]["code"] == "InvalidDocument"
    assert "duplicated Ids" in r.json()["error"]["innererror"]["message"]


_JSON = {"Content-Type": "application/json"}


def test_azure_model_version_is_the_served_models_name(live):
    r = httpx.post(
        f"{live.url}/language/:analyze-text?api-version=2023-04-01",
        json={
            "kind": "SentimentAnalysis",
            "analysisInput": {"documents": [{"id": "1", "text": TEXTS["en"]}]},
            "parameters": {"modelVersion": "tiny"},
        },
        headers={"Ocp-Apim-Subscription-Key": KEY},
    )
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "SentimentAnalysisResults"
    assert r.json()["results"]["modelVersion"] == "tiny"


# --- AWS Comprehend ----------------------------------------------------------------------------


def _aws_scores(score: dict[str, float]) -> dict[str, float]:
    return {
        "positive": score["Positive"],
        "neutral": score["Neutral"],
        "negative": score["Negative"],
    }


@pytest.mark.parametrize("lang", ["fa", "ar", "en"])
def test_aws_detect_sentiment_equals_v1_classify(live, lang):
    expected = live.classify(TEXTS[lang], lang)
    response = _aws(live).detect_sentiment(Text=TEXTS[lang], LanguageCode=lang)
    assert response["Sentiment"] == expected["sentiment"].upper()
    _same_scores(_aws_scores(response["SentimentScore"]), expected["probabilities"])
    assert response["SentimentScore"]["Mixed"] == 0.0
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_aws_batch_detect_sentiment_results_and_errors_by_index(live):
    texts = [TEXTS["ar"], "   ", "ب" * (MAX_CHARS + 1), TEXTS["ar"] + " جدا", "x" * 2600]
    response = _aws(live).batch_detect_sentiment(TextList=texts, LanguageCode="ar")
    assert [r["Index"] for r in response["ResultList"]] == [0, 3]
    for result in response["ResultList"]:
        expected = live.classify(texts[result["Index"]], "ar")
        assert result["Sentiment"] == expected["sentiment"].upper()
        _same_scores(_aws_scores(result["SentimentScore"]), expected["probabilities"])
    errors = {e["Index"]: e["ErrorCode"] for e in response["ErrorList"]}
    assert errors == {
        1: "INVALID_DOCUMENT",
        2: "TEXT_SIZE_LIMIT_EXCEEDED",
        4: "TEXT_SIZE_LIMIT_EXCEEDED",
    }
    # An empty text, which boto3 refuses before sending, comes back in the ErrorList too.
    unchecked = _aws(live, parameter_validation=False)
    response = unchecked.batch_detect_sentiment(TextList=["", TEXTS["en"]], LanguageCode="en")
    assert [e["Index"] for e in response["ErrorList"]] == [0]
    assert [r["Index"] for r in response["ResultList"]] == [1]


def test_aws_batch_limit_and_request_errors_are_client_errors(live):
    client = _aws(live)
    cases = [
        (
            client.batch_detect_sentiment,
            {"TextList": ["ok"] * 26, "LanguageCode": "en"},
            "BatchSizeLimitExceededException",
        ),
        (
            client.detect_sentiment,
            {"Text": "Das Essen war kalt", "LanguageCode": "de"},
            "UnsupportedLanguageException",
        ),
        (
            client.detect_sentiment,
            {"Text": "é" * 2600, "LanguageCode": "en"},
            "TextSizeLimitExceededException",
        ),
        (client.detect_sentiment, {"Text": "  ", "LanguageCode": "en"}, "InvalidRequestException"),
        (
            client.batch_detect_dominant_language,
            {"TextList": ["hello"] * 26},
            "BatchSizeLimitExceededException",
        ),
    ]
    for call, params, code in cases:
        with pytest.raises(ClientError) as caught:
            call(**params)
        assert caught.value.response["Error"]["Code"] == code, params
        assert caught.value.response["Error"]["Message"]
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_aws_detect_dominant_language(live):
    client = _aws(live)
    for lang, text in TEXTS.items():
        assert client.detect_dominant_language(Text=text)["Languages"] == [
            {"LanguageCode": lang, "Score": 1.0}
        ]
    response = client.batch_detect_dominant_language(TextList=[TEXTS["fa"], "😂😂 100", " "])
    assert [r["Languages"][0]["LanguageCode"] for r in response["ResultList"]] == ["fa", "und"]
    assert [e["Index"] for e in response["ErrorList"]] == [2]


def test_aws_targeted_sentiment_is_empty_without_aspect_evidence(live):
    response = _aws(live).detect_targeted_sentiment(Text=TEXTS["en"], LanguageCode="en")
    assert response["Entities"] == []


@pytest.mark.parametrize(
    ("key_id", "secret", "code"),
    [
        (ACCESS_KEY, "wrong-secret", "InvalidSignatureException"),
        ("AKIDUNKNOWN", SECRET, "UnrecognizedClientException"),
        ("AKIDOTHER", "other-secret", None),  # the second configured pair works
    ],
)
def test_aws_signature_is_verified(live, key_id, secret, code):
    client = _aws(live, key_id=key_id, secret=secret)
    if code is None:
        assert client.detect_sentiment(Text=TEXTS["en"], LanguageCode="en")["Sentiment"]
        return
    with pytest.raises(ClientError) as caught:
        client.detect_sentiment(Text=TEXTS["en"], LanguageCode="en")
    assert caught.value.response["Error"]["Code"] == code


def test_aws_unsigned_or_unknown_operations_are_refused(live):
    target = {"X-Amz-Target": "Comprehend_20171127.DetectSentiment"}
    r = httpx.post(live.url + "/", json={"Text": "hi", "LanguageCode": "en"}, headers=target)
    assert r.status_code == 403
    assert r.json()["__type"] == "MissingAuthenticationTokenException"
    with pytest.raises(ClientError) as caught:
        _aws(live).detect_entities(Text=TEXTS["en"], LanguageCode="en")
    assert caught.value.response["Error"]["Code"] == "UnknownOperationException"


# --- settings, docs, metrics -------------------------------------------------------------------


def test_both_are_off_by_default(tiny_model_dir, tmp_path):
    app = create_app(Settings(model=str(tiny_model_dir), auth=False, jobs_dir=tmp_path))
    paths = app.openapi()["paths"]
    assert "/language/:analyze-text" not in paths and "/" not in paths
    with TestClient(app) as client:
        r = client.post("/language/:analyze-text?api-version=2023-04-01", json={})
        assert r.status_code == 404
        assert client.post("/", json={}).status_code in (404, 405)


def test_openapi_lists_the_cloud_routes(live):
    paths = httpx.get(live.url + "/openapi.json").json()["paths"]
    for path in (
        "/language/:analyze-text",
        "/text/analytics/{version}/sentiment",
        "/text/analytics/{version}/languages",
        "/",
    ):
        assert "post" in paths[path], path
    assert "DetectSentiment" in paths["/"]["post"]["summary"]


def test_text_analytics_answers_v3_only_in_azures_404(tiny_model_dir, tmp_path):
    app = create_app(_settings(tiny_model_dir, tmp_path, auth=False))
    body = {"documents": [{"id": "1", "text": TEXTS["en"]}]}
    with TestClient(app) as client:
        for kind in ("sentiment", "languages"):
            r = client.post(f"/text/analytics/v2.1/{kind}", json=body)
            assert r.status_code == 404, r.text
            assert r.json() == {"error": {"code": "404", "message": "Resource not found"}}
            r = client.post(f"/text/analytics/v3.0/{kind}?showStats=true", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["statistics"]["documentsCount"] == 1


def test_aws_keys_are_required_and_well_formed(tiny_model_dir, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="CXNLP_AWS_KEYS"):
        create_app(_settings(tiny_model_dir, tmp_path, aws_keys=[]))
    with pytest.raises(ValueError, match="entry 2"):
        create_app(_settings(tiny_model_dir, tmp_path, aws_keys=["A:B", "no-secret"]))
    monkeypatch.setenv("CXNLP_AWS_KEYS", f"{ACCESS_KEY}:{SECRET}, AKID2:two")
    monkeypatch.setenv("CXNLP_AWS_API", "on")
    assert Settings().aws_keys == [f"{ACCESS_KEY}:{SECRET}", "AKID2:two"]
    assert Settings().aws_api is True and Settings().azure_api is False


def _counter_total(counter) -> float:
    return sum(
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def test_cloud_calls_go_through_the_batcher_and_the_metrics(live):
    state = live.app.state.cxnlp
    texts_before = _counter_total(state.metrics.texts)
    calls_before = state.batcher.model_calls
    _azure(live).analyze_sentiment([TWO_SENTENCES, TEXTS["en"]])  # 2 documents + 2 sentences
    _aws(live).batch_detect_sentiment(TextList=[TEXTS["en"]] * 3, LanguageCode="en")
    assert _counter_total(state.metrics.texts) - texts_before == 7
    assert state.batcher.model_calls - calls_before <= 3
    metrics = httpx.get(live.url + "/metrics").text
    assert 'route="/language/:analyze-text",status="200"' in metrics
    assert 'route="/",status="200"' in metrics


def test_cloud_routes_answer_busy_in_each_clouds_retryable_shape(tiny_model_dir, tmp_path):
    settings = _settings(tiny_model_dir, tmp_path, queue_size=1, max_batch=1, auth=False)
    gate, entered = threading.Event(), threading.Event()

    class Blocking:
        kind = "fast"

        def __init__(self, model):
            self.model = model

        def predict(self, texts, langs=None):
            entered.set()
            gate.wait(20)
            return self.model.predict(texts, langs)

    from cxnlp import load

    app = create_app(settings, model=wrap_model(Blocking(load(tiny_model_dir)), name="tiny"))
    body = {
        "kind": "SentimentAnalysis",
        "analysisInput": {"documents": [{"id": "1", "text": TEXTS["en"]}]},
    }
    url = "/language/:analyze-text?api-version=2023-04-01"
    aws_body = {"Text": TEXTS["en"], "LanguageCode": "en"}
    aws_headers = {"X-Amz-Target": "Comprehend_20171127.DetectSentiment"}
    with TestClient(app) as client:
        first = threading.Thread(target=lambda: client.post(url, json=body))
        first.start()
        assert entered.wait(20)  # the model is busy with the first request
        second = threading.Thread(target=lambda: client.post(url, json=body))
        second.start()
        _wait(lambda: app.state.cxnlp.batcher.depth == 1)  # the second one waits: queue full
        r = client.post(url, json=body)
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        assert r.json()["error"]["code"] == "TooManyRequests"
        r = client.post("/", json=aws_body, headers=aws_headers)
        assert r.status_code == 400 and r.headers["Retry-After"] == "1"
        assert r.json()["__type"] == "ThrottlingException"
        gate.set()
        first.join(10)
        second.join(10)


def test_an_unexpected_error_is_each_clouds_500_and_is_logged(
    tiny_model_dir, tmp_path, monkeypatch, caplog
):
    """The shared route class (`service.cloud.CloudRoute`): a failure outside the model call is
    logged with the request and answered in the surface's own 500 shape, never FastAPI's."""
    import service.routers.aws
    import service.routers.azure

    def broken(text: str) -> str:
        raise RuntimeError("language identifier exploded")

    monkeypatch.setattr(service.routers.azure, "detect_language", broken)
    monkeypatch.setattr(service.routers.aws, "detect_language", broken)
    app = create_app(_settings(tiny_model_dir, tmp_path, auth=False))
    body = {
        "kind": "LanguageDetection",
        "analysisInput": {"documents": [{"id": "1", "text": TEXTS["en"]}]},
    }
    target = "Comprehend_20171127.DetectDominantLanguage"
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level("ERROR"):
        r = client.post("/language/:analyze-text?api-version=2023-04-01", json=body)
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "InternalServerError"
        assert "exploded" not in r.text  # the traceback goes to the log only
        r = client.post("/", json={"Text": TEXTS["en"]}, headers={"X-Amz-Target": target})
        assert r.status_code == 500 and r.headers["x-amzn-ErrorType"] == "InternalServerException"
        assert r.json()["__type"] == "InternalServerException" and "exploded" not in r.text
    logged = [rec.getMessage() for rec in caplog.records if rec.exc_info]
    assert any("/language/:analyze-text" in m for m in logged), logged
    assert any(target in m for m in logged), logged


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.005)


# --- aspect evidence, where a model gives it ---------------------------------------------------


class AspectModel:
    """The tiny model, plus aspect evidence in the form `cxnlp.models.pipeline` gives it: a text with
    "food" and "crashing" has the topics product_quality (positive, its evidence the clause
    "The food was delicious") and app_website (negative, "The app keeps crashing"), and is mixed."""

    kind = "fast"

    def __init__(self, model):
        self.model = model

    def predict(self, texts, langs=None):
        out = []
        for text, p in zip(texts, self.model.predict(texts, langs), strict=True):
            p = AspectPrediction(**p.to_dict())
            if "food" in text and "crashing" in text:
                p.mixed = True
                p.topics = [
                    _topic(text, "app_website", "negative", 0.8, "The app keeps crashing"),
                    _topic(text, "product_quality", "positive", 0.9, "The food was delicious"),
                    {"topic": "price", "polarity": "negative", "score": 0.7},  # no evidence
                ]
            out.append(p)
        return out


def _topic(text: str, name: str, polarity: str, score: float, clause: str) -> dict[str, Any]:
    start = text.index(clause)
    evidence = {"start": start, "end": start + len(clause), "text": clause}
    return {"topic": name, "polarity": polarity, "score": score, "evidence": evidence}


@dataclass
class AspectPrediction(Prediction):
    mixed: bool = False


@pytest.fixture(scope="module")
def live_aspects(tiny_model_dir, tmp_path_factory) -> Iterator[Live]:
    from cxnlp import load

    settings = _settings(tiny_model_dir, tmp_path_factory.mktemp("aspects"))
    app = create_app(settings, model=wrap_model(AspectModel(load(tiny_model_dir)), name="tiny"))
    yield from _serve(app)


def test_aspect_evidence_becomes_azure_targets_and_aws_entities(live_aspects):
    text = "Hello. " + TWO_SENTENCES
    results = _azure(live_aspects).analyze_sentiment(
        [TEXTS["en"], text], show_opinion_mining=True, string_index_type="UnicodeCodePoint"
    )
    assert results[0].sentiment != "mixed" and results[1].sentiment == "mixed"
    mined = [s.mined_opinions for s in results[1].sentences]
    assert [len(m) for m in mined] == [0, 1, 1]
    food, app = mined[1][0].target, mined[2][0].target
    assert (food.text, food.sentiment) == ("The food was delicious", "positive")
    assert (app.text, app.sentiment) == ("The app keeps crashing", "negative")
    assert text[food.offset : food.offset + food.length] == food.text
    # The target's scores are its clause's, classified on its own in the document's language.
    clause = live_aspects.classify("The food was delicious", "en")
    assert food.confidence_scores.positive == pytest.approx(clause["probabilities"]["positive"])
    assert mined[1][0].assessments == []

    aws = _aws(live_aspects)
    assert aws.detect_sentiment(Text=text, LanguageCode="en")["Sentiment"] == "MIXED"
    entities = aws.detect_targeted_sentiment(Text=text, LanguageCode="en")["Entities"]
    mentions = [e["Mentions"][0] for e in entities]
    assert [m["Text"] for m in mentions] == ["The food was delicious", "The app keeps crashing"]
    assert [m["MentionSentiment"]["Sentiment"] for m in mentions] == ["POSITIVE", "NEGATIVE"]
    assert [m["Score"] for m in mentions] == [0.9, 0.8]
    for m in mentions:
        assert text[m["BeginOffset"] : m["EndOffset"]] == m["Text"]


# --- SigV4 against botocore's own signer -------------------------------------------------------


def _signed(method="POST", url="http://127.0.0.1:8000/", body=b'{"Text": "hi"}', **headers):
    request = botocore.awsrequest.AWSRequest(method=method, url=url, data=body, headers=headers)
    credentials = botocore.credentials.Credentials(ACCESS_KEY, SECRET)
    botocore.auth.SigV4Auth(credentials, "comprehend", "us-west-2").add_auth(request)
    prepared = request.prepare()
    split = httpx.URL(prepared.url)
    items = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in prepared.headers.items()]
    items.append(("host", split.netloc.decode()))
    return split.raw_path.decode().partition("?")[0], split.query.decode(), items, prepared.body


def _stamp(headers) -> datetime:
    value = dict((k.lower(), v) for k, v in headers)["x-amz-date"]
    return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/",
        "http://127.0.0.1:8000/a/./b/../c?z=1&a=x%20y&a=b",
        "http://example.com:9/%E2%82%AC/path?list-type=2",
    ],
)
def test_sigv4_accepts_what_botocore_signs(url):
    path, query, headers, body = _signed(url=url, **{"X-Amz-Target": "T.Op"})
    verified = verify(
        "POST",
        path,
        query,
        headers,
        body,
        {ACCESS_KEY: SECRET},
        service="comprehend",
        now=_stamp(headers),
    )
    assert (verified.access_key, verified.region) == (ACCESS_KEY, "us-west-2")


def test_sigv4_refuses_altered_late_or_foreign_requests():
    path, query, headers, body = _signed(**{"X-Amz-Target": "T.Op"})
    now = _stamp(headers)
    keys = {ACCESS_KEY: SECRET}

    def code(**changes) -> str:
        args = {
            "path": path,
            "query": query,
            "headers": headers,
            "body": body,
            "keys": keys,
            "now": now,
            "service": "comprehend",
            **changes,
        }
        with pytest.raises(SigV4Error) as caught:
            verify(
                "POST",
                args["path"],
                args["query"],
                args["headers"],
                args["body"],
                args["keys"],
                service=args["service"],
                now=args["now"],
            )
        return caught.value.code

    assert code(body=b'{"Text": "ho"}') == "InvalidSignatureException"
    assert code(path="/other") == "InvalidSignatureException"
    swapped = [(k, "T.Other" if k.lower() == "x-amz-target" else v) for k, v in headers]
    assert code(headers=swapped) == "InvalidSignatureException"
    assert code(keys={ACCESS_KEY: "other"}) == "InvalidSignatureException"
    assert code(keys={"AKIDELSE": SECRET}) == "UnrecognizedClientException"
    assert code(now=now + timedelta(minutes=16)) == "InvalidSignatureException"
    assert code(now=now - timedelta(minutes=16)) == "InvalidSignatureException"
    assert code(service="s3") == "InvalidSignatureException"
    no_auth = [(k, v) for k, v in headers if k.lower() != "authorization"]
    assert code(headers=no_auth) == "MissingAuthenticationTokenException"
    garbled = [
        (k, "AWS4-HMAC-SHA256 Credential=x") if k.lower() == "authorization" else (k, v)
        for k, v in headers
    ]
    assert code(headers=garbled) == "IncompleteSignatureException"
    session = [*headers, ("X-Amz-Security-Token", "token")]
    assert code(headers=session) == "UnrecognizedClientException"
    # Within the allowed skew, the same request verifies.
    verify(
        "POST",
        path,
        query,
        headers,
        body,
        keys,
        service="comprehend",
        now=now + timedelta(minutes=14),
    )


# --- the shared helpers ------------------------------------------------------------------------


def test_sentences_split_at_terminal_punctuation_of_the_three_languages():
    text = "غذا سرد بود؟ پیک دیر رسید!\nالسعر 3.5 دينار. موقع x.com بطيء"
    pieces = [text[a:b] for a, b in split_sentences(text)]
    assert pieces == ["غذا سرد بود؟", "پیک دیر رسید!", "السعر 3.5 دينار.", "موقع x.com بطيء"]
    assert split_sentences("  no punctuation here  ") == [(2, 21)]


def test_declared_language_is_kept_unless_the_script_contradicts_it():
    assert resolve_language("ar", TEXTS["fa"]) == ("ar", None)  # same script: trusted
    hint, warning = resolve_language("en", TEXTS["ar"])
    assert hint is None and "'ar'" in warning
    assert resolve_language("fa", TEXTS["en"])[0] is None
    assert resolve_language("en", "😂😂 100") == ("en", None)  # nothing to contradict it
    assert resolve_language(None, TEXTS["en"]) == (None, None)


def test_opinions_read_only_topics_with_valid_evidence():
    text = "The food was delicious but the app keeps crashing"
    topics = [
        _topic(text, "app_website", "negative", 0.8, "the app keeps crashing"),
        _topic(text, "product_quality", "positive", 0.9, "The food was delicious"),
        {"topic": "price", "polarity": "negative", "score": 0.5},
        {"topic": "x", "polarity": "negative", "score": 0.5, "evidence": {"start": 5, "end": 99}},
        {"topic": "y", "polarity": None, "score": 0.5, "evidence": {"start": 0, "end": 3}},
    ]
    prediction = Prediction("negative", {"negative": 1.0}, "en", 1.0, topics)
    found = opinions(prediction, text)
    assert [(o["topic"], text[o["start"] : o["end"]]) for o in found] == [
        ("product_quality", "The food was delicious"),
        ("app_website", "the app keeps crashing"),
    ]
