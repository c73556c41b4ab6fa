"""The per-item contract of the API (issue 15): every item back with its id and a result or an
error; invalid Unicode, empty and too-long texts never reject the request or make a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service import Settings, create_app

KEY = "items-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def make_client(tiny_model_dir: Path, tmp_path: Path):
    def make(**overrides) -> TestClient:
        values = {
            "model": str(tiny_model_dir),
            "api_keys": [KEY],
            "jobs_dir": tmp_path / "jobs",
            "max_wait_ms": 1,
            **overrides,
        }
        return TestClient(create_app(Settings(**values)), raise_server_exceptions=False)

    return make


@pytest.fixture
def client(make_client) -> Iterator[TestClient]:
    with make_client() as c:
        yield c


def _post(client: TestClient, path: str, body: dict) -> object:
    # A raw body: httpx's json= would refuse a lone surrogate, a client sending "\ud800" does not.
    raw = json.dumps(body, ensure_ascii=True).encode()
    return client.post(path, content=raw, headers={**AUTH, "Content-Type": "application/json"})


@pytest.mark.parametrize("path", ["/v1/classify", "/v1/analyze"])
def test_lone_surrogate_is_a_per_item_error_not_a_500(client, path):
    body = {"items": [{"id": "a", "text": "ok \ud800"}, {"id": "b", "text": "Great app"}]}
    r = _post(client, path, body)
    assert r.status_code == 200, r.text
    bad, good = r.json()["items"]
    assert bad["id"] == "a" and bad["sentiment"] is None and "lone surrogate" in bad["error"]
    assert good["id"] == "b" and good["sentiment"] in ("positive", "neutral", "negative")
    assert good["error"] is None
    # The connection stays usable.
    assert (
        client.post(path, json={"items": [{"text": "Great app"}]}, headers=AUTH).status_code == 200
    )


@pytest.mark.parametrize("path", ["/v1/classify", "/v1/analyze"])
def test_lone_surrogate_in_an_id_or_field_is_echoed_not_a_500(client, path):
    body = {"items": [{"id": "x\udc80", "text": "Great app", "channel": "w\ud800"}]}
    r = _post(client, path, body)
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["id"] == "x\udc80"  # exactly what was sent, as a JSON escape


def test_analyze_error_messages_hold_no_internals(tiny_fast_model, tmp_path):
    class Failing:
        kind = "fast"

        def predict(self, texts, langs=None):
            if any("boom" in t for t in texts):
                raise TypeError("predict(): <fasttext_pybind.fasttext object at 0x7f4c> 'boom'")
            return tiny_fast_model.predict(texts, langs)

    app = create_app(Settings(auth=False, jobs_dir=tmp_path / "j"), model=Failing())
    with TestClient(app, raise_server_exceptions=False) as c:
        for path in ("/v1/analyze", "/v1/classify"):
            items = [{"text": "boom secret"}, {"text": "Great app"}]
            r = c.post(path, json={"items": items})
            assert r.status_code == 200, r.text
            bad, good = r.json()["items"]
            assert bad["error"].startswith("classification failed (TypeError)")
            assert "0x" not in r.text and "pybind" not in r.text and "secret" not in r.text
            assert good["error"] is None and good["sentiment"] is not None


@pytest.mark.parametrize("path", ["/v1/classify", "/v1/analyze"])
def test_empty_text_among_valid_ones_is_a_per_item_error(client, path):
    items = [{"id": 1, "text": "Great app"}, {"id": 2, "text": "   "}, {"id": 3, "text": ""}]
    r = client.post(path, json={"items": items}, headers=AUTH)
    assert r.status_code == 200, r.text
    out = r.json()["items"]
    assert [i["id"] for i in out] == [1, 2, 3]
    assert out[0]["error"] is None and out[0]["sentiment"]
    assert out[1]["error"] == out[2]["error"] == "empty text"


@pytest.mark.parametrize("path", ["/v1/classify", "/v1/analyze"])
def test_too_long_text_is_a_per_item_error_or_truncated_on_request(make_client, path):
    items = [{"id": "short", "text": "Great app"}, {"id": "long", "text": "Great app " * 10}]
    with make_client(max_text_chars=50) as c:
        r = c.post(path, json={"items": items}, headers=AUTH)
        cut = c.post(path, json={"items": items, "truncate": True}, headers=AUTH)
    assert r.status_code == 200, r.text
    short, long = r.json()["items"]
    assert short["error"] is None and not short["truncated"]
    assert long["sentiment"] is None and "100 characters; the limit is 50" in long["error"]
    assert '"truncate": true' in long["error"]
    assert cut.status_code == 200
    long = cut.json()["items"][1]
    assert long["error"] is None and long["truncated"] is True and long["sentiment"]


def test_classify_and_analyze_give_the_same_fields_and_rounding(client):
    items = [{"text": "Great app, love it"}, {"id": "k", "text": "The app keeps crashing"}]
    a = client.post("/v1/classify", json={"items": items}, headers=AUTH).json()["items"]
    b = client.post("/v1/analyze", json={"items": items}, headers=AUTH).json()["items"]
    assert a == b
    assert [i["id"] for i in a] == ["0", "k"]  # a missing id is the position, as a string
    for item in a:
        assert set(item) == {
            "id", "sentiment", "probabilities", "confidence", "lang", "topics", "mixed", "error",
            "truncated", "urgency",
        }  # fmt: skip
        for value in [*item["probabilities"].values(), item["confidence"]]:
            assert value == round(value, 6)
