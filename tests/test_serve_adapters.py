"""Several adapted models served at once (issue 32, item 5): adapters load onto the served model's
encoder (one copy of the embeddings and frozen layers in memory), a request's `model` field picks
one, an unknown name is a 422 that lists the known ones, and the micro-batcher never puts two
models' texts in one forward. On a tiny randomly initialised blend with a topic head, the shape
of the shipped default."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from test_service import (
    ADMIN,
    AUTH,
    KEY,
    RecordingModel,
    _fit,
    _in_thread,
    _state,
    _upload,
    _wait,
)
from test_transformer import TEXTS, tiny_config

from cxnlp.models.store import ModelLoadError, load
from service import Settings, create_app
from service.settings import parse_adapters

PROBE = ["غذا سرد رسید", "Love this app", "الخدمة سيئة", "The courier was late"]
PROBE_LANGS = ["fa", "en", "ar", "en"]


@pytest.fixture(scope="module")
def base_dir(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny blend (transformer + n-gram member) with a topic head, named `base`."""
    from cxnlp.modeldir import TOPICS_DIR
    from cxnlp.topics.tagger import TopicTagger
    from cxnlp.topics.taxonomy import TOPICS
    from training.train import train

    root = tmp_path_factory.mktemp("served-base")
    rows = [
        {"text": text, "label": label, "lang": lang, "split": split}
        for (lang, label), texts in TEXTS.items()
        for text, split in zip(texts, ["train", "train", "dev"], strict=True)
    ]
    data = root / "pool.csv"
    pd.DataFrame(rows).to_csv(data, index=False)
    config = tiny_config(tiny_backbone)
    config.model.blend_fast = True
    config.model.n_features = 2**12
    base = train(config, root / "base", data_file=data)
    width = load(base).features(["x"], ["en"]).shape[1]
    TopicTagger(TOPICS, width, hidden=4).save(base / TOPICS_DIR)
    return base


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory with `alpha`, an n-gram model with no encoder."""
    root = tmp_path_factory.mktemp("served-fast")
    _fit(flip=False).save(root / "alpha")
    return root


def _adapted(base_dir: Path, out: Path, seed: int) -> Path:
    """A model directory laid out as `cxnlp adapt` writes one: the base with its trained layers,
    head and n-gram weights moved (as a merged LoRA delta and the n-gram step move them), its
    frozen layers, IDF, blend weights and topic head kept."""
    model = load(base_dir)
    transformer, fast = model.member("transformer"), model.member("fast")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in transformer.net.layers[transformer.trained_from_layer :]:
            for parameter in layer.parameters():
                parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
        head = transformer.net.head.weight
        head.add_(2.0 * torch.randn(head.shape, generator=generator))
    rng = np.random.default_rng(seed)
    fast.classifier_.coef_ = fast.classifier_.coef_ + rng.normal(
        0, 1.0, fast.classifier_.coef_.shape
    )
    return model.save(out, extra_config={"name": out.name, "adapted_on": {"seed": seed}})


@pytest.fixture(scope="module")
def adapters(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("served-adapters")
    return {
        "acme": _adapted(base_dir, root / "acme", 1),
        "shop": _adapted(base_dir, root / "shop", 2),
    }


def _proba(model, texts=PROBE, langs=PROBE_LANGS) -> np.ndarray:
    return np.array(
        [[p.probabilities[k] for k in sorted(p.probabilities)] for p in model.predict(texts, langs)]
    )


# --- the library: one encoder, per-adapter top layers ---------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_an_adapter_runs_on_the_base_encoder_and_predicts_as_if_loaded_alone(
    base_dir, adapters, dtype
):
    base = load(base_dir)
    base_t = base.member("transformer")
    base_t.dtype = dtype
    before = _proba(base)
    shared = load(adapters["acme"], share_with=base)
    alone = load(adapters["acme"])
    alone.member("transformer").dtype = dtype

    np.testing.assert_allclose(_proba(shared), _proba(alone), atol=1e-5)
    assert not np.allclose(_proba(shared), before, atol=1e-3)
    np.testing.assert_allclose(_proba(base), before, atol=1e-6)  # the base is left as it was

    mine = shared.member("transformer")
    first = base_t.trained_from_layer
    assert mine.trained_from_layer == first > 0
    # One copy of the embeddings and frozen layers, in the weights and in the runtime network.
    for own, theirs in (
        (mine.net, base_t.net),
        (mine.inference_net()[1], base_t.inference_net()[1]),
    ):
        assert own.encoder.embeddings is theirs.encoder.embeddings
        assert all(a is b for a, b in zip(own.layers[:first], theirs.layers[:first], strict=True))
        assert not any(
            a is b for a, b in zip(own.layers[first:], theirs.layers[first:], strict=True)
        )
        assert own.head is not theirs.head
    assert mine.inference_net()[0] == base_t.inference_net()[0] == dtype
    ours = {p.data_ptr() for p in mine.net.parameters()}
    assert {p.data_ptr() for p in base_t.net.encoder.embeddings.parameters()} <= ours
    assert not {p.data_ptr() for p in mine.net.layers[first:].parameters()} & {
        p.data_ptr() for p in base_t.net.parameters()
    }
    # The n-gram member keeps its own weights on the base's IDF.
    assert shared.member("fast").tfidf_ is base.member("fast").tfidf_
    assert shared.member("fast").classifier_ is not base.member("fast").classifier_


def test_a_model_on_other_frozen_layers_or_without_an_encoder_is_refused(
    base_dir, adapters, tmp_path, model_root
):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(adapters["acme"], other)
    member = other / "members" / "transformer" / "config.json"
    config = json.loads(member.read_text(encoding="utf-8"))
    config["trained_from_layer"] = 2
    member.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="trained_from_layer: 2 here, 1 there"):
        load(other, share_with=load(base_dir))
    with pytest.raises(ModelLoadError, match="no transformer"):
        load(adapters["acme"], share_with=load(model_root / "alpha"))


def test_a_model_cxnlp_adapt_wrote_is_served_on_its_base_encoder(base_dir, tmp_path):
    """The real `cxnlp adapt` output (not a hand-made one) loads as an adapter."""
    from training.adapt import AdaptConfig, adapt

    rows = [
        {"text": t, "label": label, "lang": lang}
        for (lang, label), texts in TEXTS.items()
        for t in texts
    ]
    data = tmp_path / "mine.csv"
    pd.DataFrame(rows).to_csv(data, index=False)
    quick = AdaptConfig(epochs=2, min_steps=3, max_steps=6, batch_size=4)
    out = adapt(base_dir, data, tmp_path / "mine", config=quick, progress=False).path
    base = load(base_dir)
    shared = load(out, share_with=base)
    np.testing.assert_allclose(_proba(shared), _proba(load(out)), atol=1e-5)
    assert shared.member("transformer").net.encoder.embeddings is (
        base.member("transformer").net.encoder.embeddings
    )


# --- the service ----------------------------------------------------------------------------------


@pytest.fixture
def served(base_dir, adapters, tmp_path) -> Callable[..., Settings]:
    def make(**overrides) -> Settings:
        values = {
            "model": str(base_dir),
            "adapters": {name: str(path) for name, path in adapters.items()},
            "api_keys": [KEY],
            "admin_keys": [ADMIN],
            "jobs_dir": tmp_path / "jobs",
            "max_wait_ms": 2,
            **overrides,
        }
        return Settings(**values)

    return make


def _classify(c: TestClient, model: str | None = None, texts=PROBE, path="/v1/classify"):
    body = {"items": [{"text": t, "lang": g} for t, g in zip(texts, PROBE_LANGS, strict=True)]}
    if model is not None:
        body["model"] = model
    return c.post(path, json=body, headers=AUTH)


def _probabilities(response) -> np.ndarray:
    items = response.json()["items"]
    return np.array([[i["probabilities"][k] for k in sorted(i["probabilities"])] for i in items])


def test_requests_are_routed_by_their_model_field(served, base_dir, adapters):
    with TestClient(create_app(served())) as c:
        default = _classify(c)
        acme, shop = _classify(c, "acme"), _classify(c, "shop")
        analyzed = _classify(c, "shop", path="/v1/analyze")
        named_default = _classify(c, "base")
        listed = c.get("/v1/models", headers=AUTH).json()
        state = _state(c)
        base_encoder = state.handle.model.member("transformer").net.encoder.embeddings
        adapter_encoders = [
            a.model.member("transformer").net.encoder.embeddings for a in state.adapters.values()
        ]
    assert [r.status_code for r in (default, acme, shop, analyzed)] == [200] * 4
    assert default.json()["model"] == named_default.json()["model"] == "base"
    assert (acme.json()["model"], shop.json()["model"]) == ("acme", "shop")
    assert analyzed.json()["model"] == "shop"
    # Each answers as its own directory loaded alone; the two adapters differ from each other.
    np.testing.assert_allclose(_probabilities(default), _proba(load(base_dir)), atol=2e-6)
    np.testing.assert_allclose(_probabilities(acme), _proba(load(adapters["acme"])), atol=2e-5)
    np.testing.assert_allclose(_probabilities(shop), _proba(load(adapters["shop"])), atol=2e-5)
    np.testing.assert_allclose(_probabilities(analyzed), _probabilities(shop), atol=2e-6)
    assert np.abs(_probabilities(acme) - _probabilities(shop)).max() > 0.01
    assert all(e is base_encoder for e in adapter_encoders)
    assert listed["name"] == "base" and listed["base"] is None
    assert [(a["name"], a["base"]) for a in listed["adapters"]] == [
        ("acme", "base"),
        ("shop", "base"),
    ]
    assert str(base_dir.parent) not in json.dumps(listed)  # no server paths


@pytest.mark.parametrize("path", ["/v1/classify", "/v1/analyze"])
def test_an_unknown_model_is_a_422_that_lists_the_known_ones(served, path):
    with TestClient(create_app(served())) as c:
        r = _classify(c, "acme-typo", path=path)
        jobs = _upload(c, b"id,text\n1,hello\n", model="acme-typo")
        queued = _state(c).jobs.queued
    assert r.status_code == jobs.status_code == 422
    for answer in (r.json(), jobs.json()):
        assert "'acme-typo'" in answer["error"]
        assert "['base', 'acme', 'shop']" in answer["error"]
        assert answer["detail"][0]["field"] == "model"
        assert answer["detail"][0]["type"] == "unknown_model"
    assert queued == 0


def test_a_job_runs_on_the_adapter_it_names(served, adapters):
    with TestClient(create_app(served())) as c:
        frame = pd.DataFrame({"id": range(len(PROBE)), "text": PROBE})
        job = _upload(c, frame.to_csv(index=False).encode("utf-8"), model="acme").json()
        _wait(lambda: c.get(f"/v1/jobs/{job['id']}", headers=AUTH).json()["status"] == "succeeded")
        done = c.get(f"/v1/jobs/{job['id']}", headers=AUTH).json()
        result = c.get(f"/v1/jobs/{job['id']}/result", headers=AUTH)
    from io import StringIO

    labeled = pd.read_csv(StringIO(result.content.decode("utf-8-sig")))
    assert done["model"] == done["adapter"] == "acme"
    expected = load(adapters["acme"]).predict_proba(PROBE)
    got = labeled[["p_negative", "p_neutral", "p_positive"]].to_numpy()
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_a_job_whose_adapter_is_no_longer_served_fails_naming_those_that_are(served, tmp_path):
    from service.jobs import Job

    app = create_app(served(), model=_fit(flip=False), adapters={"other": _fit(flip=True)})
    job = Job("j", "in.csv", str(tmp_path / "in.csv"), str(tmp_path / "out.csv"), "text", "id")
    job.adapter = "gone"  # e.g. named before a restart with other adapters
    with TestClient(app) as c:
        _state(c).jobs._execute(job, threading.Event())
    assert job.status == "failed" and job.model is None
    assert "'gone'" in job.error and "['custom', 'other']" in job.error


def test_the_batcher_never_mixes_two_models_in_one_forward(served):
    """Requests for two models waiting together: each model call holds one model's texts only,
    and each model's waiting requests are still merged."""
    gate = threading.Event()
    seen: dict[str, list[list[str]]] = {"default": [], "other": []}

    class Seeing(RecordingModel):
        def __init__(self, name, flip):
            super().__init__(_fit(flip=flip), gate=gate)
            self.name = name

        def predict(self, texts, langs=None):
            seen[self.name].append(list(texts))
            return super().predict(texts, langs)

    default, other = Seeing("default", False), Seeing("other", True)
    app = create_app(served(max_batch=64, max_wait_ms=50), model=default, adapters={"other": other})
    with TestClient(app) as c:
        first = _in_thread(lambda: _classify_one(c, "d-first", None))
        assert default.entered.wait(10)
        threads = [
            _in_thread(lambda n=n, m=m: _classify_one(c, f"{m or 'd'}-{n}", m))
            for n in range(3)
            for m in (None, "other")
        ]
        _wait(lambda: _state(c).batcher.depth == 6)
        gate.set()
        for thread, _ in [first, *threads]:
            thread.join(20)
    answers = [out[0].json() for _, out in [first, *threads]]
    texts = {name: [t for call in calls for t in call] for name, calls in seen.items()}
    assert sorted(texts["default"]) == ["d-0", "d-1", "d-2", "d-first"]
    assert sorted(texts["other"]) == ["other-0", "other-1", "other-2"]
    assert seen["default"][0] == ["d-first"]
    assert len(seen["default"]) == 2 and len(seen["other"]) == 1  # merged within a model
    assert sorted(a["model"] for a in answers) == ["custom"] * 4 + ["other"] * 3


