"""The HTTP service, tested through the real app (FastAPI's TestClient) with tiny fast models built
here; one smoke test uses the shipped model when it is present."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from cxnlp.io.isolate import Failed
from cxnlp.models.fast import FastSentimentModel
from service import Settings, create_app
from service.batcher import MicroBatcher, QueueFull
from service.cli import add_verbs  # noqa: F401 - the entry point must import
from service.loading import LoadedModel, wrap_model

KEY, ADMIN = "test-key-0123456789", "admin-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}

TRAIN = [
    ("fa", "غذا خیلی خوشمزه بود و به موقع رسید", "positive"),
    ("fa", "عالی بود، ممنون از پیک خوش اخلاق", "positive"),
    ("fa", "غذا سرد بود و پیک یک ساعت دیر رسید", "negative"),
    ("fa", "خیلی بد بود، دیگه سفارش نمیدم", "negative"),
    ("fa", "سفارش را دیروز ثبت کردم", "neutral"),
    ("fa", "این گوشی دو سیم کارت دارد", "neutral"),
    ("ar", "الخدمة ممتازة والتوصيل سريع", "positive"),
    ("ar", "تطبيق رائع وسهل الاستخدام", "positive"),
    ("ar", "الخدمة سيئة جدا والموظف غير محترم", "negative"),
    ("ar", "التطبيق بطيء ويتوقف دائما", "negative"),
    ("ar", "طلبت وجبة من المطعم أمس", "neutral"),
    ("ar", "الفرع يفتح الساعة التاسعة صباحا", "neutral"),
    ("en", "Great app, fast delivery, love it", "positive"),
    ("en", "Excellent service and friendly staff", "positive"),
    ("en", "Terrible service, the courier was two hours late", "negative"),
    ("en", "The app keeps crashing, awful", "negative"),
    ("en", "I ordered a pizza yesterday", "neutral"),
    ("en", "The store opens at nine", "neutral"),
]
TEXTS = {"fa": "غذا خیلی خوشمزه بود", "ar": "الخدمة سيئة جدا", "en": "Great app, love it"}
FLIP = {"positive": "negative", "negative": "positive", "neutral": "neutral"}


def _fit(flip: bool) -> FastSentimentModel:
    langs, texts, labels = zip(*TRAIN, strict=True)
    labels = [FLIP[label] if flip else label for label in labels]
    model = FastSentimentModel(n_features=2**12, ngram_range=(1, 4), C=10.0)
    return model.fit(list(texts) * 2, labels * 2, langs=list(langs) * 2)


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory with `alpha` and `beta`, which calls positive what alpha calls negative."""
    root = tmp_path_factory.mktemp("service-models")
    _fit(flip=False).save(root / "alpha")
    _fit(flip=True).save(root / "beta")
    return root


@pytest.fixture
def settings(model_root: Path, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides) -> Settings:
        values = {
            "model": str(model_root / "alpha"),
            "api_keys": [KEY],
            "admin_keys": [ADMIN],
            "jobs_dir": tmp_path / "jobs",
            "max_wait_ms": 2,
            **overrides,
        }
        return Settings(**values)

    return make


@pytest.fixture
def client(settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings())) as c:
        yield c


class RecordingModel:
    """Wraps a model: records the size of every predict call and, given a gate, blocks in
    predict until the gate opens."""

    kind = "fast"

    def __init__(self, model, gate: threading.Event | None = None, fail_on: str | None = None):
        self.model, self.gate, self.fail_on = model, gate, fail_on
        self.calls: list[int] = []
        self.entered = threading.Event()

    def predict(self, texts, langs=None):
        self.calls.append(len(texts))
        self.entered.set()
        if self.gate is not None and not self.gate.wait(20):
            raise TimeoutError("the test never opened the gate")
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError("secret internal detail")
        return self.model.predict(texts, langs)


def _state(c: TestClient):
    return c.app.state.cxnlp


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the service")
        time.sleep(0.005)


def _in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    return thread, out