def _classify_one(c: TestClient, text: str, model: str | None):
    body: dict = {"items": [{"text": text, "lang": "en"}]}
    if model is not None:
        body["model"] = model
    return c.post("/v1/classify", json=body, headers=AUTH)


def test_reload_loads_the_adapters_again_on_the_new_encoder_or_keeps_the_old_models(
    served, base_dir, model_root
):
    with TestClient(create_app(served())) as c:
        old = _state(c).adapters["acme"]
        r = c.post("/v1/admin/reload", json={"model": str(base_dir)}, headers={"X-API-Key": ADMIN})
        assert r.status_code == 200, r.text
        assert [a["name"] for a in r.json()["model"]["adapters"]] == ["acme", "shop"]
        state = _state(c)
        new = state.adapters["acme"]
        assert new is not old
        assert new.model.member("transformer").net.encoder.embeddings is (
            state.handle.model.member("transformer").net.encoder.embeddings
        )
        assert _classify(c, "acme").json()["model"] == "acme"
        # A model the adapters were not made from: refused, and the old set keeps serving.
        refused = c.post(
            "/v1/admin/reload",
            json={"model": str(model_root / "alpha")},
            headers={"X-API-Key": ADMIN},
        )
        assert refused.status_code == 422
        assert (
            "'acme'" in refused.json()["error"] and "still serving base" in refused.json()["error"]
        )
        assert _state(c).handle.name == "base" and _state(c).adapters["acme"] is new
        assert _classify(c, "shop").status_code == 200


def test_an_adapter_that_does_not_fit_the_served_model_stops_the_start(served, model_root):
    alpha = create_app(served(model=str(model_root / "alpha")))
    with (
        pytest.raises(ValueError, match="adapter 'acme'.*cannot be served beside 'alpha'"),
        TestClient(alpha),
    ):
        pass
    clash = create_app(served(adapters={"base": "whatever"}))
    with pytest.raises(ValueError, match="served model's own name"), TestClient(clash):
        pass


def test_adapters_come_from_env_and_the_serve_flag(monkeypatch, tmp_path, capsys):
    from cxnlp.cli import main

    monkeypatch.setenv("CXNLP_ADAPTERS", "acme=models/acme, shop=/srv/shop")
    assert Settings(auth=False).adapters == {"acme": "models/acme", "shop": "/srv/shop"}
    for bad, reason in [
        ("acme", "not NAME=DIR"),
        ("a b=x", "must be 1-64 letters"),
        ("acme=x,acme=y", "given twice"),
        ("acme=", "no directory"),
    ]:
        with pytest.raises(ValueError, match=reason):
            parse_adapters(bad)
    monkeypatch.setenv("CXNLP_API_KEYS", KEY)
    monkeypatch.setenv("CXNLP_PORT", "8000")  # serve writes its flags here; restored afterwards
    missing = str(tmp_path / "nowhere")
    assert main(["serve", "--port", "0", "--adapter", f"acme={missing}"]) == 2
    assert f"adapter 'acme': no model {missing!r}" in capsys.readouterr().err
    assert main(["serve", "--port", "0", "--adapter", "acme"]) == 2
    assert "not NAME=DIR" in capsys.readouterr().err