def _one(text: str = "Great app, love it") -> dict:
    return {"items": [{"text": text}]}


# --- classify / analyze ------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["fa", "ar", "en"])
def test_classify_returns_one_result_per_item_like_the_model(client, model_root, lang):
    items = [{"id": "a", "text": TEXTS[lang]}, {"id": 7, "text": TEXTS[lang], "lang": lang}]
    r = client.post("/v1/classify", json={"items": items}, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "alpha"
    assert [i["id"] for i in body["items"]] == ["a", 7]
    expected = _fit(flip=False).predict([TEXTS[lang]], langs=[lang])[0]
    for item in body["items"]:
        assert item["lang"] == lang
        assert item["sentiment"] == expected.sentiment
        assert sum(item["probabilities"].values()) == pytest.approx(1.0)
        assert item["confidence"] == pytest.approx(max(item["probabilities"].values()))
        assert item["topics"] == []


def test_classify_without_ids_numbers_items_by_position(client):
    items = [{"text": t} for t in TEXTS.values()]
    r = client.post("/v1/classify", json={"items": items}, headers=AUTH)
    assert [i["id"] for i in r.json()["items"]] == ["0", "1", "2"]


def test_analyze_returns_items_and_rollup_grouped_by_item_fields(client):
    items = [
        {"id": 1, "text": TEXTS["en"], "channel": "app", "created_at": "2026-01-05", "score": 9},
        {"id": 2, "text": TEXTS["ar"], "channel": "web", "created_at": "2026-01-06", "score": 2},
        {"id": 3, "text": TEXTS["fa"], "channel": "app", "created_at": "2026-01-14", "score": 8},
    ]
    r = client.post(
        "/v1/analyze",
        json={
            "items": items,
            "group_by": ["channel"],
            "date_col": "created_at",
            "period": "week",
            "score_col": "score",
            "score_kind": "nps",
        },
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["id"] for i in body["items"]] == [1, 2, 3]
    assert {i["lang"] for i in body["items"]} == {"fa", "ar", "en"}
    summary = body["summary"]
    assert summary["classified"] == 3
    assert set(summary["by_group"]["channel"]) == {"app", "web"}
    assert summary["by_group"]["channel"]["app"]["n"] == 2
    assert len(summary["by_period"]) == 2
    assert "scores" in summary


def test_analyze_corrects_shares_with_the_items_hand_given_labels(client):
    texts = [TEXTS["en"], TEXTS["ar"], TEXTS["fa"]] * 16
    items = [
        {"id": n, "text": t, "checked": "negative" if n % 4 else None} for n, t in enumerate(texts)
    ]
    r = client.post("/v1/analyze", json={"items": items, "gold_col": "checked"}, headers=AUTH)
    assert r.status_code == 200, r.text
    summary = r.json()["summary"]
    assert summary["labeled_sample"]["n"] == 36
    assert summary["settings"]["confusion_source"] == "labeled sample"
    assert summary["overall"]["pacc"]["shares"]["negative"] == 1.0  # the sample's only label
    r = client.post("/v1/analyze", json={"items": items[:20], "gold_col": "checked"}, headers=AUTH)
    assert r.status_code == 422 and "at least 30" in r.json()["error"]
    r = client.post("/v1/analyze", json={**_one(), "gold_col": "verdict"}, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "gold_col"


def test_analyze_uses_an_items_own_lang_instead_of_detecting_it(client):
    items = [{"text": TEXTS["en"], "lang": "ar"}, {"text": TEXTS["en"]}]
    r = client.post("/v1/analyze", json={"items": items}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert [i["lang"] for i in r.json()["items"]] == ["ar", "en"]
    assert "_lang_hint" not in r.json()["items"][0]


def test_analyze_refuses_unknown_group_field_with_its_path(client):
    r = client.post("/v1/analyze", json={**_one(), "group_by": ["channel"]}, headers=AUTH)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "group_by[0]"
    assert "channel" in r.json()["error"]


def test_analyze_refuses_a_score_scale_its_kind_cannot_have(client):
    items = [{"text": TEXTS["en"], "q1": 5}]
    for score_col, problem in (("nps:1-7=q1", "NPS is asked on 0-10"), ("q1", "KIND=COLUMN")):
        body = {"items": items, "score_col": score_col}
        r = client.post("/v1/analyze", json=body, headers=AUTH)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "score_col"
        assert problem in r.json()["error"]


@pytest.mark.filterwarnings("ignore:Could not infer format")  # pandas, on the unreadable dates
def test_analyze_refuses_unreadable_dates_with_422(client):
    items = [{"text": TEXTS["en"], "when": "someday"}, {"text": TEXTS["fa"], "when": "later"}]
    r = client.post("/v1/analyze", json={"items": items, "date_col": "when"}, headers=AUTH)
    assert r.status_code == 422
    assert "no readable dates" in r.json()["error"]


# --- auth ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": KEY}],
    ids=["none", "wrong-bearer", "wrong-x-api-key", "no-scheme"],
)
def test_auth_refuses_missing_or_wrong_key_with_401(client, headers):
    r = client.post("/v1/classify", json=_one(), headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "API key" in r.json()["error"]


@pytest.mark.parametrize("headers", [AUTH, {"X-API-Key": KEY}, {"X-API-Key": ADMIN}])
def test_auth_accepts_bearer_and_x_api_key(client, headers):
    assert client.post("/v1/classify", json=_one(), headers=headers).status_code == 200


@pytest.mark.parametrize("path", ["/v1/models", "/v1/jobs/" + "0" * 32])
def test_auth_protects_every_v1_endpoint(client, path):
    assert client.get(path).status_code == 401


def test_auth_off_needs_no_key(settings):
    with TestClient(create_app(settings(auth=False, api_keys=[], admin_keys=[]))) as c:
        assert c.post("/v1/classify", json=_one()).status_code == 200


def test_create_app_refuses_auth_on_without_keys(settings):
    with pytest.raises(ValueError, match="CXNLP_API_KEYS.*CXNLP_AUTH=off"):
        create_app(settings(api_keys=[], admin_keys=[]))


def test_api_keys_come_from_env_and_file(tmp_path, monkeypatch, settings):
    keys = tmp_path / "keys"
    keys.write_text("# team keys\nfile-key-1\n\nfile-key-2\n")
    monkeypatch.setenv("CXNLP_API_KEYS", "env-a, env-b")
    monkeypatch.setenv("CXNLP_API_KEYS_FILE", str(keys))
    assert Settings().all_api_keys() == ["env-a", "env-b", "file-key-1", "file-key-2"]
    with TestClient(create_app(settings(api_keys=[], api_keys_file=keys))) as c:
        assert c.post("/v1/classify", json=_one(), headers={"X-API-Key": "file-key-2"}).is_success
        assert (
            c.post("/v1/classify", json=_one(), headers={"X-API-Key": "env-a"}).status_code == 401
        )


# --- bad requests and limits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": []}, "items"),
        ({}, "items"),
        ({"items": "text"}, "items"),
        ({"items": [{"text": 3}]}, "items[0].text"),
        ({"items": [{"id": "x"}]}, "items[0].text"),
        ({"items": [{"text": "ok", "lang": "de"}]}, "items[0].lang"),
        ({"items": [{"text": "ok", "id": [1]}]}, "items[0].id"),
        ({"items": [{"text": "ok"}], "extra": 1}, "extra"),
    ],
    ids=["empty", "missing", "not-list", "int-text", "no-text", "lang", "id", "extra"],
)
def test_bad_requests_get_422_with_the_field_path(client, body, field):
    r = client.post("/v1/classify", json=body, headers=AUTH)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"].startswith(field), r.json()
    assert r.json()["error"].startswith("invalid request")


def test_malformed_json_gets_422(client):
    r = client.post(
        "/v1/classify",
        content=b'{"items": [{"text": "x"}',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert "not valid JSON" in r.json()["error"]


def test_text_over_the_char_limit_is_an_item_error_stating_the_limit(settings):
    with TestClient(create_app(settings(max_text_chars=50))) as c:
        r = c.post(
            "/v1/classify", json={"items": [{"text": "ok"}, {"text": "x" * 51}]}, headers=AUTH
        )
    assert r.status_code == 200
    assert "the limit is 50" in r.json()["items"][1]["error"]
    assert r.json()["items"][0]["error"] is None


def test_too_many_items_gets_413_stating_the_limit(settings):
    with TestClient(create_app(settings(max_items=3))) as c:
        r = c.post("/v1/classify", json={"items": [{"text": "ok"}] * 4}, headers=AUTH)
    assert r.status_code == 413
    assert "limit is 3" in r.json()["error"]


def test_ten_megabyte_text_gets_413_from_the_body_limit(client):
    r = client.post("/v1/classify", json=_one("x" * 10_000_000), headers=AUTH)
    assert r.status_code == 413
    assert "CXNLP_MAX_BODY_BYTES" in r.json()["error"]


def test_body_limit_also_counts_chunked_bodies_without_content_length(settings):
    def chunks():
        yield b'{"items": [{"text": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}]}'

    with TestClient(create_app(settings(max_body_bytes=16 * 1024))) as c:
        r = c.post(
            "/v1/classify", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
        )
    assert r.status_code == 413


def test_model_failures_are_item_errors_without_internals(settings, model_root):
    model = RecordingModel(_fit(flip=False), fail_on="boom")
    app = create_app(settings(), model=model)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v1/classify", json=_one("boom"), headers=AUTH)
        assert c.post("/v1/classify", json=_one(), headers=AUTH).status_code == 200
    assert r.status_code == 200
    assert r.json()["items"][0]["error"].startswith("classification failed (RuntimeError)")
    assert "Traceback" not in r.text and "secret" not in r.text


def test_unexpected_errors_are_500_json_without_traceback(settings, model_root, monkeypatch):
    import service.routers.classify as route

    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(route, "prepare", broken)
    with TestClient(create_app(settings()), raise_server_exceptions=False) as c:
        r = c.post("/v1/classify", json=_one(), headers=AUTH)
    assert r.status_code == 500
    assert r.json() == {"error": "internal server error; the service log has the details"}
    assert "Traceback" not in r.text and "secret" not in r.text


# --- micro-batching and back-pressure ------------------------------------------------------------


@pytest.mark.parametrize(("max_batch", "calls"), [(64, [1, 8]), (4, [1, 4, 4]), (1, [1] * 9)])
def test_concurrent_requests_are_merged_into_fewer_model_calls(settings, max_batch, calls):
    gate = threading.Event()
    model = RecordingModel(_fit(flip=False), gate=gate)
    app = create_app(settings(max_batch=max_batch, max_wait_ms=50), model=model)
    with TestClient(app) as c:

        def post(text: str):
            return c.post("/v1/classify", json=_one(text), headers=AUTH)

        first = _in_thread(lambda: post(TEXTS["en"]))
        assert model.entered.wait(10)
        rest = [_in_thread(lambda t=t: post(t)) for t in [*TEXTS.values()] * 2 + ["Great", "bad"]]
        _wait(lambda: _state(c).batcher.depth == 8)
        gate.set()
        for thread, _ in [first, *rest]:
            thread.join(20)
        responses = [out[0] for _, out in [first, *rest]]
        metrics = c.get("/metrics").text
    assert all(r.status_code == 200 for r in responses)
    assert model.calls == calls
    # Every request got its own text's result back, not a neighbour's.
    direct = _fit(flip=False)
    for r, text in zip(responses[1:], [*TEXTS.values()] * 2 + ["Great", "bad"], strict=True):
        assert r.json()["items"][0]["sentiment"] == direct.predict([text])[0].sentiment
    assert f"cxnlp_batch_size_count {len(calls)}" in metrics
    assert "cxnlp_texts_classified_total 9" in metrics


def test_full_queue_answers_503_with_retry_after(settings):
    gate = threading.Event()
    model = RecordingModel(_fit(flip=False), gate=gate)
    app = create_app(settings(queue_size=1, retry_after_s=2), model=model)
    with TestClient(app) as c:
        running = _in_thread(lambda: c.post("/v1/classify", json=_one(), headers=AUTH))
        assert model.entered.wait(10)
        waiting = _in_thread(lambda: c.post("/v1/classify", json=_one(), headers=AUTH))
        _wait(lambda: _state(c).batcher.depth == 1)
        refused = c.post("/v1/classify", json=_one(), headers=AUTH)
        gate.set()
        for thread, _ in (running, waiting):
            thread.join(20)
        metrics = c.get("/metrics").text
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "2"
    assert "busy" in refused.json()["error"]
    assert running[1][0].status_code == 200 and waiting[1][0].status_code == 200
    assert "cxnlp_queue_rejected_total 1" in metrics


def test_batcher_fails_only_the_bad_text_of_a_merged_batch():
    async def run():
        gate = threading.Event()
        model = RecordingModel(_fit(flip=False), gate=gate, fail_on="boom")
        batcher = MicroBatcher(max_batch=8, max_wait_s=0.05, queue_size=8)
        batcher.start()
        handle = wrap_model(model)
        try:
            blocker = asyncio.ensure_future(batcher.predict(handle, ["first"]))
            await asyncio.to_thread(model.entered.wait, 10)
            good = asyncio.ensure_future(batcher.predict(handle, ["fine", "also fine"]))
            bad = asyncio.ensure_future(batcher.predict(handle, ["boom"]))
            while batcher.depth < 2:
                await asyncio.sleep(0.005)
            gate.set()
            results = await asyncio.gather(blocker, good, bad, return_exceptions=True)
        finally:
            batcher.close()
        return model.calls, results

    calls, (blocker, good, bad) = asyncio.run(run())
    assert calls == [1, 3, 1, 1, 1]  # the merged batch failed, then each text alone
    assert len(blocker) == 1 and len(good) == 2
    assert not any(isinstance(p, Failed) for p in good)
    assert len(bad) == 1 and isinstance(bad[0], Failed)
    assert bad[0].error == "classification failed (RuntimeError); the log has the details"


def test_batcher_refuses_when_full():
    async def run():
        batcher = MicroBatcher(max_batch=4, queue_size=1)  # not started: nothing is taken
        handle = wrap_model(RecordingModel(_fit(flip=False)))
        first = asyncio.ensure_future(batcher.predict(handle, ["a"]))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await batcher.predict(handle, ["b"])
        first.cancel()

    asyncio.run(run())


# --- models and reload ---------------------------------------------------------------------------


def test_models_describes_the_served_model(client, model_root):
    r = client.get("/v1/models", headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "alpha"
    assert "path" not in body and str(model_root) not in r.text  # no server paths
    assert body["kind"] == "fast"
    assert body["cxnlp_version"] and body["service_cxnlp_version"]
    assert body["metrics"] == {}


def test_models_reports_metrics_json_of_the_model_dir(settings, model_root, tmp_path):
    import shutil

    target = tmp_path / "with-metrics"
    shutil.copytree(model_root / "alpha", target)
    (target / "metrics.json").write_text('{"by_lang": {"fa": {"macro_f1": 0.8}}}')
    with TestClient(create_app(settings(model=str(target)))) as c:
        assert (
            c.get("/v1/models", headers=AUTH).json()["metrics"]["by_lang"]["fa"]["macro_f1"] == 0.8
        )


def test_reload_switches_models_without_restart(client, model_root, monkeypatch):
    monkeypatch.setenv("CXNLP_MODELS_DIR", str(model_root))
    before = client.post("/v1/classify", json=_one(TEXTS["en"]), headers=AUTH).json()
    r = client.post("/v1/admin/reload", json={"model": "beta"}, headers={"X-API-Key": ADMIN})
    assert r.status_code == 200, r.text
    assert r.json()["previous"] == "alpha" and r.json()["model"]["name"] == "beta"
    after = client.post("/v1/classify", json=_one(TEXTS["en"]), headers=AUTH).json()
    assert client.get("/v1/models", headers=AUTH).json()["name"] == "beta"
    assert before["model"] == "alpha" and after["model"] == "beta"
    assert before["items"][0]["sentiment"] == "positive"
    assert after["items"][0]["sentiment"] == "negative"  # beta learned the flipped labels
    r = client.post(
        "/v1/admin/reload", json={"model": str(model_root / "alpha")}, headers={"X-API-Key": ADMIN}
    )
    assert r.json()["model"]["name"] == "alpha"


def test_requests_in_flight_finish_on_the_old_model(settings, model_root):
    gate = threading.Event()
    old = RecordingModel(_fit(flip=False), gate=gate)
    handle = LoadedModel(model=old, name="old", path="", kind="fast")
    with TestClient(create_app(settings(), model=handle)) as c:
        flight = _in_thread(lambda: c.post("/v1/classify", json=_one(TEXTS["en"]), headers=AUTH))
        assert old.entered.wait(10)
        queued = _in_thread(lambda: c.post("/v1/classify", json=_one(TEXTS["en"]), headers=AUTH))
        _wait(lambda: _state(c).batcher.depth == 1)
        r = c.post(
            "/v1/admin/reload",
            json={"model": str(model_root / "beta")},
            headers={"X-API-Key": ADMIN},
        )
        assert r.status_code == 200
        later = _in_thread(lambda: c.post("/v1/classify", json=_one(TEXTS["en"]), headers=AUTH))
        _wait(lambda: _state(c).batcher.depth == 2)
        gate.set()
        for thread, _ in (flight, queued, later):
            thread.join(20)
    new = later[1][0].json()
    assert old.calls == [1, 1]  # the request after the swap was not merged into the old model
    assert flight[1][0].json()["model"] == "old"
    assert queued[1][0].json()["model"] == "old"  # accepted before the swap
    assert flight[1][0].json()["items"][0]["sentiment"] == "positive"
    assert new["model"] == "beta" and new["items"][0]["sentiment"] == "negative"


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), (AUTH, 403), ({"X-API-Key": "wrong"}, 401)],
    ids=["no-key", "api-key", "wrong-key"],
)
def test_reload_needs_an_admin_key(client, model_root, headers, status):
    r = client.post("/v1/admin/reload", json={"model": str(model_root / "beta")}, headers=headers)
    assert r.status_code == status
    assert client.get("/v1/models", headers=AUTH).json()["name"] == "alpha"


def test_reload_of_an_unknown_model_is_404_and_keeps_serving(client):
    r = client.post(
        "/v1/admin/reload", json={"model": "no-such-model"}, headers={"X-API-Key": ADMIN}
    )
    assert r.status_code == 404
    assert "no-such-model" in r.json()["error"]
    assert client.post("/v1/classify", json=_one(), headers=AUTH).json()["model"] == "alpha"


# --- jobs ----------------------------------------------------------------------------------------


def _upload(c: TestClient, data: bytes, name: str = "export.csv", **form):
    return c.post("/v1/jobs", files={"file": (name, data, "text/csv")}, data=form, headers=AUTH)


def _csv(rows: int = 25) -> bytes:
    texts = [*TEXTS.values(), ""]
    frame = pd.DataFrame(
        {"ref": [f"r{i}" for i in range(rows)], "comment": [texts[i % 4] for i in range(rows)]}
    )
    return frame.to_csv(index=False).encode("utf-8")


def test_job_lifecycle_with_a_csv_upload(settings):
    gate = threading.Event()
    model = RecordingModel(_fit(flip=False), gate=gate)
    with TestClient(create_app(settings(job_chunk_rows=10), model=model)) as c:
        r = _upload(c, _csv(25), text_col="comment", id_col="ref")
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["status"] in ("queued", "running") and job["filename"] == "export.csv"
        assert model.entered.wait(10)
        running = c.get(f"/v1/jobs/{job['id']}", headers=AUTH).json()
        assert running["status"] == "running"
        early = c.get(f"/v1/jobs/{job['id']}/result", headers=AUTH)
        assert early.status_code == 409 and "running" in early.json()["error"]
        gate.set()
        _wait(lambda: c.get(f"/v1/jobs/{job['id']}", headers=AUTH).json()["status"] == "succeeded")
        done = c.get(f"/v1/jobs/{job['id']}", headers=AUTH).json()
        result = c.get(f"/v1/jobs/{job['id']}/result", headers=AUTH)
    assert done["rows"] == 25 and done["rows_done"] == 25 and done["errors"] == 6
    assert done["model"] == "custom" and done["error"] is None
    assert result.status_code == 200
    assert 'filename="export_labeled.csv"' in result.headers["content-disposition"]
    from io import StringIO

    labeled = pd.read_csv(StringIO(result.content.decode("utf-8-sig")))
    assert labeled["ref"].tolist() == [f"r{i}" for i in range(25)]
    assert labeled["sentiment"].notna().sum() == 19
    assert len(model.calls) == 3  # chunks of 10 rows


def test_job_without_the_text_column_fails_with_the_reason(client):
    job = _upload(client, _csv(3), text_col="body").json()
    _wait(lambda: client.get(f"/v1/jobs/{job['id']}", headers=AUTH).json()["status"] == "failed")
    failed = client.get(f"/v1/jobs/{job['id']}", headers=AUTH).json()
    assert "'body'" in failed["error"] and "comment" in failed["error"]
    assert "/" not in failed["error"].split("has no")[0]  # no server path
    assert client.get(f"/v1/jobs/{job['id']}/result", headers=AUTH).status_code == 409


def test_job_upload_of_unsupported_type_is_415(client):
    r = _upload(client, b"hello", name="notes.pdf")
    assert r.status_code == 415
    assert ".csv" in r.json()["error"]


def test_job_upload_over_the_upload_limit_is_413(settings):
    with TestClient(create_app(settings(max_upload_bytes=4096))) as c:
        r = _upload(c, _csv(400))
    assert r.status_code == 413
    assert "CXNLP_MAX_UPLOAD_BYTES" in r.json()["error"]


@pytest.mark.parametrize("job_id", ["0" * 32, "../../etc", "abc"])
def test_unknown_job_is_404(client, job_id):
    assert client.get(f"/v1/jobs/{job_id}", headers=AUTH).status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/result", headers=AUTH).status_code == 404


def test_finished_jobs_survive_a_restart(settings):
    s = settings()
    with TestClient(create_app(s)) as c:
        job = _upload(c, _csv(5), text_col="comment").json()
        _wait(lambda: c.get(f"/v1/jobs/{job['id']}", headers=AUTH).json()["status"] == "succeeded")
    with TestClient(create_app(s)) as c:
        assert c.get(f"/v1/jobs/{job['id']}", headers=AUTH).json()["rows"] == 5
        assert c.get(f"/v1/jobs/{job['id']}/result", headers=AUTH).status_code == 200


# --- health, metrics, CORS, docs, CLI ------------------------------------------------------------


def test_health_and_readiness_need_no_key(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "model": "alpha"}


def test_metrics_are_prometheus_text(client):
    client.post("/v1/classify", json={"items": [{"text": "a"}, {"text": "b"}]}, headers=AUTH)
    client.post("/v1/classify", json={"items": []}, headers=AUTH)
    client.get("/v1/jobs/" + "0" * 32, headers=AUTH)
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'cxnlp_http_requests_total{route="/v1/classify",status="200"} 1' in text
    assert 'cxnlp_http_requests_total{route="/v1/classify",status="422"} 1' in text
    assert 'cxnlp_http_requests_total{route="/v1/jobs/{job_id}",status="404"} 1' in text
    # prometheus-client writes `le` first and numbers as floats; the series are the same.
    assert 'cxnlp_http_request_duration_seconds_bucket{le="+Inf",route="/v1/classify"} 2' in text
    assert "cxnlp_texts_classified_total 2" in text
    assert 'cxnlp_batch_size_bucket{le="2.0"} 1.0' in text
    assert "# TYPE cxnlp_queue_depth gauge" in text and "cxnlp_queue_depth 0" in text


def test_cors_is_off_unless_origins_are_set(client, settings):
    preflight = {"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"}
    r = client.options("/v1/classify", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    with TestClient(create_app(settings(cors_origins="https://dash.example"))) as c:
        r = c.options("/v1/classify", headers=preflight)
    assert r.headers["access-control-allow-origin"] == "https://dash.example"


def test_openapi_lists_the_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ["/v1/classify", "/v1/analyze", "/v1/jobs", "/v1/jobs/{job_id}/result"]:
        assert path in paths
    assert client.get("/docs").status_code == 200


def test_serve_verb_refuses_to_start_without_keys(monkeypatch, capsys):
    from cxnlp.cli import main

    for name in ("CXNLP_API_KEYS", "CXNLP_API_KEYS_FILE", "CXNLP_ADMIN_KEYS", "CXNLP_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CXNLP_PORT", "8000")  # serve writes its flags here; restored afterwards
    assert main(["serve", "--port", "0"]) == 2
    assert "CXNLP_API_KEYS" in capsys.readouterr().err


# --- the shipped model ---------------------------------------------------------------------------


@pytest.mark.slow
def test_shipped_model_serves_fa_ar_en(settings):
    with TestClient(create_app(settings(model="default"))) as c:
        r = c.post(
            "/v1/classify", json={"items": [{"text": t} for t in TEXTS.values()]}, headers=AUTH
        )
    assert r.status_code == 200
    assert [i["lang"] for i in r.json()["items"]] == ["fa", "ar", "en"]
    assert [i["sentiment"] for i in r.json()["items"]] == ["positive", "negative", "positive"]
    # "The food was very tasty" and "the service is very bad" name aspects; the model tags them.
    topics = [{t["topic"]: t["polarity"] for t in i["topics"]} for i in r.json()["items"]]
    assert topics[0].get("product_quality") == "positive"
    assert topics[1].get("staff_behavior") == "negative"


@pytest.mark.slow
def test_shipped_model_serves_custom_topics_from_settings(settings):
    path = Path(__file__).resolve().parent.parent / "examples" / "custom_topics.yaml"
    with TestClient(create_app(settings(model="default", custom_topics=path))) as c:
        r = c.post("/v1/classify", json=_one("The pizza arrived cold"), headers=AUTH)
    assert r.status_code == 200
    assert "cold_food" in {t["topic"] for t in r.json()["items"][0]["topics"]}


@pytest.mark.parametrize("ray_address", [None, "auto"])
def test_jobs_resume_on_either_engine(tmp_path, monkeypatch, ray_address):
    """A job the service had not finished reuses the parts already written, on Ray as locally
    (README, "Files"): both engines are called with resume=True."""
    import service.jobs as jobs

    calls = []

    def fake_classify_file(model, source, output, **options):
        calls.append(options)
        return type("Stats", (), {"rows": 0, "errors": 0})()

    monkeypatch.setattr(jobs, "classify_file", fake_classify_file)
    source = tmp_path / "in.csv"
    source.write_text("id,text\n1,hello\n", encoding="utf-8")
    model = type("Handle", (), {"name": "m", "model": object()})()
    runner = jobs.JobRunner(tmp_path, lambda _name: model, ray_address=ray_address, ray_min_bytes=1)
    job = jobs.Job("j", "in.csv", str(source), str(tmp_path / "out.csv"), "text", "id")
    runner._execute(job, threading.Event())
    assert job.status == "succeeded", job.error
    assert calls[0]["resume"] is True
    assert calls[0].get("engine", "local") == ("ray" if ray_address else "local")
